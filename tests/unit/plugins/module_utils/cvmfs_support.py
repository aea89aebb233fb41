"""Helpers and fixtures shared by the tests of the CernVM-FS format files (_cvmfs_*)."""

import datetime
import os

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _cvmfs_signed as signed
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from tests.support.cvmfs_repo import new_signing_identity

UTC = datetime.timezone.utc


def fails(reason, match=None):
    """Context manager: the block raises CvmfsError with this ``reason`` (and message regex)."""
    class _Check:
        def __enter__(self):
            self.raises = pytest.raises(CvmfsError, match=match)
            self.info = self.raises.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self.raises.__exit__(*exc)
            assert self.info.value.extra.get("reason") == reason, self.info.value.message
            return handled

    return _Check()


class DirectoryFetcher:
    """Reads "URLs" from the local file system: ``<dir>/<name>`` (no HTTP; that is tested with apache)."""

    def __init__(self):
        self.requests = []

    def get(self, url, max_bytes=signed.MAX_SMALL_FILE, missing_ok=False):
        self.requests.append(url)
        if not os.path.isfile(url):
            if missing_ok:
                return None
            raise CvmfsError("GET %s failed: HTTP 404" % url, reason="http_error")
        with open(url, "rb") as handle:
            return handle.read()


@pytest.fixture(scope="module")
def master_keys(cvmfs_repo):
    """The re-keyed copy's master public key."""
    return signed.load_public_keys([("fixture pub", cvmfs_repo.public_key_text())])


@pytest.fixture(scope="module")
def pristine_keys(pristine_repo):
    """The committed fixture's master public key, as real CernVM-FS made it."""
    return signed.load_public_keys([("fixture pub", pristine_repo.public_key_text())])


@pytest.fixture(scope="module")
def intruder():
    """A foreign RSA key and certificate: not the repository's."""
    return new_signing_identity()
