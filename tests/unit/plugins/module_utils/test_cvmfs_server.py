"""Unit tests of the cvmfs_server runner: argv building, check mode, environment, error mapping.

Commands run against the TEST DOUBLE of cvmfs_server (tests/cvmfs_double/cvmfs_server), which
mimics documented behaviour from the facts file; it is not CernVM-FS.
"""

import json
import os
import time

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _cvmfs_server as srv
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _cvmfs_server_errors as errs
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from tests.cvmfs_double import DOUBLE


@pytest.fixture
def double_root(tmp_path, monkeypatch):
    root = tmp_path / "host"
    monkeypatch.setenv("CVMFS_DOUBLE_ROOT", str(root))
    monkeypatch.delenv("CVMFS_DOUBLE_FAIL", raising=False)
    return root


def calls(root):
    path = root / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


class TestArgv:
    def setup_method(self):
        self.runner = srv.CvmfsServer(binary=DOUBLE)

    def test_mkfs_full(self):
        argv = self.runner.argv(
            "mkfs", name="r.org", owner="cvmfs", stratum0_url="http://s3/b", upstream="gw,/t,http://gw:4929/api/v1",
            volatile=True, auto_tag=False, auto_tag_timespan="2 weeks ago", hash_algorithm="shake128",
            garbage_collection=True, s3_config="/etc/s3.conf", keys_dir="/k", apache=False, compression="none",
            external_data=True, proxy="http://p:3128")
        assert argv == [DOUBLE, "mkfs", "-w", "http://s3/b", "-u", "gw,/t,http://gw:4929/api/v1", "-o", "cvmfs", "-v",
                        "-g", "-G", "2 weeks ago", "-a", "shake128", "-z", "-s", "/etc/s3.conf", "-k", "/k", "-p",
                        "-Z", "none", "-X", "-x", "http://p:3128", "r.org"]

    def test_mkfs_minimal_never_prompts(self):
        assert self.runner.argv("mkfs", name="r.org", owner="root", auto_tag=True, apache=True) == \
            [DOUBLE, "mkfs", "-o", "root", "r.org"]

    def test_noninteractive_flags_are_fixed(self):
        assert self.runner.argv("rmfs", name="r.org")[1:] == ["rmfs", "-f", "r.org"]
        assert self.runner.argv("rmfs", name="r.org", preserve=True)[1:] == ["rmfs", "-f", "-p", "r.org"]
        assert self.runner.argv("abort", name="r.org")[1:] == ["abort", "-f", "r.org"]
        assert self.runner.argv("publish", name="r.org")[1:] == ["publish", "-f", "r.org"]
        assert self.runner.argv("publish", name="r.org", force_remount=False)[1:] == ["publish", "r.org"]

    def test_publish_tag_transaction_retry(self):
        assert self.runner.argv("publish", name="r.org", tag="v1", tag_description="first one")[1:] == \
            ["publish", "-f", "-a", "v1", "-m", "first one", "r.org"]
        assert self.runner.argv("transaction", name="r.org/sub/dir", retry_timeout=0)[1:] == \
            ["transaction", "-t", "0", "r.org/sub/dir"]

    def test_ingest_repository_is_last(self):
        assert self.runner.argv("ingest", name="r.org", tarball="/t.tgz", base_dir="a/b", delete=["x", "y"],
                                catalog=True, user="u", group="g")[1:] == \
            ["ingest", "-t", "/t.tgz", "-b", "a/b", "-d", "x", "-d", "y", "-c", "-u", "u", "-g", "g", "r.org"]

    def test_add_replica_and_snapshot(self):
        assert self.runner.argv("add-replica", owner="root", alias="a.s1", stratum0_url="http://s0/cvmfs/r.org",
                                public_key="/k/r.org.pub", require_apache=False, apache=False, auto_gc=True,
                                snapshot_group="g1")[1:] == \
            ["add-replica", "-o", "root", "-n", "a.s1", "-a", "-z", "-p", "-g", "g1", "http://s0/cvmfs/r.org",
             "/k/r.org.pub"]
        assert self.runner.argv("snapshot", name="a.s1", no_wait=True)[1:] == ["snapshot", "-t", "a.s1"]

    def test_import(self):
        assert self.runner.argv("import", name="r.org", owner="cvmfs", resign_whitelist=True, chown_storage=True,
                                keys_dir="/k", apache=True)[1:] == \
            ["import", "-o", "cvmfs", "-k", "/k", "-g", "-r", "r.org"]

    def test_unknown_argument_is_a_programming_error(self):
        with pytest.raises(TypeError, match="unknown argument"):
            self.runner.argv("publish", name="r.org", force=True)

    def test_missing_required_argument(self):
        with pytest.raises(TypeError, match="'owner' is required"):
            self.runner.argv("mkfs", name="r.org")
        with pytest.raises(TypeError, match="'name' is required"):
            self.runner.argv("transaction")

    def test_every_subcommand_is_known_to_cvmfs_server(self):
        valid = ("mkfs add-replica import publish rollback rmfs alterfs resign list info tag list-tags lstags check "
                 "transaction enter abort snapshot skeleton migrate list-catalogs diff checkout update-geodb gc "
                 "catalog-chown eliminate-hardlinks eliminate-bulk-hashes fix-stats update-info update-repoinfo "
                 "mount fix-permissions masterkeycard ingest merge-stats print-stats").split()
        assert set(srv.COMMANDS) <= set(valid)


