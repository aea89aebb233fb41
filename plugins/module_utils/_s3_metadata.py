# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an object's headers say its local entry must look like (kind, mode, mtime, symlink target).

Internal to sharedsw.cvmfs; may change in any release. Pure: standard library only, no I/O.
Imports only _s3_rules; must not import boto3, Ansible or the rest of the engine.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import re
import time
from urllib.parse import unquote

from ._s3_rules import display

#: user metadata keys we read (lower case, without the ``x-amz-meta-`` prefix)
META_MODE = "mode"                 # octal permission string: "755", "0755", "100755" (rclone)
META_MTIME = "mtime"               # seconds since the epoch, may be fractional (rclone) or RFC 3339
META_S3CMD = "s3cmd-attrs"         # s3cmd --preserve: "mode:33261/mtime:1577934245/..."
META_SYMLINK = "symlink-target"    # the object is a symlink to this (percent-encoded) target

DEFAULT_FILE_MODE = 0o644
DEFAULT_DIR_MODE = 0o755
MODE_MASK = 0o777                  # setuid, setgid and sticky bits are never applied
NO_SHARED_WRITE = 0o755            # group and world write bits are never applied
OWNER_FILE = 0o600                 # the owner keeps read and write on files
OWNER_DIR = 0o700                  # and everything on directories (later runs write there)

# kinds of local entries: regular file, symlink, directory, anything else
KIND_FILE, KIND_LINK, KIND_DIR, KIND_OTHER = "f", "l", "d", "o"


def parse_mode(value):
    """Permission bits from an octal string ("755", "0755", "100755"), or None."""
    value = value.strip()
    if not value or len(value) > 7 or any(c not in "01234567" for c in value):
        return None
    return int(value, 8) & MODE_MASK


def parse_epoch_ns(value):
    """Nanoseconds since the epoch from "1577934245", "1577934245.123456789" or RFC 3339."""
    value = value.strip()
    match = re.match(r"^(\d{1,12})(?:\.(\d{1,9})\d*)?$", value)
    if match:
        return int(match.group(1)) * 1000000000 + int((match.group(2) or "").ljust(9, "0") or 0)
    match = re.match(r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9})\d*)?(Z|z|[+-]\d\d:?\d\d)$", value)
    if match:
        y, mo, d, h, mi, s, frac, zone = match.groups()
        seconds = _timegm(y, mo, d, h, mi, s)
        if seconds is None:
            return None
        if zone not in ("Z", "z"):
            sign = 1 if zone[0] == "+" else -1
            zone = zone[1:].replace(":", "")
            seconds -= sign * (int(zone[:2]) * 3600 + int(zone[2:]) * 60)
        return seconds * 1000000000 + int((frac or "").ljust(9, "0") or 0)
    return None


def _timegm(*fields):
    """Seconds since the epoch of a UTC date and time given as digit strings, or None when the
    date does not exist (month 13, year 0)."""
    try:
        return calendar.timegm(tuple(int(field) for field in fields))
    except ValueError:
        return None


_MONTHS = dict((name, number) for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1))
_IMF_DATE = re.compile(r"^[A-Za-z]{3}, (\d{1,2}) ([A-Za-z]{3}) (\d{4}) (\d\d):(\d\d):(\d\d) GMT$")


def parse_http_date_ns(value):
    """Nanoseconds from a Last-Modified header (RFC 7231) or a listing's ISO 8601 time."""
    if not value:
        return None
    if value[:1].isdigit():
        return parse_epoch_ns(value)
    match = _IMF_DATE.match(value)
    if match and match.group(2) in _MONTHS:
        day, month, year, hour, minute, second = match.groups()
        seconds = _timegm(year, _MONTHS[month], day, hour, minute, second)
        return None if seconds is None else seconds * 1000000000
    from email.utils import parsedate_tz, mktime_tz  # the obsolete RFC 850 / asctime forms
    parsed = parsedate_tz(value)
    if parsed is None:
        return None
    return int(mktime_tz(parsed)) * 1000000000


def safe_mode(mode, is_dir):
    """The permission bits applied for ``mode`` asked by an uploader: no setuid/setgid/sticky,
    no group or world write, and the owner keeps rw (files) or rwx (directories), so that no
    object's metadata can make the tree writable by others or lock out the next run."""
    return (mode & NO_SHARED_WRITE) | (OWNER_DIR if is_dir else OWNER_FILE)


def parse_s3cmd_attrs(value):
    attrs = {}
    for item in value.split("/"):
        name, sep, val = item.partition(":")
        if sep:
            attrs[name.strip()] = val.strip()
    return attrs


class Attributes:
    """What the local entry must look like: kind ('f' file, 'l' symlink, 'd' directory),
    permission bits, mtime (ns) and symlink target."""

    __slots__ = ("kind", "mode", "mtime_ns", "target")

    def __init__(self, kind, mode, mtime_ns, target=None):
        self.kind = kind
        self.mode = mode
        self.mtime_ns = mtime_ns
        self.target = target


def object_attributes(headers, is_dir=False, warnings=None):
    """:class:`Attributes` from a GET/HEAD response's (lower-cased) headers.

    Precedence: ``mode``/``mtime`` metadata, then ``s3cmd-attrs``, then the defaults
    (0644 files, 0755 directories) and ``Last-Modified``.
    """
    meta_mode = headers.get("x-amz-meta-" + META_MODE)
    meta_mtime = headers.get("x-amz-meta-" + META_MTIME)
    s3cmd = headers.get("x-amz-meta-" + META_S3CMD)
    link = headers.get("x-amz-meta-" + META_SYMLINK)
    mode = mtime = None
    if meta_mode is not None:
        mode = parse_mode(meta_mode)
        if mode is None and warnings is not None:
            warnings.append("ignored unparsable mode metadata %r" % display(meta_mode))
    if meta_mtime is not None:
        mtime = parse_epoch_ns(meta_mtime)
        if mtime is None and warnings is not None:
            warnings.append("ignored unparsable mtime metadata %r" % display(meta_mtime))
    if s3cmd is not None and (mode is None or mtime is None):
        attrs = parse_s3cmd_attrs(s3cmd)
        if mode is None and attrs.get("mode", "").isdigit():
            mode = int(attrs["mode"]) & MODE_MASK
        if mtime is None and attrs.get("mtime", "").isdigit():
            mtime = int(attrs["mtime"]) * 1000000000
    if mtime is None:
        mtime = parse_http_date_ns(headers.get("last-modified"))
    if mtime is None:
        mtime = int(time.time()) * 1000000000
    if is_dir:
        return Attributes(KIND_DIR, DEFAULT_DIR_MODE if mode is None else safe_mode(mode, True), mtime)
    if link is not None:
        try:
            target = unquote(link, errors="strict")
        except UnicodeDecodeError:
            target = None
        return Attributes(KIND_LINK, 0o777, mtime, target if target is not None else "")
    return Attributes(KIND_FILE, DEFAULT_FILE_MODE if mode is None else safe_mode(mode, False), mtime)
