# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ceph RGW bucket notifications to AMQP: SNS-compatible topics and S3 notification entries.

Internal to sharedsw.cvmfs; may change in any release. No Ansible import. Functions take boto3
clients (``sns``, ``s3``) so they can be tested with mocks; every failure is a
:class:`CvmfsError` naming the bucket, topic or notification and what would fix it.

Owns topics and notification entries; the AMQP side is ``_amqp``'s. Must not import Ansible,
the host programs, or boto3 at import time: callers pass clients, and botocore is imported only
to sign the one raw RGW request.

RGW behaviour this code relies on (Ceph Pacific 16.2, checked against a real RGW):

* ``CreateTopic`` is an upsert: the same name with other attributes updates the topic.
* A bucket notification keeps a COPY of its topic taken when the notification was written:
  after a topic update the notification must be written again, or events keep going to the
  old endpoint/exchange.
* ``PutBucketNotificationConfiguration`` adds or replaces the listed notifications by id and
  leaves the others alone; removing one needs RGW's ``DELETE /<bucket>?notification=<id>``.
  Deleting a topic does not remove the notifications that reference it.
* ``ListTopics`` may list topics that no longer exist (their attributes are ``NoSuchEntity``).
* RGW never declares the AMQP exchange: without it, events are dropped while the S3 request
  still succeeds. Declare the exchange (and the queues) first.
* One AMQP endpoint URL carries one exchange: a second topic with the same URL and another
  exchange fails with "exchange mismatch" in the RGW log. Use one exchange per endpoint.
* Credentials in an ``amqp://`` URL are refused ("sending password over insecure transport");
  they are accepted with ``amqps://``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from ._common import CvmfsError

EVENTS = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
ACK_LEVELS = ("broker", "none", "routable")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,256}$")
#: topic attributes this code owns (compared and written); anything else RGW keeps is ignored
TOPIC_ATTRIBUTES = ("push-endpoint", "amqp-exchange", "amqp-ack-level", "persistent", "verify-ssl", "ca-location")


