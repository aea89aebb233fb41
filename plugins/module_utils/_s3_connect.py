# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connecting to S3: boto3 resolves credentials, endpoint and addressing; the hot path
(_s3_http.FastS3) reuses them, or, behind a proxy, every request goes through boto3 (BotoS3).

Internal to sharedsw.cvmfs; may change in any release. No Ansible import; boto3 and botocore
are imported only when needed (an endpoint URL with explicit keys needs neither for small
objects). Must not import the sync run (_s3_sync, _s3_fetch) or the local side.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import threading
from urllib.parse import urlsplit

from ._common import CvmfsError
from ._s3_http import Endpoint, FastS3, ListedObject, S3HTTPError, SigV4, TransportError, decode_url_key, uri_encode

PROBE_KEY = "s3sync-endpoint-probe"


class ConnectionOptions:
    """How to reach S3 (see the module documentation for each)."""

    def __init__(self, endpoint_url=None, region=None, access_key=None, secret_key=None,
                 session_token=None, profile=None, validate_certs=True, ca_bundle=None,
                 addressing_style="path", retries=5, timeout=60.0, max_pool=32, use_fast_path=None):
        if addressing_style not in ("path", "virtual", "auto"):
            raise CvmfsError("addressing_style must be path, virtual or auto, not %r" % (addressing_style,))
        if bool(access_key) != bool(secret_key):
            raise CvmfsError("give both access_key and secret_key, or neither (to use a profile or the environment)")
        if profile and access_key:
            raise CvmfsError("give either profile or access_key/secret_key, not both")
        self.endpoint_url = endpoint_url
        self.region = region
        self.access_key = access_key
        self.secret_key = secret_key
        self.session_token = session_token
        self.profile = profile
        self.validate_certs = validate_certs
        self.ca_bundle = ca_bundle
        self.addressing_style = addressing_style
        self.retries = retries
        self.timeout = timeout
        self.max_pool = max_pool
        self.use_fast_path = use_fast_path

    @property
    def verify(self):
        """botocore's ``verify``: the CA bundle, or whether to verify certificates at all."""
        return self.ca_bundle if (self.validate_certs and self.ca_bundle) else self.validate_certs


def _proxy_for(url):
    """The proxy the environment sets for ``url`` (``https_proxy``, ``http_proxy``,
    ``all_proxy``, minus ``no_proxy``), like urllib's rules, without importing urllib.request
    (which pulls in http.client and email: ~50 ms of CPU per run)."""
    parts = urlsplit(url)
    env = os.environ
    proxy = None
    for name in (parts.scheme + "_proxy", "all_proxy"):
        proxy = env.get(name) or env.get(name.upper())
        if proxy:
            break
    if not proxy:
        return None
    host = (parts.hostname or "").lower()
    for entry in (env.get("no_proxy") or env.get("NO_PROXY") or "").split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return None
        entry = entry.split(":")[0].lstrip(".")
        if host == entry or host.endswith("." + entry):
            return None
    return proxy


def _ssl_context(conn):
    import ssl
    if not conn.validate_certs:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    cafile = conn.ca_bundle or os.environ.get("AWS_CA_BUNDLE") or None
    try:
        return ssl.create_default_context(cafile=cafile)
    except (IOError, OSError, ssl.SSLError) as error:
        raise CvmfsError("cannot load the CA bundle %s: %s" % (cafile, error), exception=error)


class _StaticCredentials:
    def __init__(self, access_key, secret_key, token):
        self.access_key = access_key
        self.secret_key = secret_key
        self.token = token


