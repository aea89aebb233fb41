"""sharedsw.cvmfs.transaction against the TEST DOUBLE of cvmfs_server (mimics the facts file; not CernVM-FS)."""

import fcntl
import io
import json
import os
import tarfile

import pytest

from tests.cvmfs_double import warning_texts

NAME = "sw.example.org"


@pytest.fixture
def repo(host):
    host.cvmfs("mkfs", "-o", "root", NAME)
    return host


@pytest.fixture
def gateway_repo(host, storage_factory, tmp_path):
    keys = tmp_path / "gw-keys"
    keys.mkdir()
    for kind in ("pub", "crt", "gw"):
        (keys / ("%s.%s" % (NAME, kind))).write_text("x\n")
    host.cvmfs("mkfs", "-w", storage_factory(NAME, revision=10), "-u",
               "gw,%s/%s/data/txn,http://gw:4929/api/v1" % (host.srv, NAME), "-k", str(keys), "-o", "root", NAME)
    os.makedirs(os.path.join(host.spool, NAME, "rdonly", "software", "team-a"))
    return host


def txn(state, **kwargs):
    return dict({"name": NAME, "state": state}, **kwargs)


def change(host, relpath="file.txt", text="data\n"):
    path = os.path.join(host.spool, NAME, "scratch", "current", relpath)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)


def revision(host):
    return host.revision(os.path.join(host.srv, NAME))


def subcommands(host):
    return [a[0] for a in host.argvs()]


# ---------------------------------------------------------------- transitions

def test_open_publish_cycle_and_idempotence(repo):
    opened = repo.run("transaction", txn("opened"), diff=True)
    assert opened["changed"] and opened["in_transaction"] and opened["cmd"][1:] == ["transaction", NAME]
    assert opened["diff"] == {"before_header": "repository " + NAME, "after_header": "repository " + NAME,
                              "before": "in_transaction: false\n", "after": "in_transaction: true\n"}
    assert repo.in_transaction(NAME)
    again = repo.run("transaction", txn("opened"))
    assert again["changed"] is False and again["in_transaction"] and "cmd" not in again
    before = revision(repo)
    change(repo)
    published = repo.run("transaction", txn("published", tag="v1", tag_description="first release"))
    assert published["changed"] and published["published"] and not published["in_transaction"]
    assert published["cmd"][1:] == ["publish", "-f", "-a", "v1", "-m", "first release", NAME]
    assert published["revision"] == before + 1 and published["tag"] == "v1"
    assert os.path.exists(os.path.join(repo.spool, NAME, "rdonly", "file.txt"))
    nothing = repo.run("transaction", txn("published", tag="v1"))
    assert nothing["changed"] is False and nothing["published"] is False and "cmd" not in nothing
    assert revision(repo) == before + 1


def test_publish_reports_auto_tag(repo):
    repo.cvmfs("transaction", NAME)
    result = repo.run("transaction", txn("published"))
    assert result["tag"].startswith("generic-") and result["cmd"][1:] == ["publish", "-f", NAME]


def test_abort_and_idempotence(repo):
    repo.cvmfs("transaction", NAME)
    change(repo)
    before = revision(repo)
    aborted = repo.run("transaction", txn("aborted"), diff=True)
    assert aborted["changed"] and aborted["aborted"] and aborted["cmd"][1:] == ["abort", "-f", NAME]
    assert not aborted["in_transaction"] and aborted["diff"]["after"] == "in_transaction: false\n"
    assert not os.listdir(os.path.join(repo.spool, NAME, "scratch", "current"))
    assert revision(repo) == before
    again = repo.run("transaction", txn("aborted"))
    assert again["changed"] is False and again["aborted"] is False


def test_only_if_changed_publishes_changes(repo):
    repo.cvmfs("transaction", NAME)
    change(repo)
    result = repo.run("transaction", txn("published", only_if_changed=True))
    assert result["changes"] is True and result["published"] and result["cmd"][1] == "publish"


