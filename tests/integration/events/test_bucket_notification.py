"""sharedsw.cvmfs.bucket_notification run for real against the harness's Ceph RGW and RabbitMQ."""

import json

import pytest

from .helpers import drain, loopback_alias, management, module_args, queue_info, unique

pytestmark = pytest.mark.integration


@pytest.fixture
def path(ceph_rgw, rabbitmq):
    name = unique("cvmfs-t")
    return {"name": name, "bucket": ceph_rgw.make_bucket("notif")}


def test_present_idempotent_check_mode_and_delivery(ceph_rgw, rabbitmq, run_module, path):
    args = module_args(ceph_rgw, rabbitmq, path["name"], path["bucket"])
    name = path["name"]

    preview = run_module("bucket_notification", args, check=True, diff=True)
    assert preview["changed"] and not preview.failed, preview
    assert queue_info(rabbitmq, name) is None, "check mode created the queue"
    assert ceph_rgw.client().get_bucket_notification_configuration(Bucket=path["bucket"]).get("TopicConfigurations") is None

    first = run_module("bucket_notification", args, diff=True)
    assert first["changed"] and not first.failed, first
    # the exchanges are shared by the whole session (one exchange per endpoint URL): maybe created here
    assert [c for c in first["changes"] if not c.startswith("exchange ")] == [
        "queue %s.dead-letter" % name, "queue %s" % name,
        "topic %s (push-endpoint, amqp-exchange, amqp-ack-level, persistent)" % name, "notification %s" % name]
    assert first["queue_type"] == "quorum" and first["routing_key"] == name
    queue = queue_info(rabbitmq, name)
    assert queue["durable"] and queue["arguments"]["x-queue-type"] == "quorum"
    assert queue["arguments"]["x-dead-letter-exchange"] == "cvmfs-events-test.dead-letter"
    assert queue["arguments"]["x-delivery-limit"] == 20
    assert queue_info(rabbitmq, name + ".dead-letter")["durable"]
    bindings = management(rabbitmq, "queues/%2F/" + name + "/bindings")
    assert {(b["source"], b["routing_key"]) for b in bindings} >= {("cvmfs-events-test", name)}
    assert management(rabbitmq, "exchanges/%2F/cvmfs-events-test")["type"] == "topic"
    assert first["notification"]["Filter"] == {"Key": {"FilterRules": [{"Name": "prefix", "Value": "cvmfs/"}]}}

    again = run_module("bucket_notification", args, diff=True)
    assert not again["changed"] and again["changes"] == [], again
    assert not run_module("bucket_notification", args, check=True)["changed"]

    # the path works end to end: an upload under the prefix arrives, one outside does not
    s3 = ceph_rgw.client()
    s3.put_object(Bucket=path["bucket"], Key="cvmfs/a/file.txt", Body=b"x")
    s3.put_object(Bucket=path["bucket"], Key="elsewhere/file.txt", Body=b"x")
    s3.delete_object(Bucket=path["bucket"], Key="cvmfs/a/file.txt")
    messages = drain(rabbitmq, name, expect=2)
    events = [(json.loads(body)["Records"][0]["eventName"], json.loads(body)["Records"][0]["s3"]["object"]["key"])
              for _m, _p, body in messages]
    assert events == [("ObjectCreated:Put", "cvmfs/a/file.txt"), ("ObjectRemoved:Delete", "cvmfs/a/file.txt")]
    assert messages[0][0].routing_key == name


def test_changes_are_applied_and_other_notifications_kept(ceph_rgw, rabbitmq, run_module, path):
    other = unique("cvmfs-other")
    assert not run_module("bucket_notification", module_args(ceph_rgw, rabbitmq, other, path["bucket"],
                                                             prefix="other/")).failed
    args = module_args(ceph_rgw, rabbitmq, path["name"], path["bucket"])
    assert run_module("bucket_notification", args)["changed"]

    moved = run_module("bucket_notification", dict(args, prefix="cvmfs/team-a/"), diff=True)
    assert moved["changes"] == ["notification %s" % path["name"]], moved
    assert moved["diff"]["before"]["notification"]["Filter"]["Key"]["FilterRules"][0]["Value"] == "cvmfs/"

    # a topic change rewrites the notification too (RGW keeps a copy of the topic in it)
    acked = run_module("bucket_notification", dict(args, prefix="cvmfs/team-a/", ack_level="routable"))
    assert acked["changes"] == ["topic %s (amqp-ack-level)" % path["name"], "notification %s" % path["name"]], acked
    assert not run_module("bucket_notification", dict(args, prefix="cvmfs/team-a/", ack_level="routable"))["changed"]
    back = run_module("bucket_notification", dict(args, prefix="cvmfs/team-a/"))
    assert back["changed"]

    ids = [n["Id"] for n in ceph_rgw.client().get_bucket_notification_configuration(
        Bucket=path["bucket"])["TopicConfigurations"]]
    assert sorted(ids) == sorted([other, path["name"]])


