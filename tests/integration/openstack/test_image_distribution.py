"""Image distribution end to end: image files served by the REAL apache of the harness, the image_sync
module and the distribute_images playbook run for real, Glance being the OpenStack API TEST DOUBLE
(tests/openstack_double) -- there is no real Glance in the harness."""

import datetime
import hashlib
import os
import pathlib
import shutil
import tempfile

import pytest
import yaml

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _image_fetch as image_fetch
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _image_list as image_list
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _image_signature as image_signature
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from tests.openstack_double.playbook import run_playbook, task_results

pytestmark = pytest.mark.integration

ENDORSER = "images.example.org"


class Endorser:
    """An endorser at test time: a fresh Ed25519 key, image files published on apache and in a scratch /cvmfs."""

    def __init__(self, tmp_path, apache, www):
        self.dir = tmp_path / "endorser"
        self.www = www
        self.cvmfs = tmp_path / "cvmfs"
        self.dir.mkdir(parents=True)
        (self.cvmfs / "images.example.org").mkdir(parents=True)
        self.private_pem, self.public_pem = image_signature.generate_key()
        self.public_key = self.dir / "endorser.pub"
        self.public_key.write_bytes(self.public_pem)
        self.url = apache.publish(www.name, str(www))
        self.entries = []

    def web_image(self, name, version, data):
        (self.www / ("%s-%s.qcow2" % (name, version))).write_bytes(data)
        raw = {"name": name, "version": version, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
               "url": "%s/%s-%s.qcow2" % (self.url.rstrip("/"), name, version)}
        self.entries.append(raw)
        return raw

    def cvmfs_image(self, name, version, data):
        (self.cvmfs / "images.example.org" / ("%s-%s.qcow2" % (name, version))).write_bytes(data)
        raw = {"name": name, "version": version, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
               "path": "/cvmfs/images.example.org/%s-%s.qcow2" % (name, version)}
        self.entries.append(raw)
        return raw

    def publish_list(self, entries=None, sign=True, issued="2026-01-01T00:00:00Z", expires="2099-01-01T00:00:00Z"):
        raw = {"format": 1, "endorser": ENDORSER, "issued": issued, "expires": expires,
               "images": self.entries if entries is None else entries}
        data = yaml.safe_dump(dict((k, v) for k, v in raw.items() if v is not None), sort_keys=False).encode()
        (self.www / "images.yml").write_bytes(data)
        signature = self.www / "images.yml.sig"
        if signature.exists():
            signature.unlink()
        if sign:
            signature.write_bytes(image_signature.sign(data, self.private_pem))
        return str(self.www / "images.yml")


@pytest.fixture
def endorser(tmp_path, apache):
    # Served files live outside pytest's temporary tree: a pytest session starting in parallel resets
    # /tmp/pytest-of-<user> to mode 0700, and apache's user then gets 403 for everything below it.
    www = tempfile.mkdtemp(prefix="sharedsw-endorser-")
    try:
        yield Endorser(tmp_path, apache, pathlib.Path(www))
    finally:
        shutil.rmtree(www, ignore_errors=True)


def entry_of(raw):
    return image_list.parse_image_list(yaml.safe_dump({"format": 1, "endorser": ENDORSER, "issued": "2026-01-01",
                                                       "expires": "2099-01-01", "images": [raw]}).encode(),
                                       ENDORSER).images[0]


# --------------------------------------------------------------------------- downloads from apache

def test_download_is_verified_while_streaming_and_cleaned_up(endorser, tmp_path):
    data = os.urandom(3 * image_list.CHUNK + 11)
    item = entry_of(endorser.web_image("client", "1", data))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    verified = image_fetch.fetch_verified(item, download_dir=str(downloads))
    assert verified.temporary and os.path.dirname(verified.path) == str(downloads)
    with open(verified.path, "rb") as handle:
        assert handle.read() == data
    assert verified.digests["sha512"] == hashlib.sha512(data).hexdigest()
    verified.cleanup()
    assert os.listdir(str(downloads)) == []


@pytest.mark.parametrize("change, message", [
    (lambda data: data[:1] + b"!" + data[2:], "has SHA-256 .*the endorsed one is"),
    (lambda data: data + b"more", "announces 4100 bytes, the endorsed size is 4096"),
])
def test_a_changed_file_on_the_server_is_refused_and_nothing_is_left(endorser, tmp_path, change, message):
    data = os.urandom(4096)
    item = entry_of(endorser.web_image("client", "1", data))
    (endorser.www / "client-1.qcow2").write_bytes(change(data))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with pytest.raises(CvmfsError, match=message):
        image_fetch.fetch_verified(item, download_dir=str(downloads), retries=0)
    assert os.listdir(str(downloads)) == [], "a download that failed verification is removed"


