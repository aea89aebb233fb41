"""The notification consumer end to end: real Ceph RGW -> real RabbitMQ -> consumer -> publish.

See site.py for what is real and what is the labelled cvmfs_server TEST DOUBLE. No test asserts
how fast anything happens; waits have generous upper bounds so that a broken consumer fails
instead of hanging.
"""

import concurrent.futures
import json
import threading
import time

import pytest

from .helpers import drain, queue_depth
from .site import REPO, Site, build_package, event

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory):
    return build_package(str(tmp_path_factory.mktemp("program")))


@pytest.fixture
def site_factory(tmp_path, ceph_rgw, rabbitmq, run_module, package_dir):
    sites = []

    def make(**consumer):
        site = Site(tmp_path / ("site%d" % len(sites)), ceph_rgw, rabbitmq, run_module, package_dir, **consumer)
        sites.append(site)
        return site

    yield make
    for site in sites:
        site.stop()


@pytest.fixture
def site(site_factory, tmp_path):
    return site_factory()


def _applied(site):
    return site.published_tree() == site.bucket_tree() and not site.in_transaction()


def test_upload_applied_then_delete_removed(site):
    site.put("cvmfs/before-start.txt", b"was there before the consumer")
    site.start().wait_connected()
    assert site.published_tree() == {"before-start.txt": b"was there before the consumer"}  # start-up re-sync

    site.put("cvmfs/a/b/file.txt", b"hello")
    site.wait(lambda: site.published_tree().get("a/b/file.txt") == b"hello", "the upload to be published")
    site.delete("cvmfs/a/b/file.txt")
    site.wait(lambda: "a/b/file.txt" not in site.published_tree(), "the delete to be published")
    assert not (site.root / "published" / REPO / "a").exists()  # emptied directories go too
    site.wait(lambda: site.counter("publishes") >= 3, "the status file to count the publishes")
    status = site.status()
    assert status["counters"]["events_received"] >= 2 and status["counters"]["failures"] == 0
    assert status["last_batch"]["mode"] == "keys" and status["last_batch"]["published"]
    assert status["lag_seconds"]["last_max"] is not None
    assert site.stop() == 0
    assert queue_depth(site.mq, site.queue) == 0
    assert "event=batch_done" in site.log()


def test_burst_of_500_uploads_is_coalesced_and_nothing_is_lost(site_factory):
    site = site_factory(debounce=2.0, max_wait=30)
    site.start().wait_connected()
    revision = site.revision()
    keys = ["cvmfs/burst/%03d/file-%03d.bin" % (i % 17, i) for i in range(500)]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: site.put(k, k.encode()), keys))
    site.wait(lambda: len(site.published_tree()) == 500 and not site.in_transaction(), "500 files to be published",
              timeout=300)
    assert site.published_tree() == site.bucket_tree()
    site.wait(lambda: site.counter("events_received") >= 500, "the status file to count 500 events")
    publishes = site.revision() - revision
    status = site.status()
    assert 1 <= publishes <= 25, (publishes, status)
    assert status["counters"]["events_coalesced"] >= 500 - 25
    assert status["counters"]["failures"] == 0 and status["counters"]["dead_lettered"] == 0
    assert site.stop() == 0
    assert queue_depth(site.mq, site.queue) == 0


