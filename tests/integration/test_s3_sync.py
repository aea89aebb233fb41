"""s3_sync against real S3 servers (the harness's ``s3_server``: Ceph RGW and SeaweedFS).

Most semantics are driven through the engine in-process (fast); the module is run for real
with ``run_module`` where the module's behaviour itself is the point (check/diff mode, the
failure it reports when the server dies).
"""

import hashlib
import os
import stat
import threading
import time

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _s3_http as http
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _s3_sync as engine
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _s3_connect as connection
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _s3_rules as rules
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError

from .s3_fault_proxy import FaultProxy
from ..unit.plugins.module_utils.s3_sync_corpus import CORPUS

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


# ------------------------------------------------------------------------------ helpers

@pytest.fixture
def bucket(s3_server):
    return s3_server.make_bucket("sync")


def put(server, bucket, key, body=b"", **meta):
    server.client().put_object(Bucket=bucket, Key=key, Body=body,
                               Metadata=dict((k.replace("_", "-"), str(v)) for k, v in meta.items()))


def put_raw(server, bucket, key_bytes, endpoint_url=None):
    """PUT a zero-byte object whose key is arbitrary bytes (boto3 only takes str keys)."""
    from urllib.parse import urlsplit
    parts = urlsplit(endpoint_url or server.endpoint_url)
    creds = type("C", (), {"access_key": server.access_key, "secret_key": server.secret_key, "token": None})
    signer = http.SigV4(lambda: creds, server.region)
    path = "/%s/%s" % (bucket, http.uri_encode(key_bytes))
    conn = http.Connection(http.Endpoint("http://%s/%s/x" % (parts.netloc, bucket), "x"))
    headers = signer.sign("PUT", parts.netloc, path) + [("Content-Length", "0")]
    response = conn.request("PUT", path, headers)
    conn.close()
    return response.status


def conn_options(server, endpoint_url=None, retries=2):
    return connection.ConnectionOptions(endpoint_url=endpoint_url or server.endpoint_url, region=server.region,
                                        access_key=server.access_key, secret_key=server.secret_key, retries=retries)


def sync(server, bucket, dirs, endpoint_url=None, retries=2, **options):
    dest, state = dirs
    options.setdefault("max_workers", 8)
    options.setdefault("retries", retries)
    return engine.sync(conn_options(server, endpoint_url, retries),
                       engine.Options(bucket=bucket, dest=dest, state_file=state, **options))


def tree(dest):
    """{path: (kind, content or target, mode, mtime seconds, inode, mtime_ns)} below dest."""
    out = {}
    for root, dirnames, filenames in os.walk(dest):
        for name in dirnames + filenames:
            full = os.path.join(root, name)
            rel = os.path.relpath(full, dest)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                data, kind = os.readlink(full), "l"
            elif stat.S_ISDIR(st.st_mode):
                data, kind = None, "d"
            else:
                with open(full, "rb") as handle:
                    data = hashlib.md5(handle.read()).hexdigest()
                kind = "f"
            out[rel] = (kind, data, stat.S_IMODE(st.st_mode), int(st.st_mtime), st.st_ino, st.st_mtime_ns)
    return out


def md5(data):
    return hashlib.md5(data).hexdigest()


# ------------------------------------------------------------------------------ semantics