class TestBinary:
    def test_missing_binary(self, monkeypatch):
        monkeypatch.setenv("PATH", "/nonexistent")
        monkeypatch.setattr(srv, "SEARCH_PATH", ("/nonexistent2",))
        with pytest.raises(CvmfsError, match="install the cvmfs-server package"):
            srv.find_binary()

    def test_path_must_be_executable(self, tmp_path):
        plain = tmp_path / "cvmfs_server"
        plain.write_text("")
        with pytest.raises(CvmfsError, match="is not an executable file"):
            srv.find_binary(str(plain))

    def test_resolved_lazily(self, monkeypatch):
        monkeypatch.setenv("PATH", "/nonexistent")
        monkeypatch.setattr(srv, "SEARCH_PATH", ("/nonexistent2",))
        runner = srv.CvmfsServer()
        assert runner.last_mutating is None
        with pytest.raises(CvmfsError, match="not found"):
            runner.run("list")

    def test_bare_name_found_in_path(self, monkeypatch):
        monkeypatch.setenv("PATH", os.path.dirname(DOUBLE))
        assert srv.find_binary() == DOUBLE


class TestRun:
    def test_environment_stdin_cwd(self, double_root, monkeypatch):
        monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
        result = srv.CvmfsServer(binary=DOUBLE).run("list")
        assert result.rc == 0
        [call] = calls(double_root)
        assert call == {"argv": ["list"], "cwd": "/", "LC_ALL": "C", "stdin_devnull": True}

    def test_check_mode_skips_mutating_and_runs_read_only(self, double_root):
        runner = srv.CvmfsServer(binary=DOUBLE, check_mode=True)
        result = runner.run("mkfs", name="r.org", owner="root")
        assert result.skipped and result.rc == 0
        assert runner.run("list").skipped is False
        assert [c["argv"] for c in calls(double_root)] == [["list"]]
        assert runner.last_mutating["cmd"][1:] == ["mkfs", "-o", "root", "r.org"]
        assert [h["skipped"] for h in runner.history] == [True, False]

    def test_mutating_call_recorded_and_run_info_only_at_vvvv(self, double_root):
        runner = srv.CvmfsServer(binary=DOUBLE)
        runner.run("mkfs", name="r.org", owner="root")
        runner.run("list")
        results = srv.add_run_results({}, runner, verbosity=3)
        assert results["cmd"] == [DOUBLE, "mkfs", "-o", "root", "r.org"] and results["rc"] == 0
        assert "Creating Configuration Files... done" in results["stdout"] and results["stderr"] == ""
        assert "run_info" not in results
        full = srv.add_run_results({}, runner, verbosity=4)["run_info"]
        assert [r["cmd"][1] for r in full] == ["mkfs", "list"]
        assert full[0]["environ"]["LC_ALL"] == "C" and full[0]["cwd"] == "/"

    def test_failure_raises_mapped_error_with_output(self, double_root):
        runner = srv.CvmfsServer(binary=DOUBLE)
        runner.run("mkfs", name="r.org", owner="root")
        with pytest.raises(errs.RepositoryExists) as info:
            runner.run("mkfs", name="r.org", owner="root")
        assert info.value.extra["rc"] == 1
        assert info.value.extra["stderr"].strip() == "The repository r.org already exists"
        assert info.value.extra["cmd"][1] == "mkfs"

    def test_check_false_returns_result(self, double_root):
        result = srv.CvmfsServer(binary=DOUBLE).run("abort", name="none.org", check=False)
        assert result.rc == 1 and "Unable to find the configuration file" in result.stderr

    def test_unknown_subcommand_usage_exit_3(self, double_root):
        runner = srv.CvmfsServer(binary=DOUBLE)
        spec = srv.Command("no-such-command", False, [], required=())
        srv.COMMANDS["no-such-command"] = spec
        try:
            with pytest.raises(errs.UsageError, match="rejected its arguments \\(rc=3\\)"):
                runner.run("no-such-command")
        finally:
            del srv.COMMANDS["no-such-command"]

    def test_timeout(self, tmp_path):
        slow = tmp_path / "cvmfs_server"
        slow.write_text("#!/bin/sh\nsleep 5\n")
        slow.chmod(0o755)
        with pytest.raises(errs.CvmfsServerError, match="did not finish within 0.2 s"):
            srv.CvmfsServer(binary=str(slow), timeout=0.2).run("list")


