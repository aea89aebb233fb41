"""Testinfra checks of the stratum1 scenario: the replica serves the stratum-0's revision, through
Apache and the squid reverse proxy; timers; the lag check; GeoAPI off without a MaxMind account."""

import pytest

REPO = "lab-s1.cvmfs.test"


def revision(host, url):
    manifest = host.check_output("curl -sSf %s/.cvmfspublished | sed -n '/^--$/q;p'" % url)
    return [line[1:] for line in manifest.splitlines() if line.startswith("S")][0]


@pytest.mark.parametrize("package", ["cvmfs-server", "apache2", "libapache2-mod-wsgi-py3", "squid"])
def test_packages(s1, package):
    assert s1.package(package).is_installed


def test_only_the_replicated_repository(s1):
    assert s1.file("/etc/cvmfs/repositories.d/%s/replica.conf" % REPO).exists
    assert not s1.file("/etc/cvmfs/repositories.d/not-replicated.cvmfs.test").exists


def test_replica_revision_equals_the_stratum0_revision(s0, s1):
    assert s1.run("systemctl start sharedsw-cvmfs-snapshot.service").rc == 0
    assert revision(s1, "http://localhost/cvmfs/%s" % REPO) == revision(s0, "http://localhost/cvmfs/%s" % REPO)


def test_served_with_cvmfs_headers_directly_and_through_squid(s1):
    for port in (80, 8000):
        headers = s1.check_output("curl -sSf -D - -o /dev/null http://127.0.0.1:%d/cvmfs/%s/.cvmfspublished" % (port, REPO))
        assert "application/x-cvmfs" in headers and "Cache-Control: max-age=61" in headers
    assert s1.service("squid").is_running and s1.service("apache2").is_running


def test_geoapi_is_off_without_a_maxmind_account(s1):
    server_local = s1.file("/etc/cvmfs/server.local")
    assert server_local.user == "root" and server_local.mode == 0o640 and "CVMFS_GEO_DB_FILE=NONE" in server_local.content_string


@pytest.mark.parametrize("timer", ["sharedsw-cvmfs-snapshot.timer", "sharedsw-cvmfs-replica-gc.timer",
                                   "sharedsw-cvmfs-replica-lag@%s.timer" % REPO])
def test_timers(s1, timer):
    assert s1.service(timer).is_enabled
    assert s1.run("systemctl is-active %s" % timer).stdout.strip() == "active"


def test_snapshot_a_runs_unattended_and_the_lag_check_passes(s1):
    assert s1.file("/etc/logrotate.d/cvmfs").exists
    assert s1.run("systemctl start sharedsw-cvmfs-snapshot.service").rc == 0
    assert "requires" not in s1.run("tail -n 20 /var/log/cvmfs/snapshots.log").stdout
    check = s1.run("systemctl start sharedsw-cvmfs-replica-lag@%s.service" % REPO)
    log = s1.check_output("journalctl -u sharedsw-cvmfs-replica-lag@%s --no-pager -o cat" % REPO)
    assert check.rc == 0, log
    assert "in sync with its stratum-0" in log
