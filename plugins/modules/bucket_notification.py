#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: bucket_notification
short_description: The event path of one repository, from Ceph RGW bucket notifications to a RabbitMQ queue
version_added: 0.1.0
author:
  - sharedsw.cvmfs contributors (@sharedsw)
description:
  - Provisions, idempotently and in this order, everything that carries the upload events of one
    repository (or one publisher's part of it) to its publisher's notification consumer
    (C(python3 -m sharedsw_cvmfs._events)).
  - "On the broker (pika): the durable topic exchange O(exchange) that RGW publishes to; a
    dead-letter exchange O(dead_letter_exchange) and queue O(dead_letter_queue); the durable
    queue O(queue) (a quorum queue when the broker supports them, with O(delivery_limit) and the
    dead-letter exchange as arguments), bound to O(exchange) with the topic's name as routing
    key. All of this exists before the notification does: RGW never declares the exchange and
    drops events it cannot route, while the upload itself succeeds."
  - "On the S3 endpoint (boto3, RGW's SNS-compatible API): the topic O(topic) with the AMQP push
    endpoint, and the bucket notification O(name) for C(s3:ObjectCreated:*) and
    C(s3:ObjectRemoved:*) filtered to O(prefix). Other notifications of the bucket are kept.
    After a topic change the notification is written again, because RGW keeps a copy of the
    topic in each notification."
  - With O(state=absent) the notification, the topic and both queues are removed (messages still
    in the queues are lost); the exchanges are shared by every repository of the endpoint and stay.
  - "Ceph Pacific (16.2.15, the Debian 12 package) aborts radosgw on a multi-object delete
    (C(DeleteObjects), used by C(aws s3 rm --recursive), rclone and s3cmd) in a bucket that has a
    notification with O(persistent=true) or O(ack_level) other than V(none). On such a version use
    O(persistent=false) and O(ack_level=none): events can then be lost while the broker is
    unreachable, which the consumer's re-sync after every reconnect and the publisher's periodic
    full sync repair."
  - The S3 credentials must be the bucket owner's (only the owner may configure its notifications).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sharedsw.cvmfs._amqp
  - sharedsw.cvmfs._s3
  - sharedsw.cvmfs._s3.action_group
attributes:
  check_mode:
    support: full
    details: Reads the topic, the bucket's notifications and (passively) the exchanges and queues;
      creates, updates and deletes nothing.
  diff_mode:
    support: full
    details: The topic attributes (password redacted) and the notification entry, before and after.
options:
  ack_level:
    description:
      - When RGW considers an event delivered (topic attribute C(amqp-ack-level)). V(broker) waits for
        the broker's confirm, V(routable) also requires a queue to take it, V(none) does not wait.
      - See the description for the Ceph Pacific crash with anything but V(none).
    type: str
    choices: [broker, none, routable]
    default: broker
  bucket:
    description: The bucket users upload to.
    type: str
    required: true
  dead_letter_exchange:
    description: Durable topic exchange that receives what the consumer gives up on. Default C(<exchange>.dead-letter).
    type: str
  dead_letter_queue:
    description:
      - Durable queue that keeps dead-lettered messages (the consumer adds the reason as headers
        C(x-sharedsw-reason) and C(x-sharedsw-attempts)). Default C(<queue>.dead-letter).
    type: str
  delivery_limit:
    description:
      - Quorum queues only (C(x-delivery-limit)). The broker dead-letters a message after this many
        returns, for example when the consumer crashes on it again and again. Keep it above the
        consumer's C(max_attempts), which dead-letters earlier and says why. V(0) means no limit.
      - Queue arguments cannot be changed on an existing queue; a different value is an error that
        says how to recreate the queue.
    type: int
    default: 20
  events:
    description: S3 event types of the notification.
    type: list
    elements: str
    default: ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
  exchange:
    description:
      - Durable topic exchange RGW publishes the events to (topic attribute C(amqp-exchange)). RGW
        Pacific allows one exchange per push endpoint URL, so use the same exchange for every
        repository; the routing key (the topic name) tells them apart. The module refuses a topic
        that would break this rule.
    type: str
    default: cvmfs-events
  name:
    description: Id of the bucket notification, unique in the bucket, for example C(cvmfs-sw.example.org).
    type: str
    required: true
  persistent:
    description:
      - Topic attribute C(persistent). V(true) queues events inside RGW and retries until the broker
        takes them (asynchronous; on Pacific the first events after the topic is created or RGW
        restarts come 25-30 s late); V(false) pushes during the upload request and loses the event
        when the broker is unreachable.
      - See the description for the Ceph Pacific crash with V(true).
    type: bool
    default: true
  prefix:
    description: Key prefix the notification is filtered to (the repository's source prefix). Empty means the whole bucket.
    type: str
    default: cvmfs/
  push_ca_location:
    description: CA file on the RGW hosts to verify an V(amqps://) O(push_endpoint) with (topic attribute C(ca-location)).
    type: str
  push_endpoint:
    description:
      - The broker URL RGW connects to, V(amqp://host:5672) or V(amqps://host:5671), optionally with
        a vhost path, never with credentials (see O(push_username)). Required with O(state=present).
      - Seen from the RGW hosts, so it may differ from O(amqp_host).
    type: str
  push_password:
    description: Password of O(push_username). Never logged or returned.
    type: str
  push_username:
    description:
      - User RGW logs in to the broker as. Needs an V(amqps://) O(push_endpoint) (RGW refuses to send a
        password over plain AMQP). Without it RGW logs in as C(guest), which RabbitMQ only allows
        from loopback unless C(loopback_users) says otherwise.
    type: str
  push_verify_ssl:
    description: Whether RGW verifies the broker's certificate (topic attribute C(verify-ssl)).
    type: bool
    default: true
  queue:
    description: The consumer's durable queue. Default the topic's name.
    type: str
  queue_type:
    description:
      - V(auto) makes a quorum queue when the broker supports them (RabbitMQ 3.8 and later), else a
        classic one. Quorum queues keep every message on disk, replicate it, and count deliveries.
      - RGW publishes its events as transient messages; in a classic queue they are lost when the
        broker restarts, in a quorum queue they are not.
    type: str
    choices: [auto, classic, quorum]
    default: auto
  state:
    description: Whether the event path exists.
    type: str
    choices: [absent, present]
    default: present
  topic:
    description: Name of the topic; it is also the AMQP routing key of the events. Default O(name).
    type: str
notes:
  - Requires boto3 and pika on the host that runs the module.
  - AMQP 0-9-1 cannot list bindings, so the bindings are asserted on every run and a restored
    binding is not reported as a change.
  - A change of O(push_password) alone is not detected when the S3 server does not return it.
seealso:
  - module: sharedsw.cvmfs.s3_sync
"""

EXAMPLES = r"""
- name: Event path of sw.example.org (production RGW with persistent topics)
  sharedsw.cvmfs.bucket_notification:
    name: cvmfs-sw.example.org
    bucket: software
    prefix: cvmfs/
    endpoint_url: https://rgw.example.org
    region: default
    access_key: "{{ sw_bucket_owner_access_key }}"
    secret_key: "{{ sw_bucket_owner_secret_key }}"
    push_endpoint: amqps://rabbitmq.example.org:5671
    push_username: rgw
    push_password: "{{ rgw_amqp_password }}"
    amqp_host: rabbitmq.example.org
    amqp_tls: true
    amqp_username: cvmfs-admin
    amqp_password: "{{ cvmfs_amqp_admin_password }}"

- name: On Ceph Pacific 16.2 (multi-object deletes crash radosgw otherwise)
  sharedsw.cvmfs.bucket_notification:
    name: cvmfs-sw.example.org
    bucket: software
    endpoint_url: http://rgw.example.org:7480
    push_endpoint: amqp://rabbitmq.example.org:5672
    persistent: false
    ack_level: none
    amqp_host: rabbitmq.example.org
    amqp_username: cvmfs-admin
    amqp_password: "{{ cvmfs_amqp_admin_password }}"

- name: Remove the event path with the repository
  sharedsw.cvmfs.bucket_notification:
    name: cvmfs-sw.example.org
    bucket: software
    state: absent
    endpoint_url: https://rgw.example.org
    amqp_host: rabbitmq.example.org
    amqp_username: cvmfs-admin
    amqp_password: "{{ cvmfs_amqp_admin_password }}"
"""

RETURN = r"""
changes:
  description: What was (or in check mode would be) created, updated or deleted, in order.
  returned: always
  type: list
  elements: str
  sample: ["exchange cvmfs-events", "queue cvmfs-sw.example.org", "topic cvmfs-sw.example.org", "notification cvmfs-sw.example.org"]
dead_letter_queue:
  description: Name of the dead-letter queue.
  returned: always
  type: str
  sample: cvmfs-sw.example.org.dead-letter
notification:
  description: The bucket's notification entry after the run (C(null) when absent).
  returned: always
  type: dict
  sample: {"Id": "cvmfs-sw.example.org", "TopicArn": "arn:aws:sns:default::cvmfs-sw.example.org",
           "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
           "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "cvmfs/"}]}}}
queue:
  description: Name of the consumer's queue.
  returned: always
  type: str
  sample: cvmfs-sw.example.org
queue_type:
  description: V(quorum) or V(classic) (what V(auto) chose); C(null) when absent.
  returned: always
  type: str
  sample: quorum
routing_key:
  description: Routing key of the events (the topic's name).
  returned: always
  type: str
  sample: cvmfs-sw.example.org
topic:
  description: The topic's attributes after the run, the password of the push endpoint redacted (C(null) when absent).
  returned: always
  type: dict
  sample: {"push-endpoint": "amqp://rabbitmq.example.org:5672", "amqp-exchange": "cvmfs-events",
           "amqp-ack-level": "broker", "persistent": "true"}
topic_arn:
  description: ARN of the topic (C(null) when absent).
  returned: always
  type: str
  sample: arn:aws:sns:default::cvmfs-sw.example.org
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._module import CvmfsModule
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _amqp
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _rgw_events as rgw
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _s3_module as s3
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._s3_connect import boto_session


class BucketNotificationModule(CvmfsModule):
    argument_spec = dict(
        ack_level=dict(type="str", choices=["broker", "none", "routable"], default="broker"),
        bucket=dict(type="str", required=True),
        dead_letter_exchange=dict(type="str"),
        dead_letter_queue=dict(type="str"),
        delivery_limit=dict(type="int", default=20),
        events=dict(type="list", elements="str", default=list(rgw.EVENTS)),
        exchange=dict(type="str", default="cvmfs-events"),
        name=dict(type="str", required=True),
        persistent=dict(type="bool", default=True),
        prefix=dict(type="str", default="cvmfs/"),
        push_ca_location=dict(type="str"),
        push_endpoint=dict(type="str"),
        push_password=dict(type="str", no_log=True),
        push_username=dict(type="str"),
        push_verify_ssl=dict(type="bool", default=True),
        queue=dict(type="str"),
        queue_type=dict(type="str", choices=["auto", "classic", "quorum"], default="auto"),
        state=dict(type="str", choices=["absent", "present"], default="present"),
        topic=dict(type="str"),
    )
    argument_spec.update(_amqp.ARGSPEC)
    argument_spec.update(s3.ARGSPEC)
    module_kwargs = dict(
        supports_check_mode=True,
        required_if=[("state", "present", ("push_endpoint",))],
        required_together=s3.REQUIRED_TOGETHER + [("push_username", "push_password")],
        mutually_exclusive=s3.MUTUALLY_EXCLUSIVE,
    )

    def run(self):
        s3.require_boto3(self.ansible)
        if not _amqp.HAS_PIKA:
            self.ansible.fail_json(msg=missing_required_lib("pika"), exception=_amqp.PIKA_IMP_ERR)
        p = self.params
        self.name = rgw.check_name("name", p["name"])
        self.topic = rgw.check_name("topic", p["topic"] or p["name"])
        self.queue = rgw.check_name("queue", p["queue"] or self.topic)
        self.exchange = rgw.check_name("exchange", p["exchange"])
        self.dlx = rgw.check_name("dead_letter_exchange", p["dead_letter_exchange"] or self.exchange + ".dead-letter")
        self.dlq = rgw.check_name("dead_letter_queue", p["dead_letter_queue"] or self.queue + ".dead-letter")
        if self.dlx == self.exchange:
            raise CvmfsError("dead_letter_exchange must differ from exchange %s" % self.exchange)
        if self.dlq == self.queue:
            raise CvmfsError("dead_letter_queue must differ from queue %s" % self.queue)
        if p["delivery_limit"] is None or p["delivery_limit"] < 0:
            raise CvmfsError("delivery_limit must be 0 (no limit) or more, not %r" % p["delivery_limit"])
        self.changes = []
        self.before = {}
        self.after = {}
        self.results.update(changes=self.changes, queue=self.queue, dead_letter_queue=self.dlq,
                            routing_key=self.topic, queue_type=None, topic=None, topic_arn=None, notification=None)
        self.connect_s3()
        broker = _amqp.Broker(_amqp.options_from_params(p), check_mode=self.check_mode, warn=self.ansible.warn)
        broker.options["connection_name"] = "sharedsw.cvmfs.bucket_notification"
        with broker:
            if p["state"] == "present":
                self.present(broker)
            else:
                self.absent(broker)
        self.results["changed"] = bool(self.changes)
        if self.diff_mode:
            self.results["diff"] = {"before": self.before, "after": self.after}

    # ---- S3 / SNS ---------------------------------------------------------------------

    def connect_s3(self):
        import botocore.config
        import botocore.exceptions
        p = self.params
        conn = s3.connection_options(p)
        session = boto_session(conn)
        region = conn.region or session.region_name or "us-east-1"
        verify = conn.verify
        config = botocore.config.Config(region_name=region, signature_version="s3v4", s3={"addressing_style": "path"},
                                        retries={"mode": "standard", "max_attempts": 5})
        if session.get_credentials() is None:
            raise CvmfsError("no S3 credentials: give access_key and secret_key (the bucket owner's), or a profile")
        try:
            self.s3 = session.client("s3", endpoint_url=p["endpoint_url"] or None, config=config, verify=verify)
            self.sns = session.client("sns", endpoint_url=p["endpoint_url"] or None, config=config, verify=verify)
        except (ValueError, botocore.exceptions.BotoCoreError) as error:
            raise CvmfsError("cannot create S3/SNS clients for endpoint_url=%r: %s" % (p["endpoint_url"], error),
                             exception=error)
        self.signed = rgw.SignedRequests(session, self.s3.meta.endpoint_url, region, verify=verify)

    # ---- present ----------------------------------------------------------------------

    def present(self, broker):
        p = self.params
        endpoint = rgw.push_endpoint(p["push_endpoint"], p["push_username"], p["push_password"])
        attributes = rgw.topic_attributes(endpoint, self.exchange, p["ack_level"], p["persistent"],
                                          p["push_verify_ssl"], p["push_ca_location"])
        queue_type = p["queue_type"]
        if queue_type == "auto":
            queue_type = "quorum" if broker.supports_quorum_queues() else "classic"
        elif queue_type == "quorum" and not broker.supports_quorum_queues():
            raise CvmfsError("queue_type=quorum needs RabbitMQ 3.8 or later; the broker is %s. Use queue_type: auto"
                             % ".".join(map(str, broker.server_version())))
        self.results["queue_type"] = queue_type
        # 0. what can be refused without changing anything: a missing bucket, an exchange clash
        rgw.get_notifications(self.s3, p["bucket"])
        rgw.check_exchange(self.sns, self.topic, attributes)
        # 1. the broker side, complete before any event can be sent
        if broker.ensure_exchange(self.exchange):
            self.changes.append("exchange %s" % self.exchange)
        if broker.ensure_exchange(self.dlx):
            self.changes.append("exchange %s" % self.dlx)
        if broker.ensure_queue(self.dlq, _amqp.queue_arguments(queue_type)):
            self.changes.append("queue %s" % self.dlq)
        broker.bind(self.dlq, self.dlx, self.queue)
        arguments = _amqp.queue_arguments(queue_type, self.dlx, self.queue, p["delivery_limit"])
        if broker.ensure_queue(self.queue, arguments):
            self.changes.append("queue %s" % self.queue)
        broker.bind(self.queue, self.exchange, self.topic)
        # 2. the topic
        changed, arn, before, names = rgw.ensure_topic(self.sns, self.topic, attributes, self.check_mode)
        if changed:
            self.changes.append("topic %s (%s)" % (self.topic, ", ".join(names)))
        self.before["topic"] = _redacted(before)
        self.after["topic"] = _redacted(attributes)
        self.results["topic"] = _redacted(attributes)
        self.results["topic_arn"] = arn
        # 3. the notification (written again after a topic change: RGW keeps a copy of the topic)
        wanted = rgw.notification_entry(self.name, arn, p["prefix"], p["events"])
        changed, before = rgw.ensure_notification(self.s3, p["bucket"], wanted, force=changed, check_mode=self.check_mode)
        if changed:
            self.changes.append("notification %s" % self.name)
        self.before["notification"] = before
        self.after["notification"] = wanted
        self.results["notification"] = wanted

    # ---- absent -----------------------------------------------------------------------

    def absent(self, broker):
        p = self.params
        changed, before = rgw.delete_notification(self.s3, p["bucket"], self.name, self.signed.delete, self.check_mode)
        if changed:
            self.changes.append("notification %s" % self.name)
        self.before["notification"] = before
        self.after["notification"] = None
        arn = rgw.topic_arn(self.sns, self.topic)
        self.before["topic"] = _redacted(rgw.get_topic(self.sns, arn)) if arn else None
        self.after["topic"] = None
        if rgw.delete_topic(self.sns, self.topic, self.check_mode):
            self.changes.append("topic %s" % self.topic)
        for queue in (self.queue, self.dlq):
            if broker.delete_queue(queue):
                self.changes.append("queue %s" % queue)


def _redacted(attributes):
    if attributes is None:
        return None
    result = dict(attributes)
    if result.get("push-endpoint"):
        result["push-endpoint"] = rgw.redact(result["push-endpoint"])
    return result


def main():
    BucketNotificationModule()()


if __name__ == "__main__":
    main()
