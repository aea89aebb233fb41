"""The stratum0 role without CernVM-FS: its task files run for real on this machine (paths in a
scratch tree), against a real OpenBao; what they render is checked by the tools that consume it
(systemd-analyze, apache2 serving the real fixture repository, the gateway's JSON, the installed
whitelist check run with the distribution's Python).

What cannot run here: cvmfs_server (mkfs, resign, gc, update-repoinfo) and cvmfs-gateway itself.
The molecule scenarios stratum0 and stratum0-s3 cover those where CernVM-FS packages install.
"""

import datetime
import json
import os
import shutil
import stat
import subprocess
import urllib.request
import uuid

import pytest

from tests.harness.apache import Apache, MODULES, make_world_readable
from tests.support.cvmfs_keyset import keyset, write_keyset
from tests.support.cvmfs_repo import (  # pylint: disable=unused-import
    pristine_repo,  # noqa: F401  (the pytest fixture: the committed fixture, untouched)
)
from tests.support.role_hosts import role_paths

from ._playbook import assert_converged_then_unchanged, run_playbook, systemd_verify

pytestmark = pytest.mark.integration

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SW, DATA = "sw.example.org", "data.example.org"


def catalogue():
    return [
        {"name": SW, "stratum0": "localhost",
         "gateway": {"key_path": "/"},
         "publishers": [{"host": "pub1", "path": "/team-a"}, {"host": "pub2", "path": "/team-b"}],
         "source": {"bucket": "software"},
         "gc": {"enabled": True, "timespan": "1 week ago", "schedule": "Sun *-*-* 04:00:00"},
         "meta": {"administrator": "Software team", "email": "sw@example.org"}},
        {"name": DATA, "stratum0": "localhost", "gateway": {"key_path": "/bin"},
         "storage": {"type": "s3", "s3": {"host": "rgw.example.org", "bucket": "cvmfs-data",
                                          "credentials": {"vault_path": "cvmfs/s3/stratum0"}}}},
        {"name": "elsewhere.example.org", "stratum0": "another-stratum0"},
    ]


class Host:
    """A stratum-0 "host": a scratch root for the role's paths, and the role's extra vars."""

    def __init__(self, base, name, openbao, prefix, new_keys_dir):
        self.root = base / name
        self.root.mkdir()
        self.workdir = base / (name + "-work")
        self.workdir.mkdir()
        paths = {
            "etc_dir": "etc/cvmfs", "keys_dir": "etc/cvmfs/keys",
            "storage_dir": "srv/cvmfs", "gateway_dir": "etc/cvmfs/gateway", "config_dir": "etc/sharedsw-cvmfs/stratum0",
            "systemd_dir": "etc/systemd/system", "program_dir": "usr/local/lib/sharedsw-cvmfs",
            "apache_conf_dir": "etc/apache2/conf-available", "apache_conf_enabled_dir": "etc/apache2/conf-enabled",
        }
        self.vars = role_paths("stratum0", self.root, paths,
                               create=("keys_dir", "apache_conf_dir", "apache_conf_enabled_dir", "systemd_dir"))
        self.vars.update({
            "__stratum0_apache_modules": [],          # a2enmod would change this machine's apache
            "__stratum0_apache_ctl": "/bin/true",     # the real check is test_apache_serves_the_repository
            "stratum0_repositories": catalogue(),
            "stratum0_vault": {"url": openbao.url, "token": openbao.root_token},
            "stratum0_vault_path_prefix": prefix,
            "test_new_keys_dir": str(new_keys_dir),
        })

    def path(self, *parts):
        return self.root.joinpath(*parts)

    def run(self, playbook="stratum0.yml", **kwargs):
        return run_playbook(self.workdir, playbook, self.vars, **kwargs)


@pytest.fixture(scope="module")
def site(tmp_path_factory, openbao):
    """One stratum-0 converged twice against a fresh Vault prefix; later tests read what it made."""
    base = tmp_path_factory.mktemp("stratum0")
    new_keys = base / "mkfs-keys"
    for repo in (SW, DATA):
        write_keyset(str(new_keys), repo, keyset(repo), kinds=("masterkey", "key", "crt", "pub"))
    prefix = "t-" + uuid.uuid4().hex[:8]
    host = Host(base, "s0", openbao, prefix, new_keys)
    first = host.run()
    second = host.run()
    return {"base": base, "host": host, "first": first, "second": second, "prefix": prefix,
            "openbao": openbao, "new_keys": new_keys}


