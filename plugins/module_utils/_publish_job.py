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

This file is the entry point: the command line, the lock, the exit status and ``last-run.json``.
The run itself is ``_publish_run.PublishJob``; its config ``_publish_config``; tarball names and
decompression ``_tarballs``; ``cvmfs_server`` is driven through ``_cvmfs_server``. The parts must
not import this file (the notification consumer imports the parts too, not this entry point).

As a host program it must not import Ansible (``ansible``, ``ansible_collections``): it runs
with the distribution's python3 from the host-program archive and imports its parts by
relative imports only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import json
import os
import time
import traceback

from ._common import CvmfsError, describe_error
from ._program_support import Lock, Log, write_json_file
from ._publish_config import load_config
from ._publish_run import (EXIT_BUSY, EXIT_CONFIG, EXIT_FAILED, EXIT_LOCK_TIMEOUT, EXIT_NEEDS_HUMAN, EXIT_OK,
                           JobInterrupted, NeedsHuman, PublishJob, now_text)


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
    job.summary["started"] = now_text()
    try:
        job.install_signal_handlers()
        status = job.run()
    except NeedsHuman as error:
        status = EXIT_NEEDS_HUMAN
        job.summary["message"] = error.message
        log.error(error.message)
    except (CvmfsError, JobInterrupted, KeyboardInterrupt) as error:
        status = EXIT_FAILED
        job.summary["message"] = describe_error(error)
        log.error("publish job for %s failed: %s" % (config["lease"], describe_error(error)))
    except Exception as error:  # pylint: disable=broad-except
        status = EXIT_FAILED
        job.summary["message"] = describe_error(error)
        log.error("publish job for %s failed unexpectedly: %s\n%s"
                  % (config["lease"], describe_error(error), traceback.format_exc()))
    finally:
        job.restore_signal_handlers()
        job.summary["outcome"] = {EXIT_OK: "ok", EXIT_NEEDS_HUMAN: "needs-human"}.get(status, "failed")
        job.summary["exit_status"] = status
        job.summary["finished"] = now_text()
        job.summary["seconds"] = round(time.time() - started, 3)
        try:
            write_json_file(os.path.join(config["state_dir"], "last-run.json"), job.summary)
        except (IOError, OSError) as error:
            log.warning("cannot write %s/last-run.json: %s" % (config["state_dir"], error))
        lock.release()
    if status == EXIT_OK:
        log.info("done: %s" % json.dumps(dict((k, job.summary[k]) for k in ("published", "sync", "ingested")),
                                         sort_keys=True))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
