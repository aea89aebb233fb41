"""_cvmfs_catalog: the root catalog of a real CernVM-FS 2.12 repository, and damaged copies of it."""

import hashlib
import zlib

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _cvmfs_catalog as cvmfs_catalog
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _cvmfs_hashes as hashes
from tests.support.cvmfs_repo import (  # pylint: disable=unused-import
    cvmfs_repo,  # noqa: F401  (the pytest fixture: re-keyed copy)
    pristine_repo,  # noqa: F401  (the pytest fixture: the committed fixture, untouched)
)
from tests.unit.plugins.module_utils.cvmfs_support import (  # pylint: disable=unused-import
    fails,
)


def test_root_catalog_against_expected_tree(pristine_repo):
    c_hash = pristine_repo.manifest_lines["C"]
    catalog = cvmfs_catalog.read_catalog(pristine_repo.read(pristine_repo.stratum0, hashes.object_path(c_hash, "C")), c_hash)
    tree = pristine_repo.expected["tree"]
    nested = sum(1 for entry in tree if entry["path"].endswith("/.cvmfscatalog"))
    assert catalog["revision"] == pristine_repo.revision
    assert catalog["ttl"] == int(pristine_repo.manifest_lines["D"])
    assert catalog["nested_catalogs"] == nested
    stats = catalog["statistics"]
    assert stats["regular"] == sum(1 for entry in tree if entry["type"] == "file")
    assert stats["symlink"] == sum(1 for entry in tree if entry["type"] == "symlink")
    assert stats["file_size"] == sum(entry.get("size", 0) for entry in tree if entry["type"] == "file")
    # the root directory and each nested catalog root (counted in parent and child) come on top
    assert stats["dir"] == sum(1 for entry in tree if entry["type"] == "dir") + 1 + nested


def test_root_catalog_damaged(cvmfs_repo):
    c_hash = cvmfs_repo.manifest_lines["C"]
    data = cvmfs_repo.read(cvmfs_repo.stratum0, hashes.object_path(c_hash, "C"))
    with fails("hash_mismatch"):
        cvmfs_catalog.read_catalog(data[:-100], c_hash)
    cut = data[:-100]
    with fails("malformed", "truncated: its zlib stream does not end"):
        cvmfs_catalog.read_catalog(cut, hashlib.sha1(cut).hexdigest())
    not_sqlite = zlib.compress(b"not a database" * 100)
    with fails("malformed", "is not a CernVM-FS catalog"):
        cvmfs_catalog.read_catalog(not_sqlite, hashlib.sha1(not_sqlite).hexdigest())
