# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Getting objects: worker threads that HEAD or GET the entries a run queues, into its staging
directory, and decide whether only the metadata changed.

Internal to sharedsw.cvmfs; may change in any release. No Ansible import; boto3's transfer
manager (s3transfer) is imported only when a big object is fetched. Talks to S3 only through
the ``fast`` object it is given (_s3_http.FastS3 or _s3_connect.BotoS3); must not import
_s3_connect or _s3_sync.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import re
import threading
import time
from queue import SimpleQueue

from ._s3_http import S3HTTPError, TransportError
from ._s3_local import O_CLOEXEC, write_all
from ._s3_metadata import KIND_DIR, KIND_FILE, KIND_LINK, object_attributes
from ._s3_rules import display

BUFFERED = 1024 * 1024             # objects up to this size are written with one write()
_PLAIN_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


def _seconds(ns):
    return ns // 1000000000


class _Abort(Exception):
    pass


class Fetcher:
    """``options.max_workers`` threads working through the entries :meth:`submit` queues:
    'probe' entries are HEADed (and may become 'keep', 'meta' or 'fetch'), 'fetch' entries are
    downloaded into ``staging`` (only HEADed in check mode or once :attr:`no_fetch` is set).
    ``abort`` is the run's event that stops everything; ``retry`` wraps each request."""

    def __init__(self, options, fast, client_factory, abort, retry):
        self.o = options
        self.fast = fast
        self.client_factory = client_factory
        self.abort = abort
        self.staging = None
        self.warnings = []
        self.missing = []         # (key for display, listed size): listed, but gone when fetched
        self.errors = []          # (entry, exception)
        self.no_fetch = threading.Event()    # HEAD, don't download (the run will fail anyway)
        self.queued = 0
        self._seq = 0
        self._pending = 0
        self._listed = False
        self._lock = threading.Lock()
        self._all_done = threading.Event()
        self._jobs = SimpleQueue()
        self._workers = []
        self._transfer = None
        self._transfer_lock = threading.Lock()
        self._umask = os.umask(0o022)
        os.umask(self._umask)
        self._head_key = retry(fast.head)
        self._get_small = retry(self._fetch_small)
        self._get_big = retry(self._fetch_big)

    # ---------------------------------------------------------------- the queue

    def start(self, staging):
        self.staging = staging
        for number in range(self.o.max_workers):
            worker = threading.Thread(target=self._worker, name="s3sync-%d" % number)
            worker.daemon = True
            worker.start()
            self._workers.append(worker)

    def submit(self, batch):
        self.queued += len(batch)
        with self._lock:
            self._pending += len(batch)
        for entry in batch:
            self._jobs.put(entry)

    def listing_done(self):
        with self._lock:
            self._listed = True
            if self._pending == 0:
                self._all_done.set()

    def wait(self):
        while not self._all_done.wait(0.5):
            pass

    def stop(self):
        """End the workers (waiting at most 30 s: one stuck on a dead server must not hold the
        run long) and the transfer manager."""
        for unused in self._workers:
            self._jobs.put(None)
        deadline = time.time() + 30
        for worker in self._workers:
            worker.join(max(0.1, deadline - time.time()))
        if self._transfer is not None:
            try:
                self._transfer.shutdown(cancel=True)
            except Exception:  # pylint: disable=broad-except
                pass

    def _vanished(self, entry):
        """The key was listed but is gone now (404 on HEAD or GET): deleted or replaced while we
        ran. Never silent: reported, and with on_missing=fail nothing is written."""
        entry.action = "vanished"
        with self._lock:
            self.missing.append((display(entry.key), entry.size))
        if self.o.on_missing == "fail":
            self.no_fetch.set()

    def _full_key(self, entry):
        return self.o.prefix + entry.path + ("/" if entry.is_dir else "")

    def staged_name(self):
        with self._lock:
            self._seq += 1
            seq = self._seq
        return os.path.join(self.staging, "%06d" % seq)

    def _worker(self):
        while True:
            entry = self._jobs.get()
            if entry is None:
                return
            try:
                if not (self.abort.is_set() or entry.reason is not None):
                    if entry.action == "probe":
                        self._probe(entry)
                    if entry.action == "fetch":
                        self._fetch(entry)
            except _Abort:
                pass
            except Exception as error:  # pylint: disable=broad-except
                self.errors.append((entry, error))
                self.abort.set()
            with self._lock:
                self._pending -= 1
                if self._pending == 0 and self._listed:
                    self._all_done.set()

    def _probe(self, entry):
        headers = self._head_key(self._full_key(entry))
        if headers is None:
            self._vanished(entry)
            return
        entry.etag = headers.get("etag", entry.etag).strip('"')
        if headers.get("content-length", "").isdigit():
            entry.size = int(headers["content-length"])
        attrs = object_attributes(headers, entry.is_dir, self.warnings)
        entry.attrs = attrs
        local = entry.local
        if entry.is_dir:
            entry.action = "keep" if local is not None and local[0] == KIND_DIR and local[3] == attrs.mode else "meta"
            return
        if local is None or local[0] != attrs.kind:
            entry.action = "fetch"
            return
        if attrs.kind == KIND_LINK:
            try:
                current = os.readlink(os.path.join(self.o.dest, entry.path))
            except OSError:
                current = None
            if current != attrs.target:
                entry.action = "fetch"
                return
        else:
            if local[1] != entry.size:
                entry.action = "fetch"
                return
            state = entry.state
            known = state is not None and state[0] == entry.etag and state[1] == entry.size \
                and _seconds(local[2]) == state[3]
            if not known:
                # no state vouches for the local file: same content? With a plain-MD5 ETag
                # compare digests; otherwise (multipart ETag) fall back to size + mtime
                if _PLAIN_MD5.match(entry.etag):
                    if self._local_md5(entry.path) != entry.etag.lower():
                        entry.action = "fetch"
                        return
                elif _seconds(local[2]) != _seconds(attrs.mtime_ns):
                    entry.action = "fetch"
                    return
        if _seconds(local[2]) == _seconds(attrs.mtime_ns) and (attrs.kind == KIND_LINK or local[3] == attrs.mode):
            entry.action = "keep"
        else:
            entry.action = "meta"

    def _local_md5(self, path):
        digest = hashlib.md5()
        try:
            with open(os.path.join(self.o.dest, path), "rb") as handle:
                for block in iter(lambda: handle.read(1048576), b""):
                    digest.update(block)
        except (IOError, OSError):
            return None
        return digest.hexdigest()

    def _fetch(self, entry):
        key = self._full_key(entry)
        if self.o.check_mode or entry.is_dir or self.no_fetch.is_set():
            # check mode, or a run that will fail on rejected keys: learn the metadata (symlink
            # targets are checked) without downloading
            if entry.attrs is None:
                headers = self._head_key(key)
                if headers is None:
                    self._vanished(entry)
                    return
                entry.attrs = object_attributes(headers, entry.is_dir, self.warnings)
                entry.etag = headers.get("etag", entry.etag).strip('"')
            if entry.attrs.kind == KIND_FILE:
                entry.bytes = entry.size
            return
        if entry.size >= self.o.multipart_threshold:
            self._get_big(entry, key)
        else:
            self._get_small(entry, key)

    def _fetch_small(self, entry, key):
        """GET into the staging directory. A body that stays within BUFFERED bytes is collected
        in memory and written with one ``write`` into a file created with its final mode
        (symlink objects never touch the disk here); a longer one is streamed to the file from
        the moment it passes BUFFERED, whatever size the listing gave (an object can grow
        between the listing and the GET)."""
        if self.abort.is_set():
            raise _Abort()

        def open_staged():
            if entry.staged is None:
                entry.staged = self.staged_name()
            return os.open(entry.staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | O_CLOEXEC, 0o600)

        body = _Spool(open_staged, BUFFERED, hashlib.md5() if self.o.verify_checksum else None)
        try:
            headers = self.fast.get(key, body.write)
            if headers is None:
                self._vanished(entry)
                return
            self._check_body(key, headers, body.size, body.digest)
            if body.fd is None:
                self._write_buffered(entry, headers, body.buffered())
            else:
                self._finish_file(entry, body.fd, headers, body.size)
        finally:
            body.close()

    def _write_buffered(self, entry, headers, data):
        attrs = self._take_headers(entry, headers, len(data))
        if attrs.kind != KIND_FILE:
            return
        reused = entry.staged is not None  # by an earlier attempt: its mode is not ours yet
        if not reused:
            entry.staged = self.staged_name()
        fd = os.open(entry.staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | O_CLOEXEC, attrs.mode)
        try:
            if data:
                write_all(fd, data)
            if reused or attrs.mode & self._umask:
                os.fchmod(fd, attrs.mode)
            os.utime(fd, ns=(attrs.mtime_ns, attrs.mtime_ns))
        finally:
            os.close(fd)

    @staticmethod
    def _check_body(key, headers, size, digest):
        length = headers.get("content-length")
        if length is not None and int(length) != size:
            raise TransportError("GET %s: got %d of %s bytes" % (display(key), size, length))
        etag = headers.get("etag", "").strip('"')
        if digest is not None and _PLAIN_MD5.match(etag) and digest.hexdigest() != etag.lower():
            raise TransportError("GET %s: MD5 %s does not match ETag %s" % (display(key), digest.hexdigest(), etag))

    def _take_headers(self, entry, headers, size):
        attrs = object_attributes(headers, False, self.warnings)
        entry.attrs = attrs
        entry.etag = headers.get("etag", entry.etag).strip('"')
        entry.size = size
        entry.bytes = size if attrs.kind == KIND_FILE else 0
        return attrs

    def _finish_file(self, entry, fd, headers, size):
        attrs = self._take_headers(entry, headers, size)
        if attrs.kind == KIND_FILE:
            os.fchmod(fd, attrs.mode)
            os.utime(fd, ns=(attrs.mtime_ns, attrs.mtime_ns))

    def _transfer_manager(self):
        with self._transfer_lock:
            if self._transfer is None:
                from s3transfer.manager import TransferConfig, TransferManager
                # max_io_queue_size bounds the chunks held in memory (default 1000 x 256 KiB:
                # three parallel 128 MiB downloads peaked at 350 MiB RSS; with 32: 60 MiB)
                config = TransferConfig(multipart_threshold=self.o.multipart_threshold,
                                        multipart_chunksize=self.o.multipart_chunksize,
                                        max_request_concurrency=min(self.o.max_workers, 10),
                                        max_io_queue_size=32,
                                        num_download_attempts=self.o.retries + 1)
                self._transfer = TransferManager(self.client_factory(), config)
            return self._transfer

    def _fetch_big(self, entry, key):
        """Big objects: boto3's transfer manager (ranged GETs in parallel, retried per part),
        streamed to the staged file; a HEAD before and after proves it is one version."""
        if self.abort.is_set():
            raise _Abort()
        before = self.fast.head(key)
        if before is None:
            self._vanished(entry)
            return
        if entry.staged is None:
            entry.staged = self.staged_name()
        with open(entry.staged, "wb") as handle:
            future = self._transfer_manager().download(self.o.bucket, key, handle)
            try:
                future.result()
            except Exception as error:  # pylint: disable=broad-except
                raise _big_error(key, error)
            handle.flush()
            after = self.fast.head(key)
            if after is None or after.get("etag") != before.get("etag"):
                raise TransportError("GET %s: the object changed during the download" % display(key))
            size = os.fstat(handle.fileno()).st_size
            if size != int(before.get("content-length", size)):
                raise TransportError("GET %s: got %d of %s bytes" % (display(key), size, before.get("content-length")))
            etag = before.get("etag", "").strip('"')
            if self.o.verify_checksum and _PLAIN_MD5.match(etag):
                digest = hashlib.md5()
                with open(entry.staged, "rb") as check:
                    for block in iter(lambda: check.read(4194304), b""):
                        digest.update(block)
                if digest.hexdigest() != etag.lower():
                    raise TransportError("GET %s: MD5 does not match ETag %s" % (display(key), etag))
            self._finish_file(entry, handle.fileno(), before, size)


