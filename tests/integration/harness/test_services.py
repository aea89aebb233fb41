"""Self-test of the real-service harness: one short real check per fixture."""

import json
import os
import time
import urllib.error
import urllib.request

import botocore.exceptions
import hvac
import pika
import pytest

pytestmark = pytest.mark.integration

TWO_DAYS = 2 * 24 * 3600


def _direct_get(url):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        return response.read()


def _get_via(proxy_url, url):
    """GET ``url`` through the proxy; return (status, headers, body), error statuses included."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy_url}))
    try:
        with opener.open(url, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


# --- S3 ---------------------------------------------------------------------------------

def test_s3_put_get_list(s3_server):
    s3 = s3_server.client()
    bucket = s3_server.make_bucket()
    s3.put_object(Bucket=bucket, Key="dir/hello.txt", Body=b"hello " + s3_server.name.encode())
    body = s3.get_object(Bucket=bucket, Key="dir/hello.txt")["Body"].read()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="dir/")["Contents"]]
    assert body == b"hello " + s3_server.name.encode()
    assert keys == ["dir/hello.txt"]
    assert set(s3_server.module_args()) == {"endpoint_url", "access_key", "secret_key", "region"}


def _bind_queue(channel, exchange, routing_key):
    """A fresh exclusive queue bound to the durable topic ``exchange`` (declared first: RGW never does)."""
    channel.exchange_declare(exchange, exchange_type="topic", durable=True)
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, exchange, routing_key=routing_key)
    return queue


def _next_message(channel, queue, timeout=30):
    for _method, _properties, body in channel.consume(queue, auto_ack=True, inactivity_timeout=timeout):
        return None if body is None else json.loads(body)
    return None


def test_ceph_notification_reaches_rabbitmq(ceph_rgw, rabbitmq):
    topic, exchange = "harness-topic", "harness-rgw"
    connection = rabbitmq.connection()
    channel = connection.channel()
    queue = _bind_queue(channel, exchange, topic)
    arn = ceph_rgw.sns_client().create_topic(Name=topic, Attributes={
        # RGW Pacific keeps one exchange per AMQP URL; other tests push to 127.0.0.1 with their own.
        "push-endpoint": "amqp://localhost:%d" % rabbitmq.port, "amqp-exchange": exchange,
        "amqp-ack-level": "broker", "persistent": "false"})["TopicArn"]
    bucket = ceph_rgw.make_bucket()
    s3 = ceph_rgw.client()
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"TopicConfigurations": [
        {"Id": "harness", "TopicArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    s3.put_object(Bucket=bucket, Key="notified.txt", Body=b"x")
    event = _next_message(channel, queue)
    connection.close()
    assert event is not None, "no notification reached RabbitMQ"
    record = event["Records"][0]
    assert record["eventSource"] == "ceph:s3" and record["eventName"] == "ObjectCreated:Put"
    assert (record["s3"]["bucket"]["name"], record["s3"]["object"]["key"]) == (bucket, "notified.txt")
    assert topic in [t["topic"]["name"] for t in ceph_rgw.admin("topic", "list")["topics"]]


def test_ceph_rgw_revived_after_pacific_crash(ceph_rgw):
    """RGW 16.2.15 aborts on DeleteObjects in a bucket with a persistent notification; the
    harness starts radosgw again (and fails the test during which it died, unless it revives it)."""
    s3 = ceph_rgw.client(max_attempts=1)
    bucket = ceph_rgw.make_bucket()
    arn = ceph_rgw.sns_client().create_topic(Name="harness-persistent", Attributes={
        "push-endpoint": "amqp://127.0.0.1:1", "amqp-exchange": "none", "amqp-ack-level": "broker",
        "persistent": "true"})["TopicArn"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"TopicConfigurations": [
        {"Id": "harness", "TopicArn": arn, "Events": ["s3:ObjectRemoved:*"]}]})
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(botocore.exceptions.ConnectionError):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k"}]})
    assert "RGWDeleteMultiObj" in ceph_rgw.revive_rgw()
    assert s3.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
    # left in place: deleting a bucket with a persistent notification takes ~28 s on Pacific


def test_seaweedfs_factory_survives_kill(seaweedfs_factory):
    server = seaweedfs_factory()
    bucket = server.make_bucket()
    server.client().put_object(Bucket=bucket, Key="k", Body=b"v")
    server.kill()
    server.start()
    assert server.client().get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


# --- OpenBao ------------------------------------------------------------------------------

def test_seaweedfs_takes_a_test_session_of_buckets(seaweedfs_factory):
    """Each bucket takes volumes of its own: the default volume limit ran out after about 70
    buckets, and later tests in a session then failed with InternalError on PutObject."""
    server = seaweedfs_factory()
    client = server.client()
    for number in range(120):
        bucket = server.make_bucket("many")
        client.put_object(Bucket=bucket, Key="k", Body=b"%d" % number)
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"119"


def test_openbao_kv2_round_trip(openbao):
    client = openbao.client()
    client.secrets.kv.v2.create_or_update_secret(path="harness/check", secret={"answer": "42"})
    read = client.secrets.kv.v2.read_secret_version(path="harness/check", raise_on_deleted_version=True)
    assert read["data"]["data"] == {"answer": "42"}
    with pytest.raises(hvac.exceptions.Forbidden):
        openbao.client(token="not-a-token").secrets.kv.v2.read_secret_version(path="harness/check")


def test_openbao_raft_seal_unseal(openbao_raft):
    client = openbao_raft.client()
    assert client.sys.is_initialized() and not client.sys.is_sealed()
    openbao_raft.seal()
    assert client.sys.is_sealed()
    openbao_raft.unseal()
    assert not client.sys.is_sealed()


# --- RabbitMQ -----------------------------------------------------------------------------

def test_rabbitmq_restart_keeps_durable_message(rabbitmq):
    connection = rabbitmq.connection()
    channel = connection.channel()
    channel.queue_declare("harness-durable", durable=True)
    channel.confirm_delivery()
    channel.basic_publish("", "harness-durable", b"survives", pika.BasicProperties(delivery_mode=2))
    connection.close()
    rabbitmq.stop()
    rabbitmq.start()
    connection = rabbitmq.connection()
    _method, _properties, body = connection.channel().basic_get("harness-durable", auto_ack=True)
    connection.close()
    assert body == b"survives"
    assert rabbitmq.management("overview")["rabbitmq_version"]


# --- apache and squid ---------------------------------------------------------------------

def _published_file(apache, tmp_path, name, text):
    directory = tmp_path / name
    directory.mkdir()
    (directory / "data.txt").write_text(text)
    old = time.time() - TWO_DAYS  # an old Last-Modified makes squid cache it (heuristic freshness)
    os.utime(directory / "data.txt", (old, old))
    return apache.publish(name, str(directory))


def test_apache_serves_published_directory(apache, tmp_path):
    url = _published_file(apache, tmp_path, "served", "served by apache\n")
    assert _direct_get(url + "data.txt") == b"served by apache\n"
    assert b"data.txt" in _direct_get(url)  # autoindex listing


def test_squid_miss_then_hit_and_denied_destination(apache, squid_factory, tmp_path):
    url = _published_file(apache, tmp_path, "cached", "cached by squid\n") + "data.txt"
    squid = squid_factory(allowed_dst=("127.0.0.1",))
    first, second = _get_via(squid.url, url), _get_via(squid.url, url)
    assert first[0] == 200 and first[1]["X-Cache"].startswith("MISS")
    assert second[0] == 200 and second[1]["X-Cache"].startswith("HIT") and second[2] == b"cached by squid\n"
    denied = _get_via(squid.url, url.replace("127.0.0.1", "127.0.0.2"))
    assert denied[0] == 403
    for outcome in ("TCP_MISS/200", "TCP_MEM_HIT/200", "TCP_DENIED/403"):
        assert any(outcome in line for line in squid.access_log(wait_for=outcome))
