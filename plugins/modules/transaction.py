#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: transaction
short_description: Open, publish or abort a CernVM-FS transaction, or ingest a tarball
version_added: 0.1.0
author:
  - sharedsw.cvmfs contributors (@sharedsw)
description:
  - Drives C(cvmfs_server transaction), C(publish), C(abort -f) and C(ingest) on a stratum-0 or
    gateway publisher, idempotently from the transaction flag file
    C(/var/spool/cvmfs/<name>/in_transaction.lock) that C(cvmfs_server) itself uses.
  - V(opened) opens a transaction unless one is open; V(published) publishes the open transaction
    (nothing to do when none is open); V(aborted) discards it (nothing to do when none is open).
  - Every publish creates a new revision. With O(only_if_changed) the module looks at the
    transaction's scratch area (C(scratch/current), or C(cvmfs_server diff --worktree)) and aborts
    instead of publishing an unchanged tree.
  - Wrap the work between V(opened) and V(published) in a C(block) whose C(rescue) sets
    V(aborted), so that a failed task never leaves the repository in a transaction (see EXAMPLES).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sharedsw.cvmfs.cvmfs_server
  - sharedsw.cvmfs.cvmfs_server.action_group
attributes:
  check_mode:
    support: full
    details: Reads the state files and the scratch area; C(transaction), C(publish), C(abort) and
      C(ingest) are not run.
  diff_mode:
    support: full
options:
  ingest:
    description:
      - Publish a tarball with C(cvmfs_server ingest) (only with O(state=published)). C(ingest) opens,
        fills and publishes its own transaction, so no transaction may be open; it always creates a
        new revision.
    type: dict
    suboptions:
      base_dir:
        description: Directory inside the repository to extract into (C(-b)); required with O(ingest.tarball).
        type: str
      catalog:
        description: Create a nested catalog at O(ingest.base_dir) (C(-c)).
        type: bool
        default: false
      delete:
        description:
          - Paths inside the repository to delete (C(-d)). A gateway publisher can delete one path per
            ingest and not together with a tarball.
        type: list
        elements: str
        default: []
      group:
        description: Group owning the extracted files (C(-g)); default the repository owner's.
        type: str
      keep_ownership:
        description: Keep the tarball's owners (C(-k)); excludes O(ingest.user) and O(ingest.group).
        type: bool
        default: false
      tarball:
        description:
          - Tarball on the managed host (C(-t)), an uncompressed tar archive. C(cvmfs_server ingest) cannot
            read compressed ones (CernVM-FS builds its libarchive without compression), so the module refuses
            a gzip, bzip2, xz, zstd or lz4 file; decompress it first.
        type: path
      user:
        description: User owning the extracted files (C(-u)); default the repository owner.
        type: str
  lease_path:
    description:
      - Gateway publishers only. Sub-path of the repository to lease, for example V(/software/v2); the
        transaction is opened on C(<name>/<lease_path>). Its parent directory must already exist in the
        repository. Publishers holding non-overlapping leases can publish concurrently.
    type: str
  name:
    description:
      - Fully qualified repository name (with at least one dot).
    type: str
    required: true
  only_if_changed:
    description:
      - With O(state=published), publish only if the transaction holds changes; otherwise abort it (the
        result has C(published=false), C(aborted=true)), so no empty revision is created.
    type: bool
    default: false
  retry_timeout:
    description:
      - With O(state=opened), keep retrying for this many seconds while the repository or the gateway
        lease is busy (C(transaction -t)); V(0) retries forever. Unset fails at once.
    type: int
  state:
    description:
      - The wanted transaction state.
    type: str
    choices: [aborted, opened, published]
    required: true
  tag:
    description:
      - With O(state=published), the name of the tag of the new revision (C(publish -a)); without it
        C(cvmfs_server) creates an automatic tag if the repository uses them. No spaces.
    type: str
  tag_description:
    description:
      - With O(tag), its description (C(publish -m)).
    type: str
notes:
  - V(opened) adopts a transaction that is already open, for example one left over by an earlier run that
    was not aborted; use the block/rescue pattern so that cannot happen unnoticed.
  - A publish that finds another publish active fails rather than waiting.
seealso:
  - module: sharedsw.cvmfs.repository
"""

EXAMPLES = r"""
- name: Publish a release, aborting the transaction if anything fails
  block:
    - name: Open a transaction
      sharedsw.cvmfs.transaction:
        name: sw.example.org
        state: opened

    - name: Install the release into the repository
      ansible.builtin.unarchive:
        src: /srv/releases/app-1.2.tar.gz
        dest: /cvmfs/sw.example.org/app/1.2
        remote_src: true

    - name: Publish it, or abort if nothing changed
      sharedsw.cvmfs.transaction:
        name: sw.example.org
        state: published
        tag: app-1.2
        tag_description: App release 1.2
        only_if_changed: true
  rescue:
    - name: Abort the transaction so the repository is not left open
      sharedsw.cvmfs.transaction:
        name: sw.example.org
        state: aborted

    - name: Report the failure
      ansible.builtin.fail:
        msg: "Publishing app 1.2 failed and was aborted: {{ ansible_failed_result.msg | default('') }}"