class _Spool:
    """A GET body: held in memory up to ``limit`` bytes, then moved to the file ``open_file()``
    returns and streamed there, so memory per download stays bounded whatever its length."""

    def __init__(self, open_file, limit, digest=None):
        self.open_file = open_file
        self.limit = limit
        self.digest = digest
        self.chunks = []
        self.size = 0
        self.fd = None

    def write(self, chunk):
        if self.digest is not None:
            self.digest.update(chunk)
        self.size += len(chunk)
        if self.fd is not None:
            write_all(self.fd, chunk)
            return
        self.chunks.append(chunk)
        if self.size > self.limit:
            self.fd = self.open_file()
            for piece in self.chunks:
                write_all(self.fd, piece)
            self.chunks = None

    def buffered(self):
        return self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _big_error(key, error):
    code = getattr(error, "response", {}).get("Error", {}).get("Code") if hasattr(error, "response") else None
    if code in ("NoSuchKey", "404", "PreconditionFailed", "412"):
        return TransportError("GET %s: the object changed during the download" % display(key), exception=error)
    if isinstance(error, (OSError, IOError)) and not getattr(error, "response", None):
        transient = TransportError("GET %s: %s" % (display(key), error), exception=error)
        return transient
    wrapped = S3HTTPError("GET %s (multipart): %s" % (display(key), error), code=code, key=key)
    wrapped.exception = error
    return wrapped
