"""sharedsw.cvmfs.replica against the TEST DOUBLE of cvmfs_server (mimics the facts file; not CernVM-FS)."""

import fcntl
import json
import os
import stat

import pytest

from tests.cvmfs_double import make_storage, warning_texts

NAME = "sw.example.org"


@pytest.fixture
def source(tmp_path):
    """A stratum-0's storage reached by file:// URL, at revision 5 (TEST DATA)."""
    directory = str(tmp_path / "s0" / NAME)
    return {"dir": directory, "url": make_storage(directory, NAME, revision=5)}


@pytest.fixture
def pub(host):
    return host.write("etc/cvmfs/keys/example.org/%s.pub" % NAME, "-----BEGIN PUBLIC KEY-----\nS0\n")


def present(source, pub, **kwargs):
    return dict({"name": NAME, "stratum0_url": source["url"], "public_key": [pub]}, **kwargs)


def set_revision(source, revision):
    make_storage(source["dir"], NAME, revision=revision)


def s1_revision(host, name=NAME):
    return host.revision(os.path.join(host.srv, name))


# ---------------------------------------------------------------- transitions

def test_create_with_initial_snapshot_then_idempotent(host, source, pub):
    result = host.run("replica", present(source, pub), diff=True)
    assert not result.failed, result
    assert result["changed"] and result["initial"] is True
    assert (result["revision_before"], result["revision_after"]) == (None, 5)
    assert [a[0] for a in host.argvs()] == ["add-replica", "snapshot"]
    assert host.argvs()[0] == ["add-replica", "-o", "root", "-n", NAME, source["url"], pub]
    assert result["cmd"][1:] == ["snapshot", NAME]
    replica = result["replica"]
    assert (replica["type"], replica["storage"], replica["fqrn"]) == ("stratum1", "local", NAME)
    assert replica["replica_config"]["CVMFS_PUBLIC_KEY"] == pub
    assert result["diff"][0]["after"] == "state: present\n"
    again = host.run("replica", present(source, pub))
    assert again["changed"] is False and "cmd" not in again and len(host.argvs()) == 2


def test_alias_s3_no_apache_options(host, source, pub):
    s3 = {"host": "s3.example.org", "bucket": "cvmfs-s1", "access_key": "AK", "secret_key": "not-a-real-secret",
          "dns_buckets": False}
    alias = "sw-s1.example.org"
    bucket = host.path("bucket")
    args = present(source, pub, name=alias, storage="s3", apache=False, auto_gc=True, snapshot_group="nightly",
                   stratum1_url="file://%s/%s" % (bucket, alias), s3_config=s3, owner="nobody")
    result = host.run("replica", args)
    assert not result.failed, result
    conf = os.path.join(host.etc, "s3", alias + ".conf")
    assert host.argvs()[0] == ["add-replica", "-o", "nobody", "-w", "file://" + bucket, "-n", alias, "-s", conf,
                               "-a", "-z", "-p", "-g", "nightly", source["url"], pub]
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o600 and os.stat(conf).st_uid == 65534
    assert "not-a-real-secret" not in json.dumps(result)
    assert result["replica"]["storage"] == "s3" and result["replica"]["fqrn"] == NAME
    assert result["revision_after"] == 5  # read through the S3 (file://) stratum-1 URL
    assert host.run("replica", args)["changed"] is False


def test_without_initial_snapshot(host, source, pub):
    result = host.run("replica", present(source, pub, initial_snapshot=False))
    assert result["changed"] and [a[0] for a in host.argvs()] == ["add-replica"] and "revision_after" not in result
    later = host.run("replica", present(source, pub))
    assert later["changed"] and later["initial"] and later["revision_after"] == 5


