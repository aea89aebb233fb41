# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run of the publish job: recover, plan, transaction (sync, parents), publish or abort, ingest.

Internal to sharedsw.cvmfs; may change in any release. Pure Python (boto3 only to list, fetch and
delete tarballs), no Ansible import. What a run does and why is told in ``_publish_job`` (the
entry point, which owns the lock, the exit status and ``last-run.json``); this file owns
:class:`PublishJob` and drives ``cvmfs_server`` through the one runner, ``_cvmfs_server``. Must
not import the entry points (``_publish_job``, ``_events``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import datetime
import json
import os
import posixpath
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from . import _tarballs
from ._announce import announce_after_publish
from ._common import CvmfsError, describe_error
from ._cvmfs_server import CvmfsServer
from ._cvmfs_server_errors import CvmfsServerError
from ._cvmfs_state import CvmfsPaths, in_transaction, scratch_has_changes
from ._program_support import Log
from ._publish_config import read_credentials


EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_NEEDS_HUMAN = 3
EXIT_LOCK_TIMEOUT = 4
EXIT_BUSY = 75


class JobInterrupted(Exception):
    """A signal asked the job to stop; raised from the signal handler."""

    def __init__(self, message):
        super(JobInterrupted, self).__init__(message)
        self.message = message


class NeedsHuman(CvmfsError):
    """A failure that left the repository in a state the job cannot repair by itself."""


class Repository:
    """The job's repository, through the one ``cvmfs_server`` runner; never a prompt, output to the log."""

    def __init__(self, config, log, env=None):
        self.name = config["repository"]
        self.lease = config["lease"]
        self.retry_timeout = int(config["transaction_retry_timeout"] or 0)
        self.server = CvmfsServer(binary=config["cvmfs_server"], env=env, log=log)
        self.paths = CvmfsPaths(etc_dir=config["etc_dir"], spool_dir=config["spool_dir"])

    def in_transaction(self):
        return in_transaction(self.name, self.paths)

    def has_changes(self):
        return scratch_has_changes(self.name, self.paths)

    def open(self):
        """Open a transaction on the lease path; a :class:`CvmfsServerError` subclass says why not."""
        self.server.run("transaction", name=self.lease, retry_timeout=self.retry_timeout or None)

    def publish(self):
        # no -f (force remount): the job's publish as it always was
        self.server.run("publish", name=self.name, force_remount=False)

    def abort(self):
        """Abort the open transaction; True when the repository is out of it afterwards."""
        result = self.server.run("abort", name=self.name, check=False)
        if result.rc in (0, 22):  # 22: not in a transaction (any more)
            return not self.in_transaction()
        return False

    def ingest(self, tarball, base_dir, compression=None):
        """Ingest the plain tar file ``tarball``, or with ``compression`` its uncompressed stream (``-t -``)."""
        try:
            if compression is None:
                self.server.run("ingest", tarball=tarball, base_dir=base_dir, name=self.name)
            else:
                with _tarballs.open_tar(tarball, compression) as stream:
                    self.server.run("ingest", tarball="-", base_dir=base_dir, name=self.name, stdin=stream)
        except CvmfsServerError as error:
            raise CvmfsError("cvmfs_server ingest of %s into %s failed: %s" % (tarball, base_dir, error.message),
                             rc=error.extra.get("rc"))


class PublishJob:
    def __init__(self, config, log=None, env=None):
        self.config = config
        self.source = config["source"]
        self.log = log or Log()
        self.env = dict(os.environ if env is None else env)
        self.cvmfs = Repository(config, self.log, env)
        self.repository = config["repository"]
        self.state_dir = config["state_dir"]
        self.marker = os.path.join(self.state_dir, "transaction-open")
        self.sync_state = os.path.join(self.state_dir, "sync-state.json")
        self.sync_backup = self.sync_state + ".before-transaction"
        self.dest = os.path.join(config["mount_dir"], self.repository) + ("" if config["path"] == "/" else config["path"])
        self.summary = {"repository": self.repository, "lease": config["lease"], "published": False,
                        "sync": None, "ingested": [], "outcome": None, "message": None, "phases": {}}
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
                    base = _tarballs.tarball_base_dir(obj["Key"], prefix)
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

    @contextlib.contextmanager
    def timed(self, phase):
        """Add the seconds the block takes to ``summary["phases"][phase]`` (also when it fails)."""
        started = time.monotonic()
        try:
            yield
        finally:
            phases = self.summary["phases"]
            phases[phase] = round(phases.get(phase, 0.0) + time.monotonic() - started, 3)

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
            # the plan only decides whether to take a lease: the first path to fetch answers it
            argv += ["--check", "--first-change"]
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
            handle.write("%s opened by pid %d at %s\n" % (self.config["lease"], os.getpid(), now_text()))

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
            with self.timed("open"):
                self.cvmfs.open()
            changed = False
            if sync:
                with self.timed("sync"):
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
                with self.timed("publish"):
                    self.cvmfs.publish()
                self.summary["published"] = True
            else:
                self.log.info("nothing changed in %s; closing the transaction without publishing" % self.config["lease"])
                with self.timed("abort"):
                    closed = self.cvmfs.abort()
                if not closed:
                    raise CvmfsError("could not close the unchanged transaction on %s" % self.repository)
        except BaseException as error:
            self.shield()
            self._restore_sync_state()
            if self.cvmfs.in_transaction():
                self.log.error("%s; aborting the transaction on %s" % (describe_error(error), self.config["lease"]))
                if not self.cvmfs.abort():
                    raise NeedsHuman("%s, and the abort failed too: %s is still in a transaction; run cvmfs_server "
                                     "abort -f %s by hand" % (describe_error(error), self.repository, self.repository))
                self.log.info("aborted; %s is as it was before this run" % self.repository)
            self._remove(self.marker)
            raise
        self._drop_sync_backup()
        self._remove(self.marker)

    def ingest(self, tarballs):
        for key, etag, base in tarballs:
            target = self.ingest_base(base)
            url = "s3://%s/%s" % (self.source["bucket"], key)
            compression = _tarballs.COMPRESSION.get(_tarballs.tarball_suffix(key))
            if compression == "zstd" and not shutil.which("zstd"):
                raise CvmfsError("%s is zstd-compressed, and ingesting it needs the zstd program, which is not "
                                 "installed on this publisher: install the package zstd; the tarball stays in the "
                                 "bucket until a run can ingest it" % url)
            tmp_dir = self.config["tmp_dir"] or self.state_dir
            handle, path = tempfile.mkstemp(prefix="ingest-", suffix=_tarballs.tarball_suffix(key), dir=tmp_dir)
            os.close(handle)
            try:
                self.log.info("downloading %s" % url)
                try:
                    with self.timed("download"):
                        self.s3().download_file(self.source["bucket"], key, path)
                except Exception as error:  # pylint: disable=broad-except
                    raise CvmfsError("cannot download %s: %s" % (url, error))
                if compression:
                    try:
                        _tarballs.check_tarball(path, compression)
                    except _tarballs.DECOMPRESSION_ERRORS as error:
                        raise CvmfsError("%s is not a readable %s-compressed file (%s); nothing was ingested and it "
                                         "stays in the bucket: upload it again" % (url, compression, describe_error(error)))
                self.log.info("ingesting %s into /%s" % (key, target))
                try:
                    with self.timed("ingest"):
                        self.cvmfs.ingest(path, target, compression)
                except BaseException as error:
                    self.shield()
                    if self.cvmfs.in_transaction():
                        self.log.error("ingest of %s failed (%s); aborting the transaction it left open on %s"
                                       % (key, describe_error(error), self.repository))
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
            with self.timed("plan"):
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


def log_missing_keys(log, result):
    """A warning per key the sync found listed but gone when fetched (``on_missing: warn``)."""
    for key in result.get("missing_keys") or []:
        log.warning("%s was listed but gone when fetched (deleted or replaced while the sync ran); "
                    "its local path was left as it was" % key)


def _sync_summary(result):
    keep = ("changed", "added", "updated", "deleted", "unchanged", "rejected", "missing", "bytes", "duration")
    return dict((k, result[k]) for k in keep if k in result)


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


def now_text():
    return datetime.datetime.now(tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
