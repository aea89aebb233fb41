"""The publisher's publish job, run for real as the role installs it, against a real S3 server.

What is real: the job itself (the host-program archive the role ships, built by the same code,
run as ``PYTHONPATH=<archive> python -m sharedsw_cvmfs._publish_job``), the s3_sync entry point it runs,
boto3, and the S3 server (SeaweedFS from the harness).

What is NOT real: ``cvmfs_server``. It is the TEST DOUBLE tests/support/publish_double/cvmfs_server,
which models the union mount /cvmfs/<repo> as a plain directory (transaction = flag file,
publish = keep, abort = restore the last published copy) with the documented exit codes.
"""

import contextlib
import io
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tarfile
import fcntl

import pytest

from tests.support.host_program import build_host_program

pytestmark = pytest.mark.integration

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
REPO_ROOT = os.path.dirname(REPO_ROOT) if os.path.basename(REPO_ROOT) == "tests" else REPO_ROOT
DOUBLE = os.path.join(REPO_ROOT, "tests", "support", "publish_double", "cvmfs_server")
REPO = "sw.example.org"


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory):
    """The host-program archive exactly as the publisher role installs it on a host (the PYTHONPATH)."""
    return build_host_program(tmp_path_factory.mktemp("program"))


class Site:
    """One publisher host in a temporary directory: the double's tree, the job config, the bucket."""

    def __init__(self, tmp_path, s3, package_dir, path="/", **source):
        self.tmp = tmp_path
        self.s3 = s3
        self.package_dir = package_dir
        self.root = tmp_path / "double"
        self.bucket = s3.make_bucket("pub")
        conf = self.root / "etc/cvmfs/repositories.d" / REPO
        conf.mkdir(parents=True)
        (conf / "server.conf").write_text("CVMFS_REPOSITORY_NAME=%s\nCVMFS_UPSTREAM_STORAGE=gw,/x,http://gw:4929/api/v1\n"
                                          % REPO)
        (self.root / "cvmfs" / REPO).mkdir(parents=True)
        (self.root / "published" / REPO).mkdir(parents=True)
        (self.root / "var/spool/cvmfs" / REPO).mkdir(parents=True)
        self.state_dir = tmp_path / "state"
        self.credentials = tmp_path / "credentials"
        self.credentials.write_text("AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n" % (s3.access_key, s3.secret_key))
        os.chmod(str(self.credentials), 0o600)
        self.lock_file = tmp_path / "lock" / "publish.lock"
        self.config = {
            "repository": REPO,
            "path": path,
            "cvmfs_server": DOUBLE,
            "mount_dir": str(self.root / "cvmfs"),
            "spool_dir": str(self.root / "var/spool/cvmfs"),
            "etc_dir": str(self.root / "etc/cvmfs"),
            "state_dir": str(self.state_dir),
            "lock_file": str(self.lock_file),
            "credentials_file": str(self.credentials),
            "transaction_retry_timeout": 0,
            "source": dict({"endpoint_url": s3.endpoint_url, "region": s3.region, "bucket": self.bucket,
                            "prefix": "cvmfs/", "max_workers": 4}, **source),
        }

    def put(self, key, body=b"", **metadata):
        self.s3.client().put_object(Bucket=self.bucket, Key=key, Body=body, Metadata=metadata)

    def delete(self, key):
        self.s3.client().delete_object(Bucket=self.bucket, Key=key)

    def keys(self):
        listing = self.s3.client().list_objects_v2(Bucket=self.bucket)
        return sorted(o["Key"] for o in listing.get("Contents", []))

    def _command(self, extra_args=(), fail=(), signal_parent=None, **env):
        """argv and environment of one job run, as the unit runs it."""
        path = self.tmp / "job.json"
        path.write_text(json.dumps(self.config))
        env = dict(os.environ, CVMFS_DOUBLE_ROOT=str(self.root), PYTHONPATH=self.package_dir,
                   CVMFS_DOUBLE_FAIL=",".join(fail), **env)
        env.pop("AWS_ACCESS_KEY_ID", None)
        env.pop("AWS_SECRET_ACCESS_KEY", None)
        if signal_parent:
            env["CVMFS_DOUBLE_SIGNAL_PARENT"] = signal_parent
        return [sys.executable, "-m", "sharedsw_cvmfs._publish_job", "--config", str(path)] + list(extra_args), env

    def run(self, fail=(), signal_parent=None, extra_args=(), env=None, **config):
        self.config.update(config)
        argv, env = self._command(extra_args, fail, signal_parent, **(env or {}))
        proc = subprocess.run(argv, env=env, capture_output=True, check=False, text=True, timeout=120, cwd="/")
        proc.log = proc.stdout + proc.stderr
        return proc

    def start(self, extra_args=()):
        """The job as a child process (output merged into ``stdout``, a text pipe), for tests that interleave."""
        argv, env = self._command(extra_args, PYTHONUNBUFFERED="1")
        return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, cwd="/")

    def calls(self):
        path = self.root / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def commands(self):
        return [c["argv"][0] for c in self.calls()]

    def in_transaction(self):
        return (self.root / "var/spool/cvmfs" / REPO / "in_transaction.lock").exists()

    def published(self, *parts):
        return self.root.joinpath("published", REPO, *parts)

    def union(self, *parts):
        return self.root.joinpath("cvmfs", REPO, *parts)

    def tree(self, base):
        found = {}
        for dirpath, _dirs, files in os.walk(str(base)):
            for name in files:
                full = os.path.join(dirpath, name)
                found[os.path.relpath(full, str(base))] = open(full, "rb").read()
        return found

    def last_run(self):
        return json.loads((self.state_dir / "last-run.json").read_text())


