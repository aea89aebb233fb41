"""Testinfra checks of the stratum0-s3 scenario: the repository lives in the harness's Ceph RGW."""

REPO = "s3.cvmfs.test"
URL = "http://127.0.0.1:7480/cvmfs-lab/" + REPO


def test_repository_uses_s3(host):
    conf = host.file("/etc/cvmfs/repositories.d/%s/server.conf" % REPO).content_string
    assert "CVMFS_UPSTREAM_STORAGE=S3," in conf
    assert "CVMFS_STRATUM0=%s" % URL in conf
    s3conf = host.file("/etc/cvmfs/s3/%s.conf" % REPO)
    assert s3conf.mode == 0o600


def test_manifest_and_whitelist_in_the_bucket(host):
    for name in (".cvmfspublished", ".cvmfswhitelist"):
        assert host.run("curl -sSf -o /dev/null %s/%s" % (URL, name)).rc == 0, name


def test_no_apache_for_s3_storage(host):
    assert not host.package("apache2").is_installed


def test_whitelist_check_reads_the_bucket(host):
    env = host.file("/etc/sharedsw-cvmfs/stratum0/%s.env" % REPO).content_string
    assert "SHAREDSW_WHITELIST_SOURCE=--url %s" % URL in env
    assert host.run("systemctl start sharedsw-cvmfs-whitelist@%s.service" % REPO).rc == 0
    assert host.run("systemctl start sharedsw-cvmfs-resign@%s.service" % REPO).rc == 0