def test_a_missing_file_names_the_url_and_status(endorser):
    item = entry_of(endorser.web_image("client", "1", b"x"))
    os.unlink(str(endorser.www / "client-1.qcow2"))
    with pytest.raises(CvmfsError, match=r"Failed to download image client 1 from http://127\.0\.0\.1:\d+/.*HTTP 404"):
        image_fetch.fetch_verified(item, retries=0)


# --------------------------------------------------------------------------- the module

def module_args(endorser, double, list_path, approved, **extra):
    args = {"cloud": double.cloud_config(), "endorser": ENDORSER, "image_list": list_path,
            "public_key": str(endorser.public_key), "approved": approved, "cvmfs_root": str(endorser.cvmfs)}
    args.update(extra)
    return args


def glance_state(double):
    return sorted((i["name"], i["status"]) for i in double.images.values() if i.get("endorser") == ENDORSER)


def test_image_sync_module(endorser, openstack_double, run_module):
    web = os.urandom(2 * image_list.CHUNK + 1)
    endorser.web_image("client", "2026.11", web)
    endorser.cvmfs_image("stratum1", "1.0", b"s1" * 3000)
    list_path = endorser.publish_list()
    approved = [{"name": "client"}, {"name": "stratum1", "version": "1.0"}, {"name": "squid"}]

    plan = run_module("image_sync", module_args(endorser, openstack_double, list_path, approved), check=True,
                      diff=True)
    assert not plan.failed, plan.get("msg")
    assert plan["changed"] is True
    assert [(a["action"], a["glance_name"], a["id"]) for a in plan["actions"]] == [
        ("upload", "client-2026.11", None), ("upload", "stratum1-1.0", None)]
    assert plan["not_endorsed"] == [{"name": "squid", "version": None}]
    assert glance_state(openstack_double) == [], "check mode uploads nothing"
    assert sorted(plan["diff"]["after"]["images"]) == ["client-2026.11 (new)", "stratum1-1.0 (new)"]

    done = run_module("image_sync", module_args(endorser, openstack_double, list_path, approved))
    assert not done.failed, done.get("msg")
    assert done["changed"] is True
    assert glance_state(openstack_double) == [("client-2026.11", "active"), ("stratum1-1.0", "active")]
    uploaded = dict((i["glance_name"], i["glance_id"]) for i in done["images"])
    assert openstack_double.image_data(uploaded["client-2026.11"]) == web
    assert done["list_sha256"] == hashlib.sha256(open(list_path, "rb").read()).hexdigest()
    assert "approved image squid is not in the image list" in str(done["warnings"])

    again = run_module("image_sync", module_args(endorser, openstack_double, list_path, approved))
    assert not again.failed, again.get("msg")
    assert (again["changed"], again["actions"]) == (False, [])

    # the endorser moves client to a new version; the site stops approving stratum1
    endorser.entries = [e for e in endorser.entries if e["name"] != "client"]
    endorser.web_image("client", "2026.12", b"n" * 1000)
    list_path = endorser.publish_list()
    moved = run_module("image_sync", module_args(endorser, openstack_double, list_path, [{"name": "client"}]))
    assert not moved.failed, moved.get("msg")
    assert [(a["action"], a["glance_name"]) for a in moved["actions"]] == [
        ("upload", "client-2026.12"), ("deactivate", "client-2026.11"), ("deactivate", "stratum1-1.0")]
    assert glance_state(openstack_double) == [("client-2026.11", "deactivated"), ("client-2026.12", "active"),
                                              ("stratum1-1.0", "deactivated")]
    assert openstack_double.unknown == []


@pytest.mark.parametrize("spoil, message", [
    ("tamper", "signature of the image list does not match"),
    ("unsign", "is not signed"),
    ("other_key", "signature of the image list does not match"),
])
def test_image_sync_refuses_bad_lists_and_leaves_glance_alone(endorser, openstack_double, run_module, spoil, message):
    endorser.web_image("client", "1", b"c" * 100)
    list_path = endorser.publish_list(sign=spoil != "unsign")
    if spoil == "tamper":
        with open(list_path, "ab") as handle:
            handle.write(b"# harmless-looking comment\n")
    elif spoil == "other_key":
        _private, other_public = image_signature.generate_key()
        endorser.public_key.write_bytes(other_public)
    result = run_module("image_sync", module_args(endorser, openstack_double, list_path, [{"name": "client"}]))
    assert result.failed and message in result["msg"], result
    assert openstack_double.images and glance_state(openstack_double) == []
    assert not [m for m, _p in openstack_double.requests if m != "GET" and not _p.startswith("/identity")]


