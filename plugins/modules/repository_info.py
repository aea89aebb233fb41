#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: repository_info
short_description: Verify and describe a CernVM-FS repository over HTTP, or list the repositories of a server
version_added: 0.1.0
author:
  - sharedsw.cvmfs developers (@sharedsw)
description:
  - "Remote mode (O(url) set): fetches C(.cvmfswhitelist), C(.cvmfspublished) and the certificate object
    of a repository from a stratum-0 or stratum-1 over HTTP(S), optionally through a proxy, and verifies
    them the way a CernVM-FS client does: the whitelist signature against the master public key(s), the
    repository name, the whitelist expiry, the certificate fingerprint against the whitelist, and the
    manifest signature against the certificate. Returns revision, root catalog hash, publish time, TTL,
    whitelist expiry and days left, the stratum-1 snapshot time, and the replication lag behind a stratum-0."
  - "Remote mode is pure Python and needs no CernVM-FS software; run it on the controller with
    C(delegate_to: localhost) to watch servers from outside."
  - "Local mode (O(url) not set): lists the repositories configured on the host in
    C(/etc/cvmfs/repositories.d), with their type, storage and whether a transaction is open, from the
    files C(cvmfs_server) itself uses. Needs no CernVM-FS software either."
  - The module fails with a specific message, and a RV(reason) key saying why, when a check fails.
  - This module never changes anything.
