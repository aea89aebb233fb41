"""Pure logic of the stratum-1's snapshot listener: parsing announcements (_announce), what a replica does
about one, and how announcements in hand are served by snapshot runs (no broker, no cvmfs_server)."""

import io
import json

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _announce as announce
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _snapshot_listener as listener
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError


def body(**fields):
    announcement = {"repository": "sw.example.org", "revision": 7, "stratum0_url": "http://s0/cvmfs/sw.example.org"}
    announcement.update(fields)
    return json.dumps(announcement).encode()


def test_an_announcement_is_parsed():
    parsed = announce.parse_announcement(body())
    assert parsed == announce.Announcement("sw.example.org", 7, "http://s0/cvmfs/sw.example.org")


@pytest.mark.parametrize("raw, reason", [
    (b"\xff\xfe", "not JSON"),
    (b"revision 7", "not JSON"),
    (b"[1, 2]", "not a JSON object but list"),
    (body(repository=None), "'repository' must be a repository name"),
    (body(repository="../etc"), "'repository' must be a repository name"),
    (body(repository=["sw.example.org"]), "'repository' must be a repository name"),
    (body(revision="7"), "'revision' must be a whole number"),
    (body(revision=-1), "'revision' must be a whole number"),
    (body(revision=True), "'revision' must be a whole number"),
    (body(revision=7.5), "'revision' must be a whole number"),
    (body(stratum0_url=5), "'stratum0_url' must be a string"),
    (b" " * (announce.MAX_MESSAGE_BYTES + 1), "larger than"),
])
def test_malformed_announcements_are_rejected_with_the_reason(raw, reason):
    with pytest.raises(announce.Rejected) as caught:
        announce.parse_announcement(raw)
    assert reason in caught.value.reason


ANNOUNCED_7 = announce.Announcement("sw.example.org", 7, None)


def test_a_newer_revision_is_snapshotted():
    assert listener.plan(ANNOUNCED_7, {"sw.example.org": 6}) == {"sw.example.org": listener.SNAPSHOT}


def test_a_replica_never_snapshotted_is_snapshotted():
    assert listener.plan(ANNOUNCED_7, {"sw.example.org": None}) == {"sw.example.org": listener.SNAPSHOT}


def test_a_duplicate_is_up_to_date():
    assert listener.plan(ANNOUNCED_7, {"sw.example.org": 7}) == {"sw.example.org": listener.UP_TO_DATE}


def test_an_older_revision_is_up_to_date():
    assert listener.plan(ANNOUNCED_7, {"sw.example.org": 9}) == {"sw.example.org": listener.UP_TO_DATE}


def test_a_repository_not_replicated_here_gives_nothing_to_do():
    assert listener.plan(ANNOUNCED_7, {}) == {}


def test_each_replica_of_the_repository_decides_for_itself():
    assert listener.plan(ANNOUNCED_7, {"sw-a": 7, "sw-b": 3}) == {"sw-a": listener.UP_TO_DATE,
                                                                  "sw-b": listener.SNAPSHOT}


# ---- the listener's bookkeeping, with a recording channel and replicas in a dict ---------------

class Channel:
    is_open = True

    def __init__(self):
        self.acked, self.rejected = [], []

    def basic_ack(self, tag):
        self.acked.append(tag)

    def basic_reject(self, tag, requeue):
        self.rejected.append((tag, requeue))


class Method:
    routing_key = "sw.example.org"

    def __init__(self, tag):
        self.delivery_tag = tag


class Replicas:
    def __init__(self, revisions):
        self.revisions = revisions

    def of(self, fqrn):
        return [alias for alias in self.revisions if alias.startswith(fqrn)]

    def revision(self, alias):
        return self.revisions[alias]


class Finished:
    """Stands in for a run's thread once the snapshot ended."""

    def is_alive(self):
        return False


def make_listener(local_revision=5):
    """A listener with a recording channel and one replica, sw.example.org, at ``local_revision``."""
    config = dict(listener.DEFAULTS, queue="q", exchange="x", dead_letter_exchange="x.dl",
                  amqp={"host": "localhost", "port": 5672})
    subject = listener.Listener(config, stream=io.StringIO())
    subject.replicas = Replicas({"sw.example.org": local_revision})
    subject.channel = Channel()
    return subject


