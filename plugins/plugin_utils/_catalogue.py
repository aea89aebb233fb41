# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The repository catalogue (``cvmfs_repositories``): its one schema, validation and defaults.

Internal to sharedsw.cvmfs; may change in any release. Controller side only.

A site describes each repository once, as one entry of ``cvmfs_repositories``; every role reads
the fields it needs after :func:`normalise` has checked the entry and filled in every default, so
role tasks never need ``| default()``. ``ENTRY_SPEC`` below is THE schema: docs/repositories.md
is generated from it (``tools/catalogue_doc.py``) and a unit test keeps the two in step.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import re

try:
    from collections.abc import Mapping
except ImportError:  # pragma: no cover - Python 2 is not supported
    Mapping = dict

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from ansible_collections.sharedsw.cvmfs.plugins.plugin_utils import _catalogue_external as external

GATEWAY_PORT = 4929
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,59}$")
_OPTION_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")

CREDENTIALS_SPEC = {
    "access_key": {
        "type": "str", "no_log": True,
        "description": "S3 access key id, given inline (use an Ansible-vaulted variable). "
                       "Mutually exclusive with I(vault_path)."},
    "secret_key": {
        "type": "str", "no_log": True,
        "description": "S3 secret key, given inline (use an Ansible-vaulted variable)."},
    "vault_path": {
        "type": "str",
        "description": "Path of a KV v2 secret in Vault (under the role's Vault mount) holding the "
                       "key pair; read at deploy time, never written on the controller."},
    "access_key_field": {
        "type": "str", "default": "access_key", "no_log": False,
        "description": "Field of the Vault secret that holds the access key id."},
    "secret_key_field": {
        "type": "str", "default": "secret_key", "no_log": False,
        "description": "Field of the Vault secret that holds the secret key."},
}

S3_STORAGE_SPEC = {
    "host": {"type": "str", "required": True,
             "description": "S3 endpoint host name, without scheme (C(CVMFS_S3_HOST))."},
    "port": {"type": "int", "description": "S3 endpoint port; unset means the scheme's default."},
    "bucket": {"type": "str", "required": True,
               "description": "Bucket that stores the repository (must exist, public-read)."},
    "use_https": {"type": "bool", "default": True, "description": "Talk HTTPS to the endpoint."},
    "dns_buckets": {"type": "bool", "default": False,
                    "description": "Virtual-host bucket URLs (C(bucket.host)); false means path style."},
    "region": {"type": "str", "description": "Region; setting it makes cvmfs sign with AWS SigV4."},
    "flavor": {"type": "str", "choices": ["awsv2", "awsv4", "azure"],
               "description": "C(CVMFS_S3_FLAVOR); unset leaves the cvmfs default."},
    "max_connections": {"type": "int", "default": 64,
                        "description": "Parallel upload connections of the publisher/gateway."},
    "public_url": {"type": "str",
                   "description": "HTTP base URL the bucket is read from anonymously (C(mkfs -w)). "
                                  "Default: built from I(use_https), I(host), I(port), I(bucket) and "
                                  "I(dns_buckets)."},
    "credentials": {"type": "dict", "required": True, "options": CREDENTIALS_SPEC,
                    "description": "Write credentials of the bucket (Vault reference or inline)."},
}

