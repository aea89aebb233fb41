# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""CernVM-FS repository key files: kinds, names, validation, fingerprints, Vault layout, atomic writes.

Internal to sharedsw.cvmfs; may change in any release. No Ansible import.

Must not import Ansible (the ``keys`` module and the ``repo_public_key`` lookup share it) nor the
Vault client (``_vault``): it names Vault paths and fields, its callers read and write them.

Five kinds of key file live in a keys directory (``/etc/cvmfs/keys``), named after the repository:

========== ===================== ========== ==========================================
kind       file                  mode       content
========== ===================== ========== ==========================================
masterkey  ``<repo>.masterkey``  0400       RSA private key; signs the whitelist
key        ``<repo>.key``        0400       RSA private key; signs every publish
crt        ``<repo>.crt``        0444       X.509 certificate wrapping the ``.key`` public part
pub        ``<repo>.pub``        0444       PEM public key of the masterkey
gw         ``<repo>.gw``         0400       ``plain_text <key id> <secret>`` gateway API key
========== ===================== ========== ==========================================

Nothing in this file ever puts key material into a message: errors name the file or Vault path
and say what shape was expected; fingerprints of private keys are fingerprints of their public
half.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import hashlib
import hmac
import os
import re
import stat
import string
import tempfile

from ._common import CvmfsError
from ._crypto import hashes, require_cryptography, rsa, serialization, x509

KINDS = ("masterkey", "key", "crt", "pub", "gw")
PRIVATE_KINDS = frozenset(("masterkey", "key", "gw"))
PUBLIC_KINDS = frozenset(("crt", "pub"))
SUFFIXES = {"masterkey": ".masterkey", "key": ".key", "crt": ".crt", "pub": ".pub", "gw": ".gw"}
PRIVATE_MODE = 0o400
PUBLIC_MODE = 0o444

LAYOUTS = ("per_kind", "single_path")
# the options that say where the keys of a repository live in Vault (doc fragment _vault.key_layout);
# their values are names of paths and fields, not key material
_KIND_OPTIONS = dict((kind, dict(type="str", no_log=False)) for kind in KINDS)
LAYOUT_ARGSPEC = dict(
    fields=dict(type="dict", options=_KIND_OPTIONS),
    layout=dict(type="str", default="per_kind", choices=list(LAYOUTS)),
    path_prefix=dict(type="str", default="cvmfs"),
    paths=dict(type="dict", options=_KIND_OPTIONS),
)
DEFAULT_PATHS = {
    "per_kind": {
        "masterkey": "{prefix}/{repo}/master",
        "key": "{prefix}/{repo}/signing",
        "gw": "{prefix}/{repo}/gateway",
        "pub": "{prefix}/{repo}/public",
        "crt": "{prefix}/{repo}/public",
    },
    "single_path": dict((kind, "{prefix}/{repo}") for kind in KINDS),
}
DEFAULT_FIELDS = {
    "per_kind": {"masterkey": "masterkey", "key": "key", "crt": "crt", "pub": "pub", "gw": "gw"},
    # INFN-style names; the repository key has no INFN name, hence repositoryKey.
    "single_path": {"masterkey": "masterKey", "key": "repositoryKey", "crt": "certificateKey",
                    "pub": "publicKey", "gw": "gatewayKey"},
}

_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,59}$")
_PATH_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_.@=+-]+$")
_RUN_KEY = os.urandom(32)  # keys the per-run gateway-secret fingerprint; never leaves the process


def mode_for(kind):
    return PRIVATE_MODE if kind in PRIVATE_KINDS else PUBLIC_MODE


def file_name(repo, kind):
    return repo + SUFFIXES[kind]


def check_repo_name(repo):
    """A CernVM-FS repository name: 1-60 characters of [A-Za-z0-9_.-], starting alphanumeric."""
    if not isinstance(repo, str) or not _REPO_RE.match(repo):
        raise CvmfsError("name %r is not a CernVM-FS repository name: 1-60 characters of letters, digits, '_', '.' "
                         "and '-', starting with a letter or digit (e.g. software.example.org)" % (repo,))
    return repo


def parse_kinds(kinds, option="kinds"):
    """Normalise a list of kinds (also accepts one comma-separated string); keeps KINDS order."""
    if isinstance(kinds, str):
        kinds = kinds.split(",")
    wanted = [k.strip() for k in kinds or [] if k and k.strip()]
    unknown = [k for k in wanted if k not in KINDS]
    if unknown:
        raise CvmfsError("%s: unknown key kind %s; choose from %s" % (option, ", ".join(unknown), ", ".join(KINDS)))
    return [k for k in KINDS if k in wanted]


# --------------------------------------------------------------------------------------------
# Where each kind lives in Vault


