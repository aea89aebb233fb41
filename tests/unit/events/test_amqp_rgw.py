"""Offline logic of the AMQP and RGW module_utils: option checks, auth classes, retry, topics."""

import json
from unittest.mock import MagicMock

import pika
import pika.exceptions
import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _amqp as amqp
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _rgw_events as rgw
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError


def options(**extra):
    base = {"host": "mq.example.org", "username": "u", "password": "p"}
    base.update(extra)
    return amqp.resolve_options(base)


def test_options_from_module_params_and_defaults():
    params = dict((name, None) for name in amqp.ARGSPEC)
    params.update(amqp_host="h", amqp_tls=True)
    resolved = amqp.resolve_options(amqp.options_from_params(params))
    assert resolved["host"] == "h" and resolved["port"] == 5671 and resolved["vhost"] == "/"
    assert amqp.ARGSPEC["amqp_password"]["no_log"] is True and amqp.ARGSPEC["amqp_client_key"]["no_log"] is False


def test_plain_auth_gives_pika_credentials_and_needs_both():
    auth = amqp.validate(options())
    assert isinstance(auth.credentials(), pika.PlainCredentials)
    with pytest.raises(CvmfsError, match="needs password"):
        amqp.validate(options(password=None))


def test_external_auth_needs_tls_and_a_certificate(tmp_path):
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(CvmfsError, match="needs client_cert"):
        amqp.validate(options(auth_method="external", username=None, password=None))
    with pytest.raises(CvmfsError, match="tls is false"):
        amqp.validate(options(auth_method="external", username=None, password=None, client_cert=str(cert)))
    with pytest.raises(CvmfsError, match="belongs to auth_method=plain"):
        amqp.validate(options(auth_method="external", client_cert=str(cert), tls=True))
    auth = amqp.validate(options(auth_method="external", username=None, password=None, client_cert=str(cert), tls=True))
    assert isinstance(auth.credentials(), pika.credentials.ExternalCredentials)


@pytest.mark.parametrize("change, words", [
    ({"auth_method": "kerberos"}, "must be one of"),
    ({"ca_cert": "/nonexistent"}, "is not a readable file"),
    ({"retries": -1}, "retries"),
    ({"timeout": 0}, "timeout"),
    ({"host": ""}, "host is empty"),
])
def test_offline_checks(change, words):
    with pytest.raises(CvmfsError, match=words):
        amqp.validate(options(**change))


def test_retry_knows_what_a_second_attempt_can_fix():
    transient = [pika.exceptions.AMQPConnectionError(ConnectionRefusedError(111, "refused")),
                 pika.exceptions.StreamLostError("lost"),
                 pika.exceptions.ConnectionClosedByBroker(320, "CONNECTION_FORCED - broker shutdown"),
                 ConnectionResetError()]
    permanent = [pika.exceptions.ProbableAuthenticationError("bad login"),
                 pika.exceptions.ProbableAccessDeniedError("no vhost"),
                 pika.exceptions.ConnectionClosedByBroker(403, "ACCESS_REFUSED"),
                 ValueError("bug")]
    assert all(amqp.AmqpRetry.is_transient(e) for e in transient)
    assert not any(amqp.AmqpRetry.is_transient(e) for e in permanent)


def test_translated_errors_name_the_broker_and_the_fix():
    error = amqp.translate(pika.exceptions.ProbableAuthenticationError("x"), options(password="Sup3rS3cret"), "connect")
    assert "amqp://mq.example.org:5672/%2F refused the login (user u)" in error.message
    assert "Sup3rS3cret" not in error.message
    error = amqp.translate(pika.exceptions.AMQPConnectionError(ConnectionRefusedError(111, "Connection refused")),
                           options(), "connect")
    assert "cannot reach the AMQP broker" in error.message and "Connection refused" in error.message


def test_queue_arguments():
    assert amqp.queue_arguments("quorum", "dlx", "q", 20) == {
        "x-queue-type": "quorum", "x-delivery-limit": 20, "x-dead-letter-exchange": "dlx",
        "x-dead-letter-routing-key": "q"}
    assert amqp.queue_arguments("classic", "dlx", "q", 20) == {"x-dead-letter-exchange": "dlx",
                                                               "x-dead-letter-routing-key": "q"}
    assert amqp.queue_arguments("quorum") == {"x-queue-type": "quorum"}


# ---- RGW -------------------------------------------------------------------------------------

def test_push_endpoint_credentials_need_amqps_and_are_escaped():
    assert rgw.push_endpoint("amqp://mq:5672") == "amqp://mq:5672"
    url = rgw.push_endpoint("amqps://mq:5671/vh", "rgw", "p@ss/w:rd")
    assert url == "amqps://rgw:p%40ss%2Fw%3Ard@mq:5671/vh"
    assert rgw.redact(url) == "amqps://rgw:********@mq:5671/vh"
    for args, words in [(("amqp://u:p@mq",), "must not contain credentials"),
                        (("amqp://mq", "u", "p"), "need an amqps://"),
                        (("amqps://mq", "u", None), "both push_username and push_password"),
                        (("https://mq",), "amqp:// or amqps://")]:
        with pytest.raises(CvmfsError, match=words):
            rgw.push_endpoint(*args)


