# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Signed CernVM-FS files -- the one parser of ``.cvmfspublished`` and ``.cvmfswhitelist`` -- and their checks.

Internal to sharedsw.cvmfs; may change in any release. Owns: splitting a signed file into text,
hash line and signature; parsing manifests and whitelists (``parse_*``: structure only); verifying
them (``verify_*``: hash line and RSA signature, whitelist expiry, certificate listed); reading
master public keys and the repository certificate. ``cryptography`` comes from ``_crypto``;
must not import Ansible or any HTTP code (callers fetch the bytes).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import re

from ._common import CvmfsError
from ._crypto import InvalidSignature, UnsupportedAlgorithm, hashes, padding, rsa, serialization, x509
from ._crypto import require_cryptography as _require_library
from ._cvmfs_catalog import inflate
from ._cvmfs_hashes import check_object, cvmfs_error, hash_algorithm, hash_string
from ._cvmfs_time import epoch, isoformat, utc_datetime

MANIFEST = ".cvmfspublished"
WHITELIST = ".cvmfswhitelist"
MAX_SMALL_FILE = 1024 * 1024          # manifests, whitelists, certificates
_UTC = datetime.timezone.utc


def require_cryptography():
    _require_library("to verify CernVM-FS signatures", reason="unsupported")


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
            raise cvmfs_error("hash_mismatch", "%s was modified or damaged: its text hashes to %s but its "
                              "signed hash line says %s" % (what, actual, self.hash_str))


def split_letter(data, what):
    """Split a signed cvmfs text into a :class:`SignedLetter`; ``malformed`` if it is not one."""
    if not data:
        raise cvmfs_error("malformed", "%s is empty" % what)
    position = data.find(b"\n--\n")
    if position < 0:
        raise cvmfs_error("malformed", "%s is not a signed CernVM-FS file: it has no '--' line "
                          "separating the text from its signature (truncated, or not a repository file)" % what)
    body = data[:position + 1]
    rest = data[position + 4:]
    newline = rest.find(b"\n")
    if newline < 0:
        raise cvmfs_error("malformed", "%s is truncated: it ends in the hash line after '--', before "
                          "the signature" % what)
    try:
        hash_str = rest[:newline].decode("ascii").strip()
    except UnicodeDecodeError:
        raise cvmfs_error("malformed", "%s is garbage: the line after '--' is not a hex hash" % what)
    hash_algorithm(hash_str, "hash line of %s" % what)
    signature = rest[newline + 1:]
    if not signature:
        raise cvmfs_error("malformed", "%s is truncated: it has no signature after the hash line" % what)
    return SignedLetter(body, hash_str, signature)


def _text_lines(body, what):
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise cvmfs_error("malformed", "%s is garbage: its text part is not UTF-8" % what)
    if "\x00" in text:
        raise cvmfs_error("malformed", "%s is garbage: its text part contains NUL bytes" % what)
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
        raise cvmfs_error("malformed", "%s is not a valid manifest: required line(s) %s missing "
                          "(C root catalog, R root path hash, D TTL and S revision must be present)"
                          % (what, ", ".join(missing)))
    for key, attribute, kind in _MANIFEST_FIELDS:
        value = fields.get(key)
        if value is None:
            continue
        if kind == "int" and not re.match(r"^[0-9]+$", value):
            raise cvmfs_error("malformed", "%s: line %s (%s) is %r, expected a non-negative integer"
                              % (what, key, attribute, value[:80]))
        if kind == "bool" and value not in ("yes", "no"):
            raise cvmfs_error("malformed", "%s: line %s (%s) is %r, expected 'yes' or 'no'"
                              % (what, key, attribute, value[:80]))
        if kind == "hash":
            hash_algorithm(value, "%s line %s (%s)" % (what, key, attribute))
    return Manifest(letter, fields, tips)


def _unverified(parse, data, what, attribute):
    try:
        return getattr(parse(data, what), attribute)
    except CvmfsError:
        return None


def manifest_revision(data, what=MANIFEST):
    """The revision (``S`` line) of manifest bytes, unverified; ``None`` if they are not a manifest."""
    return _unverified(parse_manifest, data, what, "revision")