def test_mirror_idempotence_and_changes(s3_server, bucket, dirs):
    dest = dirs[0]
    big = os.urandom(6 * MIB + 123)
    put(s3_server, bucket, "cvmfs/bin/tool", b"#!/bin/sh\n", s3cmd_attrs="atime:1/gid:0/mode:33261/mtime:1500000000/uid:0")
    put(s3_server, bucket, "cvmfs/bin/rtool", b"rclone", mtime="1577934245.5", mode="100750")
    put(s3_server, bucket, "cvmfs/lib/libx.so.1.2", b"\x7fELF" + os.urandom(3000))
    put(s3_server, bucket, "cvmfs/lib/libx.so", b"", symlink_target="libx.so.1.2")
    put(s3_server, bucket, "cvmfs/lib/big.dat", big, mode="0600")
    put(s3_server, bucket, "cvmfs/empty", b"")
    put(s3_server, bucket, "cvmfs/.cvmfscatalog", b"")
    put(s3_server, bucket, "cvmfs/sub/.cvmfsdirtab", b"/sub/*\n")
    put(s3_server, bucket, "cvmfs/private/", b"", mode="0700")
    put(s3_server, bucket, "cvmfs/emptydir/", b"")
    put(s3_server, bucket, "cvmfs/deep/a/b/c/file.txt", b"deep")
    put(s3_server, bucket, "outside/never.txt", b"not below the prefix")

    result = sync(s3_server, bucket, dirs, multipart_threshold=5 * MIB)
    assert result["changed"] is True
    assert result["rejected"]["count"] == 0
    got = tree(dest)
    assert set(got) == {"bin", "bin/tool", "bin/rtool", "lib", "lib/libx.so.1.2", "lib/libx.so", "lib/big.dat",
                        "empty", ".cvmfscatalog", "sub", "sub/.cvmfsdirtab", "private", "emptydir",
                        "deep", "deep/a", "deep/a/b", "deep/a/b/c", "deep/a/b/c/file.txt"}
    assert got["bin/tool"][2:4] == (0o755, 1500000000)
    assert got["bin/rtool"][2:4] == (0o750, 1577934245)
    assert got["bin/rtool"][5] == 1577934245500000000
    assert got["lib/libx.so"][:2] == ("l", "libx.so.1.2")
    assert got["lib/big.dat"][1:3] == (md5(big), 0o600)
    assert got["lib/libx.so.1.2"][2] == 0o644
    assert got["empty"][:2] == ("f", md5(b""))
    # SeaweedFS 4.48 keeps no user metadata on directory markers: then the default applies
    marker_meta = s3_server.client().head_object(Bucket=bucket, Key="cvmfs/private/")["Metadata"]
    assert got["private"][:3] == ("d", None, 0o700 if marker_meta.get("mode") == "0700" else 0o755)
    assert got["emptydir"][2] == got["deep/a"][2] == 0o755
    assert result["added"]["count"] == len(got)
    assert result["transferred_bytes"] == sum(len(b) for b in (b"#!/bin/sh\n", b"rclone", big, b"deep", b"/sub/*\n")) + 3004
    assert not [n for n in os.listdir(dest) if n.startswith(".s3sync")]

    # idempotence: nothing changes, nothing is written (inodes and mtimes, directories too)
    again = sync(s3_server, bucket, dirs, multipart_threshold=5 * MIB)
    assert again["changed"] is False
    assert again["transferred_bytes"] == 0
    assert again["unchanged"]["count"] == len([p for p in got if got[p][0] != "d"]) + 2  # + the two markers
    assert tree(dest) == got

    # changes: content, metadata only, deletion, file -> directory, a new file
    client = s3_server.client()
    # LastModified has whole seconds: a metadata-only change within the second of the version
    # already synced looks unchanged in a listing (docs/s3-sync.md, "Limits"). Change it later.
    synced_at = client.head_object(Bucket=bucket, Key="cvmfs/bin/tool")["LastModified"].timestamp()
    while time.time() < synced_at + 1.2:
        time.sleep(0.05)
    put(s3_server, bucket, "cvmfs/lib/libx.so.1.2", b"\x7fELF v2")
    client.copy_object(Bucket=bucket, Key="cvmfs/bin/tool", CopySource={"Bucket": bucket, "Key": "cvmfs/bin/tool"},
                       Metadata={"mode": "0700", "mtime": "1600000000"}, MetadataDirective="REPLACE")
    client.delete_object(Bucket=bucket, Key="cvmfs/empty")
    client.delete_object(Bucket=bucket, Key="cvmfs/deep/a/b/c/file.txt")
    put(s3_server, bucket, "cvmfs/deep/a/b/c/file.txt/now-a-dir", b"x")
    put(s3_server, bucket, "cvmfs/new.txt", b"new")
    third = sync(s3_server, bucket, dirs, multipart_threshold=5 * MIB, diff=True)
    after = tree(dest)
    assert third["changed"] is True
    assert third["changed_paths"]["deleted"] == ["empty"]
    assert third["changed_paths"]["added"] == ["deep/a/b/c/file.txt/now-a-dir", "new.txt"]
    assert sorted(third["changed_paths"]["updated"]) == ["bin/tool", "deep/a/b/c/file.txt", "lib/libx.so.1.2"]
    assert after["bin/tool"][1:4] == (got["bin/tool"][1], 0o700, 1600000000)
    assert after["bin/tool"][4] == got["bin/tool"][4], "a metadata-only change must not rewrite the file"
    assert after["lib/libx.so.1.2"][1] == md5(b"\x7fELF v2")
    assert after["deep/a/b/c/file.txt"][0] == "d"
    for path in ("bin/rtool", "lib/big.dat", "lib/libx.so", "sub/.cvmfsdirtab", ".cvmfscatalog"):
        assert after[path] == got[path], path
    assert "+ new.txt" in third["diff"]["prepared"] and "- empty" in third["diff"]["prepared"]


