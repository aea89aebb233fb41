"""Helpers shared by the unit tests of the image files (_image_*): entries, lists, an endorser key."""

import datetime
import hashlib

import pytest
import yaml

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _image_signature as image_signature

ENDORSER = "images.example.org"
NOW = datetime.datetime(2026, 11, 23, tzinfo=datetime.timezone.utc)


def entry(name="client", version="2026.11", data=b"x" * 10, **extra):
    raw = {"name": name, "version": version, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
           "url": "https://images.example.org/%s-%s.qcow2" % (name, version)}
    raw.update(extra)
    return raw


ISSUED = "2026-11-20T12:00:00Z"
EXPIRES = "2026-12-31T00:00:00Z"


def image_list(*entries, **top):
    """A list issued before NOW, expiring after it; top=None drops a key."""
    raw = {"format": 1, "endorser": ENDORSER, "issued": ISSUED, "expires": EXPIRES,
           "images": list(entries) or [entry()]}
    raw.update(top)
    raw = dict((k, v) for k, v in raw.items() if v is not None)
    return yaml.safe_dump(raw, sort_keys=False).encode()


@pytest.fixture(scope="module")
def keys():
    return image_signature.generate_key()
