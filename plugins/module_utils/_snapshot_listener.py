# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stratum-1's snapshot listener: publish announcements from RabbitMQ -> ``cvmfs_server snapshot``.

Internal to sharedsw.cvmfs; may change in any release. Pure Python + pika, no Ansible import; the
stratum1 role installs it with its sibling module_utils files as the package ``sharedsw_cvmfs``
and runs it from ``sharedsw-cvmfs-snapshot-events.service``::

    python3 -m sharedsw_cvmfs._snapshot_listener --config /etc/sharedsw-cvmfs/stratum1/snapshot-events.json

Publishers announce each new revision (``_announce``: ``{"repository", "revision",
"stratum0_url"}``) on a topic exchange; this host's durable queue is bound to it. For each
announcement:

* **not replicated here** (no replica of that repository, or ``CVMFS_REPLICA_ACTIVE=no``): acked
  and ignored;
* **already there** (the replica's own ``.cvmfspublished`` has that revision or a newer one):
  acked, nothing run; so duplicates and late, out-of-order announcements cost one file read;
* **newer**: ``cvmfs_server snapshot <replica>``; the message is acked after the snapshot ended.
  Announcements that arrive while a snapshot of that replica runs wait for it: if it brought the
  revision they announce they are acked, otherwise one more snapshot runs for them. A failed
  snapshot is logged and acked: the snapshot timer (``snapshot -a``) is the safety net;
* **malformed** (not JSON, no valid repository name or revision, too large): rejected without
  requeue, so the broker moves it to the dead-letter queue; one error line says why.

Never two snapshots of one replica at once: this program runs at most one per replica, and
``cvmfs_server snapshot`` itself holds the replica's ``is_updating.lock`` while it works (without
``-t`` it waits for a snapshot or gc already running; the timer's ``snapshot -a`` implies ``-t``
and skips a replica this program is snapshotting).

Log lines are ``event=... key=value``; with the journal as stdout they carry sd-daemon priorities.