def _static_route(conn):
    """(credentials, region) when no botocore is needed to talk to the endpoint: explicit
    keys (parameters or ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``), an endpoint URL, path
    or virtual addressing, a known region and no proxy. Otherwise None.

    Importing botocore and building a client costs ~0.4 s of CPU, more than a whole no-op
    sync of 20,000 keys; boto3 is then only loaded for big objects.
    """
    if not conn.endpoint_url or conn.addressing_style == "auto" or conn.profile or conn.use_fast_path is False:
        return None
    access, secret, token = conn.access_key, conn.secret_key, conn.session_token
    if not access:
        if os.environ.get("AWS_PROFILE"):
            return None
        access = os.environ.get("AWS_ACCESS_KEY_ID")
        secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
        token = os.environ.get("AWS_SESSION_TOKEN")
        if not (access and secret):
            return None
    region = conn.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        config = os.environ.get("AWS_CONFIG_FILE") or os.path.expanduser("~/.aws/config")
        if os.path.exists(config):
            return None  # botocore would read a region from there
        region = "us-east-1"
    if _proxy_for(conn.endpoint_url) is not None:
        return None
    return _StaticCredentials(access, secret, token or None), region


def boto_session(conn, credentials=None, region=None):
    """A boto3 session from ``conn`` (or from static ``credentials`` and ``region``)."""
    try:
        import boto3
        import botocore.exceptions
    except ImportError as error:
        raise CvmfsError("boto3 and botocore are required on the host that runs s3_sync "
                         "(Debian/Ubuntu: python3-boto3, EL: python3-boto3 from EPEL, or pip)", exception=error)
    try:
        if credentials is not None:
            return boto3.session.Session(aws_access_key_id=credentials.access_key,
                                         aws_secret_access_key=credentials.secret_key,
                                         aws_session_token=credentials.token, region_name=region)
        return boto3.session.Session(
            aws_access_key_id=conn.access_key or None, aws_secret_access_key=conn.secret_key or None,
            aws_session_token=conn.session_token or None, profile_name=conn.profile or None,
            region_name=conn.region or None)
    except botocore.exceptions.ProfileNotFound as error:
        raise CvmfsError("profile %r not found in the AWS config files" % conn.profile, exception=error)


def _boto_client(conn, max_workers, credentials=None, region=None):
    import botocore.config
    import botocore.exceptions
    session = boto_session(conn, credentials, region)
    region = region or conn.region or session.region_name or "us-east-1"
    config = botocore.config.Config(
        region_name=region, signature_version="s3v4",
        s3={"addressing_style": conn.addressing_style},
        retries={"max_attempts": conn.retries + 1, "mode": "standard"},
        connect_timeout=min(conn.timeout, 15.0), read_timeout=conn.timeout,
        max_pool_connections=max(conn.max_pool, max_workers + 4))
    try:
        client = session.client("s3", endpoint_url=conn.endpoint_url or None, config=config, verify=conn.verify)
    except (ValueError, botocore.exceptions.BotoCoreError) as error:
        raise CvmfsError("cannot create an S3 client for endpoint_url=%r region=%r: %s"
                         % (conn.endpoint_url, region, error), exception=error)
    return session, client


