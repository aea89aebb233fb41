"""Event-to-applied latency of the notification path on a real Ceph RGW and a real RabbitMQ.

One command (from the collection root, with the project venv active)::

    python3 bench/event_latency.py                       # a few minutes on 2 cores
    python3 bench/event_latency.py --samples 50 --debounce 0.2 2.0 --burst 500
    python3 bench/event_latency.py --persistent --samples 5 --burst 0 --debounce 2  # RGW-side queueing

What runs: the harness's Ceph RGW (Pacific, 1 mon + 1 memstore OSD) and RabbitMQ 3.10 on
loopback; the event path provisioned by the ``bucket_notification`` module (non-persistent
topic, ack level none: delivery during the upload request); the consumer and the publish job as
the publisher role installs them, run by the distribution's Python. ``cvmfs_server`` is the
TEST DOUBLE of the tests (tests/support/publish_double/cvmfs_server: publish copies a plain
directory), so a real publish through a gateway adds its own seconds on top of these numbers.

Two scenarios per debounce setting:

* **single**: one upload at a time, the next only after the previous one is published. Latency
  = from the moment ``PutObject`` returned to the moment the file exists in the published tree
  (polled every 5 ms). This is what a user who uploads one file waits.
* **burst**: ``--burst`` uploads from 16 threads at once; latency of each file from its own
  ``PutObject`` to its publication, and how many publishes the burst took.

It also prints the consumer's own figure (RGW ``eventTime`` to publish, from its status file).
Not part of the test suite.
"""

import argparse
import concurrent.futures
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.conftest import COLLECTIONS_ROOT  # noqa: E402  (makes the collection importable)
from tests.harness.ceph import CephRGW  # noqa: E402
from tests.harness.rabbitmq import RabbitMQ  # noqa: E402
from tests.integration.events.site import REPO, Site, build_package, host_python  # noqa: E402


def run_module(name, args, check=False, diff=False):
    """Run one of the collection's modules in a child process, as Ansible would."""
    payload = dict(args, _ansible_check_mode=check, _ansible_diff=diff, _ansible_tmpdir=tempfile.mkdtemp())
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": payload}, handle)
    proc = subprocess.run([sys.executable, "-m", "ansible_collections.sharedsw.cvmfs.plugins.modules." + name,
                           handle.name], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=COLLECTIONS_ROOT),
                          check=False)
    os.unlink(handle.name)
    result = json.loads(proc.stdout)

    class Result(dict):
        failed = property(lambda self: bool(self.get("failed")))

    return Result(result)


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, int(round(fraction * (len(ordered) - 1)))))
    return ordered[index]


def published(site, key):
    return os.path.exists(os.path.join(str(site.root), "published", REPO, key[len("cvmfs/"):]))


def wait_published(site, key, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if published(site, key):
            return time.time()
        time.sleep(0.005)
    raise RuntimeError("%s was not published within %ss; consumer log:\n%s" % (key, timeout, site.log()[-3000:]))


def single(site, samples, label):
    latencies = []
    for number in range(samples):
        key = "cvmfs/single/%s/%03d.txt" % (label, number)
        site.put(key, b"sample %d" % number)
        done = time.time()
        latencies.append(wait_published(site, key) - done)
        time.sleep(0.05)
    return latencies


def burst(site, count, label):
    keys = ["cvmfs/burst/%s/%02d/%04d.bin" % (label, i % 23, i) for i in range(count)]
    put_done = {}
    applied = {}
    revision = site.revision()
    stop = threading.Event()

    def watch():
        while not stop.is_set() and len(applied) < count:
            now = time.time()
            for key in keys:
                if key not in applied and key in put_done and published(site, key):
                    applied[key] = now
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()

    def put(key):
        site.put(key, key.encode())
        put_done[key] = time.time()

    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(put, keys))
    uploaded = time.time() - started
    deadline = time.time() + 600
    while len(applied) < count and time.time() < deadline:
        time.sleep(0.05)
    stop.set()
    watcher.join()
    if len(applied) < count:
        raise RuntimeError("only %d of %d burst files were published" % (len(applied), count))
    # the double copies the tree, then counts the revision: wait for the publish to finish
    while site.in_transaction() and time.time() < deadline:
        time.sleep(0.05)
    return [applied[k] - put_done[k] for k in keys], site.revision() - revision, uploaded


def report(name, values):
    return "%-34s n=%4d  median %6.2f s   p95 %6.2f s   min %5.2f s   max %6.2f s" % (
        name, len(values), statistics.median(values), percentile(values, 0.95), min(values), max(values))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--samples", type=int, default=30, help="single uploads per debounce setting")
    parser.add_argument("--burst", type=int, default=300, help="uploads in the burst scenario (0: skip)")
    parser.add_argument("--debounce", type=float, nargs="+", default=[0.2, 2.0],
                        help="debounce settings to measure (the role's default is 2 s)")
    parser.add_argument("--persistent", action="store_true",
                        help="persistent topic (RGW queues events and delivers them asynchronously; "
                             "25-30 s later on Pacific), ack level broker")
    args = parser.parse_args()
    print("host python for the consumer: %s" % host_python())
    lines = []
    with tempfile.TemporaryDirectory(prefix="event-latency-") as tmp, CephRGW() as rgw, RabbitMQ() as mq:
        package = build_package(os.path.join(tmp, "program"))
        for debounce in args.debounce:
            label = ("d%g" % debounce).replace(".", "_")
            notification = {"persistent": True, "ack_level": "broker"} if args.persistent else None
            site = Site(pathlib.Path(tmp) / label, rgw, mq, run_module, package, notification=notification,
                        debounce=debounce, max_wait=max(30.0, debounce))
            site.start().wait_connected()
            try:
                latencies = single(site, args.samples, label)
                kind = ", persistent topic" if args.persistent else ""
                lines.append(report("single upload, debounce %gs%s" % (debounce, kind), latencies))
                print(lines[-1], flush=True)
                lag = site.status().get("lag_seconds", {})
                if args.burst:
                    latencies, publishes, uploaded = burst(site, args.burst, label)
                    lines.append(report("burst of %d, debounce %gs" % (args.burst, debounce), latencies)
                                 + "   %d publish(es), uploads took %.1f s" % (publishes, uploaded))
                    print(lines[-1], flush=True)
                time.sleep(1.5)  # the status file is rewritten at most once a second
                counters = site.status().get("counters", {})
                lines.append("%-34s consumer: last lag eventTime->publish %s s (max %s s); %d events, %d publishes"
                             % ("", lag.get("last_median"), site.status().get("lag_seconds", {}).get("max"),
                                counters.get("events_received", 0), counters.get("publishes", 0)))
                print(lines[-1], flush=True)
            finally:
                site.stop()
    print("\nEvent-to-applied latency (PutObject returned -> file in the published tree; cvmfs_server = TEST DOUBLE)")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
