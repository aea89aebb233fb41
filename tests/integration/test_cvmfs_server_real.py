"""The cvmfs_server runner and the repository, transaction and replica modules against REAL CernVM-FS.

Everything runs on the session's lab host ``pt-cvmfs`` (tests/support/cvmfs_lab_host.py): real
CernVM-FS 2.12 from the package mirror, Apache, OverlayFS, systemd as PID 1. The modules run there
through ``ansible``, the runner (``_cvmfs_server.CvmfsServer``) through the host's own Python.
Skipped with one line only when no CernVM-FS package source exists. Each test creates repositories
with unique names and removes them again.
"""

import uuid

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _cvmfs_server_errors as errs
from tests.support.cvmfs_lab_host import skip_module_without_packages
from tests.support.tarballs import tarball

pytestmark = pytest.mark.cvmfs
skip_module_without_packages()


def unique_name():
    return "sharedsw-%s.test.invalid" % uuid.uuid4().hex[:8]


@pytest.fixture
def host(cvmfs_lab_host):
    return cvmfs_lab_host


@pytest.fixture
def cleanup(host):
    names = []
    yield names
    for name in reversed(names):
        host.sh('rm -f /etc/cvmfs/keys/"$1".* /tmp/"$1".*; d=/etc/cvmfs/repositories.d/$1; [ -d "$d" ] || exit 0\n'
                'cd / && [ ! -e "/var/spool/cvmfs/$1/in_transaction.lock" ] || cvmfs_server abort -f "$1" </dev/null\n'
                'cvmfs_server rmfs -f "$1" </dev/null', name)


@pytest.fixture
def repo(host, cleanup):
    name = unique_name()
    cleanup.append(name)
    result = host.run_module("repository", {"name": name, "owner": "root"})
    assert not result.failed, result
    return name


def test_runner_imports_without_ansible(host):
    probe = host.python("import importlib.util, sharedsw_cvmfs._cvmfs_server as s\n"
                        "print(importlib.util.find_spec('ansible') is None, s.find_binary())")
    assert probe.rc == 0, probe
    assert probe.stdout.split() == ["True", "/usr/bin/cvmfs_server"]


def test_runner_exit_codes_match_the_facts(host, repo):
    runner = host.runner()
    with pytest.raises(errs.RepositoryExists):
        runner.run("mkfs", name=repo, owner="root")
    with pytest.raises(errs.NotInTransaction):
        runner.run("abort", name=repo)
    with pytest.raises(errs.NotInTransaction):
        runner.run("publish", name=repo)
    runner.run("transaction", name=repo)
    with pytest.raises(errs.AlreadyInTransaction) as info:
        runner.run("transaction", name=repo)
    assert info.value.extra["rc"] == 17
    runner.run("abort", name=repo)
    with pytest.raises(errs.RepositoryMissing):
        runner.run("rmfs", name=unique_name())
    with pytest.raises(errs.RepositoryMissing):
        runner.run("transaction", name=unique_name())


def test_repository_idempotent_with_server_options(host, repo):
    args = {"name": repo, "owner": "root", "server_options": {"CVMFS_REPOSITORY_TTL": "120"}}
    check = host.run_module("repository", args, check=True, diff=True)
    assert check["changed"] and "cmd" not in check
    first = host.run_module("repository", args)
    assert first["changed"] and first["repository"]["config"]["CVMFS_REPOSITORY_TTL"] == "120"
    assert first["public_key"].startswith("-----BEGIN PUBLIC KEY-----") and first["whitelist_expiry"]
    assert host.run_module("repository", args)["changed"] is False


def test_transaction_cycle(host, repo):
    opened = host.run_module("transaction", {"name": repo, "state": "opened"})
    assert opened["changed"] and opened["in_transaction"]
    assert host.run_module("transaction", {"name": repo, "state": "opened"})["changed"] is False
    host.write("/cvmfs/%s/hello.txt" % repo, "hello\n")
    published = host.run_module("transaction", {"name": repo, "state": "published", "tag": "first",
                                                "only_if_changed": True})
    assert published["published"] and published["changes"] and published["revision"] >= 2
    host.run_module("transaction", {"name": repo, "state": "opened"})
    empty = host.run_module("transaction", {"name": repo, "state": "published", "only_if_changed": True})
    assert empty["aborted"] and not empty["published"]
    host.run_module("transaction", {"name": repo, "state": "opened"})
    in_use = host.run_module("transaction", {"name": repo, "state": "published", "tag": "first"})
    assert in_use.failed and "tag 'first' already exists" in in_use["msg"]
    aborted = host.run_module("transaction", {"name": repo, "state": "aborted"})
    assert aborted["aborted"] and host.run_module("transaction", {"name": repo, "state": "aborted"})["changed"] is False


