# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Vault / OpenBao client of the collection: options, auth methods, KV v2 calls, error translation.

Internal to sharedsw.cvmfs; may change in any release. No Ansible import: the same code serves
modules (options from ``module.params``), lookup plugins (options from ``get_option``) and tests.

Must not import Ansible (modules and lookups share it), the key layout (``_cvmfs_keys``) or the
host programs; hvac and requests are imported here only, behind a guard.

Public surface:

* :data:`ARGSPEC` -- the connection and auth options every Vault-using plugin accepts.
* :class:`VaultClient` -- ``VaultClient(options).connect()`` validates offline, logs in, checks the
  KV v2 mount, then offers :meth:`VaultClient.read`, :meth:`VaultClient.write`,
  :meth:`VaultClient.read_metadata` and :meth:`VaultClient.delete`. Every failure is a
  :class:`CvmfsError` that names the server, the path and what would fix it.

Environment policy (decided once, here): ``url``, ``namespace`` and ``ca_cert`` fall back to
``VAULT_ADDR`` / ``VAULT_NAMESPACE`` / ``VAULT_CACERT`` and their OpenBao names ``BAO_*``;
``token`` falls back to ``VAULT_TOKEN`` / ``BAO_TOKEN`` *only* when ``auth_method=token``. If the
``VAULT_*`` and ``BAO_*`` variable of one option are both set to different values, that is an
error rather than a guess. Nothing else is read from the environment: not ``~/.vault-token``, not
``VAULT_CLIENT_CERT``, not ``VAULT_SKIP_VERIFY``, not proxy variables or ``~/.netrc``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import inspect
import ipaddress
import os
import re
import time
import traceback

try:
    from urllib.parse import urlsplit
except ImportError:  # pragma: no cover - Python 2
    from urlparse import urlsplit  # type: ignore

try:
    import hvac
    import hvac.exceptions
    import requests
    import requests.exceptions
except ImportError:
    HAS_HVAC = False
    HVAC_IMP_ERR = traceback.format_exc()
else:
    HAS_HVAC = True
    HVAC_IMP_ERR = None

from ._common import CvmfsError, Retry, requests_error_is_transient

# option -> environment variables tried in order (VAULT_* first, then the OpenBao spelling)
ENV_FALLBACKS = {
    "ca_cert": ("VAULT_CACERT", "BAO_CACERT"),
    "namespace": ("VAULT_NAMESPACE", "BAO_NAMESPACE"),
    "token": ("VAULT_TOKEN", "BAO_TOKEN"),
    "url": ("VAULT_ADDR", "BAO_ADDR"),
}

ARGSPEC = dict(
    auth_method=dict(type="str", default="token", choices=["approle", "jwt", "token"]),
    auth_mount_point=dict(type="str"),
    ca_cert=dict(type="path"),
    engine_mount_point=dict(type="str", default="secret"),
    jwt=dict(type="str", no_log=True),
    jwt_role=dict(type="str"),
    namespace=dict(type="str"),
    retries=dict(type="int", default=3),
    role_id=dict(type="str", no_log=False),
    secret_id=dict(type="str", no_log=True),
    timeout=dict(type="int", default=30),
    token=dict(type="str", no_log=True),
    url=dict(type="str"),
    validate_certs=dict(type="bool", default=True),
)

ENV_HELP = {name: " or ".join(names) for name, names in ENV_FALLBACKS.items()}


def resolve_options(options, environ=None):
    """Return a copy of ``options`` (every ARGSPEC key present) with the environment applied.

    Environment variables fill an option only when it is unset; ``token`` only for the token
    auth method, so a ``VAULT_TOKEN`` lying around never rides along with an AppRole login.
    """
    environ = os.environ if environ is None else environ
    resolved = dict((name, spec.get("default")) for name, spec in ARGSPEC.items())
    resolved.update((k, v) for k, v in options.items() if v is not None)
    for option, names in sorted(ENV_FALLBACKS.items()):
        if resolved.get(option) not in (None, ""):
            continue
        if option == "token" and resolved["auth_method"] != "token":
            continue
        found = [(name, environ[name]) for name in names if environ.get(name)]
        if len(set(value for _name, value in found)) > 1:
            raise CvmfsError(
                "%s are both set, to different values; unset one of them or pass the option %s explicitly"
                % (" and ".join(name for name, _value in found), option))
        if found:
            resolved[option] = found[0][1]
    return resolved


