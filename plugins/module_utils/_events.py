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
(counters, the last batch, lag from event time to publish, and the messages waiting in the queue,
asked of the broker every ``queue_depth_interval`` seconds).

This file is the entry point: the consumer's config and ``main``. The parts: ``_event_messages``
(message parsing), ``_event_window`` (the batching window), ``_event_consumer`` (the loop),
``_event_job`` (the publish step), ``_event_metrics`` (log lines, status file). The parts must
not import this file.

As a host program it must not import Ansible (``ansible``, ``ansible_collections``): it runs
with the distribution's python3 from the host-program archive and imports its parts by
relative imports only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import os
import signal
import traceback

from . import _amqp
from ._common import CvmfsError, describe_error
from ._event_consumer import Consumer
from ._event_metrics import now_text
from ._program_support import Log, load_config_with_defaults
from ._publish_config import load_config as load_job_config

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
    "queue_depth_interval": 30.0,
}


def load_config(path):
    """The consumer's JSON config with defaults, plus ``job`` (the publish job's config)."""
    config = load_config_with_defaults(path, "the consumer config", DEFAULTS,
                                       ("job_config", "queue", "dead_letter_exchange"))
    for key, low in (("debounce", 0), ("max_wait", 0), ("backoff_initial", 0), ("backoff_max", 0), ("tick", 0.01),
                     ("reconnect_max", 1), ("queue_depth_interval", 0.1)):
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
    config["amqp"] = _amqp.options_from_config(config["amqp"], "sharedsw-cvmfs-events %s" % config["job"]["lease"])
    _amqp.validate(config["amqp"])
    if not config["status_file"]:
        config["status_file"] = os.path.join(config["job"]["state_dir"], "events-status.json")
    return config


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
        log.error("the consumer failed unexpectedly: %s\n%s" % (describe_error(error), traceback.format_exc()))
        consumer.metrics.last_error = {"time": now_text(), "message": describe_error(error)}
        consumer.metrics.set_state("crashed")
        consumer.metrics.write(force=True)
        return 1
    consumer.say("stopped", **dict((k, v) for k, v in consumer.metrics.counters.items() if v))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
