# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keys mode: a run that applies only some keys (what bucket notifications said changed).

Internal to sharedsw.cvmfs; may change in any release. No Ansible or boto3 import. Supplies
the hooks a _s3_sync.Sync run calls in keys mode (listing, local walk, plan adjustment, state
entries to keep); must not import _s3_sync or _s3_connect.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import stat
from concurrent.futures import ThreadPoolExecutor

from ._common import CvmfsError
from ._s3_local import kind_of
from ._s3_metadata import KIND_DIR
from ._s3_rules import check_key, display, parents


class NeedsFullSync(CvmfsError):
    """Keys mode met something only a full mirror may decide (dest missing, a path that changes
    between file and directory, a file key that is also a directory prefix): run :func:`~._s3_sync.sync`."""


class KeysMode:
    """What :func:`~._s3_sync.sync_keys` changes in a :class:`~._s3_sync.Sync` run.

    Each touched key is looked up in a listing of its own name (so ETag, size and LastModified
    have exactly the form a full listing gives), whatever the events said: the bucket's current
    state decides, never the order of events. Only the touched paths and their parent
    directories are examined locally; parents are never removed by the plan, only pruned
    afterwards when they end up empty and no key remains below them. State entries of
    untouched keys are kept as they are. Rules that need the whole listing run only over the
    touched keys; the full sync still applies them to the whole prefix.
    """

    def __init__(self, options, keys):
        self.o = options
        self.keys = []      # full keys (bytes) below the prefix
        self.names = set()  # their state-file names ("path" or "dir/")
        self.conflicts = []
        prefix = options.prefix.encode("utf-8")
        for key in sorted(set(keys)):
            raw = key.encode("utf-8", "surrogateescape") if not isinstance(key, bytes) else key
            if not raw.startswith(prefix) or raw == prefix:
                continue
            self.keys.append(raw)
            path, is_dir, reason = check_key(raw[len(prefix):])
            if reason is None and path:
                self.names.add(path + "/" if is_dir else path)

    def list_keys(self, pages, list_page):
        """The lister thread: one listing per touched key (in parallel) instead of the whole prefix."""
        def lookup(raw):
            key = raw.decode("utf-8", "surrogateescape")
            objects, token = list_page(key, None)
            exact = [o for o in objects if o.key == raw]
            if exact and not raw.endswith(b"/"):
                below = raw + b"/"
                if any(o.key.startswith(below) for o in objects) or (token and list_page(key + "/", None)[0]):
                    self.conflicts.append(key)
            return exact

        try:
            if self.keys:
                with ThreadPoolExecutor(max(1, min(self.o.max_workers, 16, len(self.keys)))) as pool:
                    for exact in pool.map(lookup, self.keys):
                        if exact:
                            pages.put(exact)
            pages.put(None)
        except BaseException as error:  # pylint: disable=broad-except
            pages.put(error)

    def walk(self):
        """``(tree, pinned, stale)`` like :func:`~._s3_local.walk`, for the touched paths and their parents."""
        dest = self.o.dest
        if not os.path.isdir(dest):
            raise NeedsFullSync("dest %s does not exist yet" % dest)
        tree = {}
        pinned = set()
        selected = self.o.filter.selected
        for name in self.names:
            path = name.rstrip("/")
            if not selected(path):
                continue
            parts = path.split("/")
            for depth in range(1, len(parts) + 1):
                rel = "/".join(parts[:depth])
                if depth < len(parts):
                    pinned.add(rel)
                if rel not in tree:
                    try:
                        st = os.lstat(os.path.join(dest, rel))
                    except OSError as error:
                        if error.errno in (errno.ENOENT, errno.ENOTDIR):
                            break
                        raise CvmfsError("cannot stat %s: %s" % (os.path.join(dest, rel), error), exception=error)
                    tree[rel] = (kind_of(st.st_mode), st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode))
                if depth < len(parts) and tree[rel][0] != KIND_DIR:
                    break  # nothing below a file or a symlink (the plan replaces it, or it stays)
            if tree.get(path, (None,))[0] == KIND_DIR:
                pinned.add(path)  # a directory is removed only by the pruning below
        return tree, pinned, []

    def check_conflicts(self):
        if self.conflicts:
            raise NeedsFullSync("%d touched key(s) are also directory prefixes in S3 (%s); only a full sync "
                                "decides which one wins" % (len(self.conflicts), ", ".join(map(display, self.conflicts[:5]))))

    def adjust_plan(self, plan, entries, list_page):
        """Keep the plan to the touched paths and add the pruning of emptied directories."""
        if plan["remove_in_way"]:
            raise NeedsFullSync("%s changes between file and directory" % display(plan["remove_in_way"][0][0]))
        touched = set(name.rstrip("/") for name in self.names)
        # an implied parent's mode belongs to its own directory marker, which was not touched
        plan["dir_modes"] = [item for item in plan["dir_modes"] if item[0] in touched]
        keep = set(p for p, _m in plan["dir_modes"]) | set(p for p, _m in plan["mkdir"])
        plan["updated"] = [item for item in plan["updated"] if item[0] in keep or item[0] in touched]
        if not self.o.delete:
            return
        dest = self.o.dest
        in_s3 = set()  # paths listed in S3 (rejected and vanished keys included) and their parents
        for entry in entries.values():
            in_s3.add(entry.path)
            in_s3.update(parents(entry.path))
        deleting = set(p for p, _local in plan["delete"])
        candidates = set()
        for path in deleting | (touched - in_s3):
            candidates.add(path)
            candidates.update(parents(path))
        for path in sorted(candidates - deleting - in_s3, key=lambda p: (-p.count("/"), p)):
            full = os.path.join(dest, path)
            try:
                st = os.lstat(full)
                if not stat.S_ISDIR(st.st_mode):
                    continue
                children = os.listdir(full)
            except OSError:
                continue
            if any(path + "/" + child not in deleting for child in children):
                continue
            if list_page(self.o.prefix + path + "/", None)[0]:
                continue
            deleting.add(path)
            plan["delete"].append((path, (KIND_DIR, st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode))))
            plan["deleted"].append((path, 0))

    def untouched_state(self, objects):
        """The state entries of the keys this run does not look at."""
        return dict((name, value) for name, value in objects.items() if name not in self.names)