def _error_code(error):
    response = getattr(error, "response", None) or {}
    return (response.get("Error") or {}).get("Code"), (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")


def check_name(kind, name):
    if not name or not _NAME_RE.match(name):
        raise CvmfsError("%s %r is not valid: use 1 to 256 letters, digits, '.', '-' or '_'" % (kind, name))
    return name


def push_endpoint(url, username=None, password=None):
    """The push endpoint URL RGW is given: ``url`` with the credentials (URL-escaped) added.

    ``url`` itself must not carry credentials; credentials need ``amqps://`` (RGW refuses them
    over plain AMQP).
    """
    parts = urlsplit(url or "")
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise CvmfsError("push_endpoint %r must be an amqp:// or amqps:// URL such as amqp://rabbitmq.example.org:5672"
                         % (url,))
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise CvmfsError("push_endpoint must not contain credentials; give push_username and push_password "
                         "(they are kept out of logs and results)")
    if bool(username) != bool(password):
        raise CvmfsError("give both push_username and push_password, or neither (RGW then logs in as guest)")
    if not username:
        return url
    if parts.scheme != "amqps":
        raise CvmfsError("push_username/push_password need an amqps:// push_endpoint: RGW refuses to send a password "
                         "over plain AMQP (\"sending password over insecure transport\")")
    netloc = "%s:%s@%s" % (quote(username, safe=""), quote(password, safe=""), parts.netloc)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redact(url):
    """``url`` with its password replaced by ``********``."""
    parts = urlsplit(url or "")
    if parts.password is None:
        return url
    netloc = "%s:********@%s" % (parts.username, parts.netloc.rsplit("@", 1)[1])
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def topic_attributes(endpoint, exchange, ack_level="broker", persistent=True, verify_ssl=True, ca_location=None):
    if ack_level not in ACK_LEVELS:
        raise CvmfsError("amqp_ack_level must be one of %s, not %r" % (", ".join(ACK_LEVELS), ack_level))
    attributes = {
        "push-endpoint": endpoint,
        "amqp-exchange": check_name("exchange", exchange),
        "amqp-ack-level": ack_level,
        "persistent": "true" if persistent else "false",
    }
    if endpoint.startswith("amqps:"):
        attributes["verify-ssl"] = "true" if verify_ssl else "false"
        if ca_location:
            attributes["ca-location"] = ca_location
    return attributes


def topic_arn(sns, name):
    """ARN of topic ``name`` (found by listing; None when there is none)."""
    for topic in list_topics(sns):
        if topic.rsplit(":", 1)[-1] == name:
            return topic
    return None


def list_topics(sns):
    arns = []
    token = None
    try:
        while True:
            page = sns.list_topics(**({"NextToken": token} if token else {}))
            arns.extend(t["TopicArn"] for t in page.get("Topics", []))
            token = page.get("NextToken")
            if not token:
                break
    except Exception as error:  # pylint: disable=broad-except
        raise CvmfsError("cannot list the SNS topics of the S3 endpoint: %s" % error, exception=error)
    seen = []
    for arn in arns:  # RGW may list a topic twice
        if arn not in seen:
            seen.append(arn)
    return seen


def get_topic(sns, arn):
    """The attributes (:data:`TOPIC_ATTRIBUTES`) of the topic ``arn``, or None if it does not exist."""
    try:
        reply = sns.get_topic_attributes(TopicArn=arn)
    except Exception as error:  # pylint: disable=broad-except
        code, status = _error_code(error)
        if code in ("NoSuchEntity", "NotFound", "NoSuchKey") or status == 404:
            return None
        raise CvmfsError("cannot read the topic %s: %s" % (arn, error), exception=error)
    attributes = reply.get("Attributes") or {}
    endpoint = attributes.get("EndPoint")
    args = {}
    if endpoint:
        try:
            info = json.loads(endpoint)
        except ValueError:
            info = {}
        args = dict(parse_qsl(info.get("EndpointArgs") or "", keep_blank_values=True))
        if info.get("EndpointAddress"):
            args.setdefault("push-endpoint", info["EndpointAddress"])
        if info.get("Persistent") is not None:
            args.setdefault("persistent", str(info["Persistent"]).lower())
    else:  # an AWS-shaped answer: attributes at the top level
        args = dict((k, v) for k, v in attributes.items() if k in TOPIC_ATTRIBUTES)
    return dict((k, args[k]) for k in TOPIC_ATTRIBUTES if k in args)


def topic_differences(current, wanted):
    """Attribute names whose values differ (RGW's defaults count as set)."""
    defaults = {"amqp-ack-level": "broker", "persistent": "false", "verify-ssl": "true"}
    names = []
    for name in TOPIC_ATTRIBUTES:
        have = (current or {}).get(name, defaults.get(name))
        want = wanted.get(name, defaults.get(name))
        if name == "verify-ssl" and not (wanted.get("push-endpoint") or "").startswith("amqps:"):
            continue
        if name == "push-endpoint":  # RGW may or may not hand the password back
            have, want = redact(have), redact(want)
        if have != want:
            names.append(name)
    return names


def exchange_conflicts(sns, name, attributes):
    """Other topics that push to the same endpoint URL with another exchange (RGW Pacific allows
    one exchange per endpoint URL; the second one's events are lost with "exchange mismatch")."""
    conflicts = []
    for arn in list_topics(sns):
        if arn.rsplit(":", 1)[-1] == name:
            continue
        other = get_topic(sns, arn)
        if other and other.get("push-endpoint") == attributes["push-endpoint"] \
                and other.get("amqp-exchange") != attributes["amqp-exchange"]:
            conflicts.append((arn, other.get("amqp-exchange")))
    return conflicts


def ensure_topic(sns, name, attributes, check_mode=False):
    """Create or update topic ``name``. Returns ``(changed, arn, before, changed_names)``."""
    arn = topic_arn(sns, name)
    current = get_topic(sns, arn) if arn else None
    if current is not None:
        names = topic_differences(current, attributes)
        if not names:
            return False, arn, current, []
    else:
        names = list(attributes)
    check_exchange(sns, name, attributes)
    if check_mode:
        return True, arn or "arn:aws:sns:::%s" % name, current, names
    try:
        arn = sns.create_topic(Name=name, Attributes=attributes)["TopicArn"]
    except Exception as error:  # pylint: disable=broad-except
        raise CvmfsError("cannot create or update the topic %s (push endpoint %s): %s. RGW refuses credentials in an "
                         "amqp:// URL and unreachable or malformed endpoints; its log says which"
                         % (name, redact(attributes["push-endpoint"]), error), exception=error)
    return True, arn, current, names


def check_exchange(sns, name, attributes):
    """Refuse a topic whose endpoint URL already carries another exchange (see :func:`exchange_conflicts`)."""
    conflicts = exchange_conflicts(sns, name, attributes)
    if conflicts:
        raise CvmfsError("topic %s would push to %s with exchange %s, but %s already push there with exchange %s: RGW "
                         "uses one exchange per endpoint URL and would drop one side's events (\"exchange mismatch\"). "
                         "Use the same exchange for every topic of one endpoint (routing keys tell the repositories "
                         "apart)." % (name, redact(attributes["push-endpoint"]), attributes["amqp-exchange"],
                                      ", ".join(a for a, _e in conflicts), conflicts[0][1]))


def delete_topic(sns, name, check_mode=False):
    arn = topic_arn(sns, name)
    if not arn or get_topic(sns, arn) is None:
        return False
    if not check_mode:
        try:
            sns.delete_topic(TopicArn=arn)
        except Exception as error:  # pylint: disable=broad-except
            code, status = _error_code(error)
            if code in ("NoSuchEntity", "NotFound") or status == 404:
                return False
            raise CvmfsError("cannot delete the topic %s: %s" % (name, error), exception=error)
    return True


# --------------------------------------------------------------------------------------------
# Bucket notifications


def notification_entry(notification_id, arn, prefix, events=None):
    entry = {"Id": check_name("notification id", notification_id), "TopicArn": arn,
             "Events": sorted(events or EVENTS)}
    if prefix:
        entry["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}
    return entry


def _normalise(entry):
    rules = (((entry or {}).get("Filter") or {}).get("Key") or {}).get("FilterRules") or []
    return {
        "Id": entry.get("Id"),
        "TopicArn": entry.get("TopicArn"),
        "Events": sorted(entry.get("Events") or []),
        "Filter": sorted((r.get("Name", "").lower(), r.get("Value")) for r in rules),
    }


def get_notifications(s3, bucket):
    try:
        reply = s3.get_bucket_notification_configuration(Bucket=bucket)
    except Exception as error:  # pylint: disable=broad-except
        code, _status = _error_code(error)
        if code == "NoSuchBucket":
            raise CvmfsError("bucket %s does not exist; create it first (or fix bucket)" % bucket, exception=error)
        raise CvmfsError("cannot read the notifications of bucket %s: %s" % (bucket, error), exception=error)
    return list(reply.get("TopicConfigurations") or [])


def find_notification(s3, bucket, notification_id):
    for entry in get_notifications(s3, bucket):
        if entry.get("Id") == notification_id:
            return entry
    return None


def ensure_notification(s3, bucket, wanted, force=False, check_mode=False):
    """Write ``wanted`` (a TopicConfiguration) unless the bucket already has it (``force``:
    write anyway, e.g. after its topic changed). Other notifications of the bucket are kept.
    Returns ``(changed, before)``."""
    entries = get_notifications(s3, bucket)
    before = None
    for entry in entries:
        if entry.get("Id") == wanted["Id"]:
            before = entry
    if before is not None and _normalise(before) == _normalise(wanted) and not force:
        return False, before
    if check_mode:
        return True, before
    others = [e for e in entries if e.get("Id") != wanted["Id"]]
    try:
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"TopicConfigurations": others + [wanted]})
    except Exception as error:  # pylint: disable=broad-except
        code, _status = _error_code(error)
        hint = ""
        if code in ("NoSuchKey", "NotFound", "NoSuchEntity"):
            hint = " (RGW answers NoSuchKey when the topic does not exist)"
        raise CvmfsError("cannot write notification %s on bucket %s: %s%s" % (wanted["Id"], bucket, error, hint),
                         exception=error)
    return True, before


