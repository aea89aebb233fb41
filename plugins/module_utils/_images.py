# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Endorsed VM images: signed image lists, site approval, verified download, Glance sync.

Internal to sharedsw.cvmfs; may change in any release. No Ansible import: the module
``image_sync``, the endorser's signing tool (``tools/image_list.py``) and tests share this code.

The trust model
---------------
An *endorser* publishes an image list (YAML, :data:`LIST_FORMAT` 1) and a detached signature of
its exact bytes: Ed25519 (RFC 8032) over the file as it is, no canonicalisation, the 64-byte
signature stored base64-encoded on one line in ``<list>.sig`` (the raw 64 bytes are accepted too,
as ``openssl pkeyutl -sign -rawin`` writes them). The endorser's public key is a PEM
``SubjectPublicKeyInfo`` file. A site verifies the signature *before* parsing the list, refuses a
list that names another endorser than the key was configured for, that has expired, or that was
issued before the list it last accepted, and then takes from it only the images its own *approved*
list names.

Every list says when it was ``issued`` and must end: at its ``expires``, or (when the site sets a
maximum age) at ``issued`` + maximum age, whichever comes first. A signed list never stays valid
forever. The images a site synchronised record the ``issued`` of their list in the property
``endorsed_list_issued``; a list issued before the newest such record is refused (a replayed old
list could bring back images the endorser has withdrawn).

Each image is streamed from its source (an http(s) URL, or a file under ``/cvmfs``) while its size
and SHA-256 are checked, never held whole in memory, and uploaded to Glance only when it matched.
Glance's own checksum and ``os_hash_value`` of the stored image are compared with what was
streamed. Images carry the properties ``endorser``, ``endorsed_name``, ``endorsed_version`` and
``endorsed_sha256``; those are how later runs recognise the images they manage. Managed images no
longer endorsed and approved are deactivated, not deleted: running servers keep working.

Public surface: :func:`generate_key`, :func:`sign`, :func:`verify`, :func:`parse_image_list`,
:func:`load_verified_list`, :func:`describe_file`, :func:`select`, :func:`fetch_verified`,
:class:`GlanceImages` (``plan()`` / ``apply()``), :data:`LIST_FORMAT`, the ``PROP_*`` names.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import datetime
import hashlib
import os
import re
import tempfile
import traceback

from urllib.parse import urlsplit

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMP_ERR = traceback.format_exc()
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMP_ERR = None

try:
    import requests
except ImportError:
    HAS_REQUESTS = False
    REQUESTS_IMP_ERR = traceback.format_exc()
else:
    HAS_REQUESTS = True
    REQUESTS_IMP_ERR = None

try:
    import yaml
except ImportError:
    HAS_YAML = False
    YAML_IMP_ERR = traceback.format_exc()
else:
    HAS_YAML = True
    YAML_IMP_ERR = None

from ._common import CvmfsError, Retry
from ._openstack import OpenStackRetry, sdk_errors

LIST_FORMAT = 1
SIGNATURE_SUFFIX = ".sig"
CHUNK = 1 << 20

PROP_ENDORSER = "endorser"
PROP_NAME = "endorsed_name"
PROP_VERSION = "endorsed_version"
PROP_SHA256 = "endorsed_sha256"
PROP_LIST_ISSUED = "endorsed_list_issued"
MANAGED_PROPERTIES = (PROP_ENDORSER, PROP_NAME, PROP_VERSION, PROP_SHA256, PROP_LIST_ISSUED)

DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop")
CONTAINER_FORMATS = ("bare", "ovf", "ova", "aki", "ari", "ami", "docker", "compressed")
# Image attributes of Glance itself, which an endorser's "properties" may not set.
RESERVED_PROPERTIES = frozenset((
    "checksum", "container_format", "created_at", "direct_url", "disk_format", "file", "id", "locations",
    "min_disk", "min_ram", "name", "os_hash_algo", "os_hash_value", "os_hidden", "owner", "protected", "schema",
    "self", "size", "status", "tags", "updated_at", "virtual_size", "visibility",
))
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]{0,63}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
PROPERTY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_:.-]{0,254}$")
ENTRY_KEYS = ("container_format", "disk_format", "name", "path", "properties", "sha256", "size", "url", "version")
LIST_KEYS = ("endorser", "expires", "format", "images", "issued")
# How far ahead of this host's clock a list's "issued" may be (clock skew, not a list from the future).
ISSUED_SKEW = datetime.timedelta(minutes=5)
INCOMPLETE = ("queued", "killed")
_UTC = datetime.timezone.utc
BUSY = ("saving", "uploading", "importing")