SOURCE_SPEC = {
    "endpoint_url": {"type": "str",
                     "description": "S3 endpoint URL users upload to (e.g. C(https://rgw.example.org)); "
                                    "unset means AWS."},
    "region": {"type": "str", "description": "S3 region of the source bucket."},
    "bucket": {"type": "str", "description": "Bucket users upload software to."},
    "prefix": {"type": "str", "default": "cvmfs/",
               "description": "Key prefix mirrored into the repository. A publisher with a sub-path "
                              "mirrors C(<prefix><sub-path>/) unless its own I(source.prefix) is set. "
                              "Set to an empty string to mirror the whole bucket."},
    "sync": {"type": "bool", "default": True,
             "description": "Mirror I(prefix) into the repository; false makes an ingest-only publisher."},
    "delete": {"type": "bool", "default": True,
               "description": "Remove files from the repository when their objects disappear."},
    "exclude": {"type": "list", "elements": "str", "default": [],
                "description": "Glob patterns (relative to the publisher's path) the sync leaves alone."},
    "ingest_prefix": {"type": "str",
                      "description": "Key prefix of tarballs to ingest with C(cvmfs_server ingest); unset "
                                     "disables ingest. C(<ingest_prefix>a/b.tar.gz) is unpacked into "
                                     "C(<path>/<ingest_dir>/a/b) and then deleted from the bucket."},
    "ingest_dir": {"type": "str", "default": "",
                   "description": "Directory (relative to the publisher's path) tarballs are unpacked "
                                  "under. Must be set when ingest and a deleting sync share a publisher, "
                                  "and is then excluded from the sync."},
    "addressing_style": {"type": "str", "default": "path", "choices": ["auto", "path", "virtual"],
                         "description": "S3 addressing style of the source endpoint."},
    "validate_certs": {"type": "bool", "default": True, "description": "Verify the endpoint's TLS certificate."},
    "ca_bundle": {"type": "str", "description": "CA bundle file on the publisher for the endpoint's TLS."},
    "max_workers": {"type": "int", "default": 32, "description": "Parallel downloads of the sync."},
    "on_invalid": {"type": "str", "default": "fail", "choices": ["fail", "skip"],
                   "description": "What the sync does with keys it must refuse (C(..) segments, control bytes, "
                                  "escaping symlinks...): V(fail) publishes nothing until they are fixed, V(skip) "
                                  "publishes the rest and logs each refused key."},
    "on_missing": {"type": "str", "default": "fail", "choices": ["fail", "warn"],
                   "description": "What the sync does with keys listed but gone when fetched (deleted or replaced "
                                  "while it ran): V(fail) publishes nothing this run and names them (the next run "
                                  "sees the new state), V(warn) publishes the rest and logs each such key."},
    "schedule": {"type": "str", "default": "*:0/10",
                 "description": "systemd C(OnCalendar=) of the publish job (default every 10 minutes)."},
    "credentials": {"type": "dict", "options": CREDENTIALS_SPEC,
                    "description": "Read credentials of the source bucket (Vault reference or inline); "
                                   "unset means the publisher host's own AWS configuration."},
}


def _without_defaults(spec):
    """A copy of ``spec`` whose options are all optional and default to nothing (for overrides)."""
    result = {}
    for key, option in spec.items():
        option = dict(option)
        option.pop("default", None)
        option.pop("required", None)
        if "options" in option:
            option["options"] = _without_defaults(option["options"])
        result[key] = option
    return result


PUBLISHER_SPEC = {
    "host": {"type": "str", "required": True,
             "description": "Inventory host name of the publisher."},
    "path": {"type": "str", "default": "/",
             "description": "Lease sub-path (absolute inside the repository) this publisher syncs and "
                            "publishes. Paths of one repository's publishers must not overlap."},
    "owner": {"type": "str",
              "description": "Local user owning the repository on the publisher and running its "
                             "publish job; defaults to the repository's I(owner)."},
    "schedule": {"type": "str", "description": "Overrides I(source.schedule) for this publisher."},
    "source": {"type": "dict", "options": _without_defaults(SOURCE_SPEC),
               "description": "Overrides of the repository's I(source) fields for this publisher."},
}

STORAGE_SPEC = {
    "type": {"type": "str", "default": "local", "choices": ["local", "s3"],
             "description": "C(local) (C(/srv/cvmfs), served by Apache) or C(s3)."},
    "s3": {"type": "dict", "options": S3_STORAGE_SPEC,
           "description": "S3 settings; required when I(type=s3)."},
}

