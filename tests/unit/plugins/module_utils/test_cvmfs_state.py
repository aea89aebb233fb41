"""Unit tests of _cvmfs_state: reading the state files cvmfs_server uses (scratch trees only)."""

import fcntl
import os

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _cvmfs_state as state
from tests.support.server_tree import make_stratum0, stratum0_conf, write


@pytest.fixture
def paths(tmp_path):
    return state.CvmfsPaths(etc_dir=str(tmp_path / "etc"), spool_dir=str(tmp_path / "spool"),
                            srv_dir=str(tmp_path / "srv"))


S0_CONF = stratum0_conf(CVMFS_AUTO_TAG_TIMESPAN='""', CVMFS_GEO_LICENSE_KEY="hush")


def make_s0(paths, name="sw.example.org"):
    make_stratum0(paths.etc_dir, paths.spool_dir, name, S0_CONF)


def make_s1(paths, alias="sw.s1"):
    write(paths.server_conf(alias), "\n".join([
        "CVMFS_REPOSITORY_NAME=sw.example.org", "CVMFS_REPOSITORY_TYPE=stratum1", "CVMFS_USER=root",
        "CVMFS_STRATUM0=http://s0/cvmfs/sw.example.org", "CVMFS_STRATUM1=http://localhost/cvmfs/" + alias,
        "CVMFS_UPSTREAM_STORAGE=S3,/var/spool/cvmfs/%s/tmp,cvmfs/%s@/etc/cvmfs/s3.conf" % (alias, alias), ""]))
    write(paths.replica_conf(alias), "CVMFS_NUM_WORKERS=16\nCVMFS_PUBLIC_KEY=/etc/cvmfs/keys/example.org\n")


class TestBashConfig:
    def test_quotes_comments_export_and_last_wins(self):
        text = ("# comment\n\nA=1\nexport B='two words'\nC=\"x \\\"y\\\" $Z\"  # trailing\n"
                "A=3\nD=\nE=\"\"\necho not an assignment\nF=a=b\n")
        assert state.parse_bash_config(text) == {
            "A": "3", "B": "two words", "C": 'x "y" $Z', "D": "", "E": "", "F": "a=b"}

    def test_hash_starts_a_comment_only_at_a_word_start(self):
        text = "A=b#c\nB=1 # it's a comment, with an odd quote\nC='x # y'\n"
        assert state.parse_bash_config(text) == {"A": "b#c", "B": "1", "C": "x # y"}

    def test_unbalanced_quote_line_is_skipped(self):
        assert state.parse_bash_config("A='open\nB=2\n") == {"B": "2"}

    def test_missing_file_is_empty(self, tmp_path):
        assert state.read_config(str(tmp_path / "none.conf")) == {}

    @pytest.mark.parametrize("value", ["plain", "", "two words", 'a"b', "$HOME", "back\\slash", "`cmd`", "3 days ago"])
    def test_quote_value_round_trips(self, value):
        assert state.parse_bash_config("K=%s\n" % state.quote_value(value)) == {"K": value}

    def test_update_rewrites_in_place_and_appends(self):
        text = "# keep me\nA=1\nexport B=2\nA=9\n"
        new = state.update_config_text(text, {"A": "5", "B": "2", "C": "4 weeks ago"})
        assert new == '# keep me\nA=1\nexport B=2\nA=5\nC="4 weeks ago"\n'
        assert state.parse_bash_config(new) == {"A": "5", "B": "2", "C": "4 weeks ago"}

    def test_update_is_identity_when_values_equal(self):
        text = 'A=1\nB="x y"'  # no trailing newline: must come back untouched
        assert state.update_config_text(text, {"A": 1, "B": "x y"}) is text

    def test_update_rejects_bad_names(self):
        with pytest.raises(ValueError, match="invalid variable name"):
            state.update_config_text("", {"A-B": "1"})

    def test_secret_names(self):
        assert state.public_config({"CVMFS_PUBLIC_KEY": "/k", "CVMFS_GEO_LICENSE_KEY": "x",
                                    "CVMFS_S3_SECRET_KEY": "y", "CVMFS_USER": "u"}) == {
            "CVMFS_PUBLIC_KEY": "/k", "CVMFS_USER": "u"}


class TestNames:
    @pytest.mark.parametrize("name,ok", [
        ("sw.example.org", True), ("a", True), ("9a_b-c.d", True), ("", False), ("-a", False),
        (".a", False), ("a b", False), ("a/b", False), ("x" * 60, True), ("x" * 61, False)])
    def test_valid_name(self, name, ok):
        assert state.is_valid_repo_name(name) is ok

    @pytest.mark.parametrize("given,expected", [
        ("r.org", ("r.org", "")), ("r.org/", ("r.org", "")), ("r.org/a/b", ("r.org", "/a/b")),
        ("r.org//a/b/", ("r.org", "/a/b"))])
    def test_split_lease_path(self, given, expected):
        assert state.split_lease_path(given) == expected