def _need_cryptography():
    if not HAS_CRYPTOGRAPHY:
        raise CvmfsError("the Python library cryptography is needed to check image list signatures; "
                         "install cryptography>=41")


# --------------------------------------------------------------------------- keys and signatures

def generate_key(password=None):
    """A new Ed25519 endorser key: ``(private PEM bytes, public PEM bytes)``.

    The private key is PKCS#8, encrypted with ``password`` (bytes) when given.
    """
    _need_cryptography()
    key = Ed25519PrivateKey.generate()
    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return private_pem, public_pem


def load_private_key(pem, password=None):
    _need_cryptography()
    try:
        key = serialization.load_pem_private_key(pem, password=password)
    except TypeError as error:
        raise CvmfsError("the private key is encrypted: give its passphrase (%s)" % error)
    except ValueError as error:
        raise CvmfsError("not a PEM private key, or a wrong passphrase: %s" % error)
    if not isinstance(key, Ed25519PrivateKey):
        raise CvmfsError("the private key is %s; image lists are signed with Ed25519 keys "
                         "(tools/image_list.py keygen, or openssl genpkey -algorithm ed25519)" % type(key).__name__)
    return key


def load_public_key(pem):
    _need_cryptography()
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as error:
        raise CvmfsError("the endorser public key is not a PEM public key (-----BEGIN PUBLIC KEY-----): %s" % error)
    if not isinstance(key, Ed25519PublicKey):
        raise CvmfsError("the endorser public key is %s; image lists are verified with Ed25519 keys"
                         % type(key).__name__)
    return key


def public_key_fingerprint(pem):
    """SHA-256 of the raw 32-byte public key, hex: what to compare out of band with the endorser."""
    raw = load_public_key(pem).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def sign(data, private_key_pem, password=None):
    """The detached signature of ``data`` (bytes): base64 text with a trailing newline, as bytes."""
    key = load_private_key(private_key_pem, password)
    return base64.b64encode(key.sign(data)) + b"\n"


def _decode_signature(signature):
    if len(signature) == 64:
        return signature
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 64:
        raise CvmfsError("the signature file is neither base64 text of a 64-byte Ed25519 signature nor the raw "
                         "64 bytes; it is not a signature of this scheme")
    return raw


def verify(data, signature, public_key_pem):
    """Raise :class:`CvmfsError` unless ``signature`` is the endorser's signature of exactly ``data``."""
    if not signature or not signature.strip():
        raise CvmfsError("the image list is not signed (the signature file is empty); refusing it")
    key = load_public_key(public_key_pem)
    try:
        key.verify(_decode_signature(signature), data)
    except InvalidSignature:
        raise CvmfsError("the signature of the image list does not match: the list was changed after it was "
                         "signed, or it was signed with another key than the endorser public key configured here; "
                         "refusing it")


# --------------------------------------------------------------------------- the image list

class ImageEntry:
    """One endorsed image."""

    def __init__(self, name, version, size, sha256, url=None, path=None, disk_format="qcow2",
                 container_format="bare", properties=None):
        self.name = name
        self.version = version
        self.size = size
        self.sha256 = sha256
        self.url = url
        self.path = path
        self.disk_format = disk_format
        self.container_format = container_format
        self.properties = dict(properties or {})

    @property
    def key(self):
        return (self.name, self.version)

    @property
    def source(self):
        return self.url or self.path

    def as_dict(self):
        result = {"name": self.name, "version": self.version, "size": self.size, "sha256": self.sha256,
                  "disk_format": self.disk_format, "container_format": self.container_format}
        result["url" if self.url else "path"] = self.source
        if self.properties:
            result["properties"] = dict(self.properties)
        return result