- name: Gateway publisher, lease one sub-tree, wait up to 10 minutes for a busy lease
  sharedsw.cvmfs.transaction:
    name: sw.example.org
    lease_path: /software/team-a
    retry_timeout: 600
    state: opened

- name: Publish a tarball into /app/1.3 as its own nested catalog
  sharedsw.cvmfs.transaction:
    name: sw.example.org
    state: published
    ingest:
      tarball: /srv/releases/app-1.3.tar.gz
      base_dir: app/1.3
      catalog: true
"""

RETURN = r"""
aborted:
  description: Whether this run aborted a transaction.
  returned: always
  type: bool
changes:
  description: Whether the open transaction held changes (scratch area or C(diff --worktree)).
  returned: when only_if_changed was used on an open transaction
  type: bool
cmd:
  description: Argument list of the last command that changed something.
  returned: when a command ran
  type: list
  elements: str
  sample: [/usr/bin/cvmfs_server, publish, -f, -a, app-1.2, sw.example.org]
in_transaction:
  description: Whether a transaction is open after the run (the expected state in check mode).
  returned: always
  type: bool
name:
  description: The repository name.
  returned: always
  type: str
published:
  description: Whether this run published a new revision (publish or ingest).
  returned: always
  type: bool
rc:
  description: Exit status of the last command that changed something.
  returned: when a command ran
  type: int
revision:
  description: Revision of the repository after the run, read from its storage; V(null) if unreadable.
  returned: when a new revision was published (not in check mode)
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
tag:
  description: The tag of the new revision (given, or the automatic one C(cvmfs_server) reported).
  returned: when a new revision was published and tagged
  type: str