def test_only_if_changed_aborts_unchanged(repo):
    repo.cvmfs("transaction", NAME)
    before = revision(repo)
    result = repo.run("transaction", txn("published", only_if_changed=True), diff=True)
    assert result["changed"] and result["changes"] is False
    assert (result["published"], result["aborted"], result["in_transaction"]) == (False, True, False)
    assert result["cmd"][1:] == ["abort", "-f", NAME] and revision(repo) == before


def test_only_if_changed_falls_back_to_diff_worktree(repo):
    repo.cvmfs("transaction", NAME)
    os.rmdir(os.path.join(repo.spool, NAME, "scratch", "current"))
    result = repo.run("transaction", txn("published", only_if_changed=True))
    assert ["diff", "--worktree", NAME] in repo.argvs()
    assert result["changes"] is False and result["aborted"]


def test_check_mode_runs_no_mutating_command(repo):
    calls_before = len(repo.argvs())
    opened = repo.run("transaction", txn("opened"), check=True, diff=True)
    assert opened["changed"] and opened["in_transaction"] and not repo.in_transaction(NAME)
    assert opened["diff"]["after"] == "in_transaction: true\n"
    repo.cvmfs("transaction", NAME)
    change(repo)
    for state in ("published", "aborted"):
        result = repo.run("transaction", txn(state), check=True)
        assert result["changed"] and result["in_transaction"] is False and repo.in_transaction(NAME)
    unchanged = repo.run("transaction", txn("published", only_if_changed=True), check=True)
    assert unchanged["changes"] is True and unchanged["published"]
    assert subcommands(repo)[calls_before:] == ["transaction"]


def test_check_mode_only_if_changed_predicts_abort(repo):
    repo.cvmfs("transaction", NAME)
    result = repo.run("transaction", txn("published", only_if_changed=True), check=True)
    assert result["changed"] and result["aborted"] and not result["published"] and repo.in_transaction(NAME)


def test_ingest_tarball(repo, tmp_path):
    tarball = tmp_path / "release.tar"  # uncompressed: what cvmfs_server ingest reads
    with tarfile.open(str(tarball), "w") as archive:
        data = b"#!/bin/sh\necho hi\n"
        info = tarfile.TarInfo("bin/tool")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    before = revision(repo)
    result = repo.run("transaction", txn("published", ingest={"tarball": str(tarball), "base_dir": "app/1.0",
                                                              "catalog": True}))
    assert result["changed"] and result["published"] and result["revision"] == before + 1
    assert result["cmd"][1:] == ["ingest", "-t", str(tarball), "-b", "app/1.0", "-c", NAME]
    rdonly = os.path.join(repo.spool, NAME, "rdonly", "app", "1.0")
    assert os.path.exists(os.path.join(rdonly, "bin", "tool")) and os.path.exists(os.path.join(rdonly, ".cvmfscatalog"))


def test_ingest_delete_and_ownership_flags(repo):
    result = repo.run("transaction", txn("published", ingest={"delete": ["/new_repository"], "user": "root",
                                                              "group": "root"}))
    assert result["cmd"][1:] == ["ingest", "-d", "/new_repository", "-u", "root", "-g", "root", NAME]
    assert not os.path.exists(os.path.join(repo.spool, NAME, "rdonly", "new_repository"))


def test_ingest_check_mode(repo, tmp_path):
    tarball = tmp_path / "t.tar"
    with tarfile.open(str(tarball), "w"):
        pass
    before = revision(repo)
    result = repo.run("transaction", txn("published", ingest={"tarball": str(tarball), "base_dir": "x"}), check=True)
    assert result["changed"] and revision(repo) == before and "ingest" not in subcommands(repo)


def test_gateway_lease_path(gateway_repo):
    result = gateway_repo.run("transaction", txn("opened", lease_path="/software/team-a/"))
    assert result["changed"] and result["cmd"][1:] == ["transaction", NAME + "/software/team-a"]
    change(gateway_repo, "software/team-a/x")
    published = gateway_repo.run("transaction", txn("published"))
    assert "Changes submitted to repository gateway" in published["stdout"]
    assert published["revision"] == 11 and "tag" not in published  # tags and revision on the gateway side


