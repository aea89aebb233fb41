# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health metrics: the program behind the ``sharedsw-cvmfs-metrics-<kind>`` timer of every node type.

Internal to sharedsw.cvmfs; may change in any release. Pure Python, no Ansible import; installed
on hosts by the roles in the host-program archive and run with the distribution's Python::

    python3 -m sharedsw_cvmfs._health_metrics --kind stratum0|stratum1|publisher|client \\
        --output /var/lib/prometheus/node-exporter/sharedsw_cvmfs_<kind>.prom

Writes Prometheus text-format metrics (``_metrics_text``) for node_exporter's textfile collector,
one file per node type, replaced in one rename. What it reports, per ``repository`` label:

* ``stratum0`` and ``publisher`` (repositories on a gateway) and ``stratum1``: the repository is
  checked as ``repository_info`` does (``_cvmfs_format.inspect_repository``: whitelist signed by
  the master public key, certificate listed in it, manifest signed by the certificate) from its
  storage (local storage as files, else its URL) -- success, revision, publish time, whitelist
  time left, open transaction; on a stratum-1 also the revisions and seconds it lags behind its
  stratum-0 and the age of its last snapshot;
* ``publisher``: the publish job's ``last-run.json`` (result, exit status, duration) and the
  notification consumer's ``events-status.json`` (connected, bytes held, messages waiting in its
  queue as the consumer last asked the broker, counters);
* ``client``: per mounted repository what ``cvmfs_talk`` answers (``_client_talk``).

A repository whose check fails is reported (``cvmfs_repository_check_success 0`` and the reason),
never left out; the program itself fails (exit 1) only when it cannot write the file.

As a host program it must not import Ansible (relative imports only), pika, boto3 or the
publisher's programs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import datetime
import json
import os
import time

from ._client_talk import client_metrics
from ._common import CvmfsError, describe_error, say
from ._cvmfs_format import inspect_repository
from ._cvmfs_signed import load_public_keys, read_public_key_sources
from ._cvmfs_state import CvmfsPaths, local_repositories
from ._cvmfs_time import utc_datetime
from ._http_get import HttpFetcher
from ._metrics_text import Families, write_textfile

KINDS = ("stratum0", "stratum1", "publisher", "client")
PUBLISH_STATE_DIR = "/var/lib/sharedsw-cvmfs/publish"

CATALOGUE = (
    ("cvmfs_metrics_last_run_timestamp_seconds", "gauge", "When the metrics program last ran (seconds since the epoch)."),
    ("cvmfs_repository_check_success", "gauge",
     "1 when whitelist, certificate and manifest of the repository verified with its master public key, else 0."),
    ("cvmfs_repository_check_failure", "gauge", "1 with the reason the check of the repository failed."),
    ("cvmfs_repository_revision", "gauge", "Revision of the repository (signed manifest)."),
    ("cvmfs_repository_published_timestamp_seconds", "gauge", "Publish time of that revision (seconds since the epoch)."),
    ("cvmfs_repository_seconds_since_publish", "gauge", "Seconds since that revision was published."),
    ("cvmfs_repository_in_transaction", "gauge", "1 while a transaction is open on this host."),
    ("cvmfs_whitelist_seconds_left", "gauge",
     "Seconds until clients refuse the whitelist (to the hour, as clients judge it); negative when expired."),
    ("cvmfs_replication_stratum0_revision", "gauge", "Revision of the stratum-0 this replica copies."),
    ("cvmfs_replication_revisions_behind", "gauge", "Revisions this replica is behind its stratum-0."),
    ("cvmfs_replication_lag_seconds", "gauge", "How much older the replica's revision is than the stratum-0's."),
    ("cvmfs_snapshot_age_seconds", "gauge", "Seconds since the last successful snapshot of this replica."),
    ("cvmfs_snapshot_in_progress", "gauge", "1 while a snapshot runs."),
    ("cvmfs_publish_last_success", "gauge", "1 when the last run of the publish job ended well, else 0."),
    ("cvmfs_publish_last_exit_status", "gauge", "Exit status of the last run of the publish job."),
    ("cvmfs_publish_last_duration_seconds", "gauge", "Duration of the last run of the publish job."),
    ("cvmfs_publish_last_finished_timestamp_seconds", "gauge", "When the last run of the publish job ended."),
    ("cvmfs_consumer_connected", "gauge", "1 while the notification consumer is connected to the broker."),
    ("cvmfs_consumer_held_bytes", "gauge",
     "Bytes of bucket notifications the consumer holds unacknowledged (its backlog in hand)."),
    ("cvmfs_consumer_queue_messages", "gauge",
     "Messages waiting in the consumer's queue on the broker (not counting those it holds), as last asked."),
    ("cvmfs_consumer_queue_checked_timestamp_seconds", "gauge", "When the consumer last got the queue depth from the broker."),
    ("cvmfs_consumer_events_received_total", "counter", "Bucket events the consumer received since it started."),
    ("cvmfs_consumer_publishes_total", "counter", "Publishes the consumer made since it started."),
    ("cvmfs_consumer_failures_total", "counter", "Failed batches of the consumer since it started."),
    ("cvmfs_client_up", "gauge", "1 when the client of the mounted repository answered cvmfs_talk."),
    ("cvmfs_client_revision", "gauge", "Revision the client has mounted."),
    ("cvmfs_client_cache_bytes", "gauge", "Bytes in the client cache."),
    ("cvmfs_client_cache_pinned_bytes", "gauge", "Bytes pinned in the client cache."),
    ("cvmfs_client_cache_limit_bytes", "gauge", "Size limit of the client cache."),
    ("cvmfs_client_cache_hit_ratio", "gauge", "Share of file opens served from the cache (0 to 1)."),
    ("cvmfs_client_proxy_info", "gauge", "1 for the proxy the client uses now (label proxy)."),
)


