"""The sync engine's planning and applying, over an in-memory S3.

``MemoryS3`` is a TEST DOUBLE of the S3 transport (list_page/head/get), used to reach corner
cases quickly and deterministically; the same semantics run against real Ceph RGW and
SeaweedFS in tests/integration/test_s3_sync.py.
"""

import hashlib
import os
import stat
import time

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _s3_fetch as fetch
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _s3_http as http
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _s3_local as local
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _s3_rules as rules
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _s3_sync as engine
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError


class MemoryS3:
    """Test double: objects kept in a dict, listed in a scrambled order (like SeaweedFS), three
    per page, with "/" delimiter support."""

    def __init__(self):
        self.objects = {}
        self.gets = 0
        self.heads = 0
        self.lists = []

    def put(self, key, body=b"", **meta):
        if isinstance(key, str):
            key = key.encode("utf-8")
        stamp = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(1700000000 + len(self.objects)))
        headers = {"etag": '"%s"' % hashlib.md5(body).hexdigest(), "content-length": str(len(body)),
                   "last-modified": stamp}
        headers.update(("x-amz-meta-" + k.replace("_", "-"), str(v)) for k, v in meta.items())
        self.objects[key] = (body, headers)

    supports_delimiter = True

    def list_page(self, prefix, token=None, prefixes=None):
        if isinstance(prefix, str):
            prefix = prefix.encode("utf-8")
        self.lists.append((prefix, prefixes is not None))
        items = set()
        for key in self.objects:
            if key.startswith(prefix):
                cut = key.find(b"/", len(prefix)) if prefixes is not None else -1
                items.add((key[:cut + 1], True) if cut >= 0 else (key, False))
        items = sorted(items, key=lambda k: k[0][::-1])
        start = int(token or 0)
        listed = []
        for key, is_prefix in items[start:start + 3]:
            if not is_prefix:
                listed.append(http.ListedObject(key, len(self.objects[key][0]), self.objects[key][1]["etag"].strip('"'),
                                                self.objects[key][1]["last-modified"]))
            else:
                prefixes.append(key)
        return listed, (str(start + 3) if start + 3 < len(items) else None)

    def head(self, key):
        self.heads += 1
        item = self.objects.get(key.encode("utf-8"))
        return dict(item[1]) if item else None

    def get(self, key, sink):
        self.gets += 1
        item = self.objects.get(key.encode("utf-8"))
        if item is None:
            return None
        sink(item[0])
        return dict(item[1])

    def close(self):
        pass


@pytest.fixture
def s3():
    return MemoryS3()