def test_no_state_means_no_rewrite(s3_server, bucket, dirs):
    dest, state = dirs
    put(s3_server, bucket, "cvmfs/a.txt", b"aaa")
    put(s3_server, bucket, "cvmfs/b.txt", b"bbb", mtime="1500000000")
    sync(s3_server, bucket, dirs)
    before = tree(dest)
    os.unlink(state)
    # a file copied without its mtime: same content, so only the mtime is fixed
    os.utime(os.path.join(dest, "a.txt"), (1000, 1000))
    result = sync(s3_server, bucket, dirs)
    after = tree(dest)
    assert result["transferred_bytes"] == 0
    assert result["changed_paths"]["updated"] == ["a.txt"]
    assert after["a.txt"][4] == before["a.txt"][4] and after["a.txt"][3] == before["a.txt"][3]
    assert after["b.txt"] == before["b.txt"]
    # and with the state file back, a hand-edited file is noticed and replaced
    with open(os.path.join(dest, "b.txt"), "wb") as handle:
        handle.write(b"BBBB")
    result = sync(s3_server, bucket, dirs)
    assert result["changed_paths"]["updated"] == ["b.txt"]
    assert tree(dest)["b.txt"][1] == md5(b"bbb")


def test_delete_false_include_exclude(s3_server, bucket, dirs):
    dest = dirs[0]
    for key in ("cvmfs/keep/a.so", "cvmfs/keep/b.txt", "cvmfs/skip/c.so", "cvmfs/tmp.so"):
        put(s3_server, bucket, key, b"x")
    os.makedirs(os.path.join(dest, "skip"))
    with open(os.path.join(dest, "skip", "local-only"), "w") as handle:
        handle.write("mine")
    result = sync(s3_server, bucket, dirs, include=["*.so"], exclude=["skip", "tmp.*"])
    assert sorted(p for p, v in tree(dest).items() if v[0] == "f") == ["keep/a.so", "skip/local-only"]
    assert result["deleted"]["count"] == 0
    s3_server.client().delete_object(Bucket=bucket, Key="cvmfs/keep/a.so")
    result = sync(s3_server, bucket, dirs, include=["*.so"], exclude=["skip", "tmp.*"], delete=False)
    assert os.path.exists(os.path.join(dest, "keep/a.so")) and result["changed"] is False
    result = sync(s3_server, bucket, dirs, include=["*.so"], exclude=["skip", "tmp.*"])
    assert result["changed_paths"]["deleted"] == ["keep", "keep/a.so"]
    assert os.path.exists(os.path.join(dest, "skip/local-only"))


def test_rejections_fail_writes_nothing_skip_syncs_the_rest(s3_server, bucket, dirs):
    dest = dirs[0]
    put(s3_server, bucket, "cvmfs/good.txt", b"good")
    put(s3_server, bucket, "cvmfs/a", b"file")
    put(s3_server, bucket, "cvmfs/a/b", b"below a file")
    put(s3_server, bucket, "cvmfs/Case/x", b"1")
    put(s3_server, bucket, "cvmfs/case/y", b"2")
    put(s3_server, bucket, "cvmfs/link-out", b"", symlink_target="../../etc/passwd")
    put(s3_server, bucket, "cvmfs/link-in", b"", symlink_target="good.txt")
    with pytest.raises(CvmfsError) as failure:
        sync(s3_server, bucket, dirs, reject_case_conflicts=True)
    reasons = dict((r["key"], r["reason"]) for r in failure.value.extra["rejections"])
    assert "file and a directory prefix" in reasons["cvmfs/a"]
    assert "case-only duplicate" in reasons["cvmfs/Case/x"] and "case-only duplicate" in reasons["cvmfs/case/y"]
    assert "outside" in reasons["cvmfs/link-out"]  # judged in the same run
    assert os.listdir(dest) == []

    result = sync(s3_server, bucket, dirs, reject_case_conflicts=True, on_invalid="skip")
    assert result["rejected"]["count"] == 4
    assert "outside" in dict((r["key"], r["reason"]) for r in result["rejections"])["cvmfs/link-out"]
    files = tree(dest)
    assert sorted(files) == ["a", "a/b", "good.txt", "link-in"]
    assert files["a"][0] == "d" and files["link-in"][:2] == ("l", "good.txt")
    # escape allowed on request
    result = sync(s3_server, bucket, dirs, on_invalid="skip", allow_symlink_escape=True)
    assert os.readlink(os.path.join(dest, "link-out")) == "../../etc/passwd"


