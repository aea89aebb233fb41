"""Benchmark s3_sync against the tools operators would otherwise script.

One command (from the collection root, with the project venv active)::

    python3 bench/s3_sync_bench.py                    # scaled down: a few minutes on 2 cores
    python3 bench/s3_sync_bench.py --full             # the issue's size: 20,000 files + 3 x 128 MiB
    python3 bench/s3_sync_bench.py --server ceph      # Ceph RGW instead of SeaweedFS
    python3 bench/s3_sync_bench.py --endpoint-url http://127.0.0.1:8333 --access-key .. --secret-key ..
    python3 bench/s3_sync_bench.py --profile          # py-spy profile of our cold sync

It builds a software-like tree in a fresh bucket (packages with bin/, lib/, share/; 1-64 KiB
files, a few big ones, symlinks; metadata as s3cmd --preserve and rclone write it: s3cmd-attrs,
mtime, mode), then times three scenarios per tool, ``--repeat`` times each: cold sync into an
empty directory, no-op re-sync, and re-sync after 1% of the objects changed. Tools: our
``s3_sync`` (its command line, installed as a package the way the publisher role installs it),
``aws s3 sync``, ``rclone sync`` (default and ``--transfers 32``), ``s3cmd sync`` and a plain
boto3 thread-pool GET loop (cold only: it has no notion of "unchanged"). It prints medians,
files/s, MB/s, peak RSS, whether exec bits, mtimes and symlinks survived, and time ratios
against ours. Not part of the test suite.
"""

import argparse
import concurrent.futures
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
ENGINE_FILES = ("_common.py", "_s3_connect.py", "_s3_fetch.py", "_s3_http.py", "_s3_keys.py", "_s3_local.py",
                "_s3_metadata.py", "_s3_plan.py", "_s3_rules.py", "_s3_sync.py", "_s3_sync_cli.py")
MIB = 1024 * 1024


# ------------------------------------------------------------------------------------ corpus

def build_corpus(files, big, big_size, seed=7):
    """[(key, size, mode, mtime, symlink target or None)] shaped like an unpacked software stack."""
    rng = random.Random(seed)
    objects = []
    package = 0
    while len(objects) < files:
        package += 1
        name = "pkg%03d-%d.%d" % (package, rng.randint(1, 9), rng.randint(0, 30))
        for number in range(rng.randint(20, 120)):
            area = rng.choice(("bin", "lib", "lib", "share/doc", "share/data", "include", "lib/python3/site"))
            size = int(1024 * 2 ** rng.uniform(0, 6))  # 1..64 KiB, log-uniform
            mode = 0o755 if area == "bin" else 0o644
            key = "%s/%s/f%04d%s" % (name, area, number, ".so" if area == "lib" else "")
            objects.append((key, size, mode, 1500000000 + rng.randint(0, 10 ** 8), None))
        objects.append(("%s/lib/libcore.so" % name, 0, 0o777, 1500000000, "f0000.so"))
    objects = objects[:files]
    for number in range(big):
        objects.append(("bigdata/blob%d.bin" % number, big_size, 0o644, 1500000000, None))
    return objects


def upload(client, bucket, objects, workers=16):
    def put(item):
        key, size, mode, mtime, target = item
        meta = {"mtime": str(mtime), "mode": "%o" % mode,
                "s3cmd-attrs": "atime:%d/ctime:%d/gid:0/gname:root/mode:%d/mtime:%d/uid:0/uname:root"
                               % (mtime, mtime, 0o100000 | mode, mtime)}
        if target:
            meta = {"symlink-target": target, "mtime": str(mtime)}
        body = os.urandom(size) if size < 4 * MIB else _big_body(size)
        if size >= 64 * MIB:
            from boto3.s3.transfer import TransferConfig
            import io
            client.upload_fileobj(io.BytesIO(body), bucket, "cvmfs/" + key, ExtraArgs={"Metadata": meta},
                                  Config=TransferConfig(multipart_threshold=64 * MIB, multipart_chunksize=32 * MIB))
        else:
            client.put_object(Bucket=bucket, Key="cvmfs/" + key, Body=body, Metadata=meta)

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(put, objects))


