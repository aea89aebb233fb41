"""End to end on the lab: a real software tree from the S3 bucket to the stratum-0, the stratum-1 and a client.

One command, with the lab up (``make lab``) and the project venv active::

    python3 bench/publish_e2e.py                     # the whole tree: ~41,000 files, ~680 MB; ~25 min
    python3 bench/publish_e2e.py --packages numpy,sympy --change 0.01   # smaller, quicker

The tree: unpacked wheels of a scientific Python stack from the package registry (numpy, scipy,
pandas, matplotlib, scikit-learn, astropy, statsmodels, sympy, plotly, ansible, ...), laid out like
an installed prefix (``lib/python3.11/site-packages``, ``bin/`` with executables, versioned symlinks
to vendored shared libraries, ``lib64 -> lib``). Wheels are cached under --cache.

What runs, in this order, each on the same repository of the lab (lab.example.org, through the
gateway), each contender into its own directory:

1. upload the tree to ``s3://lab-software/cvmfs/bench/tree/`` (mode, mtime and symlink target in the
   objects' metadata), with the publisher's event consumer and timer stopped;
2. cold publish of the whole tree by each contender, then a change of ``--change`` of the files
   (rewritten) by each contender:
   * **ours**: one run of the publish job (``systemctl start sharedsw-cvmfs-publish@...``, what the
     timer or the event consumer starts), its breakdown from ``last-run.json`` (phases); the
     stratum-1 follows through the publication event (no hand-made snapshot);
   * **cvmfs_server ingest** of a tarball of the same tree (already on the publisher: not timed);
   * **aws s3 sync** and **rclone sync --transfers 32** into an open transaction, then
     ``cvmfs_server publish`` (Debian's awscli and rclone, installed on the publisher first);
   for the alternatives the stratum-1 snapshot is started by hand right after the publish (their
   best case; nothing announces their publishes);
3. the event path: a further change uploaded with the consumer running; time from the last upload
   to published (the stratum-0), replicated (the stratum-1) and readable on the client.

Times are wall-clock seconds of one run; the hosts share this machine's clock, so host-side
timestamps and the controller's compare directly. Ratios are contender / ours. The job's
configuration gets excludes for the alternatives' directories while the bench runs (restored at the
end, with the bench's objects and directories removed and published away). Not part of the test suite.
"""

import argparse
import concurrent.futures
import glob
import json
import os
import random
import shlex
import shutil
import stat
import subprocess
import sys
import tarfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools", "lab"))

import lab_stack  # noqa: E402  pylint: disable=wrong-import-position

REPO = "lab.example.org"
BUCKET = "lab-software"
PREFIX = "cvmfs/bench/tree/"        # -> /cvmfs/<repo>/bench/tree (the job maps cvmfs/ to the root)
PACKAGES = ("numpy,scipy,pandas,matplotlib,scikit-learn,astropy,statsmodels,sympy,networkx,pillow,h5py,"
            "plotly,django,botocore,ansible")
ALTERNATIVES = ("ingest", "aws", "rclone")
JOB_CONFIG = "/etc/sharedsw-cvmfs/publish/%s.json" % REPO
LAST_RUN = "/var/lib/sharedsw-cvmfs/publish/%s/last-run.json" % REPO
EVENTS_STATUS = "/var/lib/sharedsw-cvmfs/publish/%s/events-status.json" % REPO
MIB = 1024 * 1024


def say(text):
    print(text, flush=True)


# ------------------------------------------------------------------------------ the lab

