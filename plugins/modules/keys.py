#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: keys
short_description: Move CernVM-FS repository keys between a host's keys directory and Vault
version_added: 0.1.0
author:
  - sharedsw.cvmfs developers (@sharedsw)
description:
  - Stores the key files of a CernVM-FS repository from a keys directory into a Vault or OpenBao
    KV version 2 secrets engine (O(state=stored)), fetches chosen kinds of key from Vault into a keys
    directory (O(state=present)), or deletes them (O(state=absent)).
  - 'Five kinds of key file exist, named after the repository: C(<repo>.masterkey) (V(masterkey),
    signs the whitelist), C(<repo>.key) (V(key), signs every publish), C(<repo>.crt) (V(crt), its
    certificate), C(<repo>.pub) (V(pub), the public masterkey every client and stratum-1 needs) and
    C(<repo>.gw) (V(gw), the gateway API key of publishers).'
  - 'By default (O(layout=per_kind)) each kind goes to its own path, so that Vault policies, which
    grant by path and not by field, can be least privilege: C(<prefix>/<repo>/master) (masterkey),
    C(<prefix>/<repo>/signing) (key), C(<prefix>/<repo>/gateway) (gw) and C(<prefix>/<repo>/public)
    (pub and crt, fields V(pub) and V(crt)).'
  - Key material is validated before it is moved (a public key is a PEM RSA public key, a certificate
    parses as X.509, private keys parse as unencrypted RSA keys, a gateway key has the shape
    C(plain_text <id> <secret>), a masterkey matches its .pub and a repository key its .crt); if anything
    is wrong the task fails and nothing is written.
  - The module never returns, logs or shows key material. Results and diffs carry fingerprints only.
  - Writes only what differs. O(state=stored) writes a new KV version only when a value changed, with
    check-and-set, and keeps fields of the secret it does not manage. O(state=present) replaces a
    file atomically (temporary file in the same directory, then rename) only when its content changed,
    and fixes mode and owner in place otherwise.
  - See the collection document C(docs/vault-policies.md) for example policies per node type.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sharedsw.cvmfs._vault
  - sharedsw.cvmfs._vault.key_layout
  - sharedsw.cvmfs._vault.action_group
options:
  allow_masterkey:
    description:
      - Allow O(state=present) to fetch the V(masterkey).
      - The masterkey belongs on the stratum-0 and in Vault only; set this only to re-create a stratum-0.
    type: bool
    default: false
  group:
    description:
      - Group owning the files written by O(state=present), by name or number.
      - If unset, new files get the group of the user running the module, and existing files keep theirs.
    type: str
  keys_dir:
    description:
      - Directory of the key files. Created (mode 0755) by O(state=present) if missing.
    type: path
    default: /etc/cvmfs/keys
  kinds:
    description:
      - Which kinds of key to store, fetch or delete.
      - For O(state=stored) the default is every kind that has a file in O(keys_dir); a kind listed
        here must have one.
      - For O(state=present) the default is V(pub). Publishers need V(pub), V(crt) and V(gw).
      - For O(state=absent) the default is every kind.
    type: list
    elements: str
    choices: [crt, gw, key, masterkey, pub]
  name:
    description:
      - Fully qualified repository name, for example C(software.example.org).
    type: str
    required: true
  owner:
    description:
      - User owning the files written by O(state=present), by name or number (the repository owner).
      - If unset, new files are owned by the user running the module, and existing files keep their owner.
    type: str
  remove_files:
    description:
      - With O(state=absent), also delete the local key files of O(kinds) from O(keys_dir).
    type: bool
    default: false
  state:
    description:
      - V(stored) reads the key files from O(keys_dir) and writes them to Vault.
      - V(present) fetches O(kinds) from Vault into O(keys_dir), private keys mode 0400 and public ones 0444.
      - V(absent) removes O(kinds) from Vault; a secret left without fields is deleted with all its
        versions and metadata. Fields removed from a secret that keeps other fields stay readable in
        its older versions; the module warns about that.
    type: str
    choices: [absent, present, stored]
    default: present
attributes:
  check_mode:
    description: Can run in check mode and report what would change without changing it.
    support: full
  diff_mode:
    description: Shows key fingerprints, never key material, before and after.
    support: full
