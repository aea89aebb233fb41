# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Command line over the S3 sync engine (the publisher's timer and notification consumer).

Internal to sharedsw.cvmfs; may change in any release. No Ansible import.

A host program, also imported by the consumer's publish step (``_event_job``): must not import
Ansible (``ansible``, ``ansible_collections``; relative imports only) nor the publish job or the
consumer (``_publish_*``, ``_event*``).

Run it as a module of whatever package the module_utils files are installed as (the files use
relative imports only), e.g. with the collection on ``PYTHONPATH``::

    python3 -m ansible_collections.sharedsw.cvmfs.plugins.module_utils._s3_sync_cli \\
        --endpoint-url https://rgw.example.org --bucket software --prefix cvmfs/ \\
        --dest /cvmfs/sw.example.org --state-file /var/lib/sharedsw-cvmfs/s3-sync/sw.json

or, as the publisher role installs it (in the host-program archive ``sharedsw-cvmfs.pyz``)::

    PYTHONPATH=/usr/local/lib/sharedsw-cvmfs/sharedsw-cvmfs.pyz python3 -m sharedsw_cvmfs._s3_sync_cli ...

Credentials are never taken from the command line: use ``--profile`` or the environment
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, e.g. from a systemd
``EnvironmentFile=`` or ``LoadCredential=``), or ``--credentials-file`` (JSON with
``access_key``, ``secret_key`` and optionally ``session_token``).

The result is one JSON object on stdout (the module's return values; on failure ``failed``,
``msg`` and the module's extra keys). Exit status:

* 0 — success; ``changed`` in the JSON says whether anything changed
* 1 — the sync failed (S3 or local error, or keys listed but gone when fetched with
  ``--on-missing fail``, the default). ``dest`` is unchanged unless the JSON says
  ``partially_applied: true``: local permission problems are found before the first change
  (``local_problems``); only an error while applying (disk full, a path changed by someone
  else meanwhile) leaves some paths new and others old, each file complete
* 2 — bad usage (unknown option, bad value)
* 3 — keys were rejected and ``--on-invalid fail`` (the default): nothing was written
* 4 — another run holds the lock on the state file or on the destination directory
* 130 / 143 — interrupted (SIGINT / SIGTERM); staged downloads were removed (a signal while
  applying leaves ``dest`` part-way, as with 1)
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import json
import logging
import os
import signal
import sys

from ._common import CvmfsError
from ._s3_connect import ConnectionOptions
from ._s3_local import SyncLocked
from ._s3_sync import Options, sync

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REJECTED, EXIT_LOCKED = 0, 1, 2, 3, 4


class _Terminated(BaseException):
    pass


def _parser():
    p = argparse.ArgumentParser(
        prog="s3_sync", description="Make DEST an exact mirror of s3://BUCKET/PREFIX (see sharedsw.cvmfs.s3_sync).")
    p.add_argument("--bucket", required=True)
    p.add_argument("--prefix", default="cvmfs/")
    p.add_argument("--dest", required=True)
    p.add_argument("--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"))
    p.add_argument("--region")
    p.add_argument("--profile")
    p.add_argument("--credentials-file", help="JSON file with access_key, secret_key[, session_token]")
    p.add_argument("--ca-bundle")
    p.add_argument("--no-verify-ssl", action="store_true")
    p.add_argument("--addressing-style", choices=("path", "virtual", "auto"), default="path")
    p.add_argument("--no-delete", action="store_true", help="keep local paths whose objects disappeared")
    p.add_argument("--include", action="append", default=[])
    p.add_argument("--exclude", action="append", default=[])
    p.add_argument("--max-workers", type=int, default=32)
    p.add_argument("--state-file")
    p.add_argument("--on-invalid", choices=("fail", "skip"), default="fail")
    p.add_argument("--on-missing", choices=("fail", "warn"), default="fail",
                   help="keys listed but gone when fetched: fail (write nothing) or warn (sync the rest)")
    p.add_argument("--symlink-root")
    p.add_argument("--allow-symlink-escape", action="store_true")
    p.add_argument("--reject-case-conflicts", action="store_true")
    p.add_argument("--multipart-threshold", type=int, default=64 * 1024 * 1024)
    p.add_argument("--no-verify-checksum", action="store_true")
    p.add_argument("--retries", type=int, default=5)
    p.add_argument("--max-reported", type=int, default=100)
    p.add_argument("--check", action="store_true", help="plan only, write nothing")
    p.add_argument("--first-change", action="store_true",
                   help="with --check: only say whether anything changed, stopping at the first path to add or "
                        "update (no object metadata is read); the JSON then has changed and first_change")
    p.add_argument("--diff", action="store_true", help="include the per-path diff in the JSON")
    p.add_argument("--boto-only", action="store_true", help="send every request through boto3 (slower)")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    return p