def vault_read(openbao, path):
    client = openbao.client()
    try:
        return client.secrets.kv.v2.read_secret_version(path=path, mount_point="secret",
                                                        raise_on_deleted_version=True)["data"]
    except Exception:  # pylint: disable=broad-except
        return None


def test_converges_then_changes_nothing(site):
    assert_converged_then_unchanged(site["first"], site["second"])


def test_a_converge_with_nothing_to_do_asks_vault_once_per_repository_and_reads_no_key(site):
    ran = site["second"].ran_tasks()
    assert [name for name in ran if "Keys in Vault" in name] == [
        "sharedsw.cvmfs.stratum0 : Keys in Vault, stored for " + SW,
        "sharedsw.cvmfs.stratum0 : Keys in Vault, stored for " + DATA], ran
    assert not [name for name in ran if "Generate the gateway key" in name or "Key id" in name], ran


def test_keys_go_to_vault_one_path_per_kind(site):
    openbao, prefix = site["openbao"], site["prefix"]
    for repo in (SW, DATA):
        expected = keyset(repo)
        assert vault_read(openbao, "%s/%s/master" % (prefix, repo))["data"]["masterkey"] == expected["masterkey"]
        assert vault_read(openbao, "%s/%s/signing" % (prefix, repo))["data"]["key"] == expected["key"]
        public = vault_read(openbao, "%s/%s/public" % (prefix, repo))
        assert public["data"] == {"pub": expected["pub"], "crt": expected["crt"]}
        assert public["metadata"]["version"] == 1, "the second run must not write a new KV version"
    assert vault_read(openbao, "%s/elsewhere.example.org/public" % prefix) is None


def test_gateway_key_is_made_once_and_kept_in_vault(site):
    host, openbao, prefix = site["host"], site["openbao"], site["prefix"]
    gw = host.path("etc/cvmfs/keys", SW + ".gw")
    kind, key_id, secret = gw.read_text().split()
    assert (kind, key_id) == ("plain_text", SW)
    assert len(secret) == 64 and int(secret, 16) >= 0
    assert stat.S_IMODE(gw.stat().st_mode) == 0o600
    stored = vault_read(openbao, "%s/%s/gateway" % (prefix, SW))
    assert stored["data"]["gw"] == gw.read_text()
    assert stored["metadata"]["version"] == 1


def test_gateway_configuration(site):
    host = site["host"]
    repo_json = json.loads(host.path("etc/cvmfs/gateway/repo.json").read_text())
    assert repo_json == {
        "version": 2,
        "repos": [{"domain": SW, "keys": [{"id": SW, "path": "/"}]},
                  {"domain": DATA, "keys": [{"id": DATA, "path": "/bin"}]}],
        "keys": [{"type": "file", "file_name": str(host.path("etc/cvmfs/keys", SW + ".gw"))},
                 {"type": "file", "file_name": str(host.path("etc/cvmfs/keys", DATA + ".gw"))}],
    }
    user_json = json.loads(host.path("etc/cvmfs/gateway/user.json").read_text())
    assert user_json["port"] == 4929 and user_json["max_lease_time"] == 7200
    assert user_json["receiver_path"] == "/usr/bin/cvmfs_receiver"