GATEWAY_SPEC = {
    "enabled": {"type": "bool", "default": True,
                "description": "Serve the repository through the gateway (needed by publishers)."},
    "url": {"type": "str",
            "description": "Gateway API URL publishers use. Default C(http://<stratum0>:4929/api/v1)."},
    "key_path": {"type": "str", "default": "/",
                 "description": "Sub-path the repository's gateway key is granted (C(repo.json)); every "
                                "publisher path must lie under it."},
}

GC_SPEC = {
    "enabled": {"type": "bool", "default": False, "description": "Make the repository garbage-collectable."},
    "timespan": {"type": "str", "default": "3 days ago",
                 "description": "Revisions newer than this are kept (C(date)-parsable)."},
    "schedule": {"type": "str",
                 "description": "systemd C(OnCalendar=) of a GC timer on the stratum-0; unset means automatic GC "
                                "on publish (C(CVMFS_AUTO_GC))."},
}

AUTO_TAG_SPEC = {
    "enabled": {"type": "bool", "default": True, "description": "C(CVMFS_AUTO_TAG)."},
    "timespan": {"type": "str", "default": "4 weeks ago",
                 "description": "Automatic tags older than this are removed; empty keeps them forever (which "
                                "stops GC from freeing anything)."},
}

CLIENT_SPEC = {
    "mount": {"type": "bool", "default": True, "description": "Clients configure and mount the repository."},
    "options": {"type": "dict", "default": {},
                "description": "Extra client settings for C(/etc/cvmfs/config.d/<name>.conf)."},
}
CLIENT_SPEC.update(external.CLIENT_FIELDS)

ENTRY_SPEC = {
    "name": {"type": "str", "required": True,
             "description": "Fully qualified repository name, e.g. C(software.example.org); or C(*.<domain>) "
                            "for a domain entry (external repositories of a whole domain, see below)."},
    "stratum0": {"type": "str",
                 "description": "Inventory host name of the stratum-0 (and gateway) that holds the "
                                "repository; also its DNS name unless I(url) and I(gateway.url) are given. "
                                "Unset: an external entry, a repository published elsewhere."},
    "owner": {"type": "str", "default": "root",
              "description": "Repository owner (C(CVMFS_USER)) on the stratum-0; created as a system "
                             "user when missing."},
    "url": {"type": "str",
            "description": "HTTP URL the repository is read from (stratum-0 URL). Default "
                           "C(http://<stratum0>/cvmfs/<name>) for local storage and "
                           "C(<storage.s3.public_url>/<name>) for S3. External entries: the stratum-0 or "
                           "stratum-1 URL our stratum-1s replicate from (no default)."},
    "storage": {"type": "dict", "default": {}, "options": STORAGE_SPEC,
                "description": "Where the stratum-0 stores the repository."},
    "gateway": {"type": "dict", "default": {}, "options": GATEWAY_SPEC,
                "description": "The cvmfs-gateway in front of the stratum-0."},
    "publishers": {"type": "list", "elements": "dict", "default": [], "options": PUBLISHER_SPEC,
                   "description": "Publisher hosts of the repository and the sub-path each one owns."},
    "source": {"type": "dict", "default": {}, "options": SOURCE_SPEC,
               "description": "The S3 area publishers fill the repository from."},
    "gc": {"type": "dict", "default": {}, "options": GC_SPEC, "description": "Garbage collection."},
    "auto_tag": {"type": "dict", "default": {}, "options": AUTO_TAG_SPEC,
                 "description": "Automatic tags on every publish."},
    "hash_algorithm": {"type": "str", "default": "sha1", "choices": ["sha1", "rmd160", "shake128"],
                       "description": "Content hash of new repositories."},
    "compression": {"type": "str", "default": "default", "choices": ["default", "none"],
                    "description": "Compression of new repositories (C(default) is zlib)."},
    "server_options": {"type": "dict", "default": {},
                       "description": "Extra C(server.conf) settings, C(NAME: value), kept idempotently "
                                      "on the stratum-0."},
    "meta": {"type": "dict",
             "description": "Repository meta information published with C(update-repoinfo) (free-form "
                            "JSON; cvmfs suggests C(administrator), C(email), C(organisation), "
                            "C(description), C(url), C(recommended-stratum0), C(recommended-stratum1s), "
                            "C(custom)). Unset: none."},
    "replicate": {"type": "list", "elements": "str",
                  "description": "Inventory groups whose stratum-1 hosts replicate the repository "
                                 "(read by the stratum-1 role); empty: not replicated. Default "
                                 "C([stratum1]) for own repositories, C([]) for external entries."},
    "client": {"type": "dict", "default": {}, "options": CLIENT_SPEC,
               "description": "Client side (read by the client role)."},
}

