"""Testinfra checks of the full-stack scenario: S3 upload -> publisher -> gateway -> stratum-0 ->
stratum-1 -> squid -> client, with the keys from Vault."""

import time

import pytest

from tests.support.testinfra_hosts import manifest_revision

REPO = "lab.example.org"
BUCKET = "lab-software"
CONTENT = "published through the whole stack\n"
FILE = "fullstack.txt"


def _revision(host):
    return manifest_revision(host, REPO)


def _squid_lines(squid, path):
    """(result code, hierarchy) of the squid's access.log lines for ``path``, oldest first."""
    log = squid.run("grep -F ' %s ' /var/log/squid/access.log || true" % path).stdout
    return [(fields[3], fields[8]) for fields in (line.split() for line in log.splitlines()) if len(fields) > 8]


def _read_on_client(client, wipe_cache=True):
    if wipe_cache:   # nothing left in the client's cache: the read goes to its proxy
        assert client.run("cvmfs_talk -i %s cleanup 0" % REPO).rc == 0
    return client.check_output("cat /cvmfs/%s/%s" % (REPO, FILE))


def _event_batches(publisher):
    """The notification consumer's "batch_done" lines that published something."""
    log = publisher.run("journalctl -u sharedsw-cvmfs-events@%s --no-pager -o cat" % REPO).stdout
    return [line for line in log.splitlines() if "event=batch_done" in line and "published=true" in line]


@pytest.fixture(scope="module")
def published(s3, stratum0, publisher, stratum1):
    """Upload a file and let the bucket event publish it (RGW -> RabbitMQ -> the publisher's
    consumer -> gateway -> stratum-0), then snapshot it: the stratum-0's new revision."""
    assert publisher.service("sharedsw-cvmfs-events@%s" % REPO).is_running
    timer = "sharedsw-cvmfs-publish@%s.timer" % REPO   # the safety net stays out of this test's way
    assert publisher.run("systemctl stop %s" % timer).rc == 0
    try:
        before, batches_before = _revision(stratum0), len(_event_batches(publisher))
        s3.put_object(Bucket=BUCKET, Key="cvmfs/" + FILE, Body=CONTENT.encode())
        # the consumer logs its batch once the publish is acknowledged, a moment after the
        # stratum-0 serves the new revision: wait for both
        deadline = time.monotonic() + 180
        while _revision(stratum0) <= before or len(_event_batches(publisher)) <= batches_before:
            assert time.monotonic() < deadline, publisher.run(
                "journalctl -u sharedsw-cvmfs-events@%s --no-pager -n 40" % REPO).stdout
            time.sleep(1)
    finally:
        publisher.run("systemctl start %s" % timer)
    batches = _event_batches(publisher)
    assert "added=1" in batches[-1] or "updated=1" in batches[-1], batches[-1]
    snapshot = stratum1.run("systemctl start sharedsw-cvmfs-snapshot.service")
    assert snapshot.rc == 0, stratum1.run("journalctl -u sharedsw-cvmfs-snapshot --no-pager -n 50").stdout
    return _revision(stratum0)


def test_publisher_never_holds_the_masterkey(publisher):
    assert publisher.file("/etc/cvmfs/keys/%s.gw" % REPO).mode == 0o400
    assert not publisher.file("/etc/cvmfs/keys/%s.masterkey" % REPO).exists


def test_replica_revision_equals_stratum0_revision(published, stratum1):
    assert _revision(stratum1) == published


def test_client_reads_through_squid_from_the_stratum1(published, client, squid, stratum1):
    # the client may hold the previous revision for up to CVMFS_MAX_TTL: ask it to look now
    deadline = time.monotonic() + 120
    while client.run("cvmfs_talk -i %s remount sync && test -f /cvmfs/%s/%s" % (REPO, REPO, FILE)).rc != 0:
        assert time.monotonic() < deadline, "the client never saw revision %d" % published
        time.sleep(3)
    assert _read_on_client(client) == CONTENT.strip()
    object_hash = client.check_output("getfattr --only-values -n user.hash /cvmfs/%s/%s" % (REPO, FILE))
    path = "/cvmfs/%s/data/%s/%s" % (REPO, object_hash[:2], object_hash[2:])
    lines = _squid_lines(squid, "http://fs-s1" + path)
    assert lines, "no request for %s in the squid's access.log" % path
    assert lines[0][1].startswith("HIER_DIRECT/"), lines   # fetched from the stratum-1 itself
    assert client.check_output("cvmfs_talk -i %s proxy info" % REPO).count("fs-squid") >= 1


def test_second_read_is_a_squid_hit(published, client, squid):
    object_hash = client.check_output("getfattr --only-values -n user.hash /cvmfs/%s/%s" % (REPO, FILE))
    path = "http://fs-s1/cvmfs/%s/data/%s/%s" % (REPO, object_hash[:2], object_hash[2:])
    before = len(_squid_lines(squid, path))
    assert _read_on_client(client) == CONTENT.strip()
    lines = _squid_lines(squid, path)
    assert len(lines) == before + 1, lines
    assert lines[-1][0].split("/")[0] in ("TCP_HIT", "TCP_MEM_HIT"), lines