class ListLog:
    """The runner's ``log``: (level, line) pairs."""

    def __init__(self):
        self.lines = []

    def info(self, text):
        self.lines.append(("info", text))

    def warning(self, text):
        self.lines.append(("warning", text))


class Reads:
    """A binary source that records each read size, and raises ``error`` after ``fail_after`` bytes."""

    def __init__(self, data, fail_after=None, error=None):
        self.data, self.offset, self.sizes = data, 0, []
        self.fail_after, self.error = fail_after, error

    def read(self, size=-1):
        self.sizes.append(size)
        if self.fail_after is not None and self.offset >= self.fail_after:
            raise self.error
        end = len(self.data) if size < 0 else self.offset + size
        if self.fail_after is not None:
            end = min(end, self.fail_after)
        chunk, self.offset = self.data[self.offset:end], end
        return chunk


def _script(tmp_path, body):
    path = tmp_path / "cvmfs_server"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


class TestStdinAndLog:
    def test_file_object_is_fed_to_stdin_in_bounded_chunks(self, tmp_path):
        received = tmp_path / "received"
        binary = _script(tmp_path, 'cat > "%s"\necho "read $1 $2 $3"\necho "a warning" >&2\n' % received)
        data = os.urandom(3 * srv.CHUNK + 5)
        source = Reads(data)
        log = ListLog()
        result = srv.CvmfsServer(binary=binary, log=log).run("ingest", tarball="-", base_dir="b", name="r.org",
                                                             stdin=source)
        assert result.rc == 0 and received.read_bytes() == data
        assert source.sizes and max(source.sizes) <= srv.CHUNK and min(source.sizes) > 0
        assert log.lines == [("info", "cvmfs_server ingest: read ingest -t -"),
                             ("warning", "cvmfs_server ingest: a warning")]

    def test_output_lines_are_logged_without_stdin_too(self, tmp_path):
        binary = _script(tmp_path, 'echo "one"\necho "two"\necho "bad" >&2\nexit 0\n')
        log = ListLog()
        srv.CvmfsServer(binary=binary, log=log).run("abort", name="r.org")
        assert log.lines == [("info", "cvmfs_server abort: one"), ("info", "cvmfs_server abort: two"),
                             ("warning", "cvmfs_server abort: bad")]

    @pytest.mark.parametrize("error", [OSError(5, "Input/output error (test)"), KeyboardInterrupt()],
                             ids=["read-error", "interrupt"])
    def test_a_broken_stream_kills_the_command_and_all_it_started(self, tmp_path, error):
        """stdin is never closed after a failed read: cvmfs_server would publish the tar read so far."""
        pids, finished = tmp_path / "pids", tmp_path / "finished"
        binary = _script(tmp_path, 'sleep 600 &\necho "$$ $!" > "%s"\ncat > /dev/null\ntouch "%s"\n'
                         % (pids, finished))
        log = ListLog()
        with pytest.raises(type(error)):
            srv.CvmfsServer(binary=binary, log=log).run(
                "ingest", tarball="-", base_dir="b", name="r.org",
                stdin=Reads(os.urandom(2 * srv.CHUNK), fail_after=srv.CHUNK + 1, error=error))
        assert not finished.exists(), "cvmfs_server saw the end of its input"
        for pid in [int(p) for p in pids.read_text().split()]:
            assert _ends(pid), "pid %d of the command's session still runs" % pid
        [(level, line)] = log.lines
        assert level == "warning" and line.startswith("stopped cvmfs_server ingest (killed it and all it started): ")
        assert line.endswith("Input/output error (test)" if isinstance(error, OSError) else ": interrupted")

    def test_a_command_that_cannot_start_is_named(self, tmp_path):
        binary = tmp_path / "cvmfs_server"
        binary.write_text("not a program")
        binary.chmod(0o755)
        with pytest.raises(errs.CvmfsServerError, match="cannot run %s" % binary):
            srv.CvmfsServer(binary=str(binary)).run("ingest", tarball="-", base_dir="b", name="r.org",
                                                    stdin=Reads(b"x"))


