#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: repository
short_description: Create, configure and remove a CernVM-FS stratum-0 repository or publisher
version_added: 0.1.0
author:
  - sharedsw.cvmfs contributors (@sharedsw)
description:
  - Creates a stratum-0 repository with C(cvmfs_server mkfs) (or C(cvmfs_server import) around an
    existing local storage) on local, S3 or gateway storage, keeps chosen C(server.conf) settings,
    and removes it with C(cvmfs_server rmfs -f).
  - The state is read from the files C(cvmfs_server) itself uses (C(/etc/cvmfs/repositories.d/<name>)
    exists, C(replica.conf) absent), so a second run changes nothing.
  - Existing key files of the repository in C(/etc/cvmfs/keys) are reused by C(mkfs); this is how a
    repository is re-created from keys kept in Vault (put them there first, for example with
    M(sharedsw.cvmfs.keys)).
  - Options that only C(mkfs) can set (O(owner), O(storage), O(stratum0_url), O(gateway_url),
    O(volatile), O(apache)) cannot be updated on an existing repository; the module warns when they
    differ. O(hash_algorithm), O(compression), O(garbage_collection), O(auto_tag),
    O(auto_tag_timespan), O(external_data) and O(server_options) are kept in C(server.conf) and take
    effect with the next publish.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sharedsw.cvmfs.cvmfs_server
  - sharedsw.cvmfs.cvmfs_server.action_group
  - sharedsw.cvmfs.cvmfs_s3
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Secrets in the S3 configuration file are shown as C(********).
options:
  apache:
    description:
      - Let C(mkfs) write the Apache configuration for the repository (local storage).
      - V(false) passes C(-p).
    type: bool
    default: true
  auto_tag:
    description:
      - Tag every publish automatically (C(CVMFS_AUTO_TAG)). V(false) passes C(-g) to C(mkfs).
      - Unset leaves the current setting alone (C(mkfs) default V(true)).
    type: bool
  auto_tag_timespan:
    description:
      - Remove automatic tags older than this C(date)-parsable time span (C(CVMFS_AUTO_TAG_TIMESPAN),
        C(mkfs -G)), for example V(2 weeks ago). An empty string keeps them forever.
    type: str
  compression:
    description:
      - Compression of file data (C(CVMFS_COMPRESSION_ALGORITHM), C(mkfs -Z)).
    type: str
    choices: [default, none]
  external_data:
    description:
      - Publish files as external data (C(CVMFS_EXTERNAL_DATA), C(mkfs -X)).
    type: bool
  garbage_collection:
    description:
      - Make the repository garbage-collectable with automatic GC (C(mkfs -z), C(CVMFS_GARBAGE_COLLECTION)
        and C(CVMFS_AUTO_GC)). Consider O(auto_tag=false) or an O(auto_tag_timespan) with it, since
        automatic tags keep every revision alive.
    type: bool
  gateway_url:
    description:
      - With O(storage=gateway), the gateway API URL, for example V(http://gateway.example.org:4929/api/v1).
      - The module passes C(-u gw,/srv/cvmfs/<name>/data/txn,<gateway_url>).
    type: str
  hash_algorithm:
    description:
      - Content hash algorithm (C(CVMFS_HASH_ALGORITHM), C(mkfs -a)).
    type: str
    choices: [sha1, rmd160, shake128]
  import_chown_storage:
    description:
      - With O(import_storage), hand the storage to O(owner) (C(import -g)).
    type: bool
    default: false
  import_resign_whitelist:
    description:
      - With O(import_storage), create a fresh whitelist (C(import -r)); needed when the stored
        whitelist has expired. Needs the master key.
    type: bool
    default: false
  import_storage:
    description:
      - When the repository does not exist on this host, run C(cvmfs_server import) around the existing
        local storage C(/srv/cvmfs/<name>) instead of C(mkfs). Only for O(storage=local).
    type: bool
    default: false
  keys_dir:
    description:
      - Directory holding the repository's key files (C(<name>.pub), C(.crt), C(.key), C(.masterkey),
        and C(.gw) for a gateway publisher) to import with C(mkfs -k).
      - If C(/etc/cvmfs/keys) already holds the same files, they are simply reused; if it holds
        different ones the module fails rather than overwrite them.
      - O(keys_dir) may be C(/etc/cvmfs/keys) itself (a new stratum-0 whose keys are not in Vault yet);
        C(mkfs) then reuses the keys there, or makes new ones.
      - A gateway publisher needs C(<name>.crt), C(<name>.pub) and C(<name>.gw) here or in C(/etc/cvmfs/keys).
    type: path
  name:
    description:
      - Fully qualified repository name, for example V(sw.example.org). A name without a dot is refused,
        because C(cvmfs_server) would append C(.) and C(CVMFS_DEFAULT_DOMAIN) to it.
    type: str
    required: true
  owner:
    description:
      - User owning the repository (C(mkfs -o)); publishes run as this user or root.
      - Required with O(state=present).
    type: str
  preserve_data:
    description:
      - With O(state=absent), keep the stored data and the keys (C(rmfs -p)); only the
        infrastructure (configuration, spool, mounts) is removed. S3 data is never deleted.
    type: bool
    default: false
  server_options:
    description:
      - C(server.conf) variables to keep, for example C(CVMFS_AUTO_GC_TIMESPAN) or C(CVMFS_REPOSITORY_TTL).
        Other variables are left alone; values are compared as bash would read them.
    type: dict
    default: {}
  state:
    description:
      - V(present) creates the repository if needed and keeps its settings; V(absent) removes it.
    type: str
    choices: [absent, present]
    default: present
  storage:
    description:
      - Where the repository stores its data. V(gateway) makes this host a publisher of a
        repository whose gateway (O(gateway_url)) writes the storage.
    type: str
    choices: [gateway, local, s3]
    default: local
  stratum0_url:
    description:
      - The public HTTP URL of the repository (C(CVMFS_STRATUM0)).
      - Local storage default V(http://localhost/cvmfs/<name>).
      - With O(storage=s3) it must be the bucket URL followed by C(/<name>), for example
        V(http://s3.example.org/cvmfs-bucket/sw.example.org); C(mkfs -w) gets the part before C(/<name>).
      - With O(storage=gateway) the gateway's stratum-0 URL, for example V(http://gateway.example.org/cvmfs/<name>).
    type: str
  volatile:
    description:
      - Mark the repository content as volatile (C(mkfs -v)).
    type: bool
    default: false
seealso:
  - module: sharedsw.cvmfs.transaction
  - module: sharedsw.cvmfs.replica
"""

EXAMPLES = r"""
- name: Stratum-0 repository on local storage, garbage-collected nightly-build style
  sharedsw.cvmfs.repository:
    name: nightlies.example.org
    owner: cvmfs
    hash_algorithm: shake128
    auto_tag: false
    garbage_collection: true
    server_options:
      CVMFS_AUTO_GC_TIMESPAN: 3 days ago
      CVMFS_IGNORE_SPECIAL_FILES: "true"

- name: Repository stored in an S3 bucket (path-style endpoint)
  sharedsw.cvmfs.repository:
    name: sw.example.org
    owner: cvmfs
    storage: s3
    stratum0_url: http://s3.example.org/cvmfs-sw/sw.example.org
    s3_config:
      host: s3.example.org
      bucket: cvmfs-sw
      access_key: "{{ s3_access_key }}"
      secret_key: "{{ s3_secret_key }}"
      dns_buckets: false
      max_parallel_connections: 64
    auto_tag_timespan: 2 weeks ago

- name: Gateway publisher (keys .pub/.crt/.gw fetched from Vault into /etc/cvmfs/keys first)
  sharedsw.cvmfs.repository:
    name: sw.example.org
    owner: publisher
    storage: gateway
    stratum0_url: http://gateway.example.org/cvmfs/sw.example.org
    gateway_url: http://gateway.example.org:4929/api/v1

- name: Re-create the infrastructure around an existing storage, with a fresh whitelist
  sharedsw.cvmfs.repository:
    name: sw.example.org
    owner: cvmfs
    import_storage: true
    import_resign_whitelist: true

- name: Remove the repository but keep data and keys
  sharedsw.cvmfs.repository:
    name: old.example.org
    state: absent
    preserve_data: true
"""

RETURN = r"""
cmd:
  description: Argument list of the last command that changed something (absent if none ran).
  returned: when a command ran
  type: list
  elements: str
  sample: [/usr/bin/cvmfs_server, mkfs, -o, cvmfs, sw.example.org]
key_files:
  description: Paths of the repository's key files present in the keys directory, by kind
    (C(masterkey), C(pub), C(key), C(crt), C(gw)). Paths only, never contents.
  returned: state=present
  type: dict
  sample: {pub: /etc/cvmfs/keys/sw.example.org.pub, crt: /etc/cvmfs/keys/sw.example.org.crt}
name:
  description: The repository name.
  returned: always
  type: str
public_key:
  description: Text of the repository's public master key C(<name>.pub) (public; nothing secret is returned).
  returned: state=present and the key exists
  type: str
rc:
  description: Exit status of the last command that changed something.
  returned: when a command ran
  type: int
repository:
  description: The repository as the state files describe it after the run (V(null) when absent).
    Keys C(name), C(fqrn), C(type), C(storage), C(owner), C(stratum0_url), C(stratum1_url),
    C(upstream), C(in_transaction), C(publishing), C(config) (server.conf without secrets), C(replica_config).
  returned: always
  type: dict
run_info:
  description: Every command run, with environment overrides, working directory, exit status and output.
  returned: at verbosity 4 (-vvvv)
  type: list
  elements: dict
stderr:
  description: Standard error of the last command that changed something.
  returned: when a command ran
  type: str
stdout:
  description: Standard output of the last command that changed something.
  returned: when a command ran
  type: str
stratum0_url:
  description: The repository's stratum-0 URL (C(CVMFS_STRATUM0)).
  returned: state=present
  type: str
  sample: http://localhost/cvmfs/sw.example.org
whitelist_expiry:
  description: Expiry of the repository whitelist (UTC, ISO 8601), read from the storage;
    V(null) if it cannot be read (gateway publisher without access, check mode before creation).
  returned: state=present
  type: str
  sample: "2025-02-01T12:00:00Z"
"""

import os
import pwd

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._cvmfs_server import S3_ARGUMENT_SPEC
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._cvmfs_server_errors import RepositoryExists, WhitelistExpired
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._cvmfs_state import (
    KEY_KINDS, conf_value, key_files, public_key_text, read_storage_object, read_text, repository_state)
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._cvmfs_signed import parse_whitelist_expiry
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._module import CvmfsServerModule


# module option -> server.conf variables it is kept in
SETTING_KEYS = {
    "auto_tag": ("CVMFS_AUTO_TAG",),
    "auto_tag_timespan": ("CVMFS_AUTO_TAG_TIMESPAN",),
    "compression": ("CVMFS_COMPRESSION_ALGORITHM",),
    "external_data": ("CVMFS_EXTERNAL_DATA",),
    "garbage_collection": ("CVMFS_GARBAGE_COLLECTION", "CVMFS_AUTO_GC"),
    "hash_algorithm": ("CVMFS_HASH_ALGORITHM",),
}


class RepositoryModule(CvmfsServerModule):
    noun = "repository"
    argument_spec = dict(S3_ARGUMENT_SPEC)
    argument_spec.update(
        apache=dict(type="bool", default=True),
        auto_tag=dict(type="bool"),
        auto_tag_timespan=dict(type="str"),
        compression=dict(type="str", choices=["default", "none"]),
        external_data=dict(type="bool"),
        garbage_collection=dict(type="bool"),
        gateway_url=dict(type="str"),
        hash_algorithm=dict(type="str", choices=["sha1", "rmd160", "shake128"]),
        import_chown_storage=dict(type="bool", default=False),
        import_resign_whitelist=dict(type="bool", default=False),
        import_storage=dict(type="bool", default=False),
        keys_dir=dict(type="path", no_log=False),
        name=dict(type="str", required=True),
        owner=dict(type="str"),
        preserve_data=dict(type="bool", default=False),
        server_options=dict(type="dict", default={}),
        state=dict(type="str", choices=["absent", "present"], default="present"),
        storage=dict(type="str", choices=["gateway", "local", "s3"], default="local"),
        stratum0_url=dict(type="str"),
        volatile=dict(type="bool", default=False),
    )
    module_kwargs = dict(
        supports_check_mode=True,
        required_if=[
            ("state", "present", ("owner",)),
        ],
    )

    def check_current(self, current):
        if current is not None and current["type"] != "stratum0":
            raise CvmfsError("%s is a stratum-1 replica on this host, not a stratum-0 repository: manage it with "
                             "sharedsw.cvmfs.replica or choose another name" % self.name)

    def apply(self, current):
        if self.params["state"] == "absent":
            self.remove(current)
        else:
            self.present(current)

    # ------------------------------------------------------------------ present

    def present(self, current):
        params = self.params
        needed = {"s3": ("s3_config", "stratum0_url"), "gateway": ("gateway_url", "stratum0_url")}
        missing = [o for o in needed.get(params["storage"], ()) if not params[o]]
        if missing:
            raise CvmfsError("storage=%s needs %s" % (params["storage"], " and ".join(missing)))
        owner = params["owner"]
        try:
            owner_pw = pwd.getpwnam(owner)
        except KeyError:
            raise CvmfsError("owner %r is not a user on this host: create the user first (cvmfs_server mkfs "
                             "would fail with 'No user %s')" % (owner, owner))
        w_url = self.mkfs_url()
        settings = self.wanted_settings()
        s3_path = None
        if params["storage"] == "s3":
            s3_path = self.s3_config_path()
            self.ensure_s3_config(s3_path, owner_pw)
        if current is None:
            if self.create(w_url, s3_path):
                self.results["changed"] = True
        else:
            self.warn_immutable(current)
        self.ensure_settings(settings, created=current is None)
        self.report()

    def mkfs_url(self):
        """The -w value: stratum0_url, or for S3 the bucket URL in front of '/<name>'."""
        url = self.params["stratum0_url"]
        if url is None or self.params["storage"] != "s3":
            return url
        suffix = "/" + self.name
        if not url.rstrip("/").endswith(suffix):
            raise CvmfsError("with storage=s3, stratum0_url must be the bucket URL followed by /%s "
                             "(cvmfs_server appends the repository name), e.g. http://s3.example.org/bucket/%s; "
                             "got %s" % (self.name, self.name, url))
        return url.rstrip("/")[:-len(suffix)]

    def wanted_settings(self):
        params = self.params
        wanted = {}
        for option, keys in SETTING_KEYS.items():
            if params[option] is not None:
                for key in keys:
                    wanted[key] = conf_value(params[option])
        for key, value in (params["server_options"] or {}).items():
            value = conf_value(value)
            if key in wanted and wanted[key] != value:
                option = [o for o, ks in SETTING_KEYS.items() if key in ks][0]
                raise CvmfsError("server_options sets %s=%r but option %s wants %r: set it in one place only"
                                 % (key, value, option, wanted[key]))
            wanted[key] = value
        return wanted

    def keys_argument(self, for_mkfs=True):
        """The -k value for mkfs (or import), after checking what /etc/cvmfs/keys already holds.

        ``mkfs`` needs every key file of the repository (``masterkey``, ``crt``, ``pub``, ``key``; a
        gateway publisher ``crt``, ``pub``, ``gw``): when any of them is in /etc/cvmfs/keys it imports
        them from there, otherwise from ``-k``, otherwise it makes new ones (not for a gateway
        publisher). A missing file makes it fail half-way, leaving a repository that is not one, so
        the set is checked here first (for mkfs; import has its own rules and messages).
        """
        params = self.params
        gateway = params["storage"] == "gateway"
        required = ("crt", "pub", "gw") if gateway else ("masterkey", "crt", "pub", "key")
        existing = key_files(self.name, self.paths)
        in_place = [kind for kind in required if kind in existing]
        source = params["keys_dir"]
        if source and os.path.realpath(source) == os.path.realpath(self.paths.keys_dir):
            source = None  # mkfs's own keys directory: it reuses the keys there, or makes them
        incoming = {}
        if source:
            if not os.path.isdir(source):
                raise CvmfsError("keys_dir %s is not a directory: point it at the directory holding %s.pub, "
                                 "%s.crt, ..." % (source, self.name, self.name))
            for kind in KEY_KINDS:
                path = os.path.join(source, "%s.%s" % (self.name, kind))
                if os.path.isfile(path):
                    incoming[kind] = path
            if not incoming:
                raise CvmfsError("keys_dir %s holds no key files of %s (expected %s.pub, %s.crt, ...)"
                                 % (source, self.name, self.name, self.name))
        if source and in_place:
            differing = [kind for kind in required if kind in incoming and kind in existing
                         and read_text(incoming[kind]) != read_text(existing[kind])]
            if differing:
                raise CvmfsError("%s already holds keys of %s that differ from those in keys_dir %s (%s); mkfs will "
                                 "not overwrite them: remove the old keys or drop keys_dir to reuse them"
                                 % (self.paths.keys_dir, self.name, source, ", ".join(sorted(differing))))
        if not for_mkfs:
            return None if in_place else source
        have = existing if in_place else incoming if source else None
        if have is None and not gateway:
            return None  # mkfs makes new keys
        missing = ["%s.%s" % (self.name, kind) for kind in required if kind not in (have or {})]
        if missing:
            where = self.paths.keys_dir if in_place else "keys_dir " + source if source else "keys_dir or " + \
                self.paths.keys_dir
            raise CvmfsError("%s needs %s in %s; missing: %s (cvmfs_server mkfs would stop half-way and leave a "
                             "broken repository behind): add them, for example from Vault with sharedsw.cvmfs.keys%s"
                             % ("a gateway publisher" if gateway else "mkfs of " + self.name,
                                ", ".join("%s.%s" % (self.name, kind) for kind in required), where,
                                ", ".join(missing), "" if gateway else ", or remove the incomplete set"))
        return None if in_place else source

    def create(self, w_url, s3_path):
        """mkfs (or import); ``False`` if the repository turned out to exist already."""
        params = self.params
        storage = params["storage"]
        self.diffs.append(self.state_diff("absent", "present\nstorage: %s\nowner: %s" % (storage, params["owner"])))
        keys_dir = self.keys_argument(for_mkfs=not params["import_storage"])
        if params["import_storage"]:
            return self.import_storage(w_url, keys_dir)
        upstream = None
        if storage == "gateway":
            gateway_url = params["gateway_url"]
            if "," in gateway_url or not gateway_url.startswith(("http://", "https://")):
                raise CvmfsError("gateway_url must be the gateway API URL, e.g. http://gateway.example.org:4929/api/v1 "
                                 "(no commas); got %r" % gateway_url)
            upstream = "gw,%s,%s" % (os.path.join(self.paths.srv_dir, self.name, "data", "txn"), gateway_url)
        try:
            self.server.run(
                "mkfs", name=self.name, owner=params["owner"], stratum0_url=w_url, upstream=upstream,
                s3_config=s3_path, keys_dir=keys_dir, volatile=params["volatile"], auto_tag=params["auto_tag"],
                auto_tag_timespan=params["auto_tag_timespan"] or None, hash_algorithm=params["hash_algorithm"],
                garbage_collection=params["garbage_collection"], apache=params["apache"],
                compression=params["compression"], external_data=params["external_data"])
        except RepositoryExists:
            # created concurrently between our state read and mkfs: the wanted state holds.
            return False
        return True

    def import_storage(self, w_url, keys_dir):
        params = self.params
        if params["storage"] != "local":
            raise CvmfsError("import_storage works with storage=local only (cvmfs_server import re-creates the "
                             "infrastructure around %s/%s)" % (self.paths.srv_dir, self.name))
        try:
            self.server.run(
                "import", name=self.name, owner=params["owner"], stratum0_url=w_url, keys_dir=keys_dir,
                chown_storage=params["import_chown_storage"], resign_whitelist=params["import_resign_whitelist"],
                apache=params["apache"])
        except RepositoryExists:
            return False
        except WhitelistExpired as error:
            raise WhitelistExpired("the whitelist stored with %s has expired: set import_resign_whitelist=true "
                                   "(needs %s.masterkey) to create a fresh one" % (self.name, self.name), error.result)
        return True

    def ensure_settings(self, wanted, created):
        path = self.paths.server_conf(self.name)
        old = read_text(path)
        if old is None:
            if created and self.check_mode and wanted:
                after = "".join("%s=%s\n" % (k, v) for k, v in sorted(wanted.items()))
                self.diffs.append({"before_header": path, "after_header": path, "before": "", "after": after})
            return
        self.update_conf(path, wanted, old)

    def warn_immutable(self, current):
        params = self.params
        checks = [("owner", params["owner"], current["owner"]),
                  ("storage", params["storage"], current["storage"])]
        if params["stratum0_url"]:
            checks.append(("stratum0_url", params["stratum0_url"].rstrip("/"), (current["stratum0_url"] or "").rstrip("/")))
        if params["storage"] == "gateway" and params["gateway_url"]:
            checks.append(("gateway_url", params["gateway_url"], (current["upstream"] or {}).get("gateway_url")))
        for option, wanted, actual in checks:
            if actual is not None and wanted != actual:
                self.ansible.warn("%s of existing repository %s is %r, not %r; cvmfs_server cannot change it in "
                                  "place (remove and re-create the repository to change it)"
                                  % (option, self.name, actual, wanted))

    def report(self):
        state = repository_state(self.name, self.paths)
        if state is None:  # check mode, not created yet
            url = self.params["stratum0_url"] or "http://localhost/cvmfs/%s" % self.name
            self.results.update(stratum0_url=url, key_files={}, whitelist_expiry=None)
            text = public_key_text(self.name, self.paths, self.params["keys_dir"])
            if text is not None:
                self.results["public_key"] = text
            return
        self.results["stratum0_url"] = state["stratum0_url"]
        self.results["key_files"] = key_files(self.name, self.paths)
        text = public_key_text(self.name, self.paths)
        if text is not None:
            self.results["public_key"] = text
        self.results["whitelist_expiry"] = None
        try:
            data = read_storage_object(state, ".cvmfswhitelist", self.paths)
        except IOError as error:
            self.ansible.warn("could not read the whitelist of %s: %s" % (self.name, error))
            data = None
        if data:
            expiry = parse_whitelist_expiry(data)
            if expiry is not None:
                self.results["whitelist_expiry"] = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")


def main():
    RepositoryModule()()


if __name__ == "__main__":
    main()
