# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The publisher's publish job: S3 -> transaction -> publish, or abort. Never half a publish.

Internal to sharedsw.cvmfs; may change in any release. Pure Python, no Ansible import; the
publisher role installs it with its sibling module_utils files as the package ``sharedsw_cvmfs``
and runs it from the ``sharedsw-cvmfs-publish@<repo>`` systemd service::

    python3 -m sharedsw_cvmfs._publish_job --config /etc/sharedsw-cvmfs/publish/<repo>.json

One run:

1. takes an exclusive lock (``flock``) so two runs for one repository never overlap (the
   notification consumer takes the same lock for each batch); a second run exits ``75`` at once,
   or with ``--wait-lock SECONDS`` (what the timer's unit passes, so that the timed full sync is
   never silently skipped) waits for the lock and exits ``4`` with a message naming the holder
   if it is still held after that long;
2. recovers from a crashed earlier run: a transaction that THIS job opened (its marker file says
   so) is aborted; a transaction somebody else opened is left alone and the job fails (``3``);
3. plans the sync (``s3_sync`` in check mode against the published tree) and lists tarballs
   under the ingest prefix; with nothing to do it ends here, without taking a gateway lease;
4. opens a transaction on the publisher's lease path, runs the ``s3_sync`` command-line entry
   point into ``/cvmfs/<repo>/<path>``, creates the parent directories pending tarballs need, then
   publishes if anything changed and aborts otherwise. ANY failure or signal (SIGTERM from
   ``systemctl stop`` or the unit's timeout, SIGINT) after the transaction was opened aborts it
   (``cvmfs_server abort -f``) and restores the sync's state file, so the next run retries;
5. ingests each tarball with ``cvmfs_server ingest`` (one transaction each, opened and closed by
   cvmfs_server itself) and deletes it from the bucket afterwards. cvmfs_server reads uncompressed
   tar only, so a compressed tarball is first read through once (its checksums come at its end),
   then decompressed into ``cvmfs_server ingest -t -`` (gzip, bzip2, xz: Python; zstd: the ``zstd``
   program). If that stream fails, cvmfs_server is killed before it reads the end of the tar and
   the transaction it left is aborted; the tarball stays in the bucket.

Exit status (what monitoring alerts on): ``0`` published or nothing to do; ``1`` failed, the
repository is clean (nothing half-published, transaction aborted); ``2`` bad configuration;
``3`` failed AND needs a human (abort failed, or a transaction this job did not open);
``4`` gave up waiting ``--wait-lock`` seconds for the lock (nothing done); ``75`` another run holds
the lock (no ``--wait-lock``). Each run that gets the lock writes ``<state_dir>/last-run.json``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import bz2
import contextlib
import datetime
import errno
import fcntl
import gzip
import json
import lzma
import os
import posixpath
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import zlib

from ._announce import announce_after_publish
from ._common import CvmfsError
from ._cvmfs_state import CvmfsPaths, in_transaction, scratch_has_changes


EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_NEEDS_HUMAN = 3
EXIT_LOCK_TIMEOUT = 4
EXIT_BUSY = 75

TARBALL_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst", ".tgz", ".tar")
#: how a tarball is compressed, by suffix: cvmfs_server ingest reads plain tar only (CernVM-FS builds its
#: libarchive without compression support), so the job decompresses these into its stdin
COMPRESSION = {".tar.gz": "gzip", ".tgz": "gzip", ".tar.bz2": "bzip2", ".tar.xz": "xz", ".tar.zst": "zstd"}
#: errors of a corrupt or truncated compressed file, from gzip, bz2, lzma and ProgramOutput
DECOMPRESSION_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, CvmfsError)
CHUNK = 1024 * 1024  # bytes per read and write while a tarball streams into cvmfs_server

DEFAULTS = {
    "cvmfs_server": "/usr/bin/cvmfs_server",
    "mount_dir": "/cvmfs",
    "spool_dir": "/var/spool/cvmfs",
    "etc_dir": "/etc/cvmfs",
    "path": "/",
    "credentials_file": None,
    "transaction_retry_timeout": 300,
    "sync_command": None,
    "plan_first": True,
    "tmp_dir": None,
}
SOURCE_DEFAULTS = {
    "endpoint_url": None, "region": None, "bucket": None, "prefix": "cvmfs/", "sync": True, "delete": True,
    "exclude": [], "ingest_prefix": None, "ingest_dir": "", "addressing_style": "path", "validate_certs": True,
    "ca_bundle": None, "max_workers": 32, "on_invalid": "fail", "on_missing": "fail",
}