def test_units_pass_systemd_analyze_verify(site):
    host = site["host"]
    unit_dir = host.path("etc/systemd/system")
    units = []
    for repo in (SW, DATA):
        units += ["sharedsw-cvmfs-resign@%s.service" % repo, "sharedsw-cvmfs-resign@%s.timer" % repo,
                  "sharedsw-cvmfs-whitelist@%s.service" % repo, "sharedsw-cvmfs-whitelist@%s.timer" % repo]
    units += ["sharedsw-cvmfs-gc@%s.service" % SW, "sharedsw-cvmfs-gc@%s.timer" % SW, "sharedsw-cvmfs-mount.service"]
    assert systemd_verify(unit_dir, units) == []
    # the GC timer of a repository without gc.schedule has no OnCalendar: systemd must refuse it,
    # which proves the check above would see a broken timer
    assert any("lacks value setting" in line for line in systemd_verify(unit_dir, ["sharedsw-cvmfs-gc@%s.timer" % DATA]))
    dropin = host.path("etc/systemd/system", "sharedsw-cvmfs-gc@%s.timer.d" % SW, "schedule.conf").read_text()
    assert "OnCalendar=Sun *-*-* 04:00:00" in dropin
    resign_timer = host.path("etc/systemd/system/sharedsw-cvmfs-resign@.timer").read_text()
    assert "RandomizedDelaySec=4h" in resign_timer and "FixedRandomDelay=true" in resign_timer


def test_timer_settings_per_repository(site):
    host = site["host"]
    env = host.path("etc/sharedsw-cvmfs/stratum0", SW + ".env").read_text()
    assert "SHAREDSW_WHITELIST_DAYS=30\n" in env
    assert "SHAREDSW_WHITELIST_SOURCE=--file %s/.cvmfswhitelist\n" % host.path("srv/cvmfs", SW) in env
    assert 'SHAREDSW_GC_TIMESPAN="1 week ago"\n' in env
    s3_env = host.path("etc/sharedsw-cvmfs/stratum0", DATA + ".env").read_text()
    assert "SHAREDSW_WHITELIST_SOURCE=--url https://rgw.example.org/cvmfs-data/%s\n" % DATA in s3_env


def test_whitelist_check_installed_runs_with_the_system_python(site, pristine_repo):
    """On the real fixture's whitelist, at moments counted back from its own expiry (never the clock)."""
    host = site["host"]
    program = host.path("usr/local/lib/sharedsw-cvmfs/sharedsw-cvmfs.pyz")
    whitelist = os.path.join(pristine_repo.stratum0, ".cvmfswhitelist")
    expires = pristine_repo.whitelist_expires

    def check(now, alert_days=14, name=pristine_repo.name):
        return subprocess.run(["/usr/bin/python3", "-m", "sharedsw_cvmfs._whitelist_check", "--name",
                               name, "--file", whitelist, "--alert-days", str(alert_days),
                               "--public-key", pristine_repo.pub,
                               "--now", now.strftime("%Y-%m-%dT%H:%M:%S")],
                              env={"PYTHONPATH": str(program), "PATH": "/usr/bin:/bin"},
                              capture_output=True, check=False, text=True)

    fresh = check(expires - datetime.timedelta(days=29, hours=12))
    assert fresh.returncode == 0, fresh.stderr
    assert "valid for 29.5 more days (until %s)" % expires.strftime("%Y-%m-%d %H:%M UTC") in fresh.stdout
    soon = check(expires - datetime.timedelta(days=8))
    assert soon.returncode == 1
    assert "expires in 8.0 days" in soon.stderr and "resign" in soon.stderr
    expired = check(expires + datetime.timedelta(hours=12))
    assert expired.returncode == 1 and "EXPIRED" in expired.stderr
    wrong = check(expires - datetime.timedelta(days=29, hours=12), name=SW)
    assert wrong.returncode == 2 and "names repository %s" % pristine_repo.name in wrong.stderr


class RepositoryApache(Apache):
    """The harness's apache2 with the modules the repository configuration needs and the
    configuration files the role rendered."""

    def __init__(self, conf_dir):
        self.conf_dir = conf_dir
        super().__init__()

    def write_config(self):
        super().write_config()
        extra = ["LoadModule %s_module %s/mod_%s.so" % (m, MODULES, m) for m in ("alias", "headers", "expires")]
        with open(self.path("httpd.conf"), "a") as handle:
            handle.write("\n".join(extra) + "\nIncludeOptional %s/*.conf\n" % self.conf_dir)