def _credentials(path):
    try:
        with open(path) as handle:
            data = json.load(handle)
        return data["access_key"], data["secret_key"], data.get("session_token")
    except (IOError, OSError, ValueError, KeyError, TypeError) as error:
        raise CvmfsError("cannot read access_key/secret_key from the credentials file %s: %s" % (path, error))


def sync_options(args, access_key=None, secret_key=None, session_token=None):
    """``(ConnectionOptions, Options)`` from arguments parsed by :func:`_parser` and the credentials."""
    conn = ConnectionOptions(
        endpoint_url=args.endpoint_url, region=args.region, access_key=access_key, secret_key=secret_key,
        session_token=session_token, profile=args.profile, validate_certs=not args.no_verify_ssl,
        ca_bundle=args.ca_bundle, addressing_style=args.addressing_style, retries=args.retries,
        use_fast_path=False if args.boto_only else None)
    options = Options(
        bucket=args.bucket, dest=args.dest, prefix=args.prefix, delete=not args.no_delete,
        include=args.include, exclude=args.exclude, max_workers=args.max_workers,
        state_file=args.state_file, on_invalid=args.on_invalid, symlink_root=args.symlink_root,
        allow_symlink_escape=args.allow_symlink_escape, reject_case_conflicts=args.reject_case_conflicts,
        multipart_threshold=args.multipart_threshold, verify_checksum=not args.no_verify_checksum,
        retries=args.retries, max_reported=args.max_reported, check_mode=args.check, diff=args.diff,
        on_missing=args.on_missing, first_change_only=args.first_change)
    return conn, options


def main(argv=None):
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="s3_sync: %(relativeCreated)7.0f ms %(message)s")

    def terminate(signum, frame):
        raise _Terminated(signum)

    signal.signal(signal.SIGTERM, terminate)
    result = {"changed": False}
    try:
        access = secret = token = None
        if args.credentials_file:
            access, secret, token = _credentials(args.credentials_file)
        conn, options = sync_options(args, access, secret, token)
        result.update(sync(conn, options, log=logging.getLogger("s3_sync").info))
        status = EXIT_OK
    except CvmfsError as error:
        result.update(error.extra)
        result.update(failed=True, msg=error.message)
        if "rejections" in error.extra:
            status = EXIT_REJECTED
        elif isinstance(error, SyncLocked):
            status = EXIT_LOCKED
        else:
            status = EXIT_FAILED
    except (OSError, IOError) as error:
        result.update(failed=True, msg="s3_sync into %s failed: %s" % (args.dest, error))
        status = EXIT_FAILED
    except KeyboardInterrupt:
        result.update(failed=True, msg="interrupted (SIGINT); staged downloads were removed")
        status = 130
    except _Terminated:
        result.update(failed=True, msg="terminated (SIGTERM); staged downloads were removed")
        status = 143
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    sys.stdout.flush()
    return status


if __name__ == "__main__":
    raise SystemExit(main())