@pytest.fixture
def site(tmp_path, seaweedfs, package_dir):
    return Site(tmp_path, seaweedfs, package_dir)


def assert_clean(site):
    """Nothing half-done: no open transaction, the union equals the published copy, no marker."""
    assert not site.in_transaction()
    assert site.tree(site.union()) == site.tree(site.published())
    assert not (site.state_dir / "transaction-open").exists()


def test_publishes_new_content_then_does_nothing(site):
    site.put("cvmfs/README", b"hello\n")
    site.put("cvmfs/bin/tool", b"#!/bin/sh\necho tool\n", mode="33261")
    first = site.run()
    assert first.returncode == 0, first.log
    assert site.published("README").read_bytes() == b"hello\n"
    assert os.stat(str(site.published("bin", "tool"))).st_mode & 0o111, "executable bit lost"
    assert site.commands() == ["transaction", "publish"]
    assert all(c["stdin_devnull"] and c["LC_ALL"] == "C" for c in site.calls())
    assert site.last_run()["published"] is True and site.last_run()["outcome"] == "ok"
    assert_phases(site.last_run(), ["open", "plan", "publish", "sync"])
    assert_clean(site)

    second = site.run()
    assert second.returncode == 0, second.log
    assert site.commands() == ["transaction", "publish"], "an unchanged bucket must not take a lease"
    assert "up to date" in second.log
    assert site.last_run()["published"] is False
    assert_phases(site.last_run(), ["plan"])


def assert_phases(last_run, names):
    """last-run.json times each phase the run went through, and only those."""
    phases = last_run["phases"]
    assert sorted(phases) == names
    assert all(isinstance(seconds, float) and seconds >= 0 for seconds in phases.values()), phases
    assert sum(phases.values()) <= last_run["seconds"], (phases, last_run["seconds"])


RECORDING_SYNC = """
import json, subprocess, sys
proc = subprocess.run([sys.executable, "-m", "sharedsw_cvmfs._s3_sync_cli"] + sys.argv[2:], capture_output=True, text=True)
with open(sys.argv[1], "a") as log:
    log.write(json.dumps({"argv": sys.argv[2:], "result": proc.stdout.strip().splitlines()[-1:]}) + "\\n")
sys.stdout.write(proc.stdout)
sys.stderr.write(proc.stderr)
sys.exit(proc.returncode)
"""


def test_the_plan_stops_at_the_first_change(site, tmp_path):
    """The plan only decides whether to take a lease: it stops at the first path to fetch."""
    recorder, runs = tmp_path / "recording_sync.py", tmp_path / "sync-runs.jsonl"
    recorder.write_text(RECORDING_SYNC)
    for number in range(5):
        site.put("cvmfs/pkg/f%d" % number, b"content %d" % number)
    result = site.run(sync_command=[sys.executable, str(recorder), str(runs)])
    assert result.returncode == 0, result.log
    plan, real = [json.loads(line) for line in runs.read_text().splitlines()]
    assert "--check" in plan["argv"] and "--first-change" in plan["argv"] and "--check" not in real["argv"]
    assert json.loads(plan["result"][0])["first_change"].startswith("pkg/f")
    assert json.loads(real["result"][0])["added"]["count"] == 6   # the five files and their directory
    assert sorted(site.tree(site.published())) == ["pkg/f%d" % n for n in range(5)]