class JobInterrupted(Exception):
    """A signal asked the job to stop; raised from the signal handler."""


class Log:
    """Lines for the journal: sd-daemon priority prefixes when stdout/stderr is the journal."""

    def __init__(self, stream=None):
        self.stream = stream
        self.journal = bool(os.environ.get("JOURNAL_STREAM"))

    def _say(self, priority, message):
        stream = self.stream or (sys.stderr if priority <= 4 else sys.stdout)
        for line in str(message).splitlines() or [""]:
            stream.write("%s%s\n" % ("<%d>" % priority if self.journal else "", line))
        stream.flush()

    def error(self, message):
        self._say(3, message)

    def warning(self, message):
        self._say(4, message)

    def info(self, message):
        self._say(6, message)


def load_config(path):
    """The job's JSON config with defaults filled in; :class:`CvmfsError` names what is wrong."""
    try:
        with open(path) as handle:
            raw = json.load(handle)
    except (IOError, OSError) as error:
        raise CvmfsError("cannot read the job config %s: %s" % (path, error))
    except ValueError as error:
        raise CvmfsError("the job config %s is not valid JSON: %s" % (path, error))
    if not isinstance(raw, dict):
        raise CvmfsError("the job config %s must hold a JSON object" % path)
    config = dict(DEFAULTS)
    config.update(raw)
    source = dict(SOURCE_DEFAULTS)
    source.update(raw.get("source") or {})
    config["source"] = source
    for key in ("repository", "state_dir", "lock_file"):
        if not config.get(key):
            raise CvmfsError("the job config %s lacks %r" % (path, key))
    parts = [p for p in (config["path"] or "/").split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise CvmfsError("path %r in %s must be a plain absolute path such as /team-a" % (config["path"], path))
    config["path"] = "/" + "/".join(parts)
    if not config.get("lease"):
        config["lease"] = config["repository"] + ("" if config["path"] == "/" else config["path"])
    if (source["sync"] or source["ingest_prefix"]) and not source["bucket"]:
        raise CvmfsError("source.bucket is missing in %s" % path)
    source["ingest_dir"] = (source["ingest_dir"] or "").strip("/")
    if source["ingest_prefix"] and source["sync"]:
        if not source["ingest_dir"] and source["delete"]:
            raise CvmfsError("ingest with a deleting sync needs source.ingest_dir in %s (the sync must leave the "
                             "ingested tree alone)" % path)
        if source["ingest_dir"] and source["ingest_dir"] not in source["exclude"]:
            # the mirror must neither delete nor overwrite what ingest put there
            source["exclude"] = list(source["exclude"]) + [source["ingest_dir"]]
    return config


def read_credentials(path):
    """``{"AWS_ACCESS_KEY_ID": .., "AWS_SECRET_ACCESS_KEY": ..}`` from a KEY=VALUE file (mode 0600)."""
    if not path:
        return {}
    values = {}
    try:
        with open(path) as handle:
            for line in handle:
                line = line.strip()
                if not line or line.startswith("#") or "=" not in line:
                    continue
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip().strip("'\"")
    except (IOError, OSError) as error:
        raise CvmfsError("cannot read the S3 credentials file %s: %s" % (path, error))
    wanted = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    missing = [k for k in wanted if not values.get(k)]
    if missing:
        raise CvmfsError("the S3 credentials file %s lacks %s" % (path, ", ".join(missing)))
    return dict((k, values[k]) for k in wanted + ("AWS_SESSION_TOKEN",) if values.get(k))


def tarball_base_dir(key, ingest_prefix):
    """``<ingest_prefix>a/b.tar.gz`` -> ``a/b``; ``None`` for keys that are not plain tarball paths."""
    if not key.startswith(ingest_prefix):
        return None
    rest = key[len(ingest_prefix):]
    for suffix in TARBALL_SUFFIXES:
        if rest.endswith(suffix) and len(rest) > len(suffix):
            base = rest[:-len(suffix)]
            parts = base.split("/")
            if any(p in ("", ".", "..") for p in parts) or any(ord(c) < 32 for c in base):
                return None
            return base
    return None


class Cvmfs:
    """The few ``cvmfs_server`` calls the job makes: argv lists, stdin /dev/null, never a prompt."""

    def __init__(self, config, log, env=None):
        self.binary = config["cvmfs_server"]
        self.repository = config["repository"]
        self.lease = config["lease"]
        self.retry_timeout = int(config["transaction_retry_timeout"] or 0)
        self.log = log
        self.env = dict(os.environ if env is None else env, LC_ALL="C")
        self.paths = CvmfsPaths(etc_dir=config["etc_dir"], spool_dir=config["spool_dir"])

    def run(self, args, what, stdin=None):
        """Run ``cvmfs_server *args``: stdin /dev/null, or the file object ``stdin`` copied to it."""
        argv = [self.binary] + args
        if stdin is not None:
            proc = self.feed(argv, stdin)
        else:
            try:
                proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      env=self.env, cwd="/", check=False, universal_newlines=True)
            except OSError as error:
                raise CvmfsError("cannot run %s: %s" % (self.binary, error))
        for line in (proc.stdout or "").splitlines():
            self.log.info("cvmfs_server %s: %s" % (args[0], line))
        for line in (proc.stderr or "").splitlines():
            self.log.warning("cvmfs_server %s: %s" % (args[0], line))
        return proc

    def feed(self, argv, source):
        """Run ``argv`` with ``source`` copied to its stdin, in bounded chunks; a ``CompletedProcess``.

        cvmfs_server publishes whatever tar it has read when its stdin ends, even one cut off between
        two members. So a failure while copying (a read error, a stop signal) never closes its stdin:
        cvmfs_server and all it started (its own session) are killed first, and the transaction they
        leave open is for the caller to abort.
        """
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=err, env=self.env, cwd="/",
                                        start_new_session=True)
            except OSError as error:
                raise CvmfsError("cannot run %s: %s" % (self.binary, error))
            try:
                try:
                    shutil.copyfileobj(source, proc.stdin, CHUNK)
                    proc.stdin.close()
                except BrokenPipeError:  # cvmfs_server stopped reading: its exit status and messages say why
                    with contextlib.suppress(OSError):
                        proc.stdin.close()
                proc.wait()
            except BaseException as error:
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                self.log.warning("stopped cvmfs_server %s (killed it and all it started): %s" % (argv[1], _describe(error)))
                raise
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(argv, proc.returncode, out.read().decode("utf-8", "replace"),
                                               err.read().decode("utf-8", "replace"))

    def in_transaction(self):
        return in_transaction(self.repository, self.paths)

    def has_changes(self):
        return scratch_has_changes(self.repository, self.paths)

    def open(self):
        args = ["transaction"]
        if self.retry_timeout > 0:
            args += ["-t", str(self.retry_timeout)]
        proc = self.run(args + [self.lease], "open a transaction")
        if proc.returncode == 0:
            return
        reason = {
            16: "the gateway lease on %s is busy (another publisher holds an overlapping path)" % self.lease,
            17: "another transaction is already open on %s" % self.repository,
            22: "the whitelist of %s expired (or the layout revision is wrong); re-sign it on the stratum-0" % self.repository,
            2: "the parent directory of the lease path %s does not exist in the repository" % self.lease,
            20: "the parent of the lease path %s is not a directory" % self.lease,
        }.get(proc.returncode, "cvmfs_server transaction failed")
        raise CvmfsError("cannot open a transaction on %s: %s (exit %d)" % (self.lease, reason, proc.returncode),
                         rc=proc.returncode)

    def publish(self):
        proc = self.run(["publish", self.repository], "publish")
        if proc.returncode != 0:
            raise CvmfsError("cvmfs_server publish %s failed (exit %d)" % (self.repository, proc.returncode),
                             rc=proc.returncode)

    def abort(self):
        """Abort the open transaction; True when the repository is out of it afterwards."""
        proc = self.run(["abort", "-f", self.repository], "abort")
        if proc.returncode in (0, 22):  # 22: not in a transaction (any more)
            return not self.in_transaction()
        return False

    def ingest(self, tarball, base_dir, compression=None):
        """Ingest the plain tar file ``tarball``, or with ``compression`` its uncompressed stream (``-t -``)."""
        if compression is None:
            proc = self.run(["ingest", "-t", tarball, "-b", base_dir, self.repository], "ingest")
        else:
            with open_tar(tarball, compression) as stream:
                proc = self.run(["ingest", "-t", "-", "-b", base_dir, self.repository], "ingest", stdin=stream)
        if proc.returncode != 0:
            raise CvmfsError("cvmfs_server ingest of %s into %s failed (exit %d)" % (tarball, base_dir, proc.returncode),
                             rc=proc.returncode)


