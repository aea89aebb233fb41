# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replication-lag check: the program behind the stratum-1's ``sharedsw-cvmfs-replica-lag@<repo>`` timer.

Internal to sharedsw.cvmfs; may change in any release. Pure Python, no Ansible import; installed
on hosts by the roles as the package ``sharedsw_cvmfs`` and run with the distribution's Python::

    python3 -m sharedsw_cvmfs._replica_lag --name REPO --replica URL --stratum0 URL \\
        --max-revisions N --max-seconds T

Reads ``.cvmfspublished`` of the replica and of the stratum-0 over HTTP (no proxy unless
``--proxy``), parses both (structure only: the signature is the snapshot's business) and
compares them:

* exit 0 -- in sync, or behind within the limits (one info line);
* exit 1 -- the replica is more than ``--max-revisions`` revisions behind, or has lacked the
  stratum-0's current revision for more than ``--max-seconds`` seconds (counted from the
  stratum-0 manifest's publication time), or it is AHEAD of the stratum-0, or both claim the
  same revision with different root catalogs;
* exit 2 -- a manifest cannot be read or parsed, or names another repository.

Every outcome is one line; lines carry sd-daemon priority prefixes (``<3>`` error, ``<6>``
info) when stdout is the journal.

As a host program on stratum-1s it must not import Ansible (``ansible``,
``ansible_collections``; relative imports only), pika, boto3 or the publisher's programs
(``_publish_*``, ``_event*``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import datetime

from ._common import CvmfsError, say
from ._cvmfs_format import join_url
from ._cvmfs_signed import MANIFEST, parse_manifest
from ._http_get import HttpFetcher

EXIT_OK = 0
EXIT_LAGGING = 1
EXIT_UNREADABLE = 2

HINT = "snapshots are not keeping up (journalctl -u sharedsw-cvmfs-snapshot.service; /var/log/cvmfs/snapshots.log)"


def read_manifest(fetcher, base_url, label):
    """The parsed manifest under ``base_url``; ``CvmfsError`` naming ``label`` when unreadable."""
    url = join_url(base_url, MANIFEST)
    try:
        return parse_manifest(fetcher.get(url), url)
    except CvmfsError as error:
        raise CvmfsError("cannot read the %s manifest: %s" % (label, error.message))


def _stamp(epoch):
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def compare(name, replica, stratum0, max_revisions, max_seconds, now):
    """``(exit_status, message)`` for the parsed manifests of the replica and of the stratum-0."""
    for label, manifest in (("replica", replica), ("stratum-0", stratum0)):
        if manifest.name is not None and manifest.name != name:
            return EXIT_UNREADABLE, ("the %s manifest names repository %s, not %s; check the URL"
                                     % (label, manifest.name, name))
    behind = stratum0.revision - replica.revision
    if behind < 0:
        return EXIT_LAGGING, ("replica %s is AHEAD of its stratum-0 (replica revision %d, stratum-0 revision %d): the "
                              "stratum-0 was re-created or restored from an old copy, and clients that saw revision %d "
                              "refuse the older one; fix the stratum-0 before the next snapshot"
                              % (name, replica.revision, stratum0.revision, replica.revision))
    if behind == 0:
        if replica.root_catalog != stratum0.root_catalog:
            return EXIT_LAGGING, ("replica %s and its stratum-0 both say revision %d but have different root catalogs "
                                  "(%s vs %s): the stratum-0 was re-created; re-create the replica"
                                  % (name, replica.revision, replica.root_catalog, stratum0.root_catalog))
        return EXIT_OK, "replica %s is in sync with its stratum-0 at revision %d" % (name, replica.revision)
    waiting = None
    if stratum0.timestamp is not None:
        waiting = max(int(now - stratum0.timestamp), 0)
    detail = ("replica %s is %d revision%s behind its stratum-0 (replica revision %d, stratum-0 revision %d%s)"
              % (name, behind, "" if behind == 1 else "s", replica.revision, stratum0.revision,
                 "" if waiting is None else ", published %s, %d s ago" % (_stamp(stratum0.timestamp), waiting)))
    limits = "limits %d revisions, %d s" % (max_revisions, max_seconds)
    if behind > max_revisions or (waiting is not None and waiting > max_seconds):
        return EXIT_LAGGING, "%s, beyond the %s: %s" % (detail, limits, HINT)
    return EXIT_OK, "%s, within the %s" % (detail, limits)


def check(name, replica_url, stratum0_url, max_revisions, max_seconds, now=None, fetcher=None):
    """Read both manifests and compare them; ``(exit_status, message)``."""
    now = now if now is not None else datetime.datetime.now(tz=datetime.timezone.utc).timestamp()
    fetcher = fetcher or HttpFetcher(proxy="DIRECT", timeout=20, retries=2)
    try:
        replica = read_manifest(fetcher, replica_url, "replica")
        stratum0 = read_manifest(fetcher, stratum0_url, "stratum-0")
    except CvmfsError as error:
        return EXIT_UNREADABLE, "replication check of %s failed, %s" % (name, error.message)
    return compare(name, replica, stratum0, max_revisions, max_seconds, now)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m sharedsw_cvmfs._replica_lag",
                                     description="Fail when a CernVM-FS replica lags behind its stratum-0.")
    parser.add_argument("--name", required=True, help="repository name")
    parser.add_argument("--replica", required=True, help="base URL of the replica (holding .cvmfspublished)")
    parser.add_argument("--stratum0", required=True, help="base URL of the repository on the stratum-0")
    parser.add_argument("--max-revisions", type=int, required=True, help="fail when more revisions behind")
    parser.add_argument("--max-seconds", type=int, required=True,
                        help="fail when the stratum-0's revision has been missing for longer")
    parser.add_argument("--proxy", default="DIRECT", help="HTTP proxy URL (default: connect directly)")
    parser.add_argument("--now", help=argparse.SUPPRESS)  # tests: ISO time instead of the clock
    args = parser.parse_args(argv)
    now = None
    if args.now:
        now = datetime.datetime.strptime(args.now, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp()
    fetcher = HttpFetcher(proxy=args.proxy, timeout=20, retries=2)
    status, message = check(args.name, args.replica, args.stratum0, args.max_revisions, args.max_seconds, now, fetcher)
    say(6 if status == EXIT_OK else 3, message)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
