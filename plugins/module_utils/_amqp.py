# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RabbitMQ (AMQP 0-9-1, pika) client of the collection: options, auth methods, retry,
connection and the declarations of the event path.

Internal to sharedsw.cvmfs; may change in any release. No Ansible import: the module
``bucket_notification`` and the notification consumer that runs on publishers (``_events``)
both use it, the latter with the distribution's Python and pika (Debian 12 ships pika 1.2).

Owns the broker connection and declarations. Must not import Ansible (it runs on hosts from
the host-program archive; relative imports only) nor the files that use it (``_announce``,
``_event*``, ``_snapshot_listener``).

Public surface:

* :data:`ARGSPEC` -- the connection and auth options of modules (``amqp_*``);
  :func:`options_from_params` turns them into the plain option dict everything else takes
  (``host``, ``port``, ``vhost``, ``auth_method``, ``username``, ``password``, ``tls``, ...).
* :class:`AmqpRetry` -- which pika errors a retry can fix.
* :class:`Broker` -- ``Broker(options).connect()``; idempotent declarations that report whether
  they changed anything (:meth:`Broker.ensure_exchange`, :meth:`Broker.ensure_queue`, ...).

Environment policy: nothing is read from the environment. Every failure is a
:class:`CvmfsError` that names the broker, the object and what would fix it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os
import socket
import ssl
import time
import traceback

try:
    import pika
    import pika.exceptions
except ImportError:
    HAS_PIKA = False
    PIKA_IMP_ERR = traceback.format_exc()
else:
    HAS_PIKA = True
    PIKA_IMP_ERR = None

from ._common import CvmfsError, Retry, describe_error

#: connection and auth options of modules; the doc fragment sharedsw.cvmfs._amqp documents them
ARGSPEC = dict(
    amqp_auth_method=dict(type="str", default="plain", choices=["external", "plain"]),
    amqp_ca_cert=dict(type="path"),
    amqp_client_cert=dict(type="path"),
    amqp_client_key=dict(type="path", no_log=False),
    amqp_host=dict(type="str", default="localhost"),
    amqp_password=dict(type="str", no_log=True),
    amqp_port=dict(type="int"),
    amqp_retries=dict(type="int", default=3),
    amqp_timeout=dict(type="int", default=30),
    amqp_tls=dict(type="bool", default=False),
    amqp_username=dict(type="str"),
    amqp_validate_certs=dict(type="bool", default=True),
    amqp_vhost=dict(type="str", default="/"),
)

DEFAULTS = dict((name[len("amqp_"):], spec.get("default")) for name, spec in ARGSPEC.items())
DEFAULTS["heartbeat"] = 60

# reply codes (AMQP 0-9-1)
NOT_FOUND = 404
PRECONDITION_FAILED = 406
ACCESS_REFUSED = 403
CONNECTION_FORCED = 320


def close_quietly(connection):
    """Close a pika connection if it is open; a failure to close one that is going away is of no interest."""
    if connection is None:
        return
    try:
        if connection.is_open:
            connection.close()
    except Exception:  # pylint: disable=broad-except
        pass


def options_from_params(params):
    """The plain option dict from a module's ``amqp_*`` parameters."""
    return dict((name[len("amqp_"):], params.get(name)) for name in ARGSPEC)


def resolve_options(options):
    """A copy of ``options`` with defaults filled in (unknown keys are kept)."""
    resolved = dict(DEFAULTS)
    resolved.update((k, v) for k, v in (options or {}).items() if v is not None)
    if not resolved.get("port"):
        resolved["port"] = 5671 if resolved["tls"] else 5672
    return resolved


def options_from_config(amqp, connection_name, retries=None):
    """Resolved options from a host program's config ``amqp`` dict: its ``password_file`` read (the
    password never sits in the config, which is world-readable), ``connection_name`` and
    ``retries`` filled in where the config has none."""
    amqp = dict(amqp or {})
    password_file = amqp.pop("password_file", None)
    if password_file:
        try:
            with open(password_file) as handle:
                amqp["password"] = handle.read().strip()
        except (IOError, OSError) as error:
            raise CvmfsError("cannot read the AMQP password file %s: %s" % (password_file, error))
    amqp.setdefault("connection_name", connection_name)
    if retries is not None:
        amqp.setdefault("retries", retries)
    return resolve_options(amqp)