class ImageList:
    """A parsed list; ``expires`` is when it stops being valid here (its own expiry or ``issued`` +
    the site's maximum age, the earlier)."""

    def __init__(self, endorser, images, issued, expires, sha256=None):
        self.endorser = endorser
        self.images = images
        self.issued = issued
        self.expires = expires
        self.sha256 = sha256


def _timestamp(value, where):
    """An aware datetime from what YAML gives for a timestamp (a datetime, a date or a string); UTC if no zone."""
    parsed = value
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            parsed = None
    elif isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        parsed = datetime.datetime(value.year, value.month, value.day)
    if not isinstance(parsed, datetime.datetime):
        raise CvmfsError("%s: %r is not a date and time like 2026-12-31T00:00:00Z" % (where, value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_UTC)


def _entry(raw, index):
    where = "image list entry #%d" % (index + 1)
    if not isinstance(raw, dict):
        raise CvmfsError("%s is not a mapping of name, version, size, sha256 and url or path" % where)
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise CvmfsError("%s: name %r must be letters, digits, '.', '_', '+' or '-', at most 100" % (where, name))
    where = "image %s" % name
    unknown = sorted(set(raw) - set(ENTRY_KEYS))
    if unknown:
        raise CvmfsError("%s: unknown key(s) %s; known are %s" % (where, ", ".join(unknown), ", ".join(ENTRY_KEYS)))
    version = raw.get("version")
    if not isinstance(version, str):
        raise CvmfsError("%s: version must be a string; quote it in YAML (version: \"%s\"), or YAML may read "
                         "2026.10 as the number 2026.1" % (where, version))
    if not VERSION_RE.match(version):
        raise CvmfsError("%s: version %r must be letters, digits, '.', '_', '+', '~' or '-'" % (where, version))
    size = raw.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise CvmfsError("%s %s: size must be the number of bytes, a positive integer, not %r" % (where, version, size))
    digest = raw.get("sha256")
    if not isinstance(digest, str) or not SHA256_RE.match(digest.lower()):
        raise CvmfsError("%s %s: sha256 must be 64 hexadecimal digits" % (where, version))
    url, path = raw.get("url"), raw.get("path")
    if bool(url) == bool(path):
        raise CvmfsError("%s %s: give exactly one source, url (http or https) or path (a file under /cvmfs)"
                         % (where, version))
    if url and (not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc):
        raise CvmfsError("%s %s: url %r must be an http:// or https:// URL" % (where, version, url))
    if path:
        _cvmfs_relative(path, "%s %s" % (where, version))
    disk_format = raw.get("disk_format", "qcow2")
    if disk_format not in DISK_FORMATS:
        raise CvmfsError("%s %s: disk_format %r is not one of %s" % (where, version, disk_format, ", ".join(DISK_FORMATS)))
    container_format = raw.get("container_format", "bare")
    if container_format not in CONTAINER_FORMATS:
        raise CvmfsError("%s %s: container_format %r is not one of %s"
                         % (where, version, container_format, ", ".join(CONTAINER_FORMATS)))
    properties = raw.get("properties") or {}
    if not isinstance(properties, dict):
        raise CvmfsError("%s %s: properties must be a mapping of Glance property names to strings" % (where, version))
    for key, value in properties.items():
        if not isinstance(key, str) or not PROPERTY_RE.match(key):
            raise CvmfsError("%s %s: property name %r is not a valid Glance property name" % (where, version, key))
        if key in RESERVED_PROPERTIES or key in MANAGED_PROPERTIES or key.startswith(("owner_specified.", "os_glance")):
            raise CvmfsError("%s %s: property %s is set by Glance or by this collection, not by the endorser"
                             % (where, version, key))
        if not isinstance(value, str):
            raise CvmfsError("%s %s: property %s must be a string; quote it in YAML" % (where, version, key))
    return ImageEntry(name, version, size, digest.lower(), url=url or None, path=path or None,
                      disk_format=disk_format, container_format=container_format, properties=properties)


def _lifetime(raw, endorser, now, max_age):
    """``(issued, end of validity)`` of a raw list, or :class:`CvmfsError` if it is not valid at ``now``."""
    if raw.get("issued") is None:
        raise CvmfsError("the image list of %s has no issued (when the endorser signed it, e.g. issued: "
                         "2026-11-20T12:00:00Z); without it an older list cannot be told from a newer one; ask "
                         "the endorser for a list that says when it was issued" % endorser)
    issued = _timestamp(raw["issued"], "issued")
    if issued > now + ISSUED_SKEW:
        raise CvmfsError("the image list of %s says it was issued at %s, after now (%s); check the clocks of the "
                         "endorser and of this host" % (endorser, issued.isoformat(), now.isoformat()))
    ends = []
    if raw.get("expires") is not None:
        ends.append((_timestamp(raw["expires"], "expires"), "expired at %s"))
    if max_age is not None:
        too_old = "issued at %s is older than max_age (%s, since %%s)" % (issued.isoformat(), max_age)
        ends.append((issued + max_age, too_old))
    if not ends:
        raise CvmfsError("the image list of %s has no expires: it would stay valid forever; ask the endorser to sign "
                         "lists with an expiry, or set max_age_days to accept lists only so many days after they "
                         "were issued" % endorser)
    end, why = min(ends, key=lambda item: item[0])
    if end <= now:
        raise CvmfsError("the image list of %s %s; ask the endorser for a fresh list (an old list could bring back "
                         "images the endorser has withdrawn)" % (endorser, why % end.isoformat()))
    return issued, end


def parse_image_list(data, endorser, now=None, max_age=None):
    """Parse and check a *verified* image list (bytes). ``endorser`` is who the key belongs to;
    ``max_age`` (a timedelta), if given, ends the list's validity that long after it was issued."""
    if not HAS_YAML:
        raise CvmfsError("the Python library PyYAML is needed to read image lists; install PyYAML")
    try:
        raw = yaml.safe_load(data)
    except yaml.YAMLError as error:
        raise CvmfsError("the image list is not valid YAML: %s" % error)
    if not isinstance(raw, dict):
        raise CvmfsError("the image list must be a mapping with format, endorser and images")
    unknown = sorted(set(raw) - set(LIST_KEYS))
    if unknown:
        raise CvmfsError("the image list has unknown key(s) %s; known are %s" % (", ".join(unknown), ", ".join(LIST_KEYS)))
    if raw.get("format") != LIST_FORMAT:
        raise CvmfsError("the image list has format %r; this collection reads format %d" % (raw.get("format"), LIST_FORMAT))
    if raw.get("endorser") != endorser:
        raise CvmfsError("the image list is signed with the key of endorser %s but says it is from %r; refusing it"
                         % (endorser, raw.get("endorser")))
    issued, expires = _lifetime(raw, endorser, now or datetime.datetime.now(_UTC), max_age)
    images = raw.get("images")
    if images is None:
        images = []
    if not isinstance(images, list):
        raise CvmfsError("images must be a list of image entries")
    entries = [_entry(item, index) for index, item in enumerate(images)]
    seen = set()
    for entry in entries:
        if entry.key in seen:
            raise CvmfsError("image %s version %s appears twice in the image list" % entry.key)
        seen.add(entry.key)
    return ImageList(endorser, entries, issued, expires, sha256=hashlib.sha256(data).hexdigest())


def _read(path, what):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except (IOError, OSError) as error:
        raise CvmfsError("cannot read the %s %s: %s" % (what, path, error))


def load_verified_list(list_path, signature_path, public_key_path, endorser, now=None, max_age=None):
    """Read, verify (before anything is parsed), then parse an image list from files."""
    data = _read(list_path, "image list")
    if not os.path.exists(signature_path):
        raise CvmfsError("the image list %s is not signed: %s does not exist; refusing it" % (list_path, signature_path))
    signature = _read(signature_path, "signature")
    verify(data, signature, _read(public_key_path, "endorser public key"))
    return parse_image_list(data, endorser, now=now, max_age=max_age)


# --------------------------------------------------------------------------- site approval

def select(image_list, approved):
    """Images both endorsed and approved: ``(entries, approvals that match no endorsed image)``.

    ``approved`` is a list of ``{name, version?}``; without a version every endorsed version of
    that name is approved.
    """
    wanted = []
    unmatched = []
    for index, approval in enumerate(approved or []):
        if not isinstance(approval, dict) or not approval.get("name"):
            raise CvmfsError("approved entry #%d needs a name (and optionally a version)" % (index + 1))
        version = approval.get("version")
        if version is not None and not isinstance(version, str):
            raise CvmfsError("approved image %s: version must be a string; quote it" % approval["name"])
        matches = [e for e in image_list.images
                   if e.name == approval["name"] and (version is None or e.version == version)]
        if not matches:
            unmatched.append({"name": approval["name"], "version": version})
        for entry in matches:
            if entry not in wanted:
                wanted.append(entry)
    return wanted, unmatched


# --------------------------------------------------------------------------- download and verify

class VerifiedFile:
    """A local file whose size and SHA-256 matched the image list, with the digests computed on the way."""

    def __init__(self, path, size, digests, temporary):
        self.path = path
        self.size = size
        self.digests = digests
        self.temporary = temporary

    def cleanup(self):
        if self.temporary and os.path.exists(self.path):
            os.unlink(self.path)


class DownloadRetry(Retry):
    """Retry downloads that failed in a way a second attempt can fix (the download starts over)."""

    @staticmethod
    def is_transient(error):
        if not HAS_REQUESTS:
            return False
        if isinstance(error, requests.exceptions.HTTPError):
            return error.response is not None and error.response.status_code in (408, 429, 500, 502, 503, 504)
        if isinstance(error, requests.exceptions.SSLError):
            return False
        return isinstance(error, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                                  requests.exceptions.ChunkedEncodingError))