def test_snapshot_reports_revisions(host, source, pub):
    host.run("replica", present(source, pub))
    same = host.run("replica", {"name": NAME, "state": "snapshot"})
    assert same["changed"] is False and (same["revision_before"], same["revision_after"]) == (5, 5)
    assert same["initial"] is False and same["cmd"][1:] == ["snapshot", NAME]
    set_revision(source, 9)
    moved = host.run("replica", {"name": NAME, "state": "snapshot", "wait": False}, diff=True)
    assert moved["changed"] and (moved["revision_before"], moved["revision_after"]) == (5, 9)
    assert moved["cmd"][1:] == ["snapshot", "-t", NAME]
    assert moved["diff"][0]["after"] == "revision: 9\n" and s1_revision(host) == 9


def test_snapshot_check_mode_predicts_from_stratum0(host, source, pub):
    host.run("replica", present(source, pub))
    set_revision(source, 7)
    result = host.run("replica", {"name": NAME, "state": "snapshot"}, check=True)
    assert result["changed"] and (result["revision_before"], result["revision_after"]) == (5, 7)
    assert s1_revision(host) == 5 and [a[0] for a in host.argvs()].count("snapshot") == 1


def test_present_check_mode(host, source, pub):
    result = host.run("replica", present(source, pub), check=True, diff=True)
    assert result["changed"] and result["revision_after"] == 5 and result["replica"] is None
    assert host.argvs() == []


def test_existing_replica_converges_key_and_source(host, source, pub, tmp_path):
    host.run("replica", present(source, pub))
    other = host.write("etc/cvmfs/keys/other.pub", "x")
    new_source = make_storage(str(tmp_path / "s0-new" / NAME), NAME, revision=5)
    args = present(source, pub, stratum0_url=new_source, public_key=[pub, other], auto_gc=True,
                   snapshot_group="g2")
    check = host.run("replica", args, check=True)
    assert check["changed"] and host.run("replica", present(source, pub))["changed"] is False
    result = host.run("replica", args, diff=True)
    assert result["changed"] and "cmd" not in result
    assert result["replica"]["stratum0_url"] == new_source
    assert result["replica"]["replica_config"]["CVMFS_PUBLIC_KEY"] == "%s:%s" % (pub, other)
    assert result["replica"]["config"]["CVMFS_AUTO_GC"] == "true"
    assert result["replica"]["config"]["CVMFS_SNAPSHOT_GROUP"] == "g2"
    assert len(result["diff"]) == 2
    assert host.run("replica", args)["changed"] is False


def test_immutable_stratum1_url_warns(host, source, pub):
    host.run("replica", present(source, pub))
    result = host.run("replica", present(source, pub, stratum1_url="http://elsewhere/cvmfs/" + NAME))
    assert result["changed"] is False
    assert any("stratum1_url of existing replica" in w for w in warning_texts(result))


def test_absent(host, source, pub):
    host.run("replica", present(source, pub))
    check = host.run("replica", {"name": NAME, "state": "absent"}, check=True)
    assert check["changed"] and os.path.isdir(os.path.join(host.etc, "repositories.d", NAME))
    result = host.run("replica", {"name": NAME, "state": "absent"}, diff=True)
    assert result["changed"] and result["cmd"][1:] == ["rmfs", "-f", NAME] and result["replica"] is None
    assert not os.path.exists(os.path.join(host.srv, NAME))
    assert os.path.exists(pub)  # rmfs keeps keys of a stratum-1
    assert host.run("replica", {"name": NAME, "state": "absent"})["changed"] is False


def test_absent_preserve_data(host, source, pub):
    host.run("replica", present(source, pub))
    result = host.run("replica", {"name": NAME, "state": "absent", "preserve_data": True})
    assert result["cmd"][1:] == ["rmfs", "-f", "-p", NAME]
    assert os.path.exists(os.path.join(host.srv, NAME, ".cvmfspublished"))


# ---------------------------------------------------------------- errors (cvmfs-facts §1.14, §1.15, §1.2)

def test_stratum0_unreachable(host, pub, tmp_path):
    url = "file://%s/nothing/%s" % (tmp_path, NAME)
    result = host.run("replica", {"name": NAME, "stratum0_url": url, "public_key": [pub]})
    assert result.failed and "cannot read the stratum-0 at %s" % url in result["msg"]
    assert "Failed to access Stratum0 repository at" in result["stderr"]