def is_connection_error(error):
    """Whether ``error`` means the broker connection or channel is gone (reconnect), not a bug."""
    if pika is None:
        return False
    return isinstance(error, (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError,
                              pika.exceptions.ConnectionClosed, pika.exceptions.ChannelClosed,
                              pika.exceptions.StreamLostError, pika.exceptions.ChannelWrongStateError,
                              pika.exceptions.ConnectionWrongStateError, OSError, EOFError))


class ReconnectingClient:
    """The connect / consume / reconnect loop of a long-running AMQP client (the notification
    consumer, the snapshot listener). A subclass provides ``connect()``, ``loop()``,
    ``disconnect()``, ``say(event, level, **fields)``, ``stopping``, ``config["reconnect_max"]``,
    and may override the two hooks."""

    stopping = False

    def serve(self):
        """Connect, consume, reconnect with a doubling delay; returns when asked to stop."""
        delay = 1.0
        while not self.stopping:
            try:
                self.connect()
                delay = 1.0
                self.loop()
            except CvmfsError as error:
                self.connection_failed("broker_unreachable", "error", error.message, delay)
            except Exception as error:  # pylint: disable=broad-except
                if not is_connection_error(error):
                    raise
                self.connection_failed("connection_lost", "warning", describe_error(error), delay)
            finally:
                self.disconnect()
            if self.stopping:
                break
            self.between_connections(delay)
            delay = min(delay * 2, float(self.config["reconnect_max"]))

    def connection_failed(self, event, level, message, delay):
        self.say(event, level, message=message, retry_in=round(delay, 1))

    def between_connections(self, delay):
        """Wait ``delay`` seconds, or less when asked to stop."""
        deadline = time.time() + delay
        while not self.stopping and time.time() < deadline:
            time.sleep(min(0.2, max(deadline - time.time(), 0)))


class AmqpRetry(Retry):
    """Retry what a second attempt can fix: refused or lost connections, a broker shutting down.
    Not: wrong credentials, a missing vhost, TLS verification failures."""

    @staticmethod
    def is_transient(error):
        if isinstance(error, ssl.SSLError):
            return False
        if HAS_PIKA:
            permanent = (pika.exceptions.ProbableAuthenticationError, pika.exceptions.ProbableAccessDeniedError,
                         pika.exceptions.AuthenticationError, pika.exceptions.IncompatibleProtocolError)
            if isinstance(error, permanent):
                return False
            if isinstance(error, pika.exceptions.ConnectionClosedByBroker):
                return error.reply_code == CONNECTION_FORCED
            if isinstance(error, pika.exceptions.AMQPConnectionError):
                cause = error.args[0] if error.args else None
                if isinstance(cause, BaseException) and not AmqpRetry.is_transient(cause):
                    return False
                return True
        return isinstance(error, (socket.error, OSError, EOFError))


# --------------------------------------------------------------------------------------------
# Auth methods: one small class each, selected by ``auth_method``.


class AuthMethod:
    """``NAME`` is the ``auth_method`` value, ``OPTIONS`` the options only it consumes,
    ``REQUIRED`` those it cannot do without. ``validate()`` is offline; ``credentials()``
    returns the pika credentials object."""

    NAME = None
    OPTIONS = ()
    REQUIRED = ()

    def __init__(self, options):
        self.options = options

    def validate(self):
        for option in self.REQUIRED:
            if not self.options.get(option):
                raise CvmfsError("AMQP auth_method=%s needs %s" % (self.NAME, option))

    def credentials(self):
        raise NotImplementedError

    def describe(self):
        return self.NAME


class PlainAuth(AuthMethod):
    """User name and password (SASL PLAIN); use TLS unless the broker is on loopback
    (:func:`cleartext_warning` says so otherwise)."""

    NAME = "plain"
    OPTIONS = ("username", "password")
    REQUIRED = ("username", "password")

    def credentials(self):
        return pika.PlainCredentials(self.options["username"], self.options["password"], erase_on_connect=False)

    def describe(self):
        return "user %s" % self.options["username"]