def test_changes_and_deletions_reach_the_repository(site):
    site.put("cvmfs/a", b"one")
    site.put("cvmfs/b", b"two")
    assert site.run().returncode == 0
    site.put("cvmfs/a", b"ONE!")
    site.delete("cvmfs/b")
    result = site.run()
    assert result.returncode == 0, result.log
    assert site.tree(site.published()) == {"a": b"ONE!"}
    assert site.commands() == ["transaction", "publish", "transaction", "publish"]
    assert_clean(site)


def test_sync_failure_inside_the_transaction_aborts(site):
    site.put("cvmfs/good", b"fine")
    site.put("cvmfs/clash", b"a file")
    site.put("cvmfs/clash/inner", b"and a directory")
    result = site.run(plan_first=False)
    assert result.returncode == 1, result.log
    assert site.commands() == ["transaction", "abort"]
    assert "aborting the transaction" in result.log
    assert site.tree(site.published()) == {}
    assert site.last_run()["outcome"] == "failed"
    assert_phases(site.last_run(), ["open", "sync"])
    assert_clean(site)


def test_failed_publish_is_aborted_and_retried_next_run(site):
    site.put("cvmfs/data.bin", os.urandom(4096))
    failed = site.run(fail=["publish"])
    assert failed.returncode == 1, failed.log
    assert site.commands() == ["transaction", "publish", "abort"]
    assert site.tree(site.published()) == {}
    assert_clean(site)
    # the sync state was put back, so the next run syncs the file again and publishes it
    retried = site.run()
    assert retried.returncode == 0, retried.log
    assert "data.bin" in site.tree(site.published())
    assert_clean(site)


def test_failed_abort_exits_3_and_says_so(site):
    site.put("cvmfs/x", b"x")
    result = site.run(fail=["publish", "abort"])
    assert result.returncode == 3, result.log
    assert site.in_transaction()
    assert "abort -f %s by hand" % REPO in result.log
    assert site.last_run()["outcome"] == "needs-human"


def test_stop_signal_after_the_transaction_opened_aborts(site):
    site.put("cvmfs/x", b"x")
    result = site.run(signal_parent="transaction")
    assert result.returncode == 1, result.log
    assert "stopped by signal %d" % signal.SIGTERM in result.log
    assert site.commands() == ["transaction", "abort"]
    assert_clean(site)


def test_busy_lease_fails_without_abort(site):
    site.put("cvmfs/x", b"x")
    result = site.run(fail=["transaction:busy"])
    assert result.returncode == 1, result.log
    assert "lease" in result.log and "busy" in result.log
    assert site.commands() == ["transaction"]
    assert_clean(site)


def test_expired_whitelist_is_named(site):
    site.put("cvmfs/x", b"x")
    result = site.run(fail=["transaction:whitelist"])
    assert result.returncode == 1
    assert "whitelist" in result.log and "re-sign" in result.log


def test_transaction_opened_by_somebody_else_is_left_alone(site):
    site.put("cvmfs/x", b"x")
    (site.root / "var/spool/cvmfs" / REPO / "in_transaction.lock").touch()
    (site.union() / "work-in-progress").write_text("by hand")
    result = site.run()
    assert result.returncode == 3, result.log
    assert site.commands() == []
    assert (site.union() / "work-in-progress").exists()
    assert "did not open" in result.log


def test_transaction_left_by_a_killed_run_is_aborted_then_the_job_proceeds(site):
    site.put("cvmfs/x", b"x")
    site.state_dir.mkdir()
    (site.state_dir / "transaction-open").write_text("left by a killed run\n")
    (site.root / "var/spool/cvmfs" / REPO / "in_transaction.lock").touch()
    (site.union() / "half-written").write_text("partial")
    result = site.run()
    assert result.returncode == 0, result.log
    assert site.commands() == ["abort", "transaction", "publish"]
    assert site.tree(site.published()) == {"x": b"x"}
    assert_clean(site)


def test_a_second_run_never_overlaps(site):
    site.put("cvmfs/x", b"x")
    site.lock_file.parent.mkdir(parents=True)
    with open(str(site.lock_file), "w") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        result = site.run()
    assert result.returncode == 75, result.log
    assert site.commands() == []
    assert "not starting a second one" in result.log
    assert site.run().returncode == 0


