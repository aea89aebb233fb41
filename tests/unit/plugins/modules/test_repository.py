"""sharedsw.cvmfs.repository against the TEST DOUBLE of cvmfs_server (mimics the facts file; not CernVM-FS)."""

import json
import os
import shutil
import stat

import pytest

from tests.cvmfs_double import warning_texts

NAME = "sw.example.org"


def present(**kwargs):
    return dict({"name": NAME, "owner": "root"}, **kwargs)


def mkfs_calls(host):
    return [a for a in host.argvs() if a[0] == "mkfs"]


# ---------------------------------------------------------------- transitions

def test_create_local_then_idempotent(host):
    first = host.run("repository", present(hash_algorithm="shake128", auto_tag=False, garbage_collection=True,
                                           auto_tag_timespan="4 weeks ago"))
    assert first["changed"] and not first.failed, first
    assert first["cmd"][1:] == ["mkfs", "-o", "root", "-g", "-G", "4 weeks ago", "-a", "shake128", "-z", NAME]
    assert first["stratum0_url"] == "http://localhost/cvmfs/" + NAME
    assert set(first["key_files"]) == {"masterkey", "pub", "key", "crt"}
    assert first["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    assert first["whitelist_expiry"].endswith("Z")
    repo = first["repository"]
    assert (repo["type"], repo["storage"], repo["in_transaction"]) == ("stratum0", "local", False)
    assert repo["config"]["CVMFS_AUTO_GC"] == "true"
    second = host.run("repository", present(hash_algorithm="shake128", auto_tag=False, garbage_collection=True,
                                            auto_tag_timespan="4 weeks ago"))
    assert second["changed"] is False and "cmd" not in second
    assert len(mkfs_calls(host)) == 1


def test_private_key_material_never_returned(host):
    result = host.run("repository", present(), diff=True)
    text = json.dumps(result)
    assert "DOUBLE-MASTER" not in text and "DOUBLE-KEY" not in text
    assert "DOUBLE-PUB" in text  # the public key is returned on purpose


def test_server_options_kept_idempotently_with_diff(host):
    host.run("repository", present())
    conf = os.path.join(host.etc, "repositories.d", NAME, "server.conf")
    mode = stat.S_IMODE(os.stat(conf).st_mode)
    options = {"CVMFS_AUTO_GC_TIMESPAN": "3 days ago", "CVMFS_REPOSITORY_TTL": 120, "CVMFS_AUTO_TAG": False}
    changed = host.run("repository", present(server_options=options), diff=True)
    assert changed["changed"] and "cmd" not in changed
    [diff] = changed["diff"]
    assert diff["before_header"] == conf
    assert 'CVMFS_AUTO_GC_TIMESPAN="3 days ago"' in diff["after"] and "CVMFS_REPOSITORY_TTL=120" in diff["after"]
    assert "CVMFS_AUTO_TAG=false" in diff["after"] and "CVMFS_AUTO_TAG=true" in diff["before"]
    assert changed["repository"]["config"]["CVMFS_AUTO_GC_TIMESPAN"] == "3 days ago"
    assert stat.S_IMODE(os.stat(conf).st_mode) == mode
    again = host.run("repository", present(server_options=options))
    assert again["changed"] is False


def test_settings_of_existing_repository_go_to_server_conf(host):
    host.run("repository", present())
    result = host.run("repository", present(hash_algorithm="shake128", garbage_collection=True, compression="none"))
    assert result["changed"] and "cmd" not in result
    config = result["repository"]["config"]
    assert (config["CVMFS_HASH_ALGORITHM"], config["CVMFS_GARBAGE_COLLECTION"], config["CVMFS_AUTO_GC"],
            config["CVMFS_COMPRESSION_ALGORITHM"]) == ("shake128", "true", "true", "none")


def test_conflicting_setting_and_server_option(host):
    result = host.run("repository", present(hash_algorithm="sha1", server_options={"CVMFS_HASH_ALGORITHM": "rmd160"}))
    assert result.failed and "set it in one place only" in result["msg"]


def test_immutable_option_differs_warns(host):
    host.run("repository", present())
    result = host.run("repository", present(owner="nobody"))
    assert result["changed"] is False
    assert any("owner of existing repository" in w for w in warning_texts(result))


def test_check_mode_create_runs_nothing(host):
    result = host.run("repository", present(server_options={"CVMFS_REPOSITORY_TTL": "60"}), check=True, diff=True)
    assert result["changed"] and result["cmd"][1:] == ["mkfs", "-o", "root", NAME]
    assert host.argvs() == []
    assert not os.path.exists(os.path.join(host.etc, "repositories.d", NAME))
    assert result["diff"][0]["after"].startswith("state: present")
    assert "CVMFS_REPOSITORY_TTL=60" in result["diff"][1]["after"]
    assert result["repository"] is None


def test_check_mode_settings_change_leaves_file(host):
    host.run("repository", present())
    conf = os.path.join(host.etc, "repositories.d", NAME, "server.conf")
    before = open(conf).read()
    result = host.run("repository", present(server_options={"CVMFS_REPOSITORY_TTL": "60"}), check=True)
    assert result["changed"] and open(conf).read() == before


def test_absent_removes_repository_and_keys(host):
    host.run("repository", present())
    result = host.run("repository", {"name": NAME, "state": "absent"}, diff=True)
    assert result["changed"] and result["cmd"][1:] == ["rmfs", "-f", NAME]
    assert result["repository"] is None and result["diff"][0]["after"] == "state: absent\n"
    assert not os.path.exists(os.path.join(host.srv, NAME))
    assert not os.listdir(os.path.join(host.etc, "keys"))
    again = host.run("repository", {"name": NAME, "state": "absent"})
    assert again["changed"] is False and "cmd" not in again


def test_absent_preserving_data_and_keys(host):
    host.run("repository", present())
    result = host.run("repository", {"name": NAME, "state": "absent", "preserve_data": True})
    assert result["cmd"][1:] == ["rmfs", "-f", "-p", NAME]
    assert os.path.exists(os.path.join(host.srv, NAME, ".cvmfspublished"))
    assert os.path.exists(os.path.join(host.etc, "keys", NAME + ".masterkey"))


def test_absent_check_mode(host):
    host.run("repository", present())
    result = host.run("repository", {"name": NAME, "state": "absent"}, check=True)
    assert result["changed"] and os.path.isdir(os.path.join(host.etc, "repositories.d", NAME))
    assert [a[0] for a in host.argvs()] == ["mkfs"]


def test_recreate_reuses_existing_keys(host):
    host.run("repository", present())
    host.run("repository", {"name": NAME, "state": "absent", "preserve_data": True})
    pub = open(os.path.join(host.etc, "keys", NAME + ".pub")).read()
    shutil.rmtree(os.path.join(host.srv, NAME))
    result = host.run("repository", present())
    assert result["changed"] and "-k" not in result["cmd"]
    assert "Importing CernVM-FS Master Key and Certificate from '/etc/cvmfs/keys'" in result["stdout"]
    assert result["public_key"] == pub


def test_keys_dir_imported_with_k(host, tmp_path):
    keys = tmp_path / "vault-keys"
    keys.mkdir()
    for kind in ("masterkey", "pub", "key", "crt"):
        (keys / ("%s.%s" % (NAME, kind))).write_text("KEY-%s\n" % kind)
    result = host.run("repository", present(keys_dir=str(keys)))
    assert result["cmd"][1:] == ["mkfs", "-o", "root", "-k", str(keys), NAME]
    assert result["public_key"] == "KEY-pub\n"


def test_keys_dir_with_same_keys_already_in_place_is_reused(host, tmp_path):
    keys = tmp_path / "vault-keys"
    keys.mkdir()
    for kind in ("masterkey", "pub", "key", "crt"):  # mkfs needs all four (cvmfs-facts 1.1)
        (keys / (NAME + "." + kind)).write_text("KEY-%s\n" % kind)
        host.write("etc/cvmfs/keys/%s.%s" % (NAME, kind), "KEY-%s\n" % kind)
    result = host.run("repository", present(keys_dir=str(keys)))
    assert not result.failed and "-k" not in result["cmd"]


def test_s3_storage_config_file_and_secrets(host):
    s3 = {"host": "s3.example.org", "port": 7480, "bucket": "cvmfs-sw", "access_key": "AKID",
          "secret_key": "VERY-SECRET", "use_https": False, "dns_buckets": False, "max_parallel_connections": 64,
          "flavor": "awsv4", "region": "eu-1"}
    bucket_dir = host.path("bucket")
    args = present(storage="s3", stratum0_url="file://%s/%s" % (bucket_dir, NAME), s3_config=s3)
    result = host.run("repository", args, diff=True)
    assert not result.failed, result
    conf_path = os.path.join(host.etc, "s3", NAME + ".conf")
    assert result["cmd"][1:] == ["mkfs", "-w", "file://" + bucket_dir, "-o", "root", "-s", conf_path, NAME]
    assert stat.S_IMODE(os.stat(conf_path).st_mode) == 0o600
    content = open(conf_path).read()
    for line in ("CVMFS_S3_HOST=s3.example.org", "CVMFS_S3_PORT=7480", "CVMFS_S3_BUCKET=cvmfs-sw",
                 "CVMFS_S3_ACCESS_KEY=AKID", "CVMFS_S3_SECRET_KEY=VERY-SECRET", "CVMFS_S3_USE_HTTPS=false",
                 "CVMFS_S3_DNS_BUCKETS=false", "CVMFS_S3_MAX_NUMBER_OF_PARALLEL_CONNECTIONS=64",
                 "CVMFS_S3_FLAVOR=awsv4", "CVMFS_S3_REGION=eu-1"):
        assert line in content.splitlines()
    assert "VERY-SECRET" not in json.dumps(result)
    assert "CVMFS_S3_SECRET_KEY=********" in result["diff"][0]["after"]
    assert result["stratum0_url"] == "file://%s/%s" % (bucket_dir, NAME)
    assert result["repository"]["storage"] == "s3" and result["whitelist_expiry"]
    assert host.run("repository", args)["changed"] is False
    s3["secret_key"] = "ROTATED"
    rotated = host.run("repository", dict(args, s3_config=s3), diff=True)
    assert rotated["changed"] and "cmd" not in rotated and "ROTATED" not in json.dumps(rotated)
    assert "CVMFS_S3_SECRET_KEY=ROTATED" in open(conf_path).read().splitlines()


def test_s3_absent_removes_config_file(host):
    s3 = {"host": "s3", "bucket": "b", "access_key": "a", "secret_key": "not-a-real-secret"}
    args = present(storage="s3", stratum0_url="file://%s/%s" % (host.path("bucket"), NAME), s3_config=s3)
    host.run("repository", args)
    host.run("repository", {"name": NAME, "state": "absent"})
    assert not os.path.exists(os.path.join(host.etc, "s3", NAME + ".conf"))
    assert os.path.exists(os.path.join(host.path("bucket"), NAME, ".cvmfspublished"))  # S3 data kept


def test_s3_url_must_end_in_name(host):
    s3 = {"host": "s3", "bucket": "b", "access_key": "a", "secret_key": "not-a-real-secret"}
    result = host.run("repository", present(storage="s3", stratum0_url="http://s3/b", s3_config=s3))
    assert result.failed and "must be the bucket URL followed by /%s" % NAME in result["msg"]


def test_s3_host_must_be_a_host(host):
    s3 = {"host": "http://s3", "bucket": "b", "access_key": "a", "secret_key": "not-a-real-secret"}
    result = host.run("repository", present(storage="s3", stratum0_url="http://s3/b/" + NAME, s3_config=s3))
    assert result.failed and "host name only" in result["msg"]


def test_gateway_publisher(host, storage_factory, tmp_path):
    url = storage_factory(NAME, revision=7)
    keys = tmp_path / "gw-keys"
    keys.mkdir()
    for kind in ("pub", "crt", "gw"):
        (keys / ("%s.%s" % (NAME, kind))).write_text("GW-%s\n" % kind)
    args = present(storage="gateway", stratum0_url=url, gateway_url="http://gw.example.org:4929/api/v1",
                   keys_dir=str(keys))
    result = host.run("repository", args)
    assert not result.failed, result
    assert result["cmd"][1:] == ["mkfs", "-w", url, "-u", "gw,%s/%s/data/txn,http://gw.example.org:4929/api/v1"
                                 % (host.srv, NAME), "-o", "root", "-k", str(keys), NAME]
    assert result["repository"]["storage"] == "gateway"
    assert result["repository"]["upstream"]["gateway_url"] == "http://gw.example.org:4929/api/v1"
    assert result["whitelist_expiry"]  # read through the gateway's stratum-0 URL
    assert host.run("repository", args)["changed"] is False


def test_gateway_needs_keys(host, storage_factory, tmp_path):
    keys = tmp_path / "gw-keys"
    keys.mkdir()
    (keys / (NAME + ".pub")).write_text("x")
    result = host.run("repository", present(storage="gateway", stratum0_url=storage_factory(NAME),
                                            gateway_url="http://gw:4929/api/v1", keys_dir=str(keys)))
    assert result.failed and "missing: %s.crt, %s.gw" % (NAME, NAME) in result["msg"]
    assert host.argvs() == []


def test_gateway_url_without_comma(host, storage_factory, tmp_path):
    keys = tmp_path / "k"
    keys.mkdir()
    for kind in ("pub", "crt", "gw"):
        (keys / ("%s.%s" % (NAME, kind))).write_text("x")
    result = host.run("repository", present(storage="gateway", stratum0_url=storage_factory(NAME),
                                            gateway_url="http://gw:4929/api/v1,x", keys_dir=str(keys)))
    assert result.failed and "no commas" in result["msg"] and host.argvs() == []


@pytest.mark.parametrize("storage,missing", [("s3", "s3_config and stratum0_url"), ("gateway", "gateway_url and stratum0_url")])
def test_storage_needs_options(host, storage, missing):
    result = host.run("repository", present(storage=storage))
    assert result.failed and result["msg"] == "storage=%s needs %s" % (storage, missing)


def test_import_existing_storage(host):
    host.run("repository", present())
    host.run("repository", {"name": NAME, "state": "absent", "preserve_data": True})
    result = host.run("repository", present(import_storage=True, import_chown_storage=True))
    assert result["changed"] and result["cmd"][1:] == ["import", "-o", "root", "-g", NAME]
    assert result["repository"]["type"] == "stratum0"
    assert host.run("repository", present(import_storage=True))["changed"] is False


def test_stratum1_name_is_refused(host):
    host.write("etc/cvmfs/repositories.d/%s/server.conf" % NAME, "CVMFS_REPOSITORY_TYPE=stratum1\n")
    host.write("etc/cvmfs/repositories.d/%s/replica.conf" % NAME, "CVMFS_PUBLIC_KEY=/k\n")
    for state in ("present", "absent"):
        result = host.run("repository", present(state=state))
        assert result.failed and "is a stratum-1 replica on this host" in result["msg"]


# ---------------------------------------------------------------- errors (cvmfs-facts §1.1, §1.2, §1.17)

@pytest.mark.parametrize("key,text", [
    ("mkfs:not_root", "Only root can create a new repository"),
    ("mkfs:no_aufs", "aufs kernel module missing"),
    ("mkfs:no_client", "cvmfs client missing"),
    ("mkfs:autofs", "Autofs on /cvmfs has to be disabled"),
    ("mkfs:no_cap", "Need CAP_SYS_ADMIN for cvmfs_swissknife"),
    ("mkfs:no_apache", "Apache must be installed and running"),
    ("mkfs:no_masterkeycard", "masterkeycard not available"),
    ("mkfs:no_unionfs", "neither OverlayFS nor AUFS detected on the system!"),
])
def test_mkfs_precondition_errors(host, key, text):
    host.fail = [key]
    result = host.run("repository", present())
    assert result.failed and text in result["msg"] and result["rc"] == 1
    assert result["cmd"][1] == "mkfs" and text in result["stderr"]
    if key == "mkfs:not_root":
        assert "become" in result["msg"]


def test_mkfs_without_apache_config_still_needs_apache(host):
    # the real mkfs checks for a running Apache with local storage whether or not it writes its
    # configuration (-p): tests/integration/test_cvmfs_double_contract.py holds the double to that
    host.fail = ["mkfs:no_apache"]
    result = host.run("repository", present(apache=False))
    assert result.failed and "-p" in result["cmd"] and "Apache must be installed and running" in result["msg"]


def test_mkfs_repository_exists_race_is_unchanged(host, tmp_path):
    host.run("repository", present())
    # the module reads an empty etc_dir (as if the repository appeared after its state read)
    result = host.run("repository", present(), etc_dir=str(tmp_path / "empty"))
    assert not result.failed and result["changed"] is False
    assert result["stderr"].strip() == "The repository %s already exists" % NAME


def test_owner_must_exist(host):
    result = host.run("repository", present(owner="no-such-user-xyz"))
    assert result.failed and "owner 'no-such-user-xyz' is not a user on this host" in result["msg"]
    assert host.argvs() == []


@pytest.mark.parametrize("name", ["-bad", "a b", "x" * 61, "a/b"])
def test_invalid_repository_name(host, name):
    result = host.run("repository", present(name=name))
    assert result.failed and "not a valid repository name" in result["msg"] and host.argvs() == []


def test_name_without_dot(host):
    # mkfs would create "sw." (cvmfs_mkfqrn), which the next run would not find under "sw"
    for state in ("present", "absent"):
        result = host.run("repository", present(name="sw", state=state))
        assert result.failed and "not a fully qualified repository name" in result["msg"]
        assert "'sw.'" in result["msg"] and "sw.example.org" in result["msg"]
    assert host.argvs() == []


@pytest.mark.parametrize("in_place,in_keys_dir,missing", [
    (("pub",), (), "missing: {0}.masterkey, {0}.crt, {0}.key"),
    (("masterkey", "pub", "crt"), ("masterkey", "pub", "crt", "key"), "missing: {0}.key"),
    ((), ("pub", "crt"), "missing: {0}.masterkey, {0}.key"),
])
def test_incomplete_key_set_refused_before_mkfs(host, tmp_path, in_place, in_keys_dir, missing):
    # mkfs imports every key file from /etc/cvmfs/keys (when any is there) or from -k, and stops half-way
    # at the first missing one (tests/integration/test_cvmfs_double_contract.py)
    keys = tmp_path / "vault-keys"
    keys.mkdir()
    for kind in in_keys_dir:
        (keys / ("%s.%s" % (NAME, kind))).write_text("KEY-%s\n" % kind)
    for kind in in_place:
        host.write("etc/cvmfs/keys/%s.%s" % (NAME, kind), "KEY-%s\n" % kind)
    result = host.run("repository", present(keys_dir=str(keys) if in_keys_dir else None))
    assert result.failed and missing.format(NAME) in result["msg"] and "half-way" in result["msg"], result
    assert host.argvs() == [] and not os.path.exists(host.path("etc/cvmfs/repositories.d", NAME))


def test_auto_tag_timespan_unparsable(host):
    result = host.run("repository", present(auto_tag_timespan="whenever it suits"))
    assert result.failed and "Auto tags time span cannot be parsed" in result["msg"]


def test_keys_dir_would_overwrite_other_keys(host, tmp_path):
    keys = tmp_path / "k"
    keys.mkdir()
    (keys / (NAME + ".pub")).write_text("NEW\n")
    host.write("etc/cvmfs/keys/%s.pub" % NAME, "OLD\n")
    result = host.run("repository", present(keys_dir=str(keys)))
    assert result.failed and "differ from those in keys_dir" in result["msg"] and host.argvs() == []


def test_keys_dir_without_keys(host, tmp_path):
    (tmp_path / "empty").mkdir()
    result = host.run("repository", present(keys_dir=str(tmp_path / "empty")))
    assert result.failed and "holds no key files" in result["msg"]


def test_new_repository_with_keys_dir_where_mkfs_makes_keys(host):
    # a fresh stratum-0: nothing in Vault yet, keys_dir is mkfs's own (empty) keys directory
    host.write("etc/cvmfs/keys/.keep", "")
    result = host.run("repository", present(keys_dir=host.path("etc/cvmfs/keys")))
    assert not result.failed and result["changed"], result
    mkfs = [argv for argv in host.argvs() if argv[0] == "mkfs"]
    assert len(mkfs) == 1 and "-k" not in mkfs[0]


def test_rmfs_not_root(host):
    host.run("repository", present())
    host.fail = ["rmfs:not_root"]
    result = host.run("repository", {"name": NAME, "state": "absent"})
    assert result.failed and "Only root can remove a repository" in result["msg"]


def test_rmfs_does_not_exist_race_is_unchanged(host, tmp_path):
    # the module sees a repository the tool no longer has
    other_etc = tmp_path / "module-etc"
    (other_etc / "repositories.d" / NAME).mkdir(parents=True)
    result = host.run("repository", dict(name=NAME, state="absent"), etc_dir=str(other_etc))
    assert not result.failed and result["changed"] is False
    assert "The repository %s does not exist." % NAME in result["stderr"]


class TestImportErrors:
    @pytest.fixture
    def preserved(self, host):
        host.run("repository", present())
        host.run("repository", {"name": NAME, "state": "absent", "preserve_data": True})
        return host

    def test_storage_missing(self, host):
        result = host.run("repository", present(import_storage=True))
        assert result.failed and "%s/%s missing" % (host.srv, NAME) in result["msg"]

    def test_not_owned(self, preserved):
        preserved.fail = ["import:not_owned"]
        result = preserved.run("repository", present(import_storage=True))
        assert result.failed and "not owned by root" in result["msg"]

    def test_not_root(self, preserved):
        preserved.fail = ["import:not_root"]
        result = preserved.run("repository", present(import_storage=True))
        assert result.failed and "Only root can create a new repository" in result["msg"]

    def test_signing_key_missing(self, preserved):
        os.unlink(os.path.join(preserved.etc, "keys", NAME + ".key"))
        result = preserved.run("repository", present(import_storage=True))
        assert result.failed and "repository signing key or certificate not found (use -t maybe?)" in result["msg"]

    def test_whitelist_missing(self, preserved):
        os.unlink(os.path.join(preserved.srv, NAME, ".cvmfswhitelist"))
        result = preserved.run("repository", present(import_storage=True))
        assert result.failed and "didn't find %s/%s/.cvmfswhitelist" % (preserved.srv, NAME) in result["msg"]

    def test_whitelist_expired_suggests_resign(self, preserved):
        expire_whitelist(os.path.join(preserved.srv, NAME))
        result = preserved.run("repository", present(import_storage=True))
        assert result.failed and "set import_resign_whitelist=true" in result["msg"]
        fixed = preserved.run("repository", present(import_storage=True, import_resign_whitelist=True))
        assert not fixed.failed and fixed["cmd"][-2:] == ["-r", NAME]
        assert fixed["whitelist_expiry"] > "2000"

    def test_resign_without_masterkey(self, preserved):
        os.unlink(os.path.join(preserved.etc, "keys", NAME + ".masterkey"))
        result = preserved.run("repository", present(import_storage=True, import_resign_whitelist=True))
        assert result.failed and "Neither masterkey nor masterkeycard found for recreating whitelist" in result["msg"]

    def test_exists_race_is_unchanged(self, host, tmp_path):
        host.run("repository", present())
        result = host.run("repository", present(import_storage=True), etc_dir=str(tmp_path / "e"))
        assert not result.failed and result["changed"] is False

    def test_only_local(self, host):
        s3 = {"host": "s3", "bucket": "b", "access_key": "a", "secret_key": "not-a-real-secret"}
        result = host.run("repository", present(import_storage=True, storage="s3", s3_config=s3,
                                                stratum0_url="http://s3/b/" + NAME))
        assert result.failed and "import_storage works with storage=local only" in result["msg"]


def expire_whitelist(storage):
    path = os.path.join(storage, ".cvmfswhitelist")
    with open(path, "rb") as handle:
        lines = handle.read().split(b"\n")
    lines = [b"E20000101000000" if line.startswith(b"E") else line for line in lines]
    with open(path, "wb") as handle:
        handle.write(b"\n".join(lines))


def test_without_cvmfs_server_installed(host):
    missing = {"cvmfs_server": "/nonexistent/cvmfs_server"}
    gone = host.run("repository", {"name": NAME, "state": "absent"}, **missing)
    assert not gone.failed and gone["changed"] is False
    result = host.run("repository", present(), **missing)
    assert result.failed and ("/nonexistent/cvmfs_server is not an executable file: it must be cvmfs_server"
                              in result["msg"])