def test_hostile_corpus_through_the_server(s3_server, bucket, dirs):
    """Store every corpus key the server accepts; the verdicts must survive listing."""
    expected = {}
    for key, verdict in CORPUS:
        if not key or len(key) > 1000:
            continue
        full = b"cvmfs/" + key
        if put_raw(s3_server, bucket, full) == 200:
            expected[full] = verdict
    put(s3_server, bucket, "cvmfs/plain.txt", b"plain")
    listed = set()
    fast = connection.connect(conn_options(s3_server), bucket)[0]
    token = None
    while True:
        objects, token = fast.list_page("cvmfs/", token)
        listed.update(o.key for o in objects)
        if not token:
            break
    stored = dict((k, v) for k, v in expected.items() if k in listed)
    assert len(stored) >= 50, "the server stored only %d corpus keys" % len(stored)
    # the engine's parallel listing (delimited top level + each prefix in full) sees exactly
    # what a plain listing sees, each key once
    from queue import SimpleQueue
    for more in ("cvmfs/nested/a/b/c", "cvmfs/nested/", "cvmfs/x/", "cvmfs/x/y"):
        put(s3_server, bucket, more, b"n")
    plain = []
    while True:
        objects, token = fast.list_page("cvmfs/", token)
        plain.extend(o.key for o in objects)
        if not token:
            break
    pages = SimpleQueue()
    engine.Sync(engine.Options(bucket=bucket, dest=dirs[0], state_file=dirs[1]), fast, "x")._list(pages)
    seen = []
    for page in iter(pages.get, None):
        assert not isinstance(page, BaseException), page
        seen.extend(o.key for o in page)
    assert sorted(seen) == sorted(plain) and len(set(seen)) == len(seen)
    with pytest.raises(CvmfsError) as failure:
        sync(s3_server, bucket, dirs, max_reported=1000)
    assert os.listdir(dirs[0]) == []
    result = sync(s3_server, bucket, dirs, on_invalid="skip", max_reported=1000)
    rejected = dict((r["key"], r["reason"]) for r in result["rejections"])
    for key, verdict in stored.items():
        shown = rules.display(key)
        if verdict is None:
            # corpus keys may collide with each other ("..." and ".../x"): that rule only
            assert "file and a directory prefix" in rejected.get(shown, "file and a directory prefix"), key
        elif shown in rejected:
            assert verdict in rejected[shown], (key, rejected[shown])
        else:
            # e.g. "a" rejected as a file that is also a directory prefix is fine; a hostile
            # key must never be accepted
            raise AssertionError("hostile key %r was accepted" % key)
    assert len(failure.value.extra["rejections"]) == len(rejected)
    for root, unused, files in os.walk(dirs[0]):
        for name in files:
            assert os.path.realpath(os.path.join(root, name)).startswith(os.path.realpath(dirs[0]) + "/")


# ------------------------------------------------------------------------------ module

def test_module_check_diff_and_idempotence(s3_server, bucket, dirs, run_module):
    dest, state = dirs
    put(s3_server, bucket, "cvmfs/x/y.txt", b"y", mode="0755")
    args = dict(s3_server.module_args(), bucket=bucket, dest=dest, state_file=state)
    check = run_module("s3_sync", args, check=True, diff=True)
    assert not check.failed, check
    assert check["changed"] is True and os.listdir(dest) == []
    assert check["diff"]["prepared"] == "+ x\n+ x/y.txt\n"
    assert not os.path.exists(state)
    first = run_module("s3_sync", args)
    assert first["changed"] is True and first["added"] == {"count": 2, "bytes": 1}
    assert stat.S_IMODE(os.stat(os.path.join(dest, "x/y.txt")).st_mode) == 0o755
    second = run_module("s3_sync", args, check=True)
    third = run_module("s3_sync", args)
    assert second["changed"] is False and third["changed"] is False
    assert "secret" not in str(third).replace("secret_key", "")  # no_log hides the secret


