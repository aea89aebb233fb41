# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The notification consumer's loop: RabbitMQ in, batches to the publish step, acks out.

Internal to sharedsw.cvmfs; may change in any release. pika and boto3 (through the publish job),
no Ansible import. What it guarantees is told in ``_events`` (the entry point); this file owns
:class:`Consumer` (connect, consume, pause, batch, ack, requeue, dead-letter) and
:class:`Batch`. Message parsing (``_event_messages``), the window (``_event_window``), the
publish step (``_event_job``) and the metrics (``_event_metrics``) are separate. Must not
import the entry points (``_events``, ``_publish_job``).

It runs on publishers from the host-program archive: no ``ansible`` or ``ansible_collections``
import, relative imports only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import random
import threading
import time
import traceback

from . import _amqp
from ._common import CvmfsError, describe_error
from ._event_job import EventJob
from ._event_messages import Rejected, Scope, parse_message
from ._event_metrics import Metrics, iso_time, median, now_text, quote
from ._event_window import Delivery, Window, covered_by_full_sync
from ._program_support import Lock, Log
from ._publish_run import EXIT_OK

try:
    import pika
    import pika.exceptions
except ImportError:  # reported by _amqp when a connection is attempted
    pika = None


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
        self.run_started = None   # when the job started, after the publish lock
        self.finished = None
        self.job = None
        self.summary = None
        self.error = None
        self.needs_human = False
        self.thread = None


class Consumer(_amqp.ReconnectingClient):
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
        self.full_sync_started = None  # when the last successful full sync started (epoch seconds)
        self.batch = None
        self.backoff_until = 0.0
        self.failures_in_row = 0
        self.failed_before = {}        # fingerprint -> failures (classic queues have no delivery count)
        self.to_dead_letter = []       # (delivery tag, body, properties, reason, attempts)
        self.connection = self.channel = self.dl_channel = self.depth_channel = None
        self.next_depth_check = 0.0
        self.consumer_tag = None
        self.paused = False
        self.sleep = time.sleep
        warning = _amqp.cleartext_warning(config["amqp"])
        if warning:
            self.say("amqp_cleartext_login", "warning", message=warning)

    # ---- logging ----------------------------------------------------------------------

    def say(self, event, level="info", **fields):
        parts = ["event=%s" % event, "repository=%s" % self.repository]
        parts += ["%s=%s" % (k, quote(v)) for k, v in sorted(fields.items())]
        line = " ".join(parts)
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
        if self.config["full_sync_on_connect"]:
            self.need_full = "start"
        super(Consumer, self).serve()
        self.metrics.set_state("stopped")
        self.metrics.write(force=True)

    def connection_failed(self, event, level, message, delay):
        self.metrics.last_error = {"time": now_text(), "message": message}
        super(Consumer, self).connection_failed(event, level, message, delay)

    def between_connections(self, delay):
        self.metrics.set_state("disconnected")
        self.metrics.write(force=True)
        self._wait(delay)
        self.metrics.add("reconnects")
        if self.config["full_sync_on_connect"]:
            # RGW drops what it cannot push while the broker is away: assume events were lost
            self.need_full = "reconnected"

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
        _amqp.close_quietly(self.connection)
        self.connection = self.channel = self.dl_channel = self.depth_channel = self.consumer_tag = None
        self.next_depth_check = 0.0
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
            self.check_queue_depth(now)
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
            self.log.error("reading a message failed unexpectedly: %s\n%s" % (describe_error(error), traceback.format_exc()))
            raise Rejected("the message could not be read: %s" % describe_error(error))

    def check_queue_depth(self, now):
        """Ask the broker how many messages wait in the queue, at most every queue_depth_interval
        seconds: a passive declare on a channel of its own, so that a refusal closes only that
        channel. A channel error is logged and leaves the last depth, with its time, in the status
        file; a lost connection is the loop's to handle."""
        if now < self.next_depth_check:
            return
        self.next_depth_check = now + float(self.config["queue_depth_interval"])
        try:
            if self.depth_channel is None or not self.depth_channel.is_open:
                self.depth_channel = self.connection.channel()
            frame = self.depth_channel.queue_declare(self.queue, passive=True)
        except pika.exceptions.AMQPChannelError as error:
            self.depth_channel = None
            if self.metrics.queue_depth["error"] is None:   # once per spell of errors
                self.say("queue_depth_unknown", "warning", queue=self.queue, message=describe_error(error),
                         note="the status file keeps the last depth and when it was asked")
            self.metrics.queue_depth_unknown(describe_error(error))
            return
        self.metrics.set_queue_depth(frame.method.message_count)

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
                        "x-sharedsw-time": now_text()})
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
        self.metrics.last_dead_letter = {"time": now_text(), "reason": reason, "attempts": attempts}

    # ---- batches ----------------------------------------------------------------------

    def start_batch(self):
        deliveries = self.ack_covered(self.window.take())
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

    def ack_covered(self, deliveries):
        """Acknowledge, without a publish, the messages the last full sync already covered (a
        backlog left while the consumer was down is drained by one full sync, not one per window);
        returns the others."""
        covered, rest = covered_by_full_sync(deliveries, self.full_sync_started)
        if covered:
            for delivery in covered:
                self.channel.basic_ack(delivery.tag)
            self.metrics.add("messages_covered", len(covered))
            self.say("covered_acked", messages=len(covered), events=sum(d.records for d in covered),
                     note="older than the last full sync, which applied them")
        return rest

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
            batch.run_started = time.time()
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
                self.log.error("batch failed unexpectedly: %s\n%s" % (describe_error(error), traceback.format_exc()))
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
        record = {"started": iso_time(batch.started), "finished": iso_time(batch.finished), "messages": len(batch.deliveries),
                  "events": batch.events, "keys": len(batch.keys), "mode": mode, "reason": batch.reason,
                  "published": published, "seconds": round(batch.finished - batch.started, 3),
                  "lag_median": median(lags), "lag_max": round(lags[-1], 3) if lags else None,
                  "outcome": "ok" if batch.error is None else "failed"}
        self.metrics.add("batches")
        if mode == "full":
            self.metrics.add("full_syncs")
        if batch.error is None:
            if mode == "full" and batch.run_started is not None:
                self.full_sync_started = max(self.full_sync_started or 0.0, batch.run_started)
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
        reason = describe_error(batch.error)
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
        self.metrics.last_error = {"time": now_text(), "message": reason}
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


def _excerpt(body, limit=300):
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    return text if len(text) <= limit else text[:limit] + "...(%d bytes)" % len(body)