class TestUpstream:
    def test_local(self):
        up = state.parse_upstream("local,/srv/cvmfs/r/data/txn,/srv/cvmfs/r")
        assert up["storage"] == "local" and up["local_path"] == "/srv/cvmfs/r" and up["tmp_dir"] == "/srv/cvmfs/r/data/txn"

    def test_s3(self):
        up = state.parse_upstream("S3,/var/spool/cvmfs/r/tmp,cvmfs/r@/etc/cvmfs/s3.conf")
        assert (up["storage"], up["s3_alias"], up["s3_config_file"]) == ("s3", "cvmfs/r", "/etc/cvmfs/s3.conf")

    def test_gateway(self):
        up = state.parse_upstream("gw,/srv/cvmfs/r/data/txn,http://gw:4929/api/v1")
        assert up["storage"] == "gateway" and up["gateway_url"] == "http://gw:4929/api/v1"

    @pytest.mark.parametrize("value", [None, "", "local,/only-two"])
    def test_invalid(self, value):
        assert state.parse_upstream(value) is None


class TestRepositories:
    def test_empty_host(self, paths):
        assert state.local_repositories(paths) == []
        assert state.repository_state("none.org", paths) is None

    def test_stratum0_local(self, paths):
        make_s0(paths)
        [repo] = state.local_repositories(paths)
        assert repo["name"] == repo["fqrn"] == "sw.example.org"
        assert (repo["type"], repo["storage"], repo["owner"]) == ("stratum0", "local", "cvmfs")
        assert repo["stratum0_url"] == "http://localhost/cvmfs/sw.example.org"
        assert repo["stratum1_url"] is None and repo["replica_config"] is None
        assert repo["in_transaction"] is False and repo["publishing"] is False
        assert repo["config"]["CVMFS_AUTO_TAG_TIMESPAN"] == ""
        assert "CVMFS_GEO_LICENSE_KEY" not in repo["config"]

    def test_stratum1_alias_s3(self, paths):
        make_s1(paths)
        repo = state.repository_state("sw.s1", paths)
        assert (repo["name"], repo["fqrn"], repo["type"], repo["storage"]) == ("sw.s1", "sw.example.org", "stratum1", "s3")
        assert repo["stratum1_url"] == "http://localhost/cvmfs/sw.s1"
        assert repo["replica_config"]["CVMFS_PUBLIC_KEY"] == "/etc/cvmfs/keys/example.org"

    def test_replica_conf_must_be_regular_file(self, paths):
        make_s0(paths)
        os.makedirs(paths.replica_conf("sw.example.org"))
        assert state.repository_state("sw.example.org", paths)["type"] == "stratum0"

    def test_stray_file_in_repositories_d_is_not_a_repository(self, paths):
        make_s0(paths)
        write(os.path.join(paths.repositories_d, "README"), "x")
        assert [r["name"] for r in state.local_repositories(paths)] == ["sw.example.org"]

    def test_sorted_and_missing_server_conf(self, paths):
        make_s1(paths, "b.org")
        os.makedirs(paths.repo_dir("a.org"))
        repos = state.local_repositories(paths)
        assert [r["name"] for r in repos] == ["a.org", "b.org"]
        assert repos[0]["storage"] is None and repos[0]["upstream"] is None

    def test_in_transaction_flag(self, paths):
        make_s0(paths)
        write(os.path.join(paths.spool("sw.example.org"), "in_transaction.lock"), "")
        assert state.repository_state("sw.example.org", paths)["in_transaction"] is True

    def test_publishing_only_while_lock_held(self, paths):
        make_s0(paths)
        lock = os.path.join(paths.spool("sw.example.org"), "is_publishing.lock")
        write(lock, "")
        assert state.is_publishing("sw.example.org", paths) is False  # stale file: harmless
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            assert state.is_publishing("sw.example.org", paths) is True
        finally:
            os.close(fd)
        assert state.is_publishing("sw.example.org", paths) is False

    def test_publishing_probe_never_takes_the_lock(self, paths, tmp_path):
        make_s0(paths)
        lock = os.path.join(paths.spool("sw.example.org"), "is_publishing.lock")
        write(lock, "")
        fake = tmp_path / "locks"
        fake.write_text("")
        paths.proc_locks = str(fake)
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            st = os.stat(lock)
            fake.write_text("1: FLOCK  ADVISORY  WRITE 99 %02x:%02x:%d 0 EOF\n" % (
                os.major(st.st_dev), os.minor(st.st_dev), st.st_ino))
            assert state.is_publishing("sw.example.org", paths) is True
        finally:
            os.close(fd)

    def test_scratch(self, paths):
        make_s0(paths)
        assert state.scratch_has_changes("sw.example.org", paths) is None
        scratch = os.path.join(paths.spool("sw.example.org"), "scratch", "current")
        os.makedirs(scratch)
        assert state.scratch_has_changes("sw.example.org", paths) is False
        write(os.path.join(scratch, "f"), "x")
        assert state.scratch_has_changes("sw.example.org", paths) is True


class TestKeysAndStorage:
    def test_keys(self, paths):
        write(paths.key_file("r.org", "pub"), "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----\n")
        write(paths.key_file("r.org", "key"), "secret")
        assert state.key_files("r.org", paths) == {
            "pub": paths.key_file("r.org", "pub"), "key": paths.key_file("r.org", "key")}
        assert state.public_key_text("r.org", paths).startswith("-----BEGIN PUBLIC KEY")
        assert state.public_key_text("none.org", paths) is None