def test_stratum0_not_replicable(host, pub, tmp_path):
    url = make_storage(str(tmp_path / "s0" / NAME), NAME, replicable=False)
    result = host.run("replica", {"name": NAME, "stratum0_url": url, "public_key": [pub]})
    assert result.failed and "alterfs -m on" in result["msg"]
    assert "does not point to a replicable master copy of %s" % NAME in result["stderr"]


def test_already_a_stratum1_race_is_unchanged(host, source, pub, tmp_path):
    host.run("replica", present(source, pub, initial_snapshot=False))
    result = host.run("replica", present(source, pub, initial_snapshot=False), etc_dir=str(tmp_path / "e"))
    assert not result.failed and result["changed"] is False
    assert "There is already a Stratum1 repository %s" % NAME in result["stderr"]


def test_name_is_a_stratum0(host, source, pub):
    host.cvmfs("mkfs", "-o", "root", NAME)
    result = host.run("replica", present(source, pub))
    assert result.failed and "is a stratum-0 repository on this host" in result["msg"]
    assert "choose another name (alias)" in result["msg"]


def test_name_is_a_stratum0_race(host, source, pub, tmp_path):
    """'Repository <alias> already exists as a Stratum0 repository. Use -n ...' from add-replica."""
    host.cvmfs("mkfs", "-o", "root", NAME)
    result = host.run("replica", present(source, pub), etc_dir=str(tmp_path / "e"))
    assert result.failed and "choose another replica name (alias)" in result["msg"]


@pytest.mark.parametrize("name", ["-x", "a b", "y" * 61])
def test_invalid_alias(host, source, pub, name):
    result = host.run("replica", present(source, pub, name=name))
    assert result.failed and "not a valid replica name" in result["msg"] and host.argvs() == []


def test_alias_without_dot(host, source, pub):
    # add-replica -n sw-s1 would create "sw-s1." (cvmfs_mkfqrn)
    result = host.run("replica", present(source, pub, name="sw-s1"))
    assert result.failed and "not a fully qualified replica name" in result["msg"] and host.argvs() == []


def test_geoip_database_needs_settings(host, source, pub):
    os.unlink(host.path("etc/cvmfs/server.local"))
    result = host.run("replica", present(source, pub))
    assert result.failed and result["rc"] == 1 and result["cmd"][1] == "add-replica"
    assert "CVMFS_GEO_ACCOUNT_ID not set" in result["msg"] and "CVMFS_GEO_DB_FILE" in result["msg"]
    assert not os.path.exists(host.path("etc/cvmfs/repositories.d", NAME))


def test_not_root(host, source, pub):
    host.fail = ["add-replica:not_root"]
    result = host.run("replica", present(source, pub))
    assert result.failed and "Only root can create a new repository" in result["msg"] and "become" in result["msg"]


def test_owner_missing(host, source, pub):
    result = host.run("replica", present(source, pub, owner="no-such-user-xyz"))
    assert result.failed and "is not a user on this host" in result["msg"] and host.argvs() == []


def test_apache_missing(host, source, pub):
    host.fail = ["add-replica:no_apache"]
    result = host.run("replica", present(source, pub))
    assert result.failed and "Apache must be installed and running" in result["msg"]
    assert not host.run("replica", present(source, pub, apache=False)).failed


def test_s3_needs_stratum1_url(host, source, pub):
    s3 = {"host": "s3", "bucket": "b", "access_key": "a", "secret_key": "not-a-real-secret"}
    result = host.run("replica", present(source, pub, storage="s3", s3_config=s3))
    assert result.failed and "stratum1_url is required" in result["msg"] and host.argvs() == []


def test_public_key_missing(host, source):
    result = host.run("replica", present(source, "/nonexistent/key.pub"))
    assert result.failed and "public_key /nonexistent/key.pub does not exist" in result["msg"]