def connect(conn, bucket, max_workers=32):
    """Build the hot-path transport for ``bucket`` and a factory for a boto3 client.

    Returns ``(fast, client_factory, source)``; ``source`` names the bucket's endpoint (it is
    stored in the state file so a state written for another source is ignored).
    """
    static = _static_route(conn)
    if static is not None:
        credentials, region = static
        parts = urlsplit(conn.endpoint_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CvmfsError("endpoint_url %r must look like http(s)://host[:port]" % conn.endpoint_url)
        if conn.addressing_style == "virtual":
            url = "%s://%s.%s%s/%s" % (parts.scheme, bucket, parts.netloc, parts.path, PROBE_KEY)
        else:
            url = "%s://%s%s/%s/%s" % (parts.scheme, parts.netloc, parts.path, uri_encode(bucket), PROBE_KEY)
        endpoint = Endpoint(url, PROBE_KEY, region=region, timeout=conn.timeout)
        if endpoint.scheme == "https":
            endpoint.ssl_context = _ssl_context(conn)
        fast = FastS3(endpoint, bucket, SigV4(lambda: credentials, region))
        lock = threading.Lock()
        cache = []

        def client_factory():
            with lock:
                if not cache:
                    cache.append(_boto_client(conn, max_workers, credentials, region)[1])
                return cache[0]

        return fast, client_factory, "%s://%s%s" % (endpoint.scheme, endpoint.host_header, endpoint.base_path)

    session, client = _boto_client(conn, max_workers)
    credentials = session.get_credentials()
    if credentials is None:
        raise CvmfsError("no S3 credentials: give access_key and secret_key, a profile, or set "
                         "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment")
    url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": PROBE_KEY}, ExpiresIn=60)
    use_fast = conn.use_fast_path
    if use_fast is None:
        use_fast = _proxy_for(url) is None
    if use_fast:
        endpoint = Endpoint(url, PROBE_KEY, region=None, ssl_context=None, timeout=conn.timeout)
        if endpoint.scheme == "https":
            endpoint.ssl_context = _ssl_context(conn)
        signer = SigV4(credentials.get_frozen_credentials, endpoint.region)
        fast = FastS3(endpoint, bucket, signer)
        source = "%s://%s%s" % (endpoint.scheme, endpoint.host_header, endpoint.base_path)
    else:
        fast = BotoS3(client, bucket)
        parts = urlsplit(url)
        source = "%s://%s%s" % (parts.scheme, parts.netloc, parts.path[:-len(PROBE_KEY)])
    return fast, (lambda: client), source


class BotoS3:
    """The same interface as :class:`~._s3_http.FastS3` over a plain boto3 client: used when a
    proxy is configured (botocore knows how to talk through it) or when asked to."""

    def __init__(self, client, bucket):
        self.client = client
        self.bucket = bucket

    def _error(self, error, what, key=None):
        import botocore.exceptions
        if isinstance(error, botocore.exceptions.ClientError):
            info = error.response.get("Error", {})
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            failure = S3HTTPError("%s: %s" % (what, error), status=status, code=info.get("Code"), key=key)
            failure.exception = error
            return failure
        transient = isinstance(error, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError,
                                       botocore.exceptions.ReadTimeoutError, IOError, OSError))
        failure = (TransportError if transient else CvmfsError)("%s: %s" % (what, error), exception=error)
        return failure

    def list_page(self, prefix, token=None):
        kwargs = {"Bucket": self.bucket, "Prefix": prefix, "EncodingType": "url", "MaxKeys": 1000}
        if token:
            kwargs["ContinuationToken"] = token
        try:
            page = self.client.list_objects_v2(**kwargs)
        except Exception as error:  # pylint: disable=broad-except
            raise self._error(error, "listing s3://%s/%s" % (self.bucket, prefix))
        objects = []
        for item in page.get("Contents", []):
            objects.append(ListedObject(decode_url_key(item["Key"]), int(item.get("Size", 0)),
                                        item.get("ETag", "").strip('"'),
                                        item["LastModified"].strftime("%Y-%m-%dT%H:%M:%S.000Z")))
        return objects, (page.get("NextContinuationToken") if page.get("IsTruncated") else None)

    def _is_missing(self, error):
        import botocore.exceptions
        return isinstance(error, botocore.exceptions.ClientError) and \
            error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")

    def head(self, key):
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as error:  # pylint: disable=broad-except
            if self._is_missing(error):
                return None
            raise self._error(error, "HEAD s3://%s/%s" % (self.bucket, key), key)
        return dict(response["ResponseMetadata"]["HTTPHeaders"])

    def get(self, key, sink):
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            for chunk in response["Body"].iter_chunks(1048576):
                sink(chunk)
        except Exception as error:  # pylint: disable=broad-except
            if self._is_missing(error):
                return None
            raise self._error(error, "GET s3://%s/%s" % (self.bucket, key), key)
        return dict(response["ResponseMetadata"]["HTTPHeaders"])

    def close(self):
        pass
