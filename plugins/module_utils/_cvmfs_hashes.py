# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""CernVM-FS content hashes: algorithms, hash strings, object paths, and the errors of the format code.

Internal to sharedsw.cvmfs; may change in any release. Owns: the three content-hash algorithms
(sha1, rmd160, shake128) and their string notation, object paths below ``data/``, checking an
object against its name, and :func:`cvmfs_error` with the ``reason`` values (:data:`REASONS`) that
every ``_cvmfs_*`` format file raises. Pure standard library; must not import Ansible, HTTP or
``cryptography``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import re
import struct

from ._common import CvmfsError

#: ``reason`` values of the errors raised here.
REASONS = (
    "http_error",           # could not download something (status, connection, timeout, proxy)
    "malformed",            # a file is garbage or truncated
    "hash_mismatch",        # content does not match the hash that names / precedes it
    "bad_signature",        # RSA signature does not verify
    "whitelist_expired",    # whitelist E line is in the past (at ``now``)
    "not_in_whitelist",     # certificate fingerprint not listed in the whitelist
    "name_mismatch",        # repository name differs between manifest, whitelist and expectation
    "unsupported",          # valid but not verifiable here (PKCS#7 whitelist, unknown hash)
    "bad_key",              # a given public key cannot be read
)

# Hash algorithms: name -> suffix appended to the hex digest (cvmfs-facts §8.4).
HASH_SUFFIXES = {"sha1": "", "rmd160": "-rmd160", "shake128": "-shake128"}
_DIGEST_HEX = 40  # all three produce 160 bits


def cvmfs_error(reason, message, **extra):
    """The :class:`CvmfsError` of the format code: ``reason`` is one of :data:`REASONS`."""
    return CvmfsError(message, reason=reason, **extra)


def _digits(text):
    return tuple(int(char, 16) for char in text.replace(" ", ""))


def _ripemd160(data):
    """RIPEMD-160 in pure Python, for OpenSSL builds whose hashlib lacks it (EL 9 and others)."""
    mask = 0xFFFFFFFF

    def rol(x, n):
        return ((x << n) | (x >> (32 - n))) & mask

    def f(j, x, y, z):
        if j < 16:
            return x ^ y ^ z
        if j < 32:
            return (x & y) | (~x & z)
        if j < 48:
            return (x | (~y & mask)) ^ z
        if j < 64:
            return (x & z) | (y & ~z)
        return x ^ (y | (~z & mask))

    kl = (0x00000000, 0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xA953FD4E)
    kr = (0x50A28BE6, 0x5C4DD124, 0x6D703EF3, 0x7A6D76E9, 0x00000000)
    # message word order and rotation amounts of the left and right lines, one hex digit each
    rl = _digits("0123456789abcdef 74d1a6f3c0952eb8 3ae49f812706db5c 19ba08c4d37fe562 40597c2ae138b6fd")
    rr = _digits("5e7092b4d6f81a3c 6b370d5aef8c4912 f5137e69b8c2a04d 86413bf05c2d97ae cfa4158762de039b")
    sl = _digits("befc5879bdef6798 768db97f7cf9b7dc bd67e9dfe8d65c75 bcefef989e56865c 9f5b68dc5cdeb856")
    sr = _digits("899bdff5778beec6 9df7c89b77c76fdb 97fb866ecd5edd75 f58bee6e69c9c5f8 85c9c5e68d65fdbb")
    h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]
    message = bytes(data) + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + struct.pack("<Q", 8 * len(data))
    for offset in range(0, len(message), 64):
        x = struct.unpack("<16I", message[offset:offset + 64])
        al, bl, cl, dl, el = h
        ar, br, cr, dr, er = h
        for j in range(80):
            t = (rol((al + f(j, bl, cl, dl) + x[rl[j]] + kl[j // 16]) & mask, sl[j]) + el) & mask
            al, el, dl, cl, bl = el, dl, rol(cl, 10), bl, t
            t = (rol((ar + f(79 - j, br, cr, dr) + x[rr[j]] + kr[j // 16]) & mask, sr[j]) + er) & mask
            ar, er, dr, cr, br = er, dr, rol(cr, 10), br, t
        t = (h[1] + cl + dr) & mask
        h[1] = (h[2] + dl + er) & mask
        h[2] = (h[3] + el + ar) & mask
        h[3] = (h[4] + al + br) & mask
        h[4] = (h[0] + bl + cr) & mask
        h[0] = t
    return struct.pack("<5I", *h).hex()


def digest(data, algorithm):
    """Hex digest (no suffix) of ``data`` with a cvmfs content-hash algorithm."""
    if algorithm == "sha1":
        return hashlib.sha1(data).hexdigest()
    if algorithm == "shake128":
        return hashlib.shake_128(data).hexdigest(20)
    if algorithm == "rmd160":
        try:
            return hashlib.new("ripemd160", data).hexdigest()
        except ValueError:
            return _ripemd160(data)
    raise cvmfs_error("unsupported", "unknown hash algorithm %r: use one of sha1, rmd160, shake128" % algorithm)


def hash_string(data, algorithm="sha1"):
    """The cvmfs hash string of ``data``: hex digest plus the algorithm suffix."""
    return digest(data, algorithm) + HASH_SUFFIXES[algorithm]


def hash_algorithm(text, what="hash"):
    """Algorithm named by a cvmfs hash string (``<40 hex>[-rmd160|-shake128]``)."""
    text = text.strip().lower() if isinstance(text, str) else ""
    hexpart, sep, suffix = text.partition("-")
    if len(hexpart) != _DIGEST_HEX or not re.match(r"^[0-9a-f]+$", hexpart):
        raise cvmfs_error("malformed", "%s %r is not a CernVM-FS content hash "
                          "(40 hex digits, optionally followed by -rmd160 or -shake128)" % (what, text[:80]))
    for name, known in HASH_SUFFIXES.items():
        if sep + suffix == known:
            return name
    raise cvmfs_error("unsupported", "%s %r uses an unknown hash algorithm suffix '-%s' "
                      "(known: -rmd160, -shake128, none for sha1)" % (what, text, suffix))


def object_path(hash_str, suffix=""):
    """Path of a content-addressed object below the repository URL: ``data/ab/cdef...X``."""
    hash_str = hash_str.strip().lower()
    hash_algorithm(hash_str, "object hash")
    return "data/%s/%s%s" % (hash_str[:2], hash_str[2:], suffix)


def check_object(data, hash_str, what):
    """Raise ``hash_mismatch`` unless the stored bytes ``data`` hash to ``hash_str``."""
    algorithm = hash_algorithm(hash_str, what)
    actual = hash_string(data, algorithm)
    if actual != hash_str.strip().lower():
        raise cvmfs_error("hash_mismatch", "%s is corrupt: its content hashes to %s, not to %s as its "
                          "name says (damaged on the server or in a proxy cache)" % (what, actual, hash_str))