def lab_settings():
    out = subprocess.run(["bash", "-c", '. tools/lab/common.sh; echo "$LAB_STATE_DIR"; echo "$LAB_SSH_KEY"'],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout.split("\n")
    hosts = {}
    with open(os.path.join(ROOT, "tools", "lab", "lab-hosts")) as handle:
        for line in handle:
            fields = line.split()
            if fields and not fields[0].startswith("#"):
                for group in fields[2].split(","):
                    hosts.setdefault(group, fields[1])
    return out[0], out[1], hosts


class Host:
    """A lab host over one shared ssh connection (ControlMaster), so polling costs no handshakes."""

    def __init__(self, name, address, key):
        self.name = name
        self.base = ["ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                     "-o", "LogLevel=ERROR", "-o", "ControlMaster=auto", "-o", "ControlPersist=600",
                     "-o", "ControlPath=/tmp/bench-e2e-%C", "root@" + address]
        self.scp = ["scp", "-q", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                    "-o", "LogLevel=ERROR", "-o", "ControlPath=/tmp/bench-e2e-%C"]
        self.address = address

    def sh(self, script, check=True, env=None):
        prefix = "".join("export %s=%s; " % (k, shlex.quote(v)) for k, v in (env or {}).items())
        result = subprocess.run(self.base + [prefix + script], capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            output = (result.stderr or result.stdout).strip()[-800:]
            raise SystemExit("%s: `%s` failed (exit %d): %s" % (self.name, script, result.returncode, output))
        return result.stdout

    def timed(self, script, env=None):
        """Run ``script`` on the host; its wall time in seconds (measured on the host)."""
        out = self.sh("s=$(date +%%s.%%N); %s >/tmp/bench-e2e.out 2>&1 || { tail -20 /tmp/bench-e2e.out; exit 1; }; "
                      "e=$(date +%%s.%%N); echo \"$s $e\"" % script, env=env)
        start, end = out.split()[-2:]
        return float(end) - float(start)

    def wait_until(self, condition, timeout=900, interval=0.2):
        """The time (epoch seconds) at which ``condition`` (shell) first held on the host."""
        return float(self.sh("end=$(($(date +%%s) + %d)); until %s; do [ $(date +%%s) -lt $end ] || exit 9; "
                             "sleep %s; done; date +%%s.%%N" % (timeout, condition, interval)).split()[-1])

    def put(self, local, remote):
        subprocess.run(self.scp + [local, "root@%s:%s" % (self.address, remote)], check=True)


# ------------------------------------------------------------------------------ the tree

def download_wheels(cache, packages):
    wheels = os.path.join(cache, "wheels")
    os.makedirs(wheels, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:", "--no-deps",
                    "--python-version", "3.11", "--implementation", "cp", "--platform", "manylinux2014_x86_64",
                    "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux_2_28_x86_64", "-d", wheels]
                   + packages, check=True)
    wanted = [p.lower().replace("-", "_") for p in packages]
    return sorted(w for w in glob.glob(os.path.join(wheels, "*.whl"))
                  if os.path.basename(w).split("-")[0].lower() in wanted)


def unpack_wheel(wheel, tree):
    site = os.path.join(tree, "lib", "python3.11", "site-packages")
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            name = info.filename
            if ".data/scripts/" in name:
                target = os.path.join(tree, "bin", name.split(".data/scripts/", 1)[1])
                mode = 0o755
            else:
                target = os.path.join(site, name)
                mode = (info.external_attr >> 16) & 0o777 or 0o644
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with archive.open(info) as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink)
            os.chmod(target, mode)


def add_symlinks(tree):
    """What an installed prefix has: lib64 -> lib, and unversioned names for vendored libraries."""
    os.symlink("lib", os.path.join(tree, "lib64"))
    for library in glob.glob(os.path.join(tree, "lib/python3.11/site-packages/*.libs/*.so*")):
        alias = os.path.join(os.path.dirname(library), os.path.basename(library).split("-")[0] + ".so")
        if not os.path.lexists(alias):
            os.symlink(os.path.basename(library), alias)


def build_tree(cache, packages):
    tree = os.path.join(cache, "tree-" + "-".join(sorted(packages)))
    if not os.path.isdir(tree):
        wheels = download_wheels(cache, packages)
        building = tree + ".part"
        shutil.rmtree(building, ignore_errors=True)
        for wheel in wheels:
            unpack_wheel(wheel, building)
        add_symlinks(building)
        for path in walk(building):
            os.utime(path, (1700000000, 1700000000), follow_symlinks=False)
        os.rename(building, tree)
    return tree


def walk(tree):
    for directory, dirs, files in os.walk(tree):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(directory, d))]:
            yield os.path.join(directory, name)


def make_tarball(tree, path):
    with tarfile.open(path, "w") as archive:
        for entry in sorted(os.listdir(tree)):
            archive.add(os.path.join(tree, entry), arcname=entry)


def change_files(tree, share, seed):
    """Rewrite ``share`` of the regular files (appended bytes): what a point release changes."""
    files = sorted(p for p in walk(tree) if not os.path.islink(p))
    chosen = random.Random(seed).sample(files, max(1, int(len(files) * share)))
    for path in chosen:
        with open(path, "ab") as handle:
            handle.write(b"\n# changed by the benchmark, round %d\n" % seed)
    return [os.path.relpath(p, tree) for p in chosen]


# ------------------------------------------------------------------------------ S3

