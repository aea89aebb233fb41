"""s3_sync planning and applying against real S3 servers (Ceph RGW and SeaweedFS): what a
type change may remove, the modes uploaders may ask for, the reserved staging name, and what
a failed run leaves behind. Runs that matter for the repository owner are made as a non-root
user (``nobody``) through the command line, as the publisher's job runs them."""

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _s3_rules as rules
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError

from .test_s3_sync import put, sync, tree

pytestmark = pytest.mark.integration

OWNER = pwd.getpwnam("nobody")


@pytest.fixture
def bucket(s3_server):
    return s3_server.make_bucket("apply")


@pytest.fixture
def owned_dirs():
    """dest and state file owned by the (non-root) repository owner when the tests run as root,
    in a directory that user can reach (pytest's tmp_path is private to root)."""
    base = tempfile.mkdtemp(prefix="s3sync-owner-")
    os.chmod(base, 0o755)
    dest = os.path.join(base, "repo")
    state_dir = os.path.join(base, "state")
    for path in (dest, state_dir):
        os.mkdir(path, 0o755)
        if os.geteuid() == 0:
            os.chown(path, OWNER.pw_uid, OWNER.pw_gid)
    try:
        yield dest, os.path.join(state_dir, "sync.json")
    finally:
        for root, subdirs, unused in os.walk(base):
            for name in subdirs:
                os.chmod(os.path.join(root, name), 0o755)  # a 0000 directory must not stop the cleanup
        shutil.rmtree(base)


def cli_as_owner(server, bucket, dirs, *extra):
    """The command line, as the repository owner, with the system's Python (no boto3 needed)."""
    from tests.conftest import COLLECTIONS_ROOT
    dest, state = dirs
    env = dict(os.environ, PYTHONPATH=COLLECTIONS_ROOT, AWS_ACCESS_KEY_ID=server.access_key,
               AWS_SECRET_ACCESS_KEY=server.secret_key, AWS_REGION=server.region, HOME="/nonexistent")
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    argv = [python, "-m", "ansible_collections.sharedsw.cvmfs.plugins.module_utils._s3_sync_cli",
            "--endpoint-url", server.endpoint_url, "--bucket", bucket, "--dest", dest, "--state-file", state,
            "--max-workers", "4"] + list(extra)
    if os.geteuid() == 0:
        argv = ["setpriv", "--reuid", str(OWNER.pw_uid), "--regid", str(OWNER.pw_gid), "--clear-groups"] + argv
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, cwd="/")
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def content(path):
    with open(path, "rb") as handle:
        return handle.read()


def marker_keeps_metadata(server, bucket, key):
    """SeaweedFS keeps no user metadata on directory markers (then the default mode applies)."""
    return "mode" in server.client().head_object(Bucket=bucket, Key=key)["Metadata"]


# ------------------------------------------------------------------------------ item: type changes

def test_type_change_never_removes_excluded_content(s3_server, bucket, dirs):
    dest = dirs[0]
    exclude = ["sw/.ingest"]
    put(s3_server, bucket, "cvmfs/sw/a.txt", b"a")
    put(s3_server, bucket, "cvmfs/other/x", b"x")
    put(s3_server, bucket, "cvmfs/other/sub/y", b"y")
    sync(s3_server, bucket, dirs, exclude=exclude)
    os.mkdir(os.path.join(dest, "sw", ".ingest"))
    with open(os.path.join(dest, "sw", ".ingest", "pending.tar"), "wb") as handle:
        handle.write(b"pinned")
    s3_server.client().delete_object(Bucket=bucket, Key="cvmfs/sw/a.txt")
    put(s3_server, bucket, "cvmfs/sw", b"sw is a file now")
    before = tree(dest)

    with pytest.raises(CvmfsError) as failure:
        sync(s3_server, bucket, dirs, exclude=exclude)
    reasons = dict((r["key"], r["reason"]) for r in failure.value.extra["rejections"])
    assert list(reasons) == ["cvmfs/sw"] and "excluded" in reasons["cvmfs/sw"], reasons
    assert tree(dest) == before
    with pytest.raises(CvmfsError):
        sync(s3_server, bucket, dirs, exclude=exclude, check_mode=True)

    result = sync(s3_server, bucket, dirs, exclude=exclude, on_invalid="skip")
    assert [r["key"] for r in result["rejections"]] == ["cvmfs/sw"]
    assert result["changed_paths"]["deleted"] == ["sw/a.txt"]
    assert content(os.path.join(dest, "sw", ".ingest", "pending.tar")) == b"pinned"

    # without excluded content below it the directory is replaced, and everything removed is listed
    for key in ("cvmfs/other/x", "cvmfs/other/sub/y"):
        s3_server.client().delete_object(Bucket=bucket, Key=key)
    put(s3_server, bucket, "cvmfs/other", b"other is a file now")
    result = sync(s3_server, bucket, dirs, exclude=exclude, on_invalid="skip")
    assert result["changed_paths"]["deleted"] == ["other/sub", "other/sub/y", "other/x"]
    assert result["changed_paths"]["updated"] == ["other"]
    assert content(os.path.join(dest, "other")) == b"other is a file now"


