"""Testinfra checks of the publisher scenario: keys from Vault, gateway publishing from S3."""

import json
import os

import boto3

from tests.support.testinfra_hosts import manifest_revision

REPO = "pub.cvmfs.test"


def _weed():
    state = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "seaweedfs", "service.json")
    with open(state) as handle:
        weed = json.load(handle)
    return boto3.client("s3", endpoint_url=weed["local"], region_name=weed["region"],
                        aws_access_key_id=weed["access_key"], aws_secret_access_key=weed["secret_key"])


def _revision(stratum0):
    return manifest_revision(stratum0, REPO)


def test_publisher_has_pub_crt_gw_and_never_the_masterkey(publisher):
    for kind, mode in (("pub", 0o444), ("crt", 0o444), ("gw", 0o400)):
        assert publisher.file("/etc/cvmfs/keys/%s.%s" % (REPO, kind)).mode == mode
    assert not publisher.file("/etc/cvmfs/keys/%s.masterkey" % REPO).exists
    assert not publisher.file("/etc/cvmfs/keys/%s.key" % REPO).exists


def test_same_gateway_key_on_both_sides(stratum0, publisher):
    assert stratum0.file("/etc/cvmfs/keys/%s.gw" % REPO).content == publisher.file("/etc/cvmfs/keys/%s.gw" % REPO).content


def test_gateway_publisher_repository(publisher):
    conf = publisher.file("/etc/cvmfs/repositories.d/%s/server.conf" % REPO).content_string
    assert "CVMFS_UPSTREAM_STORAGE=gw," in conf and "http://p-s0:4929/api/v1" in conf
    assert publisher.service("sharedsw-cvmfs-publish@%s.timer" % REPO).is_enabled
    assert publisher.file("/etc/sharedsw-cvmfs/publish/%s.credentials" % REPO).mode == 0o600


def test_publish_from_s3_reaches_the_stratum0(stratum0, publisher):
    _weed().put_object(Bucket="lab-source", Key="cvmfs/hello.txt", Body=b"hello from S3\n")
    before = _revision(stratum0)
    run = publisher.run("systemctl start sharedsw-cvmfs-publish@%s.service" % REPO)
    assert run.rc == 0, publisher.run("journalctl -u sharedsw-cvmfs-publish@%s --no-pager" % REPO).stdout
    status = json.loads(publisher.check_output("cat /var/lib/sharedsw-cvmfs/publish/%s/last-run.json" % REPO))
    assert status["outcome"] == "ok" and status["published"] is True
    assert _revision(stratum0) > before
    assert publisher.check_output("cat /cvmfs/%s/hello.txt" % REPO) == "hello from S3"


def test_second_run_changes_nothing(stratum0, publisher):
    before = _revision(stratum0)
    assert publisher.run("systemctl start sharedsw-cvmfs-publish@%s.service" % REPO).rc == 0
    assert _revision(stratum0) == before