def delete_notification(s3, bucket, notification_id, signed_delete, check_mode=False):
    """Remove one notification with RGW's ``DELETE /<bucket>?notification=<id>``
    (``signed_delete(path_and_query)`` sends it). Returns ``(changed, before)``."""
    before = find_notification(s3, bucket, notification_id)
    if before is None:
        return False, None
    if not check_mode:
        try:
            signed_delete("/%s?notification=%s" % (quote(bucket, safe=""), quote(notification_id, safe="")))
        except CvmfsError:
            raise
        except Exception as error:  # pylint: disable=broad-except
            raise CvmfsError("cannot delete notification %s of bucket %s: %s" % (notification_id, bucket, error),
                             exception=error)
        if find_notification(s3, bucket, notification_id) is not None:
            raise CvmfsError("notification %s of bucket %s is still there after DELETE ?notification=%s; this S3 "
                             "server may not implement RGW's notification deletion"
                             % (notification_id, bucket, notification_id))
    return True, before


class SignedRequests:
    """Send SigV4-signed requests to the S3 endpoint for calls boto3 lacks (RGW extensions)."""

    def __init__(self, session, endpoint_url, region, verify=True, timeout=30):
        self.session = session
        self.endpoint_url = (endpoint_url or "").rstrip("/")
        self.region = region
        self.verify = verify
        self.timeout = timeout

    def delete(self, path_and_query):
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.httpsession import URLLib3Session
        credentials = self.session.get_credentials()
        if credentials is None:
            raise CvmfsError("no S3 credentials to sign the request with")
        request = AWSRequest(method="DELETE", url=self.endpoint_url + path_and_query)
        S3SigV4Auth(credentials.get_frozen_credentials(), "s3", self.region).add_auth(request)
        response = URLLib3Session(verify=self.verify, timeout=self.timeout).send(request.prepare())
        if response.status_code not in (200, 204):
            raise CvmfsError("DELETE %s answered HTTP %d: %s" % (path_and_query, response.status_code,
                                                                 (response.text or "")[:300]))
        return response.status_code
