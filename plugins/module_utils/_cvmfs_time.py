# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Moments as CernVM-FS writes them: manifest timestamps, whitelist dates, ``date --utc`` snapshot stamps.

Internal to sharedsw.cvmfs; may change in any release. Owns: turning the time notations the
repository files use into aware UTC datetimes and back. Pure standard library; must not import
Ansible, HTTP or ``cryptography``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re

from ._cvmfs_hashes import cvmfs_error

_UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)
LAST_SNAPSHOT = ".cvmfs_last_snapshot"


def utc_datetime(value):
    """``value`` (aware/naive datetime, seconds since the epoch, ISO 8601 text) as aware UTC.

    Naive datetimes and ISO texts without an offset are taken as UTC. ``None`` stays ``None``.
    """
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _EPOCH + datetime.timedelta(seconds=value)
    text = str(value).strip()
    if re.match(r"^-?[0-9]+(\.[0-9]+)?$", text):
        return _EPOCH + datetime.timedelta(seconds=float(text))
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        raise ValueError("%r is neither seconds since the epoch nor an ISO 8601 time "
                         "(e.g. 2026-12-01T08:00:00Z)" % (value,))
    return utc_datetime(parsed)


def epoch(moment):
    """Whole seconds since the epoch of an aware datetime."""
    return int((moment - _EPOCH).total_seconds() // 1)


def isoformat(moment):
    """``2026-12-23T11:19:40Z``."""
    return moment.astimezone(_UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_MONTHS = dict((m, i + 1) for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")))
_DATE_RE = re.compile(
    r"^(?:[A-Za-z]{3},?\s+)?([A-Za-z]{3})\s+([0-9]{1,2})\s+([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"\s+(?:UTC|GMT|Z)\s+([0-9]{4})$")


def parse_snapshot_time(text, what=LAST_SNAPSHOT):
    """Parse the ``date --utc`` text cvmfs_server writes (``Mon Nov 23 11:20:05 UTC 2026``).

    Also accepts ISO 8601 and seconds since the epoch. Locale-independent.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise cvmfs_error("malformed", "%s is not text: expected a UTC date such as "
                              "'Mon Nov 23 11:20:05 UTC 2026'" % what)
    text = text.strip()
    match = _DATE_RE.match(text)
    if match:
        month, day, hour, minute, second, year = match.groups()
        if month.lower() in _MONTHS:
            try:
                return datetime.datetime(int(year), _MONTHS[month.lower()], int(day), int(hour),
                                         int(minute), int(second), tzinfo=_UTC)
            except ValueError:
                pass
    else:
        try:
            return utc_datetime(text) if text else None
        except ValueError:
            pass
    raise cvmfs_error("malformed", "%s holds %r, which is not a UTC date such as "
                      "'Mon Nov 23 11:20:05 UTC 2026' (as written by 'date --utc')" % (what, text[:80]))