ENTRY_SPEC.update(external.ENTRY_FIELDS)

CATALOGUE_SPEC = {"entry": {"type": "dict", "options": ENTRY_SPEC}}


def _entry_label(index, entry):
    name = entry.get("name") if isinstance(entry, dict) else None
    return "cvmfs_repositories[%d]%s" % (index, " (%s)" % name if name else "")


def _norm_path(label, field, value):
    """``/a/b`` form of a sub-path; reject relative tricks."""
    if value is None:
        return "/"
    parts = [p for p in value.split("/") if p]
    if any(p in (".", "..") for p in parts) or "\0" in value:
        raise CvmfsError("%s: %s %r must be a plain absolute path such as /team-a (no . or .. segments)"
                         % (label, field, value))
    return "/" + "/".join(parts)


def _under(path, parent):
    """True if ``path`` equals ``parent`` or lies below it, component-wise."""
    return parent == "/" or path == parent or path.startswith(parent + "/")


def _s3_public_url(s3):
    scheme = "https" if s3["use_https"] else "http"
    port = ":%d" % s3["port"] if s3["port"] else ""
    if s3["dns_buckets"]:
        return "%s://%s.%s%s" % (scheme, s3["bucket"], s3["host"], port)
    return "%s://%s%s/%s" % (scheme, s3["host"], port, s3["bucket"])


def _check_credentials(label, field, creds, required):
    if creds is None:
        if required:
            raise CvmfsError("%s: %s is required (give vault_path, or access_key and secret_key)" % (label, field))
        return
    inline = creds.get("access_key") is not None or creds.get("secret_key") is not None
    if creds.get("vault_path") and inline:
        raise CvmfsError("%s: %s takes either vault_path or access_key/secret_key, not both" % (label, field))
    if inline and (creds.get("access_key") is None or creds.get("secret_key") is None):
        raise CvmfsError("%s: %s needs both access_key and secret_key" % (label, field))
    if not inline and not creds.get("vault_path"):
        raise CvmfsError("%s: %s is empty (give vault_path, or access_key and secret_key)" % (label, field))


def _readable(message):
    """``value of type must be one of ... found in entry -> storage`` -> ``storage: value of type ...``."""
    unknown = re.match(r"^(?:entry\.)?(.*)\. Supported parameters include: (.*?)\.?$", message)
    if unknown:
        return "unknown field %s (known here: %s)" % (unknown.group(1), unknown.group(2))
    match = re.match(r"^(.*?)\s*found in entry(?: -> (.+))?$", message)
    if match:
        path = ".".join((match.group(2) or "").split(" -> "))
        return ("%s: %s" % (path, match.group(1))) if path else match.group(1)
    return message.replace("entry.", "")


def _validate(label, value, spec):
    result = ArgumentSpecValidator(spec).validate({"entry": value})
    if result.error_messages:
        messages = [_readable(m) for m in result.error_messages]
        raise CvmfsError("%s: %s" % (label, "; ".join(sorted(set(messages)))))
    # a copy: the validator fills sub-options into the spec's own default dicts, shared by every entry
    return copy.deepcopy(result.validated_parameters["entry"])


