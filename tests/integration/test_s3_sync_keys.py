"""s3_sync's keys mode (``sync_keys``) against real S3 servers: what bucket notifications use.

The property that matters: applying only the touched keys leaves the directory AND the state
file exactly as a full mirror would, and it decides from the bucket's current state, not from
what (or in which order) events said.
"""

import json
import os
import shutil

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _s3_sync as engine
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _s3_keys as keys_mode

from .test_s3_sync import conn_options, put, tree

pytestmark = pytest.mark.integration


@pytest.fixture
def bucket(s3_server):
    return s3_server.make_bucket("keys")


def _options(path, **extra):
    extra.setdefault("max_workers", 4)
    extra.setdefault("retries", 2)
    return engine.Options(dest=str(path / "repo"), state_file=str(path / "state.json"), **extra)


def _full(server, bucket, path, **extra):
    return engine.sync(conn_options(server), _options(path, bucket=bucket, **extra))


def _keys(server, bucket, path, keys, **extra):
    return engine.sync_keys(conn_options(server), _options(path, bucket=bucket, **extra), keys)


def _state(path):
    with open(str(path / "state.json")) as handle:
        return json.load(handle)["objects"]


def _comparable(path):
    """The tree without inode numbers, and without directory mtimes (they are when the
    directory last changed, which is run time for both modes)."""
    return dict((rel, info[:3] if info[0] == "d" else info[:4]) for rel, info in tree(str(path / "repo")).items())


def _twins(tmp_path):
    """Two copies of one mirror (directory + state file): one for keys mode, one for a full run."""
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(str(tmp_path / "base"), str(a), symlinks=True)
    shutil.copytree(str(tmp_path / "base"), str(b), symlinks=True)
    return a, b


def test_touched_keys_end_exactly_like_a_full_mirror(s3_server, bucket, tmp_path):
    s3 = s3_server.client()
    for key in ("cvmfs/keep.txt", "cvmfs/mod.txt", "cvmfs/gone.txt", "cvmfs/d1/only.txt", "cvmfs/d2/a.txt",
                "cvmfs/d2/b.txt", "cvmfs/deep/x/y/z.txt", "cvmfs/again.txt"):
        put(s3_server, bucket, key, key.encode())
    put(s3_server, bucket, "cvmfs/marked/", b"", mode="700")
    put(s3_server, bucket, "cvmfs/marked/in.txt", b"in")
    base = tmp_path / "base"
    base.mkdir()
    _full(s3_server, bucket, base)
    a, b = _twins(tmp_path)

    touched = []

    def touch(key):
        touched.append(key)
        return key

    put(s3_server, bucket, touch("cvmfs/mod.txt"), b"changed content", mode="755")
    put(s3_server, bucket, touch("cvmfs/new/dir/file.bin"), b"\0" * 100, mtime="1577934245")
    s3.delete_object(Bucket=bucket, Key=touch("cvmfs/gone.txt"))
    s3.delete_object(Bucket=bucket, Key=touch("cvmfs/d1/only.txt"))        # d1 ends up empty: pruned
    s3.delete_object(Bucket=bucket, Key=touch("cvmfs/d2/a.txt"))           # d2 keeps b.txt
    s3.delete_object(Bucket=bucket, Key=touch("cvmfs/deep/x/y/z.txt"))     # deep/x/y, deep/x, deep: pruned
    s3.delete_object(Bucket=bucket, Key=touch("cvmfs/again.txt"))          # delete, then upload again:
    put(s3_server, bucket, touch("cvmfs/again.txt"), b"second life")       # the object must be present
    put(s3_server, bucket, touch("cvmfs/link"), b"", **{"symlink-target": "keep.txt"})
    touch("cvmfs/never-existed")                                           # an event for nothing: no-op
    touch("elsewhere/outside-the-prefix")                                  # ignored

    result = _keys(s3_server, bucket, a, touched)
    full = _full(s3_server, bucket, b)
    assert _comparable(a) == _comparable(b)
    assert _state(a) == _state(b)
    assert result["changed"] and full["changed"]
    for name in ("added", "updated", "deleted"):
        assert sorted(result["changed_paths"][name]) == sorted(full["changed_paths"][name]), name
    assert (a / "repo" / "again.txt").read_bytes() == b"second life"
    assert not (a / "repo" / "deep").exists() and not (a / "repo" / "d1").exists()
    assert (a / "repo" / "d2" / "b.txt").exists()
    # a directory with a marker keeps the marker's mode (0700 where the server keeps directory
    # metadata) although only a key below it was touched
    put(s3_server, bucket, "cvmfs/marked/in.txt", b"in again")
    _keys(s3_server, bucket, a, ["cvmfs/marked/in.txt"])
    assert (a / "repo" / "marked").stat().st_mode & 0o777 == (tmp_path / "base" / "repo" / "marked").stat().st_mode & 0o777

    # the same keys again: nothing to do, nothing rewritten
    before = tree(str(a / "repo"))
    again = _keys(s3_server, bucket, a, touched)
    assert not again["changed"]
    assert tree(str(a / "repo")) == before


