"""Testinfra checks of the metrics timers of the full-stack scenario: the stratum-1's and the
publisher's Prometheus text files, compared with what the hosts really serve and record -- the
replica's manifest, the stratum-0's, the publish job's last-run.json and the broker's own count of
the consumer's queue."""

import datetime
import json
import time

from tests.support import prom_text
from tests.support.testinfra_hosts import fresh_metrics, manifest_revision

REPO = "lab.example.org"
STATE_DIR = "/var/lib/sharedsw-cvmfs/publish/%s" % REPO


def _epoch(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_stratum1_metrics_are_its_replica_and_its_lag(stratum0, stratum1):
    asked = time.time()   # the lab hosts share this machine's clock
    snapshot = stratum1.run("systemctl start sharedsw-cvmfs-snapshot.service")
    assert snapshot.rc == 0, stratum1.run("journalctl -u sharedsw-cvmfs-snapshot --no-pager -n 50").stdout
    metrics = fresh_metrics(stratum1, "stratum1")
    replica, upstream = manifest_revision(stratum1, REPO), manifest_revision(stratum0, REPO)
    assert prom_text.value(metrics, "cvmfs_repository_check_success", repository=REPO) == 1
    assert prom_text.value(metrics, "cvmfs_repository_revision", repository=REPO) == replica
    assert prom_text.value(metrics, "cvmfs_replication_stratum0_revision", repository=REPO) == upstream
    assert prom_text.value(metrics, "cvmfs_replication_revisions_behind", repository=REPO) == upstream - replica
    assert prom_text.value(metrics, "cvmfs_replication_lag_seconds", repository=REPO) >= 0
    assert 0 <= prom_text.value(metrics, "cvmfs_snapshot_age_seconds", repository=REPO) <= time.time() - asked
    assert prom_text.value(metrics, "cvmfs_snapshot_in_progress", repository=REPO) == 0
    assert prom_text.value(metrics, "cvmfs_whitelist_seconds_left", repository=REPO) > 0


def test_publisher_metrics_are_its_last_publish_run(publisher, stratum0):
    run = publisher.run("systemctl start sharedsw-cvmfs-publish@%s.service" % REPO)
    assert run.rc == 0, publisher.run("journalctl -u sharedsw-cvmfs-publish@%s --no-pager -n 50" % REPO).stdout
    last_run = json.loads(publisher.file(STATE_DIR + "/last-run.json").content_string)
    metrics = fresh_metrics(publisher, "publisher")
    assert prom_text.value(metrics, "cvmfs_publish_last_success", repository=REPO) == \
        (last_run["outcome"] == "ok") == 1
    assert prom_text.value(metrics, "cvmfs_publish_last_exit_status", repository=REPO) == last_run["exit_status"]
    assert prom_text.value(metrics, "cvmfs_publish_last_duration_seconds", repository=REPO) == last_run["seconds"]
    assert prom_text.value(metrics, "cvmfs_publish_last_finished_timestamp_seconds", repository=REPO) == \
        _epoch(last_run["finished"])
    # the gateway repository, checked through the stratum-0's URL
    assert prom_text.value(metrics, "cvmfs_repository_check_success", repository=REPO) == 1
    assert prom_text.value(metrics, "cvmfs_repository_revision", repository=REPO) == manifest_revision(stratum0, REPO)


def test_publisher_metrics_carry_the_consumer_and_its_queue_depth(publisher, broker_queue_depth):
    metrics = fresh_metrics(publisher, "publisher")
    status = json.loads(publisher.file(STATE_DIR + "/events-status.json").content_string)
    queue = status["queue"]
    assert prom_text.value(metrics, "cvmfs_consumer_connected", repository=REPO) == 1
    assert prom_text.value(metrics, "cvmfs_consumer_events_received_total", repository=REPO) == \
        status["counters"]["events_received"]
    assert prom_text.value(metrics, "cvmfs_consumer_queue_messages", repository=REPO, queue=queue) == \
        status["queue_depth"]["messages"] == broker_queue_depth(queue)
    checked = prom_text.value(metrics, "cvmfs_consumer_queue_checked_timestamp_seconds", repository=REPO, queue=queue)
    assert _epoch(status["started"]) <= checked <= time.time()
