#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: s3_sync
short_description: Make a directory an exact, safe mirror of an S3 prefix
version_added: 0.1.0
author:
  - sharedsw.cvmfs contributors (@sharedsw)
description:
  - Mirrors every object below O(prefix) in O(bucket) into O(dest), for example a
    CernVM-FS repository inside an open transaction. New objects are created, changed ones
    replaced, and (with O(delete)) local paths whose objects disappeared are removed.
  - An unchanged file is never rewritten (in a transaction a rewrite is a republish).
    Unchanged is decided from a state file (key to ETag, size and LastModified, plus the
    mode, mtime and symlink target given to the local file), checked against the local file.
    Without a state entry (or when the local file is not the one the state recorded), a local
    file of the same size is kept when its MD5 equals the object's ETag, or, for multipart
    ETags (no MD5), when its mtime matches the object's; only its mode or mtime are then
    fixed.
  - "Metadata convention (S3 user metadata, C(x-amz-meta-*)): C(mode) is an octal
    permission string (C(755), C(0755), or rclone's C(100755)); C(mtime) is seconds since
    the epoch, possibly fractional (what rclone writes) or RFC 3339; C(s3cmd-attrs) is what
    C(s3cmd --preserve) writes (its C(mode) and C(mtime) are used); C(symlink-target) makes
    the object a symbolic link to that value (percent-encoded, so C(%) itself is C(%25))."
  - C(mode) and C(mtime) win over C(s3cmd-attrs). Without metadata, files get 0644,
    directories 0755 and the object's LastModified as mtime. Files are owned by the user the
    module runs as.
  - "A C(mode) is made safe before it is applied: setuid, setgid, sticky and group or world
    write bits are dropped, and the owner always keeps read and write on files and read,
    write and search on directories (C(0666) gives C(0644); C(0000) gives C(0600) on a file
    and C(0700) on a directory; C(0555) on a directory gives C(0755)). Local paths an older
    version left with other modes get the safe mode on the next run."
  - Keys ending in C(/) are directory markers (their C(mode) metadata sets the directory's
    mode). Zero-byte objects are empty files. C(.cvmfscatalog) and C(.cvmfsdirtab) are
    ordinary files.
  - "Every download goes to a staging directory C(<dest>/.s3sync-staging.*) on the same file
    system and is renamed into place only after the whole listing and every downloaded object
    were validated: a file at its final path is always its old or its new complete version.
    A failed run removes the staging directory; a killed run's leftovers are removed by the
    next run. Objects of O(multipart_threshold) bytes or more are downloaded with boto3's
    transfer manager (parallel ranged GETs) and checked to be a single version."
  - "Keys are rejected, with the key and the reason, when they contain C(.) or C(..)
    segments, start with C(/) below the prefix, have empty segments (C(//)), contain NUL or
    other control characters, are not valid UTF-8, have a segment over 255 bytes, are both a
    file and a directory prefix (C(a) and C(a/b); the file is rejected), differ only in case
    from another key (with O(reject_case_conflicts)), are symlinks whose target leaves
    O(symlink_root), or are files or symlinks whose local path is a directory holding excluded
    content (see O(exclude); that directory is never replaced). With O(on_invalid=fail)
    nothing is written and every rejected key is reported in the same run, symlink targets
    included; with O(on_invalid=skip) the rejected keys are reported, their local paths left
    alone, and the rest is synced."
  - "The top-level name C(.s3sync-staging.*) is reserved: anything else with that name in
    O(dest) (a symlink, a file) is removed and listed in RV(changed_paths), even with
    O(delete=false)."
  - "Before its first change a run checks that every directory it writes into is writable by
    the user it runs as (and on the same file system), and that it owns every path whose mode
    or mtime it sets; if not, it fails naming the paths and changes nothing. Only an error
    while applying (disk full, a path changed by someone else meanwhile) can leave some paths
    new and others old (each file complete); the failure then has RV(partially_applied=true)."
  - Small objects are fetched over persistent HTTP/1.1 connections signed with SigV4 by the
    module itself (a plain boto3 call costs several times more CPU per object); boto3 still
    resolves credentials, the endpoint and the addressing style. When an HTTP(S) proxy
    applies to the endpoint, all requests go through boto3 instead.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sharedsw.cvmfs._s3
  - sharedsw.cvmfs._s3.action_group
attributes:
  check_mode:
    support: full
    details: Lists the prefix, walks O(dest) and HEADs new or changed objects (so symlink
      targets are checked), then reports what would change. Nothing is written.
  diff_mode:
    support: full
    details: The diff lists every added (C(+)), updated (C(~)) and deleted (C(-)) path.
options:
  addressing_style:
    description:
      - How the bucket is addressed. V(path) (C(https://host/bucket/key)) suits Ceph RGW
        and most on-premises endpoints; V(virtual) uses C(https://bucket.host/key).
    type: str
    choices: [path, virtual, auto]
    default: path
  allow_symlink_escape:
    description:
      - Accept symlink targets outside O(symlink_root) (for example links into other
        repositories under C(/cvmfs)).
    type: bool
    default: false
  bucket:
    description: The bucket to mirror from.
    type: str
    required: true
  ca_bundle:
    description:
      - CA certificates (PEM file) to verify the S3 endpoint with. Default is the
        C(AWS_CA_BUNDLE) environment variable or the system's CA store.
    type: path
  delete:
    description:
      - Remove local files, symlinks and (then empty) directories whose objects disappeared.
        Paths excluded by O(include)/O(exclude) are never removed. A path whose type changed in
        S3 (file to directory or back) is replaced whatever this says, and everything removed
        with it is listed in RV(deleted), unless the local directory holds excluded content
        (then the key is rejected).
    type: bool
    default: true
  dest:
    description:
      - The directory to mirror into, for example C(/cvmfs/<repository>/<subdir>). Created
        when missing (its parent must exist).
    type: path
    required: true
  exclude:
    description:
      - Glob patterns (C(fnmatch); C(*) also matches C(/)) of paths below the prefix to
        leave out. A pattern matching a directory leaves out everything below it.
    type: list
    elements: str
    default: []
  include:
    description:
      - Glob patterns of paths below the prefix to mirror; empty means everything.
        O(exclude) wins.
    type: list
    elements: str
    default: []
  max_reported:
    description: Cap on the paths listed per category in RV(changed_paths) and on RV(rejections).
    type: int
    default: 100
  max_workers:
    description:
      - Parallel requests (one persistent connection each). Downloads of small objects are
        bound by request latency, not by this process's CPU, so more than the number of cores
        pays off; measured best at 32 on a 2-core host.
    type: int
    default: 32
  multipart_threshold:
    description: Objects of this many bytes or more are downloaded with boto3's transfer manager.
    type: int
    default: 67108864
  on_invalid:
    description:
      - What to do with rejected keys. V(fail) stops before anything is written; V(skip)
        reports them and syncs the rest.
    type: str
    choices: [fail, skip]
    default: fail
  on_missing:
    description:
      - What to do with keys that were listed but are gone (HTTP 404) when they are fetched,
        because they were deleted or replaced while the sync ran.
      - V(fail) stops before anything is written and names the keys (in RV(missing_keys) and
        the message); running again then sees the bucket's new state.
      - V(warn) syncs everything else, leaves the local paths of those keys as they were
        (a later run removes them when the keys stay gone), and reports them in RV(missing),
        RV(missing_keys) and a warning each.
    type: str
    choices: [fail, warn]
    default: fail
  prefix:
    description:
      - Key prefix to mirror; a missing trailing C(/) is added. The empty string mirrors the
        whole bucket.
    type: str
    default: cvmfs/
  reject_case_conflicts:
    description:
      - Reject keys whose paths differ only in case (after Unicode NFC normalisation) from
        another key's, including their directories. All keys of such a group are rejected.
    type: bool
    default: false
  retries:
    description:
      - Retries of a request that failed transiently (throttling, HTTP 5xx, connection
        refused, reset or cut), with jittered exponential backoff. Also botocore's
        C(max_attempts) minus one.
    type: int
    default: 5
  state_file:
    description:
      - Where the sync state is kept. Must be outside O(dest) (inside, it would be
        published). Default C(/var/lib/sharedsw-cvmfs/s3-sync/<hash>.json) for root, else
        below C(~/.local/state/sharedsw-cvmfs/s3-sync/); the hash covers O(dest), the
        endpoint, bucket and prefix. Locks on C(<state_file>.lock) and on O(dest) keep two
        runs apart.
    type: path
  symlink_root:
    description:
      - Symlink targets must stay inside this directory, for example the repository root
        C(/cvmfs/<repository>) when O(dest) is a subdirectory. Default is O(dest). Targets are
        resolved lexically from the link's directory; C(..) is only allowed at the start of
        a relative target.
    type: path
  verify_checksum:
    description:
      - Check each download's MD5 against the object's ETag when the ETag is a plain MD5
        (single-part uploads without SSE-KMS). Sizes are always checked.
    type: bool
    default: true
notes:
  - The same engine runs as a command on hosts (for timers and notification consumers), as
    C(python3 -m <package>._s3_sync_cli --help); see C(docs/s3-sync.md) in the collection.
  - Requires boto3 and botocore on the host that runs the module.
"""

EXAMPLES = r"""
- name: Mirror the upload area into the open transaction
  sharedsw.cvmfs.s3_sync:
    endpoint_url: https://rgw.example.org
    access_key: "{{ sw_s3_access_key }}"
    secret_key: "{{ sw_s3_secret_key }}"
    bucket: software
    prefix: cvmfs/
    dest: /cvmfs/sw.example.org
    state_file: /var/lib/sharedsw-cvmfs/s3-sync/sw.example.org.json
  register: sync

- name: Preview what would change, path by path
  sharedsw.cvmfs.s3_sync:
    endpoint_url: https://rgw.example.org
    bucket: software
    dest: /cvmfs/sw.example.org/tools
    prefix: cvmfs/tools/
    symlink_root: /cvmfs/sw.example.org
    on_invalid: skip
    exclude:
      - "*.tmp"
      - scratch
  check_mode: true
  diff: true
"""

RETURN = r"""
added:
  description: Paths created (files, symlinks, directories) and the bytes downloaded for them.
  returned: success
  type: dict
  sample: {"count": 12, "bytes": 73410}
changed_paths:
  description: Changed paths below O(dest) per category, sorted, at most O(max_reported) each.
  returned: success
  type: dict
  sample: {"added": ["bin", "bin/tool"], "updated": [], "deleted": ["old.txt"]}
changed_paths_truncated:
  description: Whether RV(changed_paths) was cut at O(max_reported).
  returned: success
  type: bool
deleted:
  description:
    - Paths removed because their objects disappeared or their type changed in S3 (with
      everything below a replaced directory), or because they had the reserved staging name,
      and their size.
  returned: success
  type: dict
  sample: {"count": 1, "bytes": 20}
duration:
  description: Seconds the run took.
  returned: success
  type: float
missing:
  description: Keys listed but gone when they were fetched (see O(on_missing)), and their listed size.
  returned: always
  type: dict
  sample: {"count": 1, "bytes": 20}
missing_keys:
  description: The keys counted in RV(missing), sorted, at most O(max_reported).
  returned: always
  type: list
  elements: str
  sample: ["cvmfs/lib/old.so"]
local_problems:
  description:
    - Local paths the run could not change (a directory not writable by the user the module
      runs as, on another file system, or a path owned by somebody else), at most
      O(max_reported); the run failed before changing anything.
  returned: failure
  type: list
  elements: dict
  sample: [{"path": "sub", "problem": "directory not writable (owner uid 0, mode 0755)"}]
partially_applied:
  description:
    - Whether a failed run had already changed some paths in O(dest) (some paths new, others
      old; every file complete). Returned by failures in the local checks and in the apply phase.
  returned: failure
  type: bool
  sample: false
rejected:
  description: Keys rejected (see O(on_invalid)) and their size.
  returned: always
  type: dict
  sample: {"count": 1, "bytes": 0}
rejections:
  description: The rejected keys with the reason, at most O(max_reported).
  returned: always
  type: list
  elements: dict
  sample: [{"key": "cvmfs/../etc/passwd", "reason": "'..' path segment"}]
state_file:
  description: The state file used.
  returned: success
  type: str
transferred_bytes:
  description: Bytes downloaded (0 in check mode).
  returned: success
  type: int
unchanged:
  description: Paths left as they were, and their size.
  returned: success
  type: dict
  sample: {"count": 19800, "bytes": 409600000}
updated:
  description: Paths whose content, mode or mtime were changed, and the bytes downloaded.
  returned: success
  type: dict
  sample: {"count": 3, "bytes": 1024}
warnings:
  description: Metadata values that could not be parsed and were ignored, and keys gone when fetched
      (see O(on_missing)).
  returned: success
  type: list
  elements: str
"""

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._module import CvmfsModule
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _s3_module as s3
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._s3_sync import Options, sync


class S3SyncModule(CvmfsModule):
    argument_spec = dict(
        addressing_style=dict(type="str", choices=["path", "virtual", "auto"], default="path"),
        allow_symlink_escape=dict(type="bool", default=False),
        bucket=dict(type="str", required=True),
        delete=dict(type="bool", default=True),
        dest=dict(type="path", required=True),
        exclude=dict(type="list", elements="str", default=[]),
        include=dict(type="list", elements="str", default=[]),
        max_reported=dict(type="int", default=100),
        max_workers=dict(type="int", default=32),
        multipart_threshold=dict(type="int", default=64 * 1024 * 1024),
        on_invalid=dict(type="str", choices=["fail", "skip"], default="fail"),
        on_missing=dict(type="str", choices=["fail", "warn"], default="fail"),
        prefix=dict(type="str", default="cvmfs/"),
        reject_case_conflicts=dict(type="bool", default=False),
        retries=dict(type="int", default=5),
        state_file=dict(type="path"),
        symlink_root=dict(type="path"),
        verify_checksum=dict(type="bool", default=True),
    )
    argument_spec.update(s3.ARGSPEC)
    module_kwargs = dict(
        supports_check_mode=True,
        required_together=s3.REQUIRED_TOGETHER,
        mutually_exclusive=s3.MUTUALLY_EXCLUSIVE,
    )

    def run(self):
        s3.require_boto3(self.ansible)
        p = self.params
        conn = s3.connection_options(p, addressing_style=p["addressing_style"], retries=p["retries"])
        options = Options(
            bucket=p["bucket"], dest=p["dest"], prefix=p["prefix"], delete=p["delete"],
            include=p["include"], exclude=p["exclude"], max_workers=p["max_workers"],
            state_file=p["state_file"], on_invalid=p["on_invalid"], symlink_root=p["symlink_root"],
            allow_symlink_escape=p["allow_symlink_escape"],
            reject_case_conflicts=p["reject_case_conflicts"],
            multipart_threshold=p["multipart_threshold"], verify_checksum=p["verify_checksum"],
            retries=p["retries"], max_reported=p["max_reported"],
            check_mode=self.check_mode, diff=self.diff_mode, on_missing=p["on_missing"])
        try:
            result = sync(conn, options)
        except (OSError, IOError) as error:
            raise CvmfsError("s3_sync into %s failed: %s" % (p["dest"], error), exception=error)
        self.results.update(result)


def main():
    S3SyncModule()()


if __name__ == "__main__":
    main()