def _big_body(size):
    block = os.urandom(MIB)
    return (block * (size // MIB + 1))[:size]


def mutate(client, bucket, objects, fraction, rng):
    """Rewrite ``fraction`` of the small files in S3 (new size, content and mtime); ``objects``
    is updated in place so later checks compare against what S3 holds now."""
    small = [index for index, o in enumerate(objects) if o[4] is None and o[1] < 4 * MIB]
    chosen = rng.sample(small, max(1, int(len(objects) * fraction)))
    changed = []
    for index in chosen:
        key, size, mode, mtime, _target = objects[index]
        objects[index] = (key, size + 1, mode, mtime + 1, None)
        changed.append(objects[index])
    upload(client, bucket, changed)
    return len(chosen)


# ------------------------------------------------------------------------------------ tools

class Tool:
    name = "?"
    scenarios = ("cold", "noop", "changed")

    def __init__(self, ctx):
        self.ctx = ctx

    def env(self):
        env = dict(os.environ, AWS_ACCESS_KEY_ID=self.ctx.access_key, AWS_SECRET_ACCESS_KEY=self.ctx.secret_key,
                   AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
        env.pop("AWS_CA_BUNDLE", None)  # rclone refuses to start with it on http endpoints
        return env

    def reset(self, dest):
        shutil.rmtree(dest, ignore_errors=True)
        os.makedirs(dest)

    def argv(self, dest):
        raise NotImplementedError


class Ours(Tool):
    name = "s3_sync (ours)"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.lib = tempfile.mkdtemp(prefix="s3sync-bench-lib-")
        package = os.path.join(self.lib, "cvmfs_s3sync")
        os.makedirs(package)
        open(os.path.join(package, "__init__.py"), "w").close()
        for name in ENGINE_FILES:
            shutil.copy(os.path.join(ROOT, "plugins", "module_utils", name), package)
        self.state = os.path.join(tempfile.mkdtemp(prefix="s3sync-bench-state-"), "state.json")

    def reset(self, dest):
        super().reset(dest)
        if os.path.exists(self.state):
            os.unlink(self.state)

    def env(self):
        return dict(super().env(), PYTHONPATH=self.lib)

    def argv(self, dest):
        return [sys.executable, "-m", "cvmfs_s3sync._s3_sync_cli", "--endpoint-url", self.ctx.endpoint_url,
                "--bucket", self.ctx.bucket, "--prefix", "cvmfs/", "--dest", dest, "--state-file", self.state,
                "--max-workers", str(self.ctx.workers)]


class Aws(Tool):
    name = "aws s3 sync"

    def argv(self, dest):
        return ["aws", "s3", "sync", "--only-show-errors", "--delete", "--endpoint-url", self.ctx.endpoint_url,
                "s3://%s/cvmfs/" % self.ctx.bucket, dest]


class Rclone(Tool):
    def __init__(self, ctx, transfers=None):
        super().__init__(ctx)
        self.transfers = transfers
        self.name = "rclone sync" + (" --transfers %d" % transfers if transfers else "")

    def env(self):
        return dict(super().env(), RCLONE_CONFIG_B_TYPE="s3", RCLONE_CONFIG_B_PROVIDER="Other",
                    RCLONE_CONFIG_B_ENDPOINT=self.ctx.endpoint_url, RCLONE_CONFIG_B_ACCESS_KEY_ID=self.ctx.access_key,
                    RCLONE_CONFIG_B_SECRET_ACCESS_KEY=self.ctx.secret_key, RCLONE_CONFIG_B_REGION="us-east-1",
                    RCLONE_CONFIG="/dev/null")

    def argv(self, dest):
        extra = ["--transfers", str(self.transfers), "--checkers", str(self.transfers)] if self.transfers else []
        return ["rclone", "sync", "-q", "b:%s/cvmfs" % self.ctx.bucket, dest] + extra


class S3cmd(Tool):
    name = "s3cmd sync"

    def __init__(self, ctx):
        super().__init__(ctx)
        from urllib.parse import urlsplit
        host = urlsplit(ctx.endpoint_url).netloc
        self.config = tempfile.NamedTemporaryFile("w", suffix=".s3cfg", delete=False)
        self.config.write("[default]\naccess_key=%s\nsecret_key=%s\nhost_base=%s\nhost_bucket=%s\nuse_https=False\n"
                          "signature_v2=False\n" % (ctx.access_key, ctx.secret_key, host, host))
        self.config.close()

    def argv(self, dest):
        return ["s3cmd", "-c", self.config.name, "--no-progress", "-q", "sync", "--delete-removed",
                "s3://%s/cvmfs/" % self.ctx.bucket, dest + "/"]


GET_LOOP = r'''
import boto3, botocore.config, concurrent.futures as cf, os, sys
endpoint, bucket, dest, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s3 = boto3.client("s3", endpoint_url=endpoint, config=botocore.config.Config(
    max_pool_connections=workers, s3={"addressing_style": "path"}))
keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="cvmfs/")
        for o in p.get("Contents", [])]
def get(key):
    path = os.path.join(dest, key[len("cvmfs/"):])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        for chunk in s3.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(1 << 20):
            handle.write(chunk)
with cf.ThreadPoolExecutor(workers) as pool:
    list(pool.map(get, keys))
'''


class GetLoop(Tool):
    name = "boto3 GET loop (32 thr)"
    scenarios = ("cold",)

    def argv(self, dest):
        return [sys.executable, "-c", GET_LOOP, self.ctx.endpoint_url, self.ctx.bucket, dest, "32"]


# ------------------------------------------------------------------------------------ running

def run_measured(tool, dest):
    """(seconds, peak RSS in MiB, user+sys CPU seconds) of one run.

    Measured by /usr/bin/time (GNU time): a child forked straight from this (large) Python
    process would inherit its RSS high-water mark across exec.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".time") as timing:
        argv = ["/usr/bin/time", "-q", "-f", "%M %U %S", "-o", timing.name] + tool.argv(dest)
        started = time.perf_counter()
        proc = subprocess.run(argv, env=tool.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        elapsed = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError("%s failed (%s): %s" % (tool.name, proc.returncode, proc.stderr[-3000:].decode(errors="replace")))
        rss_kib, user, system = timing.read().split()[-3:]
    return elapsed, int(rss_kib) / 1024.0, float(user) + float(system)


def check_tree(dest, objects):
    """How many exec bits, mtimes and symlinks survived, and whether every file is there."""
    execs = exec_ok = mtimes = mtime_ok = links = links_ok = present = 0
    for key, size, mode, mtime, target in objects:
        path = os.path.join(dest, key)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        present += 1
        if target:
            links += 1
            links_ok += os.path.islink(path) and os.readlink(path) == target
            continue
        if mode & 0o111:
            execs += 1
            exec_ok += bool(st.st_mode & 0o111)
        mtimes += 1
        mtime_ok += int(st.st_mtime) == mtime
    return {"present": present, "exec": (exec_ok, execs), "mtime": (mtime_ok, mtimes), "links": (links_ok, links)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="20,000 files of 1-64 KiB + 3 x 128 MiB")
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--big", type=int, default=2)
    parser.add_argument("--big-size", type=int, default=32 * MIB)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--server", choices=("seaweedfs", "ceph"), default="seaweedfs")
    parser.add_argument("--endpoint-url")
    parser.add_argument("--access-key", default="testaccess")
    parser.add_argument("--secret-key", default="testsecret")
    parser.add_argument("--dest-dir", help="where the tools write (default: a temporary directory on disk)")
    parser.add_argument("--workers", type=int, default=32, help="our --max-workers")
    parser.add_argument("--tools", default="ours,aws,rclone,rclone32,s3cmd,getloop")
    parser.add_argument("--profile", action="store_true", help="profile our cold sync with py-spy and stop")
    parser.add_argument("--json", help="also write the raw results here")
    args = parser.parse_args()
    if args.full:
        args.files, args.big, args.big_size = 20000, 3, 128 * MIB

    server = None
    if not args.endpoint_url:
        if args.server == "ceph":
            from tests.harness.ceph import CephRGW as Server
        else:
            from tests.harness.seaweedfs import SeaweedFS as Server
        server = Server()
        server.__enter__()
        args.endpoint_url = server.endpoint_url
    try:
        return bench(args)
    finally:
        if server is not None:
            server.__exit__(None, None, None)


def bench(args):
    import boto3
    import botocore.config
    client = boto3.client("s3", endpoint_url=args.endpoint_url, aws_access_key_id=args.access_key,
                          aws_secret_access_key=args.secret_key, region_name="us-east-1",
                          config=botocore.config.Config(s3={"addressing_style": "path"}, max_pool_connections=32))
    bucket = "bench-%d" % int(time.time())
    client.create_bucket(Bucket=bucket)
    objects = build_corpus(args.files, args.big, args.big_size)
    total_bytes = sum(o[1] for o in objects)
    print("corpus: %d objects (%d files of 1-64 KiB, %d x %d MiB, %d symlinks), %.1f MiB, server %s"
          % (len(objects), sum(1 for o in objects if o[1] < 4 * MIB and not o[4]), args.big, args.big_size // MIB,
             sum(1 for o in objects if o[4]), total_bytes / MIB, args.endpoint_url), flush=True)
    started = time.time()
    upload(client, bucket, objects)
    print("uploaded in %.1f s" % (time.time() - started), flush=True)

    ctx = argparse.Namespace(endpoint_url=args.endpoint_url, bucket=bucket, access_key=args.access_key,
                             secret_key=args.secret_key, workers=args.workers)
    work = args.dest_dir or tempfile.mkdtemp(prefix="s3sync-bench-")
    dest = os.path.join(work, "dest")
    makers = {"ours": Ours, "aws": Aws, "rclone": Rclone, "rclone32": lambda c: Rclone(c, 32),
              "s3cmd": S3cmd, "getloop": GetLoop}
    tools = [makers[name](ctx) for name in args.tools.split(",")]

    if args.profile:
        # once sampling every thread (where the wall time goes, waiting included), once only the
        # thread holding the GIL (where our CPU goes)
        ours = Ours(ctx)
        for label, flags in (("all threads, wall time", ["--threads"]), ("GIL holder only, CPU", ["--gil"])):
            ours.reset(dest)
            out = os.path.join(work, "profile.txt")
            subprocess.run(["py-spy", "record", "-r", "250", "-f", "raw", "-o", out] + flags + ["--"] + ours.argv(dest),
                           env=ours.env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            print("== py-spy, %s ==" % label)
            summarize_profile(out)
        return 0

    rng = random.Random(11)
    results = {}
    for repeat in range(args.repeat):
        for tool in tools:
            for scenario in tool.scenarios:
                if scenario == "cold":
                    tool.reset(dest)
                elif scenario == "changed":
                    mutate(client, bucket, objects, 0.01, rng)
                seconds, rss, cpu = run_measured(tool, dest)
                results.setdefault((tool.name, scenario), []).append((seconds, rss, cpu))
                if scenario == "cold" and repeat == 0:
                    results[(tool.name, "check")] = check_tree(dest, objects)
                print("  %-24s %-8s %7.2f s  cpu %6.2f s  rss %6.1f MiB" % (tool.name, scenario, seconds, cpu, rss),
                      flush=True)
    report(tools, results, len(objects), total_bytes, args)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(dict(("%s|%s" % k, v) for k, v in results.items()), handle, indent=1)
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _fraction(pair):
    return "%d/%d" % pair if pair else "-"


def report(tools, results, count, total_bytes, args):
    ours = Ours.name
    print()
    print("| tool | scenario | median s | files/s | MB/s | CPU s | peak RSS MiB | exec bits | mtimes | symlinks | time vs ours |")
    print("|---|---|---:|---:|---:|---:|---:|---|---|---|---:|")
    for tool in tools:
        check = results.get((tool.name, "check"), {})
        for scenario in tool.scenarios:
            runs = results[(tool.name, scenario)]
            seconds = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[2] for r in runs)
            rss = max(r[1] for r in runs)
            base = results.get((ours, scenario))
            ratio = seconds / statistics.median(r[0] for r in base) if base else float("nan")
            moved = total_bytes if scenario == "cold" else 0
            print("| %s | %s | %.2f | %.0f | %s | %.2f | %.0f | %s | %s | %s | %.2fx |" % (
                tool.name, scenario, seconds, count / seconds, "%.1f" % (moved / MIB / seconds) if moved else "-",
                cpu, rss, _fraction(check.get("exec")) if scenario == "cold" else "",
                _fraction(check.get("mtime")) if scenario == "cold" else "",
                _fraction(check.get("links")) if scenario == "cold" else "", ratio))
    print("\n(files/s = objects in the prefix / median seconds; 'changed' = 1%% of the objects rewritten in S3 "
          "before the run; medians of %d runs)" % args.repeat)


def summarize_profile(path):
    import collections
    own = collections.Counter()
    inclusive = collections.Counter()
    total = 0
    for line in open(path):
        stack, count = line.rstrip().rsplit(" ", 1)
        count = int(count)
        frames = [f for f in stack.split(";") if f and not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    print("py-spy: %d samples" % total)
    print("-- self time --")
    for frame, count in own.most_common(20):
        print("%5.1f%%  %s" % (100.0 * count / total, frame))
    print("-- inclusive --")
    for frame, count in inclusive.most_common(25):
        print("%5.1f%%  %s" % (100.0 * count / total, frame))


if __name__ == "__main__":
    sys.exit(main())