class VaultRetry(Retry):
    """Retry what a second attempt can fix: connection drops, 429, 500, 502, 503 (not sealed)."""

    @staticmethod
    def is_transient(error):
        if not HAS_HVAC:
            return False
        dropped = requests_error_is_transient(error, requests)
        if dropped is not None:
            return dropped
        if isinstance(error, hvac.exceptions.VaultDown):
            return "sealed" not in str(error).lower()
        return isinstance(error, (hvac.exceptions.RateLimitExceeded, hvac.exceptions.InternalServerError,
                                  hvac.exceptions.BadGateway))


# --------------------------------------------------------------------------------------------
# Auth methods: one small class each, selected by ``auth_method``.


class AuthMethod:
    """``NAME`` is the ``auth_method`` value, ``OPTIONS`` the options it consumes,
    ``REQUIRED`` those it cannot do without. ``validate()`` is offline; ``authenticate(client)``
    leaves a usable token on the hvac client.
    """

    NAME = None
    OPTIONS = ()
    REQUIRED = ()

    def __init__(self, options):
        self.options = options

    @property
    def mount_point(self):
        return self.options.get("auth_mount_point") or self.NAME

    def validate(self):
        for option in self.REQUIRED:
            if not self.options.get(option):
                where = ""
                if option in ENV_FALLBACKS:
                    where = " (or the environment variable %s)" % ENV_HELP[option]
                raise CvmfsError("auth_method=%s needs the option %s%s" % (self.NAME, option, where))

    def authenticate(self, client):
        raise NotImplementedError

    def describe(self):
        return "auth_method=%s at auth/%s" % (self.NAME, self.mount_point)


class AppRoleAuth(AuthMethod):
    NAME = "approle"
    OPTIONS = ("role_id", "secret_id")
    REQUIRED = ("role_id",)

    def authenticate(self, client):
        client.auth.approle.login(role_id=self.options["role_id"], secret_id=self.options.get("secret_id"),
                                  mount_point=self.mount_point, use_token=True)

    def login_hint(self):
        return "check role_id and secret_id, and that an AppRole auth method is enabled at auth/%s" % self.mount_point


class JwtAuth(AuthMethod):
    NAME = "jwt"
    OPTIONS = ("jwt", "jwt_role")
    REQUIRED = ("jwt", "jwt_role")

    def authenticate(self, client):
        client.auth.jwt.jwt_login(role=self.options["jwt_role"], jwt=self.options["jwt"],
                                  path=self.mount_point, use_token=True)

    def login_hint(self):
        return ("check jwt_role, that the token is signed by a key the JWT auth method at auth/%s trusts, "
                "and that its audience, subject and expiry satisfy the role" % self.mount_point)


class TokenAuth(AuthMethod):
    NAME = "token"
    OPTIONS = ("token",)
    REQUIRED = ("token",)

    def authenticate(self, client):
        client.token = self.options["token"]

    def describe(self):
        return "auth_method=token"

    def login_hint(self):
        return "check the token"


# keep alphabetical
AUTH_METHODS = dict((cls.NAME, cls) for cls in (AppRoleAuth, JwtAuth, TokenAuth))
CREDENTIAL_OPTIONS = sorted(set(opt for cls in AUTH_METHODS.values() for opt in cls.OPTIONS))


def _short_reason(error):
    """The useful tail of a requests/urllib3 connection error, e.g. '[Errno 111] Connection refused'."""
    text = str(error)
    match = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    if match:
        return match.group(0).strip()
    if isinstance(error, requests.exceptions.Timeout):
        return "timed out"
    return type(error).__name__


def _vault_errors(error):
    errors = getattr(error, "errors", None)
    if errors:
        return "; ".join(" ".join(str(e).split()) for e in errors)
    return str(error.args[0]) if error.args and error.args[0] else type(error).__name__


def _accepts(func, name):
    """Whether ``func`` takes the keyword ``name`` (hvac 0.11, Debian 12's python3-hvac, lacks some)."""
    try:
        return name in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return True  # a mock or a builtin: assume the current hvac