"""

import os
import re

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._cvmfs_server_errors import (
    AlreadyInTransaction, NotInTransaction, PublishActive)
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._cvmfs_state import (
    in_transaction, is_publishing, repository_state, scratch_has_changes)
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._module import CvmfsServerModule


class TransactionModule(CvmfsServerModule):
    noun = "repository"
    initial_results = dict(published=False, aborted=False)
    argument_spec = dict(
        ingest=dict(type="dict", options=dict(
            base_dir=dict(type="str"),
            catalog=dict(type="bool", default=False),
            delete=dict(type="list", elements="str", default=[]),
            group=dict(type="str"),
            keep_ownership=dict(type="bool", default=False),
            tarball=dict(type="path"),
            user=dict(type="str"),
        ), mutually_exclusive=[("keep_ownership", "user"), ("keep_ownership", "group")],
            required_by={"tarball": "base_dir", "base_dir": "tarball"}),
        lease_path=dict(type="str"),
        name=dict(type="str", required=True),
        only_if_changed=dict(type="bool", default=False),
        retry_timeout=dict(type="int"),
        state=dict(type="str", choices=["aborted", "opened", "published"], required=True),
        tag=dict(type="str"),
        tag_description=dict(type="str"),
    )
    module_kwargs = dict(
        supports_check_mode=True,
        required_by={"tag_description": "tag"},
    )

    def name_hint(self):
        return " (put the sub-path in lease_path)" if "/" in self.name else ""

    def check_current(self, current):
        if current is None:
            raise CvmfsError("repository %s does not exist on this host: create it first with "
                             "sharedsw.cvmfs.repository" % self.name)
        if current["type"] != "stratum0":
            raise CvmfsError("%s is a stratum-1 replica on this host: transactions need a stratum-0 repository "
                             "or a gateway publisher" % self.name)
        if self.params["lease_path"] and current["storage"] != "gateway":
            raise CvmfsError("lease_path is for gateway publishers; %s uses %s storage: drop lease_path"
                             % (self.name, current["storage"]))

    def apply(self, current):
        getattr(self, "state_" + self.params["state"])(current["in_transaction"])

    def finish(self, current):
        was_open = current["in_transaction"]
        if self.check_mode:
            predicted = {"opened": True, "aborted": False}
            now_open = predicted.get(self.params["state"], was_open and not self.results["changed"])
        else:
            now_open = in_transaction(self.name, self.paths)
        self.results["in_transaction"] = now_open
        if self.diff_mode and self.results["changed"]:
            after = "in_transaction: %s\n" % str(now_open).lower()
            if self.results["published"]:
                after += "published: true\n"
            self.results["diff"] = {
                "before_header": "repository " + self.name, "after_header": "repository " + self.name,
                "before": "in_transaction: %s\n" % str(was_open).lower(), "after": after}

    def check_arguments(self):
        params = self.params
        ingest = params["ingest"]
        if ingest is not None:
            if params["state"] != "published":
                raise CvmfsError("ingest needs state=published (cvmfs_server ingest publishes by itself)")
            if params["lease_path"]:
                raise CvmfsError("lease_path does not apply to ingest: it leases ingest.base_dir itself")
            if not ingest["tarball"] and not ingest["delete"]:
                raise CvmfsError("ingest needs a tarball (with base_dir) or paths to delete")
            if ingest["tarball"] and not os.path.isfile(ingest["tarball"]):
                raise CvmfsError("ingest.tarball %s is not a file on this host" % ingest["tarball"])
            compression = ingest["tarball"] and compression_of(ingest["tarball"])
            if compression:
                raise CvmfsError("ingest.tarball %s is %s-compressed, but cvmfs_server ingest reads uncompressed tar "
                                 "archives only (CernVM-FS builds its libarchive without compression): decompress "
                                 "it first and ingest the .tar" % (ingest["tarball"], compression))
            if self.gateway and len(ingest["delete"]) > 1:
                raise CvmfsError("a gateway publisher can delete only one path per ingest (got %d in ingest.delete)"
                                 % len(ingest["delete"]))
            if self.gateway and ingest["delete"] and ingest["tarball"]:
                raise CvmfsError("a gateway publisher cannot delete paths and add a tarball in one ingest: "
                                 "use two tasks")
        tag = params["tag"]
        if tag is not None and (not tag or re.search(r"\s", tag)):
            raise CvmfsError("tag %r is not a valid tag name: use a non-empty name without spaces" % tag)
        if params["lease_path"] is not None:
            lease = params["lease_path"].strip("/")
            if not lease or ".." in lease.split("/"):
                raise CvmfsError("lease_path %r must be a sub-path of the repository such as /software/v2"
                                 % params["lease_path"])

    @property
    def gateway(self):
        state = repository_state(self.name, self.paths)
        return bool(state) and state["storage"] == "gateway"

    def target(self):
        if self.params["lease_path"]:
            return "%s/%s" % (self.name, self.params["lease_path"].strip("/"))
        return self.name

    # ------------------------------------------------------------------ states

    def state_opened(self, was_open):
        if was_open:
            return
        self.results["changed"] = True
        try:
            result = self.server.run("transaction", name=self.target(), retry_timeout=self.params["retry_timeout"],
                                     context={"name": self.target()})
        except AlreadyInTransaction:
            self.results["changed"] = False
            return
        if "whitelist stays valid for less than 12 hours" in result.stdout:
            self.ansible.warn("the whitelist of %s expires in less than 12 hours: re-sign it with "
                              "'cvmfs_server resign %s' on the master key host" % (self.name, self.name))

    def state_aborted(self, was_open):
        if not was_open:
            return
        self.abort()

    def abort(self):
        self.results["changed"] = True
        try:
            self.server.run("abort", name=self.name)
        except NotInTransaction:
            self.results["changed"] = False
            return
        self.results["aborted"] = True

    def state_published(self, was_open):
        if self.params["ingest"] is not None:
            self.ingest(was_open)
            return
        if not was_open:
            return
        if is_publishing(self.name, self.paths):
            raise PublishActive("another publish process is active for %s; wait for it to finish and retry" % self.name)
        if self.params["only_if_changed"]:
            changes = self.has_changes()
            self.results["changes"] = changes
            if not changes:
                self.abort()
                return
        self.results["changed"] = True
        try:
            result = self.server.run("publish", name=self.name, tag=self.params["tag"],
                                     tag_description=self.params["tag_description"])
        except NotInTransaction:
            self.results["changed"] = False
            return
        self.results["published"] = True
        self.record_revision(result)

    def has_changes(self):
        changes = scratch_has_changes(self.name, self.paths)
        if changes is not None:
            return changes
        result = self.server.run("diff", name=self.name)
        return any(line.strip() for line in result.stdout.splitlines())

    def ingest(self, was_open):
        ingest = self.params["ingest"]
        if was_open:
            raise AlreadyInTransaction("a transaction is open on %s and ingest opens its own: publish or abort the "
                                       "open transaction first (state=published or state=aborted)" % self.name)
        if is_publishing(self.name, self.paths):
            raise PublishActive("another publish process is active for %s; wait for it to finish and retry" % self.name)
        self.results["changed"] = True
        result = self.server.run(
            "ingest", name=self.name, tarball=ingest["tarball"], base_dir=ingest["base_dir"],
            delete=ingest["delete"], catalog=ingest["catalog"], user=ingest["user"], group=ingest["group"],
            keep_ownership=ingest["keep_ownership"])
        self.results["published"] = True
        self.record_revision(result)

    def record_revision(self, result):
        tag = self.params["tag"]
        match = re.search(r"Using auto tag '([^']+)'", result.stdout or "")
        if tag is None and match:
            tag = match.group(1)
        if tag is not None:
            self.results["tag"] = tag
        if self.check_mode:
            return
        self.results["revision"] = self.read_revision(repository_state(self.name, self.paths),
                                                      "published, but could not read the new revision of %s"
                                                      % self.name)


#: magic numbers of the compressed formats tar archives come in
COMPRESSION_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"),
                     (b"\x28\xb5\x2f\xfd", "zstd"), (b"\x04\x22\x4d\x18", "lz4"), (b"\x1f\x9d", "compress"))


def compression_of(path):
    """The compression format of the file ``path`` by its magic number, or ``None`` (not compressed)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(6)
    except (IOError, OSError):
        return None
    for magic, name in COMPRESSION_MAGIC:
        if head.startswith(magic):
            return name
    return None


def main():
    TransactionModule()()


if __name__ == "__main__":
    main()
