# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local side of a run: the tree walk, the state file, the locks, the staging directory,
the checks before the first change, and applying a plan.

Internal to sharedsw.cvmfs; may change in any release. Standard library only. Imports only
the pure parts (_s3_rules, _s3_metadata, _s3_plan) and _common; must not
import boto3, Ansible, or the S3 side of the engine.

It runs on publishers from the host-program archive (the sync command line imports it), so it
never imports ``ansible`` or ``ansible_collections``; relative imports only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import hashlib
import json
import os
import stat
import threading

from ._common import CvmfsError
from ._s3_metadata import KIND_DIR, KIND_FILE, KIND_LINK, KIND_OTHER
from ._s3_plan import directories_written
from ._s3_rules import STAGING_PREFIX

STATE_FORMAT = 1
INSTALLERS = 4                     # threads renaming staged files into place
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def kind_of(mode):
    if stat.S_ISREG(mode):
        return KIND_FILE
    if stat.S_ISDIR(mode):
        return KIND_DIR
    if stat.S_ISLNK(mode):
        return KIND_LINK
    return KIND_OTHER


def walk(dest, path_filter):
    """Local tree below ``dest``.

    Returns ``(tree, pinned, stale)``: ``tree`` maps relative paths to
    ``(kind, size, mtime_ns, mode)``; ``pinned`` holds directories that contain excluded
    entries (never removed); ``stale`` lists leftover staging directories. Symlinks are never
    followed and excluded subtrees are not entered. Anything else with the staging
    directory's reserved name at the top is in ``tree`` whatever the filters say (the plan
    always removes it: no key can give it, so nothing else would).
    """
    tree = {}
    pinned = set()
    stale = []
    stack = [("", dest)]
    excluding = path_filter.exclude is not None
    while stack:
        rel, directory = stack.pop()
        try:
            iterator = os.scandir(directory)
        except OSError as error:
            raise CvmfsError("cannot read directory %s: %s" % (directory, error), exception=error)
        with iterator:
            for item in iterator:
                name = item.name
                path = rel + "/" + name if rel else name
                reserved = not rel and name.startswith(STAGING_PREFIX)
                if reserved and item.is_dir(follow_symlinks=False):
                    stale.append(item.path)
                    continue
                if excluding and not reserved and path_filter.excluded(path):
                    index = path.rfind("/")
                    while index > 0:
                        pinned.add(path[:index])
                        index = path.rfind("/", 0, index)
                    continue
                st = item.stat(follow_symlinks=False)
                kind = kind_of(st.st_mode)
                tree[path] = (kind, st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode))
                if kind == KIND_DIR:
                    stack.append((path, item.path))
    return tree, pinned, stale


def rmtree(path, ignore_errors=False):
    import shutil  # only when something is removed: shutil imports lzma/bz2 (~20 ms of CPU)
    shutil.rmtree(path, ignore_errors=ignore_errors)


class State:
    """key -> [etag, size, last_modified, mtime_s, mode, target] for what we last wrote."""

    def __init__(self, path, source):
        self.path = path
        self.source = source
        self.objects = {}
        self.loaded = False

    def load(self):
        try:
            with open(self.path, "rb") as handle:
                data = json.loads(handle.read().decode("utf-8"))
        except (IOError, OSError) as error:
            if error.errno == errno.ENOENT:
                return self
            raise CvmfsError("cannot read the state file %s: %s" % (self.path, error), exception=error)
        except ValueError:
            return self  # corrupt: start over (the size+mtime fallback keeps files untouched)
        if isinstance(data, dict) and data.get("format") == STATE_FORMAT and data.get("source") == self.source:
            objects = data.get("objects")
            if isinstance(objects, dict):
                self.objects = objects
                self.loaded = True
        return self

    def save(self, objects):
        directory = os.path.dirname(self.path)
        if directory and not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        tmp = "%s.tmp.%d" % (self.path, os.getpid())
        payload = json.dumps({"format": STATE_FORMAT, "source": self.source, "objects": objects},
                             separators=(",", ":"), sort_keys=True).encode("utf-8")
        # no fsync: a state file torn by a crash is unreadable JSON, which counts as no state,
        # and then the MD5/mtime fallback keeps unchanged files untouched
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            write_all(fd, payload)
        finally:
            os.close(fd)
        os.rename(tmp, self.path)


def default_state_file(dest, source):
    digest = hashlib.sha256((os.path.abspath(dest) + "\0" + source).encode("utf-8")).hexdigest()[:24]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        base = "/var/lib/sharedsw-cvmfs/s3-sync"
    else:
        base = os.path.join(os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"),
                            "sharedsw-cvmfs", "s3-sync")
    return os.path.join(base, digest + ".json")


def is_inside(path, directory):
    path = os.path.abspath(path)
    directory = os.path.abspath(directory)
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def make_staging(dest):
    for unused in range(100):
        path = os.path.join(dest, "%s%d.%s" % (STAGING_PREFIX, os.getpid(), os.urandom(4).hex()))
        try:
            os.mkdir(path, 0o700)
            return path
        except OSError as error:
            if error.errno != errno.EEXIST:
                raise CvmfsError("cannot create the staging directory in %s: %s" % (dest, error), exception=error)
    raise CvmfsError("cannot create a staging directory in %s" % dest)


class SyncLocked(CvmfsError):
    """Another run holds the state file's or the destination's lock."""


