#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: replica
short_description: Create, snapshot and remove a CernVM-FS stratum-1 replica
version_added: 0.1.0
author:
  - sharedsw.cvmfs contributors (@sharedsw)
description:
  - V(present) creates a stratum-1 replica of a stratum-0 repository with C(cvmfs_server add-replica)
    (local or S3 storage, with or without Apache configuration) and takes the initial snapshot; on an
    existing replica it keeps the stratum-0 URL, public key(s), automatic GC and snapshot group in
    C(server.conf)/C(replica.conf).
  - V(snapshot) runs C(cvmfs_server snapshot) and returns the revision before and after; it reports a
    change only when the revision moved.
  - V(absent) removes the replica with C(cvmfs_server rmfs -f).
  - State comes from the files C(cvmfs_server) uses (C(/etc/cvmfs/repositories.d/<name>/replica.conf)).
  - Periodic snapshots of all replicas (C(cvmfs_server snapshot -a)) belong in a systemd timer, set up by
    the stratum-1 role; this module is for one replica at a time.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sharedsw.cvmfs.cvmfs_server
  - sharedsw.cvmfs.cvmfs_server.action_group
  - sharedsw.cvmfs.cvmfs_s3
attributes:
  check_mode:
    support: full
    details: With O(state=snapshot) the revision after is the stratum-0's current revision (what a
      snapshot would fetch), if readable.
  diff_mode:
    support: full