def deliver(subject, tag, **fields):
    subject.on_message(subject.channel, Method(tag), None, body(**fields))


def start(subject):
    """What start_runs does, without threads: the runs it would start."""
    runs = []
    for alias in list(subject.pending):
        if alias not in subject.running and len(subject.running) < subject.config["max_parallel"]:
            run = listener.Run(alias, subject.pending.pop(alias))
            run.thread, run.returncode = Finished(), 0
            subject.running[alias] = run
            runs.append(run)
    return runs


def test_a_burst_of_duplicates_is_served_by_one_snapshot():
    subject = make_listener()
    deliver(subject, 1, revision=7)
    runs = start(subject)
    for tag in (2, 3, 4):  # the same announcement again while the snapshot runs
        deliver(subject, tag, revision=7)
    assert start(subject) == [] and subject.channel.acked == []
    subject.replicas.revisions["sw.example.org"] = 7  # what the snapshot brought
    subject.reap()
    assert [run.alias for run in runs] == ["sw.example.org"]
    assert sorted(subject.channel.acked) == [1, 2, 3, 4]
    assert not subject.pending and not subject.running


def test_an_announcement_newer_than_the_running_snapshot_gets_a_second_one():
    subject = make_listener()
    deliver(subject, 1, revision=6)
    start(subject)
    deliver(subject, 2, revision=7)
    assert start(subject) == [], "a second snapshot of the replica while one runs"
    subject.replicas.revisions["sw.example.org"] = 6
    subject.reap()
    assert subject.channel.acked == [1]
    second = start(subject)
    assert [run.alias for run in second] == ["sw.example.org"]
    subject.replicas.revisions["sw.example.org"] = 7
    subject.reap()
    assert subject.channel.acked == [1, 2]


def test_older_unknown_and_malformed_announcements_run_nothing():
    subject = make_listener()
    deliver(subject, 1, revision=4)
    deliver(subject, 2, repository="other.example.org")
    subject.on_message(subject.channel, Method(3), None, b"not json")
    assert start(subject) == []
    assert subject.channel.acked == [1, 2]
    assert subject.channel.rejected == [(3, False)]
    assert "event=message_rejected" in subject.stream.getvalue()


def test_a_failed_snapshot_is_logged_and_its_announcement_acked():
    subject = make_listener()
    deliver(subject, 1, revision=6)
    (run,) = start(subject)
    run.returncode, run.output = 1, "Failed to contact stratum 0 server"
    subject.reap()
    assert subject.channel.acked == [1]
    log = subject.stream.getvalue()
    assert "event=snapshot_failed" in log and "exit_status=1" in log and "timer retries" in log


def test_an_ack_for_a_channel_that_is_gone_is_left_to_the_broker():
    config = dict(listener.DEFAULTS, queue="q", exchange="x", dead_letter_exchange="x.dl",
                  amqp={"host": "localhost", "port": 5672})
    subject = listener.Listener(config, stream=io.StringIO())
    subject.replicas = Replicas({"sw.example.org": 5})
    old = subject.channel = Channel()
    deliver(subject, 1, revision=6)
    start(subject)
    subject.channel = Channel()  # reconnected meanwhile
    subject.replicas.revisions["sw.example.org"] = 6
    subject.reap()
    assert old.acked == [] and subject.channel.acked == []
    assert "event=ack_lost" in subject.stream.getvalue()


def test_config_needs_queue_exchange_and_dead_letter_exchange(tmp_path):
    path = tmp_path / "listener.json"
    path.write_text(json.dumps({"queue": "q", "exchange": "x", "amqp": {"host": "localhost"}}))
    with pytest.raises(CvmfsError, match="lacks 'dead_letter_exchange'"):
        listener.load_config(str(path))


def test_config_reads_the_password_file(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    path = tmp_path / "listener.json"
    path.write_text(json.dumps({"queue": "q", "exchange": "x", "dead_letter_exchange": "x.dl",
                                "amqp": {"host": "localhost", "username": "s1", "password_file": str(secret)}}))
    config = listener.load_config(str(path))
    assert config["amqp"]["password"] == "s3cret" and config["amqp"]["port"] == 5672