class Layout:
    """Maps each kind to ``(path, field)`` inside the KV v2 mount.

    ``layout`` picks the defaults (``per_kind``: one path per kind so that policies can be least
    privilege; ``single_path``: everything in one secret, INFN-style field names); ``paths`` and
    ``fields`` override single kinds. Path templates know ``{prefix}`` and ``{repo}``.
    """

    def __init__(self, repo, layout="per_kind", prefix="cvmfs", paths=None, fields=None):
        if layout not in LAYOUTS:
            raise CvmfsError("layout must be one of %s, not %r" % (", ".join(LAYOUTS), layout))
        self.repo = check_repo_name(repo)
        self.layout = layout
        self.prefix = (prefix or "").strip("/")
        templates = dict(DEFAULT_PATHS[layout])
        templates.update((k, v) for k, v in (paths or {}).items() if v)
        names = dict(DEFAULT_FIELDS[layout])
        names.update((k, v) for k, v in (fields or {}).items() if v)
        for option, mapping in (("paths", templates), ("fields", names)):
            extra = sorted(set(mapping) - set(KINDS))
            if extra:
                raise CvmfsError("%s: unknown key kind %s; choose from %s" % (option, ", ".join(extra), ", ".join(KINDS)))
        self.locations = {}
        for kind in KINDS:
            self.locations[kind] = (self._render(kind, templates[kind]), names[kind])
        seen = {}
        for kind in KINDS:
            other = seen.setdefault(self.locations[kind], kind)
            if other != kind:
                raise CvmfsError("paths/fields: %s and %s would both be stored in field %s of %s; give them different "
                                 "fields or paths" % (other, kind, self.locations[kind][1], self.locations[kind][0]))

    def _render(self, kind, template):
        try:
            path = template.format(prefix=self.prefix, repo=self.repo)
        except (KeyError, IndexError, ValueError) as error:
            raise CvmfsError("paths.%s: template %r may only use {prefix} and {repo} (%s)" % (kind, template, error))
        path = path.strip("/")
        segments = path.split("/")
        if not path or any(s in ("", ".", "..") or not _PATH_SEGMENT_RE.match(s) for s in segments):
            raise CvmfsError("paths.%s: %r renders to %r, which is not a clean Vault path (segments of letters, digits "
                             "and _ . @ = + -, no empty, '.' or '..' segments)" % (kind, template, path))
        return path

    def path(self, kind):
        return self.locations[kind][0]

    def field(self, kind):
        return self.locations[kind][1]

    def by_path(self, kinds):
        """``{path: [kinds]}`` for the given kinds, in KINDS order."""
        groups = {}
        for kind in KINDS:
            if kind in kinds:
                groups.setdefault(self.path(kind), []).append(kind)
        return groups

    def sharing(self, path):
        """Every kind stored at ``path`` (not only the asked ones)."""
        return [k for k in KINDS if self.path(k) == path]


# --------------------------------------------------------------------------------------------
# Validation and fingerprints


def _as_text(data, source, kind):
    if isinstance(data, bytes):
        try:
            data = data.decode("ascii")
        except UnicodeDecodeError:
            raise CvmfsError("%s is not a %s: it is not ASCII text" % (source, describe(kind)))
    if not isinstance(data, str):
        raise CvmfsError("%s is not a %s: it is not text" % (source, describe(kind)))
    if any(ord(c) > 127 for c in data):
        raise CvmfsError("%s is not a %s: it is not ASCII text" % (source, describe(kind)))
    if not data.strip():
        raise CvmfsError("%s is empty; expected a %s" % (source, describe(kind)))
    return data


def describe(kind):
    return {
        "masterkey": "PEM RSA private key (the masterkey, unencrypted)",
        "key": "PEM RSA private key (the repository key, unencrypted)",
        "crt": "PEM X.509 certificate",
        "pub": "PEM public key (-----BEGIN PUBLIC KEY-----)",
        "gw": "gateway key file of one line 'plain_text <key id> <secret>'",
    }[kind]


def parse_gw(text, source="gateway key"):
    """``(key_id, secret)`` of a ``.gw`` file; exactly three whitespace-separated tokens."""
    tokens = text.split()
    if len(tokens) != 3 or tokens[0] != "plain_text":
        shape = "%d token(s)" % len(tokens)
        if tokens and tokens[0] != "plain_text":
            shape += ", first is not plain_text"
        raise CvmfsError("%s is not a %s (found %s)" % (source, describe("gw"), shape))
    if any(c not in string.printable for c in text):
        raise CvmfsError("%s is not a %s (non-printable characters)" % (source, describe("gw")))
    return tokens[1], tokens[2]


