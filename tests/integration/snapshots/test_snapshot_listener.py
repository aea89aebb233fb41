"""Snapshot on publish end to end: announcement (the publisher's ``_announce``) -> real RabbitMQ ->
the stratum-1's snapshot listener -> ``cvmfs_server snapshot``.

What is real: RabbitMQ (exchange, this host's queue, its dead-letter queue), the announcing code,
the listener (the host-program archive the stratum1 role installs, run by
the distribution's Python when it has pika, as on a stratum-1).

What is NOT real: ``cvmfs_server``. It is the TEST DOUBLE tests/cvmfs_double/cvmfs_server
(add-replica and snapshot as cvmfs-facts.md documents them, held to the real one by the contract
tests), reached through the TEST DOUBLE wrapper ``observed_cvmfs_server`` here, which records any
two snapshots of one replica running at the same time and can hold a snapshot open. The stratum-0
is a storage directory reached by a file:// URL (tests/cvmfs_double.make_storage).

No test asserts how fast anything happens; waits have generous upper bounds.
"""

import json
import os
import subprocess

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _announce
from tests.cvmfs_double import DoubleHost, make_storage
from tests.integration.events.helpers import drain, queue_depth, terminate, unique, wait_for
from tests.integration.events.site import host_python
from tests.support.host_program import build_host_program

pytestmark = pytest.mark.integration

HERE = os.path.dirname(os.path.abspath(__file__))
WRAPPER = os.path.join(HERE, "observed_cvmfs_server")
REPO = "sw.example.org"


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory):
    """The host-program archive exactly as the stratum1 role installs it on a host (the PYTHONPATH)."""
    return build_host_program(tmp_path_factory.mktemp("program"))


