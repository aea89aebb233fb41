"""RabbitMQ (Debian rabbitmq-server) without systemd, management API on, with its own epmd."""

import base64
import json
import os

import pika

from ._process import LOOPBACK, Service, find_binary, free_ports, http_answers, http_get, listening

CONFIG = """\
listeners.tcp.1 = {host}:{amqp_port}
management.tcp.ip = {host}
management.tcp.port = {mgmt_port}
loopback_users = none
"""


class RabbitMQ(Service):
    """``.host``, ``.port``, ``.amqp_url``, ``.mgmt_url``, ``.connection()``, ``.management(path)``;
    ``.stop()`` and ``.start()`` keep the ports and the data (durable queues and persistent messages survive)."""

    kind = "rabbitmq"
    host = LOOPBACK
    user = password = "guest"
    node = "rabbit@localhost"

    def __init__(self):
        self.server = find_binary("rabbitmq-server", debian=True)
        self.epmd_binary = find_binary("epmd", debian=True)
        super().__init__()
        self.port, self.mgmt_port, self.dist_port, self.epmd_port = free_ports(4)
        self.amqp_url = "amqp://%s:%s@%s:%d/%%2F" % (self.user, self.password, self.host, self.port)
        self.mgmt_url = "http://%s:%d" % (self.host, self.mgmt_port)
        self.epmd = self.broker = None

    def env(self):
        """The environment of the broker (and of rabbitmqctl, should a test need it)."""
        return {
            "HOME": self.path("home"), "RABBITMQ_NODENAME": self.node, "RABBITMQ_NODE_IP_ADDRESS": self.host,
            "RABBITMQ_NODE_PORT": str(self.port), "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_ADDRESS": self.host, "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_CONFIG_FILE": self.path("rabbitmq.conf"), "RABBITMQ_CONF_ENV_FILE": self.path("rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": self.path("enabled_plugins"), "RABBITMQ_MNESIA_BASE": self.path("mnesia"),
            "RABBITMQ_LOG_BASE": self.path("log"), "RABBITMQ_PID_FILE": self.path("rabbit.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def write_config(self):
        os.makedirs(self.path("home"), exist_ok=True)
        files = {"rabbitmq.conf": CONFIG.format(host=self.host, amqp_port=self.port, mgmt_port=self.mgmt_port),
                 "enabled_plugins": "[rabbitmq_management].\n", "rabbitmq-env.conf": ""}
        for name, text in files.items():
            with open(self.path(name), "w") as handle:
                handle.write(text)

    def start(self):
        """Start (or restart after ``stop()``) epmd and the broker; wait for AMQP and management."""
        self.write_config()
        self.epmd = self.daemon("epmd", [self.epmd_binary, "-address", self.host, "-port", str(self.epmd_port)])
        self.epmd.wait_listening(self.epmd_port, timeout=30)
        self.broker = self.daemon("rabbitmq", [self.server], env=self.env(), cwd=self.dir)
        rabbit_log = self.path("log", self.node + ".log")
        self.broker.wait_for(self.ready, timeout=120, what="to accept AMQP and management requests", logs=[rabbit_log])
        return self

    def ready(self):
        """AMQP and management listen (checked without connecting) and the management API answers."""
        return listening(self.port) and listening(self.mgmt_port) and http_answers(self.mgmt_url + "/api/overview")

    def stop(self):
        """Stop the broker and its epmd; ``start()`` brings both back with the same ports and data."""
        self.stop_daemons()

    def connection(self):
        """A new pika BlockingConnection as guest (the caller closes it)."""
        params = pika.ConnectionParameters(host=self.host, port=self.port, connection_attempts=1, socket_timeout=5,
                                           credentials=pika.PlainCredentials(self.user, self.password))
        return pika.BlockingConnection(params)

    def management(self, path):
        """GET ``<mgmt_url>/api/<path>`` as guest; the decoded JSON (e.g. ``management("overview")``)."""
        credentials = base64.b64encode(("%s:%s" % (self.user, self.password)).encode()).decode()
        return json.loads(http_get("%s/api/%s" % (self.mgmt_url, path), headers={"Authorization": "Basic " + credentials}))
