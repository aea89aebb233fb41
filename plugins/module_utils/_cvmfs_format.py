# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read and verify a CernVM-FS repository the way a client does: manifest, whitelist,
certificate, stratum-1 markers and (optionally) the root catalog, over plain HTTP(S).

Internal to sharedsw.cvmfs; may change in any release. Pure Python, no Ansible import (the
standard library plus ``cryptography`` for the RSA checks, imported behind a guard), so the
same file runs in modules, on the controller and in programs on hosts.

Chain of trust checked by :func:`inspect_repository` (cvmfs-facts §8):

1. ``.cvmfswhitelist`` -- its hash line matches its text, and its raw RSA signature of that
   hash line opens with one of the repository's master public keys; ``N`` names the
   repository; ``E`` is still in the future (hour precision, as the client checks it).
2. the certificate object ``data/XX/...X`` named by the manifest's ``X`` line -- its content
   hash matches ``X``, and the hash of its DER form is one of the whitelist's fingerprints.
3. ``.cvmfspublished`` -- its hash line matches its text, and its signature of that hash line
   (RSA PKCS#1 v1.5 over SHA-1) verifies with the certificate's public key.

Every failure raises :class:`CvmfsError` with a ``reason`` (one of :data:`REASONS`) and a
message that names the file, what is wrong and what would fix it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import hashlib
import json
import os
import re
import socket
import sqlite3
import ssl
import struct
import tempfile
import traceback
import zlib

try:
    from http.client import HTTPException
    from urllib.error import HTTPError, URLError
    from urllib.request import HTTPSHandler, ProxyHandler, Request, build_opener
except ImportError:  # pragma: no cover - Python 2 is not supported by this collection
    HTTPException = HTTPError = URLError = None

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMP_ERR = traceback.format_exc()
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMP_ERR = None

from ._common import CvmfsError, Retry

MANIFEST = ".cvmfspublished"
WHITELIST = ".cvmfswhitelist"
LAST_SNAPSHOT = ".cvmfs_last_snapshot"
STATUS_JSON = ".cvmfs_status.json"
IS_SNAPSHOTTING = ".cvmfs_is_snapshotting"
MASTER_REPLICA = ".cvmfs_master_replica"

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

MAX_SMALL_FILE = 1024 * 1024          # manifests, whitelists, certificates, status files
MAX_CATALOG = 1024 * 1024 * 1024      # root catalog, compressed
_CHUNK = 64 * 1024

_UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)


def _error(reason, message, **extra):
    return CvmfsError(message, reason=reason, **extra)


def require_cryptography():
    if not HAS_CRYPTOGRAPHY:
        raise CvmfsError(
            "the Python library 'cryptography' is required to verify CernVM-FS signatures; "
            "install it (Debian: python3-cryptography, EL: python3-cryptography, PyPI: cryptography)",
            reason="unsupported")


# --------------------------------------------------------------------------- time

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
            raise _error("malformed", "%s is not text: expected a UTC date such as "
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
    raise _error("malformed", "%s holds %r, which is not a UTC date such as "
                 "'Mon Nov 23 11:20:05 UTC 2026' (as written by 'date --utc')" % (what, text[:80]))


# --------------------------------------------------------------------------- hashes

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
    rl = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
          7, 4, 13, 1, 10, 6, 15, 3, 12, 0, 9, 5, 2, 14, 11, 8,
          3, 10, 14, 4, 9, 15, 8, 1, 2, 7, 0, 6, 13, 11, 5, 12,
          1, 9, 11, 10, 0, 8, 12, 4, 13, 3, 7, 15, 14, 5, 6, 2,
          4, 0, 5, 9, 7, 12, 2, 10, 14, 1, 3, 8, 11, 6, 15, 13)
    rr = (5, 14, 7, 0, 9, 2, 11, 4, 13, 6, 15, 8, 1, 10, 3, 12,
          6, 11, 3, 7, 0, 13, 5, 10, 14, 15, 8, 12, 4, 9, 1, 2,
          15, 5, 1, 3, 7, 14, 6, 9, 11, 8, 12, 2, 10, 0, 4, 13,
          8, 6, 4, 1, 3, 11, 15, 0, 5, 12, 2, 13, 9, 7, 10, 14,
          12, 15, 10, 4, 1, 5, 8, 7, 6, 2, 13, 14, 0, 3, 9, 11)
    sl = (11, 14, 15, 12, 5, 8, 7, 9, 11, 13, 14, 15, 6, 7, 9, 8,
          7, 6, 8, 13, 11, 9, 7, 15, 7, 12, 15, 9, 11, 7, 13, 12,
          11, 13, 6, 7, 14, 9, 13, 15, 14, 8, 13, 6, 5, 12, 7, 5,
          11, 12, 14, 15, 14, 15, 9, 8, 9, 14, 5, 6, 8, 6, 5, 12,
          9, 15, 5, 11, 6, 8, 13, 12, 5, 12, 13, 14, 11, 8, 5, 6)
    sr = (8, 9, 9, 11, 13, 15, 15, 5, 7, 7, 8, 11, 14, 14, 12, 6,
          9, 13, 15, 7, 12, 8, 9, 11, 7, 7, 12, 7, 6, 15, 13, 11,
          9, 7, 15, 11, 8, 6, 6, 14, 12, 13, 5, 14, 13, 13, 7, 5,
          15, 5, 8, 11, 14, 14, 6, 14, 6, 9, 12, 9, 12, 5, 15, 8,
          8, 5, 12, 9, 12, 5, 14, 6, 8, 13, 6, 5, 15, 13, 11, 11)
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
    raise _error("unsupported", "unknown hash algorithm %r: use one of sha1, rmd160, shake128" % algorithm)