As a host program on stratum-1s it must not import Ansible (``ansible``,
``ansible_collections``; relative imports only), boto3, or the publisher's programs
(``_publish_*``, ``_event*``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback

from ._common import CvmfsError, describe_error
from . import _amqp
from ._announce import Rejected, amqp_options, parse_announcement, served_revision
from ._cvmfs_state import CvmfsPaths, local_repositories, repository_state
from ._program_support import load_config_with_defaults


EXIT_OK = 0
EXIT_CONFIG = 2

DEFAULTS = {
    "queue": None,
    "exchange": None,
    "dead_letter_exchange": None,
    "amqp": {},
    "cvmfs_server": "/usr/bin/cvmfs_server",
    "etc_dir": None,
    "spool_dir": None,
    "storage_dir": None,
    "max_parallel": 4,
    "prefetch": 100,
    "reconnect_max": 60.0,
    "tick": 0.2,
}

# what a replica does about an announcement
UP_TO_DATE = "up_to_date"
SNAPSHOT = "snapshot"


def plan(announcement, local_revisions):
    """``{replica: UP_TO_DATE | SNAPSHOT}`` for ``local_revisions``, ``{replica: its revision, None
    before its first snapshot}`` of this host's replicas of the announced repository; empty when
    it has none (the repository is not replicated here)."""
    return dict((alias, UP_TO_DATE if local is not None and local >= announcement.revision else SNAPSHOT)
                for alias, local in local_revisions.items())


class Replicas:
    """The active stratum-1 replicas of this host, read from cvmfs_server's own state files."""

    def __init__(self, paths):
        self.paths = paths

    def of(self, fqrn):
        """Names (aliases) of the active replicas of the repository ``fqrn``."""
        return [state["name"] for state in local_repositories(self.paths)
                if state["type"] == "stratum1" and state["fqrn"] == fqrn
                and (state["replica_config"] or {}).get("CVMFS_REPLICA_ACTIVE", "").lower() != "no"]

    def revision(self, alias):
        """Revision of the replica's own ``.cvmfspublished``; None before its first snapshot."""
        state = repository_state(alias, self.paths)
        try:
            return None if state is None else served_revision(state)
        except CvmfsError:
            return None


class Delivery:
    """One announcement in hand: acked once no replica waits for a snapshot for it any more."""

    def __init__(self, channel, tag, announcement):
        self.channel = channel
        self.tag = tag
        self.announcement = announcement
        self.waiting = set()


class Run:
    """One ``cvmfs_server snapshot`` of one replica, in a thread, for the deliveries it serves."""

    def __init__(self, alias, deliveries):
        self.alias = alias
        self.deliveries = deliveries
        self.thread = None
        self.process = None
        self.returncode = None
        self.output = ""
        self.started = time.time()


def load_config(path):
    """The listener's JSON config with defaults; the AMQP options resolved (``password_file`` read)."""
    config = load_config_with_defaults(path, "the listener config", DEFAULTS,
                                       ("queue", "exchange", "dead_letter_exchange"))
    for key in ("max_parallel", "prefetch"):
        if not isinstance(config[key], int) or config[key] < 1:
            raise CvmfsError("%s in %s must be a whole number >= 1, not %r" % (key, path, config[key]))
    config["amqp"] = amqp_options(config["amqp"], "sharedsw-cvmfs-snapshot-listener")
    return config


class Listener(_amqp.ReconnectingClient):
    def __init__(self, config, stream=None, env=None):
        self.config = config
        self.stream = stream
        self.journal = bool(os.environ.get("JOURNAL_STREAM"))
        self.env = dict(os.environ if env is None else env, LC_ALL="C")
        self.replicas = Replicas(CvmfsPaths(etc_dir=config["etc_dir"], spool_dir=config["spool_dir"],
                                            srv_dir=config["storage_dir"]))
        self.queue = config["queue"]
        self.broker = None
        self.channel = None
        self.stopping = False
        self.running = {}                           # alias -> Run
        self.pending = collections.OrderedDict()    # alias -> [Delivery] waiting for a run
        warning = _amqp.cleartext_warning(config["amqp"])
        if warning:
            self.say("amqp_cleartext_login", "warning", message=warning)

    # ---- logging ----------------------------------------------------------------------

    def say(self, event, level="info", **fields):
        priority = {"error": 3, "warning": 4, "info": 6}[level]
        line = " ".join(["event=%s" % event] + ["%s=%s" % (k, _quote(v)) for k, v in sorted(fields.items())])
        stream = self.stream or (sys.stderr if priority <= 4 else sys.stdout)
        stream.write("%s%s\n" % ("<%d>" % priority if self.journal else "", line))
        stream.flush()

    # ---- broker -----------------------------------------------------------------------

    def connect(self):
        """Connect, declare the exchange, this host's queue and its dead-letter queue, consume."""
        config = self.config
        self.broker = _amqp.Broker(config["amqp"]).connect()
        dead_letter_queue = self.queue + ".dead-letter"
        self.broker.ensure_exchange(config["exchange"])
        self.broker.ensure_exchange(config["dead_letter_exchange"])
        self.broker.ensure_queue(dead_letter_queue, {})
        self.broker.bind(dead_letter_queue, config["dead_letter_exchange"], "#")
        self.broker.ensure_queue(self.queue, _amqp.queue_arguments("classic", config["dead_letter_exchange"]))
        self.broker.bind(self.queue, config["exchange"], "#")
        try:
            self.channel = self.broker.connection.channel()
            self.channel.basic_qos(prefetch_count=int(config["prefetch"]))
            self.channel.basic_consume(self.queue, self.on_message)
        except Exception as error:  # pylint: disable=broad-except
            raise _amqp.translate(error, self.broker.options, "consume from queue %s" % self.queue)
        self.say("connected", broker=_amqp.describe(self.broker.options), queue=self.queue,
                 exchange=config["exchange"])

    def disconnect(self):
        # what was not acked goes back to the queue when the channel closes; runs go on
        self.pending.clear()
        if self.broker is not None:
            self.broker.close()
        self.broker = self.channel = None

    def serve(self):
        """Connect, consume, reconnect; returns when asked to stop."""
        super(Listener, self).serve()
        self.stop_runs()

    def between_connections(self, delay):
        self.reap()
        super(Listener, self).between_connections(delay)

    def request_stop(self, signum=None, _frame=None):
        if not self.stopping:
            self.say("stopping", signal=signum)
        self.stopping = True

    def loop(self):
        tick = float(self.config["tick"])
        while not self.stopping:
            self.broker.connection.process_data_events(time_limit=tick)
            self.reap()
            self.start_runs()
        # stopping: acknowledge what the runs that ended have served while the channel is open
        self.reap()

    # ---- messages ---------------------------------------------------------------------

    def on_message(self, channel, method, _properties, body):
        try:
            announcement = parse_announcement(body)
        except Rejected as rejected:
            self.say("message_rejected", "error", reason=rejected.reason, routing_key=method.routing_key,
                     body=_excerpt(body), note="moved to the dead-letter queue")
            channel.basic_reject(method.delivery_tag, requeue=False)
            return
        delivery = Delivery(channel, method.delivery_tag, announcement)
        revisions = dict((alias, self.replicas.revision(alias)) for alias in self.replicas.of(announcement.repository))
        decisions = plan(announcement, revisions)
        if not decisions:
            self.say("not_replicated", repository=announcement.repository, revision=announcement.revision)
        for alias, decision in sorted(decisions.items()):
            self.say(decision, replica=alias, revision=announcement.revision, local_revision=revisions[alias],
                     stratum0_url=announcement.stratum0_url)
            if decision == SNAPSHOT:
                delivery.waiting.add(alias)
                self.pending.setdefault(alias, []).append(delivery)
        if not delivery.waiting:
            channel.basic_ack(method.delivery_tag)

    # ---- snapshots --------------------------------------------------------------------

    def start_runs(self):
        for alias in list(self.pending):
            if len(self.running) >= int(self.config["max_parallel"]):
                return
            if alias in self.running:
                continue
            run = Run(alias, self.pending.pop(alias))
            run.thread = threading.Thread(target=self.snapshot, args=(run,), name="snapshot %s" % alias)
            run.thread.daemon = True
            self.running[alias] = run
            self.say("snapshot_started", replica=alias, announcements=len(run.deliveries),
                     revision=max(d.announcement.revision for d in run.deliveries))
            run.thread.start()

    def snapshot(self, run):
        """The worker thread: ``cvmfs_server snapshot <alias>`` (it waits for a snapshot or gc that
        holds the replica's update lock). No pika calls here."""
        argv = [self.config["cvmfs_server"], "snapshot", run.alias]
        try:
            run.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                           stderr=subprocess.STDOUT, env=self.env, cwd="/", universal_newlines=True)
            run.output = run.process.communicate()[0] or ""
            run.returncode = run.process.returncode
        except OSError as error:
            run.output = "cannot run %s: %s" % (argv[0], error)
            run.returncode = 127

    def reap(self):
        """Finish the runs that ended: ack what they served, queue another run for the rest."""
        for alias, run in list(self.running.items()):
            if run.thread.is_alive():
                continue
            del self.running[alias]
            self.finish(run)

    def finish(self, run):
        alias = run.alias
        for line in run.output.splitlines():
            self.say("snapshot_output", replica=alias, line=line)
        local = self.replicas.revision(alias)
        seconds = round(time.time() - run.started, 3)
        if run.returncode == 0:
            self.say("snapshot_done", replica=alias, local_revision=local, seconds=seconds)
        else:
            self.say("snapshot_failed", "error", replica=alias, exit_status=run.returncode, local_revision=local,
                     seconds=seconds, note="the snapshot timer retries")
        for delivery in run.deliveries:
            wanted = delivery.announcement.revision
            if local is None or local < wanted:
                self.say("revision_not_replicated", "warning", replica=alias, revision=wanted, local_revision=local,
                         note="the snapshot timer retries")
            self.served(delivery, alias)
        # announcements that arrived while it ran: served if it brought their revision, else they wait
        waiting = [d for d in self.pending.get(alias, []) if local is None or local < d.announcement.revision]
        for delivery in self.pending.get(alias, []):
            if delivery not in waiting:
                self.served(delivery, alias)
        if waiting:
            self.pending[alias] = waiting
        else:
            self.pending.pop(alias, None)

    def served(self, delivery, alias):
        delivery.waiting.discard(alias)
        if delivery.waiting:
            return
        channel = self.channel
        if channel is None or delivery.channel is not channel or not channel.is_open:
            self.say("ack_lost", "warning", repository=delivery.announcement.repository,
                     revision=delivery.announcement.revision, note="the broker delivers it again")
            return
        channel.basic_ack(delivery.tag)

    def stop_runs(self):
        """Stopping: end the snapshots still running (a snapshot writes the manifest last, so an
        interrupted one leaves the replica consistent; the announcements were not acked)."""
        for run in list(self.running.values()):
            if run.process is not None and run.process.poll() is None:
                self.say("snapshot_interrupted", "warning", replica=run.alias)
                try:
                    run.process.terminate()
                except OSError:
                    pass
        for run in list(self.running.values()):
            run.thread.join()
        self.running.clear()


def _quote(value):
    if value is None:
        return "-"
    text = str(value).replace("\n", " ")
    if not text or any(c in text for c in " \"="):
        return json.dumps(text)
    return text


def _excerpt(body, limit=300):
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    return text if len(text) <= limit else text[:limit] + "...(%d bytes)" % len(body)


def main(argv=None, stream=None, env=None):
    parser = argparse.ArgumentParser(prog="python3 -m sharedsw_cvmfs._snapshot_listener",
                                     description="Snapshot this stratum-1's replicas when their repository is published.")
    parser.add_argument("--config", required=True, help="the listener's JSON config")
    args = parser.parse_args(argv)
    try:
        listener = Listener(load_config(args.config), stream, env)
    except CvmfsError as error:
        (stream or sys.stderr).write("bad configuration: %s\n" % error.message)
        return EXIT_CONFIG
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, listener.request_stop)
    listener.say("starting", queue=listener.queue, exchange=listener.config["exchange"],
                 max_parallel=listener.config["max_parallel"])
    try:
        listener.serve()
    except Exception as error:  # pylint: disable=broad-except
        listener.say("crashed", "error", message=describe_error(error), traceback=traceback.format_exc())
        return 1
    listener.say("stopped")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