def _is_loopback(host):
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class VaultClient:
    """A logged-in connection to one Vault / OpenBao KV v2 mount.

    ``options`` holds the ARGSPEC keys (missing ones take their defaults). ``warn`` receives
    advisory messages (plain-HTTP URL). ``environ`` and ``sleep`` exist for tests.
    """

    def __init__(self, options, warn=None, environ=None, sleep=time.sleep):
        if not HAS_HVAC:
            raise CvmfsError("the Python library hvac (and requests) is needed to talk to Vault",
                             exception=None, hvac_import_error=HVAC_IMP_ERR)
        self.options = resolve_options(options, environ)
        self.warn = warn or (lambda message: None)
        self.sleep = sleep
        self.mount = (self.options["engine_mount_point"] or "").strip("/")
        self.client = None
        self._validate()
        self.auth = AUTH_METHODS[self.options["auth_method"]](self.options)
        self.auth.validate()

    # ---- offline validation -----------------------------------------------------------

    def _validate(self):
        opts = self.options
        if opts["auth_method"] not in AUTH_METHODS:
            raise CvmfsError("auth_method must be one of %s, not %r" % (", ".join(sorted(AUTH_METHODS)), opts["auth_method"]))
        mine = AUTH_METHODS[opts["auth_method"]].OPTIONS
        for option in CREDENTIAL_OPTIONS:
            if option not in mine and opts.get(option) not in (None, ""):
                owner = [name for name, cls in sorted(AUTH_METHODS.items()) if option in cls.OPTIONS]
                raise CvmfsError(
                    "the option %s belongs to auth_method=%s but auth_method is %s; remove %s or set auth_method: %s"
                    % (option, "/".join(owner), opts["auth_method"], option, owner[0]))
        url = opts.get("url")
        if not url:
            raise CvmfsError("no Vault address: set the option url or the environment variable %s "
                             "(for example https://vault.example.org:8200)" % ENV_HELP["url"])
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CvmfsError("url %r is not an http(s) URL; expected e.g. https://vault.example.org:8200" % url)
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            self.warn("url %s uses plain HTTP: tokens and key material cross the network unencrypted; use https" % url)
        if not opts["validate_certs"] and opts.get("ca_cert"):
            raise CvmfsError("ca_cert is set but validate_certs is false; keep validate_certs true to verify against that CA")
        if opts.get("ca_cert") and not os.path.isfile(opts["ca_cert"]):
            raise CvmfsError("ca_cert %s is not a readable file; give the PEM bundle of the CA that signed the Vault server certificate"
                             % opts["ca_cert"])
        if opts["retries"] is None or opts["retries"] < 0:
            raise CvmfsError("retries must be 0 or more, not %r" % opts["retries"])
        if opts["timeout"] is None or opts["timeout"] <= 0:
            raise CvmfsError("timeout must be a positive number of seconds, not %r" % opts["timeout"])
        if not self.mount:
            raise CvmfsError("engine_mount_point must name the KV v2 secrets engine, e.g. secret")

    # ---- connection -------------------------------------------------------------------

    def _build_client(self):
        opts = self.options
        session = requests.Session()
        session.trust_env = False  # no proxy variables, no ~/.netrc, no REQUESTS_CA_BUNDLE
        verify = opts["ca_cert"] if opts.get("ca_cert") else bool(opts["validate_certs"])
        session.verify = verify
        session.cert = None
        # token="" keeps hvac from reading VAULT_TOKEN or ~/.vault-token on its own
        client = hvac.Client(url=opts["url"], token="", cert=None, verify=verify, timeout=opts["timeout"],
                             namespace=opts.get("namespace") or None, session=session)
        client.adapter._kwargs["cert"] = None  # hvac would add VAULT_CLIENT_CERT from its import-time env
        client.token = None
        return client

    def connect(self):
        """Log in and check the KV mount. Returns ``self``."""
        self.client = self._build_client()
        try:
            self._call(self.auth.authenticate, self.client)
        except Exception as error:  # pylint: disable=broad-except
            raise self._translate(error, "log in with %s" % self.auth.describe(), login=True)
        if not self.client.token:
            raise CvmfsError("login with %s returned no token" % self.auth.describe())
        self._check_mount()
        return self

    def _call(self, func, *args, **kwargs):
        return VaultRetry.backoff(retries=self.options["retries"], sleep=self.sleep)(func)(*args, **kwargs)

    def _check_mount(self):
        action = "inspect the secrets engine at %s/" % self.mount
        try:
            info = self._call(self.client.adapter.get, "/v1/sys/internal/ui/mounts/%s" % self.mount)
        except Exception as error:  # pylint: disable=broad-except
            if HAS_HVAC and isinstance(error, (hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest)) \
                    and "preflight" in _vault_errors(error):
                raise CvmfsError(
                    "engine_mount_point %s: no secrets engine is mounted there, or the token's policies grant nothing "
                    "under %s/ (%s). Enable KV v2 with `bao secrets enable -path=%s kv-v2` or fix engine_mount_point"
                    % (self.mount, self.mount, self._token_summary(), self.mount), exception=error)
            if HAS_HVAC and isinstance(error, hvac.exceptions.Forbidden) and not self._token_valid():
                raise CvmfsError(
                    "Vault at %s rejected the token (%s): it is invalid, expired or revoked, or lacks the default "
                    "policy. %s" % (self.options["url"], self.auth.describe(), self._token_source_hint()), exception=error)
            raise self._translate(error, action)
        data = (info or {}).get("data") or {}
        engine = data.get("type")
        version = str((data.get("options") or {}).get("version") or "1")
        if engine not in ("kv", "generic"):
            raise CvmfsError("engine_mount_point %s is a %r secrets engine, not KV; point it at a KV version 2 mount"
                             % (self.mount, engine))
        if version != "2":
            raise CvmfsError(
                "engine_mount_point %s is KV version %s; these keys need KV version 2 (versioned, check-and-set). "
                "Use a KV v2 mount or upgrade this one with `bao kv enable-versioning %s`" % (self.mount, version, self.mount))

    def _token_valid(self):
        try:
            self.client.auth.token.lookup_self()
        except Exception:  # pylint: disable=broad-except
            return False
        return True

    def _token_source_hint(self):
        if self.auth.NAME == "token":
            return "Check the option token (or %s)" % ENV_HELP["token"]
        return "Check the token TTL and policies of the %s role" % self.auth.NAME

    def _token_summary(self):
        """One sentence about the current token, for 'permission denied' messages. Never the token."""
        try:
            info = self.client.auth.token.lookup_self()
        except Exception:  # pylint: disable=broad-except
            return "the token itself is rejected: invalid, expired or revoked (or it lacks the default policy)"
        policies = sorted(((info or {}).get("data") or {}).get("policies") or [])
        return "the token is valid, with policies %s" % (", ".join(policies) or "none")

    def _translate(self, error, action, path=None, capabilities=(), login=False):
        """Turn an hvac/requests error into a CvmfsError that says what to fix."""
        url = self.options["url"]
        if not HAS_HVAC:  # pragma: no cover
            return CvmfsError("Vault: failed to %s: %s" % (action, error), exception=error)
        if isinstance(error, CvmfsError):
            return error
        if isinstance(error, requests.exceptions.SSLError):
            return CvmfsError(
                "TLS verification of %s failed while trying to %s (%s). Give the CA bundle with ca_cert "
                "(or %s)" % (url, action, _short_reason(error), ENV_HELP["ca_cert"]), exception=error)
        if isinstance(error, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
            return CvmfsError(
                "Vault at %s is unreachable (%s) while trying to %s, after %d retries. Check the option url (or %s) "
                "and that the server is running" % (url, _short_reason(error), action, self.options["retries"], ENV_HELP["url"]),
                exception=error)
        if isinstance(error, hvac.exceptions.VaultDown):
            if "sealed" in str(error).lower():
                return CvmfsError("Vault at %s is sealed; unseal it (`bao operator unseal`) and run again" % url,
                                  exception=error)
            return CvmfsError("Vault at %s is unavailable (HTTP 503: %s) while trying to %s"
                              % (url, _vault_errors(error), action), exception=error)
        if isinstance(error, hvac.exceptions.VaultNotInitialized):
            return CvmfsError("Vault at %s is not initialised (`bao operator init`)" % url, exception=error)
        if login and isinstance(error, (hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden,
                                        hvac.exceptions.Unauthorized, hvac.exceptions.InvalidPath)):
            return CvmfsError("login failed with %s: %s; %s" % (self.auth.describe(), _vault_errors(error), self.auth.login_hint()),
                              exception=error)
        if isinstance(error, hvac.exceptions.Forbidden):
            message = "permission denied to %s (%s)" % (action, self._token_summary())
            if path and capabilities:
                message += ". A policy must grant it: path \"%s\" { capabilities = [%s] }" % (
                    path, ", ".join('"%s"' % c for c in capabilities))
            return CvmfsError(message, exception=error, vault_path=path)
        if isinstance(error, hvac.exceptions.InvalidPath):
            return CvmfsError("nothing at %s on %s while trying to %s" % (path or "that path", url, action),
                              exception=error, vault_path=path)
        if isinstance(error, hvac.exceptions.VaultError):
            return CvmfsError("Vault at %s refused to %s: %s" % (url, action, _vault_errors(error)), exception=error,
                              vault_path=path)
        return CvmfsError("unexpected error from Vault at %s while trying to %s: %s" % (url, action, type(error).__name__),
                          exception=error)

    # ---- KV v2 ------------------------------------------------------------------------

    def api_path(self, path, kind="data"):
        """The HTTP API path a policy must name, e.g. ``secret/data/cvmfs/repo/public``."""
        return "%s/%s/%s" % (self.mount, kind, path)

    def _kv(self):
        if self.client is None:
            raise CvmfsError("VaultClient.connect() must be called first")
        return self.client.secrets.kv.v2

    def read(self, path):
        """Return ``(data, version)`` of the latest version, or ``(None, None)`` if there is none
        (never written, deleted, or destroyed)."""
        kv = self._kv()
        kwargs = dict(path=path, mount_point=self.mount)
        if _accepts(kv.read_secret_version, "raise_on_deleted_version"):
            kwargs["raise_on_deleted_version"] = True  # hvac >= 1.0; older hvac always raises on deleted versions
        try:
            response = self._call(kv.read_secret_version, **kwargs)
        except Exception as error:  # pylint: disable=broad-except
            if isinstance(error, hvac.exceptions.InvalidPath):
                return None, None
            raise self._translate(error, "read %s" % self.api_path(path), self.api_path(path), ("read",))
        data = (response or {}).get("data") or {}
        return dict(data.get("data") or {}), (data.get("metadata") or {}).get("version")

    def read_metadata(self, path):
        """Return the KV metadata (``current_version``, ``versions`` ...) or ``None`` if the path is unknown."""
        kv = self._kv()
        try:
            response = self._call(kv.read_secret_metadata, path=path, mount_point=self.mount)
        except Exception as error:  # pylint: disable=broad-except
            if isinstance(error, hvac.exceptions.InvalidPath):
                return None
            raise self._translate(error, "read metadata of %s" % self.api_path(path, "metadata"),
                                  self.api_path(path, "metadata"), ("read",))
        return (response or {}).get("data") or {}

    def write(self, path, data, cas=None):
        """Write a new version with check-and-set and return its number.

        ``cas`` is the version the caller read; ``0`` means "no readable version". When the latest
        version was deleted (soft delete) the path still has metadata, so ``cas=0`` is retried once
        with the current version number from the metadata.
        """
        kv = self._kv()
        try:
            try:
                response = self._call(kv.create_or_update_secret, path=path, secret=data, cas=cas, mount_point=self.mount)
            except hvac.exceptions.InvalidRequest as error:
                if cas != 0 or "check-and-set" not in _vault_errors(error):
                    raise
                metadata = self.read_metadata(path) or {}
                current = metadata.get("current_version")
                latest = (metadata.get("versions") or {}).get(str(current)) or {}
                if not current or not (latest.get("deletion_time") or latest.get("destroyed")):
                    raise
                response = self._call(kv.create_or_update_secret, path=path, secret=data, cas=current,
                                      mount_point=self.mount)
        except Exception as error:  # pylint: disable=broad-except
            if isinstance(error, hvac.exceptions.InvalidRequest) and "check-and-set" in _vault_errors(error):
                raise CvmfsError("%s changed while this task ran (check-and-set failed); run it again"
                                 % self.api_path(path), exception=error, vault_path=self.api_path(path))
            raise self._translate(error, "write %s" % self.api_path(path), self.api_path(path),
                                  ("create", "update"))
        return ((response or {}).get("data") or {}).get("version")

    def delete(self, path):
        """Delete the secret with all its versions and metadata. Deleting what is gone is not an error."""
        kv = self._kv()
        try:
            self._call(kv.delete_metadata_and_all_versions, path=path, mount_point=self.mount)
        except Exception as error:  # pylint: disable=broad-except
            if isinstance(error, hvac.exceptions.InvalidPath):
                return
            raise self._translate(error, "delete %s" % self.api_path(path, "metadata"),
                                  self.api_path(path, "metadata"), ("delete",))