@pytest.fixture
def where(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    return str(dest), str(tmp_path / "state.json")


def run(s3, where, **options):
    dest, state = where
    options.setdefault("max_workers", 3)
    return engine.Sync(engine.Options(bucket="b", dest=dest, state_file=state, **options), s3, "mem://b/").run()


def listing(dest):
    out = {}
    for root, dirs, files in os.walk(dest):
        for name in dirs + files:
            full = os.path.join(root, name)
            st = os.lstat(full)
            out[os.path.relpath(full, dest)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_ino)
    return out


def test_first_run_then_nothing(s3, where):
    s3.put("cvmfs/a/b/c.txt", b"c", mode="0750")
    s3.put("cvmfs/a/link", symlink_target="b/c.txt")
    s3.put("cvmfs/z/", mode="0700")
    first = run(s3, where)
    assert first["added"]["count"] == 5  # a, a/b, a/b/c.txt, a/link, z
    before = listing(where[0])
    assert before["a/b/c.txt"][1] == 0o750 and before["z"][1] == 0o700
    gets = s3.gets
    second = run(s3, where)
    assert second["changed"] is False and s3.gets == gets and listing(where[0]) == before


def test_type_changes_both_ways(s3, where):
    dest = where[0]
    s3.put("cvmfs/x", b"file")
    s3.put("cvmfs/y/inner", b"inner")
    run(s3, where)
    del s3.objects[b"cvmfs/x"]
    del s3.objects[b"cvmfs/y/inner"]
    s3.put("cvmfs/x/now-dir", b"d")
    s3.put("cvmfs/y", b"now a file")
    result = run(s3, where, delete=False)
    assert os.path.isdir(os.path.join(dest, "x")) and os.path.isfile(os.path.join(dest, "y"))
    assert sorted(result["changed_paths"]["updated"]) == ["x", "y"]
    assert result["changed_paths"]["deleted"] == ["y/inner"]
    assert result["changed_paths"]["added"] == ["x/now-dir"]


def test_excluded_local_content_pins_its_directory(s3, where):
    dest = where[0]
    s3.put("cvmfs/d/keep.txt", b"k")
    run(s3, where)
    with open(os.path.join(dest, "d", "local.tmp"), "w") as handle:
        handle.write("mine")
    del s3.objects[b"cvmfs/d/keep.txt"]
    result = run(s3, where, exclude=["*.tmp"])
    assert result["changed_paths"]["deleted"] == ["d/keep.txt"]
    assert os.path.exists(os.path.join(dest, "d", "local.tmp"))


def test_rejected_key_keeps_its_local_path(s3, where):
    dest = where[0]
    s3.put("cvmfs/l", symlink_target="ok")
    run(s3, where)
    s3.put("cvmfs/l", symlink_target="/etc/shadow")
    with pytest.raises(CvmfsError):
        run(s3, where)
    result = run(s3, where, on_invalid="skip")
    assert result["rejected"]["count"] == 1 and result["changed"] is False
    assert os.readlink(os.path.join(dest, "l")) == "ok"


def test_check_mode_touches_nothing_and_predicts(s3, where):
    dest, state = where
    s3.put("cvmfs/new/file", b"12345")
    result = run(s3, where, check_mode=True, diff=True)
    assert result["changed"] is True and result["added"] == {"count": 2, "bytes": 5}
    assert os.listdir(dest) == [] and not os.path.exists(state) and s3.gets == 0
    assert result["diff"]["prepared"] == "+ new\n+ new/file\n"


def test_stale_staging_is_removed_and_never_synced(s3, where):
    dest = where[0]
    stale = os.path.join(dest, rules.STAGING_PREFIX + "123.dead")
    os.mkdir(stale)
    open(os.path.join(stale, "000001"), "w").close()
    s3.put("cvmfs/f", b"x")
    result = run(s3, where)
    assert sorted(os.listdir(dest)) == ["f"] and result["deleted"]["count"] == 0


def test_failure_mid_fetch_leaves_dest_untouched(s3, where):
    dest = where[0]
    s3.put("cvmfs/a", b"old")
    run(s3, where)
    s3.put("cvmfs/a", b"new")
    s3.put("cvmfs/b", b"b")

    def broken(key, sink):
        sink(b"partial")
        raise http.S3HTTPError("GET %s: HTTP 403 AccessDenied" % key, status=403, code="AccessDenied", key=key)

    s3.get = broken
    with pytest.raises(CvmfsError) as failure:
        run(s3, where)
    assert "AccessDenied" in failure.value.message
    assert sorted(os.listdir(dest)) == ["a"]
    with open(os.path.join(dest, "a"), "rb") as handle:
        assert handle.read() == b"old"


def test_state_file_inside_dest_is_refused(s3, where):
    with pytest.raises(CvmfsError) as failure:
        engine.Sync(engine.Options(bucket="b", dest=where[0], state_file=os.path.join(where[0], "s.json")),
                    s3, "mem://b/").run()
    assert "outside" in failure.value.message


def test_same_size_same_second_new_content_is_fetched(s3, where):
    """Regression: ETag changed, size and (second-granular) mtime did not."""
    dest, state = where
    s3.put("cvmfs/a", b"one")  # the double gives a replaced object the same Last-Modified
    run(s3, where)
    s3.put("cvmfs/a", b"two")
    assert run(s3, where)["changed_paths"]["updated"] == ["a"]
    with open(os.path.join(dest, "a"), "rb") as handle:
        assert handle.read() == b"two"
    # and without a state file: decided by MD5, not by size + mtime
    os.unlink(state)
    s3.put("cvmfs/a", b"six")
    assert run(s3, where)["changed_paths"]["updated"] == ["a"]
    with open(os.path.join(dest, "a"), "rb") as handle:
        assert handle.read() == b"six"
    os.unlink(state)
    gets = s3.gets
    assert run(s3, where)["changed"] is False and s3.gets == gets


def test_parallel_listing_sees_every_key(s3, where):
    keys = ["cvmfs/top.txt", "cvmfs/d/", "cvmfs/d/x", "cvmfs/e/f/g/h", "cvmfs/weird//x", "cvmfs/a b/c"]
    keys += ["cvmfs/p%02d/f%d" % (n, m) for n in range(12) for m in range(4)]
    for key in keys:
        s3.put(key, key.encode())
    result = run(s3, where, on_invalid="skip")
    assert result["rejections"] == [{"key": "cvmfs/weird//x", "reason": "empty path segment ('//')"}]
    synced = set()
    for root, dirs, files in os.walk(where[0]):
        synced.update(os.path.relpath(os.path.join(root, f), where[0]) for f in files)
    assert synced == set(k[len("cvmfs/"):] for k in keys if not k.endswith("/") and "//" not in k)
    assert (b"cvmfs/", True) in s3.lists and (b"cvmfs/p07/", False) in s3.lists


def test_second_run_into_the_same_dest_is_refused(s3, where):
    import fcntl
    s3.put("cvmfs/f", b"x")
    fd = os.open(where[0], os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(local.SyncLocked):
            run(s3, where)
        assert run(s3, where, check_mode=True)["changed"] is True  # check mode only reads
    finally:
        os.close(fd)
    assert run(s3, where)["changed"] is True


def test_many_files_are_installed_in_parallel(s3, where):
    for number in range(150):
        s3.put("cvmfs/d%d/f%03d" % (number % 7, number), b"%d" % number, mode="0750")
    result = run(s3, where, max_workers=8)
    assert result["added"]["count"] == 157
    for number in range(150):
        path = os.path.join(where[0], "d%d" % (number % 7), "f%03d" % number)
        with open(path, "rb") as handle:
            assert handle.read() == b"%d" % number
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o750
    assert run(s3, where)["changed"] is False


def test_object_longer_than_listed_is_streamed_to_disk(s3, where, monkeypatch):
    """The listing says 5 bytes, the GET brings 3 MiB: written complete, never held whole."""
    s3.put("cvmfs/grows", b"small")
    body = os.urandom(3 * 1024 * 1024)
    held = []

    def get(key, sink):
        s3.put(key, body, mode="0640")
        for start in range(0, len(body), 65536):
            sink(body[start:start + 65536])
        return dict(s3.objects[key.encode()][1])

    real_spool = fetch._Spool

    class Watched(real_spool):
        def write(self, chunk):
            real_spool.write(self, chunk)
            held.append(0 if self.chunks is None else sum(len(c) for c in self.chunks))

    monkeypatch.setattr(fetch, "_Spool", Watched)
    monkeypatch.setattr(s3, "get", get)
    result = run(s3, where)
    dest = where[0]
    with open(os.path.join(dest, "grows"), "rb") as handle:
        assert handle.read() == body
    assert stat.S_IMODE(os.stat(os.path.join(dest, "grows")).st_mode) == 0o640
    assert result["transferred_bytes"] == len(body)
    assert max(held) <= fetch.BUFFERED


def test_unsafe_modes_an_older_version_left_are_fixed(s3, where):
    """A file and a directory whose modes (and state entries) say 0666 / 0555, as older
    versions applied from metadata, are fixed; the content is not rewritten."""
    import json
    dest, state_path = where
    s3.put("cvmfs/d/", mode="0555")
    s3.put("cvmfs/d/f", b"f", mode="0666")
    run(s3, where)
    os.chmod(os.path.join(dest, "d", "f"), 0o666)
    os.chmod(os.path.join(dest, "d"), 0o555)
    with open(state_path) as handle:
        saved = json.load(handle)
    saved["objects"]["d/f"][4] = 0o666
    saved["objects"]["d/"][4] = 0o555
    with open(state_path, "w") as handle:
        json.dump(saved, handle)
    inode = os.lstat(os.path.join(dest, "d", "f")).st_ino
    gets = s3.gets
    result = run(s3, where)
    assert sorted(result["changed_paths"]["updated"]) == ["d", "d/f"]
    assert stat.S_IMODE(os.lstat(os.path.join(dest, "d", "f")).st_mode) == 0o644
    assert stat.S_IMODE(os.lstat(os.path.join(dest, "d")).st_mode) == 0o755
    assert os.lstat(os.path.join(dest, "d", "f")).st_ino == inode and s3.gets == gets
    assert run(s3, where)["changed"] is False