class Stratum1:
    """One stratum-1 with a replica of REPO (the double's tree), its listener, and the stratum-0's storage."""

    def __init__(self, tmp_path, mq, package_dir):
        self.tmp = tmp_path
        self.mq = mq
        self.package_dir = package_dir
        self.host = DoubleHost(tmp_path / "double", run_module=None)
        self.stratum0 = str(tmp_path / "s0" / REPO)
        url = make_storage(self.stratum0, REPO, revision=5)
        pub = self.host.write("etc/cvmfs/keys/%s.pub" % REPO, "-----BEGIN PUBLIC KEY-----\nS0\n")
        self.host.cvmfs("add-replica", "-o", "root", "-a", "-p", url, pub)
        self.host.cvmfs("snapshot", REPO)
        self.initial_calls = len(self.snapshots())
        self.exchange = unique("cvmfs-publications")
        self.queue = unique("cvmfs-snapshot-s1")
        password = tmp_path / "amqp-password"
        password.write_text(mq.password + "\n")
        self.config = {
            "queue": self.queue, "exchange": self.exchange, "dead_letter_exchange": self.exchange + ".dead-letter",
            "amqp": {"host": mq.host, "port": mq.port, "username": mq.user, "password_file": str(password),
                     "heartbeat": 10},
            "cvmfs_server": WRAPPER, "etc_dir": self.host.etc, "spool_dir": self.host.spool,
            "storage_dir": self.host.srv, "reconnect_max": 2,
        }
        self.log_path = tmp_path / "listener.log"
        self.process = None

    # ---- the listener -----------------------------------------------------------------

    def start(self):
        path = self.tmp / "listener.json"
        path.write_text(json.dumps(self.config))
        env = dict(os.environ, PYTHONPATH=self.package_dir, PYTHONDONTWRITEBYTECODE="1", **self.host.env())
        env.pop("JOURNAL_STREAM", None)
        self.log_handle = open(str(self.log_path), "a")
        self.process = subprocess.Popen([host_python(), "-m", "sharedsw_cvmfs._snapshot_listener", "--config", str(path)],
                                        env=env, cwd="/", stdin=subprocess.DEVNULL, stdout=self.log_handle,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self.wait(lambda: "event=connected" in self.log(), "the listener to connect")
        return self

    def stop(self):
        if self.process is None:
            return None
        code = terminate(self.process, 60)
        self.log_handle.close()
        self.process = None
        return code

    def log(self):
        return self.log_path.read_text() if self.log_path.exists() else ""

    def wait(self, predicate, what, timeout=60):
        def check():
            assert self.process.poll() is None, "the listener exited:\n" + self.log()[-5000:]
            return predicate()
        try:
            return wait_for(check, timeout, what, interval=0.1)
        except AssertionError as error:
            raise AssertionError("%s\n--- listener log (tail) ---\n%s" % (error, self.log()[-6000:]))

    # ---- publisher and replica --------------------------------------------------------

    def publish(self, revision):
        """The stratum-0 serves ``revision`` from now on."""
        make_storage(self.stratum0, REPO, revision=revision)

    def announce(self, revision, repository=REPO):
        settings = {"exchange": self.exchange,
                    "amqp": {"host": self.mq.host, "port": self.mq.port, "username": self.mq.user,
                             "password": self.mq.password}}
        assert _announce.announce(settings, repository, revision, "file://" + self.stratum0) is True

    def put_raw(self, body):
        connection = self.mq.connection()
        try:
            connection.channel().basic_publish(self.exchange, REPO, body)
        finally:
            connection.close()

    def revision(self):
        return self.host.revision(os.path.join(self.host.srv, REPO))

    def snapshots(self):
        return [argv for argv in self.host.argvs() if argv == ["snapshot", REPO]]

    def new_snapshots(self):
        return len(self.snapshots()) - self.initial_calls

    def overlaps(self):
        path = self.host.path("overlaps")
        return open(path).read() if os.path.exists(path) else ""

    def hold(self, on=True):
        flag = self.host.path("hold-snapshot")
        if on:
            open(flag, "w").close()
        else:
            os.unlink(flag)

    def running(self):
        return os.path.exists(self.host.path("snapshot-running." + REPO))

    def decisions(self):
        """How many announcements the listener has decided about so far."""
        return sum(self.log().count("event=%s " % e) for e in ("snapshot", "up_to_date", "not_replicated"))


@pytest.fixture
def stratum1(tmp_path, rabbitmq, package_dir):
    site = Stratum1(tmp_path, rabbitmq, package_dir)
    yield site
    if site.process is not None and os.path.exists(site.host.path("hold-snapshot")):
        site.hold(False)
    site.stop()


def test_a_burst_of_duplicate_announcements_runs_one_snapshot(stratum1):
    stratum1.start()
    stratum1.publish(6)
    for _attempt in range(10):
        stratum1.announce(6)
    stratum1.wait(lambda: stratum1.decisions() == 10 and "event=snapshot_done " in stratum1.log(),
                  "ten announcements handled and the snapshot done")
    assert stratum1.stop() == 0
    assert stratum1.new_snapshots() == 1
    assert queue_depth(stratum1.mq, stratum1.queue) == 0, "every announcement acknowledged"
    assert stratum1.overlaps() == ""


def test_an_older_revision_runs_no_snapshot(stratum1):
    stratum1.publish(6)
    stratum1.host.cvmfs("snapshot", REPO)
    stratum1.initial_calls = len(stratum1.snapshots())
    stratum1.start()
    stratum1.announce(4)
    stratum1.announce(6)
    stratum1.wait(lambda: stratum1.decisions() == 2, "two announcements handled")
    assert stratum1.stop() == 0
    assert stratum1.new_snapshots() == 0
    assert stratum1.log().count("event=up_to_date ") == 2
    assert queue_depth(stratum1.mq, stratum1.queue) == 0


def test_two_announcements_never_run_two_snapshots_of_one_replica_at_once(stratum1):
    stratum1.start()
    stratum1.hold()
    stratum1.publish(6)
    stratum1.announce(6)
    stratum1.wait(lambda: stratum1.running() and stratum1.revision() == 6, "the first snapshot to have fetched 6")
    stratum1.publish(7)  # published while the first snapshot is still running
    stratum1.announce(7)
    stratum1.announce(7)
    stratum1.wait(lambda: stratum1.decisions() == 3, "the announcements of revision 7 to arrive")
    stratum1.hold(False)
    stratum1.wait(lambda: stratum1.log().count("event=snapshot_done ") == 2 and stratum1.revision() == 7,
                  "a second snapshot to bring revision 7")
    assert stratum1.stop() == 0
    assert stratum1.overlaps() == ""
    assert stratum1.new_snapshots() == 2
    assert queue_depth(stratum1.mq, stratum1.queue) == 0


def test_unknown_repositories_are_ignored_and_malformed_messages_dead_lettered(stratum1):
    stratum1.start()
    stratum1.announce(9, repository="other.example.org")
    stratum1.put_raw(b'{"repository": "sw.example.org", "revision": "seven"}')
    stratum1.wait(lambda: "event=not_replicated" in stratum1.log() and "event=message_rejected" in stratum1.log(),
                  "both messages handled")
    assert stratum1.stop() == 0
    assert stratum1.new_snapshots() == 0
    assert queue_depth(stratum1.mq, stratum1.queue) == 0
    dead = drain(stratum1.mq, stratum1.queue + ".dead-letter", expect=1)
    assert [body for _method, _properties, body in dead] == [b'{"repository": "sw.example.org", "revision": "seven"}']
    assert "'revision' must be a whole number" in stratum1.log()