# ------------------------------------------------------------------------------ item: uploader modes

def test_uploader_modes_never_open_write_or_lock_out_the_owner(s3_server, bucket, owned_dirs):
    dest = owned_dirs[0]
    asked = {"world-rw": "0666", "world-rwx": "0777", "none": "0000", "write-only": "0220", "group-w": "0775"}
    for name, mode in asked.items():
        put(s3_server, bucket, "cvmfs/files/" + name, b"x", mode=mode)
    put(s3_server, bucket, "cvmfs/files/s3cmd", b"x", s3cmd_attrs="mode:%d/mtime:1500000000" % 0o100777)
    put(s3_server, bucket, "cvmfs/locked/", b"", mode="0000")
    put(s3_server, bucket, "cvmfs/locked/f", b"f")
    put(s3_server, bucket, "cvmfs/readonly/", b"", mode="0555")
    put(s3_server, bucket, "cvmfs/readonly/f", b"f")
    put(s3_server, bucket, "cvmfs/open/", b"", mode="0777")
    put(s3_server, bucket, "cvmfs/open/f", b"f")

    code, result = cli_as_owner(s3_server, bucket, owned_dirs)
    assert code == 0, result
    modes = dict((path, stat.S_IMODE(os.lstat(os.path.join(dest, path)).st_mode)) for path in tree(dest))
    assert modes["files/world-rw"] == 0o644
    assert modes["files/world-rwx"] == 0o755
    assert modes["files/none"] == 0o600
    assert modes["files/write-only"] == 0o600
    assert modes["files/group-w"] == 0o755
    assert modes["files/s3cmd"] == 0o755
    has_meta = marker_keeps_metadata(s3_server, bucket, "cvmfs/locked/")
    assert modes["locked"] == (0o700 if has_meta else 0o755)
    assert modes["readonly"] == 0o755
    assert modes["open"] == 0o755
    assert not [p for p, m in modes.items() if m & 0o022], modes

    # the owner's next runs work: the tree can be read and written
    put(s3_server, bucket, "cvmfs/locked/f", b"f2")
    put(s3_server, bucket, "cvmfs/readonly/g", b"g")
    code, result = cli_as_owner(s3_server, bucket, owned_dirs)
    assert code == 0, result
    assert result["changed_paths"]["updated"] == ["locked/f"] and result["changed_paths"]["added"] == ["readonly/g"]
    code, result = cli_as_owner(s3_server, bucket, owned_dirs)
    assert code == 0 and result["changed"] is False, result


# ------------------------------------------------------------------------------ item: reserved name

