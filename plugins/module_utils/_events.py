# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The publisher's notification consumer: RGW bucket events from RabbitMQ -> publish, at least once.

Internal to sharedsw.cvmfs; may change in any release. Pure Python + pika + boto3, no Ansible
import; the publisher role installs it with its sibling module_utils files as the package
``sharedsw_cvmfs`` and runs it from ``sharedsw-cvmfs-events@<repo>.service``::

    python3 -m sharedsw_cvmfs._events --config /etc/sharedsw-cvmfs/events/<repo>.json

What it does, in order of importance:

* **Nothing is acknowledged before it is published.** Messages of a batch are acked only after
  the publish succeeded (or after the job found the repository already up to date). On any
  failure the transaction is aborted (the publish job's own recovery and abort logic is
  reused), the messages are returned to the queue, and the consumer waits (jittered exponential
  backoff) before the next attempt. A message that failed ``max_attempts`` times is copied to the
  dead-letter exchange with the reason in its headers, logged at error level, then acked; the
  next batch is a full re-sync, so whatever it announced is applied once the cause is gone.
* **Bursts become one transaction.** Events are collected until ``debounce`` seconds pass
  without a new one, or ``max_wait`` seconds after the first. The touched keys are applied with
  the s3_sync engine's keys mode (each decided from the bucket's current state, so a delete
  followed by a re-upload ends with the object present, whatever the order of the events); more
  than ``max_keys`` distinct keys make it a full re-sync.
* **Lost events are assumed after every (re)connection.** While the broker was unreachable RGW
  may have dropped events, so the first batch after connecting is a full re-sync (cheap when
  nothing changed: the sync is planned first and no transaction is opened).
* **Never crash on input.** A message that is not an S3 event record (wrong types, nested too
  deeply, larger than ``max_message_bytes``, not text), or is about another bucket or prefix,
  goes to the dead-letter exchange with the reason; the consumer carries on. A dead-letter copy
  the broker refuses (NackError) is logged with the reason and the message rejected, never
  requeued.
