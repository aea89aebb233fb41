# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""S3 sync engine: make a directory an exact, safe mirror of an S3 prefix.

Internal to sharedsw.cvmfs; may change in any release. No Ansible import: the module
``sharedsw.cvmfs.s3_sync`` and the command line (``_s3_sync_cli``) both call :func:`sync`.

How a run goes (all-or-nothing):

1. **Survey.** A thread lists the prefix (ListObjectsV2, URL-encoded keys, parsed with
   ElementTree) while the main thread walks ``dest`` (``lstat`` only, never following links)
   and loads the state file. Every key is validated as soon as its page arrives; objects that
   must be fetched are queued to the workers at once, so downloads overlap the listing.
2. **Fetch.** Worker threads GET new/changed objects into a staging directory
   ``<dest>/.s3sync-staging.*`` (same file system, so the final step is a rename), or HEAD
   objects whose metadata may have changed. Big objects go through boto3's transfer manager.
   In check mode nothing is downloaded: new or changed objects are only HEADed.
3. **Validate.** Rules that need the whole listing (file/directory collisions, case-only
   duplicates, file keys that would replace a directory holding excluded content) and the
   metadata (symlink targets) run. With ``on_invalid=fail`` any rejected key ends the run
   here: the staging directory is removed and nothing at a final path was touched.
4. **Apply.** First the plan is checked against the local permissions (every directory to
   write into writable and on the staging directory's file system, every path whose mode is
   set owned by us): a run that could not finish fails before changing anything. Then
   directory modes are fixed, paths whose type changed are removed, directories created,
   staged files renamed into place (each ``rename`` is atomic: a reader sees the old or the
   new complete file, never a part), symlinks replaced atomically, modes and mtimes fixed,
   and (with ``delete``) what disappeared from S3 removed. Then the state file is written.

"Unchanged" is decided from the state file (key -> ETag, size, LastModified, and the mode,
mtime and symlink target we gave the local file), checked against ``lstat`` of the local
path, so a reverted transaction or a hand edit is noticed. Without a state entry that vouches
for the local file, a local file of the same size is kept (and only its mode/mtime fixed) when
its MD5 equals the object's ETag, or, for multipart ETags that are no MD5, when its mtime
matches the object's: an unchanged file is never rewritten.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fnmatch
import hashlib
import json
import os
import posixpath
import re
import stat
import threading
import time
import unicodedata

try:
    from queue import SimpleQueue
except ImportError:  # pragma: no cover - Python < 3.7
    from queue import Queue as SimpleQueue


from ._common import CvmfsError
from ._s3_http import (Endpoint, FastS3, S3Retry, S3HTTPError, SigV4, TransportError, decode_url_key, uri_encode,
                       write_all)

try:
    from urllib.parse import urlsplit
except ImportError:  # pragma: no cover
    raise

# --------------------------------------------------------------------------------------------
# Conventions (documented in the module's DOCUMENTATION)

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

STAGING_PREFIX = ".s3sync-staging."
BUFFERED = 1024 * 1024             # objects up to this size are written with one write()
LISTERS = 8                        # parallel listings of the top-level common prefixes
INSTALLERS = 4                     # threads renaming staged files into place
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
MAX_SEGMENT = 255
MAX_PATH = 4000
MAX_SYMLINK = 4095
STATE_FORMAT = 1

_CONTROL = re.compile(u"[\x00-\x1f\x7f-\x9f]")
_PLAIN_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