def _cvmfs_relative(path, where):
    if not isinstance(path, str) or not path.startswith("/cvmfs/"):
        raise CvmfsError("%s: path %r must be a file under /cvmfs/" % (where, path))
    parts = path[len("/cvmfs/"):].split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise CvmfsError("%s: path %r must be a plain path under /cvmfs/ (no '.', '..' or '//')" % (where, path))
    return "/".join(parts)


def _hashers():
    return {"md5": hashlib.md5(), "sha256": hashlib.sha256(), "sha512": hashlib.sha512()}


def _stream(chunks, entry, sink=None):
    """Hash and count an iterator of byte chunks; stop as soon as it goes past the endorsed size."""
    hashers = _hashers()
    size = 0
    for chunk in chunks:
        if not chunk:
            continue
        size += len(chunk)
        if size > entry.size:
            raise CvmfsError("image %s %s from %s is larger than the endorsed %d bytes; not uploaded"
                             % (entry.name, entry.version, entry.source, entry.size))
        for hasher in hashers.values():
            hasher.update(chunk)
        if sink is not None:
            sink.write(chunk)
    digests = dict((name, hasher.hexdigest()) for name, hasher in hashers.items())
    if size != entry.size:
        raise CvmfsError("image %s %s from %s has %d bytes, the endorsed size is %d; not uploaded"
                         % (entry.name, entry.version, entry.source, size, entry.size))
    if digests["sha256"] != entry.sha256:
        raise CvmfsError("image %s %s from %s has SHA-256 %s, the endorsed one is %s; not uploaded (the source "
                         "is corrupt or was replaced)"
                         % (entry.name, entry.version, entry.source, digests["sha256"], entry.sha256))
    return size, digests


