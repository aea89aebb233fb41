# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the notification consumer reports: ``key=value`` journal lines and its status file.

Internal to sharedsw.cvmfs; may change in any release. Pure Python, no Ansible import. Owns
:class:`Metrics` (counters, the last batch, ``events-status.json``) and the formatting of log
fields and times. Must not import the consumer or the publish job.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import time

from ._program_support import write_json_file


class Metrics:
    """Counters, the last batch, and the status file."""

    COUNTERS = ("messages_received", "events_received", "events_coalesced", "batches", "publishes", "full_syncs",
                "messages_covered", "failures", "requeued", "dead_lettered", "dead_letter_refused", "malformed",
                "foreign", "reconnects", "acks_lost", "pauses")

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
        self.queue_depth = {"messages": None, "checked": None, "error": None}
        self.started = now_text()
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

    def set_queue_depth(self, messages):
        """What the broker answered: ``messages`` wait in the queue (not counting those held)."""
        self.queue_depth = {"messages": messages, "checked": now_text(), "error": None}
        self.dirty = True

    def queue_depth_unknown(self, message):
        """The broker did not answer: the last depth stays, with the time it was asked and the error."""
        self.queue_depth = dict(self.queue_depth, error={"time": now_text(), "message": message})
        self.dirty = True

    def set_state(self, state):
        if state != self.state:
            self.state = state
            self.dirty = True

    def snapshot(self):
        return {"repository": self.repository, "queue": self.queue, "state": self.state, "connected": self.connected,
                "pid": os.getpid(), "started": self.started, "updated": now_text(), "counters": dict(self.counters),
                "lag_seconds": dict(self.lag), "held_bytes": dict(self.held_bytes), "queue_depth": dict(self.queue_depth),
                "last_batch": self.last_batch,
                "last_error": self.last_error, "last_dead_letter": self.last_dead_letter}

    def write(self, force=False):
        now = time.time()
        if not force and (not self.dirty or now - self.written < 1.0):
            return
        try:
            write_json_file(self.path, self.snapshot(), indent=1)
        except (IOError, OSError):
            return
        self.dirty = False
        self.written = now


def quote(value):
    """A value for a ``key=value`` log line: ``-`` for None, JSON quotes when it has spaces, quotes or ``=``."""
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


def median(values):
    if not values:
        return None
    middle = len(values) // 2
    value = values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2.0
    return round(value, 3)


def iso_time(epoch):
    """``2026-11-23T13:40:16.508Z`` (UTC, milliseconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + ".%03dZ" % int((epoch % 1) * 1000)


def now_text():
    return iso_time(time.time())
