# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""CernVM-FS compressed objects and catalogs: inflate zlib objects, read a catalog's properties.

Internal to sharedsw.cvmfs; may change in any release. Owns: zlib inflation with size limits and
reading a catalog object (zlib-compressed SQLite) into revision, schema and statistics. Pure
standard library; must not import Ansible, HTTP or ``cryptography``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sqlite3
import tempfile
import zlib

from ._cvmfs_hashes import check_object, cvmfs_error

MAX_CATALOG = 1024 * 1024 * 1024      # root catalog, compressed
_CHUNK = 64 * 1024


def inflate(data, limit, what):
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise cvmfs_error("malformed", "%s is not valid zlib data: %s" % (what, exc))
    if len(out) > limit:
        raise cvmfs_error("malformed", "%s inflates to more than %d bytes" % (what, limit))
    if not inflater.eof:
        raise cvmfs_error("malformed", "%s is truncated: its zlib stream does not end" % what)
    return out


def _inflate_to_file(data, handle, what):
    inflater = zlib.decompressobj()
    try:
        for offset in range(0, len(data), _CHUNK):
            piece = data[offset:offset + _CHUNK]
            while piece:
                handle.write(inflater.decompress(piece, _CHUNK))
                piece = inflater.unconsumed_tail
        handle.write(inflater.flush())
    except zlib.error as exc:
        raise cvmfs_error("malformed", "%s is not valid zlib data: %s" % (what, exc))
    if not inflater.eof:
        raise cvmfs_error("malformed", "%s is truncated: its zlib stream does not end" % what)


def read_catalog(data, hash_str, what="root catalog"):
    """Properties and statistics of a catalog object (zlib-compressed SQLite).

    Returns ``revision``, ``schema``, ``schema_revision``, ``last_modified`` (epoch),
    ``previous_revision`` (hash), ``ttl``, ``nested_catalogs`` (direct children) and
    ``statistics``: per counter the total of the whole tree this catalog summarises
    (``self_*`` + ``subtree_*``), e.g. ``regular``, ``dir``, ``symlink``, ``file_size``.
    """
    check_object(data, hash_str, what)
    handle = tempfile.NamedTemporaryFile(prefix="cvmfs-catalog-", suffix=".sqlite", delete=False)
    try:
        with handle:
            _inflate_to_file(data, handle, what)
        try:
            connection = sqlite3.connect("file:%s?mode=ro" % handle.name, uri=True)
            try:
                properties = dict(connection.execute("SELECT key, value FROM properties").fetchall())
                counters = connection.execute("SELECT counter, value FROM statistics").fetchall()
                nested = connection.execute("SELECT count(*) FROM nested_catalogs").fetchone()[0]
            finally:
                connection.close()
        except sqlite3.DatabaseError as exc:
            raise cvmfs_error("malformed", "%s is not a CernVM-FS catalog (SQLite with tables properties, "
                              "statistics, nested_catalogs): %s" % (what, exc))
    finally:
        os.unlink(handle.name)
    statistics = {}
    for counter, value in counters:
        for prefix in ("self_", "subtree_"):
            if counter.startswith(prefix):
                key = counter[len(prefix):]
                statistics[key] = statistics.get(key, 0) + int(value)

    def number(key):
        value = properties.get(key)
        try:
            return None if value is None else int(value)
        except ValueError:
            return None

    return {
        "revision": number("revision"),
        "schema": properties.get("schema"),
        "schema_revision": number("schema_revision"),
        "last_modified": number("last_modified"),
        "previous_revision": properties.get("previous_revision"),
        "ttl": number("TTL"),
        "nested_catalogs": int(nested),
        "statistics": statistics,
    }