def fetch_verified(entry, download_dir=None, cvmfs_root="/cvmfs", timeout=60, validate_certs=True, retries=3):
    """A :class:`VerifiedFile` of ``entry``: the file under ``cvmfs_root`` itself, or a download in
    ``download_dir`` (removed again if it does not match)."""
    if entry.path:
        relative = _cvmfs_relative(entry.path, "image %s %s" % (entry.name, entry.version))
        root = os.path.realpath(cvmfs_root)
        local = os.path.realpath(os.path.join(root, relative))
        if not (local + os.sep).startswith(root + os.sep):
            raise CvmfsError("image %s %s: %s leads outside %s" % (entry.name, entry.version, entry.path, cvmfs_root))
        if not os.path.isfile(local):
            repository = relative.split("/", 1)[0]
            raise CvmfsError("image %s %s: %s is not a file here; is the repository %s mounted on this host "
                             "(cvmfs_config probe %s)?" % (entry.name, entry.version, entry.path, repository, repository))
        with open(local, "rb") as handle:
            size, digests = _stream(iter(lambda: handle.read(CHUNK), b""), entry)
        return VerifiedFile(local, size, digests, temporary=False)

    if not HAS_REQUESTS:
        raise CvmfsError("the Python library requests is needed to download images; install requests")

    @DownloadRetry.backoff(retries=retries)
    def download():
        handle, path = tempfile.mkstemp(prefix=".image-%s-" % entry.name, dir=download_dir)
        try:
            with os.fdopen(handle, "wb") as sink:
                with requests.get(entry.url, stream=True, timeout=timeout, verify=validate_certs,
                                  headers={"User-Agent": "sharedsw.cvmfs image_sync"}) as response:
                    response.raise_for_status()
                    length = response.headers.get("Content-Length")
                    encoded = response.headers.get("Content-Encoding", "identity") != "identity"
                    if length is not None and length.isdigit() and not encoded and int(length) != entry.size:
                        raise CvmfsError("image %s %s: %s announces %s bytes, the endorsed size is %d; not uploaded"
                                         % (entry.name, entry.version, entry.url, length, entry.size))
                    size, digests = _stream(response.iter_content(CHUNK), entry, sink)
            return VerifiedFile(path, size, digests, temporary=True)
        except BaseException:
            if os.path.exists(path):
                os.unlink(path)
            raise

    try:
        return download()
    except CvmfsError:
        raise
    except requests.exceptions.HTTPError as error:
        raise CvmfsError("Failed to download image %s %s from %s: HTTP %s %s"
                         % (entry.name, entry.version, entry.url, error.response.status_code, error.response.reason))
    except (requests.exceptions.RequestException, OSError) as error:
        raise CvmfsError("Failed to download image %s %s from %s: %s" % (entry.name, entry.version, entry.url, error))