def test_broker_restart_mid_burst_ends_exactly_like_the_bucket(site_factory):
    site = site_factory()
    site.start().wait_connected()
    for i in range(40):
        site.put("cvmfs/old/%02d.txt" % i, b"old %d" % i)
    site.wait(lambda: len(site.published_tree()) == 40, "the first objects to be published")

    stop_at, start_at = threading.Event(), threading.Event()

    def uploads():
        for i in range(240):
            if i == 60:
                stop_at.set()
            if i == 160:
                start_at.wait(300)
            site.put("cvmfs/new/%03d.txt" % i, b"new %d" % i)
            if i % 6 == 0:
                site.delete("cvmfs/old/%02d.txt" % (i // 6))  # deletes while the broker is away, too

    uploader = threading.Thread(target=uploads)
    uploader.start()
    try:
        assert stop_at.wait(300)
        site.mq.stop()  # RGW's pushes fail from here on: those events are lost for good
        site.wait(lambda: not site.status().get("connected"), "the consumer to notice the broker is gone")
        site.mq.start()
    finally:
        start_at.set()
        uploader.join()
    site.wait(lambda: site.counter("reconnects") >= 1 and site.status().get("connected"), "the consumer to reconnect")
    site.wait(lambda: _applied(site), "the repository to equal the bucket", timeout=300)
    assert len(site.published_tree()) == 240 + 40 - 40
    assert site.stop() == 0
    log = site.log()
    assert "event=connection_lost" in log or "event=broker_unreachable" in log
    assert "reason=reconnected" in log  # the full re-sync that repairs what RGW could not push


def test_publish_failure_is_retried_and_nothing_is_half_published(site):
    site.start().wait_connected()
    site.put("cvmfs/first.txt", b"1")
    site.wait(lambda: "first.txt" in site.published_tree(), "the first upload to be published")
    revision = site.revision()
    site.fail_publish(True)
    site.put("cvmfs/second.txt", b"2")
    site.wait(lambda: site.counter("requeued") >= 1 and site.counter("failures") >= 1, "a failed, requeued batch")
    # the failed publish was aborted: the union mount is the last published tree, no transaction
    site.wait(lambda: not site.in_transaction(), "the transaction to be aborted")
    assert site.published_tree() == {"first.txt": b"1"}
    assert site.union_tree() == {"first.txt": b"1"}
    assert site.revision() == revision
    assert len(site.calls("abort")) >= 1
    site.fail_publish(False)
    site.wait(lambda: site.published_tree().get("second.txt") == b"2", "the redelivered event to be published")
    assert site.revision() == revision + 1
    assert site.counter("dead_lettered") == 0
    assert site.stop() == 0
    assert queue_depth(site.mq, site.queue) == 0
    assert queue_depth(site.mq, site.dlq) == 0


def test_persistent_failure_dead_letters_with_the_reason_then_a_full_sync_repairs(site):
    site.start().wait_connected()
    site.fail_publish(True)
    site.put("cvmfs/doomed.txt", b"d")
    site.wait(lambda: site.counter("dead_lettered") >= 1, "the event to be dead-lettered after max_attempts")
    # the full re-sync that follows may already be under way (and failing): wait for its abort
    site.wait(lambda: not site.in_transaction(), "the transaction to be aborted")
    assert "doomed.txt" not in site.published_tree()
    [(_method, properties, body)] = drain(site.mq, site.dlq, expect=1)
    headers = properties.headers
    assert "publish failed 3 times" in headers["x-sharedsw-reason"], headers
    assert "Synchronization failed" in headers["x-sharedsw-reason"] or "publish" in headers["x-sharedsw-reason"]
    assert headers["x-sharedsw-attempts"] == 3 and headers["x-sharedsw-queue"] == site.queue
    assert json.loads(body)["Records"][0]["s3"]["object"]["key"] == "cvmfs/doomed.txt"
    assert "event=dead_lettered" in site.log()
    site.fail_publish(False)
    site.wait(lambda: site.published_tree().get("doomed.txt") == b"d", "the full re-sync after dead-lettering")
    assert site.stop() == 0


def test_malformed_and_foreign_messages_go_to_the_dead_letter_queue(site):
    site.start().wait_connected()
    site.publish_event(b"\xff\xfe not json")
    site.publish_event('{"Records": []}')
    site.publish_event(event("some-other-bucket", "cvmfs/x"))
    site.publish_event(event(site.bucket, "outside/the/prefix"))
    site.publish_event(event(site.bucket, "cvmfs/x", name="ObjectLifecycle:Expiration:Current"))
    site.wait(lambda: site.counter("dead_lettered") >= 5, "five rejected messages")
    reasons = sorted(p.headers["x-sharedsw-reason"] for _m, p, _b in drain(site.mq, site.dlq, expect=5))
    assert len(reasons) == 5
    assert any("not a JSON document" in r for r in reasons)
    assert any("no non-empty 'Records'" in r for r in reasons)
    assert any("is about bucket some-other-bucket" in r for r in reasons)
    assert any("outside cvmfs/" in r for r in reasons)
    assert any("ObjectLifecycle" in r for r in reasons)
    assert site.counter("malformed") == 2 and site.counter("foreign") == 3
    site.put("cvmfs/still-working.txt", b"ok")  # the consumer carries on
    site.wait(lambda: "still-working.txt" in site.published_tree(), "a real event after the rejected ones")
    assert site.stop() == 0


def test_the_bucket_decides_not_the_order_of_events(site):
    site.start().wait_connected()
    site.put("cvmfs/pkg/lib.so", b"v1")
    site.wait(lambda: site.published_tree().get("pkg/lib.so") == b"v1", "v1 to be published")
    # delete and re-upload in one window: the object must end up present
    site.delete("cvmfs/pkg/lib.so")
    site.put("cvmfs/pkg/lib.so", b"v2")
    site.wait(lambda: site.published_tree().get("pkg/lib.so") == b"v2", "v2 to be published")
    # a stale delete event arriving after the re-upload (out of order) changes nothing
    revision = site.revision()
    site.wait(lambda: site.status().get("state") == "idle", "the consumer to be idle")
    batches = site.counter("batches")
    site.publish_event(event(site.bucket, "cvmfs/pkg/lib.so", name="ObjectRemoved:Delete"))
    site.wait(lambda: site.counter("batches") > batches and site.status().get("state") == "idle",
              "the stale event's batch to end")
    assert site.status()["last_batch"]["outcome"] == "ok" and not site.status()["last_batch"]["published"]
    assert site.published_tree().get("pkg/lib.so") == b"v2"
    assert site.revision() == revision  # nothing changed, nothing published
    assert site.stop() == 0


def test_the_publish_lock_is_shared_with_the_timer_job(site):
    """While the publish job (the timer's full sync) holds the lock, the consumer waits."""
    import fcntl
    site.start().wait_connected()
    lock = open(site.job["lock_file"], "a+")
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        site.put("cvmfs/waits.txt", b"w")
        site.wait(lambda: "waiting for %s" % site.job["lock_file"] in site.log(), "the consumer to wait for the lock")
        assert "waits.txt" not in site.published_tree() and not site.in_transaction()
        assert site.status()["state"] == "publishing"
    finally:
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
        lock.close()
    site.wait(lambda: "waits.txt" in site.published_tree(), "the upload to be published once the lock is free")
    assert site.stop() == 0


def test_a_consumer_killed_mid_publish_loses_nothing(site):
    """SIGKILL while the publish is running: the message was never acked, the transaction stays
    open with the job's marker; the next start aborts it (the job's recovery) and publishes."""
    site.start().wait_connected()
    site.hang_publish(True)
    site.put("cvmfs/survivor.txt", b"s")
    site.wait(lambda: site.in_transaction() and "publishing %s" % REPO in site.log(), "the publish to be under way")
    site.kill()
    site.hang_publish(False)
    assert site.in_transaction() and "survivor.txt" not in site.published_tree()
    site.start()
    site.wait(lambda: site.published_tree().get("survivor.txt") == b"s" and not site.in_transaction(),
              "the restarted consumer to recover and publish")
    assert "left its transaction on %s open" % REPO in site.log()
    assert site.stop() == 0
    assert queue_depth(site.mq, site.queue) == 0


def _record(bucket, key, **fields):
    record = json.loads(event(bucket, key))["Records"][0]
    record.update(fields)
    return record


def _fuzz_bodies(bucket):
    """What a broken or hostile publisher could put on the exchange, none of it usable."""
    import random
    rng = random.Random(4)
    wrong_types = [json.dumps({"Records": [_record(bucket, "cvmfs/x", **fields)]}) for fields in (
        {"eventTime": 5}, {"eventTime": {"at": "noon"}}, {"eventName": 5}, {"eventSource": None}, {"s3": []},
        {"s3": {"bucket": {"name": {"x": 1}}, "object": {"key": "cvmfs/x"}}},
        {"s3": {"bucket": {"name": bucket}, "object": {"key": 7}}})]
    surrogate_key = ('{"Records": [{"eventSource": "ceph:s3", "eventName": "ObjectCreated:Put", "s3": {"bucket": '
                     '{"name": "%s"}, "object": {"key": "cvmfs/\\ud800"}}}]}' % bucket)
    huge = json.dumps({"Records": [_record(bucket, "cvmfs/huge", padding="x" * (2 * 1024 * 1024))]})
    return wrong_types + [
        surrogate_key, b"", b"null", b"1e999999", b"1" * 5000, b"[" * 200000 + b"]" * 200000,
        b'{"Records": ' * 100000 + b"[]" + b"}" * 100000, huge,
        rng.randbytes(512), b"\x00" * 64,
    ]


def test_a_fuzz_set_of_bodies_all_go_to_the_dead_letter_queue_and_the_consumer_carries_on(site):
    """Wrong types, deep nesting, huge, binary and empty bodies: none may stop the consumer (systemd
    would restart it, the unacked message would return, forever); each is dead-lettered with a reason."""
    bodies = _fuzz_bodies(site.bucket)
    site.start().wait_connected()
    for body in bodies:
        site.publish_event(body)
    site.wait(lambda: site.counter("dead_lettered") >= len(bodies), "%d rejected messages" % len(bodies))
    dead = drain(site.mq, site.dlq, expect=len(bodies))
    assert sorted(body for _m, _p, body in dead) == sorted(b if isinstance(b, bytes) else b.encode() for b in bodies)
    reasons = [p.headers["x-sharedsw-reason"] for _m, p, _b in dead]
    assert all(reasons), reasons
    assert any("eventTime" in r for r in reasons) and any("nested too deeply" in r for r in reasons)
    assert any("max_message_bytes" in r for r in reasons) and any("not UTF-8" in r for r in reasons)
    assert site.counter("malformed") == len(bodies)
    site.put("cvmfs/after-the-fuzz.txt", b"ok")
    site.wait(lambda: "after-the-fuzz.txt" in site.published_tree(), "a real event after the fuzz set")
    # the full sync the malformed messages asked for may publish the file before its own event
    # arrives: stop only once that event was taken and its batch acked
    site.wait(lambda: site.counter("events_received") >= 1 and site.status()["held_bytes"]["now"] == 0
              and queue_depth(site.mq, site.queue) == 0, "the file's own event taken and acked")
    assert site.stop() == 0
    assert queue_depth(site.mq, site.queue) == 0


def test_a_dead_letter_copy_the_broker_refuses_does_not_stop_the_consumer(site_factory):
    """The dead-letter exchange routes to a full queue that rejects publishes: the broker nacks
    the copy (pika NackError). The consumer logs the message with the reason, rejects it (the
    queue's own dead-letter settings apply), and carries on."""
    from .helpers import unique
    refusing = unique("refusing-dlx")
    connection = None
    site = site_factory(dead_letter_exchange=refusing)
    connection = site.mq.connection()
    try:
        channel = connection.channel()
        channel.exchange_declare(refusing, exchange_type="fanout", auto_delete=True)
        channel.queue_declare(refusing, auto_delete=True, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
        channel.queue_bind(refusing, refusing)
        site.start().wait_connected()
        site.publish_event(b"not json at all")
        site.wait(lambda: site.counter("dead_letter_refused") >= 1, "the refused dead-letter copy")
        assert "event=dead_letter_refused" in site.log() and "not json at all" in site.log()
        site.put("cvmfs/after-refusal.txt", b"ok")
        site.wait(lambda: "after-refusal.txt" in site.published_tree(), "a real event after the refusal")
        assert site.stop() == 0
        assert queue_depth(site.mq, site.queue) == 0  # not requeued forever
        # rejected to the queue's own dead-letter exchange (the provisioned one), without the reason
        [(_method, properties, body)] = drain(site.mq, site.dlq, expect=1)
        assert body == b"not json at all" and properties.headers["x-death"][0]["reason"] == "rejected"
    finally:
        connection.close()


def test_bodies_held_are_bounded_in_bytes_not_only_by_the_prefetch_count(site_factory):
    """While a publish runs, messages keep arriving. With a prefetch of 2000 the consumer would
    hold them all; with max_batch_bytes it stops taking more once the bodies it holds reach the
    bound, leaves the rest in the queue, and takes them after the publish. Nothing is lost."""
    limit = 16 * 1024
    site = site_factory(max_batch_bytes=limit, max_message_bytes=4096, prefetch=2000, max_keys=1000)
    site.start().wait_connected()
    site.hang_publish(True)
    try:
        site.put("cvmfs/first.txt", b"1")
        site.wait(lambda: site.in_transaction() and "publishing %s" % REPO in site.log(), "a publish under way")
        bodies = [json.dumps({"Records": [_record(site.bucket, "cvmfs/padded/%02d" % i, padding="p" * 2000)]})
                  for i in range(40)]
        for body in bodies:
            site.publish_event(body)
        size = len(bodies[0])
        most = limit // size + 1  # the message that reached the bound is held too
        site.wait(lambda: queue_depth(site.mq, site.queue) >= len(bodies) - most,
                  "the consumer to leave messages in the queue once it holds max_batch_bytes")
        assert site.status()["held_bytes"]["now"] <= limit + size
    finally:
        site.hang_publish(False)
    site.wait(lambda: queue_depth(site.mq, site.queue) == 0 and site.status().get("state") == "idle"
              and site.counter("batches") >= 3, "every message to be taken and published")
    status = site.status()
    assert status["held_bytes"]["max"] <= limit + size, status["held_bytes"]
    assert status["counters"]["pauses"] >= 1 and status["counters"]["dead_lettered"] == 0
    assert "first.txt" in site.published_tree()
    assert site.stop() == 0
    assert queue_depth(site.mq, site.dlq) == 0


def test_a_password_sent_without_tls_off_loopback_is_warned_about(site_factory):
    from .helpers import loopback_alias
    site = site_factory()
    alias = loopback_alias(site.mq.host)
    if alias is None:
        pytest.skip("no host name other than localhost resolves to %s on this machine" % site.mq.host)
    site.consumer["amqp"] = dict(site.consumer["amqp"], host=alias)
    site.start().wait_connected()
    assert site.stop() == 0
    [line] = [line for line in site.log().splitlines() if "event=amqp_cleartext_login" in line]
    assert alias in line and "tls" in line


def test_a_backlog_older_than_the_start_sync_is_drained_without_more_publishes(site_factory):
    """Messages left in the queue while the consumer was down (a large upload) are covered by the
    full sync it runs when it connects: acknowledged without one full sync per window."""
    site = site_factory(prefetch=20, max_keys=5)
    for number in range(3):
        site.put("cvmfs/pkg/f%d" % number, b"%d" % number)
    long_ago = time.time() - 600
    for number in range(100):
        site.publish_event(event(site.bucket, "cvmfs/pkg/f%d" % (number % 25), when=long_ago))   # > max_keys a window
    site.start().wait_connected()
    site.wait(lambda: queue_depth(site.mq, site.queue) == 0 and site.status().get("state") == "idle",
              "the backlog to be taken")
    counters = site.status()["counters"]
    assert counters["full_syncs"] == 1 and counters["messages_covered"] >= 100 - 20, counters
    assert site.published_tree() == site.bucket_tree()
    assert len(site.calls("publish")) == 1

    site.put("cvmfs/pkg/new", b"after the start")   # a fresh event is never taken as covered
    site.wait(lambda: "pkg/new" in site.published_tree(), "a new upload to be published")
    assert site.status()["counters"]["full_syncs"] == 1


def test_the_status_file_records_how_many_messages_wait_in_the_queue(site_factory):
    """While a publish hangs, the consumer holds its prefetch and the rest waits on the broker:
    the depth it records (asked with a passive declare) is the number waiting, then 0 once taken."""
    site = site_factory(prefetch=5, queue_depth_interval=0.5)
    site.start().wait_connected()
    site.hang_publish(True)
    try:
        site.put("cvmfs/first.txt", b"1")
        site.wait(lambda: site.in_transaction() and "publishing %s" % REPO in site.log(), "a publish under way")
        for number in range(20):
            site.publish_event(event(site.bucket, "cvmfs/waiting/%02d" % number))
        waiting = 20 - (5 - 1)   # the prefetch holds the hung batch's message and 4 more
        site.wait(lambda: queue_depth(site.mq, site.queue) == waiting, "the prefetch taken and the rest waiting")
        asked_after = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 1))
        site.wait(lambda: (site.status().get("queue_depth") or {}).get("checked", "") > asked_after,
                  "the consumer to ask for the depth again")
        assert site.status()["queue_depth"]["messages"] == queue_depth(site.mq, site.queue) == waiting
    finally:
        site.hang_publish(False)
    site.wait(lambda: queue_depth(site.mq, site.queue) == 0 and site.status().get("state") == "idle",
              "every message to be taken and published")
    asked_after = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 1))
    site.wait(lambda: site.status()["queue_depth"]["checked"] > asked_after, "the depth asked once more")
    assert site.status()["queue_depth"] == dict(site.status()["queue_depth"], messages=0, error=None)
    assert site.stop() == 0