def test_only_touched_keys_are_looked_at(s3_server, bucket, tmp_path):
    put(s3_server, bucket, "cvmfs/a.txt", b"a1")
    put(s3_server, bucket, "cvmfs/b.txt", b"b1")
    base = tmp_path / "base"
    base.mkdir()
    _full(s3_server, bucket, base)
    put(s3_server, bucket, "cvmfs/a.txt", b"a2")
    put(s3_server, bucket, "cvmfs/b.txt", b"b2")
    put(s3_server, bucket, "cvmfs/c.txt", b"c2")
    result = _keys(s3_server, bucket, base, ["cvmfs/a.txt"])
    assert result["changed_paths"]["updated"] == ["a.txt"]
    assert (base / "repo" / "a.txt").read_bytes() == b"a2"
    assert (base / "repo" / "b.txt").read_bytes() == b"b1"
    assert not (base / "repo" / "c.txt").exists()
    assert set(_state(base)) == {"a.txt", "b.txt"}


def test_check_mode_reports_and_writes_nothing(s3_server, bucket, tmp_path):
    put(s3_server, bucket, "cvmfs/d/x.txt", b"x")
    base = tmp_path / "base"
    base.mkdir()
    _full(s3_server, bucket, base)
    before, state = tree(str(base / "repo")), _state(base)
    s3_server.client().delete_object(Bucket=bucket, Key="cvmfs/d/x.txt")
    put(s3_server, bucket, "cvmfs/y.txt", b"y")
    result = _keys(s3_server, bucket, base, ["cvmfs/d/x.txt", "cvmfs/y.txt"], check_mode=True)
    assert result["changed_paths"] == {"added": ["y.txt"], "updated": [], "deleted": ["d", "d/x.txt"]}
    assert tree(str(base / "repo")) == before and _state(base) == state


@pytest.mark.parametrize("case", ["file-becomes-directory", "file-and-prefix", "no-dest"])
def test_what_only_a_full_sync_may_decide(s3_server, bucket, tmp_path, case):
    s3 = s3_server.client()
    put(s3_server, bucket, "cvmfs/x", b"file")
    base = tmp_path / "base"
    base.mkdir()
    _full(s3_server, bucket, base)
    before, state = tree(str(base / "repo")), _state(base)
    if case == "file-becomes-directory":
        s3.delete_object(Bucket=bucket, Key="cvmfs/x")
        put(s3_server, bucket, "cvmfs/x/inside", b"now a directory")
        touched = ["cvmfs/x/inside"]
    elif case == "file-and-prefix":
        put(s3_server, bucket, "cvmfs/x/inside", b"x is a file and a directory")
        touched = ["cvmfs/x"]
    else:
        shutil.rmtree(str(base / "repo"))
        before = {}
        touched = ["cvmfs/x"]
    with pytest.raises(keys_mode.NeedsFullSync):
        _keys(s3_server, bucket, base, touched)
    assert (tree(str(base / "repo")) if (base / "repo").exists() else {}) == before
    assert _state(base) == state
    assert not [n for n in os.listdir(str(base)) if n.startswith(".s3sync")]


@pytest.mark.parametrize("mode", ["full", "keys"])
def test_same_size_rewrite_with_the_same_mtime_is_fetched(s3_server, bucket, tmp_path, mode):
    """The state file says which ETag the local file has: a different ETag is new content even
    when size and mtime are equal (a rewrite within the same second, or an mtime kept by the
    uploader). Found by the event tests: a quick fix-up upload was never applied."""
    put(s3_server, bucket, "cvmfs/a.txt", b"a1", mtime="1577934245")
    base = tmp_path / "base"
    base.mkdir()
    _full(s3_server, bucket, base)
    put(s3_server, bucket, "cvmfs/a.txt", b"a2", mtime="1577934245")
    if mode == "full":
        result = _full(s3_server, bucket, base)
    else:
        result = _keys(s3_server, bucket, base, ["cvmfs/a.txt"])
    assert result["changed_paths"]["updated"] == ["a.txt"]
    assert (base / "repo" / "a.txt").read_bytes() == b"a2"
