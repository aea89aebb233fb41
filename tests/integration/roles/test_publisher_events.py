"""The publisher role's notification consumers, converged for real on this machine: the event path
is provisioned on the harness's real Ceph RGW and RabbitMQ, the files land in a scratch tree, the
unit passes ``systemd-analyze verify``, and the consumer then runs as its unit would run it.

What is not real: cvmfs_server. The consumer's publish step talks to the TEST DOUBLE
tests/support/publish_double/cvmfs_server (the union mount is a plain directory). systemd does
not run here (PID 1 is not systemd), so the role's enable/start tasks are skipped.
"""

import json
import signal
import stat
import subprocess

import pytest

from tests.support.role_hosts import PublisherHost

from ._playbook import assert_converged_then_unchanged, run_playbook, systemd_verify
from ..events.helpers import queue_depth, unique, wait_for
from ..events.site import host_python

pytestmark = pytest.mark.integration

SW = "sw.example.org"
QUEUE = "cvmfs-%s_team-a" % SW


@pytest.fixture(scope="module")
def site(tmp_path_factory, ceph_rgw, rabbitmq):
    host = PublisherHost(tmp_path_factory.mktemp("publisher-events"))
    bucket = ceph_rgw.make_bucket("events-role")
    catalogue = [{"name": SW, "stratum0": "s0.example.org",
                  "publishers": [{"host": "localhost", "path": "/team-a"}, {"host": "pub2", "path": "/team-b"}],
                  "source": {"endpoint_url": ceph_rgw.endpoint_url, "region": ceph_rgw.region, "bucket": bucket,
                             "credentials": {"access_key": ceph_rgw.access_key, "secret_key": ceph_rgw.secret_key}}}]
    extra = dict(host.vars, **{
        "__publisher_python": host_python(),
        "__publisher_events_packages": [],  # python3-pika is installed here; no package manager in tests
        # one exchange per endpoint URL on RGW Pacific: the one every event test of the session uses
        "publisher_events_exchange": "cvmfs-events-test",
        "publisher_repositories": catalogue,
        "publisher_vault_enabled": False,
        "publisher_events_enabled": True,
        "publisher_events_push_endpoint": "amqp://%s:%d" % (rabbitmq.host, rabbitmq.port),
        "publisher_events_persistent": False,   # the harness's RGW is Pacific (see the module docs)
        "publisher_events_ack_level": "none",
        "publisher_events_debounce": 0.5,
        "publisher_events_amqp": {"host": rabbitmq.host, "port": rabbitmq.port, "username": rabbitmq.user,
                                  "password": rabbitmq.password},
    })
    first = run_playbook(host.work, "publisher_events.yml", extra)
    second = run_playbook(host.work, "publisher_events.yml", extra)
    return {"host": host, "root": host.root, "double": host.double, "first": first, "second": second,
            "bucket": bucket, "rgw": ceph_rgw, "mq": rabbitmq}


def test_converges_then_changes_nothing(site):
    assert_converged_then_unchanged(site["first"], site["second"])
    assert site["mq"].password not in site["first"].output + site["second"].output or site["mq"].password == "guest"


def test_event_path_and_consumer_files(site):
    config_dir = site["root"] / "etc/sharedsw-cvmfs/publish"
    config = json.loads((config_dir / (SW + ".events.json")).read_text())
    assert config["queue"] == QUEUE and config["dead_letter_exchange"] == "cvmfs-events-test.dead-letter"
    assert config["job_config"] == str(config_dir / (SW + ".json"))
    assert config["amqp"]["password_file"] == str(config_dir / (SW + ".amqp-password"))
    assert "password" not in config["amqp"]
    password = config_dir / (SW + ".amqp-password")
    assert stat.S_IMODE(password.stat().st_mode) == 0o600 and password.read_text() == site["mq"].password + "\n"
    assert queue_depth(site["mq"], QUEUE) == 0
    notifications = site["rgw"].client().get_bucket_notification_configuration(Bucket=site["bucket"])
    [entry] = notifications["TopicConfigurations"]
    assert entry["Id"] == QUEUE
    assert entry["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": "cvmfs/team-a/"}]


def test_unit_passes_systemd_analyze_verify(site):
    assert systemd_verify(site["root"] / "etc/systemd/system", ["sharedsw-cvmfs-events@%s.service" % SW]) == []
    dropin = site["root"] / "etc/systemd/system" / ("sharedsw-cvmfs-events@%s.service.d" % SW) / "owner.conf"
    assert "User=root" in dropin.read_text()


def test_the_installed_consumer_publishes_on_events(site):
    double = site["double"]
    site["host"].add_repository(SW, "team-a")
    argv, env = site["host"].unit_command("sharedsw-cvmfs-events@.service", SW)
    log = site["root"] / "consumer.log"
    with open(str(log), "w") as handle:
        proc = subprocess.Popen(argv, env=env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd="/")
    try:
        status_file = site["root"] / "var/lib/sharedsw-cvmfs/publish" / SW / "events-status.json"

        def status():
            try:
                return json.loads(status_file.read_text())
            except (IOError, OSError, ValueError):
                return {}

        wait_for(lambda: status().get("state") == "idle", 60, "the consumer to start")
        key = "cvmfs/team-a/bin/%s" % unique("tool")
        site["rgw"].client().put_object(Bucket=site["bucket"], Key=key, Body=b"#!/bin/sh\n")
        site["rgw"].client().put_object(Bucket=site["bucket"], Key="cvmfs/team-b/not-ours", Body=b"x")
        target = double / "published" / SW / key[len("cvmfs/"):]
        wait_for(target.exists, 60, "the upload to be published through the installed consumer")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    assert code == 0, log.read_text()
    assert not (double / "published" / SW / "team-b").exists()
    assert "event=batch_done" in log.read_text()