def test_reserved_staging_names_at_the_top_are_removed_and_reported(s3_server, bucket, dirs):
    dest = dirs[0]
    put(s3_server, bucket, "cvmfs/f", b"f")
    os.symlink("/etc", os.path.join(dest, rules.STAGING_PREFIX + "1.link"))
    with open(os.path.join(dest, rules.STAGING_PREFIX + "note"), "w") as handle:
        handle.write("published by nobody's wish")
    os.makedirs(os.path.join(dest, rules.STAGING_PREFIX + "2.dead", "x"))  # a killed run's leftover
    os.makedirs(os.path.join(dest, "d", rules.STAGING_PREFIX + "deep"))   # below the top: an ordinary name
    reserved = [rules.STAGING_PREFIX + "1.link", rules.STAGING_PREFIX + "note"]

    planned = sync(s3_server, bucket, dirs, delete=False, check_mode=True)
    assert sorted(planned["changed_paths"]["deleted"]) == reserved
    assert os.path.islink(os.path.join(dest, reserved[0]))

    result = sync(s3_server, bucket, dirs, delete=False)
    assert sorted(result["changed_paths"]["deleted"]) == reserved
    assert sorted(os.listdir(dest)) == ["d", "f"]
    assert os.path.isdir(os.path.join(dest, "d", rules.STAGING_PREFIX + "deep"))
    assert sync(s3_server, bucket, dirs, delete=False)["changed"] is False


# ------------------------------------------------------------------------------ item: same-run verdicts

def test_fail_mode_judges_symlink_targets_in_the_same_run(s3_server, bucket, dirs):
    put(s3_server, bucket, "cvmfs/a", b"file")
    put(s3_server, bucket, "cvmfs/a/b", b"below a file")
    for number in range(12):
        put(s3_server, bucket, "cvmfs/d%d/file" % number, b"%d" % number)
    outside = ["cvmfs/link-out-%d" % number for number in range(3)]
    for key in outside:
        put(s3_server, bucket, key, b"", symlink_target="../../etc/passwd")
    put(s3_server, bucket, "cvmfs/link-in", b"", symlink_target="d0/file")
    with pytest.raises(CvmfsError) as failure:
        sync(s3_server, bucket, dirs)
    reasons = dict((r["key"], r["reason"]) for r in failure.value.extra["rejections"])
    assert sorted(reasons) == ["cvmfs/a"] + outside, reasons
    for key in outside:
        assert "outside" in reasons[key]
    assert os.listdir(dirs[0]) == []


# ------------------------------------------------------------------------------ item: exit 1

def test_local_permission_problem_fails_before_anything_changes(s3_server, bucket, owned_dirs):
    dest = owned_dirs[0]
    for key in ("cvmfs/a.txt", "cvmfs/sub/b.txt", "cvmfs/z.txt"):
        put(s3_server, bucket, key, b"old")
    put(s3_server, bucket, "cvmfs/gone.txt", b"old")
    code, result = cli_as_owner(s3_server, bucket, owned_dirs)
    assert code == 0, result
    for key in ("cvmfs/a.txt", "cvmfs/sub/b.txt", "cvmfs/z.txt"):
        put(s3_server, bucket, key, b"new")
    s3_server.client().delete_object(Bucket=bucket, Key="cvmfs/gone.txt")
    put(s3_server, bucket, "cvmfs/new/c.txt", b"new")
    if os.geteuid() == 0:
        os.chown(os.path.join(dest, "sub"), 0, 0)  # somebody else's directory inside the repository
    else:
        os.chmod(os.path.join(dest, "sub"), 0o555)
    before = tree(dest)

    code, result = cli_as_owner(s3_server, bucket, owned_dirs)
    assert code == 1 and result["failed"] is True, result
    assert "sub" in result["msg"] and "not writable" in result["msg"], result["msg"]
    assert result.get("partially_applied") is False
    assert tree(dest) == before
    assert not [n for n in os.listdir(dest) if n.startswith(rules.STAGING_PREFIX)]

    if os.geteuid() == 0:
        os.chown(os.path.join(dest, "sub"), OWNER.pw_uid, OWNER.pw_gid)
    else:
        os.chmod(os.path.join(dest, "sub"), 0o755)
    code, result = cli_as_owner(s3_server, bucket, owned_dirs)
    assert code == 0, result
    assert sorted(result["changed_paths"]["updated"]) == ["a.txt", "sub/b.txt", "z.txt"]
    assert result["changed_paths"]["deleted"] == ["gone.txt"]
    assert content(os.path.join(dest, "new", "c.txt")) == b"new"