def test_module_reports_bad_bucket_and_credentials(s3_server, dirs, run_module):
    dest, state = dirs
    args = dict(s3_server.module_args(), bucket="no-such-bucket-s3sync", dest=dest, state_file=state, retries=0)
    missing = run_module("s3_sync", args)
    assert missing.failed and "no-such-bucket-s3sync" in missing["msg"] and "NoSuchBucket" in missing["msg"]
    args.update(bucket="whatever", secret_key="wrong-secret")
    denied = run_module("s3_sync", args)
    assert denied.failed and "403" in denied["msg"]
    assert "wrong-secret" not in str(denied)
    inside = run_module("s3_sync", dict(args, state_file=os.path.join(dest, "s.json")))
    assert inside.failed and "outside" in inside["msg"]


# ------------------------------------------------------------------------------ faults

def _upstream(server):
    from urllib.parse import urlsplit
    parts = urlsplit(server.endpoint_url)
    return parts.hostname, parts.port


def _populate(server, bucket, count, tag):
    bodies = {}
    for number in range(count):
        body = (b"%s-%04d-" % (tag, number)) * (50 + number % 40)
        key = "cvmfs/d%d/f%04d" % (number % 5, number)
        put(server, bucket, key, body)
        bodies[key[len("cvmfs/"):]] = md5(body)
    return bodies


def _assert_old_or_new(dest, old, new):
    for path, digest in tree(dest).items():
        if digest[0] == "f":
            assert digest[1] in (old.get(path), new.get(path)), path
    assert not [n for n in os.listdir(dest) if n.startswith(".s3sync")]


def test_transient_faults_are_retried(s3_server, bucket, dirs):
    bodies = _populate(s3_server, bucket, 30, b"v1")
    seen = {}

    def rule(method, path, number):
        # every object fails once: a 503, a reset or a cut mid-body; listing gets a 503 too
        count = seen[path] = seen.get(path, 0) + 1
        if count > 1:
            return "pass"
        return ("503", "reset", "cut")[number % 3]

    proxy = FaultProxy(*_upstream(s3_server), rule=rule)
    try:
        result = sync(s3_server, bucket, dirs, endpoint_url=proxy.url, retries=3, max_workers=4)
    finally:
        proxy.close()
    assert result["added"]["count"] == 35
    assert {p: v[1] for p, v in tree(dirs[0]).items() if v[0] == "f"} == bodies
    assert {"503", "reset", "cut"} <= set(entry[2] for entry in proxy.log)


def test_persistent_fault_fails_cleanly(s3_server, bucket, dirs):
    old = _populate(s3_server, bucket, 20, b"v1")
    sync(s3_server, bucket, dirs)
    new = _populate(s3_server, bucket, 20, b"v2")

    def rule(method, path, number):
        return "cut" if method == "GET" and path.endswith("/d3/f0013") else "pass"

    proxy = FaultProxy(*_upstream(s3_server), rule=rule)
    try:
        with pytest.raises(CvmfsError) as failure:
            sync(s3_server, bucket, dirs, endpoint_url=proxy.url, retries=1, max_workers=4)
    finally:
        proxy.close()
    assert "f0013" in failure.value.message and "missing" in failure.value.message
    _assert_old_or_new(dirs[0], old, new)
    assert {p: v[1] for p, v in tree(dirs[0]).items() if v[0] == "f"} == old  # all-or-nothing
    result = sync(s3_server, bucket, dirs)
    assert result["changed_paths"]["updated"] == sorted(new)