class Lock:
    """Exclusive ``flock`` on a file; the kernel drops it if the process dies."""

    def __init__(self, path):
        self.path = path
        self.handle = None

    def acquire(self, wait=0.0):
        directory = os.path.dirname(self.path)
        if directory and not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        self.handle = open(self.path, "a+")
        deadline = time.time() + max(wait, 0)
        while True:
            try:
                fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except (IOError, OSError) as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.time() >= deadline:
                    self.handle.close()
                    self.handle = None
                    return False
                time.sleep(0.5)
                continue
            self.handle.seek(0)
            self.handle.truncate()
            self.handle.write("%d\n" % os.getpid())
            self.handle.flush()
            return True

    def holder(self):
        """Who holds the lock, as far as the file and /proc say: ``"the notification consumer (pid 12)"``."""
        try:
            with open(self.path) as handle:
                pid = int(handle.read().split()[0])
        except (IOError, OSError, ValueError, IndexError):
            return "an unknown process"
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as handle:
                argv = handle.read().decode("utf-8", "replace").split("\0")
        except (IOError, OSError):
            argv = []
        if __package__ and __package__ + "._events" in argv:
            return "the notification consumer (pid %d)" % pid
        if __package__ and __package__ + "._publish_job" in argv:
            return "another run of the publish job (pid %d)" % pid
        return "pid %d" % pid

    def release(self):
        if self.handle is not None:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