def verify_manifest(manifest, certificate, what=MANIFEST):
    """Check the manifest's hash line and its signature with the certificate's public key."""
    require_cryptography()
    manifest.letter.check_hash(what)
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey) and len(manifest.letter.signature) != key.key_size // 8:
        raise cvmfs_error("bad_signature", "signature of %s is %d bytes long, but the repository certificate %s "
                          "holds a %d-bit key, whose signatures are %d bytes: the file is truncated or has "
                          "bytes appended" % (what, len(manifest.letter.signature), manifest.certificate,
                                              key.key_size, key.key_size // 8))
    try:
        if not isinstance(key, rsa.RSAPublicKey):
            raise InvalidSignature()
        key.verify(manifest.letter.signature, manifest.letter.hash_str.encode("ascii"),
                   padding.PKCS1v15(), hashes.SHA1())
    except InvalidSignature:
        raise cvmfs_error("bad_signature", "signature of %s does not verify with the repository certificate "
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
        raise cvmfs_error("malformed", "%s is not a valid whitelist: the %s line is %r, expected %s"
                          "YYYYMMDDhhmmss (UTC)" % (what, label, line[:80], prefix))
    digits = line[len(prefix):]
    try:
        return datetime.datetime(int(digits[0:4]), int(digits[4:6]), int(digits[6:8]), int(digits[8:10]),
                                 int(digits[10:12]), int(digits[12:14]), tzinfo=_UTC)
    except ValueError:
        raise cvmfs_error("malformed", "%s: the %s line %r is not a real date" % (what, label, line))


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
        raise cvmfs_error("malformed", "%s is not a valid whitelist: it needs a creation time, an E "
                          "(expiry) line and an N (repository name) line before '--'" % what)
    created = _whitelist_time(lines[0], "", what, "first (creation time)")
    expires = _whitelist_time(lines[1], "E", what, "second (expiry)")
    if not lines[2].startswith("N") or len(lines[2]) < 2:
        raise cvmfs_error("malformed", "%s is not a valid whitelist: the third line is %r, expected "
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


def parse_whitelist_expiry(data, what=WHITELIST):
    """The expiry (``E`` line, aware UTC) of whitelist bytes, unverified; ``None`` if they are not a whitelist."""
    return _unverified(parse_whitelist, data, what, "expires")


def verify_whitelist(whitelist, public_keys, what=WHITELIST):
    """Check the whitelist's hash line and its raw RSA signature against the master key(s).

    ``public_keys`` is a list of ``cryptography`` RSA public keys (see :func:`load_public_keys`);
    any one may have signed it, as for the client's colon-separated ``CVMFS_PUBLIC_KEY``.
    Returns the index of the key that verified.
    """
    require_cryptography()
    if whitelist.pkcs7:
        raise cvmfs_error("unsupported", "%s is signed with PKCS#7 (line Vpkcs7, signature in "
                          ".cvmfswhitelist.pkcs7), which this check does not verify" % what)
    whitelist.letter.check_hash(what)
    expected = whitelist.letter.hash_str.encode("ascii")
    size = len(whitelist.letter.signature)
    if public_keys and all(size != key.key_size // 8 for key in public_keys):
        raise cvmfs_error("bad_signature", "signature of %s is %d bytes long, which fits none of the given "
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
    raise cvmfs_error("bad_signature", "signature of %s does not verify with %s: either the whitelist "
                      "was tampered with or truncated, or public_keys are not the master public key "
                      "(<repository>.pub) of repository %s"
                      % (what, "the given public key" if len(public_keys) == 1
                         else "any of the %d given public keys" % len(public_keys), whitelist.name))


def check_whitelist_expiry(whitelist, now, what=WHITELIST):
    now = utc_datetime(now)
    if whitelist.is_expired(now):
        raise cvmfs_error("whitelist_expired", "%s of %s expired at %s (clients stop accepting it at %s; "
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
                raise cvmfs_error("bad_key", "%s (%s) is a private key; give the master PUBLIC key "
                                  "(<repository>.pub) instead, and keep private keys off this host" % (what, label))
            raise cvmfs_error("bad_key", "%s (%s) holds no PEM public key ('-----BEGIN PUBLIC KEY-----'); "
                              "give the repository's master public key <repository>.pub" % (what, label))
        for block in blocks:
            try:
                key = serialization.load_pem_public_key(block.encode("ascii"))
            except (ValueError, UnsupportedAlgorithm) as exc:
                raise cvmfs_error("bad_key", "%s (%s) cannot be read: %s" % (what, label, exc))
            if not isinstance(key, rsa.RSAPublicKey):
                raise cvmfs_error("bad_key", "%s (%s) is not an RSA key; CernVM-FS master keys are RSA"
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
                raise cvmfs_error("bad_key", "public key directory %s contains no *.pub file" % path)
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
        raise cvmfs_error("bad_key", "cannot read public key file %s: %s; give a path to the master public "
                          "key (<repository>.pub), a directory of *.pub files, or the PEM text" % (path, exc.strerror))


def load_certificate_object(data, hash_str, what="certificate object"):
    """Check the stored object against its hash, inflate it if zlib-compressed, parse the PEM."""
    require_cryptography()
    check_object(data, hash_str, what)
    if data.lstrip().startswith(b"-----BEGIN"):
        pem = data
    else:
        try:
            pem = inflate(data, MAX_SMALL_FILE, what)
        except CvmfsError:
            raise cvmfs_error("malformed", "%s is neither a PEM certificate nor zlib-compressed data" % what)
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise cvmfs_error("malformed", "%s does not hold a PEM X.509 certificate: %s" % (what, exc))


def certificate_fingerprint(certificate, algorithm="sha1"):
    """Hash string of the certificate's DER encoding (what the whitelist lists)."""
    return hash_string(certificate.public_bytes(serialization.Encoding.DER), algorithm)


def check_certificate_listed(certificate, whitelist, what):
    """Raise ``not_in_whitelist`` unless a fingerprint of the certificate is in the whitelist."""
    for listed in whitelist.fingerprints:
        if certificate_fingerprint(certificate, hash_algorithm(listed)) == listed:
            return listed
    own = certificate_fingerprint(certificate, "sha1")
    raise cvmfs_error("not_in_whitelist", "%s (fingerprint %s) is not listed in the whitelist of %s, which "
                      "lists %s: the manifest was signed with a certificate the master key did not "
                      "approve; re-sign the whitelist on the stratum-0 ('cvmfs_server resign %s') if the "
                      "certificate is legitimate"
                      % (what, format_fingerprint(own), whitelist.name,
                         ", ".join(format_fingerprint(f) for f in whitelist.fingerprints) or "no fingerprint",
                         whitelist.name))