def test_apache_serves_the_repository_as_cvmfs_expects(site, pristine_repo):
    """apache2 with the role's configuration serves the real fixture repository."""
    host = site["host"]
    storage = host.path("srv/cvmfs", SW)
    if storage.exists():
        shutil.rmtree(str(storage))
    pristine_repo.copy("stratum0", storage)
    make_world_readable(str(storage))  # and o+x on its parents
    with RepositoryApache(str(host.path("etc/apache2/conf-enabled"))) as apache:
        def get(path):
            with urllib.request.urlopen(apache.url + path, timeout=10) as response:
                return response.status, dict(response.headers), response.read()

        status, headers, body = get("/cvmfs/%s/.cvmfspublished" % SW)
        assert status == 200
        assert body == pristine_repo.read(pristine_repo.stratum0, ".cvmfspublished")
        assert headers["Content-Type"] == "application/x-cvmfs"
        assert headers["Cache-Control"] == "max-age=61"
        assert "Last-Modified" not in headers and "ETag" not in headers
        data_dir = storage / "data"
        sub = sorted(d for d in os.listdir(str(data_dir)) if os.listdir(str(data_dir / d)))[0]
        obj = sorted(os.listdir(str(data_dir / sub)))[0]
        status, headers, _body = get("/cvmfs/%s/data/%s/%s" % (SW, sub, obj))
        assert status == 200
        assert headers["Cache-Control"] == "max-age=259200"  # 3 days: objects never change
        if "." not in obj:
            assert headers["Content-Type"] == "application/octet-stream"
        with pytest.raises(urllib.error.HTTPError) as listing:
            get("/cvmfs/%s/data/" % SW)
        assert listing.value.code == 403, "no directory listings"


def test_recreated_stratum0_gets_the_same_keys_from_vault(site):
    """A new host (empty keys directory), same Vault: mkfs must find the old keys in place."""
    host = Host(site["base"], "s0-new", site["openbao"], site["prefix"], site["base"] / "other-keys")
    for repo in (SW, DATA):  # what mkfs would generate on the new host: different keys
        write_keyset(str(site["base"] / "other-keys"), repo, keyset(repo, variant=1),
                     kinds=("masterkey", "key", "crt", "pub"))
    result = host.run()
    assert result.rc == 0, result
    for repo in (SW, DATA):
        for kind in ("masterkey", "key", "crt", "pub"):
            assert host.path("etc/cvmfs/keys", "%s.%s" % (repo, kind)).read_text() == keyset(repo)[kind], (repo, kind)
        assert stat.S_IMODE(host.path("etc/cvmfs/keys", repo + ".masterkey").stat().st_mode) == 0o400
        assert stat.S_IMODE(host.path("etc/cvmfs/keys", repo + ".pub").stat().st_mode) == 0o444
    original = site["host"].path("etc/cvmfs/keys", SW + ".gw").read_text()
    assert host.path("etc/cvmfs/keys", SW + ".gw").read_text() == original, "the gateway key must not be regenerated"
    for repo in (SW, DATA):
        assert vault_read(site["openbao"], "%s/%s/gateway" % (site["prefix"], repo))["metadata"]["version"] == 1
    assert "PRIVATE KEY" not in result.output and original.split()[2] not in result.output


def test_vault_that_knows_the_repository_but_lost_a_key_stops_the_run(site, openbao):
    prefix = "t-" + uuid.uuid4().hex[:8]
    client = openbao.client()
    keys = keyset(SW)
    client.secrets.kv.v2.create_or_update_secret(path="%s/%s/public" % (prefix, SW), mount_point="secret",
                                                 secret={"pub": keys["pub"], "crt": keys["crt"]})
    client.secrets.kv.v2.create_or_update_secret(path="%s/%s/master" % (prefix, SW), mount_point="secret",
                                                 secret={"masterkey": keys["masterkey"]})
    host = Host(site["base"], "s0-partial", openbao, prefix, site["new_keys"])
    result = host.run("stratum0_restore_only.yml")
    assert result.rc != 0
    assert "no secret at secret/%s/%s/signing" % (prefix, SW) in result.output
    assert not host.path("etc/cvmfs/repositories.d", SW).exists(), "no repository with new keys"


def test_repositories_are_mounted_again_at_boot_after_apache(site):
    unit = site["host"].path("etc/systemd/system/sharedsw-cvmfs-mount.service").read_text()
    assert "ExecStart=/usr/bin/cvmfs_server mount -a" in unit
    assert "After=local-fs.target network-online.target apache2.service\n" in unit
    assert "WantedBy=multi-user.target" in unit