@contextlib.contextmanager
def holding_the_lock(site):
    """Hold the job's lock the way a run or the consumer does: flock, then the holder's pid in the file."""
    site.lock_file.parent.mkdir(parents=True)
    with open(str(site.lock_file), "w") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        holder.write("%d\n" % os.getpid())
        holder.flush()
        yield


def test_the_timed_run_waits_for_the_lock_then_runs(site):
    """What the timer's unit does (--wait-lock): a held lock delays the full sync, never skips it."""
    site.put("cvmfs/x", b"x")
    with holding_the_lock(site):
        job = site.start(extra_args=["--wait-lock", "300"])
        try:
            ready = select.select([job.stdout], [], [], 60)[0]  # a guard against hanging, not a measurement
            waiting = job.stdout.readline() if ready else "(the job said nothing while the lock was held)"
        except BaseException:
            job.kill()
            raise
        if not ready:
            job.kill()
        assert "pid %d holds the publish lock" % os.getpid() in waiting and "waiting up to 300 seconds" in waiting
        assert job.poll() is None and site.commands() == []
    output = waiting + job.communicate(timeout=120)[0]
    assert job.returncode == 0, output
    assert site.commands() == ["transaction", "publish"]
    assert site.tree(site.published()) == {"x": b"x"}
    assert site.last_run()["outcome"] == "ok"


def test_the_timed_run_gives_up_waiting_with_a_clear_message(site):
    site.put("cvmfs/x", b"x")
    with holding_the_lock(site):
        result = site.run(extra_args=["--wait-lock", "1"])
    assert result.returncode == 4, result.log
    assert "gave up waiting for the publish lock of %s: pid %d still holds %s after 1 seconds" % (
        REPO, os.getpid(), site.lock_file) in result.stderr
    assert "did not sync or publish" in result.stderr
    assert site.commands() == [] and not (site.state_dir / "last-run.json").exists()


def test_the_timed_run_names_the_notification_consumer_holding_the_lock(site):
    site.lock_file.parent.mkdir(parents=True)
    consumer = subprocess.Popen(  # a stand-in with the consumer's command line, holding the lock
        [sys.executable, "-c", "import fcntl, sys, time; h = open(sys.argv[1], 'w'); fcntl.flock(h, fcntl.LOCK_EX); "
         "h.write('%d' % __import__('os').getpid()); h.flush(); print('locked', flush=True); time.sleep(600)",
         str(site.lock_file), "-m", "sharedsw_cvmfs._events"], stdout=subprocess.PIPE, text=True)
    try:
        assert consumer.stdout.readline() == "locked\n"
        result = site.run(extra_args=["--wait-lock", "1"])
    finally:
        consumer.kill()
        consumer.wait()
    assert result.returncode == 4, result.log
    assert "the notification consumer (pid %d) still holds" % consumer.pid in result.stderr


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_wait_lock_must_be_a_finite_number_of_seconds(site, value):
    result = site.run(extra_args=["--wait-lock", value])
    assert result.returncode == 2 and "--wait-lock must be a finite number of seconds" in result.stderr
    assert site.commands() == []


def test_publisher_sub_path_takes_a_lease_on_it(tmp_path, seaweedfs, package_dir):
    site = Site(tmp_path, seaweedfs, package_dir, path="/team-a", prefix="cvmfs/team-a/")
    site.put("cvmfs/team-a/lib/x.so", b"x")
    site.put("cvmfs/other/not-mine", b"y")
    result = site.run()
    assert result.returncode == 0, result.log
    assert site.calls()[0]["argv"] == ["transaction", REPO + "/team-a"]
    assert site.tree(site.published()) == {"team-a/lib/x.so": b"x"}


def _tarball(files, suffix="tar.gz"):
    """A tarball of ``{path: bytes}`` compressed as its ``suffix`` says (``tar.zst`` by the zstd program)."""
    buf = io.BytesIO()
    mode = {"tar.gz": "w:gz", "tgz": "w:gz", "tar.bz2": "w:bz2", "tar.xz": "w:xz"}.get(suffix, "w")
    with tarfile.open(fileobj=buf, mode=mode) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.startswith("bin/") else 0o644
            archive.addfile(info, io.BytesIO(data))
    if suffix == "tar.zst":
        return subprocess.run(["zstd", "-q", "-c"], input=buf.getvalue(), capture_output=True, check=True).stdout
    return buf.getvalue()