def test_image_sync_refuses_a_replayed_older_list(endorser, openstack_double, run_module):
    """The endorser withdraws an image with a newer list; its older list, still signed and unexpired,
    is then offered again: refused, and Glance stays as the newer list left it."""
    endorser.web_image("client", "1", b"c" * 100)
    endorser.web_image("bad", "1", b"b" * 100)
    approved = [{"name": "client"}, {"name": "bad"}]
    old_list = endorser.publish_list(issued="2026-03-01T00:00:00Z")
    old_bytes = (open(old_list, "rb").read(), open(old_list + ".sig", "rb").read())
    assert not run_module("image_sync", module_args(endorser, openstack_double, old_list, approved)).failed
    withdrawn = endorser.publish_list(entries=[e for e in endorser.entries if e["name"] != "bad"],
                                      issued="2026-04-01T00:00:00Z")
    newer = run_module("image_sync", module_args(endorser, openstack_double, withdrawn, approved))
    assert not newer.failed, newer.get("msg")
    assert newer["issued"] == "2026-04-01T00:00:00+00:00"
    assert glance_state(openstack_double) == [("bad-1", "deactivated"), ("client-1", "active")]

    with open(old_list, "wb") as handle:
        handle.write(old_bytes[0])
    with open(old_list + ".sig", "wb") as handle:
        handle.write(old_bytes[1])
    replay = run_module("image_sync", module_args(endorser, openstack_double, old_list, approved))
    assert replay.failed
    assert ("issued at 2026-03-01T00:00:00+00:00, before the list last accepted here (issued at "
            "2026-04-01T00:00:00+00:00") in replay["msg"], replay["msg"]
    assert glance_state(openstack_double) == [("bad-1", "deactivated"), ("client-1", "active")]


@pytest.mark.parametrize("lifetime, max_age_days, message", [
    ({"expires": None}, None, "has no expires: it would stay valid forever"),
    ({"issued": None}, None, "has no issued"),
    ({"expires": None, "issued": "2026-01-01T00:00:00Z"}, 30, "is older than max_age (30 days"),
])
def test_image_sync_refuses_lists_without_a_limited_lifetime(endorser, openstack_double, run_module, lifetime,
                                                             max_age_days, message):
    endorser.web_image("client", "1", b"c" * 100)
    list_path = endorser.publish_list(**lifetime)
    extra = {"max_age_days": max_age_days} if max_age_days else {}
    result = run_module("image_sync", module_args(endorser, openstack_double, list_path, [{"name": "client"}], **extra))
    assert result.failed and message in result["msg"], result
    assert glance_state(openstack_double) == []


def test_image_sync_accepts_a_list_without_expiry_within_max_age(endorser, openstack_double, run_module):
    endorser.web_image("client", "1", b"c" * 100)
    issued = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) - datetime.timedelta(days=1)
    list_path = endorser.publish_list(expires=None, issued=issued.isoformat())
    result = run_module("image_sync", module_args(endorser, openstack_double, list_path, [{"name": "client"}],
                                                  max_age_days=7))
    assert not result.failed, result.get("msg")
    assert result["expires"] == (issued + datetime.timedelta(days=7)).isoformat()
    assert glance_state(openstack_double) == [("client-1", "active")]


# --------------------------------------------------------------------------- the playbook

@pytest.mark.slow
def test_distribute_images_playbook(endorser, openstack_double, tmp_path):
    data = os.urandom(70000)
    endorser.web_image("client", "2026.11", data)
    endorser.publish_list()
    extra = {"cvmfs_images_cloud": "double", "cvmfs_images_endorser": ENDORSER,
             "cvmfs_images_public_key": str(endorser.public_key),
             "cvmfs_images_list": endorser.url.rstrip("/") + "/images.yml",
             "cvmfs_images_approved": [{"name": "client", "version": "2026.11"}]}
    first = run_playbook("distribute_images.yml", openstack_double, tmp_path, extra)
    assert first["localhost"]["changed"] == 1
    assert glance_state(openstack_double) == [("client-2026.11", "active")]
    report = task_results(first, "Report what was done")[0]["results"]
    assert report[0]["msg"].startswith("upload client-2026.11 (missing in Glance)")

    second = run_playbook("distribute_images.yml", openstack_double, tmp_path, extra)
    assert second["localhost"]["changed"] == 0, "a second run changes nothing, staging included"
    assert glance_state(openstack_double) == [("client-2026.11", "active")]
