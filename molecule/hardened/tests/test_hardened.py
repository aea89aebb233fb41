"""Testinfra checks of the hardened scenario: replication over HTTPS with the test authority, HTTPS
on both strata (trusted with the test authority, refused without it), and the firewalls: the
allowed ports answer from the allowed hosts, the others are dropped (curl times out, exit 28,
where a closed port without a firewall would be refused at once, exit 7)."""

import pytest

from tests.support.testinfra_hosts import manifest_revision

REPO = "hd.cvmfs.test"
CA = "/root/hardened-ca.crt"
TABLE = "table inet sharedsw_cvmfs"
CURL_TIMEOUT_EXIT = 28


def curl(host, args):
    return host.run("curl -sS -o /dev/null --connect-timeout 3 --max-time 20 " + args)


def server_conf(host):
    conf = host.file("/etc/cvmfs/repositories.d/%s/server.conf" % REPO).content_string
    return dict(line.split("=", 1) for line in conf.splitlines() if "=" in line and not line.startswith("#"))


def test_the_replica_reads_its_stratum0_over_https(s1):
    assert server_conf(s1)["CVMFS_STRATUM0"] == "https://hd-s0/cvmfs/%s" % REPO
    server_local = s1.file("/etc/cvmfs/server.local").content_string.splitlines()
    assert "export X509_CERT_BUNDLE=/etc/cvmfs/sharedsw-upstream-ca.pem" in server_local


def test_a_snapshot_over_https_serves_the_stratum0_revision(s0, s1):
    snapshot = s1.run("cvmfs_server snapshot %s < /dev/null" % REPO)
    assert snapshot.rc == 0, snapshot.stdout + snapshot.stderr
    assert manifest_revision(s1, REPO) == manifest_revision(s0, REPO)


def test_the_lag_check_reads_the_https_stratum0(s1):
    check = s1.run("systemctl start sharedsw-cvmfs-replica-lag@%s.service" % REPO)
    log = s1.check_output("journalctl -u sharedsw-cvmfs-replica-lag@%s --no-pager -o cat" % REPO)
    assert check.rc == 0, log
    assert "in sync with its stratum-0" in log


@pytest.mark.parametrize("stratum", ["hd-s0", "hd-s1"])
def test_https_is_trusted_with_the_test_authority_only(probe, stratum):
    url = "https://%s/cvmfs/%s/.cvmfspublished" % (stratum, REPO)
    assert curl(probe, "-f --cacert %s %s" % (CA, url)).rc == 0
    refused = curl(probe, "-f %s" % url)
    assert refused.rc == 60, refused.stderr  # peer certificate cannot be authenticated


@pytest.mark.parametrize("name", ["s0", "s1"])
def test_the_private_key_is_roots_only(request, name):
    key = request.getfixturevalue(name).file("/etc/ssl/private/sharedsw-cvmfs-https.key")
    assert key.user == "root" and key.group == "root" and key.mode == 0o600


@pytest.mark.parametrize("port", [80, 443])
def test_strata_answer_on_http_and_https_from_anywhere(probe, port):
    scheme = "https" if port == 443 else "http"
    for stratum in ("hd-s0", "hd-s1"):
        assert curl(probe, "-f --cacert %s %s://%s/cvmfs/%s/.cvmfspublished" % (CA, scheme, stratum, REPO)).rc == 0


def test_the_gateway_answers_the_publishers_only(s1, probe):
    assert curl(s1, "-f http://hd-s0:4929/api/v1").rc == 0
    assert curl(probe, "http://hd-s0:4929/api/v1").rc == CURL_TIMEOUT_EXIT


def test_the_squid_answers_its_client_network_only(probe, s1):
    url = "http://hd-s1/cvmfs/%s/.cvmfspublished" % REPO
    assert curl(probe, "-f -x http://hd-s0:3128 " + url).rc == 0
    assert curl(s1, "-x http://hd-s0:3128 " + url).rc == CURL_TIMEOUT_EXIT


def test_ports_nobody_serves_are_dropped(probe):
    # no rule for these ports on these hosts: no answer, not even a refusal
    assert curl(probe, "http://hd-s1:3128/").rc == CURL_TIMEOUT_EXIT
    assert curl(probe, "http://hd-s0:8000/").rc == CURL_TIMEOUT_EXIT


def test_one_host_two_node_types_one_table(s0):
    rules = s0.check_output("nft list table inet sharedsw_cvmfs")
    for comment in ("stratum0 http", "stratum0 https", "stratum0 gateway", "squid proxy", "squid ssh", "stratum0 ssh"):
        assert 'comment "%s"' % comment in rules


@pytest.mark.parametrize("name", ["s0", "s1"])
def test_one_table_of_ours_survives_a_reload(request, name):
    host = request.getfixturevalue(name)
    assert host.check_output("nft list ruleset").count(TABLE + " {") == 1
    assert host.run("nft -f /etc/nftables.d/sharedsw-cvmfs.nft").rc == 0
    assert host.check_output("nft list ruleset").count(TABLE + " {") == 1
    assert host.service("nftables").is_enabled