def test_gateway_retry_timeout_passed(gateway_repo):
    result = gateway_repo.run("transaction", txn("opened", lease_path="/software", retry_timeout=30))
    assert result["cmd"][1:] == ["transaction", "-t", "30", NAME + "/software"]


# ---------------------------------------------------------------- errors (cvmfs-facts §1.3 - §1.5, §1.16)

def test_opened_already_open_race_is_unchanged(repo, tmp_path):
    """exit 17 'another transaction is already open' -> wanted state holds."""
    repo.cvmfs("transaction", NAME)
    result = repo.run("transaction", txn("opened"), spool_dir=str(tmp_path / "empty"))
    assert not result.failed and result["changed"] is False and result["rc"] == 0
    assert "another transaction is already open" in result["stderr"]


def test_lease_busy(gateway_repo):
    gateway_repo.write("gateway/leases.json", json.dumps({NAME + "/software": 300}))
    result = gateway_repo.run("transaction", txn("opened", lease_path="/software/team-a"))
    assert result.failed and result["time_remaining"] == 300
    assert "busy" in result["msg"] and "retry_timeout" in result["msg"] and not gateway_repo.in_transaction(NAME)


def test_lease_busy_after_retrying(gateway_repo):
    gateway_repo.write("gateway/leases.json", json.dumps({NAME: 100}))
    result = gateway_repo.run("transaction", txn("opened", lease_path="/software", retry_timeout=1))
    assert result.failed and result["time_remaining"] == 100 and "repository busy, retrying" in result["stdout"]


def test_lease_not_overlapping_is_granted(gateway_repo):
    gateway_repo.write("gateway/leases.json", json.dumps({NAME + "/software/team-b": 100}))
    assert not gateway_repo.run("transaction", txn("opened", lease_path="/software/team-a")).failed


def test_lease_path_parent_missing(gateway_repo):
    result = gateway_repo.run("transaction", txn("opened", lease_path="/nope/sub"))
    assert result.failed and result["rc"] == 1 and "lease path %s/nope/sub does not exist" % NAME in result["msg"]


def test_lease_path_not_a_directory(gateway_repo):
    gateway_repo.write("var/spool/cvmfs/%s/rdonly/software/file" % NAME, "x")
    result = gateway_repo.run("transaction", txn("opened", lease_path="/software/file"))
    assert result.failed and "is not a directory" in result["msg"]


def test_lease_path_needs_gateway(repo):
    result = repo.run("transaction", txn("opened", lease_path="/software"))
    assert result.failed and "lease_path is for gateway publishers" in result["msg"]


@pytest.mark.parametrize("lease", ["/", "/a/../b"])
def test_lease_path_invalid(gateway_repo, lease):
    result = gateway_repo.run("transaction", txn("opened", lease_path=lease))
    assert result.failed and "must be a sub-path" in result["msg"]


def expire_whitelist(host):
    path = os.path.join(host.srv, NAME, ".cvmfswhitelist")
    with open(path, "rb") as handle:
        lines = handle.read().split(b"\n")
    with open(path, "wb") as handle:
        handle.write(b"\n".join(b"E20000101000000" if line.startswith(b"E") else line for line in lines))


def test_transaction_whitelist_expired(repo):
    expire_whitelist(repo)
    result = repo.run("transaction", txn("opened"))
    assert result.failed and "whitelist of %s has expired" % NAME in result["msg"] and "resign" in result["msg"]
    assert result["stderr"].strip() == "Repository whitelist for $name is expired"


def test_transaction_whitelist_expiring_soon_warns(repo):
    path = os.path.join(repo.srv, NAME, ".cvmfswhitelist")
    import datetime
    soon = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=2)).strftime("%Y%m%d%H%M%S")
    with open(path, "rb") as handle:
        lines = handle.read().split(b"\n")
    with open(path, "wb") as handle:
        handle.write(b"\n".join(b"E" + soon.encode() if line.startswith(b"E") else line for line in lines))
    result = repo.run("transaction", txn("opened"))
    assert result["changed"] and any("less than 12 hours" in w for w in warning_texts(result))


def test_transaction_repository_missing(host):
    result = host.run("transaction", txn("opened"))
    assert result.failed and "does not exist on this host" in result["msg"] and host.argvs() == []