def _ends(pid):
    """Whether ``pid`` ends within 30 s (SIGKILL is delivered asynchronously; a hang fails)."""
    for _attempt in range(300):
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def _alive(pid):
    """Whether ``pid`` runs (a zombie waiting for its parent does not)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (IOError, OSError):
        return False


def test_describe_error():
    assert srv.describe_error(CvmfsError("what went wrong")) == "what went wrong"
    assert srv.describe_error(OSError(5, "Input/output error")) == "OSError: [Errno 5] Input/output error"
    assert srv.describe_error(KeyboardInterrupt()) == "interrupted"
    assert srv.describe_error(RuntimeError()) == "RuntimeError"


class TestHostGlue:
    """Where the modules find cvmfs_server and its directories: the package's places, unless the test
    hook (environment variables the test suite sets) says otherwise."""

    def test_package_places_without_the_hook(self, monkeypatch):
        for variable in srv.TEST_HOOK_ENVIRON.values():
            monkeypatch.delenv(variable, raising=False)
        paths = srv.host_paths()
        assert (paths.etc_dir, paths.spool_dir, paths.srv_dir) == ("/etc/cvmfs", "/var/spool/cvmfs", "/srv/cvmfs")
        monkeypatch.setenv("PATH", os.path.dirname(DOUBLE))
        assert srv.host_server(check_mode=False).binary == DOUBLE

    def test_the_hook_points_elsewhere(self, monkeypatch, tmp_path):
        where = {"etc_dir": tmp_path / "e", "spool_dir": tmp_path / "s", "storage_dir": tmp_path / "d"}
        for key, value in where.items():
            monkeypatch.setenv(srv.TEST_HOOK_ENVIRON[key], str(value))
        monkeypatch.setenv(srv.TEST_HOOK_ENVIRON["cvmfs_server"], DOUBLE)
        monkeypatch.setenv("PATH", "/nonexistent")
        paths = srv.host_paths()
        assert (paths.etc_dir, paths.spool_dir, paths.srv_dir) == tuple(str(v) for v in where.values())
        server = srv.host_server(check_mode=True)
        assert server.binary == DOUBLE and server.check_mode


def result(rc, stdout="", stderr=""):
    return srv.CommandResult(["cvmfs_server"], rc, stdout, stderr)


# Every exit code / message of cvmfs-facts.md that the runner maps: (command, rc, stdout, stderr,
# expected class, expected text in the message).
E = "CernVM-FS transaction error: "
STACK = "\n\nStacktrace:\n..."
MAPPING = [
    ("transaction", 17, "", E + "another transaction is already open", errs.AlreadyInTransaction, "already open"),
    ("transaction", 16, "Path busy. Time remaining = 42", E + "lease path busy", errs.LeaseBusy, "42 s"),
    ("transaction", 2, "", "cannot open transaction on non-existing path r.org/a/b", errs.BadLeasePath,
     "r.org/a/b does not exist"),
    ("transaction", 20, "", "cannot open transaction on r.org/a, which is not a directory", errs.BadLeasePath,
     "is not a directory"),
    ("transaction", 22, "", "Repository whitelist for $name is expired", errs.WhitelistExpired, "cvmfs_server resign"),
    ("transaction", 1, "", "CernVM-FS error: Unable to find the configuration file `server.conf` for the cvmfs "
     "publisher: r.org", errs.RepositoryMissing, "does not exist"),
    ("transaction", 1, "", "Permission error: No write permission to repository", errs.PermissionDenied, "as root"),
    ("transaction", 1, "", "(unexpected termination) Autofs on /cvmfs has to be disabled" + STACK,
     errs.CvmfsServerError, "Autofs on /cvmfs has to be disabled"),
    ("transaction", 1, "", "Invocation error: opening a transaction is unsupported within the ephemeral writable shell",
     errs.CvmfsServerError, "ephemeral writable shell"),
    ("transaction", 7, "", "transaction hook failed, not opening a transaction", errs.CvmfsServerError, "rc=7"),
    ("transaction", 1, "Error: 'invalid_hmac'", "(unexpected termination) cannot parse session token" + STACK,
     errs.CvmfsServerError, "cannot parse session token"),
    ("transaction", 5, "", "CernVM-FS transaction error: publisher init", errs.CvmfsServerError, "rc=5"),
    # by the exit code alone, when the message is not the documented one
    ("transaction", 17, "", "(changed wording)", errs.AlreadyInTransaction, "already open on r.org (exit 17"),
    ("transaction", 16, "", "(changed wording)", errs.LeaseBusy, "holds an overlapping path (exit 16"),
    ("transaction", 2, "", "(changed wording)", errs.BadLeasePath, "lease path r.org does not exist in the repo"),
    ("transaction", 20, "", "(changed wording)", errs.BadLeasePath, "parent of the lease path r.org is not a dir"),
    ("transaction", 22, "", "(changed wording)", errs.WhitelistExpired, "layout revision is wrong (exit 22"),
    ("abort", 22, "", "Repository r.org is not in a transaction", errs.NotInTransaction, "not in a transaction"),
    ("abort", 5, "", "publisher file system mount state is broken", errs.CvmfsServerError, "mount state is broken"),
    ("abort", 1, "", "CernVM-FS error: Repository r.org is not a stratum 0 repository", errs.NotStratum0,
     "not a stratum-0"),
    ("abort", 1, "Current working directory is in /cvmfs/r.org.  Please release, e.g. by 'cd $HOME'.", "",
     errs.CvmfsServerError, "Current working directory"),
    ("abort", 4, "", "", errs.CvmfsServerError, "rc=4"),
    ("publish", 1, "Repository r.org is not in a transaction", "", errs.NotInTransaction, "not in a transaction"),
    ("publish", 1, "Repository whitelist for r.org is expired!", "", errs.WhitelistExpired, "resign"),
    ("publish", 1, "Permission denied: Repository r.org is owned by bob", "", errs.PermissionDenied, "owned by bob"),
    ("publish", 1, "Repository unavailable under http://s0/cvmfs/r.org", "", errs.CvmfsServerError,
     "Repository unavailable under"),
    ("publish", 1, "Open writable file descriptors on r.org", "", errs.CvmfsServerError, "Open writable file"),
    ("publish", 1, "Publishing a checked out revision requires a tag name", "", errs.CvmfsServerError,
     "requires a tag name"),
    ("publish", 1, "", "This is not a stratum 0 repository", errs.NotStratum0, "not a stratum-0"),
    ("publish", 1, "", "Another publish process is active for r.org", errs.PublishActive, "another publish"),
    ("publish", 1, "", "Failed to acquire publishing lock", errs.PublishActive, "publishing lock"),
    ("publish", 1, "", "Tag name 'v1' is already in use.", errs.TagInUse, "'v1' already exists"),
    ("publish", 1, "", "Spaces are not allowed in tag names", errs.UsageError, "spaces"),
    ("publish", 1, "", "Failed to apply .cvmfsdirtab", errs.CvmfsServerError, "Failed to apply .cvmfsdirtab"),
    ("publish", 1, "", "Synchronization failed\n\nExecuted Command:\nx", errs.CvmfsServerError, "Synchronization failed"),
    ("publish", 1, "", "Manifest creation failed", errs.CvmfsServerError, "Manifest creation failed"),
    ("publish", 1, "", "Tagging failed", errs.CvmfsServerError, "Tagging failed"),
    ("publish", 1, "", "Signing failed", errs.CvmfsServerError, "Signing failed"),
    ("publish", 1, "", "Garbage collection failed (3)", errs.CvmfsServerError, "Garbage collection failed (3)"),
    ("publish", 1, "", "Auto-Repair is disabled (CVMFS_AUTO_REPAIR_MOUNTPOINT = false)", errs.CvmfsServerError,
     "Auto-Repair is disabled"),
    ("publish", 1, "", "Failed to parse CVMFS_AUTO_GC_TIMESPAN: 'soon'", errs.CvmfsServerError, "CVMFS_AUTO_GC_TIMESPAN"),
    ("publish", 1, "", "The repository r.org does not exist.", errs.RepositoryMissing, "does not exist"),
    ("ingest", 1, "", E + "another transaction is already open\nImpossible to start a transaction",
     errs.AlreadyInTransaction, "already open"),
    ("ingest", 1, "", "Could not delete multiple paths using a gateway in a single transaction.",
     errs.CvmfsServerError, "delete multiple paths"),
    ("ingest", 1, "", "Could not delete and add a file in the same transaction while using gateway.",
     errs.CvmfsServerError, "delete and add"),
    ("ingest", 1, "", "Please provide some parameters, ...", errs.CvmfsServerError, "Please provide some parameters"),
    ("ingest", 1, "", "You cannot provide both: either provide user (-u)/group (-g) or keep the ownership (-k) of the "
     "tarball", errs.CvmfsServerError, "You cannot provide both"),
    ("mkfs", 1, "", "The repository r.org already exists", errs.RepositoryExists, "already exists"),
    ("mkfs", 1, "", "Only root can create a new repository", errs.PermissionDenied, "as root"),
    ("mkfs", 1, "", "invalid repository name: r b", errs.UsageError, "not a valid repository name"),
    ("mkfs", 1, "", "No user bob", errs.UsageError, "'bob' is not a user"),
    ("mkfs", 1, "", "Please specify the HTTP-URL for S3 (add option -w)", errs.UsageError, "public HTTP URL"),
    ("mkfs", 3, "Usage...\nNOTE: The given upstream definition (-u) is invalid. Should look like: ...", "",
     errs.UsageError, "rc=3"),
    ("mkfs", 2, "Usage...", "", errs.UsageError, "rc=2"),
    ("mkfs", 1, "", "Apache must be installed and running", errs.CvmfsServerError, "Apache must be installed"),
    ("mkfs", 1, "", "Autofs on /cvmfs has to be disabled", errs.CvmfsServerError, "Autofs"),
    ("mkfs", 1, "", "Importing keys from '/k' would overwrite keys in '/etc/cvmfs/keys'", errs.CvmfsServerError,
     "would overwrite keys"),
    ("mkfs", 1, "", "Auto tags time span cannot be parsed", errs.CvmfsServerError, "cannot be parsed"),
    ("import", 1, "", "Repository whitelist expired (use -r maybe?)", errs.WhitelistExpired, "resign"),
    ("import", 1, "", "The repository r.org already exists", errs.RepositoryExists, "already exists"),
    ("import", 1, "", "repository signing key or certificate not found (use -t maybe?)", errs.CvmfsServerError,
     "certificate not found"),
    ("rmfs", 1, "", "The repository r.org does not exist.", errs.RepositoryMissing, "does not exist"),
    ("rmfs", 1, "", "Only root can remove a repository", errs.PermissionDenied, "as root"),
    ("add-replica", 1, "", "There is already a Stratum1 repository r.org", errs.ReplicaExists, "already exists"),
    ("add-replica", 1, "", "Repository r.org already exists as a Stratum0 repository.\nUse -n to create an aliased "
     "Stratum1 replica for r.org on this machine.", errs.AliasIsStratum0, "choose another replica name"),
    ("add-replica", 1, "", "Failed to access Stratum0 repository at http://s0/cvmfs/r.org", errs.ReplicaSourceError,
     "cannot read the stratum-0 at http://s0/cvmfs/r.org"),
    ("add-replica", 1, "", "The repository URL http://s0/cvmfs/r.org does not point to a replicable master copy of "
     "r.org", errs.ReplicaSourceError, "alterfs -m on"),
    ("snapshot", 1, "", "another update is in progress... aborting", errs.UpdateInProgress, "set wait to true"),
    ("snapshot", 1, "", "an initial snapshot is in progress... aborting", errs.UpdateInProgress, "retry later"),
    ("snapshot", 1, "", "Repository r.org is not a stratum 1 repository", errs.NotStratum1, "not a stratum-1"),
    ("snapshot", 1, "", "Missing CVMFS_STRATUM1 URL in server.conf", errs.CvmfsServerError, "Missing CVMFS_STRATUM1"),
    ("snapshot", 1, "", "The repository r.org does not exist.", errs.RepositoryMissing, "does not exist"),
    # as the real cvmfs_server 2.12 says them (tests/integration/test_cvmfs_double_contract.py)
    ("snapshot", 1, "Repository r.org is not a stratum 1 repository", "", errs.NotStratum1, "not a stratum-1"),
    ("transaction", 1, "", "(unexpected termination) Repository r.org is not a stratum 0 repository" + STACK,
     errs.NotStratum0, "not a stratum-0"),
    ("add-replica", 3, "Installing GeoIP Database... fail", "CVMFS_GEO_ACCOUNT_ID not set", errs.CvmfsServerError,
     "CVMFS_GEO_DB_FILE to a readable database or to NONE"),
    ("add-replica", 1, "", "/srv/GeoLite2-City.mmdb doesn't exist or is not readable", errs.CvmfsServerError,
     "(/srv/GeoLite2-City.mmdb doesn't exist or is not readable)"),
    ("add-replica", 1, "Linking GeoIP Database\nThe apache wsgi module must be installed and enabled.\nThe required "
     "package is called libapache2-mod-wsgi.", "", errs.CvmfsServerError, "libapache2-mod-wsgi-py3"),
    ("ingest", 1, "Using auto tag 'generic-2024-01-01T00:00:00Z'", "/usr/bin/cvmfs_server: 9263: eval: [[: not found\n"
     "Impossible to open the archive: Unrecognized archive format\nSynchronization failed", errs.CvmfsServerError,
     "failed (rc=1): Impossible to open the archive: Unrecognized archive format"),
    ("mkfs", 1, "", "Failed to dump process list for 'apache2.service', ignoring: Input/output error\n"
     "cp: cannot stat '/k/r.org.masterkey': No such file or directory\nfail!", errs.CvmfsServerError,
     "failed (rc=1): cp: cannot stat '/k/r.org.masterkey'"),
]


@pytest.mark.parametrize("command,rc,stdout,stderr,error,text", MAPPING,
                         ids=["%s-%s-%s" % (m[0], m[1], (m[3] or m[2]).split("\n")[0][:40]) for m in MAPPING])
def test_error_mapping(command, rc, stdout, stderr, error, text):
    with pytest.raises(errs.CvmfsServerError) as info:
        errs.classify(command, result(rc, stdout, stderr), name="r.org")
    assert type(info.value) is error  # pylint: disable=unidiomatic-typecheck
    assert text in info.value.message
    assert info.value.extra["rc"] == rc and info.value.extra["stderr"] == stderr


def test_lease_busy_carries_time_remaining():
    with pytest.raises(errs.LeaseBusy) as info:
        errs.classify("transaction", result(16, "Path busy. Time remaining = 42", E + "lease path busy"), name="r.org")
    assert info.value.time_remaining == 42 and info.value.extra["time_remaining"] == 42


def test_whitelist_hint_names_the_repository_of_a_lease():
    with pytest.raises(errs.WhitelistExpired) as info:
        errs.classify("transaction", result(22, "", "Repository whitelist for $name is expired"), name="r.org/a/b")
    assert "the whitelist of r.org has expired" in info.value.message
    assert "'cvmfs_server resign r.org'" in info.value.message


def test_success_is_not_an_error():
    errs.classify("publish", result(0, "Repository r.org is not in a transaction"))
