"""Testinfra checks of the external scenario: the stratum-1 serves the replica of a repository it
knows as external (add-replica from the remote stratum-0 URL, key from the catalogue entry); the
client reads that repository through the domain entry (domain.d, @fqrn@ at the stratum-1, keys
directory) and another repository whose settings and key are only in the configuration repository."""

import pytest

SW = "sw.ext.test"
CONFIG = "config.cfgrepo.test"
TOOLS = "tools.viacfg.test"


def manifest_revision(host, url):
    manifest = host.check_output("curl -sSf %s/.cvmfspublished | sed -n '/^--$/q;p'" % url)
    return int([line[1:] for line in manifest.splitlines() if line.startswith("S")][0])


def showconfig(host, repo):
    """``{name: (value, where it was set)}`` of ``cvmfs_config showconfig``."""
    values = {}
    for line in host.check_output("cvmfs_config showconfig %s" % repo).splitlines():
        if "=" in line:
            name, rest = line.split("=", 1)
            value, source = (rest.split("    # from ", 1) + [""])[:2]
            values[name] = (value.strip(), source.strip())
    return values


def test_stratum1_replicates_the_external_entry_from_the_remote_stratum0(s0, s1):
    replica_conf = s1.file("/etc/cvmfs/repositories.d/%s/replica.conf" % SW)
    assert replica_conf.exists
    server_conf = s1.file("/etc/cvmfs/repositories.d/%s/server.conf" % SW).content_string
    assert "CVMFS_STRATUM0=http://10.77.0.140/cvmfs/%s" % SW in server_conf
    key = s1.file("/etc/cvmfs/keys/%s.pub" % SW).content_string
    assert key == s0.file("/etc/cvmfs/keys/%s.pub" % SW).content_string
    assert manifest_revision(s1, "http://localhost/cvmfs/" + SW) == manifest_revision(s0, "http://localhost/cvmfs/" + SW)
    # only the entry that asks for replication
    assert not s1.file("/etc/cvmfs/repositories.d/%s" % CONFIG).exists


def test_client_config_package_and_config_repository(client):
    assert client.package("cvmfs-config-none").is_installed
    assert not client.package("cvmfs-config-default").is_installed
    default_d = client.file("/etc/cvmfs/default.d/90-sharedsw-config-repository.conf").content_string
    assert "CVMFS_CONFIG_REPOSITORY='%s'" % CONFIG in default_d
    assert showconfig(client, TOOLS)["CVMFS_CONFIG_REPOSITORY"][0] == CONFIG


def test_domain_entry_reads_the_stratum1(client):
    domain = client.file("/etc/cvmfs/domain.d/ext.test.conf").content_string
    assert "CVMFS_SERVER_URL='http://10.77.0.141/cvmfs/@fqrn@'" in domain
    assert not client.file("/etc/cvmfs/config.d/%s.conf" % SW).exists
    assert client.file("/etc/cvmfs/keys/ext.test/%s.pub" % SW).contains("BEGIN PUBLIC KEY")
    config = showconfig(client, SW)
    assert config["CVMFS_SERVER_URL"] == ("http://10.77.0.141/cvmfs/%s" % SW, "/etc/cvmfs/domain.d/ext.test.conf")
    assert config["CVMFS_KEYS_DIR"][0] == "/etc/cvmfs/keys/ext.test"


@pytest.mark.parametrize("repo, server", [(SW, "10.77.0.141"), (CONFIG, "10.77.0.140"), (TOOLS, "10.77.0.140")])
def test_mounted_probed_and_served_by_the_expected_server(client, repo, server):
    assert client.run("cvmfs_config probe %s" % repo).rc == 0
    hosts = client.check_output("cvmfs_talk -i %s host info" % repo)
    assert "http://%s/cvmfs/%s" % (server, repo) in hosts and "Active host 0" in hosts, hosts


def test_files_are_readable_under_cvmfs(client):
    assert client.check_output("cat /cvmfs/%s/hello.txt" % SW) == "hello from sw.ext.test"
    assert client.check_output("cat /cvmfs/%s/tools.txt" % TOOLS) == "configured by the config repository"


def test_tools_is_configured_only_by_the_config_repository(client):
    assert not client.file("/etc/cvmfs/config.d/%s.conf" % TOOLS).exists
    assert not client.file("/etc/cvmfs/domain.d/viacfg.test.conf").exists
    repo_etc = "/cvmfs/%s/etc/cvmfs" % CONFIG
    config = showconfig(client, TOOLS)
    assert config["CVMFS_SERVER_URL"] == ("http://10.77.0.140/cvmfs/%s" % TOOLS, repo_etc + "/domain.d/viacfg.test.conf")
    assert config["CVMFS_KEYS_DIR"][0] == repo_etc + "/keys/viacfg.test"
