# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan of a run: from the selected S3 entries and the local tree to ordered operations.

Internal to sharedsw.cvmfs; may change in any release. Pure: no disk or network access, so it
is testable with plain dicts. Imports only _s3_rules and _s3_metadata; must not import boto3,
Ansible, or the parts of the engine that touch the disk or the network.

A local tree maps relative paths to ``(kind, size, mtime_ns, mode)`` (kinds in _s3_metadata).
A plan is a dict of lists: the operations ``remove_in_way``, ``dir_modes``, ``mkdir``,
``install``, ``meta`` and ``delete`` (applied in that order by _s3_local.apply), and the report
``added``, ``updated``, ``deleted`` and ``unchanged`` (``(path, bytes)`` each).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import unicodedata

from ._s3_metadata import DEFAULT_DIR_MODE, KIND_DIR, KIND_FILE
from ._s3_rules import display, is_reserved, parents


class Entry:
    """One selected S3 object (file, symlink or directory marker) and what to do with it."""

    __slots__ = ("name", "path", "key", "is_dir", "size", "etag", "last_modified", "local", "state",
                 "action", "attrs", "staged", "bytes", "reason")

    def __init__(self, path, key, is_dir, listed):
        self.name = path + "/" if is_dir else path  # the state file's key
        self.path = path
        self.key = key
        self.is_dir = is_dir
        self.size = listed.size
        self.etag = listed.etag
        self.last_modified = listed.last_modified
        self.local = None
        self.state = None
        self.action = None    # keep | fetch | probe | meta | vanished (see Sync._decide)
        self.attrs = None
        self.staged = None
        self.bytes = 0
        self.reason = None    # set when the key is rejected (never cleared)


def tree_conflicts(entries, prefix, reject_case_conflicts):
    """Rules that need the whole listing: ``[(entry, reason)]`` for file keys that are also a
    directory prefix, and (with ``reject_case_conflicts``) for keys in case-only duplicates."""
    found = []
    parent_of = {}
    for entry in entries.values():
        if entry.is_dir:
            parent_of.setdefault(entry.path, entry.path + "/")
        for parent in parents(entry.path):
            if parent in parent_of:
                break
            parent_of[parent] = entry.name
    for entry in entries.values():
        if not entry.is_dir and entry.path in parent_of:
            found.append((entry, "is both a file and a directory prefix (of %s)"
                          % display(prefix + parent_of[entry.path])))
    if not reject_case_conflicts:
        return found
    rejected = set(id(entry) for entry, unused in found)
    folded = {}
    for path in set(e.path for e in entries.values()) | set(parent_of):
        folded.setdefault(unicodedata.normalize("NFC", path).casefold(), set()).add(path)
    clashing = {}
    for group in folded.values():
        if len(group) > 1:
            for path in group:
                clashing[path] = sorted(p for p in group if p != path)
    if not clashing:
        return found
    for entry in entries.values():
        if entry.reason is not None or id(entry) in rejected:
            continue
        for probe in [entry.path] + list(parents(entry.path)):
            if probe in clashing:
                found.append((entry, "case-only duplicate: %s vs %s" % (
                    display(prefix + probe), ", ".join(display(prefix + p) for p in clashing[probe][:3]))))
                break
    return found


def type_change_conflicts(entries, pinned):
    """``[(entry, reason)]`` for file or symlink keys whose local path is a directory holding
    excluded content: replacing the directory would remove what the filters say to keep."""
    found = []
    for entry in entries.values():
        local = entry.local
        if entry.is_dir or entry.reason is not None or entry.action == "vanished" \
                or local is None or local[0] != KIND_DIR or entry.path not in pinned:
            continue
        found.append((entry, "would replace the local directory %s, which holds excluded content (kept by "
                      "include/exclude); move that content or exclude this key too" % display(entry.path)))
    return found