class ExternalAuth(AuthMethod):
    """The TLS client certificate is the identity (SASL EXTERNAL, rabbitmq_auth_mechanism_ssl)."""

    NAME = "external"
    OPTIONS = ()
    REQUIRED = ("client_cert",)

    def validate(self):
        super(ExternalAuth, self).validate()
        if not self.options.get("tls"):
            raise CvmfsError("AMQP auth_method=external authenticates with the TLS client certificate; set tls: true")
        for option in ("username", "password"):
            if self.options.get(option):
                raise CvmfsError("AMQP %s belongs to auth_method=plain; remove it or set auth_method: plain" % option)

    def credentials(self):
        return pika.credentials.ExternalCredentials()

    def describe(self):
        return "the client certificate %s" % self.options["client_cert"]


# keep alphabetical
AUTH_METHODS = dict((cls.NAME, cls) for cls in (ExternalAuth, PlainAuth))


def validate(options):
    """Offline checks of resolved options; returns the auth method object."""
    if options["auth_method"] not in AUTH_METHODS:
        raise CvmfsError("AMQP auth_method must be one of %s, not %r" % (", ".join(sorted(AUTH_METHODS)),
                                                                         options["auth_method"]))
    if not options.get("host"):
        raise CvmfsError("AMQP host is empty; give the broker's host name")
    for option in ("ca_cert", "client_cert", "client_key"):
        path = options.get(option)
        if path and not os.path.isfile(path):
            raise CvmfsError("AMQP %s %s is not a readable file" % (option, path))
        if path and not options.get("tls"):
            raise CvmfsError("AMQP %s is set but tls is false; set tls: true or remove %s" % (option, option))
    if options.get("client_key") and not options.get("client_cert"):
        raise CvmfsError("AMQP client_key needs client_cert")
    if options.get("ca_cert") and not options.get("validate_certs", True):
        raise CvmfsError("AMQP ca_cert is set but validate_certs is false; keep validate_certs true to verify against that CA")
    if options.get("retries") is None or int(options["retries"]) < 0:
        raise CvmfsError("AMQP retries must be 0 or more, not %r" % options.get("retries"))
    if not options.get("timeout") or int(options["timeout"]) <= 0:
        raise CvmfsError("AMQP timeout must be a positive number of seconds, not %r" % options.get("timeout"))
    auth = AUTH_METHODS[options["auth_method"]](options)
    auth.validate()
    return auth


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cleartext_warning(options):
    """The warning for a PLAIN login without TLS to a broker that is not on loopback (the
    password crosses the network in clear), or None. Names are not resolved: only ``localhost``
    and loopback addresses count as loopback, as for the Vault client's plain-HTTP warning."""
    if options.get("auth_method") != PlainAuth.NAME or options.get("tls") or _is_loopback(options.get("host")):
        return None
    return ("AMQP auth_method=plain without tls sends the password for user %s to %s in clear; set tls: true "
            "(and port 5671) or use a broker on loopback" % (options.get("username"), describe(options)))


def describe(options):
    """``amqp[s]://host:port/vhost`` (never credentials)."""
    return "%s://%s:%s/%s" % ("amqps" if options.get("tls") else "amqp", options.get("host"), options.get("port"),
                              (options.get("vhost") or "/").replace("/", "%2F"))