def test_public_key_with_colon(host, source, pub):
    result = host.run("replica", present(source, pub + ":" + pub))
    assert result.failed and "single paths" in result["msg"]


def test_snapshot_update_in_progress_without_wait(host, source, pub):
    host.run("replica", present(source, pub))
    fd = os.open(os.path.join(host.spool, NAME, "is_updating.lock"), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = host.run("replica", {"name": NAME, "state": "snapshot", "wait": False})
    finally:
        os.close(fd)
    assert result.failed and "set wait to true" in result["msg"]
    assert "another update is in progress... aborting" in result["stderr"]


def test_snapshot_initial_in_progress(host, source, pub):
    host.run("replica", present(source, pub, initial_snapshot=False))
    host.fail = ["snapshot:initial_in_progress"]
    result = host.run("replica", {"name": NAME, "state": "snapshot", "wait": False})
    assert result.failed and "an initial snapshot is in progress" in result["msg"]


def test_snapshot_of_missing_replica(host):
    result = host.run("replica", {"name": NAME, "state": "snapshot"})
    assert result.failed and "create it with state=present first" in result["msg"] and host.argvs() == []


def test_snapshot_of_missing_replica_race(host, source, pub, tmp_path):
    """'The repository <alias> does not exist.' from snapshot."""
    etc = tmp_path / "module-etc" / "repositories.d" / NAME
    etc.mkdir(parents=True)
    (etc / "replica.conf").write_text("CVMFS_PUBLIC_KEY=%s\n" % pub)
    result = host.run("replica", dict(name=NAME, state="snapshot"), etc_dir=str(tmp_path / "module-etc"))
    assert result.failed and "%s does not exist on this host" % NAME in result["msg"]


def test_snapshot_of_stratum0(host):
    host.cvmfs("mkfs", "-o", "root", NAME)
    result = host.run("replica", {"name": NAME, "state": "snapshot"})
    assert result.failed and "is a stratum-0 repository on this host" in result["msg"]


def test_snapshot_of_stratum0_race(host, tmp_path):
    """'Repository <alias> is not a stratum 1 repository' from snapshot."""
    host.cvmfs("mkfs", "-o", "root", NAME)
    etc = tmp_path / "module-etc" / "repositories.d" / NAME
    etc.mkdir(parents=True)
    (etc / "replica.conf").write_text("CVMFS_PUBLIC_KEY=/k\n")
    result = host.run("replica", dict(name=NAME, state="snapshot"), etc_dir=str(tmp_path / "module-etc"))
    assert result.failed and "%s is not a stratum-1 replica on this host" % NAME in result["msg"]


def test_snapshot_missing_stratum1_url(host, source, pub):
    host.run("replica", present(source, pub, initial_snapshot=False))
    conf = os.path.join(host.etc, "repositories.d", NAME, "server.conf")
    with open(conf) as handle:
        lines = [line for line in handle if not line.startswith("CVMFS_STRATUM1=")]
    with open(conf, "w") as handle:
        handle.writelines(lines)
    result = host.run("replica", {"name": NAME, "state": "snapshot"})
    assert result.failed and "Missing CVMFS_STRATUM1 URL in server.conf" in result["msg"]


def test_absent_not_root(host, source, pub):
    host.run("replica", present(source, pub, initial_snapshot=False))
    host.fail = ["rmfs:not_root"]
    result = host.run("replica", {"name": NAME, "state": "absent"})
    assert result.failed and "Only root can remove a repository" in result["msg"]


def test_absent_race_is_unchanged(host, tmp_path):
    etc = tmp_path / "module-etc" / "repositories.d" / NAME
    etc.mkdir(parents=True)
    (etc / "replica.conf").write_text("CVMFS_PUBLIC_KEY=/k\n")
    result = host.run("replica", dict(name=NAME, state="absent"), etc_dir=str(tmp_path / "module-etc"))
    assert not result.failed and result["changed"] is False
