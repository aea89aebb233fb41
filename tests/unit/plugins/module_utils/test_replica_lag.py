"""_replica_lag (the program of the stratum-1's lag-check timer) on manifests of the real fixture
repository. Manifests at other revisions are the fixture's manifest with its S/T/C lines changed
and signed again AT TEST TIME with the test key of a re-keyed copy (the lag check reads structure
only). The same program over HTTP against apache: tests/integration/roles/test_stratum1_role.py."""

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _replica_lag as lag
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._cvmfs_signed import parse_manifest
from tests.support.cvmfs_repo import (  # pylint: disable=unused-import
    cvmfs_repo,  # noqa: F401  (the pytest fixture: re-keyed copy)
    pristine_repo,  # noqa: F401  (the pytest fixture: the committed fixture, untouched)
)

S0, S1 = "http://s0.test/cvmfs/fixture.cvmfs.test", "http://127.0.0.1/cvmfs/fixture.cvmfs.test"


def manifest(repo, **changes):
    """The fixture's manifest with some lines changed (``S="5"``), signed again with the test key."""
    return repo.sign_manifest(repo.manifest_body(**changes))


class Fetcher:
    """URL -> bytes, or an exception to raise (no HTTP here)."""

    def __init__(self, files):
        self.files = files

    def get(self, url):
        value = self.files[url]
        if isinstance(value, Exception):
            raise value
        return value


def run(repo, replica, stratum0, now=None, max_revisions=2, max_seconds=3600):
    published = int(repo.manifest_lines["T"])
    fetcher = Fetcher({S1 + "/.cvmfspublished": replica, S0 + "/.cvmfspublished": stratum0})
    return lag.check(repo.name, S1, S0, max_revisions, max_seconds,
                     now=published + 60 if now is None else now, fetcher=fetcher)


def test_the_real_replica_is_in_sync(pristine_repo):
    status, message = run(pristine_repo, pristine_repo.read(pristine_repo.stratum1, ".cvmfspublished"),
                          pristine_repo.read(pristine_repo.stratum0, ".cvmfspublished"))
    assert status == lag.EXIT_OK
    assert message == "replica fixture.cvmfs.test is in sync with its stratum-0 at revision 3"


def test_behind_within_the_limits(cvmfs_repo):
    t = int(cvmfs_repo.manifest_lines["T"])
    status, message = run(cvmfs_repo, manifest(cvmfs_repo), manifest(cvmfs_repo, S="5", T=str(t + 600)), now=t + 1200)
    assert status == lag.EXIT_OK, message
    assert "is 2 revisions behind its stratum-0 (replica revision 3, stratum-0 revision 5" in message
    assert "600 s ago" in message and "within the limits 2 revisions, 3600 s" in message


def test_too_many_revisions_behind(cvmfs_repo):
    t = int(cvmfs_repo.manifest_lines["T"])
    status, message = run(cvmfs_repo, manifest(cvmfs_repo), manifest(cvmfs_repo, S="6", T=str(t + 600)), now=t + 700)
    assert status == lag.EXIT_LAGGING
    assert "is 3 revisions behind" in message and "beyond the limits 2 revisions" in message
    assert "snapshots are not keeping up" in message and "\n" not in message


def test_one_revision_behind_for_too_long(cvmfs_repo):
    t = int(cvmfs_repo.manifest_lines["T"])
    status, message = run(cvmfs_repo, manifest(cvmfs_repo), manifest(cvmfs_repo, S="4", T=str(t + 10)),
                          now=t + 10 + 3601)
    assert status == lag.EXIT_LAGGING
    assert "is 1 revision behind" in message and "3601 s ago" in message
    # the same one revision, one second earlier, is still fine: the limit is "more than"
    status, _message = run(cvmfs_repo, manifest(cvmfs_repo), manifest(cvmfs_repo, S="4", T=str(t + 10)),
                           now=t + 10 + 3600)
    assert status == lag.EXIT_OK


def test_replica_ahead_of_the_stratum0(cvmfs_repo):
    status, message = run(cvmfs_repo, manifest(cvmfs_repo, S="9"), manifest(cvmfs_repo))
    assert status == lag.EXIT_LAGGING
    assert "AHEAD of its stratum-0 (replica revision 9, stratum-0 revision 3)" in message


def test_same_revision_other_root_catalog(cvmfs_repo):
    status, message = run(cvmfs_repo, manifest(cvmfs_repo, C="0" * 40), manifest(cvmfs_repo))
    assert status == lag.EXIT_LAGGING
    assert "different root catalogs" in message


def test_garbage_manifest(cvmfs_repo):
    status, message = run(cvmfs_repo, b"<html>Not a repository</html>\n", manifest(cvmfs_repo))
    assert status == lag.EXIT_UNREADABLE
    assert message.startswith("replication check of fixture.cvmfs.test failed, cannot read the replica manifest: ")
    assert "not a signed CernVM-FS file" in message


def test_stratum0_unreachable(cvmfs_repo):
    error = CvmfsError("GET %s/.cvmfspublished failed: [Errno 111] Connection refused" % S0, reason="http_error")
    status, message = run(cvmfs_repo, manifest(cvmfs_repo), error)
    assert status == lag.EXIT_UNREADABLE
    assert "cannot read the stratum-0 manifest: GET %s/.cvmfspublished failed" % S0 in message


def test_manifest_of_another_repository(cvmfs_repo):
    status, message = run(cvmfs_repo, manifest(cvmfs_repo), manifest(cvmfs_repo, N="other.cvmfs.test"))
    assert status == lag.EXIT_UNREADABLE
    assert "stratum-0 manifest names repository other.cvmfs.test, not fixture.cvmfs.test" in message


def test_compare_without_timestamp_uses_revisions_only(cvmfs_repo):
    replica = parse_manifest(manifest(cvmfs_repo))
    stratum0 = parse_manifest(manifest(cvmfs_repo, S="4", T=None))
    status, message = lag.compare(cvmfs_repo.name, replica, stratum0, 2, 1, now=10 ** 10)
    assert status == lag.EXIT_OK and "published" not in message
