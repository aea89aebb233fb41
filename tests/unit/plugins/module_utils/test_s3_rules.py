"""Key rules, symlink targets and filters of the S3 sync engine (_s3_rules): pure, no server."""

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _s3_rules as rules

from .s3_sync_corpus import CORPUS


def test_corpus_is_big_enough_and_has_both_verdicts():
    assert len(CORPUS) >= 200
    assert len(set(key for key, unused in CORPUS)) == len(CORPUS), "duplicate keys in the corpus"
    assert sum(1 for unused, verdict in CORPUS if verdict is None) >= 40
    assert sum(1 for unused, verdict in CORPUS if verdict is not None) >= 150


@pytest.mark.parametrize("key,expected", CORPUS, ids=[repr(k)[:60] for k, unused in CORPUS])
def test_hostile_key_verdict(key, expected):
    path, is_dir, reason = rules.check_key(key)
    if expected is None:
        assert reason is None, "%r was rejected: %s" % (key, reason)
        assert path is not None
        assert is_dir == key.endswith(b"/") or key == b""
        # an accepted path can never leave dest
        if path:
            assert not path.startswith("/")
            assert all(seg not in ("", ".", "..") for seg in path.split("/"))
    else:
        assert path is None
        assert reason is not None and expected in reason, "%r: %r" % (key, reason)


def test_display_escapes_controls_and_bad_bytes():
    assert rules.display(b"a\nb") == "a\\nb"
    assert rules.display(b"a\xffb") == "a\\\\xffb"
    assert rules.display("plain/name") == "plain/name"


DEST = "/cvmfs/repo.example.org/sw"
ROOT = "/cvmfs/repo.example.org"


@pytest.mark.parametrize("path,target,verdict", [
    ("bin/tool", "../lib/tool", None),
    ("bin/tool", "tool-1.2", None),
    ("bin/tool", "./tool-1.2", None),
    ("bin/tool", "../../sw/bin/x", None),            # up to dest's parent, still in root
    ("bin/tool", "../../../repo.example.org/x", None),
    ("bin/tool", "/cvmfs/repo.example.org/sw/x", None),
    ("bin/tool", "/cvmfs/repo.example.org", None),
    ("top", ".", None),
    ("bin/tool", "../../../other.org/x", "outside"),
    ("bin/tool", "../../../../etc/passwd", "outside"),
    ("bin/tool", "/etc/passwd", "outside"),
    ("bin/tool", "/cvmfs/repo.example.org.evil/x", "outside"),
    ("bin/tool", "/cvmfs/repo.example.org/../x", "after a name"),
    ("bin/tool", "sub/../../x", "after a name"),
    ("bin/tool", "d/../../../..", "after a name"),
    ("bin/tool", "../" * 40, "climbs above /"),
    ("bin/tool", "", "empty"),
    ("bin/tool", "a\nb", "control character"),
    ("bin/tool", "x" * 5000, "longer than"),
])
def test_symlink_targets(path, target, verdict):
    reason = rules.check_symlink(path, target, DEST, ROOT)
    if verdict is None:
        assert reason is None, reason
    else:
        assert reason is not None and verdict in reason, reason


def test_symlink_escape_allowed():
    assert rules.check_symlink("a", "/etc/passwd", DEST, DEST, allow_escape=True) is None
    assert rules.check_symlink("a", "", DEST, DEST, allow_escape=True) is not None


@pytest.mark.parametrize("include,exclude,path,selected", [
    ([], [], "a/b", True),
    ([], ["*.tmp"], "a/b.tmp", True and False),
    ([], ["scratch"], "scratch/deep/file", False),
    ([], ["scratch"], "x/scratch", False and True or True),
    (["bin"], [], "bin/tool", True),
    (["bin"], [], "lib/x", False),
    (["*.so"], [], "lib/libx.so", True),
    (["lib"], ["lib/private"], "lib/private/x", False),
    (["lib"], ["lib/private"], "lib/public/x", True),
])
def test_filter(include, exclude, path, selected):
    assert rules.PathFilter(include, exclude).selected(path) is selected