def _plain(value):
    """A deep copy of ``value`` made of plain dicts and lists. Ansible 2.19 hands filters lazy
    containers whose items are templated on access; ``copy.deepcopy`` of one copies its templating
    context too, and an item that uses a filter (``lookup(...) | from_json``) then fails with
    "filter plugin 'from_json' failed to load". Reading every item here templates it in place."""
    if isinstance(value, Mapping):
        return dict((key, _plain(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return copy.deepcopy(value)


def normalise_entry(index, raw):
    """One checked catalogue entry with every default filled in (raises :class:`CvmfsError`)."""
    label = _entry_label(index, raw)
    if not isinstance(raw, dict):
        raise CvmfsError("%s must be a dict with at least a name, got %s" % (label, type(raw).__name__))
    entry = _validate(label, _plain(raw), CATALOGUE_SPEC)
    name = entry["name"]
    if not name.startswith("*.") and not _NAME_RE.match(name):
        raise CvmfsError("%s: name %r is not a valid repository name (letters, digits, '-', '_', '.'; "
                         "at most 60 characters; first a letter or digit)" % (label, name))
    external.check(label, entry)

    storage = entry["storage"]
    if storage["type"] == "s3":
        if not storage["s3"]:
            raise CvmfsError("%s: storage.type is s3 but storage.s3 (host, bucket, credentials) is missing" % label)
        _check_credentials(label, "storage.s3.credentials", storage["s3"]["credentials"], True)
        if not storage["s3"]["public_url"]:
            storage["s3"]["public_url"] = _s3_public_url(storage["s3"])
        storage["s3"]["public_url"] = storage["s3"]["public_url"].rstrip("/")
    elif storage["s3"]:
        raise CvmfsError("%s: storage.s3 is set but storage.type is %s; set storage.type: s3 or remove storage.s3"
                         % (label, storage["type"]))

    if not entry["url"] and not entry["external"]:
        if storage["type"] == "s3":
            entry["url"] = "%s/%s" % (storage["s3"]["public_url"], name)
        else:
            entry["url"] = "http://%s/cvmfs/%s" % (entry["stratum0"], name)
    entry["url"] = entry["url"].rstrip("/") if entry["url"] else None

    gateway = entry["gateway"]
    if not gateway["url"] and not entry["external"]:
        gateway["url"] = "http://%s:%d/api/v1" % (entry["stratum0"], GATEWAY_PORT)
    gateway["key_path"] = _norm_path(label, "gateway.key_path", gateway["key_path"])

    for key in entry["server_options"]:
        if not _OPTION_RE.match(str(key)):
            raise CvmfsError("%s: server_options key %r is not a server.conf variable name (e.g. CVMFS_AUTO_GC_TIMESPAN)"
                             % (label, key))
    entry["server_options"] = dict((k, _option_text(v)) for k, v in entry["server_options"].items())
    if entry["gc"]["enabled"] and entry["auto_tag"]["enabled"] and not entry["auto_tag"]["timespan"]:
        raise CvmfsError("%s: gc.enabled with auto_tag.enabled and an empty auto_tag.timespan keeps every revision "
                         "alive, so GC could never free anything; set auto_tag.timespan or disable auto_tag" % label)

    source = entry["source"]
    _check_credentials(label, "source.credentials", source["credentials"], False)
    if source["ingest_prefix"] is not None and not source["ingest_prefix"]:
        raise CvmfsError("%s: source.ingest_prefix is empty; give a prefix such as ingest/ or leave it unset" % label)

    seen = {}
    for number, publisher in enumerate(entry["publishers"]):
        where = "%s publishers[%d]" % (label, number)
        if publisher["host"] in seen:
            raise CvmfsError("%s: host %s is listed twice; one publisher host owns one path per repository"
                             % (where, publisher["host"]))
        publisher["path"] = _norm_path(where, "path", publisher["path"])
        seen[publisher["host"]] = publisher["path"]
        if publisher["source"]:
            _check_credentials(where, "source.credentials", publisher["source"]["credentials"], False)
    paths = sorted(seen.items(), key=lambda item: item[1])
    for i, (host_a, path_a) in enumerate(paths):
        for host_b, path_b in paths[i + 1:]:
            if _under(path_b, path_a):
                raise CvmfsError("%s: publisher paths overlap (%s owns %s, %s owns %s); their gateway leases "
                                 "would block each other" % (label, host_a, path_a, host_b, path_b))
    for host, path in paths:
        if not _under(path, gateway["key_path"]):
            raise CvmfsError("%s: publisher %s path %s is outside gateway.key_path %s, so the gateway would refuse "
                             "its lease" % (label, host, path, gateway["key_path"]))
    if entry["publishers"] and not gateway["enabled"]:
        raise CvmfsError("%s: publishers need gateway.enabled: true (publishers reach the stratum-0 through "
                         "the gateway)" % label)
    for number, publisher in enumerate(entry["publishers"]):
        publisher_job(entry, publisher, "%s publishers[%d]" % (label, number))
    return entry


def _option_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def publisher_job(entry, publisher, label=None):
    """What the publish job of one (repository, publisher) pair needs, with inheritance resolved."""
    label = label or entry["name"]
    path = publisher["path"]
    source = dict(entry["source"])
    override = publisher.get("source") or {}
    for key, value in override.items():
        if value is not None:
            source[key] = value
    if not override.get("prefix") and path != "/" and source["prefix"] is not None:
        source["prefix"] = source["prefix"] + path.lstrip("/") + "/"
    if source["ingest_prefix"] and not override.get("ingest_prefix") and path != "/":
        source["ingest_prefix"] = source["ingest_prefix"] + path.lstrip("/") + "/"
    ingest_dir = (source["ingest_dir"] or "").strip("/")
    if ingest_dir:
        _norm_path(label, "source.ingest_dir", ingest_dir)
    ingest = bool(source["ingest_prefix"])
    if source["sync"] or ingest:
        if not source["bucket"]:
            raise CvmfsError("%s: source.bucket is required for a publisher (set it on the repository or the publisher)"
                             % label)
    if ingest and source["sync"] and not ingest_dir and source["delete"]:
        raise CvmfsError("%s: ingest and a deleting sync would fight over the same tree; set source.ingest_dir "
                         "(a directory the sync leaves alone; the publish job excludes it from the mirror) or "
                         "source.delete: false" % label)
    source["ingest_dir"] = ingest_dir
    schedule = publisher.get("schedule") or source["schedule"]
    return {
        "repository": entry["name"],
        "host": publisher["host"],
        "path": path,
        "lease": entry["name"] + ("" if path == "/" else path),
        "owner": publisher.get("owner") or entry["owner"],
        "schedule": schedule,
        "url": entry["url"],
        "gateway_url": entry["gateway"]["url"],
        "source": source,
    }


def normalise(catalogue):
    """Check a whole catalogue; returns the list of normalised entries."""
    if catalogue is None:
        return []
    if not isinstance(catalogue, list):
        raise CvmfsError("cvmfs_repositories must be a list of repository entries, got %s" % type(catalogue).__name__)
    entries = [normalise_entry(i, raw) for i, raw in enumerate(catalogue)]
    names = {}
    for index, entry in enumerate(entries):
        if entry["name"] in names:
            raise CvmfsError("cvmfs_repositories[%d]: repository %s is already described at index %d; describe each "
                             "repository once" % (index, entry["name"], names[entry["name"]]))
        names[entry["name"]] = index
    external.check_config_repository(entries, lambda index: _entry_label(index, entries[index]))
    return entries


def publisher_jobs(catalogue, host):
    """The publish jobs ``host`` runs: one per repository that lists it as a publisher."""
    jobs = []
    for entry in normalise(catalogue):
        for publisher in entry["publishers"]:
            if publisher["host"] == host:
                jobs.append(publisher_job(entry, publisher))
    return jobs
