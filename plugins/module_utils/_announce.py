# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Announce a published revision to the stratum-1s: the publisher's half of snapshot-on-publish.

Internal to sharedsw.cvmfs; may change in any release. Pure Python + pika, no Ansible import; the
publisher role installs it with its sibling module_utils files as the package ``sharedsw_cvmfs``.

Must not import Ansible (it runs on hosts from the host-program archive; relative imports only),
boto3, or the programs (``_publish_*``, ``_event*``, ``_snapshot_listener``): the publish run and
the stratum-1's listener both import it.

After a run of the publish job (or of the notification consumer's batch) that published, the job
calls :func:`announce_after_publish`. It reads the revision the stratum-0 now serves and puts one
message on a durable topic exchange (routing key: the repository name)::

    {"repository": "sw.example.org", "revision": 42, "stratum0_url": "http://s0/cvmfs/sw.example.org"}

JSON, persistent, with a message id. Each stratum-1's snapshot listener (``_snapshot_listener``)
consumes it (:func:`parse_announcement`) and snapshots the replica. An announcement is a hint, never a condition of the
publish: whatever goes wrong here is logged as a warning, and the stratum-1s' snapshot timer
replicates the revision on its next run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import json
import time
import uuid

from ._common import CvmfsError
from . import _amqp
from ._cvmfs_signed import manifest_revision
from ._cvmfs_state import CvmfsPaths, is_valid_repo_name, read_storage_object, repository_state

try:
    import pika
    import pika.exceptions
except ImportError:  # reported by _amqp when a connection is attempted
    pika = None

MANIFEST = ".cvmfspublished"
APP_ID = "sharedsw.cvmfs"
MAX_MESSAGE_BYTES = 64 * 1024

Announcement = collections.namedtuple("Announcement", "repository revision stratum0_url")


def amqp_options(amqp, connection_name, retries=None):
    """Resolved, validated AMQP options from a config's ``amqp`` dict (its ``password_file`` read)."""
    options = _amqp.options_from_config(amqp, connection_name, retries)
    _amqp.validate(options)
    return options


def served_revision(state):
    """The revision in the ``.cvmfspublished`` a repository serves (``state``: a
    ``repository_state`` dict; a stratum-0's or a replica's), None when there is none yet."""
    try:
        data = read_storage_object(state, MANIFEST)
    except IOError as error:
        raise CvmfsError("cannot read the %s of %s: %s" % (MANIFEST, state["name"], error))
    if data is None:
        return None
    revision = manifest_revision(data)
    if revision is None:
        raise CvmfsError("the %s of %s is not a manifest with a revision line (S)" % (MANIFEST, state["name"]))
    return revision


def published_revision(repository, paths):
    """``(revision, stratum-0 URL)`` of what the stratum-0 serves now."""
    state = repository_state(repository, paths)
    if state is None:
        raise CvmfsError("the repository %s does not exist on this host" % repository)
    revision = served_revision(state)
    if revision is None:
        raise CvmfsError("the stratum-0 of %s (%s) has no %s" % (repository, state.get("stratum0_url"), MANIFEST))
    return revision, state.get("stratum0_url")


def message(repository, revision, stratum0_url):
    """The body (bytes) and properties of one announcement."""
    body = json.dumps({"repository": repository, "revision": revision, "stratum0_url": stratum0_url},
                      sort_keys=True).encode("utf-8")
    properties = pika.BasicProperties(content_type="application/json", delivery_mode=2, app_id=APP_ID,
                                      message_id=uuid.uuid4().hex, timestamp=int(time.time()))
    return body, properties


class Rejected(Exception):
    """A message that is not an announcement; ``reason`` says why."""

    def __init__(self, reason):
        super(Rejected, self).__init__(reason)
        self.reason = reason


def parse_announcement(body):
    """The :class:`Announcement` in a message body; :class:`Rejected` naming what is wrong."""
    if len(body) > MAX_MESSAGE_BYTES:
        raise Rejected("larger than %d bytes (%d)" % (MAX_MESSAGE_BYTES, len(body)))
    try:
        data = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
    except (UnicodeDecodeError, ValueError) as error:
        raise Rejected("not JSON: %s" % error)
    if not isinstance(data, dict):
        raise Rejected("not a JSON object but %s" % type(data).__name__)
    repository = data.get("repository")
    if not isinstance(repository, str) or not is_valid_repo_name(repository):
        raise Rejected("'repository' must be a repository name such as sw.example.org, not %r" % (repository,))
    revision = data.get("revision")
    if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
        raise Rejected("'revision' must be a whole number >= 0, not %r" % (revision,))
    stratum0_url = data.get("stratum0_url")
    if stratum0_url is not None and not isinstance(stratum0_url, str):
        raise Rejected("'stratum0_url' must be a string, not %r" % (stratum0_url,))
    return Announcement(repository, revision, stratum0_url)


def announce(settings, repository, revision, stratum0_url, warn=None):
    """Publish the announcement (publisher confirms); True when a queue took it, False when none is
    bound to the exchange (no stratum-1 listens). :class:`CvmfsError` on any other failure."""
    options = amqp_options(settings.get("amqp"), "sharedsw-cvmfs-announce", retries=1)
    exchange = settings["exchange"]
    broker = _amqp.Broker(options, warn=warn)
    with broker:
        action = "announce revision %d of %s on exchange %s" % (revision, repository, exchange)
        try:
            channel = broker.connection.channel()
            channel.exchange_declare(exchange, exchange_type="topic", durable=True)
            channel.confirm_delivery()
            body, properties = message(repository, revision, stratum0_url)
            channel.basic_publish(exchange, repository, body, properties, mandatory=True)
        except pika.exceptions.UnroutableError:
            return False
        except Exception as error:  # pylint: disable=broad-except
            raise _amqp.translate(error, broker.options, action)
    return True


def announce_after_publish(config, summary, log):
    """Announce what a publish job run published; never raises (the snapshot timer is the safety net).

    ``config`` is the job's config (its ``announce`` settings, or none: nothing to do), ``summary``
    the run's summary (nothing is announced unless it published or ingested).
    """
    settings = config.get("announce")
    if not settings or not (summary.get("published") or summary.get("ingested")):
        return
    repository = config["repository"]
    try:
        paths = CvmfsPaths(etc_dir=config.get("etc_dir"), spool_dir=config.get("spool_dir"))
        revision, stratum0_url = published_revision(repository, paths)
        routed = announce(settings, repository, revision, stratum0_url, warn=log.warning)
    except Exception as error:  # pylint: disable=broad-except
        reason = error.message if isinstance(error, CvmfsError) else "%s: %s" % (type(error).__name__, error)
        log.warning("could not announce the new revision of %s to the stratum-1s: %s; they replicate it on "
                    "their next timed snapshot" % (repository, reason))
        return
    if routed:
        log.info("announced revision %d of %s to the stratum-1s (exchange %s)"
                 % (revision, repository, settings["exchange"]))
    else:
        log.warning("announced revision %d of %s, but no queue is bound to the exchange %s: no stratum-1 "
                    "listens; they replicate it on their next timed snapshot"
                    % (revision, repository, settings["exchange"]))