def rgw_topic_reply(**args):
    query = "&".join("%s=%s" % item for item in sorted(args.items()))
    endpoint = json.dumps({"EndpointAddress": args.get("push-endpoint"), "EndpointArgs": query + "&Version=2010-03-31",
                           "EndpointTopic": "t", "HasStoredSecret": "false", "Persistent": args.get("persistent")})
    return {"Attributes": {"Name": "t", "EndPoint": endpoint, "TopicArn": "arn:aws:sns:default::t"}}


def test_topic_attributes_are_read_from_rgw_endpoint_args_and_compared():
    sns = MagicMock()
    sns.get_topic_attributes.return_value = rgw_topic_reply(**{
        "push-endpoint": "amqp://mq:5672", "amqp-exchange": "ex", "amqp-ack-level": "none", "persistent": "false"})
    current = rgw.get_topic(sns, "arn:aws:sns:default::t")
    assert current == {"push-endpoint": "amqp://mq:5672", "amqp-exchange": "ex", "amqp-ack-level": "none",
                       "persistent": "false"}
    wanted = rgw.topic_attributes("amqp://mq:5672", "ex", "none", False)
    assert rgw.topic_differences(current, wanted) == []
    assert rgw.topic_differences(current, rgw.topic_attributes("amqp://mq:5672", "ex", "broker", True)) == [
        "amqp-ack-level", "persistent"]


def test_missing_topics_and_stale_listings():
    sns = MagicMock()
    missing = Exception("missing")
    missing.response = {"Error": {"Code": "NoSuchEntity"}, "ResponseMetadata": {"HTTPStatusCode": 404}}
    sns.get_topic_attributes.side_effect = missing
    sns.list_topics.return_value = {"Topics": [{"TopicArn": "arn:aws:sns:default::t"}] * 2}
    assert rgw.get_topic(sns, "arn:aws:sns:default::t") is None
    assert rgw.list_topics(sns) == ["arn:aws:sns:default::t"]
    assert rgw.delete_topic(sns, "t") is False
    sns.delete_topic.assert_not_called()


def test_exchange_clash_is_refused_before_anything_is_written():
    sns = MagicMock()
    sns.list_topics.return_value = {"Topics": [{"TopicArn": "arn:aws:sns:default::other"}]}
    sns.get_topic_attributes.return_value = rgw_topic_reply(**{
        "push-endpoint": "amqp://mq:5672", "amqp-exchange": "old", "amqp-ack-level": "broker", "persistent": "true"})
    with pytest.raises(CvmfsError, match="one exchange per endpoint URL"):
        rgw.ensure_topic(sns, "mine", rgw.topic_attributes("amqp://mq:5672", "new"))
    sns.create_topic.assert_not_called()


def test_notification_keeps_the_others_and_is_rewritten_when_forced():
    s3 = MagicMock()
    other = rgw.notification_entry("other", "arn:o", "other/")
    mine = rgw.notification_entry("mine", "arn:m", "cvmfs/")
    s3.get_bucket_notification_configuration.return_value = {"TopicConfigurations": [other, mine]}
    assert rgw.ensure_notification(s3, "b", mine) == (False, mine)
    s3.put_bucket_notification_configuration.assert_not_called()
    changed, _before = rgw.ensure_notification(s3, "b", mine, force=True, check_mode=True)
    assert changed
    s3.put_bucket_notification_configuration.assert_not_called()
    moved = rgw.notification_entry("mine", "arn:m", "cvmfs/sub/")
    assert rgw.ensure_notification(s3, "b", moved)[0]
    s3.put_bucket_notification_configuration.assert_called_once_with(
        Bucket="b", NotificationConfiguration={"TopicConfigurations": [other, moved]})


def test_names_are_checked():
    for bad in ("", "a/b", "a b", "x" * 257):
        with pytest.raises(CvmfsError, match="is not valid"):
            rgw.check_name("topic", bad)
    assert rgw.check_name("topic", "cvmfs-sw.example.org_1") == "cvmfs-sw.example.org_1"


@pytest.mark.parametrize("extra, warned", [
    ({}, True),                                          # PLAIN, no TLS, a broker across the network
    ({"host": "10.1.2.3"}, True),
    ({"host": "localhost"}, False), ({"host": "127.0.0.1"}, False), ({"host": "::1"}, False),
    ({"host": "127.8.9.10"}, False),
    ({"tls": True}, False),
])
def test_plain_login_without_tls_warns_only_off_loopback(extra, warned):
    warnings = []
    amqp.Broker(options(**extra), warn=warnings.append)
    assert len(warnings) == (1 if warned else 0), warnings
    if warned:
        assert "password" in warnings[0] and "tls" in warnings[0] and options(**extra)["host"] in warnings[0]