def lock_directory(path):
    """flock ``path`` itself: a second run into the same dest (even with another state file)
    would otherwise take this run's staging directory for a stale one."""
    import fcntl
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise SyncLocked("another s3_sync run is writing into %s; wait for it to finish" % path)
    return fd


class StateLock:
    """One run per state file at a time (flock on ``<state_file>.lock``)."""

    def __init__(self, state_path):
        self.path = state_path + ".lock"
        self.fd = None

    def acquire(self):
        import fcntl
        directory = os.path.dirname(self.path)
        try:
            if directory and not os.path.isdir(directory):
                os.makedirs(directory, 0o700)
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        except OSError as error:
            raise CvmfsError("cannot create the lock file %s next to state_file: %s" % (self.path, error), exception=error)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = None
            raise SyncLocked("another s3_sync run holds %s; wait for it to finish" % self.path)

    def release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def local_problems(dest, plan, tree, staging_dev):
    """``[(path, problem)]`` for every local path :func:`apply` would fail to change: directories
    to write into that this user may not write, or that are on another file system than the
    staging directory (a rename cannot cross it), and paths whose mode or mtime is set that
    this user does not own. Checked before the first change, so a run that cannot finish
    changes nothing."""
    uid = os.geteuid()
    chmodded = set(path for path, unused in plan["dir_modes"])
    written, emptied = directories_written(plan, tree)
    problems = []
    for directory in sorted(written):
        full = os.path.join(dest, directory) if directory else dest
        try:
            st = os.lstat(full)
        except OSError as error:
            problems.append((directory, "cannot stat: %s" % error.strerror))
            continue
        if not stat.S_ISDIR(st.st_mode):
            problems.append((directory, "not a directory any more"))
            continue
        needed = os.W_OK | os.X_OK | (os.R_OK if directory in emptied else 0)
        unlocked_first = directory in chmodded and uid in (0, st.st_uid)  # see apply
        if not unlocked_first and not _may_access(full, needed):
            problems.append((directory, "directory not writable (owner uid %d, mode %04o)"
                             % (st.st_uid, stat.S_IMODE(st.st_mode))))
        if written[directory] and st.st_dev != staging_dev:
            problems.append((directory, "on another file system than dest (a mount point inside dest)"))
    if uid != 0:
        for path in sorted(chmodded | set(e.path for e in plan["meta"])):
            try:
                st = os.lstat(os.path.join(dest, path))
            except OSError as error:
                problems.append((path, "cannot stat: %s" % error.strerror))
                continue
            if st.st_uid != uid:
                problems.append((path, "owned by uid %d: its mode and mtime cannot be set" % st.st_uid))
    return problems


def _may_access(path, mode):
    if os.access in os.supports_effective_ids:
        return os.access(path, mode, effective_ids=True)
    return os.access(path, mode)


def apply(plan, dest, staged_name):
    """Carry out ``plan`` in ``dest``; ``staged_name()`` gives a new unused path in the staging
    directory. The checks of :func:`local_problems` ran first, so what can still fail here is
    the unforeseeable (disk full, a path changed by someone else)."""
    # existing directories first: every mode applied keeps the owner's rwx (safe_mode), so
    # this unlocks a directory an older version left read-only before anything is written in it
    for path, mode in plan["dir_modes"]:
        os.chmod(os.path.join(dest, path), mode)
    for path, local in plan["remove_in_way"]:
        full = os.path.join(dest, path)
        if local[0] == KIND_DIR:
            rmtree(full)
        else:
            os.unlink(full)
    for path, mode in plan["mkdir"]:
        os.mkdir(os.path.join(dest, path), 0o700)
    _install(plan["install"], dest, staged_name)
    for entry in plan["meta"]:
        full = os.path.join(dest, entry.path)
        attrs = entry.attrs
        if attrs.kind == KIND_FILE:
            os.chmod(full, attrs.mode)
        os.utime(full, ns=(attrs.mtime_ns, attrs.mtime_ns), follow_symlinks=False)
    for path, local in plan["delete"]:
        full = os.path.join(dest, path)
        if local[0] == KIND_DIR:
            os.rmdir(full)
        else:
            os.unlink(full)
    for path, mode in plan["mkdir"]:
        os.chmod(os.path.join(dest, path), mode)


def _install_one(entry, dest, staged_name):
    full = os.path.join(dest, entry.path)
    attrs = entry.attrs
    if attrs.kind == KIND_LINK:
        tmp = staged_name() + ".link"
        os.symlink(attrs.target, tmp)
        os.utime(tmp, ns=(attrs.mtime_ns, attrs.mtime_ns), follow_symlinks=False)
        os.rename(tmp, full)
        if entry.staged:
            os.unlink(entry.staged)
    else:
        os.rename(entry.staged, full)
    entry.staged = None


def _install(entries, dest, staged_name):
    """Rename staged files into place (directories exist by now, order does not matter).
    Renames are kernel work that runs outside the GIL, so a few threads overlap them."""
    if len(entries) < 64:
        for entry in entries:
            _install_one(entry, dest, staged_name)
        return
    chunks = [entries[n::INSTALLERS] for n in range(INSTALLERS)]
    failures = []

    def install(chunk):
        try:
            for entry in chunk:
                if failures:
                    return
                _install_one(entry, dest, staged_name)
        except Exception as error:  # pylint: disable=broad-except
            failures.append(error)

    threads = [threading.Thread(target=install, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def write_all(fd, data):
    """``os.write`` until all of ``data`` is written."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