def load(kind, data, source):
    """Parse key material of ``kind``; raise CvmfsError naming ``source`` if it is not that.

    Returns the parsed object (cryptography key/certificate, or ``(id, secret)`` for gw).
    """
    text = _as_text(data, source, kind)
    if kind == "gw":
        return parse_gw(text, source)
    require_cryptography("to validate CernVM-FS keys")
    raw = text.encode("ascii")
    wrong = "%s is not a %s" % (source, describe(kind))
    try:
        if kind in ("masterkey", "key"):
            try:
                obj = serialization.load_pem_private_key(raw, password=None)
            except TypeError:
                raise CvmfsError("%s is an encrypted private key; CernVM-FS needs it unencrypted" % source) from None
            if not isinstance(obj, rsa.RSAPrivateKey):
                raise CvmfsError("%s: found a private key, but not RSA (CernVM-FS signs with RSA)" % wrong)
        elif kind in PUBLIC_KINDS:
            if "PRIVATE KEY" in text:
                raise CvmfsError("%s: it holds a private key; a %s file must hold only the %s"
                                 % (wrong, SUFFIXES[kind], "public key" if kind == "pub" else "certificate"))
            if kind == "crt":
                obj = x509.load_pem_x509_certificate(raw)
            else:
                obj = serialization.load_pem_public_key(raw)
                if not isinstance(obj, rsa.RSAPublicKey):
                    raise CvmfsError("%s: found a public key, but not RSA" % wrong)
        else:  # pragma: no cover - guarded by parse_kinds
            raise CvmfsError("unknown key kind %r" % kind)
    except CvmfsError:
        raise
    except Exception:  # pylint: disable=broad-except
        # the library's message may quote the input: say only what was expected, and drop the context
        raise CvmfsError(wrong) from None
    return obj


def _spki_sha256(public_key):
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "SHA256:" + hashlib.sha256(der).hexdigest()


def fingerprint(kind, obj, stable=True):
    """A fingerprint that reveals nothing secret.

    RSA keys: SHA-256 of the DER public key (so a masterkey and its .pub match). Certificates: the
    SHA-1 of the DER certificate, as in the ``.cvmfswhitelist``. Gateway keys: the key id, plus
    (``stable=False``, for diffs within one run) an HMAC of the secret under a per-run random key.
    """
    if kind == "gw":
        key_id, secret = obj
        text = "plain_text id=%s" % key_id
        if not stable:
            mac = hmac.new(_RUN_KEY, secret.encode("utf-8"), hashlib.sha256).hexdigest()[:12]
            text += " secret=%s (run-local HMAC)" % mac
        return text
    if kind in ("masterkey", "key"):
        return _spki_sha256(obj.public_key())
    if kind == "pub":
        return _spki_sha256(obj)
    digest = obj.fingerprint(hashes.SHA1())  # nosec - the fingerprint format of CernVM-FS whitelists
    return "SHA1:" + ":".join("%02X" % b for b in bytearray(digest))


def check_pairs(parsed, sources):
    """Reject a masterkey whose .pub does not match, and a .key whose .crt does not match."""
    for private, public in (("masterkey", "pub"), ("key", "crt")):
        if private in parsed and public in parsed:
            left = fingerprint(private, parsed[private])
            right = _spki_sha256(parsed[public].public_key() if public == "crt" else parsed[public])
            if left != right:
                raise CvmfsError("%s and %s do not belong together: the public key of %s is %s, %s holds %s"
                                 % (sources[private], sources[public], sources[private], left, sources[public], right))


# --------------------------------------------------------------------------------------------
# Local files


def file_state(path):
    """``(content bytes, mode, uid, gid)`` of a regular file, or ``None`` if there is none."""
    try:
        st = os.lstat(path)
    except OSError as error:
        if error.errno == errno.ENOENT:
            return None
        raise CvmfsError("cannot inspect %s: %s" % (path, os.strerror(error.errno)))
    if stat.S_ISLNK(st.st_mode):
        try:
            st = os.stat(path)
        except OSError:
            raise CvmfsError("%s is a dangling symbolic link; remove it or point it at the key file" % path)
    if not stat.S_ISREG(st.st_mode):
        raise CvmfsError("%s exists but is not a regular file" % path)
    try:
        with open(path, "rb") as handle:
            content = handle.read()
    except (IOError, OSError) as error:
        raise CvmfsError("cannot read %s: %s" % (path, os.strerror(error.errno)))
    return content, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def write_atomic(path, content, mode, uid=-1, gid=-1):
    """Replace ``path`` by ``content`` atomically: a temporary file in the same directory gets
    mode and owner first, then the content, fsync, rename over the target, fsync of the directory."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, mode)
        if uid != -1 or gid != -1:
            os.fchown(fd, uid, gid)
        view = memoryview(content)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
        os.close(fd)
        fd = None
        os.rename(tmp, path)
    except BaseException:
        if fd is not None:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