def test_transaction_name_without_dot(host):
    result = host.run("transaction", dict(txn("opened"), name="sw"))
    assert result.failed and "not a fully qualified repository name" in result["msg"] and host.argvs() == []


@pytest.mark.parametrize("compression", ["gz", "bz2", "xz"])
def test_ingest_compressed_tarball_refused(repo, tmp_path, compression):
    # cvmfs_server ingest reads uncompressed tar only (tests/integration/test_cvmfs_server_real.py)
    tarball = tmp_path / ("release.tar." + compression)
    with tarfile.open(str(tarball), "w:" + compression):
        pass
    result = repo.run("transaction", txn("published", ingest={"tarball": str(tarball), "base_dir": "app"}))
    assert result.failed and "compressed" in result["msg"] and "uncompressed tar" in result["msg"]
    assert "ingest" not in subcommands(repo)


@pytest.mark.parametrize("name,hint", [("-bad", False), ("%s/software" % NAME, True)])
def test_transaction_invalid_name(host, name, hint):
    result = host.run("transaction", dict(txn("opened"), name=name))
    assert result.failed and "not a valid repository name: use letters" in result["msg"] and host.argvs() == []
    assert ("put the sub-path in lease_path" in result["msg"]) is hint


def test_transaction_repository_missing_race(repo, tmp_path):
    """cvmfs_publish: 'Unable to find the configuration file `server.conf`' exit 1."""
    os.rename(os.path.join(repo.etc, "repositories.d", NAME, "server.conf"), str(tmp_path / "moved"))
    result = repo.run("transaction", txn("opened"))
    assert result.failed and "repository %s does not exist on this host" % NAME in result["msg"]
    assert "Unable to find the configuration file `server.conf`" in result["stderr"]


@pytest.mark.parametrize("key,rc,text", [
    ("transaction:permission", 1, "Permission error: No write permission to repository"),
    ("transaction:autofs", 1, "(unexpected termination) Autofs on /cvmfs has to be disabled"),
    ("transaction:enter_shell", 1, "opening a transaction is unsupported within the ephemeral writable shell"),
    ("transaction:hook", 7, "transaction hook failed, not opening a transaction"),
    ("transaction:gateway_error", 1, "(unexpected termination) cannot parse session token"),
    ("transaction:eio", 5, "rc=5"),
])
def test_transaction_failures(repo, key, rc, text):
    repo.fail = [key]
    result = repo.run("transaction", txn("opened"))
    assert result.failed and result["rc"] == 1 and text in result["msg"]
    assert result["cmd"][1] == "transaction" and "Stacktrace" not in result["msg"]
    assert not repo.in_transaction(NAME)


def test_abort_not_in_transaction_race_is_unchanged(repo, tmp_path):
    """abort exit 22 'is not in a transaction' -> wanted state holds."""
    spool = tmp_path / "module-spool" / NAME
    spool.mkdir(parents=True)
    (spool / "in_transaction.lock").write_text("")
    result = repo.run("transaction", txn("aborted"), spool_dir=str(spool.parent))
    assert not result.failed and result["changed"] is False and result["aborted"] is False


def test_abort_mount_state_broken(repo):
    repo.cvmfs("transaction", NAME)
    repo.fail = ["abort:broken"]
    result = repo.run("transaction", txn("aborted"))
    assert result.failed and "publisher file system mount state is broken" in result["msg"] and result["rc"] == 1


def test_never_prompts_and_never_runs_inside_the_repository(repo):
    """abort without -f (exit 4 on 'no') and 'Current working directory is in /cvmfs/<repo>' cannot happen."""
    repo.run("transaction", txn("opened"))
    repo.run("transaction", txn("aborted"))
    repo.run("transaction", txn("opened"))
    repo.run("transaction", txn("published"))
    for call in repo.calls()[1:]:  # [0] is the fixture's own mkfs
        assert call["cwd"] == "/" and call["stdin_devnull"] and call["LC_ALL"] == "C"
    assert ["abort", "-f", NAME] in repo.argvs() and ["publish", "-f", NAME] in repo.argvs()