def _selected(state, kind):
    if kind == "stratum1":
        return state["type"] == "stratum1"
    if state["type"] != "stratum0":
        return False
    return (state["storage"] == "gateway") == (kind == "publisher")


def storage_url(state):
    """Where to read the repository: its local storage as ``file:``, else the URL it is served at."""
    upstream = state.get("upstream") or {}
    if upstream.get("type") == "local" and upstream.get("local_path"):
        return "file://" + os.path.abspath(upstream["local_path"])
    return state["stratum1_url"] if state["type"] == "stratum1" else state["stratum0_url"]


def public_key_sources(state, paths):
    """``CVMFS_PUBLIC_KEY`` (colon-separated files or directories), else ``<keys>/<fqrn>.pub``."""
    configured = (state.get("config") or {}).get("CVMFS_PUBLIC_KEY")
    if configured:
        return [part for part in configured.split(":") if part]
    return [os.path.join(paths.keys_dir, state["fqrn"] + ".pub")]


def _whitelist_left_when_expired(error, now):
    expires = error.extra.get("whitelist_expires")
    if not expires:
        return None
    # clients judge expiry to the hour (_cvmfs_signed.Whitelist.effective_expiry)
    return int((utc_datetime(expires).replace(minute=0, second=0) - now).total_seconds())


def repository_metrics(families, state, paths, fetcher, now):
    """The check of one repository of this host, as metrics."""
    name = state["fqrn"]
    families.set("cvmfs_repository_in_transaction", state["in_transaction"], repository=name)
    upstream = state["stratum0_url"] if state["type"] == "stratum1" else None
    try:
        keys = load_public_keys(read_public_key_sources(public_key_sources(state, paths)), "master public key")
        info = inspect_repository(storage_url(state), fetcher, keys, now, name=name, stratum0_url=upstream)
    except CvmfsError as error:
        reason = error.extra.get("reason") or "error"
        families.set("cvmfs_repository_check_success", 0, repository=name)
        families.set("cvmfs_repository_check_failure", 1, repository=name, reason=reason)
        left = _whitelist_left_when_expired(error, now) if reason == "whitelist_expired" else None
        if left is not None:
            families.set("cvmfs_whitelist_seconds_left", left, repository=name)
        say(3, "check of %s failed: %s" % (name, error.message))
        return
    families.set("cvmfs_repository_check_success", 1, repository=name)
    families.set("cvmfs_repository_revision", info["revision"], repository=name)
    if info["published_epoch"] is not None:
        families.set("cvmfs_repository_published_timestamp_seconds", info["published_epoch"], repository=name)
        families.set("cvmfs_repository_seconds_since_publish",
                     int(now.timestamp()) - info["published_epoch"], repository=name)
    families.set("cvmfs_whitelist_seconds_left", info["whitelist"]["seconds_left"], repository=name)
    _replica_metrics(families, name, info)


def _replica_metrics(families, name, info):
    replication, stratum1 = info.get("replication"), info.get("stratum1")
    if replication:
        families.set("cvmfs_replication_stratum0_revision", replication["stratum0_revision"], repository=name)
        families.set("cvmfs_replication_revisions_behind", replication["revisions_behind"], repository=name)
        families.set("cvmfs_replication_lag_seconds", replication["lag_seconds"], repository=name)
    if stratum1:
        families.set("cvmfs_snapshot_age_seconds", stratum1["snapshot_age_seconds"], repository=name)
        families.set("cvmfs_snapshot_in_progress", stratum1["snapshot_in_progress"], repository=name)