def connection_parameters(options, auth=None):
    """pika ``ConnectionParameters`` for resolved ``options``."""
    if not HAS_PIKA:
        raise CvmfsError("the Python library pika is needed to talk to RabbitMQ (Debian/Ubuntu: python3-pika, "
                         "EL: python3-pika from EPEL)", pika_import_error=PIKA_IMP_ERR)
    auth = auth or validate(options)
    ssl_options = None
    if options.get("tls"):
        if options.get("validate_certs", True):
            context = ssl.create_default_context(cafile=options.get("ca_cert") or None)
        else:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if options.get("client_cert"):
            context.load_cert_chain(options["client_cert"], options.get("client_key") or None)
        ssl_options = pika.SSLOptions(context, options["host"])
    timeout = float(options["timeout"])
    return pika.ConnectionParameters(
        host=options["host"], port=int(options["port"]), virtual_host=options.get("vhost") or "/",
        credentials=auth.credentials(), ssl_options=ssl_options, heartbeat=int(options.get("heartbeat") or 60),
        blocked_connection_timeout=max(timeout, 60.0), connection_attempts=1, socket_timeout=timeout,
        stack_timeout=timeout + 5, client_properties={"connection_name": options.get("connection_name")
                                                      or "sharedsw.cvmfs"})


def translate(error, options, action):
    """A :class:`CvmfsError` that says what failed and what would fix it."""
    where = describe(options)
    if isinstance(error, CvmfsError):
        return error
    if HAS_PIKA:
        if isinstance(error, (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError)):
            return CvmfsError("%s refused the login (%s) while trying to %s; check the AMQP user name and password "
                              "(or the client certificate for auth_method=external)"
                              % (where, AUTH_METHODS[options["auth_method"]](options).describe(), action), exception=error)
        if isinstance(error, pika.exceptions.ProbableAccessDeniedError):
            return CvmfsError("%s denied access to vhost %r while trying to %s; grant the user permissions on it "
                              "(rabbitmqctl set_permissions -p VHOST USER ...)" % (where, options.get("vhost"), action),
                              exception=error)
        if isinstance(error, pika.exceptions.ChannelClosedByBroker):
            return CvmfsError("%s refused to %s: %s %s" % (where, action, error.reply_code, error.reply_text),
                              exception=error, reply_code=error.reply_code)
        if isinstance(error, pika.exceptions.AMQPConnectionError):
            cause = error.args[0] if error.args else error
            return CvmfsError("cannot reach the AMQP broker at %s to %s: %s; check amqp host, port and tls"
                              % (where, action, _short(cause)), exception=error)
    if isinstance(error, ssl.SSLError):
        return CvmfsError("TLS with %s failed while trying to %s: %s; check ca_cert / validate_certs"
                          % (where, action, error), exception=error)
    return CvmfsError("%s: cannot %s: %s" % (where, action, _short(error)), exception=error)


def _short(error):
    text = str(error) or type(error).__name__
    if text.startswith("(") and ")" in text:
        return text
    return text