* **Memory is bounded in bytes.** The bodies held (batch, window, pending dead letters) stay
  within ``max_batch_bytes`` plus one message: the window closes at that size, and the consumer
  cancels its subscription while it holds that much (RabbitMQ's prefetch counts messages only).
* **It shares the publish job's lock** (``lock_file`` of the job config), so the periodic full
  sync (the timer, the safety net) and the consumer never overlap.

Metrics: one ``key=value`` line per batch in the journal, and ``<state_dir>/events-status.json``
(counters, the last batch, lag from event time to publish).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import calendar
import datetime
import hashlib
import json
import os
import random
import re
import signal
import tempfile
import threading
import time
import traceback

try:
    from urllib.parse import unquote_plus
except ImportError:  # pragma: no cover - Python 2
    from urllib import unquote_plus  # type: ignore

from ._common import CvmfsError
from . import _amqp
from ._publish_job import EXIT_OK, Lock, Log, PublishJob, load_config as load_job_config, log_missing_keys

try:
    import pika
    import pika.exceptions
except ImportError:  # reported by _amqp when a connection is attempted
    pika = None

EXIT_CONFIG = 2

DEFAULTS = {
    "job_config": None,
    "queue": None,
    "dead_letter_exchange": None,
    "amqp": {},
    "debounce": 2.0,
    "max_wait": 30.0,
    "max_keys": 1000,
    "prefetch": 2000,
    "max_batch_bytes": 32 * 1024 * 1024,
    "max_message_bytes": 1024 * 1024,
    "max_attempts": 5,
    "backoff_initial": 5.0,
    "backoff_max": 300.0,
    "reconnect_max": 60.0,
    "full_sync_on_connect": True,
    "status_file": None,
    "tick": 0.2,
}

_EVENT_TIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?Z?$")
_KEY_EVENTS = ("ObjectCreated:", "ObjectRemoved:")


def load_config(path):
    """The consumer's JSON config with defaults, plus ``job`` (the publish job's config)."""
    try:
        with open(path) as handle:
            raw = json.load(handle)
    except (IOError, OSError) as error:
        raise CvmfsError("cannot read the consumer config %s: %s" % (path, error))
    except ValueError as error:
        raise CvmfsError("the consumer config %s is not valid JSON: %s" % (path, error))
    if not isinstance(raw, dict):
        raise CvmfsError("the consumer config %s must hold a JSON object" % path)
    config = dict(DEFAULTS)
    config.update((k, v) for k, v in raw.items() if v is not None)
    for key in ("job_config", "queue", "dead_letter_exchange"):
        if not config.get(key):
            raise CvmfsError("the consumer config %s lacks %r" % (path, key))
    for key, low in (("debounce", 0), ("max_wait", 0), ("backoff_initial", 0), ("backoff_max", 0), ("tick", 0.01),
                     ("reconnect_max", 1)):
        if not isinstance(config[key], (int, float)) or config[key] < low:
            raise CvmfsError("%s in %s must be a number of seconds >= %s, not %r" % (key, path, low, config[key]))
    for key in ("max_keys", "prefetch", "max_attempts", "max_batch_bytes", "max_message_bytes"):
        if not isinstance(config[key], int) or config[key] < 1:
            raise CvmfsError("%s in %s must be a whole number >= 1, not %r" % (key, path, config[key]))
    if config["max_message_bytes"] > config["max_batch_bytes"]:
        raise CvmfsError("max_message_bytes (%s) must not exceed max_batch_bytes (%s) in %s"
                         % (config["max_message_bytes"], config["max_batch_bytes"], path))
    if config["max_wait"] < config["debounce"]:
        raise CvmfsError("max_wait (%s) must not be shorter than debounce (%s) in %s"
                         % (config["max_wait"], config["debounce"], path))
    config["job"] = load_job_config(config["job_config"])
    amqp = dict(config["amqp"] or {})
    password_file = amqp.pop("password_file", None)
    if password_file:
        try:
            with open(password_file) as handle:
                amqp["password"] = handle.read().strip()
        except (IOError, OSError) as error:
            raise CvmfsError("cannot read the AMQP password file %s: %s" % (password_file, error))
    amqp.setdefault("connection_name", "sharedsw-cvmfs-events %s" % config["job"]["lease"])
    config["amqp"] = _amqp.resolve_options(amqp)
    _amqp.validate(config["amqp"])
    if not config["status_file"]:
        config["status_file"] = os.path.join(config["job"]["state_dir"], "events-status.json")
    return config


# --------------------------------------------------------------------------------------------
# Messages


class Rejected(Exception):
    """A message the consumer will never be able to use; ``reason`` goes with it to the DLQ."""

    def __init__(self, reason, kind="malformed"):
        # the reason quotes the message, which may hold text no encoder takes (lone surrogates);
        # it goes into a log line and an AMQP header
        reason = reason.encode("utf-8", "backslashreplace").decode("utf-8")
        super(Rejected, self).__init__(reason)
        self.reason = reason
        self.kind = kind  # malformed | foreign


class Scope:
    """Which events belong to this consumer: its bucket, below its sync or ingest prefix."""

    def __init__(self, bucket, prefixes):
        self.bucket = bucket
        self.prefixes = [p for p in prefixes if p is not None]

    def covers(self, key):
        return any(key.startswith(prefix) for prefix in self.prefixes)


def parse_time(text):
    """Seconds since the epoch from RGW/AWS ``eventTime`` (``2026-11-23T13:40:16.508206Z``), or None
    for anything else (not a string, not a real date)."""
    match = _EVENT_TIME.match(text) if isinstance(text, str) else None
    if not match:
        return None
    fields = [int(part) for part in match.groups()[:6]]
    frac = match.group(7)
    try:
        datetime.datetime(*fields)
    except ValueError:
        return None
    seconds = calendar.timegm(tuple(fields) + (0, 0, 0))
    return seconds + (float("0." + frac) if frac else 0.0)


def _utf8(text):
    """Whether ``text`` can be written as UTF-8 (JSON allows lone surrogates, S3 keys cannot hold them)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_message(body, scope):
    """``(keys, event_times, records)`` of one message, or raise :class:`Rejected` saying why not.

    Ceph sends object keys as they are; AWS URL-encodes them (``+`` for a space). For a key
    that reads differently decoded, both spellings are touched: looking at a key that did not
    change is harmless, because the bucket's current state decides what happens to it.
    """
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError) as error:
        raise Rejected("not a JSON document: %s" % error)
    except RecursionError:
        raise Rejected("not a JSON document this consumer can read: nested too deeply")
    if isinstance(data, dict) and data.get("Event") == "s3:TestEvent":
        return set(), [], 0
    if not isinstance(data, dict) or not isinstance(data.get("Records"), list) or not data["Records"]:
        raise Rejected("not an S3 event message: no non-empty 'Records' list")
    keys = set()
    times = []
    for number, record in enumerate(data["Records"]):
        where = "record %d" % number
        if not isinstance(record, dict):
            raise Rejected("%s is not an object" % where)
        source = record.get("eventSource")
        name = record.get("eventName")
        s3 = record.get("s3")
        if not isinstance(name, str) or not isinstance(s3, dict) or not isinstance(source, str):
            raise Rejected("%s lacks eventSource, eventName or s3" % where)
        if not source.endswith(":s3"):
            raise Rejected("%s comes from %r, not from S3" % (where, source), "foreign")
        short = name[3:] if name.startswith("s3:") else name
        if not short.startswith(_KEY_EVENTS):
            raise Rejected("%s is a %s event; only ObjectCreated:* and ObjectRemoved:* are handled" % (where, name),
                           "foreign")
        bucket = (s3.get("bucket") or {}).get("name") if isinstance(s3.get("bucket"), dict) else None
        obj = s3.get("object") if isinstance(s3.get("object"), dict) else {}
        key = obj.get("key")
        if not isinstance(bucket, str) or not isinstance(key, str) or not key:
            raise Rejected("%s lacks s3.bucket.name or s3.object.key" % where)
        if not _utf8(key):
            raise Rejected("%s has an s3.object.key that is not UTF-8 text: %s" % (where, key))
        if bucket != scope.bucket:
            raise Rejected("%s is about bucket %s, not %s" % (where, bucket, scope.bucket), "foreign")
        spellings = [unquote_plus(key)] if source == "aws:s3" else [key, unquote_plus(key)]
        mine = [k for k in spellings if scope.covers(k)]
        if not mine:
            outside = " and ".join(scope.prefixes) or "any prefix"
            raise Rejected("%s is about s3://%s/%s, outside %s" % (where, bucket, key, outside), "foreign")
        keys.update(mine)
        stamp = record.get("eventTime")
        if stamp is not None and not isinstance(stamp, str):
            raise Rejected("%s has an eventTime that is not a string but %s" % (where, type(stamp).__name__))
        when = parse_time(stamp)  # only for the lag metrics: a string that is no time is ignored
        if when is not None:
            times.append(when)
    return keys, times, len(data["Records"])


class Delivery:
    """One message held by the consumer until its batch is published."""

    __slots__ = ("tag", "keys", "times", "records", "attempts", "fingerprint", "arrived", "body", "properties")

    @property
    def size(self):
        return len(self.body)

    def __init__(self, tag, keys, times, records, attempts, fingerprint, arrived, body, properties):
        self.tag = tag
        self.keys = keys
        self.times = times
        self.records = records
        self.attempts = attempts      # failed deliveries before this one
        self.fingerprint = fingerprint
        self.arrived = arrived
        self.body = body
        self.properties = properties


class Window:
    """The debounce window: closes ``debounce`` s after the last arrival, ``max_wait`` s after
    the first, when ``limit`` messages are held (the prefetch: no more can arrive), or when their
    bodies reach ``max_bytes``."""

    def __init__(self, debounce, max_wait, limit, max_bytes=None):
        self.debounce = debounce
        self.max_wait = max_wait
        self.limit = limit
        self.max_bytes = max_bytes
        self.items = []
        self.bytes = 0
        self.first = self.last = None

    def add(self, delivery):
        if not self.items:
            self.first = delivery.arrived
        self.last = delivery.arrived
        self.items.append(delivery)
        self.bytes += delivery.size

    def full(self):
        return len(self.items) >= self.limit or (self.max_bytes is not None and self.bytes >= self.max_bytes)

    def ready(self, now):
        if not self.items:
            return False
        return now - self.last >= self.debounce or now - self.first >= self.max_wait or self.full()

    def take(self):
        items, self.items, self.first, self.last, self.bytes = self.items, [], None, None, 0
        return items


# --------------------------------------------------------------------------------------------
# The publish step: the publish job, with the sync limited to the touched keys


class EventJob(PublishJob):
    """The publish job of the timer, run by the consumer: same lock, recovery, transaction,
    abort and publish; the sync applies only ``keys`` (None: the full mirror). Signals belong to
    the consumer's main thread, so the job's own signal handling is switched off."""

    def __init__(self, config, log, keys=None, env=None):
        if keys is not None:
            # events announce changes: planning first would only repeat the lookups. The job still
            # closes an unchanged transaction without publishing.
            config = dict(config, plan_first=False)
        super(EventJob, self).__init__(config, log, env)
        self.keys = None if keys is None else sorted(keys)
        self.mode = "full" if keys is None else "keys"
        self.interrupted = False

    def install_signal_handlers(self):
        pass

    def restore_signal_handlers(self):
        pass

    def shield(self):
        pass

    def interrupt(self):
        """Stop a running full sync (its child process); the transaction is then aborted."""
        self.interrupted = True
        child = self.child
        if child is not None and child.poll() is None:
            try:
                child.terminate()
            except OSError:
                pass

    def run_sync(self, check):
        if self.keys is None:
            return super(EventJob, self).run_sync(check)
        from ._s3_keys import NeedsFullSync
        try:
            return self._sync_keys(check)
        except NeedsFullSync as error:
            self.log.info("event=full_sync_needed repository=%s reason=%s" % (self.repository, _quote(error.message)))
            self.keys = None
            self.mode = "full"
            return super(EventJob, self).run_sync(check)

    def _sync_keys(self, check):
        """The job's own sync (its ``sync_argv``, read with the command line's parser, so keys mode
        and the timer's full sync use the same options), limited to the touched keys, in-process."""
        from ._s3_sync import sync_keys
        from ._s3_sync_cli import _parser, sync_options
        argv = self.sync_argv(check)
        args = _parser().parse_args(argv[argv.index("--bucket"):])
        credentials = self.credentials
        # the credentials _s3_sync_cli.main would take from the environment
        conn, options = sync_options(args, credentials.get("AWS_ACCESS_KEY_ID"), credentials.get("AWS_SECRET_ACCESS_KEY"),
                                     credentials.get("AWS_SESSION_TOKEN"))
        what = "planning" if check else "applying"
        self.log.info("%s %d key(s) of %s from s3://%s/%s to %s"
                      % (what, len(self.keys), self.repository, args.bucket, args.prefix, args.dest))
        result = sync_keys(conn, options, self.keys)
        for rejection in result.get("rejections") or []:
            self.log.warning("skipped %s: %s" % (rejection["key"], rejection["reason"]))
        log_missing_keys(self.log, result)
        return result


# --------------------------------------------------------------------------------------------
# Metrics


class Metrics:
    """Counters, the last batch, and the status file."""

    COUNTERS = ("messages_received", "events_received", "events_coalesced", "batches", "publishes", "full_syncs",
                "failures", "requeued", "dead_lettered", "dead_letter_refused", "malformed", "foreign", "reconnects",
                "acks_lost", "pauses")

    def __init__(self, path, repository, queue):
        self.path = path
        self.repository = repository
        self.queue = queue
        self.counters = dict((name, 0) for name in self.COUNTERS)
        self.state = "starting"
        self.connected = False
        self.last_batch = None
        self.last_error = None
        self.last_dead_letter = None
        self.lag = {"last_median": None, "last_max": None, "max": None}
        self.held_bytes = {"now": 0, "max": 0}
        self.started = _now_text()
        self.dirty = True
        self.written = 0.0

    def add(self, name, value=1):
        self.counters[name] += value
        self.dirty = True

    def set_held_bytes(self, value):
        if value != self.held_bytes["now"]:
            self.held_bytes["now"] = value
            self.held_bytes["max"] = max(self.held_bytes["max"], value)
            self.dirty = True

    def set_state(self, state):
        if state != self.state:
            self.state = state
            self.dirty = True

    def snapshot(self):
        return {"repository": self.repository, "queue": self.queue, "state": self.state, "connected": self.connected,
                "pid": os.getpid(), "started": self.started, "updated": _now_text(), "counters": dict(self.counters),
                "lag_seconds": dict(self.lag), "held_bytes": dict(self.held_bytes), "last_batch": self.last_batch, "last_error": self.last_error,
                "last_dead_letter": self.last_dead_letter}

    def write(self, force=False):
        now = time.time()
        if not force and (not self.dirty or now - self.written < 1.0):
            return
        directory = os.path.dirname(self.path) or "."
        try:
            handle, tmp = tempfile.mkstemp(dir=directory, prefix=".events-status.")
            with os.fdopen(handle, "w") as stream:
                json.dump(self.snapshot(), stream, sort_keys=True, indent=1)
                stream.write("\n")
            os.chmod(tmp, 0o644)
            os.rename(tmp, self.path)
        except (IOError, OSError):
            return
        self.dirty = False
        self.written = now


# --------------------------------------------------------------------------------------------
# The consumer


class Stop(Exception):
    """The consumer was asked to stop while a batch waited for the lock."""


class Batch:
    def __init__(self, deliveries, full, reason):
        self.deliveries = deliveries
        self.keys = set()
        self.times = []
        self.events = 0
        self.bytes = sum(delivery.size for delivery in deliveries)
        for delivery in deliveries:
            self.keys.update(delivery.keys)
            self.times.extend(delivery.times)
            self.events += delivery.records
        self.full = full
        self.reason = reason
        self.started = time.time()
        self.finished = None
        self.job = None
        self.summary = None
        self.error = None
        self.needs_human = False
        self.thread = None


class Consumer:
    def __init__(self, config, log=None, env=None):
        self.config = config
        self.job_config = config["job"]
        self.log = log or Log()
        self.env = env
        self.repository = self.job_config["repository"]
        self.lease = self.job_config["lease"]
        self.queue = config["queue"]
        source = self.job_config["source"]
        prefixes = [source["prefix"] or ""] if source["sync"] else []
        if source.get("ingest_prefix"):
            prefixes.append(source["ingest_prefix"])
        self.scope = Scope(source["bucket"], prefixes)
        self.metrics = Metrics(config["status_file"], self.repository, self.queue)
        self.window = Window(config["debounce"], config["max_wait"], config["prefetch"], config["max_batch_bytes"])
        self.stopping = False
        self.need_full = None          # reason of the next full re-sync, or None
        self.batch = None
        self.backoff_until = 0.0
        self.failures_in_row = 0
        self.failed_before = {}        # fingerprint -> failures (classic queues have no delivery count)
        self.to_dead_letter = []       # (delivery tag, body, properties, reason, attempts)
        self.connection = self.channel = self.dl_channel = None
        self.consumer_tag = None
        self.paused = False
        self.sleep = time.sleep
        warning = _amqp.cleartext_warning(config["amqp"])
        if warning:
            self.say("amqp_cleartext_login", "warning", message=warning)

    # ---- logging ----------------------------------------------------------------------

    def say(self, event, level="info", **fields):
        parts = ["event=%s" % event, "repository=%s" % self.repository]
        parts += ["%s=%s" % (k, _quote(v)) for k, v in sorted(fields.items())]
        line = " ".join(parts)
        if level == "critical" and hasattr(self.log, "_say"):
            self.log._say(2, line)  # pylint: disable=protected-access
        else:
            (getattr(self.log, level, None) or self.log.error)(line)

    # ---- lifecycle --------------------------------------------------------------------

    def request_stop(self, signum=None, _frame=None):
        if not self.stopping:
            self.say("stopping", signal=signum)
        self.stopping = True
        batch = self.batch
        if batch is not None and batch.job is not None:
            batch.job.interrupt()

    def serve(self):
        """Connect, consume, reconnect; returns when asked to stop."""
        delay = 1.0
        if self.config["full_sync_on_connect"]:
            self.need_full = "start"
        while not self.stopping:
            try:
                self.connect()
                delay = 1.0
                self.loop()
            except CvmfsError as error:
                self.metrics.last_error = {"time": _now_text(), "message": error.message}
                self.say("broker_unreachable", "error", message=error.message, retry_in=round(delay, 1))
            except Exception as error:  # pylint: disable=broad-except
                if not _is_connection_error(error):
                    raise
                self.metrics.last_error = {"time": _now_text(), "message": _describe(error)}
                self.say("connection_lost", "warning", message=_describe(error), retry_in=round(delay, 1))
            finally:
                self.disconnect()
            if self.stopping:
                break
            self.metrics.set_state("disconnected")
            self.metrics.write(force=True)
            self._wait(delay)
            delay = min(delay * 2, float(self.config["reconnect_max"]))
            self.metrics.add("reconnects")
            if self.config["full_sync_on_connect"]:
                # RGW drops what it cannot push while the broker is away: assume events were lost
                self.need_full = "reconnected"
        self.metrics.set_state("stopped")
        self.metrics.write(force=True)

    def _wait(self, seconds):
        deadline = time.time() + seconds
        while not self.stopping and time.time() < deadline:
            self.sleep(min(0.2, max(deadline - time.time(), 0)))

    def connect(self):
        options = self.config["amqp"]
        params = _amqp.connection_parameters(options)
        try:
            self.connection = pika.BlockingConnection(params)
            self.channel = self.connection.channel()
            self.channel.basic_qos(prefetch_count=int(self.config["prefetch"]))
            self.dl_channel = self.connection.channel()
            self.dl_channel.confirm_delivery()
            self.consumer_tag = self.channel.basic_consume(self.queue, self.on_message)
        except Exception as error:  # pylint: disable=broad-except
            raise _amqp.translate(error, options, "consume from queue %s" % self.queue)
        self.metrics.connected = True
        self.metrics.set_state("idle")
        self.say("connected", broker=_amqp.describe(options), queue=self.queue)

    def disconnect(self):
        self.metrics.connected = False
        # a batch still running has to finish first: it holds a transaction
        self.finish_running_batch(connected=False)
        # what the window held is returned to the queue by the broker when the channel closes
        dropped = self.window.take()
        self.to_dead_letter = []
        if dropped:
            self.say("window_dropped", "warning", messages=len(dropped),
                     note="unacknowledged; the broker delivers them again")
        if self.connection is not None:
            try:
                if self.connection.is_open:
                    self.connection.close()
            except Exception:  # pylint: disable=broad-except
                pass
        self.connection = self.channel = self.dl_channel = self.consumer_tag = None
        self.paused = False
        self.metrics.set_held_bytes(self.held_bytes())

    # ---- the loop ---------------------------------------------------------------------

    def loop(self):
        tick = float(self.config["tick"])
        while not self.stopping:
            self.connection.process_data_events(time_limit=tick)
            self.flush_dead_letters()
            self.resume_if_room()
            now = time.time()
            if self.batch is not None:
                if not self.batch.thread.is_alive():
                    self.finish_batch(self.batch)
                self.metrics.write()
                continue
            if now < self.backoff_until:
                self.metrics.set_state("backoff")
            elif self.need_full or self.window.ready(now):
                self.start_batch()
            else:
                self.metrics.set_state("collecting" if self.window.items else "idle")
            self.metrics.write()
        # stopping: let a running batch end (a full sync is interrupted and aborted), then go
        self.finish_running_batch(connected=True)

    def on_message(self, channel, method, properties, body):
        now = time.time()
        self.metrics.add("messages_received")
        headers = getattr(properties, "headers", None) or {}
        fingerprint = hashlib.sha1((method.routing_key or "").encode("utf-8") + b"\0" + body).hexdigest()
        attempts = headers.get("x-delivery-count")
        if not isinstance(attempts, int) or isinstance(attempts, bool):
            attempts = self.failed_before.get(fingerprint, 0)
        try:
            keys, times, records = self.understand(body)
        except Rejected as rejected:
            self.metrics.add(rejected.kind)
            self.say("message_rejected", "error", kind=rejected.kind, reason=rejected.reason,
                     routing_key=method.routing_key, body=_excerpt(body))
            self.to_dead_letter.append((method.delivery_tag, body, properties, rejected.reason, attempts))
            if rejected.kind == "malformed":
                # maybe a mangled event of ours: whatever it said, a full re-sync covers it
                self.need_full = self.need_full or "malformed message"
        else:
            self.metrics.add("events_received", records)
            self.window.add(Delivery(method.delivery_tag, keys, times, records, attempts, fingerprint, now, body,
                                     properties))
        self.pause_if_full()

    def understand(self, body):
        """:func:`parse_message` behind a size limit; whatever else goes wrong while reading a
        message is a reason to dead-letter it, never to stop the consumer."""
        limit = int(self.config["max_message_bytes"])
        if len(body) > limit:
            raise Rejected("the message has %d bytes, more than max_message_bytes (%d); S3 event messages are "
                           "a few kB" % (len(body), limit))
        try:
            return parse_message(body, self.scope)
        except Rejected:
            raise
        except Exception as error:  # pylint: disable=broad-except
            self.log.error("reading a message failed unexpectedly: %s\n%s" % (_describe(error), traceback.format_exc()))
            raise Rejected("the message could not be read: %s" % _describe(error))

    # ---- memory: the bodies held are bounded in bytes, not only by the prefetch count ------

    def held_bytes(self):
        held = self.window.bytes + sum(len(item[1]) for item in self.to_dead_letter)
        if self.batch is not None:
            held += self.batch.bytes
        return held

    def pause_if_full(self):
        """Cancel the subscription while the bodies held reach max_batch_bytes (RabbitMQ has no
        byte-based prefetch). Deliveries pika received but had not dispatched yet go back to the
        queue; what is held stays unacknowledged and is published as usual."""
        held = self.held_bytes()
        self.metrics.set_held_bytes(held)
        if self.paused or held < int(self.config["max_batch_bytes"]) or self.consumer_tag is None:
            return
        self.channel.basic_cancel(self.consumer_tag)
        self.consumer_tag = None
        self.paused = True
        self.metrics.add("pauses")
        self.say("consumption_paused", "warning", held_bytes=held, max_batch_bytes=self.config["max_batch_bytes"],
                 note="resumed once a batch is published and its messages are acknowledged")

    def resume_if_room(self):
        held = self.held_bytes()
        self.metrics.set_held_bytes(held)
        if not self.paused or held >= int(self.config["max_batch_bytes"]):
            return
        self.consumer_tag = self.channel.basic_consume(self.queue, self.on_message)
        self.paused = False
        self.say("consumption_resumed", held_bytes=held)

    def flush_dead_letters(self):
        while self.to_dead_letter:
            tag, body, properties, reason, attempts = self.to_dead_letter.pop(0)
            self.dead_letter(tag, body, properties, reason, attempts)

    def dead_letter(self, tag, body, properties, reason, attempts):
        """Copy a message to the dead-letter exchange with the reason, then ack the original."""
        headers = dict(getattr(properties, "headers", None) or {})
        headers.update({"x-sharedsw-reason": reason[:1000], "x-sharedsw-attempts": int(attempts),
                        "x-sharedsw-queue": self.queue, "x-sharedsw-repository": self.lease,
                        "x-sharedsw-time": _now_text()})
        props = pika.BasicProperties(content_type=getattr(properties, "content_type", None) or "application/json",
                                     delivery_mode=2, headers=headers)
        try:
            self.dl_channel.basic_publish(self.config["dead_letter_exchange"], self.queue, body, props, mandatory=True)
        except pika.exceptions.UnroutableError:
            self.say("dead_letter_unroutable", "error", exchange=self.config["dead_letter_exchange"],
                     routing_key=self.queue, reason=reason, body=_excerpt(body, 4000),
                     note="no dead-letter queue is bound; the message is only in this log line")
        except pika.exceptions.NackError:
            # the broker refused the copy (e.g. a full dead-letter queue that rejects publishes).
            # Requeueing would bring the message back forever; rejecting it lets the broker apply
            # the queue's own dead-letter settings, without the reason, which is logged here.
            self.metrics.add("dead_letter_refused")
            self.say("dead_letter_refused", "error", exchange=self.config["dead_letter_exchange"],
                     routing_key=self.queue, reason=reason, body=_excerpt(body, 4000),
                     note="the broker refused the dead-letter copy; the message was rejected to the queue's own "
                          "dead-letter exchange, without the reason, which is only in this log line")
            self.channel.basic_nack(tag, requeue=False)
            return
        self.channel.basic_ack(tag)
        self.metrics.add("dead_lettered")
        self.metrics.last_dead_letter = {"time": _now_text(), "reason": reason, "attempts": attempts}

    # ---- batches ----------------------------------------------------------------------

    def start_batch(self):
        deliveries = self.window.take()
        keys = set()
        for delivery in deliveries:
            keys.update(delivery.keys)
        full, reason = False, None
        if self.need_full:
            full, reason = True, self.need_full
        elif len(keys) > int(self.config["max_keys"]):
            full, reason = True, "window overflowed (%d keys > max_keys %d)" % (len(keys), self.config["max_keys"])
        self.need_full = None
        if not deliveries and not full:
            return
        batch = Batch(deliveries, full, reason)
        self.batch = batch
        self.metrics.set_state("publishing")
        self.say("batch_started", messages=len(deliveries), keys=len(batch.keys),
                 mode="full" if full else "keys", **({"reason": reason} if reason else {}))
        batch.thread = threading.Thread(target=self.process, args=(batch,), name="publish")
        batch.thread.daemon = True
        batch.thread.start()

    def process(self, batch):
        """The worker thread: lock, publish job (keys or full), unlock. No pika calls here."""
        lock = Lock(self.job_config["lock_file"])
        try:
            waited = False
            while not lock.acquire(1.0):
                if self.stopping:
                    raise Stop("stopped while waiting for the publish lock")
                if not waited:
                    self.log.info("waiting for %s (the publish timer's run)" % self.job_config["lock_file"])
                    waited = True
            try:
                batch.job = EventJob(self.job_config, self.log, keys=None if batch.full else batch.keys, env=self.env)
                if self.stopping:
                    raise Stop("stopped before the batch started")
                status = batch.job.run()
                if status != EXIT_OK:
                    batch.needs_human = True
                    raise CvmfsError(batch.job.summary.get("message") or "the publish job ended with status %d" % status)
                batch.summary = batch.job.summary
            finally:
                lock.release()
        except BaseException as error:  # pylint: disable=broad-except
            batch.error = error
            if not isinstance(error, (CvmfsError, Stop)):
                self.log.error("batch failed unexpectedly: %s\n%s" % (_describe(error), traceback.format_exc()))
        finally:
            batch.finished = time.time()

    def finish_running_batch(self, connected):
        batch = self.batch
        if batch is None:
            return
        while batch.thread.is_alive():
            if connected and self.connection is not None and self.connection.is_open:
                try:
                    self.connection.process_data_events(time_limit=0.2)
                    continue
                except Exception:  # pylint: disable=broad-except
                    connected = False
            batch.thread.join(0.2)
        self.finish_batch(batch, connected=connected)

    def finish_batch(self, batch, connected=True):
        self.batch = None
        job = batch.job
        mode = job.mode if job is not None else ("full" if batch.full else "keys")
        published = bool(batch.summary and batch.summary.get("published"))
        lags = sorted(batch.finished - t for t in batch.times)
        record = {"started": _iso(batch.started), "finished": _iso(batch.finished), "messages": len(batch.deliveries),
                  "events": batch.events, "keys": len(batch.keys), "mode": mode, "reason": batch.reason,
                  "published": published, "seconds": round(batch.finished - batch.started, 3),
                  "lag_median": _median(lags), "lag_max": round(lags[-1], 3) if lags else None,
                  "outcome": "ok" if batch.error is None else "failed"}
        self.metrics.add("batches")
        if mode == "full":
            self.metrics.add("full_syncs")
        if batch.error is None:
            self.failures_in_row = 0
            self.backoff_until = 0.0
            if published:
                self.metrics.add("publishes")
                if lags:
                    self.metrics.lag["last_median"] = record["lag_median"]
                    self.metrics.lag["last_max"] = record["lag_max"]
                    self.metrics.lag["max"] = max(self.metrics.lag["max"] or 0, record["lag_max"])
            self.metrics.add("events_coalesced", max(batch.events - 1, 0))
            acked = self.ack(batch, connected)
            for delivery in batch.deliveries:
                self.failed_before.pop(delivery.fingerprint, None)
            self.metrics.last_batch = record
            sync = (batch.summary or {}).get("sync") or {}
            self.say("batch_done", mode=mode, messages=len(batch.deliveries), events=batch.events,
                     keys=len(batch.keys), published=published, acked=acked,
                     added=(sync.get("added") or {}).get("count"), updated=(sync.get("updated") or {}).get("count"),
                     deleted=(sync.get("deleted") or {}).get("count"), seconds=record["seconds"],
                     lag_median=record["lag_median"], lag_max=record["lag_max"])
            return
        reason = _describe(batch.error)
        record["error"] = reason
        self.metrics.last_batch = record
        if isinstance(batch.error, Stop) or self.stopping:
            # our own stop is not a failure of these messages: no attempt is counted
            self.say("batch_abandoned", "warning", reason=reason, messages=len(batch.deliveries),
                     note="not acknowledged; the broker delivers them again")
            if batch.full and not batch.deliveries:
                self.need_full = batch.reason
            return
        self.metrics.add("failures")
        self.metrics.last_error = {"time": _now_text(), "message": reason}
        self.failures_in_row += 1
        delay = min(float(self.config["backoff_max"]),
                    float(self.config["backoff_initial"]) * (2 ** (self.failures_in_row - 1)))
        delay *= random.uniform(0.5, 1.0)
        self.backoff_until = time.time() + delay
        self.say("batch_failed", "critical" if batch.needs_human else "error", reason=reason, mode=mode,
                 messages=len(batch.deliveries), failures_in_row=self.failures_in_row, retry_in=round(delay, 1),
                 note="transaction aborted, nothing published")
        if batch.full:
            self.need_full = batch.reason or "the last full re-sync failed"
        if not connected:
            return
        self.nack(batch, reason)

    def ack(self, batch, connected):
        if not batch.deliveries:
            return 0
        if not connected:
            self.metrics.add("acks_lost", len(batch.deliveries))
            self.say("acks_lost", "warning", messages=len(batch.deliveries),
                     note="published, but the connection is gone: the broker delivers them again and the next "
                          "batch finds them applied")
            return 0
        for delivery in batch.deliveries:
            self.channel.basic_ack(delivery.tag)
        return len(batch.deliveries)

    def nack(self, batch, reason):
        dead = []
        for delivery in batch.deliveries:
            attempts = delivery.attempts + 1
            if attempts >= int(self.config["max_attempts"]):
                dead.append(delivery)
                continue
            self.failed_before[delivery.fingerprint] = attempts
            self.channel.basic_nack(delivery.tag, requeue=True)
            self.metrics.add("requeued")
        if len(self.failed_before) > 100000:
            self.failed_before.clear()
        if not dead:
            return
        keys = sorted(set(k for d in dead for k in d.keys))
        self.say("dead_lettered", "error", messages=len(dead), attempts=self.config["max_attempts"], reason=reason,
                 keys=",".join(keys[:10]) + (",..." if len(keys) > 10 else ""),
                 note="these events failed max_attempts times and are in the dead-letter queue; the next batch is "
                      "a full re-sync, and the publish timer repairs the repository once the cause is fixed")
        for delivery in dead:
            self.dead_letter(delivery.tag, delivery.body, delivery.properties,
                             "publish failed %d times; last error: %s" % (delivery.attempts + 1, reason),
                             delivery.attempts + 1)
            self.failed_before.pop(delivery.fingerprint, None)
        self.need_full = self.need_full or "events were dead-lettered"


# --------------------------------------------------------------------------------------------
# helpers


def _is_connection_error(error):
    if pika is None:
        return False
    return isinstance(error, (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError,
                              pika.exceptions.ConnectionClosed, pika.exceptions.ChannelClosed,
                              pika.exceptions.StreamLostError, pika.exceptions.ChannelWrongStateError,
                              pika.exceptions.ConnectionWrongStateError, OSError, EOFError))


def _describe(error):
    if isinstance(error, CvmfsError):
        return error.message
    text = str(error)
    return "%s: %s" % (type(error).__name__, text) if text else type(error).__name__


def _quote(value):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "%g" % value
    text = str(value).replace("\n", " ")
    if not text or any(c in text for c in " \"="):
        return json.dumps(text)
    return text


def _excerpt(body, limit=300):
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    return text if len(text) <= limit else text[:limit] + "...(%d bytes)" % len(body)


def _median(values):
    if not values:
        return None
    middle = len(values) // 2
    value = values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2.0
    return round(value, 3)


def _iso(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + ".%03dZ" % int((epoch % 1) * 1000)


def _now_text():
    return _iso(time.time())


def main(argv=None, log=None, env=None):
    parser = argparse.ArgumentParser(prog="python3 -m sharedsw_cvmfs._events",
                                     description="Publish a CernVM-FS repository on S3 bucket notifications.")
    parser.add_argument("--config", required=True, help="the consumer's JSON config")
    args = parser.parse_args(argv)
    log = log or Log()
    try:
        config = load_config(args.config)
        consumer = Consumer(config, log, env)
    except CvmfsError as error:
        log.error("bad configuration: %s" % error.message)
        return EXIT_CONFIG
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, consumer.request_stop)
    consumer.say("starting", lease=consumer.lease, queue=consumer.queue, debounce=config["debounce"],
                 max_wait=config["max_wait"], max_keys=config["max_keys"], max_attempts=config["max_attempts"])
    try:
        consumer.serve()
    except Exception as error:  # pylint: disable=broad-except
        log.error("the consumer failed unexpectedly: %s\n%s" % (_describe(error), traceback.format_exc()))
        consumer.metrics.last_error = {"time": _now_text(), "message": _describe(error)}
        consumer.metrics.set_state("crashed")
        consumer.metrics.write(force=True)
        return 1
    consumer.say("stopped", **dict((k, v) for k, v in consumer.metrics.counters.items() if v))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
