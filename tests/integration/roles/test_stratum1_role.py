"""The stratum1 role without CernVM-FS: the whole role runs for real on this machine (paths in a
scratch tree; tag stratum1_packages skipped) against the TEST DOUBLE of cvmfs_server
(tests/cvmfs_double: add-replica and snapshot as cvmfs-facts.md documents them), a real OpenBao
(public keys), and a stratum-0 served by the harness's apache2 from a copy of the real fixture
repository (re-keyed at test time: the lag checks' variants are signed with fresh test keys).
What it renders is then used by the real consumers: apache2 serves the replica with the role's
configuration (caching headers, GeoAPI through mod_wsgi), the role's squid.conf runs a real squid
in front of it, systemd-analyze verifies the units, logrotate reads its file, nft checks the
redirect table, and the installed lag check runs with the distribution's Python (at a fixed "now").

What is not real here: cvmfs_server (the double copies only the manifest and whitelist in a
snapshot; the objects a real snapshot pulls are copied from the fixture's real replica where a
test needs them) and cvmfs-server's GeoAPI application (a stand-in WSGI script that echoes the
path it receives, to check the routing). The molecule scenario stratum1 covers those where the
CernVM-FS packages install.
"""

import datetime
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import urllib.error
import urllib.request
import uuid

import pytest

from tests.cvmfs_double import DOUBLE, hook_env
from tests.support.cvmfs_repo import (  # pylint: disable=unused-import
    cvmfs_repo,  # noqa: F401  (the pytest fixture: re-keyed copy)
)
from tests.harness.apache import MODULES, Apache, make_world_readable
from tests.harness._process import free_port
from tests.harness.squid import Squid

from ._playbook import run_playbook, systemd_verify

pytestmark = pytest.mark.integration