options:
  apache:
    description:
      - Have C(add-replica) require Apache and write its configuration (with the GeoAPI). V(false)
        passes C(-a -p), for replicas served otherwise or stored in S3.
    type: bool
    default: true
  auto_gc:
    description:
      - Garbage-collect the replica automatically after snapshots (C(CVMFS_AUTO_GC), C(add-replica -z));
        works only if the stratum-0 is garbage-collectable. Unset leaves the current setting alone.
    type: bool
  initial_snapshot:
    description:
      - With O(state=present), take the first snapshot if the replica has none yet.
    type: bool
    default: true
  name:
    description:
      - Local name of the replica (C(add-replica -n) alias). Usually the repository's fully qualified name;
        a different alias lets one host replicate a repository it also serves as stratum-0.
      - Like a repository name it needs at least one dot (C(cvmfs_server) would append C(.) and
        C(CVMFS_DEFAULT_DOMAIN) to a name without one), for example V(sw-s1.example.org).
    type: str
    required: true
  owner:
    description:
      - User owning the replica (C(add-replica -o)); snapshots run as this user or root.
    type: str
    default: root
  preserve_data:
    description:
      - With O(state=absent), keep the replicated data (C(rmfs -p)). S3 data is never deleted.
    type: bool
    default: false
  public_key:
    description:
      - Public master key file(s) of the repository, or one directory of C(*.pub) files
        (C(CVMFS_PUBLIC_KEY) in C(replica.conf)). Required with O(state=present).
    type: list
    elements: path
  snapshot_group:
    description:
      - Snapshot group of the replica (C(CVMFS_SNAPSHOT_GROUP), C(add-replica -g)); C(snapshot -a -g <group>)
        picks replicas by group.
    type: str
  state:
    description:
      - V(present), V(absent), or V(snapshot) (replicate now; the replica must exist).
    type: str
    choices: [absent, present, snapshot]
    default: present
  storage:
    description:
      - Where the replica stores its data.
    type: str
    choices: [local, s3]
    default: local
  stratum0_url:
    description:
      - URL of the repository on the stratum-0, for example V(http://s0.example.org/cvmfs/sw.example.org)
        (for an S3-hosted stratum-0, the bucket URL followed by C(/<repository>)). Required with O(state=present).
    type: str
  stratum1_url:
    description:
      - Public URL of the replica (C(CVMFS_STRATUM1)); default V(http://localhost/cvmfs/<name>).
      - With O(storage=s3) required, and it must be the bucket URL followed by C(/<name>);
        C(add-replica -w) gets the part before C(/<name>).
    type: str
  wait:
    description:
      - With O(state=snapshot) or the initial snapshot, wait for a running snapshot or garbage collection
        of the replica to finish. V(false) fails at once instead (C(snapshot -t)).
    type: bool
    default: true
seealso:
  - module: sharedsw.cvmfs.repository
"""

EXAMPLES = r"""
- name: Stratum-1 replica on local storage, first snapshot included
  sharedsw.cvmfs.replica:
    name: sw.example.org
    stratum0_url: http://s0.example.org/cvmfs/sw.example.org
    public_key:
      - /etc/cvmfs/keys/example.org/sw.example.org.pub

- name: Replica stored in an S3 bucket, served by the bucket (no Apache)
  sharedsw.cvmfs.replica:
    name: sw.example.org
    storage: s3
    apache: false
    stratum0_url: http://s0.example.org/cvmfs/sw.example.org
    stratum1_url: http://s3.example.org/cvmfs-s1/sw.example.org
    public_key: [/etc/cvmfs/keys/example.org]
    s3_config:
      host: s3.example.org
      bucket: cvmfs-s1
      access_key: "{{ s1_access_key }}"
      secret_key: "{{ s1_secret_key }}"
      dns_buckets: false

- name: Replicate now and show how far it moved
  sharedsw.cvmfs.replica:
    name: sw.example.org
    state: snapshot
  register: snap

- name: Report
  ansible.builtin.debug:
    msg: "revision {{ snap.revision_before }} -> {{ snap.revision_after }}"
"""

RETURN = r"""
cmd:
  description: Argument list of the last command that changed something.
  returned: when a command ran
  type: list
  elements: str
  sample: [/usr/bin/cvmfs_server, snapshot, sw.example.org]
initial:
  description: Whether the snapshot taken was the replica's first.
  returned: when a snapshot ran
  type: bool
name:
  description: The replica name.
  returned: always
  type: str
rc:
  description: Exit status of the last command that changed something.
  returned: when a command ran
  type: int
replica:
  description: The replica as the state files describe it after the run (V(null) when absent); see the
    C(repository) return value of M(sharedsw.cvmfs.repository) for its keys.
  returned: always
  type: dict
revision_after:
  description: Revision of the replica after the run (in check mode, the stratum-0 revision a snapshot
    would fetch); V(null) if unreadable.
  returned: when a snapshot ran or would run
  type: int
revision_before:
  description: Revision of the replica before the snapshot; V(null) before the first snapshot.
  returned: when a snapshot ran or would run
  type: int
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
"""

import os
import pwd

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._cvmfs_server import S3_ARGUMENT_SPEC
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._cvmfs_server_errors import ReplicaExists
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._cvmfs_state import (
    conf_value, read_storage_object, read_url, repository_state)
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._module import CvmfsServerModule, revision_of


class ReplicaModule(CvmfsServerModule):
    noun = "replica"
    argument_spec = dict(S3_ARGUMENT_SPEC)
    argument_spec.update(
        apache=dict(type="bool", default=True),
        auto_gc=dict(type="bool"),
        initial_snapshot=dict(type="bool", default=True),
        name=dict(type="str", required=True),
        owner=dict(type="str", default="root"),
        preserve_data=dict(type="bool", default=False),
        public_key=dict(type="list", elements="path", no_log=False),
        snapshot_group=dict(type="str"),
        state=dict(type="str", choices=["absent", "present", "snapshot"], default="present"),
        storage=dict(type="str", choices=["local", "s3"], default="local"),
        stratum0_url=dict(type="str"),
        stratum1_url=dict(type="str"),
        wait=dict(type="bool", default=True),
    )
    module_kwargs = dict(
        supports_check_mode=True,
        required_if=[("state", "present", ("public_key", "stratum0_url"))],
    )

    def check_current(self, current):
        if current is not None and current["type"] != "stratum1":
            raise CvmfsError("%s is a stratum-0 repository on this host, not a replica: choose another name (alias) "
                             "for the replica, or manage it with sharedsw.cvmfs.repository" % self.name)

    def apply(self, current):
        state = self.params["state"]
        if state == "absent":
            self.remove(current)
        elif state == "snapshot":
            if current is None:
                raise CvmfsError("replica %s does not exist on this host: create it with state=present first"
                                 % self.name)
            self.snapshot(current)
        else:
            self.present(current)

    # ------------------------------------------------------------------ present

    def public_key_value(self):
        keys = self.params["public_key"] or []
        for key in keys:
            if ":" in key:
                raise CvmfsError("public_key entries are single paths (got %r); list several files as a list" % key)
            if not os.path.exists(key):
                raise CvmfsError("public_key %s does not exist on this host: install the repository's public key "
                                 "first (for example from Vault with sharedsw.cvmfs.keys)" % key)
        if len(keys) > 1 and any(os.path.isdir(k) for k in keys):
            raise CvmfsError("public_key takes one directory or a list of files, not both")
        return ":".join(keys)

    def w_url(self):
        url = self.params["stratum1_url"]
        if self.params["storage"] != "s3":
            return url
        suffix = "/" + self.name
        if not url or not url.rstrip("/").endswith(suffix):
            raise CvmfsError("with storage=s3, stratum1_url is required and must be the bucket URL followed by /%s "
                             "(cvmfs_server appends the replica name), e.g. http://s3.example.org/bucket/%s; got %s"
                             % (self.name, self.name, url))
        return url.rstrip("/")[:-len(suffix)]

    def present(self, current):
        params = self.params
        try:
            owner_pw = pwd.getpwnam(params["owner"])
        except KeyError:
            raise CvmfsError("owner %r is not a user on this host: create the user first" % params["owner"])
        public_key = self.public_key_value()
        w_url = self.w_url()
        s3_path = None
        if params["storage"] == "s3":
            if not params["s3_config"]:
                raise CvmfsError("storage=s3 needs s3_config")
            s3_path = self.s3_config_path()
            self.ensure_s3_config(s3_path, owner_pw)
        if current is None:
            self.results["changed"] = True
            self.diffs.append(self.state_diff("absent", "present"))
            try:
                self.server.run(
                    "add-replica", owner=params["owner"], stratum1_url=w_url, alias=self.name, s3_config=s3_path,
                    require_apache=params["apache"], apache=params["apache"], auto_gc=params["auto_gc"],
                    snapshot_group=params["snapshot_group"], stratum0_url=params["stratum0_url"],
                    public_key=public_key, context={"name": self.name, "stratum0_url": params["stratum0_url"]})
            except ReplicaExists:
                self.results["changed"] = False
        else:
            self.converge(current, public_key)
        if params["initial_snapshot"]:
            state = repository_state(self.name, self.paths)
            if state is None or self.last_snapshot(state) is None:
                self.snapshot(state)

    def converge(self, current, public_key):
        params = self.params
        for option, wanted, actual in (("owner", params["owner"], current["owner"]),
                                       ("storage", params["storage"], current["storage"]),
                                       ("stratum1_url", params["stratum1_url"], current["stratum1_url"])):
            if wanted is not None and actual is not None and wanted.rstrip("/") != actual.rstrip("/"):
                self.ansible.warn("%s of existing replica %s is %r, not %r; cvmfs_server cannot change it in place "
                                  "(remove and re-create the replica to change it)" % (option, self.name, actual, wanted))
        server = {"CVMFS_STRATUM0": params["stratum0_url"]}
        if params["auto_gc"] is not None:
            server["CVMFS_AUTO_GC"] = conf_value(params["auto_gc"])
        if params["snapshot_group"] is not None:
            server["CVMFS_SNAPSHOT_GROUP"] = params["snapshot_group"]
        self.update_conf(self.paths.server_conf(self.name), server)
        self.update_conf(self.paths.replica_conf(self.name), {"CVMFS_PUBLIC_KEY": public_key})

    # ------------------------------------------------------------------ snapshot

    def replica_revision(self, state):
        return self.read_revision(state, "could not read the replica revision of %s" % self.name)

    def last_snapshot(self, state):
        try:
            return read_storage_object(state, ".cvmfs_last_snapshot", self.paths)
        except IOError:
            return None

    def stratum0_revision(self, state):
        url = (state or {}).get("stratum0_url") or self.params["stratum0_url"]
        if not url:
            return None
        try:
            data = read_url(url.rstrip("/") + "/.cvmfspublished")
        except IOError as error:
            self.ansible.warn("could not read the stratum-0 revision from %s: %s" % (url, error))
            return None
        return revision_of(data)

    def snapshot(self, state):
        before = self.replica_revision(state) if state and self.last_snapshot(state) is not None else None
        self.results["revision_before"] = before
        if self.check_mode:
            after = self.stratum0_revision(state)
            self.results["revision_after"] = after
            self.results["initial"] = before is None
            if before is None or after != before:
                self.results["changed"] = True
            return
        result = self.server.run("snapshot", name=self.name, no_wait=not self.params["wait"])
        self.results["initial"] = "Initial snapshot" in result.stdout
        after = self.replica_revision(repository_state(self.name, self.paths))
        self.results["revision_after"] = after
        if self.results["initial"] or after != before:
            self.results["changed"] = True
            self.diffs.append({"before_header": "replica %s revision" % self.name,
                               "after_header": "replica %s revision" % self.name,
                               "before": "revision: %s\n" % before, "after": "revision: %s\n" % after})


def main():
    ReplicaModule()()


if __name__ == "__main__":
    main()