def test_absent_removes_only_this_path(ceph_rgw, rabbitmq, run_module, path):
    other = unique("cvmfs-other")
    other_args = module_args(ceph_rgw, rabbitmq, other, path["bucket"], prefix="other/")
    args = module_args(ceph_rgw, rabbitmq, path["name"], path["bucket"])
    assert run_module("bucket_notification", other_args)["changed"]
    assert run_module("bucket_notification", args)["changed"]

    absent = dict(args, state="absent")
    preview = run_module("bucket_notification", absent, check=True)
    assert preview["changed"] and queue_info(rabbitmq, path["name"]) is not None
    gone = run_module("bucket_notification", absent, diff=True)
    assert gone["changes"] == ["notification %s" % path["name"], "topic %s" % path["name"],
                               "queue %s" % path["name"], "queue %s.dead-letter" % path["name"]], gone
    assert queue_info(rabbitmq, path["name"]) is None
    ids = [n["Id"] for n in ceph_rgw.client().get_bucket_notification_configuration(
        Bucket=path["bucket"])["TopicConfigurations"]]
    assert ids == [other]
    assert not run_module("bucket_notification", absent)["changed"]
    assert not run_module("bucket_notification", absent, check=True)["changed"]
    assert not run_module("bucket_notification", other_args)["changed"]


def test_refusals_name_the_problem(ceph_rgw, rabbitmq, run_module, path):
    args = module_args(ceph_rgw, rabbitmq, path["name"], path["bucket"])
    # (URL and option checks that need no server are unit-tested)
    cases = [
        (dict(push_endpoint="amqp://guest:guest@127.0.0.1:%d" % rabbitmq.port), "must not contain credentials"),
        (dict(amqp_password="wrong"), "refused the login"),
        (dict(bucket="no-such-bucket-" + path["name"]), "does not exist"),
        (dict(queue_type="classic", queue=path["name"] + "-q"), None),  # set up for the next case
        (dict(queue_type="quorum", queue=path["name"] + "-q"), "exists with different settings"),
        (dict(exchange="another-exchange", topic=path["name"] + "-x", name=path["name"] + "-x"), "one exchange per endpoint URL"),
    ]
    for extra, expected in cases:
        result = run_module("bucket_notification", dict(args, **extra))
        if expected is None:
            assert not result.failed, result
            continue
        assert result.failed, (extra, result)
        assert expected in result["msg"], (extra, result["msg"])
        assert "secret" not in json.dumps(result) or "secret_key" in json.dumps(result)


def test_a_password_sent_without_tls_off_loopback_is_warned_about(ceph_rgw, rabbitmq, run_module, path):
    """PLAIN login without TLS to a broker named like a remote host: the module works, and warns
    (as the Vault client warns of plain HTTP). On loopback it does not."""
    alias = loopback_alias(rabbitmq.host)
    if alias is None:
        pytest.skip("no host name other than localhost resolves to %s on this machine" % rabbitmq.host)
    remote = run_module("bucket_notification", module_args(ceph_rgw, rabbitmq, path["name"], path["bucket"],
                                                           amqp_host=alias))
    assert not remote.failed, remote
    cleartext = [w for w in _warnings(remote) if "in clear" in w]
    assert len(cleartext) == 1 and alias in cleartext[0], remote.get("warnings")
    local = run_module("bucket_notification", module_args(ceph_rgw, rabbitmq, path["name"], path["bucket"]))
    assert not local.failed and not [w for w in _warnings(local) if "in clear" in w], local


def _warnings(result):
    """Warning texts (ansible-core 2.19+ returns them as WarningSummary dicts)."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]