REPO = "fixture.cvmfs.test"
GEO_KEY = "geo-licence-" + uuid.uuid4().hex
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# TEST STAND-IN for cvmfs-server's GeoAPI application (/var/www/wsgi-scripts/cvmfs-server/cvmfs-api.wsgi):
# it only echoes the path Apache routed to it, and lets squid cache the answer for a minute.
WSGI_STAND_IN = '''\
def application(environ, start_response):
    body = ("stand-in GeoAPI " + environ.get("PATH_INFO", "")).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Cache-Control", "max-age=60"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


class ReplicaApache(Apache):
    """The harness's apache2 with the modules the role enables and the configuration it rendered."""

    def __init__(self):
        super().__init__()
        self.conf_dir = None

    def write_config(self):
        super().write_config()
        extra = ["LoadModule %s_module %s/mod_%s.so" % (m, MODULES, m) for m in ("alias", "headers", "expires", "wsgi")]
        with open(self.path("httpd.conf"), "a") as handle:
            handle.write("\n".join(extra) + "\nIncludeOptional %s/*.conf\n" % self.conf_dir)


class ReverseSquid(Squid):
    """A real squid running the squid.conf the role rendered (paths and port given to the role)."""

    def __init__(self):
        super().__init__()
        self.rendered = None

    def directives(self):
        """squid.conf lines for this scratch instance (the role's __stratum1_squid_directives)."""
        return {"pid_filename": self.path("squid.pid"), "cache_log": self.path("cache.log"),
                "access_log": "stdio:%s squid" % self.path("access.log"), "coredump_dir": self.dir,
                "shutdown_lifetime": "1 seconds", "pinger_enable": "off",
                "udp_incoming_address": "127.0.0.1", "udp_outgoing_address": "127.0.0.1"}

    def write_config(self):
        shutil.copyfile(self.rendered, self.path("squid.conf"))
        account = pwd.getpwnam(self.user)
        os.chown(self.dir, account.pw_uid, account.pw_gid)


class Host:
    """A stratum-1 "host": scratch root (also the double's CVMFS_DOUBLE_ROOT) and the role's extra vars."""

    def __init__(self, base, name, stratum0_url, openbao, prefix, apache_port, squid):
        self.root = os.path.join(base, name)
        self.workdir = os.path.join(base, name + "-work")
        for directory in (self.root, self.workdir):
            os.makedirs(directory)
        paths = {
            "etc_dir": "etc/cvmfs", "keys_dir": "etc/cvmfs/keys",
            "storage_dir": "srv/cvmfs", "config_dir": "etc/sharedsw-cvmfs/stratum1",
            "systemd_dir": "etc/systemd/system", "program_dir": "usr/local/lib/sharedsw-cvmfs",
            "apache_conf_dir": "etc/apache2/conf-available", "apache_conf_enabled_dir": "etc/apache2/conf-enabled",
            "logrotate_file": "etc/logrotate.d/cvmfs", "log_dir": "var/log/cvmfs",
            "wsgi_dir": "var/www/wsgi-scripts/cvmfs-server", "webapi_dir": "usr/share/cvmfs-server/webapi",
            "squid_config_file": "etc/squid/squid.conf", "squid_cache_dir": "var/spool/squid",
            "nftables_file": "etc/nftables.d/sharedsw-cvmfs-stratum1.nft", "nftables_main": "etc/nftables.conf",
        }
        self.vars = {"__stratum1_%s" % key: self.path(value) for key, value in paths.items()}
        # directories the packages (apache2, systemd, squid, logrotate) would have made
        for key in ("apache_conf_dir", "apache_conf_enabled_dir", "systemd_dir"):
            os.makedirs(self.vars["__stratum1_" + key], exist_ok=True)
        for key in ("squid_config_file", "logrotate_file"):
            os.makedirs(os.path.dirname(self.vars["__stratum1_" + key]), exist_ok=True)
        self.vars.update({
            "__stratum1_cvmfs_server": DOUBLE,
            "__stratum1_apache_modules": [],         # a2enmod would change this machine's apache
            "__stratum1_apache_ctl": "/bin/true",    # the real check: test_apache_serves_the_replica
            "__stratum1_apache_port": apache_port,
            "__stratum1_local_base_url": "http://127.0.0.1:%d/cvmfs" % apache_port,
            "__stratum1_squid_address": "127.0.0.1:",
            "__stratum1_wsgi_socket_prefix": os.path.join(self.workdir, "wsgi"),
            "__stratum1_squid_directives": squid.directives(),
            "stratum1_repositories": [
                {"name": REPO, "stratum0": "s0.test", "url": stratum0_url, "replicate": ["stratum1_site_a"],
                 "gc": {"enabled": True}},
                {"name": "elsewhere.cvmfs.test", "stratum0": "s0.test", "replicate": ["stratum1_site_b"]},
                {"name": "unreplicated.cvmfs.test", "stratum0": "s0.test", "replicate": []},
            ],
            "stratum1_groups": ["stratum1", "stratum1_site_a"],
            "stratum1_vault": {"url": openbao.url, "token": openbao.root_token},
            "stratum1_vault_path_prefix": prefix,
            "stratum1_geo_account_id": "123456",
            "stratum1_geo_license_key": GEO_KEY,
            "stratum1_squid_enabled": True,
            "stratum1_squid_port": squid.port,
            "stratum1_squid_cache_dir_mb": 0,
            "stratum1_squid_redirect_port_80": True,
        })

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def run(self, check=False, **overrides):
        env = {"CVMFS_DOUBLE_ROOT": self.root, "ANSIBLE_SKIP_TAGS": "stratum1_packages"}
        # the replica module finds the double and this host's tree through its test hook
        env.update(hook_env(cvmfs_server=DOUBLE, etc_dir=self.path("etc/cvmfs"),
                            spool_dir=self.path("var/spool/cvmfs"), storage_dir=self.path("srv/cvmfs")))
        return run_playbook(self.workdir, "stratum1.yml", dict(self.vars, **overrides), check=check, env=env)

    def read(self, *parts):
        with open(self.path(*parts)) as handle:
            return handle.read()


@pytest.fixture(scope="module")
def site(cvmfs_repo, apache, openbao):
    """A stratum-0 (apache serving a copy of the fixture) and one stratum-1 converged twice."""
    base = tempfile.mkdtemp(prefix="stratum1-")  # not tmp_path: apache must read it
    s0_storage = os.path.join(base, "s0", REPO)
    shutil.copytree(cvmfs_repo.stratum0, s0_storage)
    for root, dirs, _files in os.walk(s0_storage):
        os.chmod(root, 0o755)
        for name in _files:
            os.chmod(os.path.join(root, name), 0o644)
    stratum0_url = apache.publish("s0", os.path.join(base, "s0")) + REPO
    prefix = "t-" + uuid.uuid4().hex[:8]
    openbao.client().secrets.kv.v2.create_or_update_secret(
        path="%s/%s/public" % (prefix, REPO), mount_point="secret",
        secret={"pub": cvmfs_repo.public_key_text(), "crt": cvmfs_repo.read(cvmfs_repo.root, "keys", REPO + ".crt").decode()})
    s1_apache, squid = ReplicaApache(), ReverseSquid()
    host = Host(base, "s1", stratum0_url, openbao, prefix, s1_apache.port, squid)
    first = host.run()
    second = host.run()
    check = host.run(check=True)
    # "now" of the lag checks: two hours after the fixture's publication (never the clock)
    lag_now = datetime.datetime.fromtimestamp(int(cvmfs_repo.manifest_lines["T"]) + 7200, datetime.timezone.utc)
    yield {"base": base, "host": host, "first": first, "second": second, "check": check, "s0_storage": s0_storage,
           "stratum0_url": stratum0_url, "s1_apache": s1_apache, "squid": squid, "openbao": openbao, "prefix": prefix,
           "lag_now": lag_now.strftime("%Y-%m-%dT%H:%M:%S")}
    s1_apache.close()
    squid.close()
    shutil.rmtree(base, ignore_errors=True)


def test_converges_then_changes_nothing(site):
    first, second, check = site["first"], site["second"], site["check"]
    assert first.rc == 0, first
    assert first.changed > 0
    assert second.rc == 0, second
    assert second.changed == 0, second
    assert check.rc == 0 and check.changed == 0, check


def test_replicates_only_the_repositories_of_its_groups(site, cvmfs_repo):
    host = site["host"]
    assert sorted(os.listdir(host.path("etc/cvmfs/repositories.d"))) == [REPO]
    server_conf = host.read("etc/cvmfs/repositories.d", REPO, "server.conf")
    assert "CVMFS_REPOSITORY_TYPE=stratum1\n" in server_conf
    assert "CVMFS_STRATUM0=%s\n" % site["stratum0_url"] in server_conf
    replica_conf = host.read("etc/cvmfs/repositories.d", REPO, "replica.conf")
    assert "CVMFS_PUBLIC_KEY=%s\n" % host.path("etc/cvmfs/keys", REPO + ".pub") in replica_conf
    # the first snapshot was taken: the replica serves the stratum-0's revision
    with open(host.path("srv/cvmfs", REPO, ".cvmfspublished"), "rb") as replica, \
            open(os.path.join(site["s0_storage"], ".cvmfspublished"), "rb") as stratum0:
        assert replica.read() == stratum0.read()
    assert os.path.exists(host.path("srv/cvmfs", REPO, ".cvmfs_last_snapshot"))
    with open(host.path("calls.jsonl")) as handle:
        calls = handle.readlines()
    assert sum('"add-replica"' in c for c in calls) == 1, "add-replica runs once, with -a -p (Apache is the role's)"
    add_replica = [c for c in calls if '"add-replica"' in c][0]
    assert '"-a"' in add_replica and '"-p"' in add_replica


def test_public_key_from_vault(site, cvmfs_repo):
    key = site["host"].path("etc/cvmfs/keys", REPO + ".pub")
    assert open(key).read().strip() == cvmfs_repo.public_key_text().strip()
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o444


def test_geoapi_account_in_server_local_and_never_in_the_output(site):
    host = site["host"]
    server_local = host.path("etc/cvmfs/server.local")
    assert host.read("etc/cvmfs/server.local").splitlines()[-2:] == [
        "CVMFS_GEO_ACCOUNT_ID=123456", "CVMFS_GEO_LICENSE_KEY=%s" % GEO_KEY]
    assert stat.S_IMODE(os.stat(server_local).st_mode) == 0o640 and os.stat(server_local).st_uid == 0
    for result in (site["first"], site["second"], site["check"]):
        assert GEO_KEY not in result.output


def test_check_mode_on_a_new_host_changes_nothing(site, openbao, cvmfs_repo):
    """--check on a host that has nothing yet, without a GeoIP account, public keys from files on
    the controller: predicts, writes nothing."""
    squid = ReverseSquid()
    try:
        host = Host(site["base"], "s1-check", site["stratum0_url"], openbao, site["prefix"], 8080, squid)
        result = host.run(check=True, stratum1_geo_account_id="", stratum1_geo_license_key="",
                          stratum1_public_keys_source="files", stratum1_public_key_dir=cvmfs_repo.keys)
    finally:
        squid.close()
    assert result.rc == 0, result
    assert result.changed > 0
    assert "GeoAPI of localhost is off (CVMFS_GEO_DB_FILE=NONE)" in result.output
    assert "the public key of %s is not on this host yet" % REPO in result.output
    assert not os.path.exists(host.path("etc/cvmfs"))
    assert not os.path.exists(host.path("calls.jsonl")), "no cvmfs_server command in check mode"
    assert os.listdir(host.path("etc/systemd/system")) == []


def test_units_pass_systemd_analyze_verify(site):
    host = site["host"]
    units = ["sharedsw-cvmfs-snapshot.service", "sharedsw-cvmfs-snapshot.timer", "sharedsw-cvmfs-replica-gc.service",
             "sharedsw-cvmfs-replica-gc.timer", "sharedsw-cvmfs-replica-lag@%s.service" % REPO,
             "sharedsw-cvmfs-replica-lag@%s.timer" % REPO]
    complaints = [line for line in systemd_verify(host.path("etc/systemd/system"), units)
                  if "Command %s is not executable" % DOUBLE not in line]
    assert complaints == []
    snapshot = host.read("etc/systemd/system/sharedsw-cvmfs-snapshot.service")
    assert "ExecStart=%s snapshot -a\n" % DOUBLE in snapshot
    assert "ConditionPathExists=%s\n" % host.path("etc/logrotate.d/cvmfs") in snapshot
    assert "OnCalendar=*:0/5\n" in host.read("etc/systemd/system/sharedsw-cvmfs-snapshot.timer")
    assert "ExecStart=%s gc -af\n" % DOUBLE in host.read("etc/systemd/system/sharedsw-cvmfs-replica-gc.service")
    for schedule in ("*:0/5", "Sun *-*-* 05:00:00", "*:0/15"):
        assert subprocess.run(["systemd-analyze", "calendar", schedule], capture_output=True, check=False).returncode == 0


def test_logrotate_reads_the_configuration_snapshot_a_requires(site):
    host = site["host"]
    os.makedirs(host.path("var/log/cvmfs"), exist_ok=True)
    with open(host.path("var/log/cvmfs/snapshots.log"), "w") as handle:
        handle.write("snapshot log line\n")
    proc = subprocess.run(["logrotate", "-d", "-s", host.path("logrotate.state"), host.path("etc/logrotate.d/cvmfs")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "considering log %s" % host.path("var/log/cvmfs/snapshots.log") in proc.stdout + proc.stderr


def test_port_80_redirect_table_is_valid_nftables(site):
    host = site["host"]
    table = host.path("etc/nftables.d/sharedsw-cvmfs-stratum1.nft")
    text = open(table).read()
    assert "fib daddr type local tcp dport 80 redirect to :%d" % site["squid"].port in text
    assert 'include "%s"' % table in host.read("etc/nftables.conf")
    proc = subprocess.run(["nft", "-c", "-f", table], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def _get(url, headers=None):
    try:
        with DIRECT.open(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture(scope="module")
def served(site, cvmfs_repo):
    """apache2 with the role's configuration serving the replica, and the role's squid in front."""
    host = site["host"]
    storage = host.path("srv/cvmfs", REPO)
    # the objects a real snapshot would have pulled: from the fixture's real replica
    shutil.copytree(os.path.join(cvmfs_repo.stratum1, "data"), os.path.join(storage, "data"), dirs_exist_ok=True)
    os.makedirs(host.vars["__stratum1_wsgi_dir"], exist_ok=True)
    with open(os.path.join(host.vars["__stratum1_wsgi_dir"], "cvmfs-api.wsgi"), "w") as handle:
        handle.write(WSGI_STAND_IN)
    make_world_readable(host.root)
    apache, squid = site["s1_apache"], site["squid"]
    apache.conf_dir = host.path("etc/apache2/conf-enabled")
    squid.rendered = host.path("etc/squid/squid.conf")
    apache.__enter__()
    squid.__enter__()
    return {"apache": apache.url, "squid": "http://127.0.0.1:%d" % squid.port, "storage": storage}


def test_apache_serves_the_replica_as_cvmfs_expects(served):
    status, headers, body = _get(served["apache"] + "/cvmfs/%s/.cvmfspublished" % REPO)
    assert status == 200
    assert body == open(os.path.join(served["storage"], ".cvmfspublished"), "rb").read()
    assert headers["Content-Type"] == "application/x-cvmfs"
    assert headers["Cache-Control"] == "max-age=61"
    assert "Last-Modified" not in headers and "ETag" not in headers
    data = os.path.join(served["storage"], "data")
    sub = sorted(d for d in os.listdir(data) if d != "txn" and os.listdir(os.path.join(data, d)))[0]
    obj = sorted(os.listdir(os.path.join(data, sub)))[0]
    status, headers, _body = _get(served["apache"] + "/cvmfs/%s/data/%s/%s" % (REPO, sub, obj))
    assert status == 200 and headers["Cache-Control"] == "max-age=259200"
    assert _get(served["apache"] + "/cvmfs/%s/data/" % REPO)[0] == 403, "no directory listings"


def test_geoapi_is_routed_to_the_wsgi_application(served):
    status, _headers, body = _get(served["apache"] + "/cvmfs/%s/api/v1.0/geo/x/s1.example.org,s2.example.org" % REPO)
    assert status == 200, body
    assert body == b"stand-in GeoAPI /%s/v1.0/geo/x/s1.example.org,s2.example.org" % REPO.encode()
    assert _get(served["apache"] + "/cvmfs/elsewhere.cvmfs.test/api/v1.0/geo/x/y")[0] == 404


def test_squid_reverse_proxy_caches_only_the_geoapi(served):
    url = served["squid"] + "/cvmfs/%s/.cvmfspublished" % REPO
    first, second = _get(url), _get(url)
    assert first[0] == second[0] == 200
    assert second[2] == open(os.path.join(served["storage"], ".cvmfspublished"), "rb").read()
    assert second[1]["Cache-Control"] == "max-age=61"
    assert "MISS" in second[1].get("X-Cache", ""), "files come from Apache's disk, not squid's cache"
    api = served["squid"] + "/cvmfs/%s/api/v1.0/geo/x/a,b" % REPO
    first, second = _get(api), _get(api)
    assert first[2] == second[2] == b"stand-in GeoAPI /%s/v1.0/geo/x/a,b" % REPO.encode()
    assert "HIT" in second[1].get("X-Cache", ""), second[1]


def _lag_check(site, replica_url=None, stratum0_url=None):
    """Run the installed lag check the way its unit does (settings from the role's env file), at
    the fixed moment ``site["lag_now"]``."""
    host = site["host"]
    env = dict(line.split("=", 1) for line in host.read("etc/sharedsw-cvmfs/stratum1", REPO + ".env").splitlines()
               if line and not line.startswith("#"))
    argv = ["/usr/bin/python3", "-m", "sharedsw_cvmfs._replica_lag", "--name", REPO,
            "--replica", replica_url or env["SHAREDSW_REPLICA_URL"], "--stratum0", stratum0_url or env["SHAREDSW_STRATUM0_URL"],
            "--max-revisions", env["SHAREDSW_LAG_MAX_REVISIONS"], "--max-seconds", env["SHAREDSW_LAG_MAX_SECONDS"],
            "--now", site["lag_now"]]
    return subprocess.run(argv, env={"PYTHONPATH": host.path("usr/local/lib/sharedsw-cvmfs/sharedsw-cvmfs.pyz"), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, check=False)


def test_lag_check_in_sync_over_http(site, served):
    proc = _lag_check(site)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "replica %s is in sync with its stratum-0 at revision 3\n" % REPO


def test_lag_check_fails_when_the_stratum0_moved_on(site, served, cvmfs_repo):
    """FAKE manifest made at test time: the stratum-0 copy at revision 6 (the replica stays at 3)."""
    manifest = os.path.join(site["s0_storage"], ".cvmfspublished")
    original = open(manifest, "rb").read()
    try:
        with open(manifest, "wb") as handle:
            handle.write(cvmfs_repo.sign_manifest(cvmfs_repo.manifest_body(S="6")))
        proc = _lag_check(site)
    finally:
        with open(manifest, "wb") as handle:
            handle.write(original)
    assert proc.returncode == 1
    assert proc.stderr.startswith("replica %s is 3 revisions behind its stratum-0 (replica revision 3, "
                                  "stratum-0 revision 6" % REPO)
    assert "beyond the limits 2 revisions, 3600 s" in proc.stderr and proc.stderr.count("\n") == 1


def test_lag_check_stratum0_unreachable(site, served):
    closed = "http://127.0.0.1:%d/cvmfs/%s" % (free_port(), REPO)
    proc = _lag_check(site, stratum0_url=closed)
    assert proc.returncode == 2
    assert proc.stderr.startswith("replication check of %s failed, cannot read the stratum-0 manifest: GET %s/"
                                  ".cvmfspublished failed" % (REPO, closed))


def test_lag_check_garbage_replica_manifest(site, served):
    manifest = os.path.join(served["storage"], ".cvmfspublished")
    original = open(manifest, "rb").read()
    try:
        with open(manifest, "wb") as handle:
            handle.write(b"<html><body>It works!</body></html>\n")
        proc = _lag_check(site)
    finally:
        with open(manifest, "wb") as handle:
            handle.write(original)
    assert proc.returncode == 2
    assert "cannot read the replica manifest" in proc.stderr and "not a signed CernVM-FS file" in proc.stderr


def test_snapshot_timer_command_catches_up_only_with_logrotate_in_place(site, served, cvmfs_repo):
    """The snapshot unit's ExecStart (snapshot -a, against the double) with and without the logrotate
    file the role installs; the stratum-0 moves to a FAKE revision 4 made at test time."""
    host = site["host"]
    exec_start = [line for line in host.read("etc/systemd/system/sharedsw-cvmfs-snapshot.service").splitlines()
                  if line.startswith("ExecStart=")][0][len("ExecStart="):].split()
    env = dict(os.environ, CVMFS_DOUBLE_ROOT=host.root, LC_ALL="C")
    s0_manifest = os.path.join(site["s0_storage"], ".cvmfspublished")
    logrotate = host.path("etc/logrotate.d/cvmfs")
    original = open(s0_manifest, "rb").read()
    try:
        with open(s0_manifest, "wb") as handle:
            handle.write(cvmfs_repo.sign_manifest(cvmfs_repo.manifest_body(S="4")))
        os.rename(logrotate, logrotate + ".away")
        try:
            refused = subprocess.run(exec_start, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                     check=False)
        finally:
            os.rename(logrotate + ".away", logrotate)
        assert refused.returncode == 1 and "Suggested content" in refused.stdout
        # the fake revision carries the fixture's publication time, two hours before the checks' "now":
        # beyond the time limit
        behind = _lag_check(site)
        assert behind.returncode == 1 and "is 1 revision behind" in behind.stderr, behind.stderr
        ran = subprocess.run(exec_start, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "snapshot of %s exited 0" % REPO in host.read("var/log/cvmfs/snapshots.log")
        caught_up = _lag_check(site)
        assert caught_up.returncode == 0 and "in sync with its stratum-0 at revision 4" in caught_up.stdout
    finally:
        with open(s0_manifest, "wb") as handle:
            handle.write(original)
        subprocess.run(exec_start, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False)


def test_replica_that_left_the_catalogue_is_named_and_kept(site):
    """A replica the catalogue no longer gives this host stays (last-resort backup) and each run names it."""
    host = site["host"]
    leftover = host.path("etc/cvmfs/repositories.d/left.cvmfs.test")
    os.makedirs(leftover)
    with open(os.path.join(leftover, "replica.conf"), "w") as handle:
        handle.write("CVMFS_PUBLIC_KEY=/etc/cvmfs/keys/left.cvmfs.test.pub\n")
    try:
        result = host.run()  # (changed may be > 0: fixture `served` made the host's files world-readable)
        assert result.rc == 0, result
        assert "Replica left.cvmfs.test is no longer in this host's part of the catalogue" in result.output, result
        assert "Replica %s is no longer" % REPO not in result.output
        assert os.path.isfile(os.path.join(leftover, "replica.conf"))
    finally:
        shutil.rmtree(leftover)