# --------------------------------------------------------------------------- Glance

def glance_name(entry, template):
    try:
        return template.format(name=entry.name, version=entry.version)
    except (KeyError, IndexError, ValueError) as error:
        raise CvmfsError("name_template %r is not valid: %s; use {name} and {version}" % (template, error))


class GlanceImages:
    """The images one endorser manages in one project's Glance, and how to bring them to a wanted set."""

    def __init__(self, conn, endorser, name_template="{name}-{version}", visibility="private", retries=3,
                 list_issued=None):
        """``list_issued``: when the list the wanted entries come from was issued (an aware datetime);
        recorded on the images, and :meth:`plan` refuses a list issued before the newest record."""
        self.conn = conn
        self.retries = retries
        self.endorser = endorser
        self.name_template = name_template
        self.visibility = visibility
        self.list_issued = list_issued.astimezone(_UTC).isoformat() if list_issued else None
        self._managed = None

    # ---------------------------------------------------------------- reading

    def managed(self):
        """Images of this project carrying ``endorser=<endorser>``, as plain dicts."""
        if self._managed is None:
            with sdk_errors("list the images of the project in Glance"):
                images = OpenStackRetry.backoff(retries=self.retries)(self._list)()
            self._managed = [self._record(image) for image in images
                             if (image.properties or {}).get(PROP_ENDORSER) == self.endorser]
        return self._managed

    def _list(self):
        owner = self.conn.current_project_id
        return list(self.conn.image.images(owner=owner)) if owner else list(self.conn.image.images())

    @staticmethod
    def _record(image):
        # Glance's own names for everything: custom properties, and those openstacksdk maps to attributes
        # (os_distro, hw_*); values None are properties Glance does not have.
        body = image.to_dict(headers=False, computed=False, ignore_none=True, original_names=True)
        props = dict(body.pop("properties", None) or {})
        props.update((k, v) for k, v in body.items() if k not in RESERVED_PROPERTIES)
        return {"id": image.id, "name": image.name, "status": image.status, "size": image.size,
                "visibility": image.visibility, "checksum": image.checksum, "hash_algo": image.hash_algo,
                "hash_value": image.hash_value, "disk_format": image.disk_format,
                "container_format": image.container_format, "properties": props,
                "endorsed_name": props.get(PROP_NAME), "endorsed_version": props.get(PROP_VERSION),
                "endorsed_sha256": props.get(PROP_SHA256)}

    # ---------------------------------------------------------------- planning

    def _matches(self, image, entry):
        if image["endorsed_sha256"] != entry.sha256 or image["size"] != entry.size:
            return False
        if image["status"] not in ("active", "deactivated"):
            return False
        if image["hash_algo"] == "sha256" and image["hash_value"] and image["hash_value"] != entry.sha256:
            return False
        return True

    def _drift(self, image, entry):
        """Attributes of a good image that differ from what the entry and options want."""
        wanted = {"name": glance_name(entry, self.name_template), "visibility": self.visibility}
        wanted.update(entry.properties)
        if self.list_issued:
            wanted[PROP_LIST_ISSUED] = self.list_issued
        current = dict(image["properties"], name=image["name"], visibility=image["visibility"])
        return dict((k, v) for k, v in sorted(wanted.items()) if current.get(k) != v)

    def plan(self, wanted):
        """The actions that make Glance hold exactly the ``wanted`` entries (active), in the order to run them.

        Each action is a dict: ``action`` (upload, update, reactivate, deactivate, delete), ``name`` and
        ``version`` (the endorsed image), ``glance_name``, ``id`` (``None`` for an upload not yet done),
        ``reason``, and ``entry`` (internal; removed from module results).
        """
        managed = self.managed()
        self._refuse_an_older_list(managed)
        uploads, updates, reactivations, retirements = [], [], [], []
        kept = set()
        for entry in wanted:
            candidates = [i for i in managed if (i["endorsed_name"], i["endorsed_version"]) == entry.key]
            good = sorted([i for i in candidates if self._matches(i, entry)],
                          key=lambda i: (i["status"] != "active", i["id"]))
            target = glance_name(entry, self.name_template)
            if good:
                keep = good[0]
                kept.add(keep["id"])
                if keep["status"] == "deactivated":
                    reactivations.append(self._action("reactivate", entry, keep, "endorsed and approved again"))
                drift = self._drift(keep, entry)
                if drift:
                    action = self._action("update", entry, keep, "attributes differ: %s" % ", ".join(sorted(drift)))
                    action["attributes"] = drift
                    updates.append(action)
            else:
                reason = "missing in Glance"
                if candidates:
                    reason = "Glance has it with another size, SHA-256 or in status %s" % (
                        ", ".join(sorted(set(i["status"] for i in candidates))))
                uploads.append({"action": "upload", "name": entry.name, "version": entry.version,
                                "glance_name": target, "id": None, "reason": reason, "entry": entry})
        wanted_keys = set(e.key for e in wanted)
        for image in managed:
            if image["id"] in kept:
                continue
            key = (image["endorsed_name"], image["endorsed_version"])
            if key in wanted_keys:
                why = "replaced by a verified upload of the endorsed image"
            else:
                why = "no longer endorsed and approved"
            if image["status"] == "active":
                retirements.append(self._action("deactivate", None, image, why))
            elif image["status"] in INCOMPLETE:
                retirements.append(self._action("delete", None, image, "incomplete upload (status %s)" % image["status"]))
        retirements.sort(key=lambda a: (a["glance_name"] or "", a["id"]))
        return uploads + reactivations + updates + retirements

    def _refuse_an_older_list(self, managed):
        if not self.list_issued:
            return
        recorded = []
        for image in managed:
            value = image["properties"].get(PROP_LIST_ISSUED)
            if value:
                recorded.append((_timestamp(value, "property %s of Glance image %s" % (PROP_LIST_ISSUED, image["id"])),
                                 image["name"]))
        if not recorded:
            return
        newest = max(when for when, _name in recorded)
        if _timestamp(self.list_issued, "issued") < newest:
            names = sorted(set(name for when, name in recorded if when == newest))
            raise CvmfsError("the image list of %s was issued at %s, before the list last accepted here (issued at %s, "
                             "recorded on Glance image(s) %s): an older list is refused, it could bring back images "
                             "the endorser has withdrawn; get the endorser's current list"
                             % (self.endorser, self.list_issued, newest.isoformat(), ", ".join(names)))

    @staticmethod
    def _action(kind, entry, image, reason):
        return {"action": kind, "name": image["endorsed_name"] if entry is None else entry.name,
                "version": image["endorsed_version"] if entry is None else entry.version,
                "glance_name": image["name"], "id": image["id"], "reason": reason, "entry": entry}

    # ---------------------------------------------------------------- applying

    def apply(self, actions, fetch):
        """Run ``actions`` in order. ``fetch(entry)`` returns a :class:`VerifiedFile`."""
        for action in actions:
            kind = action["action"]
            if kind == "upload":
                action["id"] = self.upload(action["entry"], action["glance_name"], fetch)
            elif kind == "update":
                self._call("update image %s" % action["glance_name"], self.conn.image.update_image, action["id"],
                           **action["attributes"])
            elif kind == "reactivate":
                self._call("reactivate image %s" % action["glance_name"], self.conn.image.reactivate_image,
                           action["id"])
            elif kind == "deactivate":
                self._call("deactivate image %s (the cloud's policy must allow deactivate to this user)"
                           % action["glance_name"], self.conn.image.deactivate_image, action["id"])
            elif kind == "delete":
                self._call("delete incomplete image %s" % action["glance_name"], self.conn.image.delete_image,
                           action["id"], ignore_missing=True)
        self._managed = None
        return actions

    def _call(self, what, function, *args, **kwargs):
        with sdk_errors(what):
            return OpenStackRetry.backoff(retries=self.retries)(function)(*args, **kwargs)

    def upload(self, entry, name, fetch):
        verified = fetch(entry)
        try:
            properties = dict(entry.properties)
            properties.update({PROP_ENDORSER: self.endorser, PROP_NAME: entry.name, PROP_VERSION: entry.version,
                               PROP_SHA256: entry.sha256})
            if self.list_issued:
                properties[PROP_LIST_ISSUED] = self.list_issued
            with sdk_errors("upload image %s %s to Glance" % (entry.name, entry.version)):
                image = self.conn.image.create_image(
                    name, filename=verified.path, md5=verified.digests["md5"], sha256=verified.digests["sha256"],
                    disk_format=entry.disk_format, container_format=entry.container_format,
                    visibility=self.visibility, allow_duplicates=True, validate_checksum=True, wait=True,
                    **properties)
                stored = self.conn.image.get_image(image.id)
            problem = None
            if stored.status != "active":
                problem = "is in status %s after the upload" % stored.status
            elif stored.size != verified.size:
                problem = "holds %s bytes, %d were sent" % (stored.size, verified.size)
            elif stored.checksum and stored.checksum != verified.digests["md5"]:
                problem = "has checksum %s, the bytes sent have MD5 %s" % (stored.checksum, verified.digests["md5"])
            elif stored.hash_algo in verified.digests and stored.hash_value != verified.digests[stored.hash_algo]:
                problem = "has %s %s, the bytes sent have %s" % (
                    stored.hash_algo, stored.hash_value, verified.digests[stored.hash_algo])
            if problem:
                with sdk_errors("delete the damaged upload %s" % image.id):
                    self.conn.image.delete_image(image.id, ignore_missing=True)
                raise CvmfsError("image %s %s arrived damaged in Glance: image %s %s; it was deleted"
                                 % (entry.name, entry.version, image.id, problem))
            return image.id
        finally:
            verified.cleanup()


# --------------------------------------------------------------------------- endorser helper

def describe_file(path, name, version, url=None, cvmfs_path=None, disk_format="qcow2", container_format="bare"):
    """The image list entry of a local image file: size and SHA-256 computed by streaming it."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    raw = {"name": name, "version": version, "size": size, "sha256": digest.hexdigest(),
           "disk_format": disk_format, "container_format": container_format}
    if url:
        raw["url"] = url
    if cvmfs_path:
        raw["path"] = cvmfs_path
    return _entry(raw, 0).as_dict()