def upload(s3, tree, names, workers=32):
    """PUT ``names`` (tree-relative) with mode, mtime and symlink target in metadata; seconds taken."""
    def put(name):
        path = os.path.join(tree, name)
        info = os.lstat(path)
        metadata = {"mode": "%o" % stat.S_IMODE(info.st_mode), "mtime": str(int(info.st_mtime))}
        if stat.S_ISLNK(info.st_mode):
            metadata["symlink-target"] = os.readlink(path)
            body = b""
        else:
            with open(path, "rb") as handle:
                body = handle.read()
        s3.put_object(Bucket=BUCKET, Key=PREFIX + name, Body=body, Metadata=metadata)
    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(put, names))
    return time.time() - started


def delete_prefix(s3, prefix):
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=BUCKET, Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys, "Quiet": True})


# ------------------------------------------------------------------------------ contenders

class Bench:
    def __init__(self, args):
        state_dir, key, addresses = lab_settings()
        services = os.path.join(state_dir, "lab-services")
        self.rgw = lab_stack.read_service(services, "ceph")
        self.s3 = lab_stack.s3_client(self.rgw)
        self.pub = Host("publisher", addresses["publishers"], key)
        self.s1 = Host("stratum-1", addresses["stratum1"], key)
        self.client = Host("client", addresses["clients"], key)
        self.s0_url = "http://%s/cvmfs/%s" % (addresses["stratum0"], REPO)
        self.s1_url = "http://%s/cvmfs/%s" % (addresses["stratum1"], REPO)
        self.args = args
        self.rows = []
        self.s3_env = {"AWS_ACCESS_KEY_ID": self.rgw["access_key"], "AWS_SECRET_ACCESS_KEY": self.rgw["secret_key"],
                       "AWS_DEFAULT_REGION": self.rgw["region"], "AWS_EC2_METADATA_DISABLED": "true",
                       "RCLONE_CONFIG_B_TYPE": "s3", "RCLONE_CONFIG_B_PROVIDER": "Ceph",
                       "RCLONE_CONFIG_B_ENDPOINT": self.rgw["remote"], "RCLONE_CONFIG_B_ACCESS_KEY_ID":
                       self.rgw["access_key"], "RCLONE_CONFIG_B_SECRET_ACCESS_KEY": self.rgw["secret_key"]}

    # -- the lab around the contenders

    def automatic_publishing(self, on):
        verb = "start" if on else "stop"
        self.pub.sh("systemctl %s sharedsw-cvmfs-events@%s.service sharedsw-cvmfs-publish@%s.timer" % (verb, REPO, REPO))

    def exclude_alternatives(self, on):
        excludes = ["bench/%s/*" % name for name in ALTERNATIVES] + ["bench/%s" % name for name in ALTERNATIVES]
        script = ("import json,sys; p=%r; c=json.load(open(p)); ex=%r; on=%r; "
                  "c['source']['exclude']=[e for e in c['source']['exclude'] if e not in ex]+(ex if on else []); "
                  "json.dump(c,open(p,'w'),indent=2)" % (JOB_CONFIG, excludes, on))
        self.pub.sh("python3 -c %s" % shlex.quote(script))

    def tools_on_publisher(self):
        self.pub.sh("command -v aws >/dev/null && command -v rclone >/dev/null || "
                    "DEBIAN_FRONTEND=noninteractive apt-get install -y -q awscli rclone")
        return self.pub.sh("aws --version | cut -d' ' -f1; rclone --version | head -1").split("\n")[:2]

    def snapshot_by_hand(self):
        return self.s1.timed("cvmfs_server snapshot %s" % REPO)

    def wait_replica(self, revision, since):
        while lab_stack.manifest_revision(self.s1_url) < revision:
            time.sleep(0.1)
        return time.time() - since

    # -- the contenders; each returns {phase: seconds}

    def ours(self):
        before = lab_stack.manifest_revision(self.s0_url)
        total = self.start_job()
        done = time.time()
        last_run = json.loads(self.pub.sh("cat %s" % LAST_RUN))
        if not last_run.get("published"):
            raise SystemExit("the publish job did not publish: %s" % last_run)
        revision = lab_stack.manifest_revision(self.s0_url)
        assert revision > before, (before, revision)
        ran = last_run["phases"]
        phases = {"plan": ran.get("plan"), "open": ran.get("open"), "sync": ran.get("sync"), "publish": ran.get("publish")}
        phases["total"] = total
        phases["replica"] = self.wait_replica(revision, done)
        return phases

    def start_job(self):
        """One run of the publish job, as its unit runs it (same program, configuration and lock); its
        wall time. Not through ``systemctl start``: in nspawn lab hosts systemd sometimes cannot kill
        the finished unit's (empty) cgroup and waits TimeoutStopSec before ``start`` returns."""
        return self.pub.timed("PYTHONPATH=/usr/local/lib/sharedsw-cvmfs/sharedsw-cvmfs.pyz LC_ALL=C.UTF-8 "
                              "python3 -m sharedsw_cvmfs._publish_job --config %s --wait-lock 3600" % JOB_CONFIG)

    def ingest(self, tarball_on_host, first):
        """A tarball into bench/ingest; a new version replaces the old one, in two transactions
        (the gateway refuses ``-d`` and ``-t`` of the same path in one)."""
        phases = {}
        if not first:
            phases["delete"] = self.pub.timed("cvmfs_server ingest -d bench/ingest %s" % REPO)
        phases["publish"] = self.pub.timed("cvmfs_server ingest -t %s -b bench/ingest %s" % (tarball_on_host, REPO))
        phases["total"] = sum(phases.values())
        phases["replica"] = self.snapshot_by_hand()
        return phases

    def sync_then_publish(self, command):
        phases = {"open": self.pub.timed("cvmfs_server transaction %s" % REPO)}
        try:
            phases["sync"] = self.pub.timed(command, env=self.s3_env)
        except SystemExit:
            self.pub.sh("cvmfs_server abort -f %s" % REPO, check=False)
            raise
        phases["publish"] = self.pub.timed("cvmfs_server publish %s" % REPO)
        phases["total"] = sum(phases.values())
        phases["replica"] = self.snapshot_by_hand()
        return phases

    def aws(self):
        return self.sync_then_publish("aws s3 sync --only-show-errors --endpoint-url %s s3://%s/%s /cvmfs/%s/bench/aws/"
                                      % (self.rgw["remote"], BUCKET, PREFIX, REPO))

    def rclone(self):
        return self.sync_then_publish("rclone sync -M --links --transfers 32 --checkers 32 b:%s/%s /cvmfs/%s/bench/rclone/"
                                      % (BUCKET, PREFIX, REPO))

    def fidelity(self, name):
        """Exec bits and symlinks as uploaded? (aws s3 sync keeps neither.)"""
        base = "/cvmfs/%s/bench/%s" % (REPO, name)
        out = self.pub.sh("find %s -type l | wc -l; find %s -type f -perm -u+x | wc -l" % (base, base))
        links, executables = out.split()
        return int(links), int(executables)

    # -- rounds

    def round(self, label, tarball, first):
        say("\n== %s" % label)
        results = {}
        results["ours"] = self.ours()
        say("   ours            %s" % fmt(results["ours"]))
        results["ingest"] = self.ingest(tarball, first)
        say("   ingest          %s" % fmt(results["ingest"]))
        results["aws"] = self.aws()
        say("   aws s3 sync     %s" % fmt(results["aws"]))
        results["rclone"] = self.rclone()
        say("   rclone sync     %s" % fmt(results["rclone"]))
        self.rows.append((label, results))

    def event_path(self, tree, share):
        """A change uploaded with the consumer running: upload end -> stratum-0 -> stratum-1 -> client."""
        self.automatic_publishing(True)
        self.consumer_idle()
        names = change_files(tree, share, seed=3)
        stamp = "bench-stamp-%d" % int(time.time())
        with open(os.path.join(tree, stamp), "w") as handle:
            handle.write("last upload of the event round\n")
        upload(self.s3, tree, names)
        upload(self.s3, tree, [stamp])
        uploaded = time.time()
        path = "/cvmfs/%s/bench/tree/%s" % (REPO, stamp)
        on_s0 = self.pub.wait_until("test -e %s" % path)   # the publisher remounts what it published
        revision = lab_stack.manifest_revision(self.s0_url)   # the stamp's revision, or a later one
        while lab_stack.manifest_revision(self.s1_url) < revision:
            time.sleep(0.1)
        on_s1 = time.time()
        on_client = self.client.wait_until("test -e %s" % path, interval=0.5)
        os.unlink(os.path.join(tree, stamp))
        return len(names), {"stratum-0": on_s0 - uploaded, "stratum-1": on_s1 - uploaded, "client": on_client - uploaded}

    def consumer_idle(self):
        """Wait until the (re)started consumer has run its full sync on connect and drained what the
        queue held (the bench's own uploads while it was stopped): its status file says idle."""
        unit = "sharedsw-cvmfs-events@%s.service" % REPO
        pid = self.pub.sh("systemctl show -p MainPID --value %s" % unit).strip()
        check = ("import json,sys; s=json.load(open(%r)); sys.exit(0 if s.get('pid')==%s and s.get('state')=='idle' "
                 "and s['counters']['batches']>=1 else 1)" % (EVENTS_STATUS, pid))
        self.pub.wait_until("python3 -c %s 2>/dev/null" % shlex.quote(check), interval=0.5)

    def clean_up(self):
        say("\n== cleaning up: the bench's objects and directories leave the bucket and the repository")
        self.exclude_alternatives(False)
        delete_prefix(self.s3, "cvmfs/bench/")
        self.automatic_publishing(False)
        self.start_job()
        self.automatic_publishing(True)
        if self.pub.sh("test -e /cvmfs/%s/bench && echo left" % REPO, check=False).strip():
            raise SystemExit("/cvmfs/%s/bench is still in the repository after the clean-up" % REPO)


