# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read and verify a CernVM-FS repository the way a client does: manifest, whitelist,
certificate, stratum-1 markers and (optionally) the root catalog, over plain HTTP(S).

Internal to sharedsw.cvmfs; may change in any release. Owns: the whole client-side check of a
repository (:func:`verify_repository`, :func:`inspect_repository`) and the stratum-1 marker files.
The pieces live in ``_cvmfs_signed`` (manifest, whitelist, keys), ``_cvmfs_hashes``,
``_cvmfs_catalog`` and ``_cvmfs_time``; the bytes come through a fetcher such as
``_http_get.HttpFetcher``. Must not import Ansible: the same file runs in modules, on the
controller and in programs on hosts.

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

import json

from ._common import CvmfsError
from ._cvmfs_catalog import MAX_CATALOG, read_catalog
from ._cvmfs_hashes import cvmfs_error, hash_algorithm, object_path
from ._cvmfs_signed import (
    MANIFEST, WHITELIST, check_certificate_listed, check_whitelist_expiry, format_fingerprint, load_certificate_object,
    parse_manifest, parse_whitelist, require_cryptography, verify_manifest, verify_whitelist)
from ._cvmfs_time import LAST_SNAPSHOT, epoch, isoformat, parse_snapshot_time, utc_datetime

STATUS_JSON = ".cvmfs_status.json"
IS_SNAPSHOTTING = ".cvmfs_is_snapshotting"
MASTER_REPLICA = ".cvmfs_master_replica"


def parse_status_json(data, what=STATUS_JSON):
    """``.cvmfs_status.json`` as a dict (keys such as last_snapshot, last_gc, last_check)."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise cvmfs_error("malformed", "%s is not JSON" % what)
    if not isinstance(value, dict):
        raise cvmfs_error("malformed", "%s is JSON but not an object" % what)
    return value


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
        raise cvmfs_error("name_mismatch", "%s is for repository %s, but %s; check the URL and the "
                          "repository name" % (whitelist_url, whitelist.name,
                                               "the expected repository is %s" % name if name
                                               else "the manifest names %s" % expected))
    if manifest.name is not None and manifest.name != expected:
        raise cvmfs_error("name_mismatch", "%s is for repository %s, but the expected repository is %s; "
                          "check the URL and the repository name" % (manifest_url, manifest.name, expected))
    check_whitelist_expiry(whitelist, now, whitelist_url)

    if not manifest.certificate:
        raise cvmfs_error("malformed", "%s has no X line (certificate hash), so its signature cannot be "
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
        raise cvmfs_error("malformed", "%s is empty: the last snapshot of this stratum-1 did not complete "
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
            raise cvmfs_error("malformed", "root catalog %s has revision %s but the manifest says %s"
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
