"""Testinfra checks of the client scenario: configuration files, autofs, and a real mount."""

REPO = "lab-client.cvmfs.test"


def test_default_local(client):
    text = client.file("/etc/cvmfs/default.local").content_string
    assert "CVMFS_REPOSITORIES='%s'" % REPO in text
    assert "CVMFS_HTTP_PROXY='DIRECT'" in text
    assert "CVMFS_SEND_INFO_HEADER=yes" in text


def test_repository_config_and_key(client):
    conf = client.file("/etc/cvmfs/config.d/%s.conf" % REPO).content_string
    assert "CVMFS_SERVER_URL='http://10.77.0.60/cvmfs/%s'" % REPO in conf
    assert client.file("/etc/cvmfs/keys/cvmfs.test/%s.pub" % REPO).contains("BEGIN PUBLIC KEY")


def test_autofs_mounts_the_repository(client):
    assert client.service("autofs").is_running
    assert client.run("cvmfs_config probe %s" % REPO).rc == 0
    assert client.file("/cvmfs/%s/new_repository" % REPO).exists