def hash_string(data, algorithm="sha1"):
    """The cvmfs hash string of ``data``: hex digest plus the algorithm suffix."""
    return digest(data, algorithm) + HASH_SUFFIXES[algorithm]


def hash_algorithm(text, what="hash"):
    """Algorithm named by a cvmfs hash string (``<40 hex>[-rmd160|-shake128]``)."""
    text = text.strip().lower() if isinstance(text, str) else ""
    hexpart, sep, suffix = text.partition("-")
    if len(hexpart) != _DIGEST_HEX or not re.match(r"^[0-9a-f]+$", hexpart):
        raise _error("malformed", "%s %r is not a CernVM-FS content hash "
                     "(40 hex digits, optionally followed by -rmd160 or -shake128)" % (what, text[:80]))
    for name, known in HASH_SUFFIXES.items():
        if sep + suffix == known:
            return name
    raise _error("unsupported", "%s %r uses an unknown hash algorithm suffix '-%s' "
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
        raise _error("hash_mismatch", "%s is corrupt: its content hashes to %s, not to %s as its "
                     "name says (damaged on the server or in a proxy cache)" % (what, actual, hash_str))


# --------------------------------------------------------------------------- signed letters

class SignedLetter:
    """A text signed the cvmfs way: ``<text>--\\n<hash of text>\\n<signature bytes>``."""

    def __init__(self, body, hash_str, signature):
        self.body = body            # bytes, up to and including the newline before "--"
        self.hash_str = hash_str    # text of the hash line
        self.signature = signature  # raw bytes to the end of the file

    @property
    def algorithm(self):
        return hash_algorithm(self.hash_str, "hash line")

    def check_hash(self, what):
        actual = hash_string(self.body, self.algorithm)
        if actual != self.hash_str.lower():
            raise _error("hash_mismatch", "%s was modified or damaged: its text hashes to %s but its "
                         "signed hash line says %s" % (what, actual, self.hash_str))


def split_letter(data, what):
    """Split a signed cvmfs text into a :class:`SignedLetter`; ``malformed`` if it is not one."""
    if not data:
        raise _error("malformed", "%s is empty" % what)
    position = data.find(b"\n--\n")
    if position < 0:
        raise _error("malformed", "%s is not a signed CernVM-FS file: it has no '--' line "
                     "separating the text from its signature (truncated, or not a repository file)" % what)
    body = data[:position + 1]
    rest = data[position + 4:]
    newline = rest.find(b"\n")
    if newline < 0:
        raise _error("malformed", "%s is truncated: it ends in the hash line after '--', before "
                     "the signature" % what)
    try:
        hash_str = rest[:newline].decode("ascii").strip()
    except UnicodeDecodeError:
        raise _error("malformed", "%s is garbage: the line after '--' is not a hex hash" % what)
    hash_algorithm(hash_str, "hash line of %s" % what)
    signature = rest[newline + 1:]
    if not signature:
        raise _error("malformed", "%s is truncated: it has no signature after the hash line" % what)
    return SignedLetter(body, hash_str, signature)


def _text_lines(body, what):
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _error("malformed", "%s is garbage: its text part is not UTF-8" % what)
    if "\x00" in text:
        raise _error("malformed", "%s is garbage: its text part contains NUL bytes" % what)
    return text.split("\n")


# --------------------------------------------------------------------------- manifest

_MANIFEST_FIELDS = (
    # letter, attribute, kind
    ("C", "root_catalog", "hash"),
    ("B", "root_catalog_size", "int"),
    ("R", "root_path_hash", "str"),
    ("D", "ttl", "int"),
    ("S", "revision", "int"),
    ("G", "garbage_collectable", "bool"),
    ("A", "alternative_paths", "bool"),
    ("L", "micro_catalog", "hash"),
    ("N", "name", "str"),
    ("X", "certificate", "hash"),
    ("H", "history", "hash"),
    ("T", "timestamp", "int"),
    ("M", "metainfo", "hash"),
    ("Y", "reflog", "hash"),
)
_MANIFEST_REQUIRED = ("C", "R", "D", "S")


class Manifest:
    """A parsed ``.cvmfspublished``. Attributes are ``None`` when their line is absent."""

    def __init__(self, letter, fields, channel_tips):
        self.letter = letter              # SignedLetter
        self.fields = fields              # {letter: raw text}, every line (first occurrence)
        self.channel_tips = channel_tips  # values of the repeatable Z lines
        for key, attribute, kind in _MANIFEST_FIELDS:
            value = fields.get(key)
            if value is not None:
                if kind == "int":
                    value = int(value)
                elif kind == "bool":
                    value = value == "yes"
                elif kind == "hash":
                    value = value.lower()
            setattr(self, attribute, value)

    @property
    def published(self):
        return None if self.timestamp is None else utc_datetime(self.timestamp)

    def to_dict(self):
        result = dict((attribute, getattr(self, attribute)) for _k, attribute, _t in _MANIFEST_FIELDS)
        result["channel_tips"] = list(self.channel_tips)
        result["hash_algorithm"] = hash_algorithm(self.root_catalog)
        return result


def parse_manifest(data, what=MANIFEST):
    """Parse ``.cvmfspublished`` bytes (structure only; see :func:`verify_manifest`)."""
    letter = split_letter(data, what)
    fields = {}
    tips = []
    for line in _text_lines(letter.body, what):
        if not line:
            continue
        key, value = line[0], line[1:]
        if key == "Z":
            tips.append(value)
        fields.setdefault(key, value)
    missing = [key for key in _MANIFEST_REQUIRED if key not in fields]
    if missing:
        raise _error("malformed", "%s is not a valid manifest: required line(s) %s missing "
                     "(C root catalog, R root path hash, D TTL and S revision must be present)"
                     % (what, ", ".join(missing)))
    for key, attribute, kind in _MANIFEST_FIELDS:
        value = fields.get(key)
        if value is None:
            continue
        if kind == "int" and not re.match(r"^[0-9]+$", value):
            raise _error("malformed", "%s: line %s (%s) is %r, expected a non-negative integer"
                         % (what, key, attribute, value[:80]))
        if kind == "bool" and value not in ("yes", "no"):
            raise _error("malformed", "%s: line %s (%s) is %r, expected 'yes' or 'no'"
                         % (what, key, attribute, value[:80]))
        if kind == "hash":
            hash_algorithm(value, "%s line %s (%s)" % (what, key, attribute))
    return Manifest(letter, fields, tips)


def verify_manifest(manifest, certificate, what=MANIFEST):
    """Check the manifest's hash line and its signature with the certificate's public key."""
    require_cryptography()
    manifest.letter.check_hash(what)
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey) and len(manifest.letter.signature) != key.key_size // 8:
        raise _error("bad_signature", "signature of %s is %d bytes long, but the repository certificate %s "
                     "holds a %d-bit key, whose signatures are %d bytes: the file is truncated or has "
                     "bytes appended" % (what, len(manifest.letter.signature), manifest.certificate,
                                         key.key_size, key.key_size // 8))
    try:
        if not isinstance(key, rsa.RSAPublicKey):
            raise InvalidSignature()
        key.verify(manifest.letter.signature, manifest.letter.hash_str.encode("ascii"),
                   padding.PKCS1v15(), hashes.SHA1())
    except InvalidSignature:
        raise _error("bad_signature", "signature of %s does not verify with the repository certificate "
                     "%s: the manifest was not signed with that certificate's key (tampered, "
                     "truncated, or signed with another repository key)" % (what, manifest.certificate))


# --------------------------------------------------------------------------- whitelist

class Whitelist:
    """A parsed ``.cvmfswhitelist``."""

    def __init__(self, letter, created, expires, name, fingerprints, pkcs7=False, ca_chain=False):
        self.letter = letter
        self.created = created            # aware UTC datetime
        self.expires = expires            # aware UTC datetime, as written
        self.name = name
        self.fingerprints = fingerprints  # normalised hash strings (lower-case hex [+suffix])
        self.pkcs7 = pkcs7
        self.ca_chain = ca_chain

    @property
    def effective_expiry(self):
        """The moment clients consider it expired: the ``E`` time with minutes and seconds dropped."""
        return self.expires.replace(minute=0, second=0)

    def is_expired(self, now):
        return utc_datetime(now) >= self.effective_expiry

    def seconds_left(self, now):
        return int((self.effective_expiry - utc_datetime(now)).total_seconds())

    def to_dict(self, now=None):
        result = {
            "name": self.name,
            "created": isoformat(self.created),
            "expires": isoformat(self.expires),
            "expires_epoch": epoch(self.expires),
            "fingerprints": [format_fingerprint(f) for f in self.fingerprints],
            "hash_algorithm": self.letter.algorithm,
        }
        if now is not None:
            seconds = self.seconds_left(now)
            result["seconds_left"] = seconds
            result["days_left"] = seconds // 86400
            result["expired"] = seconds <= 0
        return result


def _whitelist_time(line, prefix, what, label):
    if not re.match(r"^%s[0-9]{14}$" % prefix, line):
        raise _error("malformed", "%s is not a valid whitelist: the %s line is %r, expected %s"
                     "YYYYMMDDhhmmss (UTC)" % (what, label, line[:80], prefix))
    digits = line[len(prefix):]
    try:
        return datetime.datetime(int(digits[0:4]), int(digits[4:6]), int(digits[6:8]), int(digits[8:10]),
                                 int(digits[10:12]), int(digits[12:14]), tzinfo=_UTC)
    except ValueError:
        raise _error("malformed", "%s: the %s line %r is not a real date" % (what, label, line))


def normalise_fingerprint(text):
    """``AB:CD:..[-SHAKE128]  # comment`` -> ``abcd..[-shake128]``, or ``None`` if it is none."""
    text = re.split(r"[ \t#]", text, 1)[0].replace(":", "").lower()
    try:
        hash_algorithm(text)
    except CvmfsError:
        return None
    return text


def format_fingerprint(hash_str):
    """``abcd..-shake128`` -> ``AB:CD:..-SHAKE128`` (the whitelist's own notation)."""
    hexpart, sep, suffix = hash_str.partition("-")
    pairs = ":".join(hexpart[i:i + 2] for i in range(0, len(hexpart), 2))
    return (pairs + sep + suffix).upper()


def parse_whitelist(data, what=WHITELIST):
    """Parse ``.cvmfswhitelist`` bytes (structure only; see :func:`verify_whitelist`)."""
    letter = split_letter(data, what)
    lines = _text_lines(letter.body, what)
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) < 3:
        raise _error("malformed", "%s is not a valid whitelist: it needs a creation time, an E "
                     "(expiry) line and an N (repository name) line before '--'" % what)
    created = _whitelist_time(lines[0], "", what, "first (creation time)")
    expires = _whitelist_time(lines[1], "E", what, "second (expiry)")
    if not lines[2].startswith("N") or len(lines[2]) < 2:
        raise _error("malformed", "%s is not a valid whitelist: the third line is %r, expected "
                     "N<repository name>" % (what, lines[2][:80]))
    name = lines[2][1:]
    rest = lines[3:]
    pkcs7 = ca_chain = False
    if rest and rest[0] == "Vpkcs7":
        pkcs7 = True
        rest = rest[1:]
    if rest and rest[0] == "Wcachain":
        ca_chain = True
        rest = rest[1:]
    fingerprints = [f for f in (normalise_fingerprint(line) for line in rest) if f]
    return Whitelist(letter, created, expires, name, fingerprints, pkcs7=pkcs7, ca_chain=ca_chain)


def verify_whitelist(whitelist, public_keys, what=WHITELIST):
    """Check the whitelist's hash line and its raw RSA signature against the master key(s).

    ``public_keys`` is a list of ``cryptography`` RSA public keys (see :func:`load_public_keys`);
    any one may have signed it, as for the client's colon-separated ``CVMFS_PUBLIC_KEY``.
    Returns the index of the key that verified.
    """
    require_cryptography()
    if whitelist.pkcs7:
        raise _error("unsupported", "%s is signed with PKCS#7 (line Vpkcs7, signature in "
                     ".cvmfswhitelist.pkcs7), which this check does not verify" % what)
    whitelist.letter.check_hash(what)
    expected = whitelist.letter.hash_str.encode("ascii")
    size = len(whitelist.letter.signature)
    if public_keys and all(size != key.key_size // 8 for key in public_keys):
        raise _error("bad_signature", "signature of %s is %d bytes long, which fits none of the given "
                     "master public keys (%s): the whitelist is truncated or has bytes appended, or "
                     "public_keys are not the master public key (<repository>.pub) of repository %s"
                     % (what, size, ", ".join("%d bits" % key.key_size for key in public_keys), whitelist.name))
    for index, key in enumerate(public_keys):
        if len(whitelist.letter.signature) != key.key_size // 8:
            continue
        try:
            if key.recover_data_from_signature(whitelist.letter.signature, padding.PKCS1v15(), None) == expected:
                return index
        except (InvalidSignature, ValueError):
            continue
    raise _error("bad_signature", "signature of %s does not verify with %s: either the whitelist "
                 "was tampered with or truncated, or public_keys are not the master public key "
                 "(<repository>.pub) of repository %s"
                 % (what, "the given public key" if len(public_keys) == 1
                    else "any of the %d given public keys" % len(public_keys), whitelist.name))


def check_whitelist_expiry(whitelist, now, what=WHITELIST):
    now = utc_datetime(now)
    if whitelist.is_expired(now):
        raise _error("whitelist_expired", "%s of %s expired at %s (clients stop accepting it at %s; "
                     "checked at %s): re-sign it on the stratum-0 with 'cvmfs_server resign %s', then "
                     "let the stratum-1s take a snapshot"
                     % (what, whitelist.name, isoformat(whitelist.expires),
                        isoformat(whitelist.effective_expiry), isoformat(now), whitelist.name),
                     whitelist_expires=isoformat(whitelist.expires))


# --------------------------------------------------------------------------- keys and certificates

def _pem_blocks(text, kind):
    pattern = r"-----BEGIN %s-----.*?-----END %s-----" % (kind, kind)
    return re.findall(pattern, text, re.S)


def load_public_keys(pem_texts, what="public key"):
    """RSA public keys from PEM texts; one text may hold several ``PUBLIC KEY`` blocks.

    ``pem_texts`` is a list of ``(label, text)``; ``label`` names the source in errors.
    """
    require_cryptography()
    keys = []
    for label, text in pem_texts:
        if isinstance(text, bytes):
            text = text.decode("ascii", "replace")
        blocks = _pem_blocks(text, "PUBLIC KEY") + _pem_blocks(text, "RSA PUBLIC KEY")
        if not blocks:
            if "PRIVATE KEY" in text:
                raise _error("bad_key", "%s (%s) is a private key; give the master PUBLIC key "
                             "(<repository>.pub) instead, and keep private keys off this host" % (what, label))
            raise _error("bad_key", "%s (%s) holds no PEM public key ('-----BEGIN PUBLIC KEY-----'); "
                         "give the repository's master public key <repository>.pub" % (what, label))
        for block in blocks:
            try:
                key = serialization.load_pem_public_key(block.encode("ascii"))
            except (ValueError, UnsupportedAlgorithm) as exc:
                raise _error("bad_key", "%s (%s) cannot be read: %s" % (what, label, exc))
            if not isinstance(key, rsa.RSAPublicKey):
                raise _error("bad_key", "%s (%s) is not an RSA key; CernVM-FS master keys are RSA"
                             % (what, label))
            keys.append(key)
    return keys


def read_public_key_sources(sources):
    """Turn ``public_keys`` option values into ``(label, PEM text)`` pairs.

    Each value is PEM text, a file, or a directory (all its ``*.pub`` files, like the client's
    ``CVMFS_KEYS_DIR``).
    """
    result = []
    for source in sources:
        if "-----BEGIN" in source:
            result.append(("inline PEM text #%d" % (len(result) + 1), source))
            continue
        path = os.path.expanduser(source)
        if os.path.isdir(path):
            names = sorted(n for n in os.listdir(path) if n.endswith(".pub"))
            if not names:
                raise _error("bad_key", "public key directory %s contains no *.pub file" % path)
            for name in names:
                result.append(_read_key_file(os.path.join(path, name)))
        else:
            result.append(_read_key_file(path))
    return result


def _read_key_file(path):
    try:
        with open(path, "rb") as handle:
            return path, handle.read(64 * 1024).decode("ascii", "replace")
    except (IOError, OSError) as exc:
        raise _error("bad_key", "cannot read public key file %s: %s; give a path to the master public "
                     "key (<repository>.pub), a directory of *.pub files, or the PEM text" % (path, exc.strerror))


def load_certificate_object(data, hash_str, what="certificate object"):
    """Check the stored object against its hash, inflate it if zlib-compressed, parse the PEM."""
    require_cryptography()
    check_object(data, hash_str, what)
    if data.lstrip().startswith(b"-----BEGIN"):
        pem = data
    else:
        try:
            pem = _inflate(data, MAX_SMALL_FILE, what)
        except CvmfsError:
            raise _error("malformed", "%s is neither a PEM certificate nor zlib-compressed data" % what)
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise _error("malformed", "%s does not hold a PEM X.509 certificate: %s" % (what, exc))


def certificate_fingerprint(certificate, algorithm="sha1"):
    """Hash string of the certificate's DER encoding (what the whitelist lists)."""
    return hash_string(certificate.public_bytes(serialization.Encoding.DER), algorithm)


def check_certificate_listed(certificate, whitelist, what):
    """Raise ``not_in_whitelist`` unless a fingerprint of the certificate is in the whitelist."""
    for listed in whitelist.fingerprints:
        if certificate_fingerprint(certificate, hash_algorithm(listed)) == listed:
            return listed
    own = certificate_fingerprint(certificate, "sha1")
    raise _error("not_in_whitelist", "%s (fingerprint %s) is not listed in the whitelist of %s, which "
                 "lists %s: the manifest was signed with a certificate the master key did not "
                 "approve; re-sign the whitelist on the stratum-0 ('cvmfs_server resign %s') if the "
                 "certificate is legitimate"
                 % (what, format_fingerprint(own), whitelist.name,
                    ", ".join(format_fingerprint(f) for f in whitelist.fingerprints) or "no fingerprint",
                    whitelist.name))


# --------------------------------------------------------------------------- compressed objects, catalogs

def _inflate(data, limit, what):
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise _error("malformed", "%s is not valid zlib data: %s" % (what, exc))
    if len(out) > limit:
        raise _error("malformed", "%s inflates to more than %d bytes" % (what, limit))
    if not inflater.eof:
        raise _error("malformed", "%s is truncated: its zlib stream does not end" % what)
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
        raise _error("malformed", "%s is not valid zlib data: %s" % (what, exc))
    if not inflater.eof:
        raise _error("malformed", "%s is truncated: its zlib stream does not end" % what)


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
            raise _error("malformed", "%s is not a CernVM-FS catalog (SQLite with tables properties, "
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


def parse_status_json(data, what=STATUS_JSON):
    """``.cvmfs_status.json`` as a dict (keys such as last_snapshot, last_gc, last_check)."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _error("malformed", "%s is not JSON" % what)
    if not isinstance(value, dict):
        raise _error("malformed", "%s is JSON but not an object" % what)
    return value


# --------------------------------------------------------------------------- HTTP

class _HttpRetry(Retry):
    @staticmethod
    def is_transient(error):
        if isinstance(error, HTTPError):
            return error.code in (502, 503, 504)
        if isinstance(error, URLError):
            error = error.reason
        return isinstance(error, (socket.timeout, ConnectionResetError, ConnectionAbortedError))


def redact_url(url):
    """``http://user:secret@proxy:3128`` -> ``http://***@proxy:3128`` (for messages)."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1***@", url)


class HttpFetcher:
    """GET small files over HTTP(S) with the standard library, like ``cvmfs_server`` does.

    ``proxy``: ``None`` uses the environment (``http_proxy`` ...), ``"DIRECT"`` (or ``""``)
    connects directly, anything else is the proxy URL for both http and https.
    Requests carry ``Cache-Control: max-age=0`` so that proxies revalidate their copy.
    """

    user_agent = "sharedsw.cvmfs repository_info"

    def __init__(self, proxy=None, timeout=10.0, ca_file=None, validate_certs=True, retries=2,
                 sleep=None):
        handlers = []
        if proxy is not None:
            if proxy in ("", "DIRECT"):
                handlers.append(ProxyHandler({}))
            else:
                handlers.append(ProxyHandler({"http": proxy, "https": proxy}))
        context = ssl.create_default_context(cafile=ca_file)
        if not validate_certs:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        handlers.append(HTTPSHandler(context=context))
        self.proxy = proxy
        self.timeout = timeout
        self.retries = retries
        self._sleep = sleep
        self._opener = build_opener(*handlers)

    def _open(self, url, max_bytes):
        request = Request(url, headers={"Cache-Control": "max-age=0", "User-Agent": self.user_agent})
        response = self._opener.open(request, timeout=self.timeout)
        try:
            data = response.read(max_bytes + 1)
        finally:
            response.close()
        return data

    def get(self, url, max_bytes=MAX_SMALL_FILE, missing_ok=False):
        """Body of ``url`` (bytes), or ``http_error``.

        With ``missing_ok`` a 404 -- or a 403, which is what a public-read S3 bucket answers for a
        key that does not exist -- returns ``None``. Only optional files are fetched that way,
        after the manifest came through, so a proxy refusing access is still reported.
        """
        kwargs = {"retries": self.retries}
        if self._sleep is not None:
            kwargs["sleep"] = self._sleep
        fetch = _HttpRetry.backoff(**kwargs)(self._open)
        via = "" if self.proxy in (None, "", "DIRECT") else " through proxy %s" % redact_url(self.proxy)
        try:
            data = fetch(url, max_bytes)
        except HTTPError as exc:
            exc.close()
            if exc.code in (403, 404) and missing_ok:
                return None
            squid = exc.headers.get("X-Squid-Error") if exc.headers else None
            detail = " (proxy error %s)" % squid if squid else ""
            raise _error("http_error", "GET %s%s failed: HTTP %s %s%s" % (url, via, exc.code, exc.reason, detail),
                         status=exc.code)
        except URLError as exc:
            raise _error("http_error", "GET %s%s failed: %s" % (url, via, exc.reason))
        except (socket.timeout, OSError, HTTPException) as exc:
            raise _error("http_error", "GET %s%s failed: %s" % (url, via, exc or type(exc).__name__))
        if len(data) > max_bytes:
            raise _error("malformed", "GET %s returned more than %d bytes; that is not a CernVM-FS "
                         "repository file" % (url, max_bytes))
        return data


# --------------------------------------------------------------------------- the whole check

def join_url(base, *parts):
    return "/".join([base.rstrip("/")] + [p.strip("/") for p in parts])


def verify_repository(base_url, fetcher, public_keys, now, name=None):
    """Fetch and verify manifest, whitelist and certificate of the repository at ``base_url``.

    ``public_keys``: RSA master public keys; ``now``: the moment expiry is judged at;
    ``name``: the expected repository name (optional; else the manifest's ``N`` line is used).
    Returns ``(manifest, whitelist, certificate, listed fingerprint)``.
    """
    require_cryptography()
    manifest_url = join_url(base_url, MANIFEST)
    whitelist_url = join_url(base_url, WHITELIST)
    try:
        manifest_data = fetcher.get(manifest_url)
    except CvmfsError as exc:
        if exc.extra.get("status") == 404:
            exc.message += ("; the URL should be the repository's base directory, the one holding "
                            ".cvmfspublished (e.g. http://<server>/cvmfs/<repository>)")
            exc.args = (exc.message,)
        raise
    manifest = parse_manifest(manifest_data, manifest_url)
    whitelist = parse_whitelist(fetcher.get(whitelist_url), whitelist_url)

    verify_whitelist(whitelist, public_keys, whitelist_url)
    expected = name or manifest.name or whitelist.name
    if whitelist.name != expected:
        raise _error("name_mismatch", "%s is for repository %s, but %s; check the URL and the "
                     "repository name" % (whitelist_url, whitelist.name,
                                          "the expected repository is %s" % name if name
                                          else "the manifest names %s" % expected))
    if manifest.name is not None and manifest.name != expected:
        raise _error("name_mismatch", "%s is for repository %s, but the expected repository is %s; "
                     "check the URL and the repository name" % (manifest_url, manifest.name, expected))
    check_whitelist_expiry(whitelist, now, whitelist_url)

    if not manifest.certificate:
        raise _error("malformed", "%s has no X line (certificate hash), so its signature cannot be "
                     "checked" % manifest_url)
    certificate_url = join_url(base_url, object_path(manifest.certificate, "X"))
    certificate = load_certificate_object(fetcher.get(certificate_url), manifest.certificate,
                                          "certificate object %s" % certificate_url)
    listed = check_certificate_listed(certificate, whitelist, "certificate %s" % certificate_url)
    verify_manifest(manifest, certificate, manifest_url)
    return manifest, whitelist, certificate, listed


def _stratum1_info(base_url, fetcher, now):
    text = fetcher.get(join_url(base_url, LAST_SNAPSHOT), missing_ok=True)
    if text is None:
        return None
    last = parse_snapshot_time(text, join_url(base_url, LAST_SNAPSHOT))
    if last is None:
        raise _error("malformed", "%s is empty: the last snapshot of this stratum-1 did not complete "
                     "(disk full?)" % join_url(base_url, LAST_SNAPSHOT))
    status_data = fetcher.get(join_url(base_url, STATUS_JSON), missing_ok=True)
    status = None if status_data is None else parse_status_json(status_data, join_url(base_url, STATUS_JSON))
    snapshotting = fetcher.get(join_url(base_url, IS_SNAPSHOTTING), missing_ok=True) is not None
    return {
        "last_snapshot": isoformat(last),
        "last_snapshot_epoch": epoch(last),
        "snapshot_age_seconds": int((utc_datetime(now) - last).total_seconds()),
        "snapshot_in_progress": snapshotting,
        "status": status,
    }


def inspect_repository(base_url, fetcher, public_keys, now, name=None, stratum0_url=None,
                       read_root_catalog=False):
    """Verify the repository at ``base_url`` and describe it as a plain dict (see the module's RETURN)."""
    now = utc_datetime(now)
    manifest, whitelist, certificate, listed = verify_repository(base_url, fetcher, public_keys, now, name)
    result = {
        "name": manifest.name or whitelist.name,
        "url": base_url,
        "revision": manifest.revision,
        "root_catalog_hash": manifest.root_catalog,
        "root_catalog_size": manifest.root_catalog_size,
        "hash_algorithm": hash_algorithm(manifest.root_catalog),
        "published": isoformat(manifest.published) if manifest.published else None,
        "published_epoch": manifest.timestamp,
        "ttl": manifest.ttl,
        "garbage_collectable": manifest.garbage_collectable,
        "alternative_paths": manifest.alternative_paths,
        "history_hash": manifest.history,
        "metainfo_hash": manifest.metainfo,
        "reflog_hash": manifest.reflog,
        "certificate": {
            "hash": manifest.certificate,
            "fingerprint": format_fingerprint(listed),
            "subject": certificate.subject.rfc4514_string(),
        },
        "whitelist": whitelist.to_dict(now),
        "replicable": fetcher.get(join_url(base_url, MASTER_REPLICA), missing_ok=True) is not None,
        "stratum1": _stratum1_info(base_url, fetcher, now),
        "replication": None,
        "catalog": None,
    }
    if read_root_catalog:
        catalog_url = join_url(base_url, object_path(manifest.root_catalog, "C"))
        catalog = read_catalog(fetcher.get(catalog_url, MAX_CATALOG), manifest.root_catalog,
                               "root catalog %s" % catalog_url)
        if catalog["revision"] is not None and catalog["revision"] != manifest.revision:
            raise _error("malformed", "root catalog %s has revision %s but the manifest says %s"
                         % (catalog_url, catalog["revision"], manifest.revision))
        result["catalog"] = catalog
    if stratum0_url:
        upstream = verify_repository(stratum0_url, fetcher, public_keys, now,
                                     name or result["name"])[0]
        behind = max(upstream.revision - manifest.revision, 0)
        lag = 0
        if behind and upstream.timestamp is not None and manifest.timestamp is not None:
            lag = max(upstream.timestamp - manifest.timestamp, 0)
        result["replication"] = {
            "stratum0_url": stratum0_url,
            "stratum0_revision": upstream.revision,
            "stratum0_published": isoformat(upstream.published) if upstream.published else None,
            "revisions_behind": behind,
            "lag_seconds": lag,
            "in_sync": upstream.revision == manifest.revision
            and upstream.root_catalog == manifest.root_catalog,
        }
    return result
