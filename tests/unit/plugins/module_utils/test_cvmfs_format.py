"""_cvmfs_format: the whole client-side check of a repository (inspect_repository), on the real
CernVM-FS 2.12 fixture repository read from the file system, on re-keyed copies and on damaged ones.
"now" is always passed explicitly: the fixture's whitelist has a fixed expiry."""

import datetime
import json
import os

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _cvmfs_format as fmt
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _cvmfs_time as cvtime
from tests.support.cvmfs_repo import (  # pylint: disable=unused-import
    cvmfs_repo,  # noqa: F401  (the pytest fixture: re-keyed copy)
    pristine_repo,  # noqa: F401  (the pytest fixture: the committed fixture, untouched)
    store_object,
    write,
)
from tests.unit.plugins.module_utils.cvmfs_support import (  # pylint: disable=unused-import
    DirectoryFetcher,
    fails,
    intruder,  # noqa: F401  (pytest fixture)
    master_keys,  # noqa: F401  (pytest fixture)
    pristine_keys,  # noqa: F401  (pytest fixture)
)


def test_status_json_garbage():
    with fails("malformed", "not JSON"):
        fmt.parse_status_json(b"{last_snapshot")
    with fails("malformed", "not an object"):
        fmt.parse_status_json(b"[1]")


# --------------------------------------------------------------------------- the whole check, on files

def test_inspect_stratum1_against_stratum0(pristine_repo, pristine_keys):
    fetcher = DirectoryFetcher()
    info = fmt.inspect_repository(pristine_repo.stratum1, fetcher, pristine_keys, pristine_repo.valid_time,
                                  stratum0_url=pristine_repo.stratum0, read_root_catalog=True)
    raw = pristine_repo.manifest_lines
    assert info["name"] == pristine_repo.name
    assert (info["revision"], info["root_catalog_hash"], info["ttl"]) == (
        pristine_repo.revision, raw["C"], int(raw["D"]))
    assert info["published_epoch"] == int(raw["T"])
    assert info["whitelist"]["expires"] == pristine_repo.whitelist_expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert info["certificate"]["fingerprint"] == pristine_repo.whitelist_lines[3]
    assert info["replicable"] is False
    snapshot = cvtime.parse_snapshot_time(pristine_repo.read(pristine_repo.stratum1, ".cvmfs_last_snapshot"))
    assert info["stratum1"]["last_snapshot_epoch"] == int(snapshot.timestamp())
    assert info["stratum1"]["snapshot_age_seconds"] == int((pristine_repo.valid_time - snapshot).total_seconds())
    assert info["replication"]["in_sync"] is True
    assert info["replication"]["revisions_behind"] == 0
    assert info["catalog"]["revision"] == pristine_repo.revision
    json.dumps(info)  # plain data only


def test_inspect_stratum0(pristine_repo, pristine_keys):
    info = fmt.inspect_repository(pristine_repo.stratum0, DirectoryFetcher(), pristine_keys, pristine_repo.valid_time,
                                  name=pristine_repo.name)
    assert info["replicable"] is True
    assert info["stratum1"] is None and info["replication"] is None and info["catalog"] is None


def test_inspect_stratum1_behind(cvmfs_repo, master_keys, tmp_path):
    """A stratum-0 one revision ahead: manifest re-signed with S+1 and T+600."""
    stratum0 = cvmfs_repo.copy("stratum0", tmp_path / "s0")
    raw = cvmfs_repo.manifest_lines
    write(os.path.join(stratum0, ".cvmfspublished"), cvmfs_repo.sign_manifest(
        cvmfs_repo.manifest_body(S=str(int(raw["S"]) + 1), T=str(int(raw["T"]) + 600))))
    info = fmt.inspect_repository(cvmfs_repo.stratum1, DirectoryFetcher(), master_keys, cvmfs_repo.valid_time,
                                  stratum0_url=stratum0)
    assert info["replication"]["revisions_behind"] == 1
    assert info["replication"]["lag_seconds"] == 600
    assert info["replication"]["in_sync"] is False


def test_inspect_stratum1_while_snapshotting(cvmfs_repo, master_keys, tmp_path):
    storage = cvmfs_repo.copy("stratum1", tmp_path / "s1")
    write(os.path.join(storage, ".cvmfs_is_snapshotting"), b"")
    os.unlink(os.path.join(storage, ".cvmfs_status.json"))
    info = fmt.inspect_repository(storage, DirectoryFetcher(), master_keys, cvmfs_repo.valid_time)
    assert info["stratum1"]["snapshot_in_progress"] is True
    assert info["stratum1"]["status"] is None


def test_inspect_stratum1_with_empty_last_snapshot(cvmfs_repo, master_keys, tmp_path):
    storage = cvmfs_repo.copy("stratum1", tmp_path / "s1")
    write(os.path.join(storage, ".cvmfs_last_snapshot"), b"")
    with fails("malformed", "cvmfs_last_snapshot is empty"):
        fmt.inspect_repository(storage, DirectoryFetcher(), master_keys, cvmfs_repo.valid_time)


def test_inspect_wrong_repository_name(cvmfs_repo, master_keys):
    with fails("name_mismatch", "expected repository is other.example.org"):
        fmt.inspect_repository(cvmfs_repo.stratum0, DirectoryFetcher(), master_keys, cvmfs_repo.valid_time,
                               name="other.example.org")


def test_inspect_whitelist_for_another_repository(cvmfs_repo, master_keys, tmp_path):
    storage = cvmfs_repo.copy("stratum0", tmp_path / "s0")
    write(os.path.join(storage, ".cvmfswhitelist"),
          cvmfs_repo.sign_whitelist(cvmfs_repo.whitelist_body(name="other.example.org")))
    with fails("name_mismatch", "is for repository other.example.org"):
        fmt.inspect_repository(storage, DirectoryFetcher(), master_keys, cvmfs_repo.valid_time)


def test_inspect_certificate_not_in_whitelist(cvmfs_repo, master_keys, intruder, tmp_path):
    """Someone with another repository key signs a manifest and uploads their certificate."""
    storage = cvmfs_repo.copy("stratum0", tmp_path / "s0")
    key, pem = intruder
    x_hash = store_object(storage, pem, "X")
    write(os.path.join(storage, ".cvmfspublished"), cvmfs_repo.sign_manifest(
        cvmfs_repo.manifest_body(X=x_hash), key=key))
    with fails("not_in_whitelist", "re-sign the whitelist"):
        fmt.inspect_repository(storage, DirectoryFetcher(), master_keys, cvmfs_repo.valid_time)


def test_inspect_missing_certificate_line(cvmfs_repo, master_keys, tmp_path):
    storage = cvmfs_repo.copy("stratum0", tmp_path / "s0")
    write(os.path.join(storage, ".cvmfspublished"), cvmfs_repo.sign_manifest(cvmfs_repo.manifest_body(X=None)))
    with fails("malformed", "has no X line"):
        fmt.inspect_repository(storage, DirectoryFetcher(), master_keys, cvmfs_repo.valid_time)


def test_inspect_expired(cvmfs_repo, master_keys):
    with fails("whitelist_expired") as info:
        fmt.inspect_repository(cvmfs_repo.stratum0, DirectoryFetcher(), master_keys,
                               cvmfs_repo.whitelist_expires + datetime.timedelta(days=1))
    assert info.value.extra["whitelist_expires"] == cvmfs_repo.whitelist_expires.strftime("%Y-%m-%dT%H:%M:%SZ")
