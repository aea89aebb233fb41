"""Testinfra checks of the stratum0 scenario (local storage, gateway, timers) on a lab host."""

import json

import pytest

REPO, PLAIN = "lab.cvmfs.test", "plain.cvmfs.test"


@pytest.mark.parametrize("package", ["cvmfs", "cvmfs-server", "cvmfs-gateway", "apache2"])
def test_packages(host, package):
    assert host.package(package).is_installed


def test_no_failed_units(host):
    # the autofs package comes with cvmfs; on a kernel without autofs it must not be left failed
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state == "running", host.run("systemctl --failed --no-legend").stdout


@pytest.mark.parametrize("repo", [REPO, PLAIN])
def test_repository_exists_and_is_served(host, repo):
    assert host.file("/etc/cvmfs/repositories.d/%s/server.conf" % repo).exists
    headers = host.check_output("curl -sSf -D - -o /dev/null http://localhost/cvmfs/%s/.cvmfspublished" % repo)
    assert "application/x-cvmfs" in headers
    assert "Cache-Control: max-age=61" in headers
    assert host.file("/etc/apache2/conf-enabled/cvmfs.%s.conf" % repo).is_symlink


def test_settings_reached_server_conf(host):
    conf = host.file("/etc/cvmfs/repositories.d/%s/server.conf" % REPO).content_string
    assert "CVMFS_GARBAGE_COLLECTION=true" in conf and "CVMFS_AUTO_GC=false" in conf
    plain = host.file("/etc/cvmfs/repositories.d/%s/server.conf" % PLAIN).content_string
    assert "CVMFS_HASH_ALGORITHM=shake128" in plain


def test_gateway(host):
    key = host.file("/etc/cvmfs/keys/%s.gw" % REPO)
    assert key.mode in (0o400, 0o600) and key.content_string.startswith("plain_text %s " % REPO)
    assert not host.file("/etc/cvmfs/keys/%s.gw" % PLAIN).exists
    repo_json = json.loads(host.file("/etc/cvmfs/gateway/repo.json").content_string)
    assert [r["domain"] for r in repo_json["repos"]] == [REPO]
    assert host.service("cvmfs-gateway").is_running and host.service("cvmfs-gateway").is_enabled
    answer = json.loads(host.check_output("curl -sSf http://localhost:4929/api/v1/repos"))
    assert answer["status"] == "ok" and REPO in answer["data"]


@pytest.mark.parametrize("timer", ["sharedsw-cvmfs-resign@%s.timer" % REPO, "sharedsw-cvmfs-whitelist@%s.timer" % REPO,
                                   "sharedsw-cvmfs-gc@%s.timer" % REPO, "sharedsw-cvmfs-resign@%s.timer" % PLAIN,
                                   "sharedsw-cvmfs-whitelist@%s.timer" % PLAIN])
def test_timers(host, timer):
    assert host.service(timer).is_enabled
    assert host.run("systemctl is-active %s" % timer).stdout.strip() == "active"


def test_no_gc_timer_without_schedule(host):
    assert not host.service("sharedsw-cvmfs-gc@%s.timer" % PLAIN).is_enabled


def test_resign_and_whitelist_check_run(host):
    assert host.run("systemctl start sharedsw-cvmfs-resign@%s.service" % REPO).rc == 0
    check = host.run("systemctl start sharedsw-cvmfs-whitelist@%s.service" % REPO)
    assert check.rc == 0, host.run("journalctl -u sharedsw-cvmfs-whitelist@%s --no-pager" % REPO).stdout
    log = host.check_output("journalctl -u sharedsw-cvmfs-whitelist@%s --no-pager -o cat" % REPO)
    assert "valid for" in log


def test_meta_information_published(host):
    info = host.check_output("cvmfs_server info -m %s" % REPO)
    assert "lab@example.org" in info