def make_plan(entries, tree, pinned=(), delete=True, selected=lambda path: True):
    """Turn the entries (name -> :class:`Entry`) and the local tree into a plan.

    ``pinned`` paths are never removed; ``selected`` says which local paths the filters select
    (an unselected file is never deleted)."""
    files = {}        # path -> Entry, files and symlinks to have
    dirs = {}         # path -> Entry or None (implied by a key below it)
    protected = set(pinned)
    for entry in entries.values():
        if entry.reason is not None or entry.action == "vanished":
            # a rejected key, or one gone when fetched: its local path stays as it was
            protected.add(entry.path)
            protected.update(parents(entry.path))
            continue
        if entry.is_dir:
            dirs[entry.path] = entry
        else:
            files[entry.path] = entry
        for parent in parents(entry.path):
            if parent in dirs:
                break
            dirs[parent] = None

    plan = {"remove_in_way": [], "mkdir": [], "install": [], "meta": [], "delete": [],
            "dir_modes": [], "added": [], "updated": [], "deleted": [], "unchanged": []}
    removed = set()

    def gone(path):
        if not removed:
            return False
        if path in removed:
            return True
        for parent in parents(path):
            if parent in removed:
                return True
        return False

    def existed(path):
        return path in tree and not (removed and any(parent in removed for parent in parents(path)))

    # 1. local entries of the wrong type go first (whatever `delete` says: S3 changed the type);
    #    what was below a replaced directory is reported as deleted
    for path in sorted(set(dirs) | set(files)):
        local = tree.get(path)
        if local is None or gone(path):
            continue
        if (path in dirs) != (local[0] == KIND_DIR):
            plan["remove_in_way"].append((path, local))
            removed.add(path)
            if local[0] == KIND_DIR:
                below = path + "/"
                for other, info in tree.items():
                    if other.startswith(below):
                        plan["deleted"].append((other, info[1] if info[0] == KIND_FILE else 0))
    # 2. directories, parents first
    for path in sorted(dirs, key=lambda p: (p.count("/"), p)):
        entry = dirs[path]
        if entry is None:
            mode = DEFAULT_DIR_MODE
        elif entry.attrs is not None:
            mode = entry.attrs.mode
        elif entry.state is not None:
            mode = entry.state[4]
        else:
            mode = DEFAULT_DIR_MODE
        local = tree.get(path)
        if local is None or gone(path):
            plan["mkdir"].append((path, mode))
            plan["updated" if existed(path) else "added"].append((path, 0))
        elif local[3] != mode:
            plan["dir_modes"].append((path, mode))
            plan["updated"].append((path, 0))
        elif entry is not None:
            plan["unchanged"].append((path, 0))
    # 3. files and symlinks
    for path, entry in files.items():
        if entry.action == "fetch":
            plan["install"].append(entry)
            plan["updated" if existed(path) else "added"].append((path, entry.bytes))
        elif entry.action == "meta":
            plan["meta"].append(entry)
            plan["updated"].append((path, 0))
        else:
            plan["unchanged"].append((path, entry.size))
    # 4. what disappeared from S3: children before parents; a directory only when it
    #    ends up empty. A reserved name at the top goes in any case.
    survivors = set()
    for path in sorted(tree, reverse=True):
        reserved = is_reserved(path)
        if not (delete or reserved):
            continue
        local = tree[path]
        keep = not reserved and (path in files or path in dirs or path in protected or path in survivors
                                 or (local[0] != KIND_DIR and not selected(path)))
        if keep:
            survivors.update(parents(path))
            continue
        if gone(path):
            continue
        plan["delete"].append((path, local))
        plan["deleted"].append((path, local[1] if local[0] == KIND_FILE else 0))
    return plan


def _parent(path):
    return path.rpartition("/")[0]


def directories_written(plan, tree):
    """The existing directories :func:`~._s3_local.apply` writes into: ``{relative path: True when files are
    renamed into it}`` ("" is dest; a directory the plan creates counts as its nearest existing
    parent), and the set of those emptied by a type change (they are listed, so read too)."""
    created = set(path for path, unused in plan["mkdir"])
    written = {}
    emptied = set()

    def write_into(directory, rename=False):
        while directory in created:
            directory = _parent(directory)
        written[directory] = written.get(directory, False) or rename

    for path, local in plan["remove_in_way"]:
        write_into(_parent(path))
        if local[0] == KIND_DIR:
            below = path + "/"
            emptied.add(path)
            emptied.update(other for other, info in tree.items() if other.startswith(below) and info[0] == KIND_DIR)
    for directory in emptied:
        write_into(directory)
    for path in created:
        write_into(_parent(path), rename=True)
    for entry in plan["install"]:
        write_into(_parent(entry.path), rename=True)
    for path, unused in plan["delete"]:
        write_into(_parent(path))
    return written, emptied
