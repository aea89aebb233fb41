"""The publish job announces what it published to the stratum-1s: real job, real S3 (SeaweedFS),
real RabbitMQ; ``cvmfs_server`` is the TEST DOUBLE of test_publish_job.py, which also writes the
stratum-0's ``.cvmfspublished`` (fake hashes) into the directory of a file:// CVMFS_STRATUM0."""

import json
import os

import pytest

from tests.integration.events.helpers import drain, unique

from .test_publish_job import REPO, Site, package_dir  # noqa: F401  pylint: disable=unused-import

pytestmark = pytest.mark.integration


@pytest.fixture
def announcing(tmp_path, seaweedfs, rabbitmq, package_dir):  # noqa: F811  pylint: disable=redefined-outer-name
    """A publisher whose job announces on a fresh exchange, and a queue bound to it (a stratum-1)."""
    site = Site(tmp_path, seaweedfs, package_dir)
    stratum0 = tmp_path / "stratum0"
    stratum0.mkdir()
    conf = site.root / "etc/cvmfs/repositories.d" / REPO / "server.conf"
    conf.write_text(conf.read_text() + "CVMFS_STRATUM0=file://%s\n" % stratum0)
    password = tmp_path / "announce-password"
    password.write_text(rabbitmq.password + "\n")
    site.exchange, site.queue = unique("cvmfs-publications"), unique("stratum1")
    site.config["announce"] = {"exchange": site.exchange,
                               "amqp": {"host": rabbitmq.host, "port": rabbitmq.port, "username": rabbitmq.user,
                                        "password_file": str(password)}}
    connection = rabbitmq.connection()
    try:
        channel = connection.channel()
        channel.exchange_declare(site.exchange, exchange_type="topic", durable=True)
        channel.queue_declare(site.queue, durable=True)
        channel.queue_bind(site.queue, site.exchange, routing_key="#")
    finally:
        connection.close()
    site.mq = rabbitmq
    site.stratum0_url = "file://%s" % stratum0
    return site


def test_a_publish_is_announced_with_its_revision(announcing):
    announcing.put("cvmfs/README", b"hello\n")
    result = announcing.run()
    assert result.returncode == 0, result.log
    (method, properties, body), = drain(announcing.mq, announcing.queue, expect=1, timeout=10)
    assert json.loads(body) == {"repository": REPO, "revision": 2, "stratum0_url": announcing.stratum0_url}
    assert method.routing_key == REPO
    assert properties.delivery_mode == 2 and properties.message_id and properties.content_type == "application/json"
    assert "announced revision 2 of %s" % REPO in result.log


def test_a_failed_publish_and_a_run_with_nothing_to_do_announce_nothing(announcing):
    announcing.put("cvmfs/README", b"hello\n")
    failed = announcing.run(fail=["publish"])
    assert failed.returncode == 1, failed.log
    assert drain(announcing.mq, announcing.queue, expect=1, timeout=3) == []
    assert announcing.run().returncode == 0
    assert len(drain(announcing.mq, announcing.queue, expect=1, timeout=10)) == 1
    idle = announcing.run()
    assert idle.returncode == 0 and "up to date" in idle.log
    assert drain(announcing.mq, announcing.queue, expect=1, timeout=3) == []


def test_a_broker_that_is_down_only_costs_a_warning(announcing):
    announcing.config["announce"]["amqp"]["port"] = _closed_port()
    announcing.put("cvmfs/README", b"hello\n")
    result = announcing.run()
    assert result.returncode == 0, result.log
    assert announcing.published("README").read_bytes() == b"hello\n"
    assert announcing.last_run()["outcome"] == "ok"
    assert "could not announce the new revision of %s to the stratum-1s: cannot reach the AMQP broker" % REPO \
        in result.log
    assert "next timed snapshot" in result.log


def _closed_port():
    """A loopback port nothing listens on (bound, then closed, by this process)."""
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_no_stratum1_listening_is_a_warning_not_a_failure(announcing):
    announcing.config["announce"]["exchange"] = unique("nobody-listens")
    announcing.put("cvmfs/README", b"hello\n")
    result = announcing.run()
    assert result.returncode == 0, result.log
    assert "no queue is bound to the exchange" in result.log


def test_without_announce_settings_nothing_is_announced(announcing):
    del announcing.config["announce"]
    announcing.put("cvmfs/README", b"hello\n")
    result = announcing.run()
    assert result.returncode == 0, result.log
    assert drain(announcing.mq, announcing.queue, expect=1, timeout=3) == []
    assert "announced revision" not in result.log and "could not announce" not in result.log
    assert os.path.exists(str(announcing.published("README")))
