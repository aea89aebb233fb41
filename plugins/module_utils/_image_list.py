# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Endorsed VM images, the list: image list format, checks, site approval, entries of local files.

Internal to sharedsw.cvmfs; may change in any release. Owns the image list (parsing, validity in
time, entries) and the site's approval. Signatures are ``_image_signature``'s, downloads
``_image_fetch``'s, Glance ``_image_glance``'s. Must not import Ansible or OpenStack: the module
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

Public surface: :func:`parse_image_list`, :func:`load_verified_list`, :func:`describe_file`,
:func:`select`, :data:`LIST_FORMAT`, the ``PROP_*`` names; :func:`_image_signature.sign` and
:func:`~_image_signature.verify`; :func:`_image_fetch.fetch_verified`; :class:`_image_glance.GlanceImages`
(``plan()`` / ``apply()``).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import datetime
import hashlib
import os
import re
import traceback

from urllib.parse import urlsplit

try:
    import yaml
except ImportError:
    HAS_YAML = False
    YAML_IMP_ERR = traceback.format_exc()
else:
    HAS_YAML = True
    YAML_IMP_ERR = None

from ._common import CvmfsError
from ._image_signature import verify

LIST_FORMAT = 1
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
_UTC = datetime.timezone.utc


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


class ImageList(collections.namedtuple("ImageList", "endorser images issued expires sha256", defaults=(None,))):
    """A parsed list; ``expires`` is when it stops being valid here (its own expiry or ``issued`` +
    the site's maximum age, the earlier)."""

    __slots__ = ()


def parse_timestamp(value, where):
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
        cvmfs_relative(path, "%s %s" % (where, version))
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
    issued = parse_timestamp(raw["issued"], "issued")
    if issued > now + ISSUED_SKEW:
        raise CvmfsError("the image list of %s says it was issued at %s, after now (%s); check the clocks of the "
                         "endorser and of this host" % (endorser, issued.isoformat(), now.isoformat()))
    ends = []
    if raw.get("expires") is not None:
        ends.append((parse_timestamp(raw["expires"], "expires"), "expired at %s"))
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


def cvmfs_relative(path, where):
    if not isinstance(path, str) or not path.startswith("/cvmfs/"):
        raise CvmfsError("%s: path %r must be a file under /cvmfs/" % (where, path))
    parts = path[len("/cvmfs/"):].split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise CvmfsError("%s: path %r must be a plain path under /cvmfs/ (no '.', '..' or '//')" % (where, path))
    return "/".join(parts)


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
