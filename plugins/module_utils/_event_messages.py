# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""S3 event messages: which keys a message touches, or why it is rejected (dead-lettered).

Internal to sharedsw.cvmfs; may change in any release. Pure Python (no pika, no boto3, no
Ansible), so every rule here is tested without a broker. Owns :func:`parse_message`,
:class:`Scope` (which bucket and prefixes belong to a consumer) and :class:`Rejected`. Must not
import the consumer or the publish job.

It runs on publishers from the host-program archive: no ``ansible`` or ``ansible_collections``
import, relative imports only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import re
from urllib.parse import unquote_plus

_EVENT_TIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?Z?$")
_KEY_EVENTS = ("ObjectCreated:", "ObjectRemoved:")


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
        moment = datetime.datetime(*fields, tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    return moment.timestamp() + (float("0." + frac) if frac else 0.0)


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