requirements:
  - hvac 0.11 or later (Debian 12's C(python3-hvac) works)
  - cryptography (Debian 12's C(python3-cryptography) works)
notes:
  - Idempotence of O(state=stored) needs C(read) on the secrets it writes; O(state=absent) needs
    C(read) and C(delete) on their metadata paths.
  - A gateway key fingerprint is its key id; in diffs a secret is shown as an HMAC under a key that
    exists only during the run, so diffs show that it changed without revealing anything.
seealso:
  - plugin: sharedsw.cvmfs.repo_public_key
    plugin_type: lookup
"""

EXAMPLES = r"""
# Stratum-0: after cvmfs_server mkfs, store every key of the repository in Vault.
- name: Store the repository keys in Vault
  sharedsw.cvmfs.keys:
    name: software.example.org
    state: stored
    url: https://vault.example.org:8200
    auth_method: approle
    role_id: "{{ stratum0_vault_role_id }}"
    secret_id: "{{ stratum0_vault_secret_id }}"

# Publisher (gateway upstream): public key, certificate and gateway key, owned by the repository owner.
- name: Fetch the publisher keys
  sharedsw.cvmfs.keys:
    name: software.example.org
    state: present
    kinds: [pub, crt, gw]
    owner: cvmfs
    keys_dir: /etc/cvmfs/keys
    url: https://vault.example.org:8200
    auth_method: approle
    role_id: "{{ publisher_vault_role_id }}"
    secret_id: "{{ publisher_vault_secret_id }}"

# Stratum-1 or client: the public key only, logging in with a JWT issued to the host.
- name: Fetch the public key
  sharedsw.cvmfs.keys:
    name: software.example.org
    state: present
    kinds: [pub]
    keys_dir: /etc/cvmfs/keys/example.org
    url: https://vault.example.org:8200
    auth_method: jwt
    jwt_role: cvmfs-client
    jwt: "{{ lookup('ansible.builtin.file', '/run/secrets/host.jwt') }}"

# Re-create a lost stratum-0 from Vault: every kind, masterkey included.
- name: Restore all keys of the repository
  sharedsw.cvmfs.keys:
    name: software.example.org
    state: present
    kinds: [masterkey, key, crt, pub, gw]
    allow_masterkey: true
    url: https://vault.example.org:8200
    token: "{{ vault_admin_token }}"

# A site that keeps all keys in one secret with its own field names.
- name: Store keys in an existing single-secret layout
  sharedsw.cvmfs.keys:
    name: software.example.org
    state: stored
    layout: single_path
    path_prefix: cvmfs/owners/alice
    engine_mount_point: kv
    url: https://vault.example.org:8200
    token: "{{ vault_admin_token }}"

# Decommission: delete the secrets and the local key files.
- name: Remove the repository keys
  sharedsw.cvmfs.keys:
    name: software.example.org
    state: absent
    remove_files: true
    url: https://vault.example.org:8200
    token: "{{ vault_admin_token }}"
"""

RETURN = r"""
keys:
  description:
    - What the task did with each kind it handled, keyed by kind (V(masterkey), V(key), V(crt), V(pub), V(gw)).
    - Never contains key material.
  returned: always
  type: dict
  contains:
    changed:
      description: Whether this kind changed, in Vault (stored, absent) or on disk (present, absent with O(remove_files)).
      type: bool
      sample: false
    field:
      description: Field of the secret that holds this kind.
      type: str
      sample: pub
    file:
      description: Local key file.
      type: str
      sample: /etc/cvmfs/keys/software.example.org.pub
    fingerprint:
      description:
        - SHA-256 of the DER public key for V(masterkey), V(key) and V(pub); SHA-1 of the DER certificate for
          V(crt) (as listed in the whitelist); C(plain_text id=<key id>) for V(gw). Absent after O(state=absent).
      type: str
      sample: SHA256:0f3c4f5d0a8e0c1b9a1c2f4e5d6b7a8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6
    vault_path:
      description: Secret that holds this kind, as C(<mount>/<path>) (what C(bao kv get) takes).
      type: str
      sample: secret/cvmfs/software.example.org/public
  sample:
    pub:
      changed: false
      field: pub
      file: /etc/cvmfs/keys/software.example.org.pub
      fingerprint: SHA256:0f3c4f5d0a8e0c1b9a1c2f4e5d6b7a8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6
      vault_path: secret/cvmfs/software.example.org/public
secrets:
  description: Each secret the task read or wrote, keyed by C(<mount>/<path>).
  returned: always
  type: dict
  contains:
    changed:
      description: Whether the task wrote (or, in check mode, would write) or deleted this secret.
      type: bool
      sample: true
    version:
      description:
        - KV version after the task (the one read for O(state=present)); V(null) if the secret does not exist.
        - In check mode, the version before the task.
      type: int
      sample: 3
  sample:
    secret/cvmfs/software.example.org/public:
      changed: false
      version: 1
"""

import grp
import os
import pwd

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._crypto import CRYPTOGRAPHY_IMP_ERR, HAS_CRYPTOGRAPHY
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._cvmfs_keys import (
    KINDS, LAYOUT_ARGSPEC, Layout, check_pairs, file_name, file_state, fingerprint, load, mode_for, parse_kinds,
    write_atomic)
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._module import CvmfsModule
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._vault import (
    ARGSPEC, HAS_HVAC, HVAC_IMP_ERR, VaultClient)


class KeysModule(CvmfsModule):
    argument_spec = dict(
        ARGSPEC,
        **LAYOUT_ARGSPEC,
        allow_masterkey=dict(type="bool", default=False),
        group=dict(type="str"),
        keys_dir=dict(type="path", default="/etc/cvmfs/keys"),
        kinds=dict(type="list", elements="str", choices=list(sorted(KINDS))),
        name=dict(type="str", required=True),
        owner=dict(type="str"),
        remove_files=dict(type="bool", default=False),
        state=dict(type="str", default="present", choices=["absent", "present", "stored"]),
    )
    module_kwargs = dict(supports_check_mode=True)

    def run(self):
        if not HAS_HVAC:
            self.ansible.fail_json(msg=missing_required_lib("hvac"), exception=HVAC_IMP_ERR)
        if not HAS_CRYPTOGRAPHY:
            self.ansible.fail_json(msg=missing_required_lib("cryptography"), exception=CRYPTOGRAPHY_IMP_ERR)
        params = self.params
        self.repo = params["name"]
        self.layout = Layout(self.repo, params["layout"], params["path_prefix"], params["paths"], params["fields"])
        self.keys_dir = params["keys_dir"]
        self.results.update(keys={}, secrets={})
        self.before, self.after = [], []
        # offline validation first: options, then (for stored) the files, before any network traffic
        self.vault = VaultClient(dict((name, params[name]) for name in ARGSPEC), warn=self.ansible.warn)
        state = params["state"]
        if state == "stored":
            self.stored()
        elif state == "present":
            self.present()
        else:
            self.absent()
        if self.diff_mode:
            self.results["diff"] = dict(
                before_header="%s keys (fingerprints)" % self.repo, after_header="%s keys (fingerprints)" % self.repo,
                before="".join(line + "\n" for line in self.before), after="".join(line + "\n" for line in self.after))

    # ---- helpers -------------------------------------------------------------------------

    def vault_path(self, kind):
        return "%s/%s" % (self.vault.mount, self.layout.path(kind))

    def local_path(self, kind):
        return os.path.join(self.keys_dir, file_name(self.repo, kind))

    def record(self, kind, changed, fp=None):
        entry = dict(changed=changed, field=self.layout.field(kind), file=self.local_path(kind),
                     vault_path=self.vault_path(kind))
        if fp is not None:
            entry["fingerprint"] = fp
        self.results["keys"][kind] = entry
        if changed:
            self.results["changed"] = True

    def record_secret(self, path, changed, version):
        self.results["secrets"]["%s/%s" % (self.vault.mount, path)] = dict(changed=changed, version=version)
        if changed:
            self.results["changed"] = True

    def describe_secret(self, path, data):
        """Diff lines for the managed fields of one secret (fingerprints only)."""
        lines = []
        for kind in self.layout.sharing(path):
            field = self.layout.field(kind)
            if data and field in data:
                lines.append("%s/%s %s (%s): %s" % (
                    self.vault.mount, path, field, kind, self.safe_fingerprint(kind, data[field])))
        return lines

    @staticmethod
    def safe_fingerprint(kind, value):
        try:
            return fingerprint(kind, load(kind, value, "value"), stable=False)
        except CvmfsError:
            return "(not a valid %s)" % kind

    # ---- state=stored --------------------------------------------------------------------

    def stored(self):
        explicit = self.params["kinds"] is not None
        kinds = parse_kinds(self.params["kinds"]) if explicit else list(KINDS)
        material, parsed, sources = {}, {}, {}
        for kind in kinds:
            path = self.local_path(kind)
            state = file_state(path)
            if state is None:
                if explicit:
                    raise CvmfsError("kinds lists %s, but %s does not exist; create it (cvmfs_server mkfs) or remove %s "
                                     "from kinds" % (kind, path, kind))
                continue
            parsed[kind] = load(kind, state[0], path)
            material[kind] = state[0].decode("ascii")
            sources[kind] = path
        if not material:
            raise CvmfsError("no key files of %s in %s (looked for %s)" % (
                self.repo, self.keys_dir, ", ".join(file_name(self.repo, k) for k in KINDS)))
        check_pairs(parsed, sources)
        self.vault.connect()
        for path, path_kinds in sorted(self.layout.by_path(material).items()):
            current, version = self.vault.read(path)
            desired = dict(current or {})
            desired.update((self.layout.field(k), material[k]) for k in path_kinds)
            changed = desired != current
            self.before.extend(self.describe_secret(path, current))
            self.after.extend(self.describe_secret(path, desired))
            if changed and not self.check_mode:
                version = self.vault.write(path, desired, cas=version or 0)
            self.record_secret(path, changed, version)
            for kind in path_kinds:
                kind_changed = (current or {}).get(self.layout.field(kind)) != material[kind]
                self.record(kind, kind_changed, fingerprint(kind, parsed[kind]))

    # ---- state=present -------------------------------------------------------------------

    def present(self):
        kinds = parse_kinds(self.params["kinds"] if self.params["kinds"] is not None else ["pub"])
        if not kinds:
            raise CvmfsError("kinds is empty; list the kinds of key to fetch, e.g. [pub]")
        if "masterkey" in kinds and not self.params["allow_masterkey"]:
            raise CvmfsError("kinds lists masterkey, which only a stratum-0 needs; set allow_masterkey: true to "
                             "re-create a stratum-0, or remove masterkey from kinds")
        uid, gid = self.resolve_owner()
        self.vault.connect()
        material, parsed, sources = {}, {}, {}
        for path, path_kinds in sorted(self.layout.by_path(kinds).items()):
            data, version = self.vault.read(path)
            api = self.vault.api_path(path)
            if data is None:
                raise CvmfsError("no secret at %s/%s (API path %s) for %s; store the keys first (state: stored on the "
                                 "stratum-0) or check engine_mount_point, path_prefix and paths"
                                 % (self.vault.mount, path, api, ", ".join(path_kinds)), vault_path=api)
            hidden = [k for k in self.layout.sharing(path) if k == "masterkey" and k not in kinds
                      and self.layout.field(k) in data]
            if hidden:
                self.ansible.warn("the secret %s/%s also holds the masterkey, which this host can therefore read; "
                                  "use layout: per_kind so that policies can keep it on the stratum-0"
                                  % (self.vault.mount, path))
            for kind in path_kinds:
                field = self.layout.field(kind)
                source = "field %s of the Vault secret %s/%s" % (field, self.vault.mount, path)
                if field not in data:
                    raise CvmfsError("%s is missing (needed for %s); store it from the stratum-0 or fix fields.%s"
                                     % (source, kind, kind), vault_path=api)
                parsed[kind] = load(kind, data[field], source)
                material[kind] = data[field].encode("ascii")
                sources[kind] = source
            self.record_secret(path, False, version)
            del data
        check_pairs(parsed, sources)
        # every kind is valid: only now touch the disk
        if not os.path.isdir(self.keys_dir):
            if os.path.exists(self.keys_dir):
                raise CvmfsError("keys_dir %s exists but is not a directory" % self.keys_dir)
            self.results["changed"] = True
            self.before.append("%s: absent" % self.keys_dir)
            self.after.append("%s: directory" % self.keys_dir)
            if not self.check_mode:
                os.makedirs(self.keys_dir, 0o755)
        for kind in kinds:
            self.place(kind, material[kind], parsed[kind], uid, gid)

    def resolve_owner(self):
        uid = gid = -1
        owner, group = self.params["owner"], self.params["group"]
        if owner:
            try:
                uid = int(owner) if owner.isdigit() else pwd.getpwnam(owner).pw_uid
            except KeyError:
                raise CvmfsError("owner %s is not a user on this host; create the repository owner first" % owner)
        if group:
            try:
                gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
            except KeyError:
                raise CvmfsError("group %s is not a group on this host" % group)
        return uid, gid

    def place(self, kind, content, obj, uid, gid):
        target = self.local_path(kind)
        mode = mode_for(kind)
        state = file_state(target) if os.path.isdir(self.keys_dir) else None
        fp = fingerprint(kind, obj)
        if state is None:
            self.before.append("%s: absent" % target)
        else:
            self.before.append("%s: %s mode %04o owner %d:%d" % (
                target, self.safe_fingerprint(kind, state[0]), state[1], state[2], state[3]))
        want_uid = uid if uid != -1 else (state[2] if state else os.geteuid())
        want_gid = gid if gid != -1 else (state[3] if state else os.getegid())
        self.after.append("%s: %s mode %04o owner %d:%d" % (
            target, fingerprint(kind, obj, stable=False), mode, want_uid, want_gid))
        content_changed = state is None or state[0] != content
        attrs_changed = state is not None and (state[1], state[2], state[3]) != (mode, want_uid, want_gid)
        if not self.check_mode:
            if content_changed:
                write_atomic(target, content, mode, want_uid, want_gid)
            elif attrs_changed:
                os.chown(target, want_uid, want_gid)
                os.chmod(target, mode)
        self.record(kind, content_changed or attrs_changed, fp)

    # ---- state=absent --------------------------------------------------------------------

    def absent(self):
        kinds = parse_kinds(self.params["kinds"]) if self.params["kinds"] is not None else list(KINDS)
        self.vault.connect()
        for path, path_kinds in sorted(self.layout.by_path(kinds).items()):
            data, version = self.vault.read(path)
            fields = set(self.layout.field(k) for k in path_kinds)
            remaining = dict((k, v) for k, v in (data or {}).items() if k not in fields)
            self.before.extend(self.describe_secret(path, data))
            self.after.extend(self.describe_secret(path, remaining))
            if not remaining:
                # nothing of value stays: delete the secret with every version, also soft-deleted ones
                exists = data is not None or self.vault.read_metadata(path) is not None
                if exists and not self.check_mode:
                    self.vault.delete(path)
                self.record_secret(path, exists, None if exists else version)
                gone = dict((k, exists and (data is None or self.layout.field(k) in data)) for k in path_kinds)
            else:
                changed = remaining != data
                if changed:
                    if not self.check_mode:
                        version = self.vault.write(path, remaining, cas=version)
                    self.ansible.warn("removed %s from %s/%s, which keeps other fields; earlier versions of that secret "
                                      "still hold them until destroyed (bao kv destroy)" % (
                                          ", ".join(sorted(fields & set(data))), self.vault.mount, path))
                self.record_secret(path, changed, version)
                gone = dict((k, self.layout.field(k) in data) for k in path_kinds)
            for kind in path_kinds:
                self.record(kind, bool(gone[kind]))
        if self.params["remove_files"]:
            for kind in kinds:
                target = self.local_path(kind)
                if os.path.lexists(target):
                    self.before.append("%s: present" % target)
                    self.after.append("%s: absent" % target)
                    if not self.check_mode:
                        os.unlink(target)
                    entry = self.results["keys"][kind]
                    entry["changed"] = True
                    self.results["changed"] = True


def main():
    KeysModule()()


if __name__ == "__main__":
    main()