class PublishJob:
    def __init__(self, config, log=None, env=None):
        self.config = config
        self.source = config["source"]
        self.log = log or Log()
        self.env = dict(os.environ if env is None else env)
        self.cvmfs = Cvmfs(config, self.log, self.env)
        self.repository = config["repository"]
        self.state_dir = config["state_dir"]
        self.marker = os.path.join(self.state_dir, "transaction-open")
        self.sync_state = os.path.join(self.state_dir, "sync-state.json")
        self.sync_backup = self.sync_state + ".before-transaction"
        self.dest = os.path.join(config["mount_dir"], self.repository) + ("" if config["path"] == "/" else config["path"])
        self.summary = {"repository": self.repository, "lease": config["lease"], "published": False,
                        "sync": None, "ingested": [], "outcome": None, "message": None}
        self.child = None
        self._s3 = None
        self.previous_handlers = {}
        self.credentials = read_credentials(config["credentials_file"])

    # ---- signals --------------------------------------------------------------------------

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def _on_signal(self, signum, _frame):
        if self.child is not None and self.child.poll() is None:
            try:
                self.child.terminate()
            except OSError:
                pass
        raise JobInterrupted("stopped by signal %d" % signum)

    def install_signal_handlers(self):
        for signum in self.SIGNALS:
            self.previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def shield(self):
        """Cleanup (abort) must finish: further stop signals are ignored from here on."""
        for signum in self.SIGNALS:
            signal.signal(signum, signal.SIG_IGN)

    def restore_signal_handlers(self):
        for signum, handler in self.previous_handlers.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self.previous_handlers = {}

    # ---- S3 -------------------------------------------------------------------------------

    def s3(self):
        if self._s3 is None:
            # imported here: only ingest needs boto3 in this process, and it costs a second to load
            try:
                import boto3
                from botocore.config import Config as BotoConfig
            except ImportError as error:
                raise CvmfsError("the Python library boto3 is needed for ingest (Debian/Ubuntu: python3-boto3, "
                                 "EL: python3-boto3 from EPEL): %s" % error)
            source = self.source
            verify = source["ca_bundle"] or bool(source["validate_certs"])
            config = BotoConfig(s3={"addressing_style": source["addressing_style"]},
                                retries={"max_attempts": 5, "mode": "standard"})
            kwargs = dict(endpoint_url=source["endpoint_url"], region_name=source["region"], verify=verify, config=config)
            if self.credentials:
                kwargs.update(aws_access_key_id=self.credentials["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=self.credentials["AWS_SECRET_ACCESS_KEY"],
                              aws_session_token=self.credentials.get("AWS_SESSION_TOKEN"))
            self._s3 = boto3.session.Session().client("s3", **kwargs)
        return self._s3

    def pending_tarballs(self):
        """``[(key, etag, base_dir)]`` of tarballs waiting under the ingest prefix, oldest first."""
        prefix = self.source["ingest_prefix"]
        if not prefix:
            return []
        found = []
        try:
            paginator = self.s3().get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.source["bucket"], Prefix=prefix):
                for obj in page.get("Contents", []):
                    base = tarball_base_dir(obj["Key"], prefix)
                    if base is None:
                        if not obj["Key"].endswith("/"):
                            self.log.warning("ignoring %s under the ingest prefix: not a tarball with a plain path "
                                             "(expected <prefix><dir>/<name>.tar[.gz|.bz2|.xz|.zst])" % obj["Key"])
                        continue
                    found.append((obj["LastModified"], obj["Key"], obj.get("ETag"), base))
        except CvmfsError:
            raise
        except Exception as error:  # pylint: disable=broad-except
            raise CvmfsError("cannot list the ingest prefix s3://%s/%s: %s" % (self.source["bucket"], prefix, error))
        found.sort()
        return [(key, etag, base) for _modified, key, etag, base in found]

    def ingest_base(self, base):
        """Repository-relative directory a tarball ``base`` is unpacked into."""
        parts = [p for p in (self.config["path"], self.source["ingest_dir"], base) if p and p != "/"]
        return posixpath.normpath("/".join(p.strip("/") for p in parts))

    # ---- sync -----------------------------------------------------------------------------

    def sync_argv(self, check):
        """argv of the s3_sync command-line entry point (credentials travel in the environment)."""
        command = self.config["sync_command"] or [sys.executable, "-m", _sibling("_s3_sync_cli")]
        source = self.source
        argv = list(command) + [
            "--bucket", source["bucket"],
            "--prefix", source["prefix"] or "",
            "--dest", self.dest,
            # symlinks may point anywhere inside the repository, not only inside this publisher's path
            "--symlink-root", os.path.join(self.config["mount_dir"], self.repository),
            "--state-file", self.sync_state,
            "--max-workers", str(source["max_workers"]),
            "--addressing-style", source["addressing_style"],
            "--on-invalid", source["on_invalid"],
            "--on-missing", source["on_missing"],
        ]
        if not source["delete"]:
            argv += ["--no-delete"]
        if source["endpoint_url"]:
            argv += ["--endpoint-url", source["endpoint_url"]]
        if source["region"]:
            argv += ["--region", source["region"]]
        if source["ca_bundle"]:
            argv += ["--ca-bundle", source["ca_bundle"]]
        if not source["validate_certs"]:
            argv += ["--no-verify-ssl"]
        for pattern in source["exclude"]:
            argv += ["--exclude", pattern]
        if check:
            argv += ["--check"]
        return argv

    def run_sync(self, check):
        """Run the s3_sync entry point; returns its JSON result (``changed`` at least)."""
        env = dict(self.env)
        env.update(self.credentials)
        env["PYTHONPATH"] = os.pathsep.join(p for p in [_package_root(), env.get("PYTHONPATH")] if p)
        argv = self.sync_argv(check)
        what = "planning the sync" if check else "syncing"
        self.log.info("%s %s from s3://%s/%s to %s" % (what, self.repository, self.source["bucket"],
                                                       self.source["prefix"], self.dest))
        self.child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      env=env, cwd="/", universal_newlines=True)
        try:
            out, err = self.child.communicate()
        finally:
            try:
                rc = self.child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.child.kill()
                rc = self.child.wait()
            self.child = None
        for line in (err or "").splitlines():
            self.log.info("s3_sync: %s" % line)
        result = _last_json_object(out)
        if rc != 0:
            message = (result or {}).get("msg") or (err or "").strip().splitlines()[-1:] or ["no message"]
            if isinstance(message, list):
                message = message[0]
            raise CvmfsError("the sync %s failed (exit %d): %s" % ("plan" if check else "run", rc, message), rc=rc)
        if result is None:
            # an entry point that printed no JSON: count on the scratch area when it matters
            result = {"changed": None}
        log_missing_keys(self.log, result)
        return result

    # ---- transaction ----------------------------------------------------------------------

    def _write_marker(self):
        with open(self.marker, "w") as handle:
            handle.write("%s opened by pid %d at %s\n" % (self.config["lease"], os.getpid(), _now_text()))

    def _remove(self, path):
        try:
            os.unlink(path)
        except OSError:
            pass

    def _backup_sync_state(self):
        if os.path.exists(self.sync_state):
            shutil.copy2(self.sync_state, self.sync_backup)
        else:
            self._remove(self.sync_backup)
            with open(self.sync_backup + ".none", "w"):
                pass

    def _restore_sync_state(self):
        if os.path.exists(self.sync_backup):
            os.rename(self.sync_backup, self.sync_state)
        elif os.path.exists(self.sync_backup + ".none"):
            self._remove(self.sync_state)
        self._remove(self.sync_backup + ".none")

    def _drop_sync_backup(self):
        self._remove(self.sync_backup)
        self._remove(self.sync_backup + ".none")

    def recover(self):
        """Deal with a transaction left open before this run. Returns None or an exit status."""
        if not self.cvmfs.in_transaction():
            if os.path.exists(self.marker):
                self._remove(self.marker)
                self._restore_sync_state()
            return None
        if not os.path.exists(self.marker):
            self.summary["message"] = ("%s is in a transaction this job did not open (somebody working by hand?); "
                                       "leaving it alone. Publish or abort it (cvmfs_server abort -f %s), then the "
                                       "job runs again." % (self.repository, self.repository))
            self.log.error(self.summary["message"])
            return EXIT_NEEDS_HUMAN
        self.log.warning("an earlier run left its transaction on %s open (killed or crashed); aborting it"
                         % self.config["lease"])
        if not self.cvmfs.abort():
            self.summary["message"] = "could not abort the transaction an earlier run left open on %s" % self.repository
            self.log.error(self.summary["message"])
            return EXIT_NEEDS_HUMAN
        self._remove(self.marker)
        self._restore_sync_state()
        return None

    def missing_parents(self, tarballs):
        """Repository-relative parent directories that pending tarballs need and that do not exist yet."""
        root = os.path.join(self.config["mount_dir"], self.repository)
        needed = set()
        for _key, _etag, base in tarballs:
            parent = posixpath.dirname(self.ingest_base(base))
            if parent and not os.path.isdir(os.path.join(root, parent)):
                needed.add(parent)
        return sorted(needed)

    def transaction(self, sync, parents):
        """Open, sync and/or create directories, publish if changed, abort on anything else.

        What decides the cleanup is the repository's state, not how far this code got: a signal
        can arrive while ``cvmfs_server transaction`` is still running, after it opened the lease.
        """
        self._backup_sync_state()
        self._write_marker()
        try:
            self.cvmfs.open()
            changed = False
            if sync:
                result = self.run_sync(check=False)
                self.summary["sync"] = _sync_summary(result)
                changed = bool(result.get("changed"))
                if result.get("changed") is None:
                    changed = bool(self.cvmfs.has_changes())
            root = os.path.join(self.config["mount_dir"], self.repository)
            for parent in parents:
                target = os.path.join(root, parent)
                if not os.path.isdir(target):
                    os.makedirs(target, 0o755)
                    changed = True
                    self.log.info("created %s for pending tarballs" % target)
            # from here on a stop signal waits: an interrupted publish is worse than a late stop
            self.shield()
            if changed:
                self.log.info("publishing %s" % self.repository)
                self.cvmfs.publish()
                self.summary["published"] = True
            else:
                self.log.info("nothing changed in %s; closing the transaction without publishing" % self.config["lease"])
                if not self.cvmfs.abort():
                    raise CvmfsError("could not close the unchanged transaction on %s" % self.repository)
        except BaseException as error:
            self.shield()
            self._restore_sync_state()
            if self.cvmfs.in_transaction():
                self.log.error("%s; aborting the transaction on %s" % (_describe(error), self.config["lease"]))
                if not self.cvmfs.abort():
                    raise NeedsHuman("%s, and the abort failed too: %s is still in a transaction; run cvmfs_server "
                                     "abort -f %s by hand" % (_describe(error), self.repository, self.repository))
                self.log.info("aborted; %s is as it was before this run" % self.repository)
            self._remove(self.marker)
            raise
        self._drop_sync_backup()
        self._remove(self.marker)

    def ingest(self, tarballs):
        for key, etag, base in tarballs:
            target = self.ingest_base(base)
            url = "s3://%s/%s" % (self.source["bucket"], key)
            compression = COMPRESSION.get(_suffix(key))
            if compression == "zstd" and not shutil.which("zstd"):
                raise CvmfsError("%s is zstd-compressed, and ingesting it needs the zstd program, which is not "
                                 "installed on this publisher: install the package zstd; the tarball stays in the "
                                 "bucket until a run can ingest it" % url)
            tmp_dir = self.config["tmp_dir"] or self.state_dir
            handle, path = tempfile.mkstemp(prefix="ingest-", suffix=_suffix(key), dir=tmp_dir)
            os.close(handle)
            try:
                self.log.info("downloading %s" % url)
                try:
                    self.s3().download_file(self.source["bucket"], key, path)
                except Exception as error:  # pylint: disable=broad-except
                    raise CvmfsError("cannot download %s: %s" % (url, error))
                if compression:
                    try:
                        check_tarball(path, compression)
                    except DECOMPRESSION_ERRORS as error:
                        raise CvmfsError("%s is not a readable %s-compressed file (%s); nothing was ingested and it "
                                         "stays in the bucket: upload it again" % (url, compression, _describe(error)))
                self.log.info("ingesting %s into /%s" % (key, target))
                try:
                    self.cvmfs.ingest(path, target, compression)
                except BaseException as error:
                    self.shield()
                    if self.cvmfs.in_transaction():
                        self.log.error("ingest of %s failed (%s); aborting the transaction it left open on %s"
                                       % (key, _describe(error), self.repository))
                        if not self.cvmfs.abort():
                            raise NeedsHuman("ingest of %s failed and left %s in a transaction that could not be "
                                             "aborted" % (key, self.repository))
                    raise
                self.summary["ingested"].append(key)
                self._delete_ingested(key, etag)
            finally:
                self._remove(path)

    def _delete_ingested(self, key, etag):
        try:
            head = self.s3().head_object(Bucket=self.source["bucket"], Key=key)
            if etag and head.get("ETag") != etag:
                self.log.warning("s3://%s/%s changed while it was ingested; keeping it for the next run"
                                 % (self.source["bucket"], key))
                return
            self.s3().delete_object(Bucket=self.source["bucket"], Key=key)
        except Exception as error:  # pylint: disable=broad-except
            raise CvmfsError("ingested s3://%s/%s but could not delete it (it would be ingested again): %s"
                             % (self.source["bucket"], key, error))

    # ---- the run --------------------------------------------------------------------------

    def run(self):
        status = self.recover()
        if status is not None:
            return status
        tarballs = self.pending_tarballs()
        sync = bool(self.source["sync"])
        if sync and self.config["plan_first"] and os.path.isdir(self.dest):
            plan = self.run_sync(check=True)
            if plan.get("changed") is False:
                sync = False
                self.summary["sync"] = _sync_summary(plan)
        parents = self.missing_parents(tarballs)
        if not sync and not parents and not tarballs:
            self.log.info("%s is up to date with s3://%s/%s"
                          % (self.config["lease"], self.source["bucket"], self.source["prefix"] or ""))
            return EXIT_OK
        if sync or parents:
            self.transaction(sync, parents)
        if tarballs:
            self.ingest(tarballs)
        announce_after_publish(self.config, self.summary, self.log)
        return EXIT_OK