def test_stratum1_is_refused(host, storage_factory):
    pub = host.write("etc/cvmfs/keys/%s.pub" % NAME, "PUB\n")
    created = host.run("replica", {"name": NAME, "stratum0_url": storage_factory(NAME), "public_key": [pub],
                                   "initial_snapshot": False})
    assert not created.failed, created
    for state in ("opened", "published", "aborted"):
        result = host.run("transaction", txn(state))
        assert result.failed and "is a stratum-1 replica" in result["msg"]


def test_publish_not_in_transaction_race_is_unchanged(repo, tmp_path):
    spool = tmp_path / "module-spool" / NAME
    spool.mkdir(parents=True)
    (spool / "in_transaction.lock").write_text("")
    result = repo.run("transaction", txn("published"), spool_dir=str(spool.parent))
    assert not result.failed and result["changed"] is False and result["published"] is False
    assert "Repository %s is not in a transaction" % NAME in result["stdout"]


def test_publish_whitelist_expired(repo):
    repo.cvmfs("transaction", NAME)
    expire_whitelist(repo)
    result = repo.run("transaction", txn("published"))
    assert result.failed and "whitelist of %s has expired" % NAME in result["msg"]
    assert "Repository whitelist for %s is expired!" % NAME in result["stdout"] and repo.in_transaction(NAME)