options:
  ca_file:
    description:
      - File of PEM CA certificates used to validate HTTPS servers instead of the system's CAs.
    type: path
  name:
    description:
      - Fully qualified repository name, for example V(repo.example.org).
      - Remote mode. The name the repository must have. Manifest and whitelist must both carry it, else the
        module fails with RV(reason=name_mismatch). Without it, the manifest's own name is used,
        and the whitelist must match that.
      - Local mode. Report only the repositories with this directory name in C(repositories.d) (for an
        aliased stratum-1, the alias) or this C(CVMFS_REPOSITORY_NAME). The list is empty when none matches.
    type: str
    aliases: [repository]
  proxy:
    description:
      - Remote mode. HTTP proxy for all requests, for example V(http://squid.example.org:3128).
      - V(DIRECT) connects directly and ignores proxy environment variables. Without this option the
        C(http_proxy)/C(https_proxy)/C(no_proxy) environment variables of the module apply.
      - Credentials in the proxy URL (C(http://user:password@host:port)) are replaced by C(***) in error
        messages and masked in the logged invocation and the results.
    type: str
  public_keys:
    description:
      - Remote mode, required there. The repository's master public key(s), what clients get as
        C(<repository>.pub). Any of them may have signed the whitelist.
      - Each item is a path to a key file, a path to a directory whose C(*.pub) files are all used (as the
        client's C(CVMFS_KEYS_DIR)), or the PEM text itself.
      - A private key given here by mistake is refused, and masked in the logged invocation and the results.
    type: list
    elements: str
  read_root_catalog:
    description:
      - Remote mode. Also download the root catalog, check it against its hash, and return its properties
        and statistics as RV(repository.catalog).
      - The root catalog of a large repository can be megabytes; leave this off for frequent checks.
    type: bool
    default: false
  reference_time:
    description:
      - Remote mode. Judge whitelist expiry, days left and snapshot age at this moment instead of now.
      - Seconds since the epoch, or ISO 8601 (V(2026-12-24T08:00:00Z); no offset means UTC). Use a future
        time to check that the whitelist will still be valid then, for example over a holiday break.
    type: str
  retries:
    description:
      - Remote mode. How often to retry a request after a transient failure (timeout, connection reset,
        HTTP 502/503/504), with jittered exponential backoff.
    type: int
    default: 2
  stratum0_url:
    description:
      - Remote mode. Base URL of the repository on its stratum-0, for example
        V(http://stratum0.example.org/cvmfs/repo.example.org). When set, the stratum-0 is verified as well
        and RV(repository.replication) says how far O(url) lags behind it.
    type: str
  timeout:
    description:
      - Remote mode. Timeout of each HTTP request, in seconds.
    type: float
    default: 10
  url:
    description:
      - Base URL of the repository on a stratum-0 or stratum-1, the directory that holds
        C(.cvmfspublished), for example V(http://stratum1.example.org/cvmfs/repo.example.org), or
        for an S3 stratum-0 V(https://bucket.s3.example.org/repo.example.org). HTTP or HTTPS.
      - Setting it selects remote mode; without it the module runs in local mode.
    type: str
  validate_certs:
    description:
      - Remote mode. Validate the certificates of HTTPS servers. Only turn this off for tests.
    type: bool
    default: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sharedsw.cvmfs.cvmfs_server.action_group
attributes:
  check_mode:
    description: Can run in check_mode and return the same information, since it never changes anything.
    support: full
  diff_mode:
    description: Nothing to show a diff of; the module never changes anything.
    support: N/A
  platform:
    description: Remote mode runs anywhere Python runs, the controller included; local mode reads the server's files.
    support: full
    platforms: posix
requirements:
  - Remote mode needs the Python library C(cryptography) (Debian and EL package C(python3-cryptography)).
notes:
  - Expiry is judged like a CernVM-FS client does, to the hour - minutes and seconds of the whitelist's
    expiry line are ignored, so a whitelist expiring at 11:19 is refused from 11:00.
  - "Requests send C(Cache-Control: max-age=0), as C(cvmfs_server) does, so proxies revalidate their copies."
  - PKCS#7-signed whitelists (C(Vpkcs7)) are not verified; the module fails with RV(reason=unsupported).
seealso:
  - name: CernVM-FS repository signature details
    description: How manifests, whitelists and certificates are signed.
    link: https://cvmfs.readthedocs.io/en/stable/cpt-details.html
"""

EXAMPLES = r"""
- name: Check a stratum-1 against its stratum-0, from the controller
  sharedsw.cvmfs.repository_info:
    url: http://stratum1.example.org/cvmfs/repo.example.org
    stratum0_url: http://stratum0.example.org/cvmfs/repo.example.org
    public_keys:
      - /etc/cvmfs/keys/example.org/repo.example.org.pub
  delegate_to: localhost
  run_once: true
  register: s1

- name: Fail early when the whitelist needs re-signing soon, or the replica is behind
  ansible.builtin.assert:
    that:
      - s1.repository.whitelist.days_left >= 7
      - s1.repository.replication.revisions_behind == 0
    fail_msg: >-
      {{ s1.repository.name }}: whitelist expires {{ s1.repository.whitelist.expires }},
      stratum-1 is {{ s1.repository.replication.revisions_behind }} revision(s) behind

- name: Check a repository through the site squid, with the key given as text from Vault
  sharedsw.cvmfs.repository_info:
    url: http://stratum1.example.org/cvmfs/repo.example.org
    name: repo.example.org
    proxy: http://squid.example.org:3128
    public_keys:
      - "{{ lookup('community.hashi_vault.vault_kv2_get', 'cvmfs/repo.example.org/public').secret.pub }}"
  delegate_to: localhost

- name: Will the whitelist still be valid on the first working day of the new year?
  sharedsw.cvmfs.repository_info:
    url: http://stratum0.example.org/cvmfs/repo.example.org
    public_keys: [/etc/cvmfs/keys/example.org/]
    reference_time: "2027-01-04T08:00:00Z"

- name: Read the root catalog statistics too
  sharedsw.cvmfs.repository_info:
    url: https://stratum1.example.org/cvmfs/repo.example.org
    public_keys: [/etc/cvmfs/keys/example.org/repo.example.org.pub]
    ca_file: /etc/pki/site-ca.pem
    read_root_catalog: true
  register: repo

- name: List the repositories of this server, and whether a transaction is open
  sharedsw.cvmfs.repository_info:
  register: local

- name: Refuse to go on while a transaction is open
  ansible.builtin.assert:
    that: local.repositories | selectattr('in_transaction') | list | length == 0
"""

RETURN = r"""
reason:
  description:
    - Why a check failed, one of V(http_error), V(malformed), V(hash_mismatch), V(bad_signature),
      V(whitelist_expired), V(not_in_whitelist), V(name_mismatch), V(unsupported), V(bad_key).
  returned: failure
  type: str
  sample: whitelist_expired
repositories:
  description:
    - Local mode. One entry per repository in C(repositories.d), sorted by name; empty when there is none.
  returned: success, local mode
  type: list
  elements: dict
  contains:
    config:
      description: Variables of C(server.conf), without variables whose names look like secrets.
      type: dict
      sample: {"CVMFS_REPOSITORY_NAME": "repo.example.org", "CVMFS_HASH_ALGORITHM": "sha1"}
    fqrn:
      description: Fully qualified repository name (C(CVMFS_REPOSITORY_NAME)).
      type: str
      sample: repo.example.org
    in_transaction:
      description: Whether a transaction is open (C(in_transaction.lock) exists in the spool directory).
      type: bool
      sample: false
    name:
      description: Directory name in C(repositories.d); the alias of an aliased stratum-1.
      type: str
      sample: repo.example.org
    owner:
      description: Repository owner (C(CVMFS_USER)).
      type: str
      sample: cvmfs
    publishing:
      description: Whether a publish is running (a lock is held on C(is_publishing.lock)).
      type: bool
      sample: false
    replica_config:
      description: Variables of C(replica.conf) (stratum-1 only, else V(null)), without secret-looking ones.
      type: dict
      sample: {"CVMFS_PUBLIC_KEY": "/etc/cvmfs/keys/example.org"}
    storage:
      description: Where the repository is stored, V(local), V(s3) or V(gateway); V(null) if unknown.
      type: str
      sample: local
    stratum0_url:
      description: C(CVMFS_STRATUM0).
      type: str
      sample: http://localhost/cvmfs/repo.example.org
    stratum1_url:
      description: C(CVMFS_STRATUM1) (stratum-1 only, else V(null)).
      type: str
      sample: http://localhost/cvmfs/repo.example.org
    type:
      description: V(stratum0) or V(stratum1).
      type: str
      sample: stratum0
    upstream:
      description: C(CVMFS_UPSTREAM_STORAGE) split into its parts (C(type), C(storage), C(tmp_dir), C(config), ...).
      type: dict
      sample: {"type": "local", "storage": "local", "tmp_dir": "/srv/cvmfs/repo.example.org/data/txn",
               "config": "/srv/cvmfs/repo.example.org", "local_path": "/srv/cvmfs/repo.example.org"}
repository:
  description: Remote mode. What was verified and read about the repository at O(url).
  returned: success, remote mode
  type: dict
  contains:
    alternative_paths:
      description: Whether the manifest announces C(.cvmfsalt-*) catalog paths (manifest line C(A)).
      type: bool
      sample: false
    catalog:
      description: Root catalog properties and statistics; V(null) unless O(read_root_catalog).
      type: dict
      contains:
        last_modified:
          description: Catalog modification time, seconds since the epoch.
          type: int
          sample: 1795432781
        nested_catalogs:
          description: Number of nested catalogs directly below the root catalog.
          type: int
          sample: 1
        previous_revision:
          description: Hash of the root catalog of the previous revision.
          type: str
          sample: 343ad19f9f14d213055f5b192ede83a02a36a50d
        revision:
          description: Revision stored in the catalog (equals RV(repository.revision)).
          type: int
          sample: 3
        schema:
          description: Catalog schema version.
          type: str
          sample: "2.5"
        schema_revision:
          description: Catalog schema revision.
          type: int
          sample: 7
        statistics:
          description:
            - Entry counters of the whole tree, as the catalogs count them (C(self_*) plus C(subtree_*)),
              for example V(regular), V(dir), V(symlink), V(special), V(external), V(chunked), V(nested),
              V(file_size) (bytes). The root directory and each nested catalog's root count as directories,
              the latter twice (in the parent and in the nested catalog).
          type: dict
          sample: {"dir": 10, "file_size": 104245, "nested": 1, "regular": 8, "symlink": 1}
        ttl:
          description: TTL stored in the catalog, in seconds.
          type: int
          sample: 240
    certificate:
      description: The repository certificate that signed the manifest.
      type: dict
      contains:
        fingerprint:
          description: Its fingerprint as listed in the whitelist.
          type: str
          sample: "24:AE:0A:B8:1C:EC:0B:D7:29:B3:A4:3B:60:8F:CB:F7:BC:AC:2C:48"
        hash:
          description: Content hash of the certificate object (manifest line C(X)).
          type: str
          sample: 66f68cfd962c8a28d8113b6272c706ecd23ad9e8
        subject:
          description: Certificate subject.
          type: str
          sample: CN=repo.example.org CernVM-FS Release Managers
    garbage_collectable:
      description: Whether the repository is garbage-collectable (manifest line C(G)); V(null) if absent.
      type: bool
      sample: false
    hash_algorithm:
      description: Content hash algorithm of the root catalog, V(sha1), V(rmd160) or V(shake128).
      type: str
      sample: sha1
    history_hash:
      description: Hash of the tag history database (manifest line C(H)), or V(null).
      type: str
      sample: e939cbd30d82bcb8c8fc6a592a16fb11183c05a6
    metainfo_hash:
      description: Hash of the repository meta-information JSON (manifest line C(M)), or V(null).
      type: str
      sample: 85e4f386da0d5d77c7f66cf2f58e10951f24b653
    name:
      description: Fully qualified repository name (from the manifest, else the whitelist).
      type: str
      sample: repo.example.org
    published:
      description: Publish time of this revision, ISO 8601 UTC (manifest line C(T)), or V(null).
      type: str
      sample: "2026-11-23T11:19:41Z"
    published_epoch:
      description: The same, in seconds since the epoch.
      type: int
      sample: 1795432781
    reflog_hash:
      description: Hash of the reference log C(.cvmfsreflog) (manifest line C(Y)), or V(null).
      type: str
      sample: 085788623d87a8de0e59913ba465217126d3aa65
    replicable:
      description:
        - Whether C(.cvmfs_master_replica) is present, that is stratum-1s may replicate from this URL.
          Normally true on a stratum-0 and false on a stratum-1.
      type: bool
      sample: true
    replication:
      description: Comparison with the stratum-0 at O(stratum0_url); V(null) without it.
      type: dict
      contains:
        in_sync:
          description: Same revision and same root catalog as the stratum-0.
          type: bool
          sample: true
        lag_seconds:
          description:
            - How much older the served revision is than the stratum-0's, by publish time, in seconds.
              V(0) when not behind.
          type: int
          sample: 0
        revisions_behind:
          description: Stratum-0 revision minus the revision served at O(url) (never negative).
          type: int
          sample: 0
        stratum0_published:
          description: Publish time of the stratum-0 revision, ISO 8601 UTC.
          type: str
          sample: "2026-11-23T11:19:41Z"
        stratum0_revision:
          description: Revision on the stratum-0.
          type: int
          sample: 3
        stratum0_url:
          description: The stratum-0 URL that was compared against.
          type: str
          sample: http://stratum0.example.org/cvmfs/repo.example.org
    revision:
      description: Revision number (manifest line C(S)).
      type: int
      sample: 3
    root_catalog_hash:
      description: Content hash of the root catalog (manifest line C(C)).
      type: str
      sample: 62c4f22a1e8b1bf0032a8c41f4cbf82eb03be57b
    root_catalog_size:
      description: Size of the root catalog object in bytes (manifest line C(B)), or V(null).
      type: int
      sample: 16384
    stratum1:
      description: Stratum-1 information; V(null) when O(url) has no C(.cvmfs_last_snapshot) (not a stratum-1).
      type: dict
      contains:
        last_snapshot:
          description: End of the last successful snapshot, ISO 8601 UTC.
          type: str
          sample: "2026-11-23T11:20:05Z"
        last_snapshot_epoch:
          description: The same, in seconds since the epoch.
          type: int
          sample: 1795432805
        snapshot_age_seconds:
          description: Seconds from the last snapshot to now (or to O(reference_time)).
          type: int
          sample: 600
        snapshot_in_progress:
          description: Whether C(.cvmfs_is_snapshotting) is present, that is a snapshot is running.
          type: bool
          sample: false
        status:
          description: Content of C(.cvmfs_status.json) (for example C(last_snapshot), C(last_gc)), or V(null) if absent.
          type: dict
          sample: {"last_snapshot": "Mon Nov 23 11:20:05 UTC 2026"}
    ttl:
      description: Time clients cache this revision before looking for a new one, in seconds (manifest line C(D)).
      type: int
      sample: 240
    url:
      description: The base URL that was checked.
      type: str
      sample: http://stratum1.example.org/cvmfs/repo.example.org
    whitelist:
      description: The verified whitelist.
      type: dict
      contains:
        created:
          description: Signing time, ISO 8601 UTC.
          type: str
          sample: "2026-11-23T11:19:40Z"
        days_left:
          description: Whole days until clients refuse the whitelist (at hour precision).
          type: int
          sample: 29
        expired:
          description: Always V(false) on success (an expired whitelist makes the module fail).
          type: bool
          sample: false
        expires:
          description: Expiry time as written in the whitelist (line C(E)), ISO 8601 UTC.
          type: str
          sample: "2026-12-23T11:19:40Z"
        expires_epoch:
          description: The same, in seconds since the epoch.
          type: int
          sample: 1798024780
        fingerprints:
          description: Certificate fingerprints the whitelist approves.
          type: list
          elements: str
          sample: ["24:AE:0A:B8:1C:EC:0B:D7:29:B3:A4:3B:60:8F:CB:F7:BC:AC:2C:48"]
        hash_algorithm:
          description: Hash algorithm of the whitelist's signed hash.
          type: str
          sample: sha1
        name:
          description: Repository name in the whitelist (line C(N)).
          type: str
          sample: repo.example.org
        seconds_left:
          description: Seconds until clients refuse the whitelist.
          type: int
          sample: 2545200
status:
  description: HTTP status of the request that failed.
  returned: failure with RV(reason=http_error) on an HTTP error status
  type: int
  sample: 404
whitelist_expires:
  description: Expiry time written in the whitelist, ISO 8601 UTC.
  returned: failure with RV(reason=whitelist_expired)
  type: str
  sample: "2026-12-23T11:19:40Z"
"""

import time

from urllib.parse import urlsplit

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.six import string_types

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._crypto import CRYPTOGRAPHY_IMP_ERR, HAS_CRYPTOGRAPHY
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._cvmfs_format import inspect_repository
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._cvmfs_server import host_paths
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._cvmfs_signed import load_public_keys, read_public_key_sources
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._cvmfs_state import local_repositories
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._cvmfs_time import utc_datetime
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._http_get import HttpFetcher
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._module import CvmfsModule

REMOTE_ONLY = ("ca_file", "proxy", "public_keys", "reference_time", "stratum0_url")


class RepositoryInfo(CvmfsModule):
    argument_spec = dict(
        ca_file=dict(type="path"),
        name=dict(type="str", aliases=["repository"]),
        proxy=dict(type="str"),
        public_keys=dict(type="list", elements="str", no_log=False),
        read_root_catalog=dict(type="bool", default=False),
        reference_time=dict(type="str"),
        retries=dict(type="int", default=2),
        stratum0_url=dict(type="str"),
        timeout=dict(type="float", default=10),
        url=dict(type="str"),
        validate_certs=dict(type="bool", default=True),
    )
    module_kwargs = dict(
        supports_check_mode=True,
        required_by=dict(url=["public_keys"]),
    )

    @classmethod
    def secret_values(cls, raw_params):
        """A private key pasted into public_keys by mistake, and the credentials of a proxy URL."""
        keys = raw_params.get("public_keys") or []
        keys = [keys] if isinstance(keys, string_types) else keys
        secrets = set()
        for key in keys:
            if isinstance(key, string_types) and "PRIVATE KEY" in key:
                # the log shows the list with its line breaks escaped: mask each line of the key too
                secrets.add(key)
                secrets.update(line.strip() for line in key.splitlines() if line.strip() and "-----" not in line)
        proxy = raw_params.get("proxy")
        parts = urlsplit(proxy) if isinstance(proxy, string_types) else None
        if parts and parts.password:
            secrets.update((parts.password, parts.netloc.rpartition("@")[0]))
        return secrets

    def run(self):
        if self.params["url"]:
            self.remote()
        else:
            given = [o for o in REMOTE_ONLY if self.params[o] is not None]
            if self.params["read_root_catalog"]:
                given.append("read_root_catalog")
            if given:
                raise CvmfsError("%s only apply with url (remote mode); set url to the repository base URL, "
                                 "or drop them to list the local repositories" % ", ".join(sorted(given)))
            self.local()

    def remote(self):
        if not HAS_CRYPTOGRAPHY:
            self.ansible.fail_json(msg=missing_required_lib("cryptography"), exception=CRYPTOGRAPHY_IMP_ERR)
        if self.params["retries"] < 0 or self.params["timeout"] <= 0:
            raise CvmfsError("retries must be 0 or more and timeout more than 0 seconds (got retries=%s, "
                             "timeout=%s)" % (self.params["retries"], self.params["timeout"]))
        for option in ("url", "stratum0_url"):
            value = self.params[option]
            if value and not value.lower().startswith(("http://", "https://")):
                raise CvmfsError("%s must be an http:// or https:// URL of the repository's base directory "
                                 "(the one holding .cvmfspublished), got %r" % (option, value))
        try:
            now = utc_datetime(self.params["reference_time"]) if self.params["reference_time"] else None
        except ValueError as exc:
            raise CvmfsError("reference_time: %s" % exc)
        if now is None:
            now = utc_datetime(time.time())
        keys = load_public_keys(read_public_key_sources(self.params["public_keys"]))
        fetcher = HttpFetcher(proxy=self.params["proxy"], timeout=self.params["timeout"],
                              ca_file=self.params["ca_file"], validate_certs=self.params["validate_certs"],
                              retries=self.params["retries"])
        self.results["repository"] = inspect_repository(
            self.params["url"], fetcher, keys, now, name=self.params["name"],
            stratum0_url=self.params["stratum0_url"], read_root_catalog=self.params["read_root_catalog"])

    def local(self):
        repositories = local_repositories(host_paths())
        if self.params["name"]:
            wanted = self.params["name"]
            repositories = [r for r in repositories if wanted in (r["name"], r["fqrn"])]
        self.results["repositories"] = repositories


def main():
    RepositoryInfo()()


if __name__ == "__main__":
    main()
