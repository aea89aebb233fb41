"""Pure logic of the notification consumer: parsing, scope, the debounce window, the config.

No broker: message parsing (_event_messages), the window (_event_window), log fields
(_event_metrics), the config (_events), the keys-mode publish step (_event_job)."""

import json

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _events as events
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _event_consumer as consumer
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _event_job as event_job
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _event_messages as messages
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _event_metrics as metrics
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _event_window as batching
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._program_support import Log
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError

SCOPE = messages.Scope("software", ["cvmfs/", "ingest/"])


def record(key="cvmfs/a.txt", name="ObjectCreated:Put", bucket="software", source="ceph:s3",
           when="2026-11-23T13:40:16.508206Z"):
    return {"eventVersion": "2.2", "eventSource": source, "eventTime": when, "eventName": name,
            "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}


def message(*records):
    return json.dumps({"Records": list(records)}).encode()


def test_ceph_records_give_keys_times_and_count():
    keys, times, count = messages.parse_message(message(record(), record("cvmfs/b c+d.txt", "ObjectRemoved:Delete")),
                                                SCOPE)
    # Ceph sends keys as they are; the decoded spelling is looked at too (harmless if unchanged)
    assert keys == {"cvmfs/a.txt", "cvmfs/b c+d.txt", "cvmfs/b c d.txt"}
    assert count == 2 and times == [pytest.approx(1795441216.508206)] * 2


def test_aws_records_are_url_decoded():
    keys, _times, _count = messages.parse_message(message(record("cvmfs/b+c%C3%BC.txt", "s3:ObjectCreated:Put",
                                                                 source="aws:s3")), SCOPE)
    assert keys == {"cvmfs/b cü.txt"}


def test_ingest_prefix_is_in_scope_and_test_events_are_empty():
    assert messages.parse_message(message(record("ingest/x.tar.gz")), SCOPE)[0] == {"ingest/x.tar.gz"}
    assert messages.parse_message(b'{"Service": "Amazon S3", "Event": "s3:TestEvent"}', SCOPE) == (set(), [], 0)


@pytest.mark.parametrize("body, kind, words", [
    (b"\xff\xfe", "malformed", "not a JSON document"),
    (b"[]", "malformed", "no non-empty 'Records'"),
    (b'{"Records": []}', "malformed", "no non-empty 'Records'"),
    (b'{"Records": [1]}', "malformed", "record 0 is not an object"),
    (message({"eventName": "ObjectCreated:Put"}), "malformed", "lacks eventSource"),
    (message(record(key="")), "malformed", "lacks s3.bucket.name or s3.object.key"),
    (message(record(source="aws:sqs")), "foreign", "not from S3"),
    (message(record(name="ObjectLifecycle:Expiration:Current")), "foreign", "only ObjectCreated"),
    (message(record(bucket="other")), "foreign", "is about bucket other, not software"),
    (message(record(key="elsewhere/a")), "foreign", "outside cvmfs/ and ingest/"),
    (message(record(), record(key="elsewhere/a")), "foreign", "record 1"),
])
def test_unusable_messages_are_rejected_with_a_reason(body, kind, words):
    with pytest.raises(messages.Rejected) as caught:
        messages.parse_message(body, SCOPE)
    assert caught.value.kind == kind
    assert words in caught.value.reason


def test_event_time_parsing():
    assert messages.parse_time("2026-11-23T13:40:16Z") == 1795441216
    assert messages.parse_time("2026-11-23T13:40:16.5Z") == 1795441216.5
    assert messages.parse_time("yesterday") is None and messages.parse_time(None) is None


def delivery(arrived, keys=("cvmfs/a",), body=b""):
    return batching.Delivery(1, set(keys), [], 1, 0, "f", arrived, body, None)


def test_window_closes_after_quiet_time_max_wait_or_when_full():
    window = batching.Window(debounce=2, max_wait=10, limit=3)
    assert not window.ready(0)
    window.add(delivery(100))
    assert not window.ready(101) and window.ready(102)
    window.add(delivery(101.5))
    assert not window.ready(103) and window.ready(103.5)      # the quiet time restarts
    window = batching.Window(debounce=2, max_wait=10, limit=100)
    for arrived in range(100, 111):
        window.add(delivery(arrived))                          # never quiet for 2 s
    assert not window.ready(109.5) and window.ready(110)       # but max_wait after the first
    assert len(window.take()) == 11 and not window.items and not window.ready(200)
    window = batching.Window(debounce=2, max_wait=10, limit=2)
    window.add(delivery(100))
    window.add(delivery(100))
    assert window.ready(100)                                   # the prefetch is exhausted


def test_window_closes_when_the_bodies_reach_max_bytes():
    window = batching.Window(debounce=2, max_wait=10, limit=100, max_bytes=1000)
    window.add(delivery(100, body=b"x" * 600))
    assert not window.ready(100) and window.bytes == 600
    window.add(delivery(100, body=b"x" * 400))
    assert window.ready(100)
    window.take()
    assert window.bytes == 0


def test_log_values_are_quoted_for_logfmt():
    assert metrics.quote("plain") == "plain"
    assert metrics.quote("two words") == '"two words"'
    assert metrics.quote(True) == "true" and metrics.quote(None) == "-" and metrics.quote(0.5) == "0.5"
    assert metrics.median([1.0, 2.0, 4.0]) == 2.0 and metrics.median([1.0, 2.0]) == 1.5 and metrics.median([]) is None


def write(path, data):
    path.write_text(json.dumps(data))
    return str(path)


@pytest.fixture
def job_config(tmp_path):
    return write(tmp_path / "job.json", {"repository": "sw.example.org", "state_dir": str(tmp_path / "state"),
                                         "lock_file": str(tmp_path / "lock"), "source": {"bucket": "software"}})


def test_config_defaults_password_file_and_status_file(tmp_path, job_config):
    (tmp_path / "pw").write_text("s3cret\n")
    config = events.load_config(write(tmp_path / "c.json", {
        "job_config": job_config, "queue": "q", "dead_letter_exchange": "dlx",
        "amqp": {"host": "mq.example.org", "username": "u", "password_file": str(tmp_path / "pw")}}))
    assert config["amqp"]["password"] == "s3cret" and config["amqp"]["port"] == 5672
    assert config["status_file"] == str(tmp_path / "state" / "events-status.json")
    assert config["debounce"] == 2.0 and config["max_attempts"] == 5 and config["job"]["lease"] == "sw.example.org"


@pytest.mark.parametrize("change, words", [
    ({"queue": None}, "lacks 'queue'"),
    ({"debounce": -1}, "debounce"),
    ({"max_wait": 1, "debounce": 5}, "must not be shorter than debounce"),
    ({"max_attempts": 0}, "max_attempts"),
    ({"max_batch_bytes": 0}, "max_batch_bytes"),
    ({"max_batch_bytes": 1000, "max_message_bytes": 2000}, "max_message_bytes (2000) must not exceed max_batch_bytes"),
    ({"amqp": {"username": "u"}}, "needs password"),
    ({"amqp": {"username": "u", "password_file": "/nonexistent/pw"}}, "cannot read the AMQP password file"),
    ({"amqp": {"auth_method": "external", "client_cert": None}}, "needs client_cert"),
])
def test_config_errors_name_the_setting(tmp_path, job_config, change, words):
    data = {"job_config": job_config, "queue": "q", "dead_letter_exchange": "dlx",
            "amqp": {"username": "u", "password": "p"}}
    data.update(change)
    with pytest.raises(CvmfsError) as caught:
        events.load_config(write(tmp_path / "c.json", data))
    assert words in caught.value.message


def test_keys_mode_uses_the_job_sync_options(tmp_path, monkeypatch):
    """The consumer's in-process keys-mode sync gets exactly the options the job's full sync gets
    (read from the job's own s3_sync command line), plus the touched keys."""
    from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _publish_config, _s3_sync
    creds = tmp_path / "creds"
    creds.write_text("AWS_ACCESS_KEY_ID=AK\nAWS_SECRET_ACCESS_KEY=SK\n")
    config = _publish_config.load_config(write(tmp_path / "job.json", {
        "repository": "sw.example.org", "path": "/team-a", "state_dir": str(tmp_path / "state"),
        "lock_file": str(tmp_path / "lock"), "mount_dir": str(tmp_path / "cvmfs"), "credentials_file": str(creds),
        "source": {"bucket": "software", "prefix": "cvmfs/team-a/", "endpoint_url": "https://rgw.example.org",
                   "region": "default", "delete": False, "exclude": ["scratch"], "max_workers": 7,
                   "on_invalid": "skip", "on_missing": "warn", "validate_certs": False}}))
    seen = {}

    def fake_sync_keys(conn, options, keys, log=None):
        seen.update(conn=conn, options=options, keys=keys)
        return {"changed": False, "missing_keys": ["cvmfs/team-a/x"]}

    monkeypatch.setattr(_s3_sync, "sync_keys", fake_sync_keys)
    job = event_job.EventJob(config, Log(stream=open(str(tmp_path / "log"), "w")), keys={"cvmfs/team-a/x"})
    assert job.run_sync(check=True)["changed"] is False
    assert "cvmfs/team-a/x was listed but gone when fetched" in (tmp_path / "log").read_text()
    options, conn = seen["options"], seen["conn"]
    assert seen["keys"] == ["cvmfs/team-a/x"]
    assert options.bucket == "software" and options.prefix == "cvmfs/team-a/" and options.check_mode
    assert options.dest == str(tmp_path / "cvmfs" / "sw.example.org" / "team-a")
    assert options.symlink_root == str(tmp_path / "cvmfs" / "sw.example.org")  # the whole repository
    assert options.state_file == str(tmp_path / "state" / "sync-state.json")
    assert not options.delete and options.max_workers == 7 and options.on_invalid == "skip"
    assert options.on_missing == "warn"
    assert options.filter.excluded("scratch/file")
    assert conn.endpoint_url == "https://rgw.example.org" and conn.region == "default" and not conn.validate_certs
    assert (conn.access_key, conn.secret_key) == ("AK", "SK")
    assert config["plan_first"] and not job.config["plan_first"]  # events need no plan first


# ---- hostile input: nothing but Rejected may come out of parse_message ----------------------

def fuzz_bodies():
    """Bodies a broken or hostile publisher could put on the queue: wrong types, nesting, binary."""
    import random
    good = record()
    wrong_types = []
    for field, values in (("eventTime", [5, 1.5, {}, [], True, "0000-13-99T99:99:99Z", "2026-02-30T10:00:00Z",
                                         "9" * 5000 + "-01-01T00:00:00Z"]),
                          ("eventName", [5, None, {}, ["ObjectCreated:Put"]]),
                          ("eventSource", [None, 1, ["ceph:s3"]]),
                          ("s3", [None, [], "s3", {"bucket": [], "object": []}, {"bucket": {"name": 5}},
                                  {"bucket": {"name": "software"}, "object": {"key": 7}},
                                  {"bucket": {"name": "software"}, "object": {"key": ["cvmfs/a"]}},
                                  {"bucket": {"name": {"x": 1}}, "object": {"key": "cvmfs/a"}}])):
        for value in values:
            wrong_types.append(message(dict(good, **{field: value})))
    bodies = wrong_types + [
        b"", b" ", b"null", b"0", b"1e999999", b'"Records"', b"1" * 5000, b"[" * 100000 + b"]" * 100000,
        b'{"Records": ' * 50000 + b"[]" + b"}" * 50000,
        json.dumps({"Records": [{"s3": {"x": None}}]}).encode(),
        json.dumps({"Records": {"0": good}}).encode(), json.dumps({"Records": "x"}).encode(),
        json.dumps({"Event": ["s3:TestEvent"]}).encode(),
        # a key that is no UTF-8 text (a lone surrogate in JSON) and control characters
        b'{"Records": [{"eventSource": "ceph:s3", "eventName": "ObjectCreated:Put", "eventTime": "\\ud800",'
        b' "s3": {"bucket": {"name": "software"}, "object": {"key": "cvmfs/\\udcff"}}}]}',
        message(dict(good, eventName="ObjectCreated:\udcff")), message(dict(good, eventSource="x\ud800:s3")),
        message(record(bucket="oth\udce9r")),
    ]
    rng = random.Random(14)
    bodies += [rng.randbytes(rng.randint(1, 300)) for _count in range(50)]
    base = message(good, record("cvmfs/b.txt"))
    for _count in range(200):  # byte-level mutations of a valid message
        mutated = bytearray(base)
        for _hit in range(rng.randint(1, 5)):
            mutated[rng.randrange(len(mutated))] = rng.getrandbits(8)
        bodies.append(bytes(mutated))
    return bodies


@pytest.mark.parametrize("body", fuzz_bodies(), ids=lambda body: "%d-bytes" % len(body))
def test_no_body_makes_parse_message_raise_anything_but_rejected(body):
    try:
        keys, times, count = messages.parse_message(body, SCOPE)
    except messages.Rejected as rejected:
        assert rejected.reason and rejected.kind in ("malformed", "foreign")
        # the reason goes into a log line and an AMQP header: it must be encodable text
        rejected.reason.encode("utf-8")
        return
    for key in keys:
        key.encode("utf-8")
    assert all(isinstance(t, float) or isinstance(t, int) for t in times) and count >= 0


def test_an_unparseable_event_time_is_rejected_and_a_valid_one_kept():
    with pytest.raises(messages.Rejected) as caught:
        messages.parse_message(message(record(when=5)), SCOPE)
    assert "eventTime" in caught.value.reason and caught.value.kind == "malformed"
    assert messages.parse_time(5) is None and messages.parse_time("2026-02-30T10:00:00Z") is None


@pytest.mark.parametrize("host, warned", [("mq.example.org", True), ("127.0.0.1", False)])
def test_the_consumer_warns_of_a_password_sent_in_clear(tmp_path, job_config, host, warned):
    import io
    config = events.load_config(write(tmp_path / "c.json", {
        "job_config": job_config, "queue": "q", "dead_letter_exchange": "dlx",
        "amqp": {"host": host, "username": "u", "password": "p"}}))
    stream = io.StringIO()
    consumer.Consumer(config, Log(stream=stream))
    assert ("event=amqp_cleartext_login" in stream.getvalue()) == warned, stream.getvalue()


def _stamped(*times, records=None):
    return batching.Delivery(1, {"k"}, list(times), len(times) if records is None else records, 0, "f", 0.0, b"{}", None)


def test_only_messages_well_before_the_last_full_sync_are_covered_by_it():
    started = 10000.0
    old = _stamped(started - 600, started - 61)
    recent = _stamped(started - 600, started - 59)      # one event inside the margin: synced again
    unstamped = _stamped(records=1)                     # no eventTime: never taken as covered
    partly = _stamped(started - 600, records=2)         # one of two records stamped
    covered, rest = batching.covered_by_full_sync([old, recent, unstamped, partly], started, margin=60)
    assert covered == [old] and rest == [recent, unstamped, partly]
    assert batching.covered_by_full_sync([old], None) == ([], [old])   # no full sync yet


class _DepthChannel:
    """A channel that answers a passive queue_declare with ``depth``, or raises ``error``."""

    def __init__(self, depth=None, error=None):
        self.depth, self.error, self.is_open, self.asked = depth, error, True, []

    def queue_declare(self, queue, passive=False):
        self.asked.append((queue, passive))
        if self.error is not None:
            self.is_open = False
            raise self.error
        return type("Frame", (), {"method": type("DeclareOk", (), {"message_count": self.depth})()})()


class _DepthConnection:
    def __init__(self, *channels):
        self.channels = list(channels)

    def channel(self):
        return self.channels.pop(0)


def _depth_consumer(tmp_path, job_config, **extra):
    import io
    config = events.load_config(write(tmp_path / "c.json", dict({
        "job_config": job_config, "queue": "q", "dead_letter_exchange": "dlx",
        "amqp": {"host": "127.0.0.1", "username": "u", "password": "p"}}, **extra)))
    stream = io.StringIO()
    return consumer.Consumer(config, Log(stream=stream)), stream


def test_the_queue_depth_is_asked_passively_at_its_interval_and_written_to_the_status_file(tmp_path, job_config):
    assert events.load_config(write(tmp_path / "d.json", {
        "job_config": job_config, "queue": "q", "dead_letter_exchange": "dlx",
        "amqp": {"username": "u", "password": "p"}}))["queue_depth_interval"] == 30.0
    the_consumer, _log = _depth_consumer(tmp_path, job_config, queue_depth_interval=10)
    channel = _DepthChannel(depth=42)
    the_consumer.connection = _DepthConnection(channel)
    the_consumer.check_queue_depth(1000.0)
    the_consumer.check_queue_depth(1005.0)      # within the interval: not asked again
    assert channel.asked == [("q", True)]
    channel.depth = 7
    the_consumer.check_queue_depth(1010.0)
    assert channel.asked == [("q", True)] * 2
    (tmp_path / "state").mkdir()
    the_consumer.metrics.write(force=True)
    status = json.loads((tmp_path / "state" / "events-status.json").read_text())
    assert status["queue_depth"]["messages"] == 7 and status["queue_depth"]["error"] is None
    assert status["queue_depth"]["checked"].endswith("Z")


def test_a_broker_refusing_the_depth_question_leaves_the_last_value_and_the_consumer_running(tmp_path, job_config):
    pika = pytest.importorskip("pika")
    the_consumer, log = _depth_consumer(tmp_path, job_config, queue_depth_interval=10)
    first, second = _DepthChannel(depth=5), _DepthChannel(depth=3)
    the_consumer.connection = _DepthConnection(first, second)
    the_consumer.check_queue_depth(1000.0)
    checked = the_consumer.metrics.queue_depth["checked"]
    first.error = pika.exceptions.ChannelClosedByBroker(403, "ACCESS_REFUSED - not allowed")
    the_consumer.check_queue_depth(1010.0)      # raises nothing
    depth = the_consumer.metrics.queue_depth
    assert depth["messages"] == 5 and depth["checked"] == checked   # the last value, with its time
    assert "ACCESS_REFUSED" in depth["error"]["message"]
    assert "event=queue_depth_unknown" in log.getvalue()
    the_consumer.check_queue_depth(1020.0)      # on a new channel: the broker closed the first
    assert second.asked == [("q", True)]
    assert the_consumer.metrics.queue_depth["messages"] == 3 and the_consumer.metrics.queue_depth["error"] is None
