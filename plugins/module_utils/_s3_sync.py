# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""S3 sync engine: make a directory an exact, safe mirror of an S3 prefix.

Internal to sharedsw.cvmfs; may change in any release. No Ansible import: the module
``sharedsw.cvmfs.s3_sync`` and the command line (``_s3_sync_cli``) both call :func:`sync`.

Must not import Ansible (``_s3_module`` is the modules' side), the command line
(``_s3_sync_cli``) or the publish job and consumer (``_publish_*``, ``_event*``): they import it,
on publishers from the host-program archive (relative imports only).

How a run goes (all-or-nothing):

1. **Survey.** A thread lists the prefix (ListObjectsV2, URL-encoded keys, parsed with
   ElementTree) while the main thread walks ``dest`` (``lstat`` only, never following links)
   and loads the state file. Every key is validated as soon as its page arrives; objects that
   must be fetched are queued to the workers at once, so downloads overlap the listing.
2. **Fetch.** Worker threads GET new/changed objects into a staging directory
   ``<dest>/.s3sync-staging.*`` (same file system, so the final step is a rename), or HEAD
   objects whose metadata may have changed. Big objects go through boto3's transfer manager.
   In check mode nothing is downloaded: new or changed objects are only HEADed.
3. **Validate.** Rules that need the whole listing (file/directory collisions, case-only
   duplicates, file keys that would replace a directory holding excluded content) and the
   metadata (symlink targets) run. With ``on_invalid=fail`` any rejected key ends the run
   here: the staging directory is removed and nothing at a final path was touched.
4. **Apply.** First the plan is checked against the local permissions (every directory to
   write into writable and on the staging directory's file system, every path whose mode is
   set owned by us): a run that could not finish fails before changing anything. Then
   directory modes are fixed, paths whose type changed are removed, directories created,
   staged files renamed into place (each ``rename`` is atomic: a reader sees the old or the
   new complete file, never a part), symlinks replaced atomically, modes and mtimes fixed,
   and (with ``delete``) what disappeared from S3 removed. Then the state file is written.

"Unchanged" is decided from the state file (key -> ETag, size, LastModified, and the mode,
mtime and symlink target we gave the local file), checked against ``lstat`` of the local
path, so a reverted transaction or a hand edit is noticed. Without a state entry that vouches
for the local file, a local file of the same size is kept (and only its mode/mtime fixed) when
its MD5 equals the object's ETag, or, for multipart ETags that are no MD5, when its mtime
matches the object's: an unchanged file is never rewritten.

Where each part lives (each file's docstring says what it owns and may import):

* _s3_rules -- key and symlink rules, filters (pure)
* _s3_metadata -- what an object's headers say about its local entry (pure)
* _s3_plan -- entries, listing-wide rules and the plan (pure)
* _s3_local -- tree walk, state file, locks, staging directory, checks and apply
* _s3_fetch -- worker threads that HEAD and GET into the staging directory
* _s3_connect -- connection options, boto3 session, the transport a run uses
* _s3_keys -- keys mode (what bucket notifications said changed)
* _s3_sync (this file) -- the options and one run from listing to result; must not import Ansible
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat
import threading
import time
from queue import SimpleQueue

from ._common import CvmfsError
from ._s3_connect import connect
from ._s3_fetch import Fetcher
from ._s3_http import S3Retry
from ._s3_keys import KeysMode
from ._s3_local import (State, StateLock, apply, default_state_file, is_inside, local_problems, lock_directory,
                        make_staging, rmtree, walk)
from ._s3_metadata import DEFAULT_DIR_MODE, KIND_DIR, KIND_FILE, KIND_LINK, safe_mode
from ._s3_plan import Entry, make_plan, tree_conflicts, type_change_conflicts
from ._s3_rules import PathFilter, check_key, check_symlink, display

LISTERS = 8                        # parallel listings of the top-level common prefixes


def _seconds(ns):
    return ns // 1000000000


class Options:
    """Sync options (see the module documentation for each)."""

    def __init__(self, bucket, dest, prefix="cvmfs/", delete=True, include=None, exclude=None,
                 max_workers=32, state_file=None, on_invalid="fail", symlink_root=None,
                 allow_symlink_escape=False, reject_case_conflicts=False,
                 multipart_threshold=64 * 1024 * 1024, multipart_chunksize=16 * 1024 * 1024,
                 verify_checksum=True, retries=5, max_reported=100, check_mode=False, diff=False,
                 on_missing="fail", first_change_only=False):
        if on_invalid not in ("fail", "skip"):
            raise CvmfsError("on_invalid must be 'fail' or 'skip', not %r" % (on_invalid,))
        if on_missing not in ("fail", "warn"):
            raise CvmfsError("on_missing must be 'fail' or 'warn', not %r" % (on_missing,))
        if first_change_only and not check_mode:
            raise CvmfsError("first_change_only is a question a check (check_mode) asks; a sync that writes "
                             "must see every change")
        if not bucket:
            raise CvmfsError("bucket must be given")
        if not dest:
            raise CvmfsError("dest must be given")
        if max_workers < 1 or max_workers > 256:
            raise CvmfsError("max_workers must be between 1 and 256, not %r" % (max_workers,))
        prefix = prefix or ""
        if prefix.startswith("/"):
            raise CvmfsError("prefix %r must not start with '/'; S3 keys have no leading slash" % prefix)
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.bucket = bucket
        self.dest = os.path.abspath(dest)
        self.prefix = prefix
        self.delete = delete
        self.filter = PathFilter(include, exclude)
        self.max_workers = max_workers
        self.state_file = state_file
        self.on_invalid = on_invalid
        self.on_missing = on_missing
        self.symlink_root = os.path.abspath(symlink_root) if symlink_root else self.dest
        self.allow_symlink_escape = allow_symlink_escape
        self.reject_case_conflicts = reject_case_conflicts
        self.multipart_threshold = max(int(multipart_threshold), 5 * 1024 * 1024)
        self.multipart_chunksize = max(int(multipart_chunksize), 5 * 1024 * 1024)
        self.verify_checksum = verify_checksum
        self.retries = retries
        self.max_reported = max_reported
        self.check_mode = check_mode
        self.first_change_only = first_change_only
        self.diff = diff


class _FirstChange(Exception):
    """A check with ``first_change_only`` found a path whose content must be fetched: no need to look further."""

    def __init__(self, path):
        Exception.__init__(self, path)
        self.path = path


class Sync:
    """One run over ``fast`` (a :class:`~._s3_http.FastS3`, or anything with ``list_page``,
    ``head`` and ``get``); ``client_factory`` returns a boto3 S3 client for big objects."""

    def __init__(self, options, fast, source, client_factory=None, log=None, keys=None):
        self.o = options
        self.keys = KeysMode(options, keys) if keys is not None else None
        self.fast = fast
        self.source = source
        self.log = log or (lambda message: None)
        self.rejections = []      # (key for display, reason, size)
        self.entries = {}         # entry.name -> Entry ("dir/" for directory markers)
        self.staging = None
        self._abort = threading.Event()       # a fatal error: stop everything
        retry = S3Retry.backoff(retries=options.retries, delay=0.25, max_delay=10.0)
        self._list_page = retry(fast.list_page)
        self.fetcher = Fetcher(options, fast, client_factory, self._abort, retry)

    def _reject(self, key, reason, size=0, entry=None):
        self.rejections.append((key, reason, size))
        if entry is not None:
            entry.reason = reason
        if self.o.on_invalid == "fail":
            self.fetcher.no_fetch.set()

    # ---------------------------------------------------------------- survey

    def _list(self, pages, _list_page=None):
        """Feed listing pages to ``pages``, then None (or the exception that stopped it).

        A plain listing is sequential (each page needs the previous page's token) and for a
        no-op sync it is the whole wall time. So the top level is listed with delimiter "/",
        and every common prefix is then listed in full by LISTERS threads in parallel: by S3's
        definition the union is exactly the full listing.
        """
        try:
            prefixes = []
            delimited = getattr(self.fast, "supports_delimiter", False)
            token = None
            while not self._abort.is_set():
                if delimited:
                    objects, token = self._list_page(self.o.prefix, token, prefixes)
                else:
                    objects, token = self._list_page(self.o.prefix, token)
                pages.put(objects)
                if not token:
                    break
            if prefixes:
                work = SimpleQueue()
                for prefix in prefixes:
                    work.put(prefix)
                failures = []
                threads = [threading.Thread(target=self._list_prefixes, args=(work, pages, failures),
                                            name="s3sync-list-%d" % n) for n in range(min(LISTERS, len(prefixes)))]
                for thread in threads:
                    thread.daemon = True
                    thread.start()
                for thread in threads:
                    thread.join()
                if failures:
                    raise failures[0]
            pages.put(None)
        except BaseException as error:  # pylint: disable=broad-except
            self._abort.set()
            pages.put(error)

    def _list_prefixes(self, work, pages, failures):
        while not (self._abort.is_set() or failures):
            try:
                prefix = work.get(False)
            except Exception:  # pylint: disable=broad-except  # queue.Empty
                return
            token = None
            try:
                while not self._abort.is_set():
                    objects, token = self._list_page(prefix, token)
                    pages.put(objects)
                    if not token:
                        break
            except Exception as error:  # pylint: disable=broad-except
                failures.append(error)
                return

    def _decide(self, entry):
        """Set ``entry.action`` from the listing, the state and ``lstat``: 'keep' (unchanged),
        'fetch' (new or changed content) or 'probe' (HEAD first: maybe only metadata changed,
        or there is no state to tell)."""
        local = entry.local
        state = entry.state
        if entry.is_dir:
            if state is not None and state[0] == entry.etag and state[2] == entry.last_modified \
                    and local is not None and local[0] == KIND_DIR and local[3] == state[4] \
                    and local[3] == safe_mode(local[3], True):
                entry.action = "keep"
            else:
                entry.action = "probe"
            return
        if local is None:
            entry.action = "fetch"
            return
        if state is not None:
            kind = KIND_LINK if state[5] is not None else KIND_FILE
            vouched = local[0] == kind and _seconds(local[2]) == state[3] and local[3] == state[4] \
                and (kind == KIND_LINK or (local[1] == state[1] and local[3] == safe_mode(local[3], False)))
            # (a mode no run applies today, e.g. 0666 from an older version, is probed and fixed)
            if vouched and (state[0] != entry.etag or state[1] != entry.size):
                entry.action = "fetch"  # the local file is what we wrote; the object changed since
                return
            if vouched:
                entry.action = "keep" if state[2] == entry.last_modified else "probe"
                if kind == KIND_LINK:
                    try:
                        if os.readlink(os.path.join(self.o.dest, entry.path)) != state[5]:
                            entry.action = "probe"
                    except OSError:
                        entry.action = "fetch"
                return
        entry.action = "probe" if local[0] in (KIND_FILE, KIND_LINK) else "fetch"

    # ---------------------------------------------------------------- main

    def run(self):
        started = time.time()
        o = self.o
        if os.path.lexists(o.dest) and not os.path.isdir(o.dest):
            raise CvmfsError("dest %s exists and is not a directory; give a directory to mirror into" % o.dest)
        if not os.path.isdir(o.dest) and not os.path.isdir(os.path.dirname(o.dest)):
            raise CvmfsError("dest %s does not exist and neither does its parent; create the parent first" % o.dest)
        state_path = os.path.abspath(o.state_file or default_state_file(o.dest, self.source))
        if is_inside(state_path, o.dest):
            raise CvmfsError("state_file %s is inside dest %s; it must live outside the mirrored "
                             "directory (it would be published)" % (state_path, o.dest))
        lock = StateLock(state_path)
        lock.acquire()
        try:
            state = State(state_path, self.source).load()
            result = self._run(state)
        finally:
            lock.release()
        result["duration"] = round(time.time() - started, 3)
        result["state_file"] = state_path
        return result

    def _run(self, state):
        o = self.o
        pages = SimpleQueue()
        lister = threading.Thread(target=self._list if self.keys is None else self.keys.list_keys,
                                  args=(pages, self._list_page), name="s3sync-list")
        lister.daemon = True
        lister.start()
        tree, pinned, stale = self._local_tree()
        dest_lock = None
        try:
            if not o.check_mode:
                dest_lock = self._prepare_dest(stale)
            self.fetcher.start(self.staging)
            self.log("local tree: %d entries; state: %d entries" % (len(tree), len(state.objects)))
            try:
                self._survey(pages, tree, state)
            except _FirstChange as change:
                self._abort.set()   # stops the listing threads: the question is answered
                return {"changed": True, "first_change": display(change.path)}
            self.log("listed %d selected keys, %d to fetch or probe, %d rejected so far"
                     % (len(self.entries), self.fetcher.queued, len(self.rejections)))
            self.fetcher.wait()
            self._check_fetched(pinned)
            plan = make_plan(self.entries, tree, pinned, o.delete, o.filter.selected)
            if self.keys is not None:
                self.keys.adjust_plan(plan, self.entries, self._list_page)
            self.log("plan: %d to add, %d to update, %d to delete" % (
                len(plan["added"]), len(plan["updated"]), len(plan["deleted"])))
            if not o.check_mode:
                self._apply(plan, tree)
                self._save_state(state)
            return self._result(plan)
        except BaseException:
            self._abort.set()
            raise
        finally:
            self.fetcher.stop()
            if self.staging is not None:
                rmtree(self.staging, ignore_errors=True)
                self.staging = None
            if dest_lock is not None:
                os.close(dest_lock)

    def _local_tree(self):
        if self.keys is not None:
            return self.keys.walk()
        if os.path.isdir(self.o.dest):
            return walk(self.o.dest, self.o.filter)
        return {}, set(), []

    def _prepare_dest(self, stale):
        """Create and lock dest, remove stale staging directories, make this run's; return the lock."""
        dest = self.o.dest
        if not os.path.isdir(dest):
            os.mkdir(dest, DEFAULT_DIR_MODE)
        dest_lock = lock_directory(dest)
        for path in stale:
            rmtree(path, ignore_errors=True)
        self.staging = make_staging(dest)
        return dest_lock

    def _check_fetched(self, pinned):
        """After the workers: raise the first fetch error, then apply the rules that need what
        was fetched, and refuse to go on after rejections or vanished keys when told to."""
        o = self.o
        if self.fetcher.errors:
            entry, error = self.fetcher.errors[0]
            extra = dict(getattr(error, "extra", {}))
            extra["key"] = display(entry.key)
            message = getattr(error, "message", None) or str(error)
            raise CvmfsError("syncing s3://%s/%s failed (after %d retries where retrying made sense): %s"
                             % (o.bucket, display(entry.key), o.retries, message),
                             exception=getattr(error, "exception", None) or error, **extra)
        if self.keys is not None:
            self.keys.check_conflicts()
        else:
            self._validate_type_changes(pinned)
        # after a rejection under on_invalid=fail the workers only HEADed (no download), so
        # every symlink target is known and judged now, not one run later
        self._validate_metadata()
        if self.rejections and o.on_invalid == "fail":
            raise self._rejection_error()
        if self.fetcher.missing and o.on_missing == "fail":
            raise self._missing_error()

    def _apply(self, plan, tree):
        o = self.o
        problems = local_problems(o.dest, plan, tree, os.lstat(self.staging).st_dev)
        if problems:
            raise self._local_problems_error(problems)
        try:
            apply(plan, o.dest, self.fetcher.staged_name)
        except (OSError, IOError) as error:
            raise CvmfsError("applying the sync into %s failed part-way: %s. Paths already done are "
                             "new, the others old; every file is complete. Fix the cause and run "
                             "again to finish." % (o.dest, error), exception=error, partially_applied=True)
        self.log("applied")

    def _survey(self, pages, tree, state):
        o = self.o
        prefix_len = len(o.prefix.encode("utf-8"))
        entries = self.entries
        objects_state = state.objects
        selected = o.filter.selected if (o.filter.include or o.filter.exclude) else None
        while True:
            page = pages.get()
            if page is None:
                break
            if isinstance(page, BaseException):
                if isinstance(page, CvmfsError):
                    raise page
                raise CvmfsError("listing s3://%s/%s failed: %s" % (o.bucket, o.prefix, page), exception=page)
            batch = []
            for listed in page:
                raw = listed.key
                path, is_dir, reason = check_key(raw[prefix_len:])
                if reason is not None:
                    self._reject(display(raw), reason, listed.size)
                    continue
                if not path or (selected is not None and not selected(path)):
                    continue
                entry = Entry(path, raw, is_dir, listed)
                if entry.name in entries:
                    continue  # listed twice (a server paging bug): the first one counts
                entry.local = tree.get(path)
                st = objects_state.get(entry.name)
                if st is not None and isinstance(st, list) and len(st) == 6:
                    entry.state = st
                entries[entry.name] = entry
                self._decide(entry)
                if entry.action != "keep":
                    if o.first_change_only and entry.action == "fetch":
                        raise _FirstChange(path)   # certain; a 'probe' is only a maybe: it is looked at
                    batch.append(entry)
            if batch:
                self.fetcher.submit(batch)
        self._validate_tree()
        self.fetcher.listing_done()

    def _validate_tree(self):
        for entry, reason in tree_conflicts(self.entries, self.o.prefix, self.o.reject_case_conflicts):
            self._reject(display(entry.key), reason, entry.size, entry)

    def _validate_type_changes(self, pinned):
        for entry, reason in type_change_conflicts(self.entries, pinned):
            self._reject(display(entry.key), reason, entry.size, entry)

    def _validate_metadata(self):
        o = self.o
        for entry in self.entries.values():
            attrs = entry.attrs
            if entry.reason is not None or attrs is None or attrs.kind != KIND_LINK:
                continue
            reason = check_symlink(entry.path, attrs.target, o.dest, o.symlink_root, o.allow_symlink_escape)
            if reason is not None:
                self._reject(display(entry.key), reason, entry.size, entry)

    def _rejection_error(self):
        shown = "; ".join("%s: %s" % item[:2] for item in self.rejections[:10])
        more = "" if len(self.rejections) <= 10 else " (and %d more)" % (len(self.rejections) - 10)
        return CvmfsError(
            "%d key(s) under s3://%s/%s were rejected and on_invalid=fail, so nothing was written: %s%s. "
            "Rename or remove those objects, or set on_invalid=skip to sync everything else."
            % (len(self.rejections), self.o.bucket, self.o.prefix, shown, more),
            rejected={"count": len(self.rejections), "bytes": sum(r[2] for r in self.rejections)},
            rejections=[{"key": k, "reason": r} for k, r, unused in self.rejections[:self.o.max_reported]])

    def _missing_error(self):
        keys = sorted(key for key, unused in self.fetcher.missing)
        more = "" if len(keys) <= 10 else " (and %d more)" % (len(keys) - 10)
        return CvmfsError(
            "%d key(s) under s3://%s/%s were listed but gone when fetched (deleted or replaced while the sync "
            "ran) and on_missing=fail, so nothing was written: %s%s. Run the sync again, or set on_missing=warn "
            "to sync everything else." % (len(keys), self.o.bucket, self.o.prefix, ", ".join(keys[:10]), more),
            missing={"count": len(keys), "bytes": sum(size for unused, size in self.fetcher.missing)},
            missing_keys=keys[:self.o.max_reported])

    def _local_problems_error(self, problems):
        shown = "; ".join("%s: %s" % (display(path or "."), why) for path, why in problems[:10])
        more = "" if len(problems) <= 10 else " (and %d more)" % (len(problems) - 10)
        return CvmfsError(
            "cannot apply the sync into %s as uid %d, so nothing was changed: %s%s. The user running "
            "the sync must own every path below dest (and dest must be one file system)."
            % (self.o.dest, os.geteuid(), shown, more), partially_applied=False,
            local_problems=[{"path": display(p), "problem": w} for p, w in problems[:self.o.max_reported]])

    # ---------------------------------------------------------------- state and result

    def _save_state(self, state):
        objects = {} if self.keys is None else self.keys.untouched_state(state.objects)
        dest = self.o.dest
        for name, entry in self.entries.items():
            if entry.reason is not None or entry.action == "vanished":
                continue
            if entry.action == "keep" and entry.attrs is None:
                objects[name] = entry.state
                continue
            try:
                st = os.lstat(os.path.join(dest, entry.path))
            except OSError:
                continue
            attrs = entry.attrs
            target = attrs.target if attrs is not None and attrs.kind == KIND_LINK else None
            objects[name] = [entry.etag, entry.size, entry.last_modified, _seconds(st.st_mtime_ns),
                             stat.S_IMODE(st.st_mode), target]
        if objects != state.objects or not state.loaded:
            state.save(objects)

    def _result(self, plan):
        cap = self.o.max_reported
        result = {}
        paths = {}
        for name in ("added", "updated", "deleted", "unchanged"):
            items = plan[name]
            result[name] = {"count": len(items), "bytes": sum(item[1] for item in items)}
            if name != "unchanged":
                paths[name] = sorted(display(item[0]) for item in items)
        result["rejected"] = {"count": len(self.rejections), "bytes": sum(r[2] for r in self.rejections)}
        result["rejections"] = [{"key": k, "reason": r} for k, r, unused in self.rejections[:cap]]
        missing = sorted(self.fetcher.missing)
        result["missing"] = {"count": len(missing), "bytes": sum(size for unused, size in missing)}
        result["missing_keys"] = [key for key, unused in missing[:cap]]
        self.fetcher.warnings.extend(
            "s3://%s/%s was listed but gone when fetched (deleted or replaced while the sync ran); "
            "its local path was left as it was" % (self.o.bucket, key) for key, unused in missing)
        result["changed"] = any(paths.values())
        result["changed_paths"] = dict((k, v[:cap]) for k, v in paths.items())
        result["changed_paths_truncated"] = any(len(v) > cap for v in paths.values())
        result["transferred_bytes"] = 0 if self.o.check_mode else sum(e.bytes for e in plan["install"])
        result["warnings"] = sorted(set(self.fetcher.warnings))[:cap]
        if self.o.diff:
            lines = ["+ %s" % p for p in paths["added"]]
            lines += ["~ %s" % p for p in paths["updated"]]
            lines += ["- %s" % p for p in paths["deleted"]]
            result["diff"] = {"prepared": "\n".join(lines) + ("\n" if lines else "")}
        return result


def sync_keys(conn, options, keys, log=None):
    """Apply only ``keys`` (full keys; those outside ``options.prefix`` are ignored) into
    ``options.dest``, deciding each from the bucket's current state: an object that exists is
    fetched (when changed), one that does not is removed locally with the directories it leaves
    empty. Same options, state file, staging and result as :func:`sync`. Raises
    :class:`NeedsFullSync` (before anything is written) when only a full run may decide."""
    fast, client_factory, source = connect(conn, options.bucket, options.max_workers)
    try:
        return Sync(options, fast, source + options.prefix, client_factory, log, keys=keys).run()
    finally:
        fast.close()


def sync(conn, options, log=None):
    """Mirror ``s3://options.bucket/options.prefix`` into ``options.dest``; return the result
    dict (see the module's RETURN). Raises :class:`CvmfsError` on failure."""
    fast, client_factory, source = connect(conn, options.bucket, options.max_workers)
    try:
        return Sync(options, fast, source + options.prefix, client_factory, log).run()
    finally:
        fast.close()