def display(text):
    """A key or path safe to print: control characters and undecodable bytes escaped."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "backslashreplace")
    if _CONTROL.search(text) or u"\\" in text:
        return text.encode("unicode_escape").decode("ascii")
    return text


# --------------------------------------------------------------------------------------------
# Key validation


def check_key(rel):
    """Validate the part of a key below the prefix (``bytes``).

    Returns ``(path, is_dir, reason)``: ``path`` is the relative path as ``str`` (without the
    trailing ``/`` of a directory marker), ``reason`` is None for an acceptable key. The empty
    path (the prefix's own directory marker) comes back as ``("", True, None)``.
    """
    try:
        text = rel.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, False, "invalid UTF-8 (byte 0x%02x at offset %d)" % (rel[error.start], error.start)
    match = _CONTROL.search(text)
    if match:
        return None, False, "control character U+%04X (NUL, newline, escape and the like are refused)" % ord(match.group())
    is_dir = text.endswith("/")
    path = text[:-1] if is_dir else text
    if not path:
        if is_dir and text == "/":
            return None, True, "absolute path (the key starts with '/' after the prefix)"
        return "", True, None
    if path.startswith("/"):
        return None, is_dir, "absolute path (the key starts with '/' after the prefix)"
    segments = path.split("/")
    for segment in segments:
        if not segment:
            return None, is_dir, "empty path segment ('//')"
        if segment == "." or segment == "..":
            return None, is_dir, "'%s' path segment" % segment
        if len(segment.encode("utf-8")) > MAX_SEGMENT:
            return None, is_dir, "path segment longer than %d bytes" % MAX_SEGMENT
    if len(path.encode("utf-8")) > MAX_PATH:
        return None, is_dir, "path longer than %d bytes" % MAX_PATH
    if segments[0].startswith(STAGING_PREFIX):
        return None, is_dir, "name reserved for s3_sync's staging directory (%s*)" % STAGING_PREFIX
    return path, is_dir, None


def check_symlink(path, target, dest, root, allow_escape=False):
    """Reason why the symlink at relative ``path`` (below absolute ``dest``) may not point to
    ``target``, or None. ``root`` is the absolute directory links must stay inside.

    Targets are resolved lexically from the link's own directory. ``..`` may only lead a
    relative target (``../../lib/x``): after a name it could climb out through a symlinked
    directory (``d/../..`` with ``d -> .``), which no lexical check can see.
    """
    if not target:
        return "empty symlink target"
    match = _CONTROL.search(target)
    if match:
        return "symlink target contains control character U+%04X" % ord(match.group())
    if len(target.encode("utf-8")) > MAX_SYMLINK:
        return "symlink target longer than %d bytes" % MAX_SYMLINK
    if allow_escape:
        return None
    if target.startswith("/"):
        resolved = []
    else:
        resolved = [s for s in posixpath.join(dest, posixpath.dirname(path)).split("/") if s]
    named = False
    for segment in target.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if named:
                return "symlink target %r has '..' after a name" % display(target)
            if not resolved:
                return "symlink target %r climbs above /" % display(target)
            resolved.pop()
        else:
            named = True
            resolved.append(segment)
    root_parts = [s for s in root.split("/") if s]
    if resolved[:len(root_parts)] != root_parts:
        return "symlink target %r points outside %s" % (display(target), root)
    return None


# --------------------------------------------------------------------------------------------
# Metadata


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
        seconds = _timegm(int(y), int(mo), int(d), int(h), int(mi), int(s))
        if zone not in ("Z", "z"):
            sign = 1 if zone[0] == "+" else -1
            zone = zone[1:].replace(":", "")
            seconds -= sign * (int(zone[:2]) * 3600 + int(zone[2:]) * 60)
        return seconds * 1000000000 + int((frac or "").ljust(9, "0") or 0)
    return None


def _timegm(year, month, day, hour, minute, second):
    """calendar.timegm without importing calendar (days from the civil date, proleptic)."""
    year -= month <= 2
    era = (year if year >= 0 else year - 399) // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return ((days * 24 + hour) * 60 + minute) * 60 + second


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
        return _timegm(int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second)) * 1000000000
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
        return Attributes("d", DEFAULT_DIR_MODE if mode is None else safe_mode(mode, True), mtime)
    if link is not None:
        try:
            from urllib.parse import unquote
            target = unquote(link, errors="strict")
        except UnicodeDecodeError:
            target = None
        return Attributes("l", 0o777, mtime, target if target is not None else "")
    return Attributes("f", DEFAULT_FILE_MODE if mode is None else safe_mode(mode, False), mtime)


# --------------------------------------------------------------------------------------------
# Filters


class PathFilter:
    """Include/exclude globs (fnmatch; ``*`` also matches ``/``) on paths below the prefix.

    A pattern matches a path when it matches the path or one of its parent directories.
    A path is selected when it matches an include (or there are none) and no exclude.
    """

    def __init__(self, include=None, exclude=None):
        self.include = self._compile(include)
        self.exclude = self._compile(exclude)

    @staticmethod
    def _compile(patterns):
        patterns = [p.strip("/") for p in (patterns or []) if p and p.strip("/")]
        if not patterns:
            return None
        return re.compile("|".join("(?:%s)" % fnmatch.translate(p) for p in patterns), re.S).match

    @staticmethod
    def _any(match, path):
        if match(path):
            return True
        index = path.rfind("/")
        while index > 0:
            if match(path[:index]):
                return True
            index = path.rfind("/", 0, index)
        return False

    def excluded(self, path):
        return self.exclude is not None and self._any(self.exclude, path)

    def selected(self, path):
        if self.include is not None and not self._any(self.include, path):
            return False
        return not self.excluded(path)


# --------------------------------------------------------------------------------------------
# State file


class State:
    """key -> [etag, size, last_modified, mtime_s, mode, target] for what we last wrote."""

    def __init__(self, path, source):
        self.path = path
        self.source = source
        self.objects = {}
        self.loaded = False

    def load(self):
        try:
            with open(self.path, "rb") as handle:
                data = json.loads(handle.read().decode("utf-8"))
        except (IOError, OSError) as error:
            if error.errno == errno.ENOENT:
                return self
            raise CvmfsError("cannot read the state file %s: %s" % (self.path, error), exception=error)
        except ValueError:
            return self  # corrupt: start over (the size+mtime fallback keeps files untouched)
        if isinstance(data, dict) and data.get("format") == STATE_FORMAT and data.get("source") == self.source:
            objects = data.get("objects")
            if isinstance(objects, dict):
                self.objects = objects
                self.loaded = True
        return self

    def save(self, objects):
        directory = os.path.dirname(self.path)
        if directory and not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        tmp = "%s.tmp.%d" % (self.path, os.getpid())
        payload = json.dumps({"format": STATE_FORMAT, "source": self.source, "objects": objects},
                             separators=(",", ":"), sort_keys=True).encode("utf-8")
        # no fsync: a state file torn by a crash is unreadable JSON, which counts as no state,
        # and then the MD5/mtime fallback keeps unchanged files untouched
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            write_all(fd, payload)
        finally:
            os.close(fd)
        os.rename(tmp, self.path)


def default_state_file(dest, source):
    digest = hashlib.sha256((os.path.abspath(dest) + "\0" + source).encode("utf-8")).hexdigest()[:24]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        base = "/var/lib/sharedsw-cvmfs/s3-sync"
    else:
        base = os.path.join(os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"),
                            "sharedsw-cvmfs", "s3-sync")
    return os.path.join(base, digest + ".json")


def is_inside(path, directory):
    path = os.path.abspath(path)
    directory = os.path.abspath(directory)
    return path == directory or path.startswith(directory.rstrip("/") + "/")


# --------------------------------------------------------------------------------------------
# The run


class Options:
    """Sync options (see the module documentation for each)."""

    def __init__(self, bucket, dest, prefix="cvmfs/", delete=True, include=None, exclude=None,
                 max_workers=32, state_file=None, on_invalid="fail", symlink_root=None,
                 allow_symlink_escape=False, reject_case_conflicts=False,
                 multipart_threshold=64 * 1024 * 1024, multipart_chunksize=16 * 1024 * 1024,
                 verify_checksum=True, retries=5, max_reported=100, check_mode=False, diff=False,
                 on_missing="fail"):
        if on_invalid not in ("fail", "skip"):
            raise CvmfsError("on_invalid must be 'fail' or 'skip', not %r" % (on_invalid,))
        if on_missing not in ("fail", "warn"):
            raise CvmfsError("on_missing must be 'fail' or 'warn', not %r" % (on_missing,))
        if not bucket:
            raise CvmfsError("bucket must be given")
        if not dest:
            raise CvmfsError("dest must be given")
        if max_workers < 1 or max_workers > 256:
            raise CvmfsError("max_workers must be between 1 and 256, not %r" % (max_workers,))
        prefix = prefix or ""
        if prefix.startswith("/"):
            raise CvmfsError("prefix %r must not start with '/'; S3 keys have no leading slash" % prefix)
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.bucket = bucket
        self.dest = os.path.abspath(dest)
        self.prefix = prefix
        self.delete = delete
        self.filter = PathFilter(include, exclude)
        self.max_workers = max_workers
        self.state_file = state_file
        self.on_invalid = on_invalid
        self.on_missing = on_missing
        self.symlink_root = os.path.abspath(symlink_root) if symlink_root else self.dest
        self.allow_symlink_escape = allow_symlink_escape
        self.reject_case_conflicts = reject_case_conflicts
        self.multipart_threshold = max(int(multipart_threshold), 5 * 1024 * 1024)
        self.multipart_chunksize = max(int(multipart_chunksize), 5 * 1024 * 1024)
        self.verify_checksum = verify_checksum
        self.retries = retries
        self.max_reported = max_reported
        self.check_mode = check_mode
        self.diff = diff


class Entry:
    """One selected S3 object (file, symlink or directory marker) and what to do with it."""

    __slots__ = ("name", "path", "key", "is_dir", "size", "etag", "last_modified", "local", "state",
                 "action", "attrs", "staged", "bytes", "reason")

    def __init__(self, path, key, is_dir, listed):
        self.name = path + "/" if is_dir else path  # the state file's key
        self.path = path
        self.key = key
        self.is_dir = is_dir
        self.size = listed.size
        self.etag = listed.etag
        self.last_modified = listed.last_modified
        self.local = None
        self.state = None
        self.action = None    # keep | fetch | probe | meta | vanished (see Sync._decide)
        self.attrs = None
        self.staged = None
        self.bytes = 0
        self.reason = None    # set when the key is rejected (never cleared)


# local tree entries: (kind, size, mtime_ns, mode)
KIND_FILE, KIND_LINK, KIND_DIR, KIND_OTHER = "f", "l", "d", "o"


def _kind(mode):
    if stat.S_ISREG(mode):
        return KIND_FILE
    if stat.S_ISDIR(mode):
        return KIND_DIR
    if stat.S_ISLNK(mode):
        return KIND_LINK
    return KIND_OTHER


def walk(dest, path_filter):
    """Local tree below ``dest``.

    Returns ``(tree, pinned, stale)``: ``tree`` maps relative paths to
    ``(kind, size, mtime_ns, mode)``; ``pinned`` holds directories that contain excluded
    entries (never removed); ``stale`` lists leftover staging directories. Symlinks are never
    followed and excluded subtrees are not entered. Anything else with the staging
    directory's reserved name at the top is in ``tree`` whatever the filters say (the plan
    always removes it: no key can give it, so nothing else would).
    """
    tree = {}
    pinned = set()
    stale = []
    stack = [("", dest)]
    excluding = path_filter.exclude is not None
    while stack:
        rel, directory = stack.pop()
        try:
            iterator = os.scandir(directory)
        except OSError as error:
            raise CvmfsError("cannot read directory %s: %s" % (directory, error), exception=error)
        with iterator:
            for item in iterator:
                name = item.name
                path = rel + "/" + name if rel else name
                reserved = not rel and name.startswith(STAGING_PREFIX)
                if reserved and item.is_dir(follow_symlinks=False):
                    stale.append(item.path)
                    continue
                if excluding and not reserved and path_filter.excluded(path):
                    index = path.rfind("/")
                    while index > 0:
                        pinned.add(path[:index])
                        index = path.rfind("/", 0, index)
                    continue
                st = item.stat(follow_symlinks=False)
                kind = _kind(st.st_mode)
                tree[path] = (kind, st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode))
                if kind == KIND_DIR:
                    stack.append((path, item.path))
    return tree, pinned, stale


def _rmtree(path, ignore_errors=False):
    import shutil  # only when something is removed: shutil imports lzma/bz2 (~20 ms of CPU)
    shutil.rmtree(path, ignore_errors=ignore_errors)


def _seconds(ns):
    return ns // 1000000000


def _parents(path):
    index = path.rfind("/")
    while index > 0:
        yield path[:index]
        index = path.rfind("/", 0, index)


def _is_reserved(path):
    """A top-level name that belongs to the staging directory (no key may give it)."""
    return "/" not in path and path.startswith(STAGING_PREFIX)


class _Abort(Exception):
    pass


class Sync:
    """One run over ``fast`` (a :class:`~._s3_http.FastS3`, or anything with ``list_page``,
    ``head`` and ``get``); ``client_factory`` returns a boto3 S3 client for big objects."""

    def __init__(self, options, fast, source, client_factory=None, log=None, keys=None):
        self.o = options
        self.keys = _KeysMode(options, keys) if keys is not None else None
        self.fast = fast
        self.source = source
        self.client_factory = client_factory
        self.log = log or (lambda message: None)
        self.rejections = []      # (key for display, reason, size)
        self.missing = []         # (key for display, listed size): listed, but gone when fetched
        self.warnings = []
        self.entries = {}         # entry.name -> Entry ("dir/" for directory markers)
        self.errors = []
        self.staging = None
        self._seq = 0
        self._queued = 0
        self._pending = 0
        self._listed = False
        self._lock = threading.Lock()
        self._abort = threading.Event()       # a fatal error: stop everything
        self._no_fetch = threading.Event()    # a rejection under on_invalid=fail: HEAD, don't download
        self._all_done = threading.Event()
        self._transfer = None
        self._transfer_lock = threading.Lock()
        self._umask = os.umask(0o022)
        os.umask(self._umask)
        retry = S3Retry.backoff(retries=options.retries, delay=0.25, max_delay=10.0)
        self._list_page = retry(fast.list_page)
        self._head_key = retry(fast.head)
        self._get_small = retry(self._fetch_small)
        self._get_big = retry(self._fetch_big)

    # ---------------------------------------------------------------- helpers

    def _reject(self, key, reason, size=0, entry=None):
        self.rejections.append((key, reason, size))
        if entry is not None:
            entry.reason = reason
        if self.o.on_invalid == "fail":
            self._no_fetch.set()

    def _vanished(self, entry):
        """The key was listed but is gone now (404 on HEAD or GET): deleted or replaced while we
        ran. Never silent: reported, and with on_missing=fail nothing is written."""
        entry.action = "vanished"
        with self._lock:
            self.missing.append((display(entry.key), entry.size))
        if self.o.on_missing == "fail":
            self._no_fetch.set()

    def _full_key(self, path, is_dir=False):
        return self.o.prefix + path + ("/" if is_dir else "")

    # ---------------------------------------------------------------- survey

    def _list(self, pages, _list_page=None):
        """Feed listing pages to ``pages``, then None (or the exception that stopped it).

        A plain listing is sequential (each page needs the previous page's token) and for a
        no-op sync it is the whole wall time. So the top level is listed with delimiter "/",
        and every common prefix is then listed in full by LISTERS threads in parallel: by S3's
        definition the union is exactly the full listing.
        """
        try:
            prefixes = []
            delimited = getattr(self.fast, "supports_delimiter", False)
            token = None
            while not self._abort.is_set():
                if delimited:
                    objects, token = self._list_page(self.o.prefix, token, prefixes)
                else:
                    objects, token = self._list_page(self.o.prefix, token)
                pages.put(objects)
                if not token:
                    break
            if prefixes:
                work = SimpleQueue()
                for prefix in prefixes:
                    work.put(prefix)
                failures = []
                threads = [threading.Thread(target=self._list_prefixes, args=(work, pages, failures),
                                            name="s3sync-list-%d" % n) for n in range(min(LISTERS, len(prefixes)))]
                for thread in threads:
                    thread.daemon = True
                    thread.start()
                for thread in threads:
                    thread.join()
                if failures:
                    raise failures[0]
            pages.put(None)
        except BaseException as error:  # pylint: disable=broad-except
            self._abort.set()
            pages.put(error)

    def _list_prefixes(self, work, pages, failures):
        while not (self._abort.is_set() or failures):
            try:
                prefix = work.get(False)
            except Exception:  # pylint: disable=broad-except  # queue.Empty
                return
            token = None
            try:
                while not self._abort.is_set():
                    objects, token = self._list_page(prefix, token)
                    pages.put(objects)
                    if not token:
                        break
            except Exception as error:  # pylint: disable=broad-except
                failures.append(error)
                return

    def _decide(self, entry):
        """Set ``entry.action`` from the listing, the state and ``lstat``: 'keep' (unchanged),
        'fetch' (new or changed content) or 'probe' (HEAD first: maybe only metadata changed,
        or there is no state to tell)."""
        local = entry.local
        state = entry.state
        if entry.is_dir:
            if state is not None and state[0] == entry.etag and state[2] == entry.last_modified \
                    and local is not None and local[0] == KIND_DIR and local[3] == state[4] \
                    and local[3] == safe_mode(local[3], True):
                entry.action = "keep"
            else:
                entry.action = "probe"
            return
        if local is None:
            entry.action = "fetch"
            return
        if state is not None:
            kind = KIND_LINK if state[5] is not None else KIND_FILE
            vouched = local[0] == kind and _seconds(local[2]) == state[3] and local[3] == state[4] \
                and (kind == KIND_LINK or (local[1] == state[1] and local[3] == safe_mode(local[3], False)))
            # (a mode no run applies today, e.g. 0666 from an older version, is probed and fixed)
            if vouched and (state[0] != entry.etag or state[1] != entry.size):
                entry.action = "fetch"  # the local file is what we wrote; the object changed since
                return
            if vouched:
                entry.action = "keep" if state[2] == entry.last_modified else "probe"
                if kind == KIND_LINK:
                    try:
                        if os.readlink(os.path.join(self.o.dest, entry.path)) != state[5]:
                            entry.action = "probe"
                    except OSError:
                        entry.action = "fetch"
                return
        entry.action = "probe" if local[0] in (KIND_FILE, KIND_LINK) else "fetch"

    # ---------------------------------------------------------------- workers

    def _staged_name(self):
        with self._lock:
            self._seq += 1
            seq = self._seq
        return os.path.join(self.staging, "%06d" % seq)

    def _worker(self, jobs):
        while True:
            entry = jobs.get()
            if entry is None:
                return
            try:
                if not (self._abort.is_set() or entry.reason is not None):
                    if entry.action == "probe":
                        self._probe(entry)
                    if entry.action == "fetch":
                        self._fetch(entry)
            except _Abort:
                pass
            except Exception as error:  # pylint: disable=broad-except
                self.errors.append((entry, error))
                self._abort.set()
            with self._lock:
                self._pending -= 1
                if self._pending == 0 and self._listed:
                    self._all_done.set()

    def _probe(self, entry):
        headers = self._head_key(self._full_key(entry.path, entry.is_dir))
        if headers is None:
            self._vanished(entry)
            return
        entry.etag = headers.get("etag", entry.etag).strip('"')
        if headers.get("content-length", "").isdigit():
            entry.size = int(headers["content-length"])
        attrs = object_attributes(headers, entry.is_dir, self.warnings)
        entry.attrs = attrs
        local = entry.local
        if entry.is_dir:
            entry.action = "keep" if local is not None and local[0] == KIND_DIR and local[3] == attrs.mode else "meta"
            return
        if local is None or local[0] != attrs.kind:
            entry.action = "fetch"
            return
        if attrs.kind == KIND_LINK:
            try:
                current = os.readlink(os.path.join(self.o.dest, entry.path))
            except OSError:
                current = None
            if current != attrs.target:
                entry.action = "fetch"
                return
        else:
            if local[1] != entry.size:
                entry.action = "fetch"
                return
            state = entry.state
            known = state is not None and state[0] == entry.etag and state[1] == entry.size \
                and _seconds(local[2]) == state[3]
            if not known:
                # no state vouches for the local file: same content? With a plain-MD5 ETag
                # compare digests; otherwise (multipart ETag) fall back to size + mtime
                if _PLAIN_MD5.match(entry.etag):
                    if self._local_md5(entry.path) != entry.etag.lower():
                        entry.action = "fetch"
                        return
                elif _seconds(local[2]) != _seconds(attrs.mtime_ns):
                    entry.action = "fetch"
                    return
        if _seconds(local[2]) == _seconds(attrs.mtime_ns) and (attrs.kind == KIND_LINK or local[3] == attrs.mode):
            entry.action = "keep"
        else:
            entry.action = "meta"

    def _local_md5(self, path):
        digest = hashlib.md5()
        try:
            with open(os.path.join(self.o.dest, path), "rb") as handle:
                for block in iter(lambda: handle.read(1048576), b""):
                    digest.update(block)
        except (IOError, OSError):
            return None
        return digest.hexdigest()

    def _fetch(self, entry):
        key = self._full_key(entry.path, entry.is_dir)
        if self.o.check_mode or entry.is_dir or self._no_fetch.is_set():
            # check mode, or a run that will fail on rejected keys: learn the metadata (symlink
            # targets are checked) without downloading
            if entry.attrs is None:
                headers = self._head_key(key)
                if headers is None:
                    self._vanished(entry)
                    return
                entry.attrs = object_attributes(headers, entry.is_dir, self.warnings)
                entry.etag = headers.get("etag", entry.etag).strip('"')
            if entry.attrs.kind == KIND_FILE:
                entry.bytes = entry.size
            return
        if entry.size >= self.o.multipart_threshold:
            self._get_big(entry, key)
        else:
            self._get_small(entry, key)

    def _fetch_small(self, entry, key):
        """GET into the staging directory. A body that stays within BUFFERED bytes is collected
        in memory and written with one ``write`` into a file created with its final mode
        (symlink objects never touch the disk here); a longer one is streamed to the file from
        the moment it passes BUFFERED, whatever size the listing gave (an object can grow
        between the listing and the GET)."""
        if self._abort.is_set():
            raise _Abort()

        def open_staged():
            if entry.staged is None:
                entry.staged = self._staged_name()
            return os.open(entry.staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_CLOEXEC, 0o600)

        body = _Spool(open_staged, BUFFERED, hashlib.md5() if self.o.verify_checksum else None)
        try:
            headers = self.fast.get(key, body.write)
            if headers is None:
                self._vanished(entry)
                return
            self._check_body(key, headers, body.size, body.digest)
            if body.fd is None:
                self._write_buffered(entry, headers, body.buffered())
            else:
                self._finish_file(entry, body.fd, headers, body.size)
        finally:
            body.close()

    def _write_buffered(self, entry, headers, data):
        attrs = self._take_headers(entry, headers, len(data))
        if attrs.kind != KIND_FILE:
            return
        reused = entry.staged is not None  # by an earlier attempt: its mode is not ours yet
        if not reused:
            entry.staged = self._staged_name()
        fd = os.open(entry.staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_CLOEXEC, attrs.mode)
        try:
            if data:
                write_all(fd, data)
            if reused or attrs.mode & self._umask:
                os.fchmod(fd, attrs.mode)
            os.utime(fd, ns=(attrs.mtime_ns, attrs.mtime_ns))
        finally:
            os.close(fd)

    @staticmethod
    def _check_body(key, headers, size, digest):
        length = headers.get("content-length")
        if length is not None and int(length) != size:
            raise TransportError("GET %s: got %d of %s bytes" % (display(key), size, length))
        etag = headers.get("etag", "").strip('"')
        if digest is not None and _PLAIN_MD5.match(etag) and digest.hexdigest() != etag.lower():
            raise TransportError("GET %s: MD5 %s does not match ETag %s" % (display(key), digest.hexdigest(), etag))

    def _take_headers(self, entry, headers, size):
        attrs = object_attributes(headers, False, self.warnings)
        entry.attrs = attrs
        entry.etag = headers.get("etag", entry.etag).strip('"')
        entry.size = size
        entry.bytes = size if attrs.kind == KIND_FILE else 0
        return attrs

    def _finish_file(self, entry, fd, headers, size):
        attrs = self._take_headers(entry, headers, size)
        if attrs.kind == KIND_FILE:
            os.fchmod(fd, attrs.mode)
            os.utime(fd, ns=(attrs.mtime_ns, attrs.mtime_ns))

    def _transfer_manager(self):
        with self._transfer_lock:
            if self._transfer is None:
                from s3transfer.manager import TransferConfig, TransferManager
                # max_io_queue_size bounds the chunks held in memory (default 1000 x 256 KiB:
                # three parallel 128 MiB downloads peaked at 350 MiB RSS; with 32: 60 MiB)
                config = TransferConfig(multipart_threshold=self.o.multipart_threshold,
                                        multipart_chunksize=self.o.multipart_chunksize,
                                        max_request_concurrency=min(self.o.max_workers, 10),
                                        max_io_queue_size=32,
                                        num_download_attempts=self.o.retries + 1)
                self._transfer = TransferManager(self.client_factory(), config)
            return self._transfer

    def _fetch_big(self, entry, key):
        """Big objects: boto3's transfer manager (ranged GETs in parallel, retried per part),
        streamed to the staged file; a HEAD before and after proves it is one version."""
        if self._abort.is_set():
            raise _Abort()
        before = self.fast.head(key)
        if before is None:
            self._vanished(entry)
            return
        if entry.staged is None:
            entry.staged = self._staged_name()
        with open(entry.staged, "wb") as handle:
            future = self._transfer_manager().download(self.o.bucket, key, handle)
            try:
                future.result()
            except Exception as error:  # pylint: disable=broad-except
                raise _big_error(key, error)
            handle.flush()
            after = self.fast.head(key)
            if after is None or after.get("etag") != before.get("etag"):
                raise TransportError("GET %s: the object changed during the download" % display(key))
            size = os.fstat(handle.fileno()).st_size
            if size != int(before.get("content-length", size)):
                raise TransportError("GET %s: got %d of %s bytes" % (display(key), size, before.get("content-length")))
            etag = before.get("etag", "").strip('"')
            if self.o.verify_checksum and _PLAIN_MD5.match(etag):
                digest = hashlib.md5()
                with open(entry.staged, "rb") as check:
                    for block in iter(lambda: check.read(4194304), b""):
                        digest.update(block)
                if digest.hexdigest() != etag.lower():
                    raise TransportError("GET %s: MD5 does not match ETag %s" % (display(key), etag))
            self._finish_file(entry, handle.fileno(), before, size)

    # ---------------------------------------------------------------- main

    def run(self):
        started = time.time()
        o = self.o
        if os.path.lexists(o.dest) and not os.path.isdir(o.dest):
            raise CvmfsError("dest %s exists and is not a directory; give a directory to mirror into" % o.dest)
        if not os.path.isdir(o.dest) and not os.path.isdir(os.path.dirname(o.dest)):
            raise CvmfsError("dest %s does not exist and neither does its parent; create the parent first" % o.dest)
        state_path = os.path.abspath(o.state_file or default_state_file(o.dest, self.source))
        if is_inside(state_path, o.dest):
            raise CvmfsError("state_file %s is inside dest %s; it must live outside the mirrored "
                             "directory (it would be published)" % (state_path, o.dest))
        lock = _StateLock(state_path)
        lock.acquire()
        try:
            state = State(state_path, self.source).load()
            result = self._run(state)
        finally:
            lock.release()
        result["duration"] = round(time.time() - started, 3)
        result["state_file"] = state_path
        return result

    def _run(self, state):
        o = self.o
        pages = SimpleQueue()
        lister = threading.Thread(target=self._list if self.keys is None else self.keys.list_keys,
                                  args=(pages, self._list_page), name="s3sync-list")
        lister.daemon = True
        lister.start()

        if self.keys is not None:
            tree, pinned, stale = self.keys.walk()
        elif os.path.isdir(o.dest):
            tree, pinned, stale = walk(o.dest, o.filter)
        else:
            tree, pinned, stale = {}, set(), []
        jobs = SimpleQueue()
        workers = []
        dest_lock = None
        try:
            if not o.check_mode:
                if not os.path.isdir(o.dest):
                    os.mkdir(o.dest, DEFAULT_DIR_MODE)
                dest_lock = _lock_directory(o.dest)
                for path in stale:
                    _rmtree(path, ignore_errors=True)
                self.staging = _make_staging(o.dest)
            for number in range(o.max_workers):
                worker = threading.Thread(target=self._worker, args=(jobs,), name="s3sync-%d" % number)
                worker.daemon = True
                worker.start()
                workers.append(worker)
            self.log("local tree: %d entries; state: %d entries" % (len(tree), len(state.objects)))
            self._survey(pages, jobs, tree, state)
            self.log("listed %d selected keys, %d to fetch or probe, %d rejected so far"
                     % (len(self.entries), self._queued, len(self.rejections)))
            while not self._all_done.wait(0.5):
                pass
            if self.errors:
                entry, error = self.errors[0]
                extra = dict(getattr(error, "extra", {}))
                extra["key"] = display(entry.key)
                message = getattr(error, "message", None) or str(error)
                raise CvmfsError("syncing s3://%s/%s failed (after %d retries where retrying made sense): %s"
                                 % (o.bucket, display(entry.key), o.retries, message),
                                 exception=getattr(error, "exception", None) or error, **extra)
            if self.keys is not None:
                self.keys.check_conflicts()
            else:
                self._validate_type_changes(pinned)
            # after a rejection under on_invalid=fail the workers only HEADed (no download), so
            # every symlink target is known and judged now, not one run later
            self._validate_metadata()
            if self.rejections and o.on_invalid == "fail":
                raise self._rejection_error()
            if self.missing and o.on_missing == "fail":
                raise self._missing_error()
            plan = self._plan(tree, pinned)
            if self.keys is not None:
                self.keys.adjust_plan(plan, self.entries, self._list_page)
            self.log("plan: %d to add, %d to update, %d to delete" % (
                len(plan["added"]), len(plan["updated"]), len(plan["deleted"])))
            if not o.check_mode:
                problems = _local_problems(o.dest, plan, tree, os.lstat(self.staging).st_dev)
                if problems:
                    raise self._local_problems_error(problems)
                try:
                    self._apply(plan)
                except (OSError, IOError) as error:
                    raise CvmfsError("applying the sync into %s failed part-way: %s. Paths already done are "
                                     "new, the others old; every file is complete. Fix the cause and run "
                                     "again to finish." % (o.dest, error), exception=error, partially_applied=True)
                self.log("applied")
                self._save_state(state)
            return self._result(plan)
        except BaseException:
            self._abort.set()
            raise
        finally:
            for unused in workers:
                jobs.put(None)
            deadline = time.time() + 30  # a worker stuck on a dead server must not hold us long
            for worker in workers:
                worker.join(max(0.1, deadline - time.time()))
            self._cleanup()
            if dest_lock is not None:
                os.close(dest_lock)

    def _survey(self, pages, jobs, tree, state):
        o = self.o
        prefix_len = len(o.prefix.encode("utf-8"))
        entries = self.entries
        objects_state = state.objects
        selected = o.filter.selected if (o.filter.include or o.filter.exclude) else None
        while True:
            page = pages.get()
            if page is None:
                break
            if isinstance(page, BaseException):
                if isinstance(page, CvmfsError):
                    raise page
                raise CvmfsError("listing s3://%s/%s failed: %s" % (o.bucket, o.prefix, page), exception=page)
            batch = []
            for listed in page:
                raw = listed.key
                path, is_dir, reason = check_key(raw[prefix_len:])
                if reason is not None:
                    self._reject(display(raw), reason, listed.size)
                    continue
                if not path or (selected is not None and not selected(path)):
                    continue
                entry = Entry(path, raw, is_dir, listed)
                if entry.name in entries:
                    continue  # listed twice (a server paging bug): the first one counts
                entry.local = tree.get(path)
                st = objects_state.get(entry.name)
                if st is not None and isinstance(st, list) and len(st) == 6:
                    entry.state = st
                entries[entry.name] = entry
                self._decide(entry)
                if entry.action != "keep":
                    batch.append(entry)
            if batch:
                self._queued += len(batch)
                with self._lock:
                    self._pending += len(batch)
                for entry in batch:
                    jobs.put(entry)
        self._validate_tree()
        with self._lock:
            self._listed = True
            if self._pending == 0:
                self._all_done.set()

    def _validate_tree(self):
        """Rules that need the whole listing: file/directory collisions, case duplicates."""
        o = self.o
        entries = self.entries
        parents = {}
        for entry in entries.values():
            if entry.is_dir:
                parents.setdefault(entry.path, entry.path + "/")
            for parent in _parents(entry.path):
                if parent in parents:
                    break
                parents[parent] = entry.name
        for entry in entries.values():
            if not entry.is_dir and entry.path in parents:
                self._reject(display(entry.key), "is both a file and a directory prefix (of %s)"
                             % display(o.prefix + parents[entry.path]), entry.size, entry)
        if not o.reject_case_conflicts:
            return
        folded = {}
        for path in set(e.path for e in entries.values()) | set(parents):
            folded.setdefault(unicodedata.normalize("NFC", path).casefold(), set()).add(path)
        clashing = {}
        for group in folded.values():
            if len(group) > 1:
                for path in group:
                    clashing[path] = sorted(p for p in group if p != path)
        if not clashing:
            return
        for entry in entries.values():
            if entry.reason is not None:
                continue
            for probe in [entry.path] + list(_parents(entry.path)):
                if probe in clashing:
                    self._reject(display(entry.key), "case-only duplicate: %s vs %s" % (
                        display(o.prefix + probe), ", ".join(display(o.prefix + p) for p in clashing[probe][:3])),
                        entry.size, entry)
                    break

    def _validate_type_changes(self, pinned):
        """Refuse a file or symlink key whose local path is a directory holding excluded
        content: replacing the directory would remove what the filters say to keep."""
        for entry in self.entries.values():
            local = entry.local
            if entry.is_dir or entry.reason is not None or entry.action == "vanished" \
                    or local is None or local[0] != KIND_DIR or entry.path not in pinned:
                continue
            self._reject(display(entry.key), "would replace the local directory %s, which holds excluded "
                         "content (kept by include/exclude); move that content or exclude this key too"
                         % display(entry.path), entry.size, entry)

    def _validate_metadata(self):
        o = self.o
        for entry in self.entries.values():
            attrs = entry.attrs
            if entry.reason is not None or attrs is None or attrs.kind != KIND_LINK:
                continue
            reason = check_symlink(entry.path, attrs.target, o.dest, o.symlink_root, o.allow_symlink_escape)
            if reason is not None:
                self._reject(display(entry.key), reason, entry.size, entry)

    def _rejection_error(self):
        shown = "; ".join("%s: %s" % item[:2] for item in self.rejections[:10])
        more = "" if len(self.rejections) <= 10 else " (and %d more)" % (len(self.rejections) - 10)
        return CvmfsError(
            "%d key(s) under s3://%s/%s were rejected and on_invalid=fail, so nothing was written: %s%s. "
            "Rename or remove those objects, or set on_invalid=skip to sync everything else."
            % (len(self.rejections), self.o.bucket, self.o.prefix, shown, more),
            rejected={"count": len(self.rejections), "bytes": sum(r[2] for r in self.rejections)},
            rejections=[{"key": k, "reason": r} for k, r, unused in self.rejections[:self.o.max_reported]])

    def _missing_error(self):
        keys = sorted(key for key, unused in self.missing)
        more = "" if len(keys) <= 10 else " (and %d more)" % (len(keys) - 10)
        return CvmfsError(
            "%d key(s) under s3://%s/%s were listed but gone when fetched (deleted or replaced while the sync "
            "ran) and on_missing=fail, so nothing was written: %s%s. Run the sync again, or set on_missing=warn "
            "to sync everything else." % (len(keys), self.o.bucket, self.o.prefix, ", ".join(keys[:10]), more),
            missing={"count": len(keys), "bytes": sum(size for unused, size in self.missing)},
            missing_keys=keys[:self.o.max_reported])

    def _local_problems_error(self, problems):
        shown = "; ".join("%s: %s" % (display(path or "."), why) for path, why in problems[:10])
        more = "" if len(problems) <= 10 else " (and %d more)" % (len(problems) - 10)
        return CvmfsError(
            "cannot apply the sync into %s as uid %d, so nothing was changed: %s%s. The user running "
            "the sync must own every path below dest (and dest must be one file system)."
            % (self.o.dest, os.geteuid(), shown, more), partially_applied=False,
            local_problems=[{"path": display(p), "problem": w} for p, w in problems[:self.o.max_reported]])

    # ---------------------------------------------------------------- planning

    def _plan(self, tree, pinned=()):
        """Turn the entries and the local tree into ordered operations (no disk access)."""
        o = self.o
        files = {}        # path -> Entry, files and symlinks to have
        dirs = {}         # path -> Entry or None (implied by a key below it)
        protected = set(pinned)
        for entry in self.entries.values():
            if entry.reason is not None or entry.action == "vanished":
                # a rejected key, or one gone when fetched: its local path stays as it was
                protected.add(entry.path)
                protected.update(_parents(entry.path))
                continue
            if entry.is_dir:
                dirs[entry.path] = entry
            else:
                files[entry.path] = entry
            for parent in _parents(entry.path):
                if parent in dirs:
                    break
                dirs[parent] = None

        plan = {"remove_in_way": [], "mkdir": [], "install": [], "meta": [], "delete": [],
                "dir_modes": [], "added": [], "updated": [], "deleted": [], "unchanged": []}
        removed = set()

        def gone(path):
            if not removed:
                return False
            if path in removed:
                return True
            for parent in _parents(path):
                if parent in removed:
                    return True
            return False

        def existed(path):
            return path in tree and not (removed and any(parent in removed for parent in _parents(path)))

        # 1. local entries of the wrong type go first (whatever `delete` says: S3 changed the type);
        #    what was below a replaced directory is reported as deleted
        for path in sorted(set(dirs) | set(files)):
            local = tree.get(path)
            if local is None or gone(path):
                continue
            if (path in dirs) != (local[0] == KIND_DIR):
                plan["remove_in_way"].append((path, local))
                removed.add(path)
                if local[0] == KIND_DIR:
                    below = path + "/"
                    for other, info in tree.items():
                        if other.startswith(below):
                            plan["deleted"].append((other, info[1] if info[0] == KIND_FILE else 0))
        # 2. directories, parents first
        for path in sorted(dirs, key=lambda p: (p.count("/"), p)):
            entry = dirs[path]
            if entry is None:
                mode = DEFAULT_DIR_MODE
            elif entry.attrs is not None:
                mode = entry.attrs.mode
            elif entry.state is not None:
                mode = entry.state[4]
            else:
                mode = DEFAULT_DIR_MODE
            local = tree.get(path)
            if local is None or gone(path):
                plan["mkdir"].append((path, mode))
                plan["updated" if existed(path) else "added"].append((path, 0))
            elif local[3] != mode:
                plan["dir_modes"].append((path, mode))
                plan["updated"].append((path, 0))
            elif entry is not None:
                plan["unchanged"].append((path, 0))
        # 3. files and symlinks
        for path, entry in files.items():
            if entry.action == "fetch":
                plan["install"].append(entry)
                plan["updated" if existed(path) else "added"].append((path, entry.bytes))
            elif entry.action == "meta":
                plan["meta"].append(entry)
                plan["updated"].append((path, 0))
            else:
                plan["unchanged"].append((path, entry.size))
        # 4. what disappeared from S3: children before parents; a directory only when it
        #    ends up empty. A reserved name at the top goes in any case.
        survivors = set()
        selected = o.filter.selected
        for path in sorted(tree, reverse=True):
            reserved = _is_reserved(path)
            if not (o.delete or reserved):
                continue
            local = tree[path]
            keep = not reserved and (path in files or path in dirs or path in protected or path in survivors
                                     or (local[0] != KIND_DIR and not selected(path)))
            if keep:
                survivors.update(_parents(path))
                continue
            if gone(path):
                continue
            plan["delete"].append((path, local))
            plan["deleted"].append((path, local[1] if local[0] == KIND_FILE else 0))
        return plan

    # ---------------------------------------------------------------- apply

    def _apply(self, plan):
        """Carry out the plan. The checks of :func:`_local_problems` ran first, so what can
        still fail here is the unforeseeable (disk full, a path changed by someone else)."""
        dest = self.o.dest
        # existing directories first: every mode applied keeps the owner's rwx (safe_mode), so
        # this unlocks a directory an older version left read-only before anything is written in it
        for path, mode in plan["dir_modes"]:
            os.chmod(os.path.join(dest, path), mode)
        for path, local in plan["remove_in_way"]:
            full = os.path.join(dest, path)
            if local[0] == KIND_DIR:
                _rmtree(full)
            else:
                os.unlink(full)
        for path, mode in plan["mkdir"]:
            os.mkdir(os.path.join(dest, path), 0o700)
        self._install(plan["install"])
        for entry in plan["meta"]:
            full = os.path.join(dest, entry.path)
            attrs = entry.attrs
            if attrs.kind == KIND_FILE:
                os.chmod(full, attrs.mode)
            os.utime(full, ns=(attrs.mtime_ns, attrs.mtime_ns), follow_symlinks=False)
        for path, local in plan["delete"]:
            full = os.path.join(dest, path)
            if local[0] == KIND_DIR:
                os.rmdir(full)
            else:
                os.unlink(full)
        for path, mode in plan["mkdir"]:
            os.chmod(os.path.join(dest, path), mode)

    def _install_one(self, entry):
        full = os.path.join(self.o.dest, entry.path)
        attrs = entry.attrs
        if attrs.kind == KIND_LINK:
            tmp = self._staged_name() + ".link"
            os.symlink(attrs.target, tmp)
            os.utime(tmp, ns=(attrs.mtime_ns, attrs.mtime_ns), follow_symlinks=False)
            os.rename(tmp, full)
            if entry.staged:
                os.unlink(entry.staged)
        else:
            os.rename(entry.staged, full)
        entry.staged = None

    def _install(self, entries):
        """Rename staged files into place (directories exist by now, order does not matter).
        Renames are kernel work that runs outside the GIL, so a few threads overlap them."""
        if len(entries) < 64:
            for entry in entries:
                self._install_one(entry)
            return
        chunks = [entries[n::INSTALLERS] for n in range(INSTALLERS)]
        failures = []

        def install(chunk):
            try:
                for entry in chunk:
                    if failures:
                        return
                    self._install_one(entry)
            except Exception as error:  # pylint: disable=broad-except
                failures.append(error)

        threads = [threading.Thread(target=install, args=(chunk,)) for chunk in chunks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]

    def _save_state(self, state):
        objects = {} if self.keys is None else self.keys.untouched_state(state.objects)
        dest = self.o.dest
        for name, entry in self.entries.items():
            if entry.reason is not None or entry.action == "vanished":
                continue
            if entry.action == "keep" and entry.attrs is None:
                objects[name] = entry.state
                continue
            try:
                st = os.lstat(os.path.join(dest, entry.path))
            except OSError:
                continue
            attrs = entry.attrs
            target = attrs.target if attrs is not None and attrs.kind == KIND_LINK else None
            objects[name] = [entry.etag, entry.size, entry.last_modified, _seconds(st.st_mtime_ns),
                             stat.S_IMODE(st.st_mode), target]
        if objects != state.objects or not state.loaded:
            state.save(objects)

    def _cleanup(self):
        if self._transfer is not None:
            try:
                self._transfer.shutdown(cancel=True)
            except Exception:  # pylint: disable=broad-except
                pass
        if self.staging is not None:
            _rmtree(self.staging, ignore_errors=True)
            self.staging = None

    # ---------------------------------------------------------------- result

    def _result(self, plan):
        cap = self.o.max_reported
        result = {}
        paths = {}
        for name in ("added", "updated", "deleted", "unchanged"):
            items = plan[name]
            result[name] = {"count": len(items), "bytes": sum(item[1] for item in items)}
            if name != "unchanged":
                paths[name] = sorted(display(item[0]) for item in items)
        result["rejected"] = {"count": len(self.rejections), "bytes": sum(r[2] for r in self.rejections)}
        result["rejections"] = [{"key": k, "reason": r} for k, r, unused in self.rejections[:cap]]
        missing = sorted(self.missing)
        result["missing"] = {"count": len(missing), "bytes": sum(size for unused, size in missing)}
        result["missing_keys"] = [key for key, unused in missing[:cap]]
        self.warnings.extend("s3://%s/%s was listed but gone when fetched (deleted or replaced while the sync ran); "
                             "its local path was left as it was" % (self.o.bucket, key) for key, unused in missing)
        result["changed"] = any(paths.values())
        result["changed_paths"] = dict((k, v[:cap]) for k, v in paths.items())
        result["changed_paths_truncated"] = any(len(v) > cap for v in paths.values())
        result["transferred_bytes"] = 0 if self.o.check_mode else sum(e.bytes for e in plan["install"])
        result["warnings"] = sorted(set(self.warnings))[:cap]
        if self.o.diff:
            lines = ["+ %s" % p for p in paths["added"]]
            lines += ["~ %s" % p for p in paths["updated"]]
            lines += ["- %s" % p for p in paths["deleted"]]
            result["diff"] = {"prepared": "\n".join(lines) + ("\n" if lines else "")}
        return result


class _Spool:
    """A GET body: held in memory up to ``limit`` bytes, then moved to the file ``open_file()``
    returns and streamed there, so memory per download stays bounded whatever its length."""

    def __init__(self, open_file, limit, digest=None):
        self.open_file = open_file
        self.limit = limit
        self.digest = digest
        self.chunks = []
        self.size = 0
        self.fd = None

    def write(self, chunk):
        if self.digest is not None:
            self.digest.update(chunk)
        self.size += len(chunk)
        if self.fd is not None:
            write_all(self.fd, chunk)
            return
        self.chunks.append(chunk)
        if self.size > self.limit:
            self.fd = self.open_file()
            for piece in self.chunks:
                write_all(self.fd, piece)
            self.chunks = None

    def buffered(self):
        return self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _parent(path):
    return path.rpartition("/")[0]


def _directories_written(plan, tree):
    """The existing directories ``_apply`` writes into: ``{relative path: True when files are
    renamed into it}`` ("" is dest; a directory the plan creates counts as its nearest existing
    parent), and the set of those emptied by a type change (they are listed, so read too)."""
    created = set(path for path, unused in plan["mkdir"])
    written = {}
    emptied = set()

    def write_into(directory, rename=False):
        while directory in created:
            directory = _parent(directory)
        written[directory] = written.get(directory, False) or rename

    for path, local in plan["remove_in_way"]:
        write_into(_parent(path))
        if local[0] == KIND_DIR:
            below = path + "/"
            emptied.add(path)
            emptied.update(other for other, info in tree.items() if other.startswith(below) and info[0] == KIND_DIR)
    for directory in emptied:
        write_into(directory)
    for path in created:
        write_into(_parent(path), rename=True)
    for entry in plan["install"]:
        write_into(_parent(entry.path), rename=True)
    for path, unused in plan["delete"]:
        write_into(_parent(path))
    return written, emptied


def _local_problems(dest, plan, tree, staging_dev):
    """``[(path, problem)]`` for every local path ``_apply`` would fail to change: directories
    to write into that this user may not write, or that are on another file system than the
    staging directory (a rename cannot cross it), and paths whose mode or mtime is set that
    this user does not own. Checked before the first change, so a run that cannot finish
    changes nothing."""
    uid = os.geteuid()
    chmodded = set(path for path, unused in plan["dir_modes"])
    written, emptied = _directories_written(plan, tree)
    problems = []
    for directory in sorted(written):
        full = os.path.join(dest, directory) if directory else dest
        try:
            st = os.lstat(full)
        except OSError as error:
            problems.append((directory, "cannot stat: %s" % error.strerror))
            continue
        if not stat.S_ISDIR(st.st_mode):
            problems.append((directory, "not a directory any more"))
            continue
        needed = os.W_OK | os.X_OK | (os.R_OK if directory in emptied else 0)
        unlocked_first = directory in chmodded and uid in (0, st.st_uid)  # see _apply
        if not unlocked_first and not _may_access(full, needed):
            problems.append((directory, "directory not writable (owner uid %d, mode %04o)"
                             % (st.st_uid, stat.S_IMODE(st.st_mode))))
        if written[directory] and st.st_dev != staging_dev:
            problems.append((directory, "on another file system than dest (a mount point inside dest)"))
    if uid != 0:
        for path in sorted(chmodded | set(e.path for e in plan["meta"])):
            try:
                st = os.lstat(os.path.join(dest, path))
            except OSError as error:
                problems.append((path, "cannot stat: %s" % error.strerror))
                continue
            if st.st_uid != uid:
                problems.append((path, "owned by uid %d: its mode and mtime cannot be set" % st.st_uid))
    return problems


def _may_access(path, mode):
    if os.access in os.supports_effective_ids:
        return os.access(path, mode, effective_ids=True)
    return os.access(path, mode)


def _big_error(key, error):
    code = getattr(error, "response", {}).get("Error", {}).get("Code") if hasattr(error, "response") else None
    if code in ("NoSuchKey", "404", "PreconditionFailed", "412"):
        return TransportError("GET %s: the object changed during the download" % display(key), exception=error)
    if isinstance(error, (OSError, IOError)) and not getattr(error, "response", None):
        transient = TransportError("GET %s: %s" % (display(key), error), exception=error)
        return transient
    wrapped = S3HTTPError("GET %s (multipart): %s" % (display(key), error), code=code, key=key)
    wrapped.exception = error
    return wrapped


def _make_staging(dest):
    for unused in range(100):
        path = os.path.join(dest, "%s%d.%s" % (STAGING_PREFIX, os.getpid(), os.urandom(4).hex()))
        try:
            os.mkdir(path, 0o700)
            return path
        except OSError as error:
            if error.errno != errno.EEXIST:
                raise CvmfsError("cannot create the staging directory in %s: %s" % (dest, error), exception=error)
    raise CvmfsError("cannot create a staging directory in %s" % dest)


class SyncLocked(CvmfsError):
    """Another run holds the state file's or the destination's lock."""


def _lock_directory(path):
    """flock ``path`` itself: a second run into the same dest (even with another state file)
    would otherwise take this run's staging directory for a stale one."""
    import fcntl
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise SyncLocked("another s3_sync run is writing into %s; wait for it to finish" % path)
    return fd


class _StateLock:
    """One run per state file at a time (flock on ``<state_file>.lock``)."""

    def __init__(self, state_path):
        self.path = state_path + ".lock"
        self.fd = None

    def acquire(self):
        import fcntl
        directory = os.path.dirname(self.path)
        try:
            if directory and not os.path.isdir(directory):
                os.makedirs(directory, 0o700)
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        except OSError as error:
            raise CvmfsError("cannot create the lock file %s next to state_file: %s" % (self.path, error), exception=error)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = None
            raise SyncLocked("another s3_sync run holds %s; wait for it to finish" % self.path)

    def release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# --------------------------------------------------------------------------------------------
# Connecting: boto3 resolves credentials, endpoint and addressing; the hot path reuses them.

PROBE_KEY = "s3sync-endpoint-probe"


class ConnectionOptions:
    """How to reach S3 (see the module documentation for each)."""

    def __init__(self, endpoint_url=None, region=None, access_key=None, secret_key=None,
                 session_token=None, profile=None, validate_certs=True, ca_bundle=None,
                 addressing_style="path", retries=5, timeout=60.0, max_pool=32, use_fast_path=None):
        if addressing_style not in ("path", "virtual", "auto"):
            raise CvmfsError("addressing_style must be path, virtual or auto, not %r" % (addressing_style,))
        if bool(access_key) != bool(secret_key):
            raise CvmfsError("give both access_key and secret_key, or neither (to use a profile or the environment)")
        if profile and access_key:
            raise CvmfsError("give either profile or access_key/secret_key, not both")
        self.endpoint_url = endpoint_url
        self.region = region
        self.access_key = access_key
        self.secret_key = secret_key
        self.session_token = session_token
        self.profile = profile
        self.validate_certs = validate_certs
        self.ca_bundle = ca_bundle
        self.addressing_style = addressing_style
        self.retries = retries
        self.timeout = timeout
        self.max_pool = max_pool
        self.use_fast_path = use_fast_path


def _proxy_for(url):
    """The proxy the environment sets for ``url`` (``https_proxy``, ``http_proxy``,
    ``all_proxy``, minus ``no_proxy``), like urllib's rules, without importing urllib.request
    (which pulls in http.client and email: ~50 ms of CPU per run)."""
    parts = urlsplit(url)
    env = os.environ
    proxy = None
    for name in (parts.scheme + "_proxy", "all_proxy"):
        proxy = env.get(name) or env.get(name.upper())
        if proxy:
            break
    if not proxy:
        return None
    host = (parts.hostname or "").lower()
    for entry in (env.get("no_proxy") or env.get("NO_PROXY") or "").split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return None
        entry = entry.split(":")[0].lstrip(".")
        if host == entry or host.endswith("." + entry):
            return None
    return proxy


def _ssl_context(conn):
    import ssl
    if not conn.validate_certs:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    cafile = conn.ca_bundle or os.environ.get("AWS_CA_BUNDLE") or None
    try:
        return ssl.create_default_context(cafile=cafile)
    except (IOError, OSError, ssl.SSLError) as error:
        raise CvmfsError("cannot load the CA bundle %s: %s" % (cafile, error), exception=error)


class _StaticCredentials:
    def __init__(self, access_key, secret_key, token):
        self.access_key = access_key
        self.secret_key = secret_key
        self.token = token


def _static_route(conn):
    """(credentials, region) when no botocore is needed to talk to the endpoint: explicit
    keys (parameters or ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``), an endpoint URL, path
    or virtual addressing, a known region and no proxy. Otherwise None.

    Importing botocore and building a client costs ~0.4 s of CPU, more than a whole no-op
    sync of 20,000 keys; boto3 is then only loaded for big objects.
    """
    if not conn.endpoint_url or conn.addressing_style == "auto" or conn.profile or conn.use_fast_path is False:
        return None
    access, secret, token = conn.access_key, conn.secret_key, conn.session_token
    if not access:
        if os.environ.get("AWS_PROFILE"):
            return None
        access = os.environ.get("AWS_ACCESS_KEY_ID")
        secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
        token = os.environ.get("AWS_SESSION_TOKEN")
        if not (access and secret):
            return None
    region = conn.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        config = os.environ.get("AWS_CONFIG_FILE") or os.path.expanduser("~/.aws/config")
        if os.path.exists(config):
            return None  # botocore would read a region from there
        region = "us-east-1"
    if _proxy_for(conn.endpoint_url) is not None:
        return None
    return _StaticCredentials(access, secret, token or None), region


def _boto_client(conn, max_workers, credentials=None, region=None):
    try:
        import boto3
        import botocore.config
        import botocore.exceptions
    except ImportError as error:
        raise CvmfsError("boto3 and botocore are required on the host that runs s3_sync "
                         "(Debian/Ubuntu: python3-boto3, EL: python3-boto3 from EPEL, or pip)", exception=error)
    try:
        if credentials is not None:
            session = boto3.session.Session(aws_access_key_id=credentials.access_key,
                                            aws_secret_access_key=credentials.secret_key,
                                            aws_session_token=credentials.token, region_name=region)
        else:
            session = boto3.session.Session(
                aws_access_key_id=conn.access_key or None, aws_secret_access_key=conn.secret_key or None,
                aws_session_token=conn.session_token or None, profile_name=conn.profile or None,
                region_name=conn.region or None)
    except botocore.exceptions.ProfileNotFound as error:
        raise CvmfsError("profile %r not found in the AWS config files" % conn.profile, exception=error)
    region = region or conn.region or session.region_name or "us-east-1"
    config = botocore.config.Config(
        region_name=region, signature_version="s3v4",
        s3={"addressing_style": conn.addressing_style},
        retries={"max_attempts": conn.retries + 1, "mode": "standard"},
        connect_timeout=min(conn.timeout, 15.0), read_timeout=conn.timeout,
        max_pool_connections=max(conn.max_pool, max_workers + 4))
    verify = conn.ca_bundle if (conn.validate_certs and conn.ca_bundle) else conn.validate_certs
    try:
        client = session.client("s3", endpoint_url=conn.endpoint_url or None, config=config, verify=verify)
    except (ValueError, botocore.exceptions.BotoCoreError) as error:
        raise CvmfsError("cannot create an S3 client for endpoint_url=%r region=%r: %s"
                         % (conn.endpoint_url, region, error), exception=error)
    return session, client


def connect(conn, bucket, max_workers=32):
    """Build the hot-path transport for ``bucket`` and a factory for a boto3 client.

    Returns ``(fast, client_factory, source)``; ``source`` names the bucket's endpoint (it is
    stored in the state file so a state written for another source is ignored).
    """
    static = _static_route(conn)
    if static is not None:
        credentials, region = static
        parts = urlsplit(conn.endpoint_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CvmfsError("endpoint_url %r must look like http(s)://host[:port]" % conn.endpoint_url)
        if conn.addressing_style == "virtual":
            url = "%s://%s.%s%s/%s" % (parts.scheme, bucket, parts.netloc, parts.path, PROBE_KEY)
        else:
            url = "%s://%s%s/%s/%s" % (parts.scheme, parts.netloc, parts.path, uri_encode(bucket), PROBE_KEY)
        endpoint = Endpoint(url, PROBE_KEY, region=region, timeout=conn.timeout)
        if endpoint.scheme == "https":
            endpoint.ssl_context = _ssl_context(conn)
        fast = FastS3(endpoint, bucket, SigV4(lambda: credentials, region))
        lock = threading.Lock()
        cache = []

        def client_factory():
            with lock:
                if not cache:
                    cache.append(_boto_client(conn, max_workers, credentials, region)[1])
                return cache[0]

        return fast, client_factory, "%s://%s%s" % (endpoint.scheme, endpoint.host_header, endpoint.base_path)

    session, client = _boto_client(conn, max_workers)
    credentials = session.get_credentials()
    if credentials is None:
        raise CvmfsError("no S3 credentials: give access_key and secret_key, a profile, or set "
                         "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment")
    url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": PROBE_KEY}, ExpiresIn=60)
    use_fast = conn.use_fast_path
    if use_fast is None:
        use_fast = _proxy_for(url) is None
    if use_fast:
        endpoint = Endpoint(url, PROBE_KEY, region=None, ssl_context=None, timeout=conn.timeout)
        if endpoint.scheme == "https":
            endpoint.ssl_context = _ssl_context(conn)
        signer = SigV4(credentials.get_frozen_credentials, endpoint.region)
        fast = FastS3(endpoint, bucket, signer)
        source = "%s://%s%s" % (endpoint.scheme, endpoint.host_header, endpoint.base_path)
    else:
        fast = BotoS3(client, bucket)
        parts = urlsplit(url)
        source = "%s://%s%s" % (parts.scheme, parts.netloc, parts.path[:-len(PROBE_KEY)])
    return fast, (lambda: client), source


class BotoS3:
    """The same interface as :class:`~._s3_http.FastS3` over a plain boto3 client: used when a
    proxy is configured (botocore knows how to talk through it) or when asked to."""

    def __init__(self, client, bucket):
        self.client = client
        self.bucket = bucket

    def _error(self, error, what, key=None):
        import botocore.exceptions
        if isinstance(error, botocore.exceptions.ClientError):
            info = error.response.get("Error", {})
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            failure = S3HTTPError("%s: %s" % (what, error), status=status, code=info.get("Code"), key=key)
            failure.exception = error
            return failure
        transient = isinstance(error, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError,
                                       botocore.exceptions.ReadTimeoutError, IOError, OSError))
        failure = (TransportError if transient else CvmfsError)("%s: %s" % (what, error), exception=error)
        return failure

    def list_page(self, prefix, token=None):
        from ._s3_http import ListedObject
        kwargs = {"Bucket": self.bucket, "Prefix": prefix, "EncodingType": "url", "MaxKeys": 1000}
        if token:
            kwargs["ContinuationToken"] = token
        try:
            page = self.client.list_objects_v2(**kwargs)
        except Exception as error:  # pylint: disable=broad-except
            raise self._error(error, "listing s3://%s/%s" % (self.bucket, prefix))
        objects = []
        for item in page.get("Contents", []):
            objects.append(ListedObject(decode_url_key(item["Key"]), int(item.get("Size", 0)),
                                        item.get("ETag", "").strip('"'),
                                        item["LastModified"].strftime("%Y-%m-%dT%H:%M:%S.000Z")))
        return objects, (page.get("NextContinuationToken") if page.get("IsTruncated") else None)

    def _is_missing(self, error):
        import botocore.exceptions
        return isinstance(error, botocore.exceptions.ClientError) and \
            error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")

    def head(self, key):
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as error:  # pylint: disable=broad-except
            if self._is_missing(error):
                return None
            raise self._error(error, "HEAD s3://%s/%s" % (self.bucket, key), key)
        return dict(response["ResponseMetadata"]["HTTPHeaders"])

    def get(self, key, sink):
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            for chunk in response["Body"].iter_chunks(1048576):
                sink(chunk)
        except Exception as error:  # pylint: disable=broad-except
            if self._is_missing(error):
                return None
            raise self._error(error, "GET s3://%s/%s" % (self.bucket, key), key)
        return dict(response["ResponseMetadata"]["HTTPHeaders"])

    def close(self):
        pass


# --------------------------------------------------------------------------------------------
# Keys mode: apply only some keys (what bucket notifications said changed)


class NeedsFullSync(CvmfsError):
    """Keys mode met something only a full mirror may decide (dest missing, a path that changes
    between file and directory, a file key that is also a directory prefix): run :func:`sync`."""


class _KeysMode:
    """What :func:`sync_keys` changes in a :class:`Sync` run.

    Each touched key is looked up in a listing of its own name (so ETag, size and LastModified
    have exactly the form a full listing gives), whatever the events said: the bucket's current
    state decides, never the order of events. Only the touched paths and their parent
    directories are examined locally; parents are never removed by the plan, only pruned
    afterwards when they end up empty and no key remains below them. State entries of
    untouched keys are kept as they are. Rules that need the whole listing run only over the
    touched keys; the full sync still applies them to the whole prefix.
    """

    def __init__(self, options, keys):
        self.o = options
        self.keys = []      # full keys (bytes) below the prefix
        self.names = set()  # their state-file names ("path" or "dir/")
        self.conflicts = []
        prefix = options.prefix.encode("utf-8")
        for key in sorted(set(keys)):
            raw = key.encode("utf-8", "surrogateescape") if not isinstance(key, bytes) else key
            if not raw.startswith(prefix) or raw == prefix:
                continue
            self.keys.append(raw)
            path, is_dir, reason = check_key(raw[len(prefix):])
            if reason is None and path:
                self.names.add(path + "/" if is_dir else path)

    def list_keys(self, pages, list_page):
        """The lister thread: one listing per touched key (in parallel) instead of the whole prefix."""
        from concurrent.futures import ThreadPoolExecutor

        def lookup(raw):
            key = raw.decode("utf-8", "surrogateescape")
            objects, token = list_page(key, None)
            exact = [o for o in objects if o.key == raw]
            if exact and not raw.endswith(b"/"):
                below = raw + b"/"
                if any(o.key.startswith(below) for o in objects) or (token and list_page(key + "/", None)[0]):
                    self.conflicts.append(key)
            return exact

        try:
            if self.keys:
                with ThreadPoolExecutor(max(1, min(self.o.max_workers, 16, len(self.keys)))) as pool:
                    for exact in pool.map(lookup, self.keys):
                        if exact:
                            pages.put(exact)
            pages.put(None)
        except BaseException as error:  # pylint: disable=broad-except
            pages.put(error)

    def walk(self):
        """``(tree, pinned, stale)`` like :func:`walk`, for the touched paths and their parents."""
        dest = self.o.dest
        if not os.path.isdir(dest):
            raise NeedsFullSync("dest %s does not exist yet" % dest)
        tree = {}
        pinned = set()
        selected = self.o.filter.selected
        for name in self.names:
            path = name.rstrip("/")
            if not selected(path):
                continue
            parts = path.split("/")
            for depth in range(1, len(parts) + 1):
                rel = "/".join(parts[:depth])
                if depth < len(parts):
                    pinned.add(rel)
                if rel not in tree:
                    try:
                        st = os.lstat(os.path.join(dest, rel))
                    except OSError as error:
                        if error.errno in (errno.ENOENT, errno.ENOTDIR):
                            break
                        raise CvmfsError("cannot stat %s: %s" % (os.path.join(dest, rel), error), exception=error)
                    tree[rel] = (_kind(st.st_mode), st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode))
                if depth < len(parts) and tree[rel][0] != KIND_DIR:
                    break  # nothing below a file or a symlink (the plan replaces it, or it stays)
            if tree.get(path, (None,))[0] == KIND_DIR:
                pinned.add(path)  # a directory is removed only by the pruning below
        return tree, pinned, []

    def check_conflicts(self):
        if self.conflicts:
            raise NeedsFullSync("%d touched key(s) are also directory prefixes in S3 (%s); only a full sync "
                                "decides which one wins" % (len(self.conflicts), ", ".join(map(display, self.conflicts[:5]))))

    def adjust_plan(self, plan, entries, list_page):
        """Keep the plan to the touched paths and add the pruning of emptied directories."""
        if plan["remove_in_way"]:
            raise NeedsFullSync("%s changes between file and directory" % display(plan["remove_in_way"][0][0]))
        touched = set(name.rstrip("/") for name in self.names)
        # an implied parent's mode belongs to its own directory marker, which was not touched
        plan["dir_modes"] = [item for item in plan["dir_modes"] if item[0] in touched]
        keep = set(p for p, _m in plan["dir_modes"]) | set(p for p, _m in plan["mkdir"])
        plan["updated"] = [item for item in plan["updated"] if item[0] in keep or item[0] in touched]
        if not self.o.delete:
            return
        dest = self.o.dest
        in_s3 = set()  # paths listed in S3 (rejected and vanished keys included) and their parents
        for entry in entries.values():
            in_s3.add(entry.path)
            in_s3.update(_parents(entry.path))
        deleting = set(p for p, _local in plan["delete"])
        candidates = set()
        for path in deleting | (touched - in_s3):
            candidates.add(path)
            candidates.update(_parents(path))
        for path in sorted(candidates - deleting - in_s3, key=lambda p: (-p.count("/"), p)):
            full = os.path.join(dest, path)
            try:
                st = os.lstat(full)
                if not stat.S_ISDIR(st.st_mode):
                    continue
                children = os.listdir(full)
            except OSError:
                continue
            if any(path + "/" + child not in deleting for child in children):
                continue
            if list_page(self.o.prefix + path + "/", None)[0]:
                continue
            deleting.add(path)
            plan["delete"].append((path, (KIND_DIR, st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode))))
            plan["deleted"].append((path, 0))

    def untouched_state(self, objects):
        """The state entries of the keys this run does not look at."""
        return dict((name, value) for name, value in objects.items() if name not in self.names)


def sync_keys(conn, options, keys, log=None):
    """Apply only ``keys`` (full keys; those outside ``options.prefix`` are ignored) into
    ``options.dest``, deciding each from the bucket's current state: an object that exists is
    fetched (when changed), one that does not is removed locally with the directories it leaves
    empty. Same options, state file, staging and result as :func:`sync`. Raises
    :class:`NeedsFullSync` (before anything is written) when only a full run may decide."""
    fast, client_factory, source = connect(conn, options.bucket, options.max_workers)
    try:
        return Sync(options, fast, source + options.prefix, client_factory, log, keys=keys).run()
    finally:
        fast.close()


def sync(conn, options, log=None):
    """Mirror ``s3://options.bucket/options.prefix`` into ``options.dest``; return the result
    dict (see the module's RETURN). Raises :class:`CvmfsError` on failure."""
    fast, client_factory, source = connect(conn, options.bucket, options.max_workers)
    try:
        return Sync(options, fast, source + options.prefix, client_factory, log).run()
    finally:
        fast.close()
