"""_cvmfs_hashes: content hashes and object paths, on the bytes of a real CernVM-FS 2.12 repository."""

import hashlib
import os

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _cvmfs_hashes as hashes
from tests.support.cvmfs_repo import (  # pylint: disable=unused-import
    pristine_repo,  # noqa: F401  (the pytest fixture: the committed fixture, untouched)
)
from tests.unit.plugins.module_utils.cvmfs_support import (  # pylint: disable=unused-import
    fails,
)


# --------------------------------------------------------------------------- hashes

@pytest.mark.parametrize("data", [b"", b"abc", b"a" * 1000, bytes(range(256)) * 3])
def test_digests_match_hashlib(data):
    assert hashes.hash_string(data, "sha1") == hashlib.sha1(data).hexdigest()
    assert hashes.hash_string(data, "shake128") == hashlib.shake_128(data).hexdigest(20) + "-shake128"
    assert hashes._ripemd160(data) == hashlib.new("ripemd160", data).hexdigest()


def test_ripemd160_fallback_reference_vectors():
    # RIPEMD-160 test vectors from the algorithm's authors
    assert hashes._ripemd160(b"") == "9c1185a5c5e9fc54612808977ee8f548b2258d31"
    assert hashes._ripemd160(b"abc") == "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc"
    assert hashes._ripemd160(b"1234567890" * 8) == "9b752e45573d4b39f4dbd3323cab82bf63326bfb"


@pytest.mark.parametrize("text,algorithm", [
    ("62c4f22a1e8b1bf0032a8c41f4cbf82eb03be57b", "sha1"),
    ("62C4F22A1E8B1BF0032A8C41F4CBF82EB03BE57B-rmd160", "rmd160"),
    ("62c4f22a1e8b1bf0032a8c41f4cbf82eb03be57b-shake128", "shake128"),
])
def test_hash_algorithm_from_suffix(text, algorithm):
    assert hashes.hash_algorithm(text) == algorithm


@pytest.mark.parametrize("text,reason", [
    ("62c4f22a", "malformed"),
    ("zz" * 20, "malformed"),
    ("62c4f22a1e8b1bf0032a8c41f4cbf82eb03be57b-sha3", "unsupported"),
])
def test_hash_algorithm_rejects(text, reason):
    with fails(reason):
        hashes.hash_algorithm(text)


def test_object_path_of_fixture_objects(pristine_repo):
    catalog = pristine_repo.manifest_lines["C"]
    path = hashes.object_path(catalog, "C")
    assert path == "data/%s/%sC" % (catalog[:2], catalog[2:])
    assert os.path.isfile(os.path.join(pristine_repo.stratum0, path))
    assert hashes.object_path(catalog + "-shake128", "X").endswith(catalog[2:] + "-shake128X")
