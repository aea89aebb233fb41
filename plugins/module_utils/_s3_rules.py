# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which S3 keys and symlink targets the sync accepts, and which paths the filters select.

Internal to sharedsw.cvmfs; may change in any release. Pure: standard library only, no I/O.
Must not import boto3, Ansible or any other _s3_* file (every other part of the engine
imports this one).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import posixpath
import re

STAGING_PREFIX = ".s3sync-staging."
MAX_SEGMENT = 255
MAX_PATH = 4000
MAX_SYMLINK = 4095

_CONTROL = re.compile(u"[\x00-\x1f\x7f-\x9f]")


def display(text):
    """A key or path safe to print: control characters and undecodable bytes escaped."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "backslashreplace")
    if _CONTROL.search(text) or u"\\" in text:
        return text.encode("unicode_escape").decode("ascii")
    return text


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


def parents(path):
    """The parent directories of a relative path, nearest first."""
    index = path.rfind("/")
    while index > 0:
        yield path[:index]
        index = path.rfind("/", 0, index)


def is_reserved(path):
    """A top-level name that belongs to the staging directory (no key may give it)."""
    return "/" not in path and path.startswith(STAGING_PREFIX)