class NeedsHuman(CvmfsError):
    """A failure that left the repository in a state the job cannot repair by itself."""


def _describe(error):
    if isinstance(error, CvmfsError):
        return error.message
    if isinstance(error, JobInterrupted):
        return str(error)
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    return "%s: %s" % (type(error).__name__, error)


def log_missing_keys(log, result):
    """A warning per key the sync found listed but gone when fetched (``on_missing: warn``)."""
    for key in result.get("missing_keys") or []:
        log.warning("%s was listed but gone when fetched (deleted or replaced while the sync ran); "
                    "its local path was left as it was" % key)


def _sync_summary(result):
    keep = ("changed", "added", "updated", "deleted", "unchanged", "rejected", "missing", "bytes", "duration")
    return dict((k, result[k]) for k in keep if k in result)


def _suffix(key):
    for suffix in TARBALL_SUFFIXES:
        if key.endswith(suffix):
            return suffix
    return ""


class ProgramOutput:
    """The standard output of ``argv`` (``zstd -dc FILE``) as a file object; if the program fails, reading
    its end raises :class:`CvmfsError`, so a truncated stream never passes for a complete one."""

    def __init__(self, argv):
        self.argv = argv
        self.errors = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.errors)
        except OSError as error:
            self.errors.close()
            raise CvmfsError("cannot run %s: %s" % (argv[0], error))

    def read(self, size=-1):
        data = self.proc.stdout.read(size)
        if not data and self.proc.wait() != 0:
            self.errors.seek(0)
            message = self.errors.read().decode("utf-8", "replace").strip() or "no message"
            raise CvmfsError("%s failed (exit %d): %s" % (" ".join(self.argv[:2]), self.proc.returncode, message))
        return data

    def __enter__(self):
        return self

    def __exit__(self, *_exc_info):
        self.proc.stdout.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.errors.close()


