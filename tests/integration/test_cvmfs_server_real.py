"""The cvmfs_server runner and the repository, transaction and replica modules against REAL CernVM-FS.

Runs only where the real binaries are installed (``cvmfs_server`` in PATH, with Apache, OverlayFS and
the cvmfs client as ``cvmfs_server mkfs`` requires) and the tests run as root; otherwise every test
here is skipped with one message. Nothing is installed or built by these tests. Each test creates
repositories with unique names under the real /etc/cvmfs and removes them again.
"""

import io
import os
import shutil
import tarfile
import uuid

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _cvmfs_server as srv

CVMFS_SERVER = shutil.which("cvmfs_server")
REASON = None
if CVMFS_SERVER is None:
    REASON = "real CernVM-FS tests skipped: cvmfs_server is not installed on this machine"
elif os.geteuid() != 0:
    REASON = "real CernVM-FS tests skipped: they need root (cvmfs_server mkfs/rmfs)"

if REASON is not None:
    pytest.skip(REASON, allow_module_level=True)

pytestmark = pytest.mark.cvmfs


def unique_name():
    return "sharedsw-%s.test.invalid" % uuid.uuid4().hex[:8]


@pytest.fixture
def cleanup():
    names = []
    yield names
    runner = srv.CvmfsServer()
    for name in reversed(names):
        if os.path.isdir("/etc/cvmfs/repositories.d/" + name):
            if os.path.exists("/var/spool/cvmfs/%s/in_transaction.lock" % name):
                runner.run("abort", name=name, check=False)
            runner.run("rmfs", name=name, check=False)


@pytest.fixture
def repo(run_module, cleanup):
    name = unique_name()
    cleanup.append(name)
    result = run_module("repository", {"name": name, "owner": "root"})
    assert not result.failed, result
    return name


def test_runner_exit_codes_match_the_facts(repo):
    runner = srv.CvmfsServer()
    with pytest.raises(srv.RepositoryExists):
        runner.run("mkfs", name=repo, owner="root")
    with pytest.raises(srv.NotInTransaction):
        runner.run("abort", name=repo)
    with pytest.raises(srv.NotInTransaction):
        runner.run("publish", name=repo)
    runner.run("transaction", name=repo)
    with pytest.raises(srv.AlreadyInTransaction) as info:
        runner.run("transaction", name=repo)
    assert info.value.extra["rc"] == 17
    runner.run("abort", name=repo)
    with pytest.raises(srv.RepositoryMissing):
        runner.run("rmfs", name=unique_name())
    with pytest.raises(srv.RepositoryMissing):
        runner.run("transaction", name=unique_name())


def test_repository_idempotent_with_server_options(run_module, repo):
    args = {"name": repo, "owner": "root", "server_options": {"CVMFS_REPOSITORY_TTL": "120"}}
    check = run_module("repository", args, check=True, diff=True)
    assert check["changed"] and "cmd" not in check
    first = run_module("repository", args)
    assert first["changed"] and first["repository"]["config"]["CVMFS_REPOSITORY_TTL"] == "120"
    assert first["public_key"].startswith("-----BEGIN PUBLIC KEY-----") and first["whitelist_expiry"]
    assert run_module("repository", args)["changed"] is False


def test_transaction_cycle(run_module, repo):
    opened = run_module("transaction", {"name": repo, "state": "opened"})
    assert opened["changed"] and opened["in_transaction"]
    assert run_module("transaction", {"name": repo, "state": "opened"})["changed"] is False
    with open("/cvmfs/%s/hello.txt" % repo, "w") as handle:
        handle.write("hello\n")
    published = run_module("transaction", {"name": repo, "state": "published", "tag": "first",
                                           "only_if_changed": True})
    assert published["published"] and published["changes"] and published["revision"] >= 2
    run_module("transaction", {"name": repo, "state": "opened"})
    empty = run_module("transaction", {"name": repo, "state": "published", "only_if_changed": True})
    assert empty["aborted"] and not empty["published"]
    run_module("transaction", {"name": repo, "state": "opened"})
    in_use = run_module("transaction", {"name": repo, "state": "published", "tag": "first"})
    assert in_use.failed and "tag 'first' already exists" in in_use["msg"]
    aborted = run_module("transaction", {"name": repo, "state": "aborted"})
    assert aborted["aborted"] and run_module("transaction", {"name": repo, "state": "aborted"})["changed"] is False


def test_ingest(run_module, repo, tmp_path):
    tarball = tmp_path / "t.tar.gz"
    with tarfile.open(str(tarball), "w:gz") as archive:
        info = tarfile.TarInfo("bin/tool")
        info.size = 3
        archive.addfile(info, io.BytesIO(b"hi\n"))
    result = run_module("transaction", {"name": repo, "state": "published",
                                        "ingest": {"tarball": str(tarball), "base_dir": "app/1"}})
    assert result["published"] and os.path.exists("/cvmfs/%s/app/1/bin/tool" % repo)


def test_replica_snapshot(run_module, repo, cleanup):
    alias = repo.replace("sharedsw-", "sharedsw-s1-")
    cleanup.append(alias)
    args = {"name": alias, "stratum0_url": "http://localhost/cvmfs/" + repo,
            "public_key": ["/etc/cvmfs/keys/%s.pub" % repo]}
    created = run_module("replica", args)
    assert created["changed"] and created["initial"] and created["revision_after"] >= 1
    assert run_module("replica", args)["changed"] is False
    run_module("transaction", {"name": repo, "state": "opened"})
    run_module("transaction", {"name": repo, "state": "published"})
    snap = run_module("replica", {"name": alias, "state": "snapshot"})
    assert snap["changed"] and snap["revision_after"] == snap["revision_before"] + 1
    assert run_module("replica", {"name": alias, "state": "absent"})["changed"]


def test_repository_absent(run_module, repo):
    result = run_module("repository", {"name": repo, "state": "absent"})
    assert result["changed"] and result["repository"] is None
    assert run_module("repository", {"name": repo, "state": "absent"})["changed"] is False
