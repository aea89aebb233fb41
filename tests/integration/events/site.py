"""One publisher with a notification consumer, in a temporary directory, against real services.

What is real: Ceph RGW (bucket, topic, notification), RabbitMQ (exchange, quorum queue,
dead-letter queue), the provisioning (the ``bucket_notification`` module, run as Ansible runs
it), the consumer and the publish job (the host-program archive exactly as the publisher role
installs it, run by the distribution's Python when it has pika and boto3), and the s3_sync
engine.

What is NOT real: ``cvmfs_server``. It is the TEST DOUBLE tests/support/publish_double/cvmfs_server
(the union mount /cvmfs/<repo> is a plain directory; ``publish`` copies it to
``published/<repo>`` and bumps a revision, ``abort`` restores the last published copy), reached
through the TEST DOUBLE wrapper ``flaky_cvmfs_server`` here, which makes ``publish`` fail while
the file ``<root>/fail-publish`` exists.
"""

import json
import os
import signal
import subprocess
import sys
import time

from tests.support.host_program import build_host_program

from .helpers import module_args, terminate, unique, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
DOUBLE = os.path.join(REPO_ROOT, "tests", "support", "publish_double", "cvmfs_server")
WRAPPER = os.path.join(HERE, "flaky_cvmfs_server")
REPO = "sw.example.org"


def host_python():
    """The distribution's Python when it has pika and boto3 (what runs on publishers), else ours."""
    for candidate in ("/usr/bin/python3",):
        if os.path.exists(candidate):
            probe = subprocess.run([candidate, "-c", "import pika, boto3"], capture_output=True, check=False)
            if probe.returncode == 0:
                return candidate
    return sys.executable


def build_package(root):
    """The host-program archive exactly as the publisher role installs it on a host (the PYTHONPATH)."""
    return build_host_program(root)