def test_server_killed_mid_sync(seaweedfs_factory, dirs, run_module):
    server = seaweedfs_factory()
    bucket = server.make_bucket("kill")
    dest, state = dirs
    old = _populate(server, bucket, 60, b"v1")
    args = dict(server.module_args(), bucket=bucket, dest=dest, state_file=state, retries=1, max_workers=4)
    assert run_module("s3_sync", args)["changed"] is True
    new = _populate(server, bucket, 60, b"v2")
    killed = threading.Event()

    def kill():
        if not killed.is_set():
            killed.set()
            server.kill()

    gets = [0]

    def rule(method, path, number):
        if method == "GET" and "list-type" not in path:
            gets[0] += 1
            if gets[0] == 20:
                return kill
        return "pass"

    proxy = FaultProxy(*_upstream(server), rule=rule)
    try:
        failed = run_module("s3_sync", dict(args, endpoint_url=proxy.url))
    finally:
        proxy.close()
    assert killed.is_set()
    assert failed.failed and failed["rc"] != 0, failed
    _assert_old_or_new(dest, old, new)
    server.start()
    done = run_module("s3_sync", args)
    assert not done.failed, done
    assert {p: v[1] for p, v in tree(dest).items() if v[0] == "f"} == new


# ------------------------------------------------------------------------------ command line

def _cli(server, bucket, dest, state, *extra):
    import json
    import subprocess
    import sys
    from tests.conftest import COLLECTIONS_ROOT
    env = dict(os.environ, PYTHONPATH=COLLECTIONS_ROOT, AWS_ACCESS_KEY_ID=server.access_key,
               AWS_SECRET_ACCESS_KEY=server.secret_key, AWS_REGION=server.region)
    proc = subprocess.run([sys.executable, "-m", "ansible_collections.sharedsw.cvmfs.plugins.module_utils._s3_sync_cli",
                           "--endpoint-url", server.endpoint_url, "--bucket", bucket, "--dest", dest,
                           "--state-file", state] + list(extra), env=env, capture_output=True, text=True, check=False)
    return proc.returncode, json.loads(proc.stdout)


def test_cli_exit_codes_and_json(s3_server, bucket, dirs):
    import fcntl
    dest, state = dirs
    put(s3_server, bucket, "cvmfs/bin/run", b"#!/bin/sh\n", mode="755")
    assert _cli(s3_server, bucket, dest, state, "--check")[1]["changed"] is True
    code, result = _cli(s3_server, bucket, dest, state)
    assert code == 0 and result["changed"] is True and result["added"]["count"] == 2
    code, result = _cli(s3_server, bucket, dest, state)
    assert code == 0 and result["changed"] is False
    put(s3_server, bucket, "cvmfs/bin/run/x", b"makes bin/run a file and a directory")
    code, result = _cli(s3_server, bucket, dest, state)
    assert code == 3 and result["failed"] and result["rejections"][0]["key"] == "cvmfs/bin/run"
    code, result = _cli(s3_server, bucket, dest, state, "--on-invalid", "skip")
    assert code == 0 and result["rejected"]["count"] == 1
    with open(state + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        code, result = _cli(s3_server, bucket, dest, state)
    assert code == 4 and "another s3_sync run" in result["msg"]
    code, result = _cli(s3_server, "no-such-bucket-s3sync", dest, state + ".2")
    assert code == 1 and "NoSuchBucket" in result["msg"]


def test_cli_sigterm_mid_sync_removes_staging(s3_server, bucket, dirs):
    import json
    import signal
    import subprocess
    import sys
    import time
    from tests.conftest import COLLECTIONS_ROOT
    dest, state = dirs
    old = _populate(s3_server, bucket, 10, b"v1")
    sync(s3_server, bucket, dirs)
    new = _populate(s3_server, bucket, 10, b"v2")
    proxy = FaultProxy(*_upstream(s3_server), rule=lambda method, path, number: (lambda: time.sleep(0.5)))
    env = dict(os.environ, PYTHONPATH=COLLECTIONS_ROOT, AWS_ACCESS_KEY_ID=s3_server.access_key,
               AWS_SECRET_ACCESS_KEY=s3_server.secret_key, AWS_REGION=s3_server.region)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ansible_collections.sharedsw.cvmfs.plugins.module_utils._s3_sync_cli",
             "--endpoint-url", proxy.url, "--bucket", bucket, "--dest", dest, "--state-file", state,
             "--max-workers", "2"], env=env, stdout=subprocess.PIPE, text=True)
        deadline = time.time() + 30
        while not any("list-type" not in entry[1] and entry[0] == "GET" for entry in list(proxy.log)):
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=60)[0]
    finally:
        proxy.close()
    assert proc.returncode == 143, out
    assert json.loads(out)["failed"] is True
    _assert_old_or_new(dest, old, new)
    assert {p: v[1] for p, v in tree(dest).items() if v[0] == "f"} == old