def open_tar(path, compression):
    """A binary file object reading the uncompressed tar in ``path`` (``compression`` from :data:`COMPRESSION`)."""
    if compression == "zstd":  # no zstd in the standard library before Python 3.14
        return ProgramOutput(["zstd", "-d", "-c", "-q", "--", path])
    return {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open}[compression](path, "rb")


def check_tarball(path, compression):
    """Read the compressed file ``path`` through once; raises one of :data:`DECOMPRESSION_ERRORS` if corrupt.

    The checksums of gzip, bzip2, xz and zstd follow the data they cover: a corrupt tarball found only
    while it streams into cvmfs_server might be found after cvmfs_server has read the end of the tar.
    """
    with open_tar(path, compression) as stream:
        while stream.read(CHUNK):
            pass


def _last_json_object(text):
    """The last line of ``text`` that parses as a JSON object (the entry point's result), or None."""
    for line in reversed((text or "").strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    text = (text or "").strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
            return value if isinstance(value, dict) else None
        except ValueError:
            return None
    return None


def _sibling(module):
    """Dotted name of a module next to this one (``sharedsw_cvmfs._s3_sync_cli`` on hosts)."""
    return (__package__ + "." if __package__ else "") + module


def _package_root():
    """Directory that holds the top package of this file (sharedsw_cvmfs on hosts)."""
    root = os.path.dirname(os.path.abspath(__file__))
    for _part in (__package__ or "").split("."):
        root = os.path.dirname(root)
    return root


def _now_text():
    return datetime.datetime.now(tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_status(state_dir, summary):
    path = os.path.join(state_dir, "last-run.json")
    handle, tmp = tempfile.mkstemp(dir=state_dir, prefix=".last-run.")
    with os.fdopen(handle, "w") as stream:
        json.dump(summary, stream, sort_keys=True)
        stream.write("\n")
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


def main(argv=None, log=None, env=None):
    parser = argparse.ArgumentParser(prog="python3 -m sharedsw_cvmfs._publish_job",
                                     description="Sync an S3 prefix into a CernVM-FS repository and publish it.")
    parser.add_argument("--config", required=True, help="the job's JSON config")
    parser.add_argument("--wait-lock", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long for the lock held by another run or the notification consumer, then "
                             "exit 4 (default: exit 75 at once)")
    args = parser.parse_args(argv)
    log = log or Log()
    if not 0 <= args.wait_lock < float("inf"):
        log.error("bad configuration: --wait-lock must be a finite number of seconds, 0 or more; got %s"
                  % args.wait_lock)
        return EXIT_CONFIG
    try:
        config = load_config(args.config)
        if not os.path.isdir(config["state_dir"]):
            os.makedirs(config["state_dir"], 0o750)
        job = PublishJob(config, log, env)
    except CvmfsError as error:
        log.error("bad configuration: %s" % error.message)
        return EXIT_CONFIG
    lock = Lock(config["lock_file"])
    if not lock.acquire():
        if not args.wait_lock:
            log.info("another run for %s holds %s; not starting a second one"
                     % (config["repository"], config["lock_file"]))
            return EXIT_BUSY
        log.info("%s holds the publish lock %s; waiting up to %g seconds for it"
                 % (lock.holder(), config["lock_file"], args.wait_lock))
        if not lock.acquire(args.wait_lock):
            log.error("gave up waiting for the publish lock of %s: %s still holds %s after %g seconds (--wait-lock), "
                      "so this run did not sync or publish. The next run tries again; if this repeats, find out "
                      "why the lock is held that long, or raise --wait-lock (publisher_job_lock_wait of the "
                      "publisher role)" % (config["repository"], lock.holder(), config["lock_file"], args.wait_lock))
            return EXIT_LOCK_TIMEOUT
    started = time.time()
    status = EXIT_FAILED
    job.summary["started"] = _now_text()
    try:
        job.install_signal_handlers()
        status = job.run()
    except NeedsHuman as error:
        status = EXIT_NEEDS_HUMAN
        job.summary["message"] = error.message
        log.error(error.message)
    except (CvmfsError, JobInterrupted, KeyboardInterrupt) as error:
        status = EXIT_FAILED
        job.summary["message"] = _describe(error)
        log.error("publish job for %s failed: %s" % (config["lease"], _describe(error)))
    except Exception as error:  # pylint: disable=broad-except
        status = EXIT_FAILED
        job.summary["message"] = _describe(error)
        log.error("publish job for %s failed unexpectedly: %s\n%s"
                  % (config["lease"], _describe(error), traceback.format_exc()))
    finally:
        job.restore_signal_handlers()
        job.summary["outcome"] = {EXIT_OK: "ok", EXIT_NEEDS_HUMAN: "needs-human"}.get(status, "failed")
        job.summary["exit_status"] = status
        job.summary["finished"] = _now_text()
        job.summary["seconds"] = round(time.time() - started, 3)
        try:
            _write_status(config["state_dir"], job.summary)
        except (IOError, OSError) as error:
            log.warning("cannot write %s/last-run.json: %s" % (config["state_dir"], error))
        lock.release()
    if status == EXIT_OK:
        log.info("done: %s" % json.dumps(dict((k, job.summary[k]) for k in ("published", "sync", "ingested")),
                                         sort_keys=True))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