class Site:
    def __init__(self, tmp_path, rgw, mq, run_module, package_dir, notification=None, **consumer):
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.tmp = tmp_path
        self.rgw = rgw
        self.mq = mq
        self.package_dir = package_dir
        self.s3 = rgw.client()
        self.bucket = rgw.make_bucket("events")
        self.name = unique("cvmfs-ev")
        self.queue = self.name
        self.dlq = self.name + ".dead-letter"
        provisioned = run_module("bucket_notification", module_args(rgw, mq, self.name, self.bucket,
                                                                    **(notification or {})))
        assert not provisioned.failed, provisioned
        self.exchange = "cvmfs-events-test"
        self.dlx = self.exchange + ".dead-letter"
        self.root = tmp_path / "double"
        conf = self.root / "etc/cvmfs/repositories.d" / REPO
        conf.mkdir(parents=True)
        (conf / "server.conf").write_text("CVMFS_REPOSITORY_NAME=%s\n" % REPO)
        for sub in ("cvmfs", "published", "var/spool/cvmfs"):
            (self.root / sub / REPO).mkdir(parents=True)
        credentials = tmp_path / "credentials"
        credentials.write_text("AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n" % (rgw.access_key, rgw.secret_key))
        os.chmod(str(credentials), 0o600)
        password = tmp_path / "amqp-password"
        password.write_text(mq.password + "\n")
        os.chmod(str(password), 0o600)
        self.state_dir = tmp_path / "state"
        self.job = {
            "repository": REPO, "path": "/", "cvmfs_server": WRAPPER,
            "mount_dir": str(self.root / "cvmfs"), "spool_dir": str(self.root / "var/spool/cvmfs"),
            "etc_dir": str(self.root / "etc/cvmfs"), "state_dir": str(self.state_dir),
            "lock_file": str(self.state_dir / "publish.lock"), "credentials_file": str(credentials),
            "transaction_retry_timeout": 0,
            "source": {"endpoint_url": rgw.endpoint_url, "region": rgw.region, "bucket": self.bucket,
                       "prefix": "cvmfs/", "max_workers": 8},
        }
        (tmp_path / "job.json").write_text(json.dumps(self.job))
        self.consumer = dict({
            "job_config": str(tmp_path / "job.json"), "queue": self.queue, "dead_letter_exchange": self.dlx,
            "amqp": {"host": mq.host, "port": mq.port, "username": mq.user, "password_file": str(password),
                     "heartbeat": 10},
            "debounce": 0.5, "max_wait": 5, "max_keys": 1000, "prefetch": 2000, "max_attempts": 3,
            "backoff_initial": 0.2, "backoff_max": 1.0, "reconnect_max": 2,
        }, **consumer)
        self.status_file = self.state_dir / "events-status.json"
        self.process = None
        self.log_path = tmp_path / "consumer.log"

    # ---- the consumer -----------------------------------------------------------------

    def start(self):
        (self.tmp / "events.json").write_text(json.dumps(self.consumer))
        env = dict(os.environ, CVMFS_DOUBLE_ROOT=str(self.root), CVMFS_DOUBLE=DOUBLE, PYTHONPATH=self.package_dir,
                   PYTHONDONTWRITEBYTECODE="1")
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "JOURNAL_STREAM", "CVMFS_DOUBLE_FAIL"):
            env.pop(name, None)
        self.log_handle = open(str(self.log_path), "a")
        self.process = subprocess.Popen([host_python(), "-m", "sharedsw_cvmfs._events", "--config",
                                         str(self.tmp / "events.json")], env=env, cwd="/", stdin=subprocess.DEVNULL,
                                        stdout=self.log_handle, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def kill(self):
        """SIGKILL the consumer and everything it started (a crash, an OOM kill, a power cut)."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.log_handle.close()
        self.process = None

    def stop(self):
        if self.process is None:
            return None
        code = terminate(self.process)
        self.log_handle.close()
        self.process = None
        return code

    def log(self):
        return self.log_path.read_text() if self.log_path.exists() else ""

    def status(self):
        try:
            return json.loads(self.status_file.read_text())
        except (IOError, OSError, ValueError):
            return {}

    def counter(self, name):
        return self.status().get("counters", {}).get(name, 0)

    def alive(self):
        assert self.process is not None and self.process.poll() is None, "the consumer exited:\n" + self.log()[-5000:]
        return True

    def wait(self, predicate, what, timeout=90):
        def check():
            self.alive()
            return predicate()
        try:
            return wait_for(check, timeout, what, interval=0.2)
        except AssertionError as error:
            raise AssertionError("%s\n--- consumer log (tail) ---\n%s" % (error, self.log()[-6000:]))

    def wait_connected(self):
        return self.wait(lambda: self.status().get("connected") and self.status().get("state") == "idle",
                         "the consumer to connect and finish its start-up re-sync")

    # ---- the bucket and the repository ------------------------------------------------

    def put(self, key, body=b""):
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    def delete(self, key):
        self.s3.delete_object(Bucket=self.bucket, Key=key)

    def bucket_tree(self):
        """{relative path: content} of the objects below cvmfs/."""
        tree = {}
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix="cvmfs/"):
            for obj in page.get("Contents", []):
                if not obj["Key"].endswith("/"):
                    tree[obj["Key"][len("cvmfs/"):]] = self.s3.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
        return tree

    def published_tree(self):
        return _files(str(self.root / "published" / REPO))

    def union_tree(self):
        return _files(str(self.root / "cvmfs" / REPO))

    def revision(self):
        path = self.root / "published" / (REPO + ".revision")
        return int(path.read_text()) if path.exists() else 1

    def in_transaction(self):
        return (self.root / "var/spool/cvmfs" / REPO / "in_transaction.lock").exists()

    def calls(self, command=None):
        path = self.root / "calls.jsonl"
        if not path.exists():
            return []
        calls = [json.loads(line)["argv"] for line in path.read_text().splitlines()]
        return [c for c in calls if command is None or c[0] == command]

    def hang_publish(self, on=True):
        flag = self.root / "hang-publish"
        if on:
            flag.write_text("TEST DOUBLE: publish hangs while this file exists\n")
        elif flag.exists():
            flag.unlink()

    def fail_publish(self, on=True):
        flag = self.root / "fail-publish"
        if on:
            flag.write_text("TEST DOUBLE: publish fails while this file exists\n")
        elif flag.exists():
            flag.unlink()

    def publish_event(self, body, routing_key=None):
        """Put a message on the exchange as RGW would (for malformed and out-of-order events)."""
        connection = self.mq.connection()
        try:
            channel = connection.channel()
            channel.basic_publish(self.exchange, routing_key or self.name,
                                  body if isinstance(body, bytes) else body.encode())
        finally:
            connection.close()


def _files(root):
    tree = {}
    for directory, _dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(directory, name)
            with open(full, "rb") as handle:
                tree[os.path.relpath(full, root)] = handle.read()
    return tree


def event(bucket, key, name="ObjectCreated:Put", when=None):
    """An RGW-shaped event record (what Ceph Pacific sends)."""
    when = when or time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + ".%06dZ" % int((when % 1) * 1e6)
    return json.dumps({"Records": [{
        "eventVersion": "2.2", "eventSource": "ceph:s3", "awsRegion": "", "eventTime": stamp, "eventName": name,
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "test", "bucket": {"name": bucket},
               "object": {"key": key, "size": 0, "eTag": "", "sequencer": "0"}}}]})