def test_publish_another_publish_active(repo):
    repo.cvmfs("transaction", NAME)
    lock = os.path.join(repo.spool, NAME, "is_publishing.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = repo.run("transaction", txn("published"))
        ingest = repo.run("transaction", {"name": NAME, "state": "published", "ingest": {"delete": ["/x"]}})
    finally:
        os.close(fd)
    assert result.failed and "another publish process is active for %s" % NAME in result["msg"]
    assert "publish" not in [a[0] for a in repo.argvs()]
    assert ingest.failed and "ingest opens its own" in ingest["msg"]  # the open transaction is checked first


def test_publish_another_publish_active_reported_by_tool(repo, tmp_path):
    """'Another publish process is active for <fqrn>' from cvmfs_server itself (lock taken after our check)."""
    repo.cvmfs("transaction", NAME)
    lock = os.path.join(repo.spool, NAME, "is_publishing.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    module_spool = tmp_path / "module-spool" / NAME
    module_spool.mkdir(parents=True)
    (module_spool / "in_transaction.lock").write_text("")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = repo.run("transaction", txn("published"), spool_dir=str(module_spool.parent))
    finally:
        os.close(fd)
    assert result.failed and "another publish process is active" in result["msg"]
    assert "Another publish process is active for %s" % NAME in result["stderr"]


def test_publish_tag_in_use(repo):
    repo.cvmfs("transaction", NAME)
    repo.cvmfs("publish", "-a", "v1", NAME)
    repo.cvmfs("transaction", NAME)
    result = repo.run("transaction", txn("published", tag="v1"))
    assert result.failed and "tag 'v1' already exists in %s" % NAME in result["msg"] and repo.in_transaction(NAME)


@pytest.mark.parametrize("tag", ["two words", "", "tab\tinside"])
def test_publish_tag_with_spaces(repo, tag):
    result = repo.run("transaction", txn("published", tag=tag))
    assert result.failed and "not a valid tag name" in result["msg"]


def test_publish_checked_out_needs_tag(repo):
    repo.cvmfs("transaction", NAME)
    repo.write("var/spool/cvmfs/%s/checkout" % NAME, "v1 abc branch1 (default)\n")
    result = repo.run("transaction", txn("published"))
    assert result.failed and "Publishing a checked out revision requires a tag name" in result["msg"]


def test_publish_gc_timespan_unparsable(repo):
    with open(os.path.join(repo.etc, "repositories.d", NAME, "server.conf"), "a") as conf:
        conf.write('CVMFS_AUTO_GC=true\nCVMFS_AUTO_GC_TIMESPAN="some day"\n')
    repo.cvmfs("transaction", NAME)
    result = repo.run("transaction", txn("published"))
    assert result.failed and "Failed to parse CVMFS_AUTO_GC_TIMESPAN: 'some day'" in result["msg"]


@pytest.mark.parametrize("key,text", [
    ("publish:owned_by", "Permission denied: Repository %s is owned by somebody" % NAME),
    ("publish:unavailable", "Repository unavailable under http://localhost/cvmfs/%s" % NAME),
    ("publish:open_fds", "Open writable file descriptors on %s" % NAME),
    ("publish:auto_repair", "Auto-Repair is disabled (CVMFS_AUTO_REPAIR_MOUNTPOINT = false)"),
    ("publish:dirtab", "Failed to apply .cvmfsdirtab"),
    ("publish:sync", "Synchronization failed"),
    ("publish:manifest", "Manifest creation failed"),
    ("publish:tagging", "Tagging failed"),
    ("publish:signing", "Signing failed"),
    ("publish:gc", "Garbage collection failed (1)"),
    ("publish:lock", "Failed to acquire publishing lock"),
])
def test_publish_failures(repo, key, text):
    repo.cvmfs("transaction", NAME)
    change(repo)
    repo.fail = [key]
    result = repo.run("transaction", txn("published"))
    assert result.failed and result["rc"] == 1 and result["cmd"][1] == "publish"
    assert text in result["stdout"] + result["stderr"]
    assert text in result["msg"] or "publishing lock" in result["msg"] or "as root" in result["msg"]
    assert repo.in_transaction(NAME)  # left open: the block/rescue pattern aborts it


class TestIngestErrors:
    def test_transaction_open(self, repo):
        repo.cvmfs("transaction", NAME)
        result = repo.run("transaction", txn("published", ingest={"delete": ["/x"]}))
        assert result.failed and "ingest opens its own" in result["msg"] and "ingest" not in subcommands(repo)

    def test_transaction_open_race(self, repo, tmp_path):
        """'another transaction is already open' + 'Impossible to start a transaction' from ingest."""
        repo.cvmfs("transaction", NAME)
        result = repo.run("transaction", txn("published", ingest={"delete": ["/x"]}), spool_dir=str(tmp_path / "e"))
        assert result.failed and "a transaction is already open on %s" % NAME in result["msg"]
        assert "Impossible to start a transaction" in result["stderr"]

    def test_no_parameters(self, repo):
        result = repo.run("transaction", txn("published", ingest={}))
        assert result.failed and "needs a tarball (with base_dir) or paths to delete" in result["msg"]

    def test_tarball_without_base_dir(self, repo, tmp_path):
        result = repo.run("transaction", txn("published", ingest={"tarball": str(tmp_path)}))
        assert result.failed and "base_dir" in result["msg"]

    def test_base_dir_without_tarball(self, repo):
        result = repo.run("transaction", txn("published", ingest={"base_dir": "x"}))
        assert result.failed and "tarball" in result["msg"]

    def test_user_and_keep_ownership(self, repo):
        result = repo.run("transaction", txn("published", ingest={"delete": ["/x"], "user": "root",
                                                                  "keep_ownership": True}))
        assert result.failed and "mutually exclusive" in result["msg"]

    def test_tarball_missing(self, repo, tmp_path):
        result = repo.run("transaction", txn("published", ingest={"tarball": str(tmp_path / "no.tar"),
                                                                  "base_dir": "x"}))
        assert result.failed and "is not a file on this host" in result["msg"]

    def test_gateway_multiple_deletes(self, gateway_repo):
        result = gateway_repo.run("transaction", txn("published", ingest={"delete": ["/a", "/b"]}))
        assert result.failed and "only one path per ingest" in result["msg"]

    def test_gateway_delete_and_add(self, gateway_repo, tmp_path):
        tarball = tmp_path / "t.tar"
        with tarfile.open(str(tarball), "w"):
            pass
        result = gateway_repo.run("transaction", txn("published", ingest={"delete": ["/a"], "tarball": str(tarball),
                                                                          "base_dir": "b"}))
        assert result.failed and "cannot delete paths and add a tarball in one ingest" in result["msg"]

    def test_wrong_state(self, repo):
        result = repo.run("transaction", txn("opened", ingest={"delete": ["/x"]}))
        assert result.failed and "ingest needs state=published" in result["msg"]