def test_tarballs_under_the_ingest_prefix_are_ingested_then_removed(site):
    site.config["source"].update(ingest_prefix="ingest/", ingest_dir="sw")
    site.put("cvmfs/README", b"synced")
    site.put("ingest/tools/foo-1.0.tar.gz", _tarball({"bin/foo": b"#!/bin/sh\n", "share/doc": b"doc"}))
    site.put("ingest/notes.txt", b"not a tarball")
    result = site.run()
    assert result.returncode == 0, result.log
    published = site.tree(site.published())
    assert published["README"] == b"synced"
    assert published["sw/tools/foo-1.0/bin/foo"] == b"#!/bin/sh\n"
    ingest_call = [c["argv"] for c in site.calls() if c["argv"][0] == "ingest"][0]
    assert ingest_call[-3:] == ["-b", "sw/tools/foo-1.0", REPO]
    assert site.keys() == ["cvmfs/README", "ingest/notes.txt"], "an ingested tarball must leave the bucket"
    assert "not a tarball" in result.log
    assert site.last_run()["ingested"] == ["ingest/tools/foo-1.0.tar.gz"]
    assert_phases(site.last_run(), ["download", "ingest", "open", "plan", "publish", "sync"])
    # the next sync leaves the ingested tree alone (ingest_dir is excluded from the mirror)
    site.put("cvmfs/README", b"synced again")
    assert site.run().returncode == 0
    assert "sw/tools/foo-1.0/bin/foo" in site.tree(site.published())
    assert_clean(site)


def test_failed_ingest_keeps_the_tarball(site):
    site.config["source"].update(ingest_prefix="ingest/", ingest_dir="sw", sync=False)
    site.put("ingest/pkg.tar.gz", _tarball({"f": b"f"}))
    result = site.run(fail=["ingest"])
    assert result.returncode == 1, result.log
    assert site.keys() == ["ingest/pkg.tar.gz"]
    assert "ingest" in result.log
    assert_clean(site)


def ingest_calls(site):
    return [call for call in site.calls() if call["argv"][0] == "ingest"]


@pytest.mark.parametrize("suffix", ["tar", "tar.gz", "tgz", "tar.bz2", "tar.xz", "tar.zst"])
def test_each_kind_of_tarball_is_ingested(site, suffix):
    """cvmfs_server ingest reads plain tar only (the double too): the job decompresses into its stdin."""
    if suffix == "tar.zst" and not shutil.which("zstd"):
        pytest.skip("the zstd program is not installed on this machine (Debian: apt-get install zstd)")
    site.config["source"].update(ingest_prefix="ingest/", ingest_dir="sw", sync=False)
    payload = os.urandom(2 * 1024 * 1024 + 1)  # more than one chunk and more than a pipe holds
    site.put("ingest/pkg-1." + suffix, _tarball({"bin/tool": b"#!/bin/sh\n", "lib/payload": payload}, suffix))
    result = site.run()
    assert result.returncode == 0, result.log
    assert site.tree(site.published()) == {"sw/pkg-1/bin/tool": b"#!/bin/sh\n", "sw/pkg-1/lib/payload": payload}
    [call] = ingest_calls(site)
    if suffix == "tar":  # a plain tar goes by its path, as before
        assert call["argv"][1] == "-t" and call["argv"][2].endswith(".tar") and call["stdin_devnull"]
    else:
        assert call["argv"][1:3] == ["-t", "-"] and not call["stdin_devnull"]
    assert call["argv"][3:] == ["-b", "sw/pkg-1", REPO]
    assert site.keys() == [] and site.last_run()["ingested"] == ["ingest/pkg-1." + suffix]
    assert_clean(site)


