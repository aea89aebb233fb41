# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The batching window of the notification consumer: messages held until their batch starts.

Internal to sharedsw.cvmfs; may change in any release. Pure Python (no pika, no clock of its
own: callers pass the time), so the window's rules are tested without a broker. Owns
:class:`Delivery` and :class:`Window`. Must not import the consumer or the publish job.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


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


#: Events stamped less than this many seconds before a full sync started are synced again, not
#: taken as covered by it: RGW stamps ``eventTime`` on its own clock, and a long upload may be
#: stamped when it began but become visible to a listing only when it completed.
COVERED_MARGIN = 60.0


def covered_by_full_sync(deliveries, full_sync_started, margin=COVERED_MARGIN):
    """Split ``deliveries`` into (covered, rest): a delivery is covered when every event in it
    happened well before ``full_sync_started`` (epoch seconds; None: nothing is covered), so the
    full sync that started then already listed what it announces. A delivery whose events are
    not all stamped is never covered."""
    if full_sync_started is None:
        return [], list(deliveries)
    covered, rest = [], []
    for delivery in deliveries:
        stamped = delivery.times and len(delivery.times) == delivery.records
        if stamped and max(delivery.times) < full_sync_started - margin:
            covered.append(delivery)
        else:
            rest.append(delivery)
    return covered, rest