def _read_json(path):
    try:
        with open(path) as handle:
            value = json.load(handle)
    except (IOError, OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def publish_job_metrics(families, repository, last_run):
    if not isinstance(last_run.get("exit_status"), int):
        return
    families.set("cvmfs_publish_last_success", last_run.get("outcome") == "ok", repository=repository)
    families.set("cvmfs_publish_last_exit_status", last_run["exit_status"], repository=repository)
    if isinstance(last_run.get("seconds"), (int, float)):
        families.set("cvmfs_publish_last_duration_seconds", last_run["seconds"], repository=repository)
    try:
        finished = utc_datetime(last_run.get("finished"))
    except ValueError:
        finished = None
    if finished is not None:
        families.set("cvmfs_publish_last_finished_timestamp_seconds", finished.timestamp(), repository=repository)


def consumer_metrics(families, repository, status):
    families.set("cvmfs_consumer_connected", bool(status.get("connected")), repository=repository)
    held = (status.get("held_bytes") or {}).get("now")
    if isinstance(held, int):
        families.set("cvmfs_consumer_held_bytes", held, repository=repository)
    _queue_depth_metrics(families, repository, status)
    counters = status.get("counters") or {}
    for counter in ("events_received", "publishes", "failures"):
        if isinstance(counters.get(counter), int):
            families.set("cvmfs_consumer_%s_total" % counter, counters[counter], repository=repository)


def _queue_depth_metrics(families, repository, status):
    depth = status.get("queue_depth") or {}
    messages = depth.get("messages")
    try:
        checked = utc_datetime(depth.get("checked"))
    except ValueError:
        checked = None
    if not isinstance(messages, int) or checked is None:
        return
    labels = {"repository": repository, "queue": str(status.get("queue") or "")}
    families.set("cvmfs_consumer_queue_messages", messages, **labels)
    families.set("cvmfs_consumer_queue_checked_timestamp_seconds", checked.timestamp(), **labels)


def publisher_metrics(families, state_dir):
    """The publish jobs' and consumers' status files under ``<state_dir>/<repository>/``."""
    try:
        repositories = sorted(os.listdir(state_dir))
    except (IOError, OSError):
        return
    for repository in repositories:
        last_run = _read_json(os.path.join(state_dir, repository, "last-run.json"))
        if last_run:
            publish_job_metrics(families, repository, last_run)
        status = _read_json(os.path.join(state_dir, repository, "events-status.json"))
        if status:
            consumer_metrics(families, repository, status)


def collect(kind, now=None, paths=None, fetcher=None, publish_state_dir=PUBLISH_STATE_DIR, talk=None,
            mounts_file="/proc/mounts"):
    """All metrics of node type ``kind`` on this host, as :class:`Families`."""
    now = utc_datetime(now) if now is not None else datetime.datetime.now(tz=datetime.timezone.utc)
    families = Families(CATALOGUE)
    families.set("cvmfs_metrics_last_run_timestamp_seconds", int(now.timestamp()))
    if kind == "client":
        client_metrics(families, talk=talk, mounts_file=mounts_file)
        return families
    paths = paths or CvmfsPaths()
    fetcher = fetcher or HttpFetcher(proxy="DIRECT", timeout=20, retries=1, user_agent="sharedsw.cvmfs metrics")
    for state in local_repositories(paths):
        if _selected(state, kind):
            repository_metrics(families, state, paths, fetcher, now)
    if kind == "publisher":
        publisher_metrics(families, publish_state_dir)
    return families


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m sharedsw_cvmfs._health_metrics",
                                     description="Write CernVM-FS health metrics for node_exporter's textfile collector.")
    parser.add_argument("--kind", required=True, choices=KINDS, help="node type whose metrics to write")
    parser.add_argument("--output", required=True, help="the .prom file to replace")
    parser.add_argument("--publish-state-dir", default=PUBLISH_STATE_DIR,
                        help="publisher: directory of the publish jobs' state (default %(default)s)")
    args = parser.parse_args(argv)
    started = time.time()
    families = collect(args.kind, publish_state_dir=args.publish_state_dir)
    try:
        write_textfile(args.output, families.render())
    except (IOError, OSError) as error:
        say(3, "cannot write %s: %s" % (args.output, describe_error(error)))
        return 1
    say(6, "wrote %s in %.1f s" % (args.output, time.time() - started))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