def _truncated(data):
    return data[:len(data) // 2]


def _bad_checksum(data):
    """The gzip trailer's CRC-32 inverted: only the end of the stream shows that the data is wrong."""
    return data[:-8] + bytes(b ^ 0xFF for b in data[-8:-4]) + data[-4:]


@pytest.mark.parametrize("suffix,compression,damage", [
    ("tar.gz", "gzip", _truncated), ("tar.gz", "gzip", _bad_checksum), ("tar.xz", "xz", _truncated),
    ("tar.zst", "zstd", _truncated)], ids=["gz-truncated", "gz-bad-checksum", "xz-truncated", "zst-truncated"])
def test_corrupt_compressed_tarball_is_not_ingested_and_stays(site, suffix, compression, damage):
    if suffix == "tar.zst" and not shutil.which("zstd"):
        pytest.skip("the zstd program is not installed on this machine (Debian: apt-get install zstd)")
    site.config["source"].update(ingest_prefix="ingest/", ingest_dir="sw", sync=False)
    site.put("ingest/pkg." + suffix, damage(_tarball({"a": b"a", "b": os.urandom(300000), "c": b"c"}, suffix)))
    result = site.run()
    assert result.returncode == 1, result.log
    message = site.last_run()["message"]
    assert "s3://%s/ingest/pkg.%s is not a readable %s-compressed file" % (site.bucket, suffix, compression) in message
    assert "stays in the bucket" in message and message in result.log
    assert ingest_calls(site) == [], "cvmfs_server would have published what it read before the damage showed"
    assert site.keys() == ["ingest/pkg." + suffix]
    assert not site.published("sw", "pkg").exists()
    assert_clean(site)


def test_stop_signal_while_a_tarball_streams_in_kills_ingest_and_aborts(site):
    """cvmfs_server publishes the tar it has read when its stdin ends; a stop mid-stream must kill it."""
    site.config["source"].update(ingest_prefix="ingest/", ingest_dir="sw", sync=False)
    for tree in (site.union, site.published):  # made by an earlier run: no transaction (and shield) before ingest
        tree("sw").mkdir()
    site.put("ingest/pkg.tar.gz", _tarball({"first": b"1", "big": os.urandom(4 * 1024 * 1024), "last": b"2"}))
    result = site.run(signal_parent="ingest:reading")
    assert result.returncode == 1, result.log
    assert "stopped by signal %d" % signal.SIGTERM in site.last_run()["message"]
    assert "stopped cvmfs_server ingest (killed it and all it started)" in result.log
    assert "aborting the transaction it left open" in result.log
    assert site.commands() == ["ingest", "abort"]
    assert site.keys() == ["ingest/pkg.tar.gz"]
    assert not site.published("sw", "pkg").exists()
    assert_clean(site)


def test_zstd_tarball_without_the_zstd_program_is_named_and_stays(site, tmp_path):
    site.config["source"].update(ingest_prefix="ingest/", ingest_dir="sw", sync=False)
    site.put("ingest/pkg.tar.zst", b"(zstd data)")
    bin_dir = tmp_path / "bin"  # a PATH with python (for the double) and no zstd
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    result = site.run(env={"PATH": str(bin_dir)})
    assert result.returncode == 1, result.log
    message = site.last_run()["message"]
    assert "s3://%s/ingest/pkg.tar.zst is zstd-compressed" % site.bucket in message
    assert "install the package zstd" in message and "stays in the bucket" in message
    assert ingest_calls(site) == [] and site.keys() == ["ingest/pkg.tar.zst"]
    assert_clean(site)


def test_bad_config_exits_2(tmp_path, package_dir):
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"repository": REPO}))
    proc = subprocess.run([sys.executable, "-m", "sharedsw_cvmfs._publish_job", "--config", str(path)],
                          env=dict(os.environ, PYTHONPATH=package_dir), capture_output=True, check=False, text=True)
    assert proc.returncode == 2
    assert "lacks 'state_dir'" in proc.stderr


@pytest.fixture
def vanishing(site):
    """The job's S3 endpoint goes through a proxy that deletes ``cvmfs/gone`` just before it is
    first fetched (HEAD or GET): a key listed, then gone."""
    from ..test_s3_sync_listing import _deleting_proxy
    site.put("cvmfs/kept", b"stays")
    site.put("cvmfs/gone", b"deleted before it is fetched")
    proxy = _deleting_proxy(site.s3, site.bucket, {"cvmfs/gone"})
    site.config["source"]["endpoint_url"] = proxy.url
    yield site
    proxy.close()


def test_a_key_gone_when_fetched_fails_the_job_by_default(vanishing):
    result = vanishing.run()
    assert result.returncode == 1, result.log
    assert "cvmfs/gone" in result.log and "on_missing" in result.log
    assert vanishing.tree(vanishing.published()) == {}
    assert vanishing.last_run()["outcome"] == "failed"
    assert_clean(vanishing)


def test_on_missing_warn_publishes_the_rest_and_logs_the_key(vanishing):
    vanishing.config["source"]["on_missing"] = "warn"
    result = vanishing.run(plan_first=False)
    assert result.returncode == 0, result.log
    assert vanishing.tree(vanishing.published()) == {"kept": b"stays"}
    assert [line for line in result.log.splitlines() if "cvmfs/gone" in line and "gone when fetched" in line]
    assert vanishing.last_run()["sync"]["missing"] == {"count": 1, "bytes": len(b"deleted before it is fetched")}
    assert_clean(vanishing)