class Broker:
    """One connection to RabbitMQ and the idempotent declarations of the event path.

    ``warn`` receives advisory messages (a password that would cross the network in clear).

    Every ``ensure_*`` returns True when it changed something; with ``check_mode`` nothing is
    created or deleted, the answer is what would have happened. A probe that fails closes the
    channel (AMQP says so), so each probe uses a channel of its own.
    """

    def __init__(self, options, check_mode=False, sleep=None, warn=None):
        self.options = resolve_options(options)
        self.auth = validate(self.options)
        warning = cleartext_warning(self.options)
        if warning and warn is not None:
            warn(warning)
        self.check_mode = check_mode
        self.connection = None
        self.sleep = sleep

    def connect(self):
        params = connection_parameters(self.options, self.auth)
        kwargs = {"retries": int(self.options["retries"])}
        if self.sleep is not None:
            kwargs["sleep"] = self.sleep
        try:
            self.connection = AmqpRetry.backoff(**kwargs)(pika.BlockingConnection)(params)
        except Exception as error:  # pylint: disable=broad-except
            raise translate(error, self.options, "connect")
        return self

    def close(self):
        close_quietly(self.connection)
        self.connection = None

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc_info):
        self.close()

    # ---- facts ------------------------------------------------------------------------

    def server_version(self):
        """``(major, minor, patch)`` of the broker, from the connection's server properties."""
        props = getattr(self.connection._impl, "server_properties", None) or {}
        version = props.get("version", b"")
        if isinstance(version, bytes):
            version = version.decode("utf-8", "replace")
        numbers = []
        for part in str(version).split(".")[:3]:
            digits = "".join(c for c in part if c.isdigit())
            numbers.append(int(digits) if digits else 0)
        return tuple(numbers + [0] * (3 - len(numbers)))

    def supports_quorum_queues(self):
        return self.server_version() >= (3, 8, 0)

    # ---- probes -----------------------------------------------------------------------

    def _probe(self, action, call):
        """True if ``call(channel)`` succeeds, False on 404; other refusals are errors."""
        channel = self.connection.channel()
        try:
            call(channel)
            return True
        except pika.exceptions.ChannelClosedByBroker as error:
            if error.reply_code == NOT_FOUND:
                return False
            raise translate(error, self.options, action)
        finally:
            if channel.is_open:
                channel.close()

    def exchange_exists(self, name):
        return self._probe("check exchange %s" % name, lambda ch: ch.exchange_declare(name, passive=True))

    def queue_exists(self, name):
        return self._probe("check queue %s" % name, lambda ch: ch.queue_declare(name, passive=True))

    # ---- declarations -----------------------------------------------------------------

    def _declare(self, action, call, hint):
        channel = self.connection.channel()
        try:
            call(channel)
        except pika.exceptions.ChannelClosedByBroker as error:
            if error.reply_code == PRECONDITION_FAILED:
                raise CvmfsError("%s: cannot %s: it exists with different settings (%s). %s"
                                 % (describe(self.options), action, error.reply_text, hint),
                                 exception=error, reply_code=error.reply_code)
            raise translate(error, self.options, action)
        except Exception as error:  # pylint: disable=broad-except
            raise translate(error, self.options, action)
        finally:
            if channel.is_open:
                channel.close()

    def ensure_exchange(self, name, exchange_type="topic", durable=True):
        existed = self.exchange_exists(name)
        if self.check_mode and not existed:
            return True
        # declaring an existing exchange with other settings fails: that proves equivalence
        if not self.check_mode:
            self._declare("declare the %s %s exchange %s" % ("durable" if durable else "transient", exchange_type, name),
                          lambda ch: ch.exchange_declare(name, exchange_type=exchange_type, durable=durable),
                          "Delete it (rabbitmqctl delete_exchange) or choose another exchange name.")
        return not existed

    def ensure_queue(self, name, arguments):
        """A durable queue with ``arguments``; an existing queue with other arguments is an error
        (AMQP cannot change them; deleting would lose its messages, so that is left to a human)."""
        existed = self.queue_exists(name)
        if self.check_mode and not existed:
            return True
        if not self.check_mode:
            self._declare("declare queue %s with %s" % (name, _describe_args(arguments)),
                          lambda ch: ch.queue_declare(name, durable=True, arguments=arguments),
                          "Queue arguments cannot be changed; drain and delete the queue "
                          "(rabbitmqctl delete_queue %s), then run again." % name)
        return not existed

    def bind(self, queue, exchange, routing_key):
        """Bind (idempotent). AMQP 0-9-1 cannot list bindings, so this reports no change."""
        if self.check_mode:
            return False
        self._declare("bind queue %s to exchange %s with %s" % (queue, exchange, routing_key),
                      lambda ch: ch.queue_bind(queue, exchange, routing_key=routing_key), "")
        return False

    def delete_queue(self, name):
        if not self.queue_exists(name):
            return False
        if not self.check_mode:
            self._declare("delete queue %s" % name, lambda ch: ch.queue_delete(name), "")
        return True


def _describe_args(arguments):
    return ", ".join("%s=%s" % item for item in sorted((arguments or {}).items())) or "no arguments"


def queue_arguments(queue_type, dead_letter_exchange=None, dead_letter_routing_key=None, delivery_limit=None):
    """The ``x-*`` arguments of a queue of the event path."""
    arguments = {}
    if queue_type == "quorum":
        arguments["x-queue-type"] = "quorum"
        if delivery_limit:
            arguments["x-delivery-limit"] = int(delivery_limit)
    if dead_letter_exchange:
        arguments["x-dead-letter-exchange"] = dead_letter_exchange
        if dead_letter_routing_key:
            arguments["x-dead-letter-routing-key"] = dead_letter_routing_key
    return arguments
