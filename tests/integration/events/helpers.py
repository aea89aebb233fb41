"""Shared helpers of the event-path tests (real Ceph RGW + real RabbitMQ from the harness)."""

import base64
import json
import os
import signal
import subprocess
import time
import urllib.request
import uuid


def unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def module_args(rgw, mq, name, bucket, **extra):
    """Arguments of sharedsw.cvmfs.bucket_notification for the harness's servers.

    Tests use non-persistent topics with ack_level none: events arrive within a second, and
    multi-object deletes do not crash Pacific's radosgw (see the module's description).
    """
    args = dict(
        name=name, bucket=bucket, prefix="cvmfs/", endpoint_url=rgw.endpoint_url, region=rgw.region,
        access_key=rgw.access_key, secret_key=rgw.secret_key,
        push_endpoint="amqp://%s:%d" % (mq.host, mq.port), persistent=False, ack_level="none",
        amqp_host=mq.host, amqp_port=mq.port, amqp_username=mq.user, amqp_password=mq.password,
        exchange="cvmfs-events-test",
    )
    args.update(extra)
    return args


def management(mq, path):
    """GET a RabbitMQ management API path; None on 404."""
    request = urllib.request.Request(mq.mgmt_url + "/api/" + path)
    token = base64.b64encode(("%s:%s" % (mq.user, mq.password)).encode()).decode()
    request.add_header("Authorization", "Basic " + token)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise


def queue_info(mq, name):
    return management(mq, "queues/%2F/" + urllib.request.quote(name, safe=""))


def drain(mq, queue, expect, timeout=20):
    """Fetch (and ack) messages from ``queue`` until ``expect`` arrived or ``timeout`` passed."""
    connection = mq.connection()
    try:
        channel = connection.channel()
        bodies = []
        deadline = time.time() + timeout
        while len(bodies) < expect and time.time() < deadline:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                connection.sleep(0.1)
                continue
            bodies.append((method, properties, body))
        return bodies
    finally:
        connection.close()


def wait_for(predicate, timeout, what, interval=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


def queue_depth(mq, name):
    """Messages in ``name`` right now (AMQP passive declare; the management API lags seconds behind)."""
    connection = mq.connection()
    try:
        return connection.channel().queue_declare(name, passive=True).method.message_count
    finally:
        connection.close()


def loopback_alias(address):
    """A host name that resolves to ``address`` (a loopback address) but is neither ``localhost``
    nor an IP address: what a broker across the network looks like to a client that does not
    resolve names. None when this machine has no such name."""
    import socket
    candidates = [socket.gethostname(), socket.getfqdn()]
    try:
        with open("/etc/hosts") as handle:
            for line in handle:
                fields = line.split("#", 1)[0].split()
                if fields and fields[0] == address:
                    candidates.extend(fields[1:])
    except OSError:
        pass
    for name in candidates:
        if not name or name.startswith("localhost"):
            continue
        try:
            if socket.gethostbyname(name) == address:
                return name
        except OSError:
            continue
    return None


def terminate(process, timeout=120):
    """SIGTERM a program the test started (in its own session), as systemd stops it; SIGKILL its
    whole session if it has not stopped after ``timeout`` seconds. Returns its exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode
