"""Hosts and services of the full-stack scenario."""

import json
import os
import sys

import boto3
import pytest

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))  # for tests.support

from tests.support.testinfra_hosts import lab_host  # noqa: E402  pylint: disable=wrong-import-position

stratum0 = lab_host("fs-s0")
publisher = lab_host("fs-pub")
stratum1 = lab_host("fs-s1")
squid = lab_host("fs-squid")
client = lab_host("fs-client")


def _service(kind):
    """What molecule/shared/lab_services.py recorded of the harness's ``kind`` server."""
    path = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "services", kind, "service.json")
    with open(path) as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def s3():
    """boto3 client of the harness's Ceph RGW (the lab's source bucket), from this machine."""
    rgw = _service("ceph")
    return boto3.client("s3", endpoint_url=rgw["local"], region_name=rgw["region"],
                        aws_access_key_id=rgw["access_key"], aws_secret_access_key=rgw["secret_key"])


@pytest.fixture(scope="module")
def broker_queue_depth():
    """How many messages wait in a queue of the harness's RabbitMQ (the lab's broker), asked from
    this machine with a passive declare: ``broker_queue_depth(queue)``."""
    import pika
    mq = _service("rabbitmq")
    host, port = mq["local"].rsplit("/", 1)[-1].rsplit(":", 1)
    params = pika.ConnectionParameters(host=host, port=int(port),
                                       credentials=pika.PlainCredentials(mq["username"], mq["password"]))

    def depth(queue):
        connection = pika.BlockingConnection(params)
        try:
            return connection.channel().queue_declare(queue, passive=True).method.message_count
        finally:
            connection.close()
    return depth