def test_ingest(host, repo):
    host.write("/tmp/%s.tar" % repo, tarball({"bin/tool": b"hi\n"}))
    result = host.run_module("transaction", {"name": repo, "state": "published",
                                             "ingest": {"tarball": "/tmp/%s.tar" % repo, "base_dir": "app/1"}})
    assert result["published"] and host.read("/cvmfs/%s/app/1/bin/tool" % repo) == b"hi\n"


def test_ingest_compressed_tarball_refused(host, repo):
    gz = "/tmp/%s.tar.gz" % repo
    host.write(gz, tarball({"bin/tool": b"hi\n"}, "gz"))
    # what cvmfs_server itself does with it: fails after opening a transaction of its own
    raw = host.cvmfs_server("ingest", "-t", gz, "-b", "app/gz", repo)
    assert raw.rc == 1 and "Impossible to open the archive: Unrecognized archive format" in raw.stderr
    result = host.run_module("transaction", {"name": repo, "state": "published",
                                             "ingest": {"tarball": gz, "base_dir": "app/gz"}})
    assert result.failed and "is gzip-compressed" in result["msg"] and "cmd" not in result


def test_ingest_failure_names_the_cause(host, repo):
    # on Debian the first stderr line of a failed ingest is dash complaining about '[[': not the cause
    host.write("/tmp/%s.tar" % repo, b"this is not a tar archive\n" * 40)
    result = host.run_module("transaction", {"name": repo, "state": "published",
                                             "ingest": {"tarball": "/tmp/%s.tar" % repo, "base_dir": "app"}})
    assert result.failed and result["cmd"][1] == "ingest"
    assert "failed (rc=1): Impossible to open the archive: Unrecognized archive format" in result["msg"]


def test_name_without_dot_refused(host, cleanup):
    # cvmfs_server mkfs would create "<name>." (tests/integration/test_cvmfs_double_contract.py)
    name = unique_name().split(".", maxsplit=1)[0]
    cleanup.append(name + ".")
    result = host.run_module("repository", {"name": name, "owner": "root"})
    assert result.failed and "not a fully qualified repository name" in result["msg"]
    assert not host.exists("/etc/cvmfs/repositories.d/%s." % name)


def test_incomplete_key_set_refused(host, repo, cleanup):
    # mkfs would import the keys from /etc/cvmfs/keys and stop at the missing masterkey, half-way
    name = unique_name()
    cleanup.append(name)
    host.sh('cp /etc/cvmfs/keys/"$1".pub /etc/cvmfs/keys/"$2".pub', repo, name)
    result = host.run_module("repository", {"name": name, "owner": "root"})
    assert result.failed and "missing: {0}.masterkey, {0}.crt, {0}.key".format(name) in result["msg"]
    assert not host.exists("/etc/cvmfs/repositories.d/" + name)


@pytest.mark.parametrize("break_it,repair,message", [
    ("mv /etc/cvmfs/server.local /etc/cvmfs/server.local.away",
     "mv /etc/cvmfs/server.local.away /etc/cvmfs/server.local", "CVMFS_GEO_ACCOUNT_ID not set"),
    ("a2dismod -q wsgi && systemctl reload apache2", "a2enmod -q wsgi && systemctl reload apache2",
     "libapache2-mod-wsgi-py3"),
], ids=["no-geoip-settings", "no-wsgi"])
def test_replica_host_preconditions(host, repo, cleanup, break_it, repair, message):
    alias = repo.replace("sharedsw-", "sharedsw-s1-")
    cleanup.append(alias)
    host.sh(break_it)
    try:
        result = host.run_module("replica", {"name": alias, "stratum0_url": "http://localhost/cvmfs/" + repo,
                                             "public_key": ["/etc/cvmfs/keys/%s.pub" % repo]})
    finally:
        host.sh(repair)
    assert result.failed and result["cmd"][1] == "add-replica" and message in result["msg"], result
    assert not host.exists("/etc/cvmfs/repositories.d/" + alias)


def test_replica_snapshot(host, repo, cleanup):
    alias = repo.replace("sharedsw-", "sharedsw-s1-")
    cleanup.append(alias)
    args = {"name": alias, "stratum0_url": "http://localhost/cvmfs/" + repo,
            "public_key": ["/etc/cvmfs/keys/%s.pub" % repo]}
    created = host.run_module("replica", args)
    assert created["changed"] and created["initial"] and created["revision_after"] >= 1
    assert host.run_module("replica", args)["changed"] is False
    host.run_module("transaction", {"name": repo, "state": "opened"})
    host.run_module("transaction", {"name": repo, "state": "published"})
    snap = host.run_module("replica", {"name": alias, "state": "snapshot"})
    assert snap["changed"] and snap["revision_after"] == snap["revision_before"] + 1
    assert host.run_module("replica", {"name": alias, "state": "absent"})["changed"]


def test_repository_absent(host, repo):
    result = host.run_module("repository", {"name": repo, "state": "absent"})
    assert result["changed"] and result["repository"] is None
    assert host.run_module("repository", {"name": repo, "state": "absent"})["changed"] is False