def fmt(phases):
    return "  ".join("%s %.1f s" % (k, v) for k, v in phases.items())


def table(rows):
    header = ("round", "contender", "plan", "open", "sync|rm", "publish", "total", "+replica", "ratio")
    say("\n%-20s %-22s %7s %7s %8s %8s %8s %9s %7s" % header)
    for label, results in rows:
        ours = results["ours"]["total"]
        for name, title in (("ours", "ours (publish job)"), ("ingest", "cvmfs_server ingest"),
                            ("aws", "aws s3 sync + publish"), ("rclone", "rclone sync + publish")):
            p = results[name]
            say("%-20s %-22s %7s %7s %8s %8s %8.1f %9.1f %7s" % (
                label, title, num(p.get("plan")), num(p.get("open")), num(p.get("sync", p.get("delete"))), num(p.get("publish")), p["total"],
                p["total"] + p["replica"], "%.2fx" % (p["total"] / ours)))
            label = ""


def num(value):
    return "-" if value is None else "%.1f" % value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--packages", default=PACKAGES, help="comma-separated wheels the tree is made of")
    parser.add_argument("--change", type=float, default=0.01, help="share of the files the change rounds rewrite")
    parser.add_argument("--cache", default="/var/cache/sharedsw-cvmfs-bench", help="wheels and unpacked trees")
    args = parser.parse_args()
    bench = Bench(args)
    packages = args.packages.split(",")
    tree = build_tree(args.cache, packages)
    work = tree + ".run"
    shutil.rmtree(work, ignore_errors=True)
    subprocess.run(["cp", "-a", tree, work], check=True)   # the change rounds edit the copy
    names = sorted(os.path.relpath(p, work) for p in walk(work))
    size = sum(os.lstat(os.path.join(work, n)).st_size for n in names)
    say("tree: %d files and symlinks, %.0f MB, from %d wheels (%s)" % (len(names), size / 1e6, len(packages),
                                                                       args.packages))
    say("tools on the publisher: %s" % "; ".join(bench.tools_on_publisher()))
    tarball = os.path.join(args.cache, "tree.tar")
    bench.clean_up()   # what an interrupted run may have left
    bench.automatic_publishing(False)
    bench.exclude_alternatives(True)
    try:
        say("upload of the tree (user side, 32 threads): %.1f s" % upload(bench.s3, work, names))
        make_tarball(work, tarball)
        bench.pub.put(tarball, "/var/tmp/bench-tree.tar")
        bench.round("cold: %d entries" % len(names), "/var/tmp/bench-tree.tar", first=True)
        say("   uploaded  symlinks, executables: %d, %d" % (
            sum(os.path.islink(os.path.join(work, n)) for n in names),
            sum(not os.path.islink(os.path.join(work, n)) and os.stat(os.path.join(work, n)).st_mode & 0o100 > 0
                for n in names)))
        for name in ("ours", "aws", "rclone", "ingest"):
            say("   %-7s symlinks, executables in the repository: %d, %d" % ((name,) + bench.fidelity(
                "tree" if name == "ours" else name)))
        changed = change_files(work, args.change, seed=1)
        say("\nchange: %d files rewritten; their upload: %.1f s" % (len(changed), upload(bench.s3, work, changed)))
        make_tarball(work, tarball)
        bench.pub.put(tarball, "/var/tmp/bench-tree.tar")
        bench.round("change: %d files" % len(changed), "/var/tmp/bench-tree.tar", first=False)
        count, latency = bench.event_path(work, args.change)
        table(bench.rows)
        say("\nevent path, %d files changed and uploaded with the consumer running; seconds after the last upload:"
            % count)
        say("   published on the stratum-0 %.1f   replicated on the stratum-1 %.1f   readable on the client %.1f"
            % (latency["stratum-0"], latency["stratum-1"], latency["client"]))
        say("   (the client: through the squid, whose cached manifest lives up to the repository's TTL)")
    finally:
        bench.pub.sh("rm -f /var/tmp/bench-tree.tar", check=False)
        bench.clean_up()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
