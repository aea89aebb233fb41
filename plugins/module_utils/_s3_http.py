# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The S3 sync engine's hot path: SigV4-signed GET/HEAD/list over persistent HTTP/1.1 sockets.

Internal to sharedsw.cvmfs; may change in any release. Pure Python (standard library only),
no Ansible import.

Must not import Ansible, boto3/botocore or the rest of the engine (``_s3_connect``,
``_s3_fetch`` and ``_s3_sync`` import it): it runs on publishers from the host-program archive,
relative imports only.

Why this layer exists (measured on a 2-core machine against a loopback SeaweedFS, 1000 GETs of
1-30 KiB objects, client CPU per object; see bench/s3_sync_bench.py for the full benchmark):

=====================================  ==============
boto3 ``client.get_object``              1.46 ms
botocore ``S3SigV4Auth`` + urllib3       0.58 ms
our signer + urllib3 pool                0.39 ms
our signer + ``http.client``             0.24 ms
our signer + this module's socket I/O    0.12 ms
=====================================  ==============

botocore's signer alone costs 0.12 ms per request (it re-derives the signing key, re-parses the
URL and normalises headers every time); the signing key only changes once a day, so
:class:`SigV4` caches it and signs a GET in about 9 us. Listing pages are parsed with
ElementTree (11 us per key) instead of botocore's response parser (113 us per key).

boto3/botocore stay in charge of everything that is not the hot path: resolving credentials
(parameters, environment, profiles, instance roles; refreshed while we run), endpoint and
addressing style (we take both from a presigned URL botocore builds), retries of its own
calls, and big objects (the engine hands those to boto3's transfer manager).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import hmac
import re
import socket
import threading
import time
from xml.etree import ElementTree

from urllib.parse import quote, unquote_to_bytes, urlsplit, parse_qsl

from ._common import CvmfsError, Retry

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"

# Error codes S3 servers send for conditions that go away by themselves.
TRANSIENT_CODES = frozenset((
    "InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "Throttling",
    "ThrottlingException", "RequestLimitExceeded", "TooManyRequests", "RequestThrottled",
    "ExpiredToken", "RequestTimeTooSkewed",
))


class S3HTTPError(CvmfsError):
    """An S3 error response: ``status``, ``code`` (S3 error code), ``key``."""

    def __init__(self, message, status=None, code=None, key=None):
        super(S3HTTPError, self).__init__(message, status=status, code=code, key=key)
        self.status = status
        self.code = code
        self.key = key

    @property
    def transient(self):
        return self.status in (429, 500, 502, 503, 504) or self.code in TRANSIENT_CODES


class TransportError(CvmfsError):
    """The connection failed (refused, reset, timed out, cut mid-body): always transient."""

    transient = True


class S3Retry(Retry):
    @staticmethod
    def is_transient(error):
        return bool(getattr(error, "transient", False))


def _hmac(key, msg):
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def uri_encode(data, safe="/~"):
    """Percent-encode like botocore does for S3 paths and SigV4 (RFC 3986 unreserved kept).
    ``str`` is UTF-8 encoded; surrogate escapes stand for raw bytes."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    return quote(data, safe=safe)


class SigV4:
    """AWS Signature Version 4 for bodiless S3 requests, with the signing key cached per day.

    ``credentials`` is a callable returning an object with ``access_key``, ``secret_key`` and
    ``token`` (botocore's frozen credentials); it is called at most every 30 seconds so
    refreshable credentials (instance roles, assume-role) stay fresh.
    """

    def __init__(self, credentials, region, service="s3", clock=time.time):
        self._credentials = credentials
        self.region = region
        self.service = service
        self._clock = clock
        self._lock = threading.Lock()
        self._creds = None
        self._creds_at = -1e9
        self._day = None
        self._key = None
        self._key_for = None
        self._second = None
        self._amzdate = None

    def _current(self):
        now = self._clock()
        with self._lock:
            if now - self._creds_at > 30:
                self._creds = self._credentials()
                self._creds_at = now
            creds = self._creds
            second = int(now)
            if second != self._second:
                self._second = second
                self._amzdate = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
            amzdate = self._amzdate
            day = amzdate[:8]
            if self._key is None or self._day != day or self._key_for != creds.secret_key:
                key = _hmac(("AWS4" + creds.secret_key).encode("utf-8"), day)
                key = _hmac(key, self.region)
                key = _hmac(key, self.service)
                self._key = _hmac(key, "aws4_request")
                self._day = day
                self._key_for = creds.secret_key
            return creds, amzdate, day, self._key

    def sign(self, method, host, path, query=""):
        """Headers for ``method`` on ``path`` (already URI-encoded) with a canonical ``query``."""
        creds, amzdate, day, key = self._current()
        scope = "%s/%s/%s/aws4_request" % (day, self.region, self.service)
        if creds.token:
            canonical_headers = "host:%s\nx-amz-content-sha256:%s\nx-amz-date:%s\nx-amz-security-token:%s\n" % (
                host, EMPTY_SHA256, amzdate, creds.token)
            signed = "host;x-amz-content-sha256;x-amz-date;x-amz-security-token"
        else:
            canonical_headers = "host:%s\nx-amz-content-sha256:%s\nx-amz-date:%s\n" % (host, EMPTY_SHA256, amzdate)
            signed = "host;x-amz-content-sha256;x-amz-date"
        canonical = "%s\n%s\n%s\n%s\n%s\n%s" % (method, path, query, canonical_headers, signed, EMPTY_SHA256)
        to_sign = "AWS4-HMAC-SHA256\n%s\n%s\n%s" % (
            amzdate, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest())
        signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        headers = [
            ("Host", host),
            ("X-Amz-Content-SHA256", EMPTY_SHA256),
            ("X-Amz-Date", amzdate),
            ("Authorization", "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
                creds.access_key, scope, signed, signature)),
        ]
        if creds.token:
            headers.append(("X-Amz-Security-Token", creds.token))
        return headers


def canonical_query(params):
    """SigV4 canonical query string (also usable as the request's query string)."""
    return "&".join("%s=%s" % (uri_encode(k, safe="-_.~"), uri_encode(v, safe="-_.~"))
                    for k, v in sorted(params.items()))


class Endpoint:
    """Where requests for one bucket go: taken from a URL botocore built for it.

    ``sample_url`` is a (presigned) GET URL for the key ``sample_key`` in the bucket; whatever
    botocore decided (scheme, host, port, path or virtual-host addressing, region) is read
    back from it, so we never re-implement endpoint resolution.
    """

    def __init__(self, sample_url, sample_key, region=None, ssl_context=None, timeout=60.0):
        parts = urlsplit(sample_url)
        if parts.scheme not in ("http", "https"):
            raise CvmfsError("endpoint URL %r: scheme must be http or https" % sample_url)
        encoded_key = uri_encode(sample_key)
        if not parts.path.endswith("/" + encoded_key):
            raise CvmfsError("cannot derive the bucket path from %r" % sample_url)
        self.scheme = parts.scheme
        self.base_path = parts.path[:-len(encoded_key)]  # ends with "/"
        self.host_header = parts.netloc.rpartition("@")[2]
        self.host = parts.hostname
        self.port = parts.port or (443 if self.scheme == "https" else 80)
        if region is None:
            for name, value in parse_qsl(parts.query):
                if name == "X-Amz-Credential":
                    region = value.split("/")[2]
        self.region = region or "us-east-1"
        self.timeout = timeout
        self.ssl_context = ssl_context
        if self.scheme == "https" and self.ssl_context is None:
            import ssl  # only for https: importing it costs ~35 ms of CPU
            self.ssl_context = ssl.create_default_context()

    def object_path(self, key):
        return self.base_path + uri_encode(key)

    def bucket_path(self):
        # "/bucket/" for path style, "/" for virtual hosts: the list request goes to "/bucket".
        return self.base_path[:-1] if len(self.base_path) > 1 else "/"


class Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status, headers, body=b""):
        self.status = status
        self.headers = headers
        self.body = body


class Connection:
    """One persistent HTTP/1.1 connection (not thread-safe: one per worker thread)."""

    RECV = 262144

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.sock = None
        self.buf = b""
        self.reused = False

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None
        self.buf = b""

    def _connect(self):
        ep = self.endpoint
        try:
            sock = socket.create_connection((ep.host, ep.port), timeout=min(ep.timeout, 15.0))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ep.scheme == "https":
                sock = ep.ssl_context.wrap_socket(sock, server_hostname=ep.host)
            sock.settimeout(ep.timeout)
        except OSError as error:
            raise TransportError("cannot connect to %s:%s: %s" % (ep.host, ep.port, error), exception=error)
        self.sock = sock
        self.buf = b""
        self.reused = False

    def _recv(self, size=RECV):
        data = self.sock.recv(size)
        if not data:
            raise ConnectionResetError("connection closed by the server")
        return data

    def _read_head(self):
        buf = self.buf
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(buf) > 131072:
                raise TransportError("response headers too long")
            buf += self._recv()
        lines = buf[:end].decode("latin-1").split("\r\n")
        self.buf = buf[end + 4:]
        status_line = lines[0].split(" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith("HTTP/1."):
            raise TransportError("malformed HTTP status line %r" % lines[0][:100])
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                name = name.strip().lower()
                value = value.strip()
                if name in headers:
                    headers[name] += ", " + value
                else:
                    headers[name] = value
        return int(status_line[1]), headers, status_line[0] == "HTTP/1.0"

    def _body_chunks(self, headers, method, status):
        """Yield the body (memoryviews/bytes); the connection is reusable once exhausted."""
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                while b"\r\n" not in self.buf:
                    self.buf += self._recv()
                line, self.buf = self.buf.split(b"\r\n", 1)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while b"\r\n" not in self.buf:
                        self.buf += self._recv()
                    # skip trailers
                    while True:
                        line, self.buf = self.buf.split(b"\r\n", 1)
                        if not line:
                            return
                        while b"\r\n" not in self.buf:
                            self.buf += self._recv()
                yield from self._exact(size)
                while len(self.buf) < 2:
                    self.buf += self._recv()
                self.buf = self.buf[2:]
        length = headers.get("content-length")
        if length is None:
            # delimited by close
            if self.buf:
                yield self.buf
                self.buf = b""
            while True:
                data = self.sock.recv(self.RECV)
                if not data:
                    break
                yield data
            self.close()
            return
        yield from self._exact(int(length))

    def _exact(self, remaining):
        if self.buf:
            if len(self.buf) > remaining:
                piece, self.buf = self.buf[:remaining], self.buf[remaining:]
                yield piece
                return
            piece, self.buf = self.buf, b""
            remaining -= len(piece)
            yield piece
        while remaining > 0:
            data = self.sock.recv(min(remaining, 1048576))
            if not data:
                raise TransportError("connection closed with %d bytes of the body missing" % remaining)
            remaining -= len(data)
            yield data

    def request(self, method, path, headers, sink=None):
        """Send one request; return a :class:`Response`.

        A 2xx body goes to ``sink(chunk)`` when given, otherwise into ``Response.body``.
        Error bodies are always collected. Connection failures raise :class:`TransportError`;
        a stale keep-alive connection is retried once, at once, on a new connection.
        """
        request = "%s %s HTTP/1.1\r\n%s\r\n" % (
            method, path, "".join("%s: %s\r\n" % item for item in headers))
        request = request.encode("latin-1")
        for attempt in (0, 1):
            if self.sock is None:
                self._connect()
            reused = self.reused
            try:
                self.sock.sendall(request)
                status, rheaders, http10 = self._read_head()
            except OSError as error:
                self.close()
                if reused and attempt == 0:
                    continue  # the server closed an idle keep-alive connection
                raise TransportError("%s %s: %s" % (method, path, error), exception=error)
            break
        try:
            if sink is not None and 200 <= status < 300:
                for piece in self._body_chunks(rheaders, method, status):
                    sink(piece)
                body = b""
            else:
                body = b"".join(self._body_chunks(rheaders, method, status))
        except (OSError, ValueError) as error:
            self.close()
            raise TransportError("%s %s: reading the body failed: %s" % (method, path, error), exception=error)
        except BaseException:
            self.close()
            raise
        if http10 or rheaders.get("connection", "").lower() == "close":
            self.close()
        else:
            self.reused = True
        return Response(status, rheaders, body)


def parse_error(response, what, key=None):
    code = message = None
    if response.body:
        try:
            root = ElementTree.fromstring(response.body)
            code = root.findtext("Code")
            message = root.findtext("Message")
        except ElementTree.ParseError:
            pass
    text = "%s: HTTP %s" % (what, response.status)
    if code:
        text += " %s" % code
    if message:
        text += " (%s)" % message
    region = response.headers.get("x-amz-bucket-region")
    if response.status in (301, 307, 400) and region:
        text += "; the bucket is in region %r, set the region to it" % region
    if response.status == 403:
        text += "; check the access key, secret key and the bucket policy"
    return S3HTTPError(text, status=response.status, code=code, key=key)


class ListedObject:
    __slots__ = ("key", "size", "etag", "last_modified")

    def __init__(self, key, size, etag, last_modified):
        self.key = key  # bytes, exactly as stored (decoded from the listing's URL encoding)
        self.size = size
        self.etag = etag
        self.last_modified = last_modified


# Ceph RGW echoes the request's <Prefix> (and its continuation token) without URL encoding even
# with encoding-type=url: listing a prefix that holds a control character or invalid UTF-8
# gives XML that no parser accepts. Such bytes are mapped to private-use code points before
# parsing and mapped back after (_UNMAP), so keys keep their exact bytes and are judged later.
_CHAR_REF = re.compile(br"&#(x[0-9a-fA-F]+|[0-9]+);")
_UNMAP = dict((0xE000 + n, n) for n in range(32))
_UNMAP.update((0xE100 + b, 0xDC00 + b) for b in range(0x80, 0x100))


def _xml_char_ok(n):
    return n in (9, 10, 13) or 0x20 <= n <= 0xD7FF or 0xE000 <= n <= 0xFFFD or 0x10000 <= n <= 0x10FFFF


def _sanitize(body):
    if b"&#" in body:
        def fix(match):
            value = match.group(1)
            number = int(value[1:], 16) if value[:1] in (b"x", b"X") else int(value)
            if _xml_char_ok(number):
                return match.group(0)
            return b"&#%d;" % (0xE000 + (number if number < 32 else 31))
        body = _CHAR_REF.sub(fix, body)
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("utf-8", "surrogateescape")
        body = "".join(chr(0xE100 + ord(c) - 0xDC00) if 0xDC80 <= ord(c) <= 0xDCFF else c
                       for c in text).encode("utf-8")
    return body


def unmap(text):
    """Undo :func:`_sanitize` on a parsed value (a str whose surrogate escapes are raw bytes)."""
    return text.translate(_UNMAP) if text else text


def decode_url_key(text):
    """A key (or prefix) of a listing made with ``encoding-type=url``, as the bytes it names.

    S3 defines the encoding as form encoding: AWS and SeaweedFS send a space as ``+`` and a
    ``+`` as ``%2B`` (Ceph RGW sends ``%20``, which means the same). Plain percent decoding
    would turn ``a+b`` back into ``a+b``, a key that does not exist.
    """
    return unquote_to_bytes(text.replace("+", " "))


def parse_list_page(body, url_encoded=True, prefixes=None):
    """Parse a ListObjectsV2 page: (objects, next continuation token or None).

    With a list as ``prefixes``, the page's CommonPrefixes (bytes) are appended to it.
    """
    try:
        root = ElementTree.fromstring(_sanitize(body))
    except ElementTree.ParseError as error:
        raise TransportError("unparsable ListObjectsV2 response: %s" % error, exception=error)
    tag = root.tag
    ns = tag[:tag.index("}") + 1] if tag.startswith("{") else ""
    objects = []
    k_key, k_size, k_etag, k_lm = ns + "Key", ns + "Size", ns + "ETag", ns + "LastModified"
    encoded = url_encoded and (root.findtext(ns + "EncodingType") or "").lower() == "url"

    def raw(text):
        return decode_url_key(text) if encoded else unmap(text).encode("utf-8", "surrogateescape")

    for item in root.iter(ns + "Contents"):
        objects.append(ListedObject(raw(item.findtext(k_key) or ""), int(item.findtext(k_size) or 0),
                                    (item.findtext(k_etag) or "").strip('"'), item.findtext(k_lm) or ""))
    if prefixes is not None:
        for item in root.iter(ns + "CommonPrefixes"):
            prefixes.append(raw(item.findtext(ns + "Prefix") or ""))
    token = None
    if (root.findtext(ns + "IsTruncated") or "").lower() == "true":
        token = unmap(root.findtext(ns + "NextContinuationToken"))
        if not token:
            raise TransportError("truncated listing without a continuation token")
    return objects, token


class FastS3:
    """GET/HEAD/list for one bucket, one persistent connection per thread."""

    def __init__(self, endpoint, bucket, signer):
        self.endpoint = endpoint
        self.bucket = bucket
        self.signer = signer
        self._local = threading.local()
        self._all = []
        self._lock = threading.Lock()

    def _conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = Connection(self.endpoint)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self):
        with self._lock:
            for conn in self._all:
                conn.close()

    def _request(self, method, path, query, sink=None):
        headers = self.signer.sign(method, self.endpoint.host_header, path, query)
        return self._conn().request(method, path + ("?" + query if query else ""), headers, sink)

    supports_delimiter = True

    def list_page(self, prefix, token=None, prefixes=None):
        """One ListObjectsV2 page below ``prefix`` (str or bytes). With a list as ``prefixes``
        the listing is delimited by "/" and the common prefixes are appended to it."""
        params = {"list-type": "2", "prefix": prefix, "encoding-type": "url", "max-keys": "1000"}
        if token:
            params["continuation-token"] = token
        if prefixes is not None:
            params["delimiter"] = "/"
        response = self._request("GET", self.endpoint.bucket_path(), canonical_query(params))
        if response.status != 200:
            shown = prefix.decode("utf-8", "backslashreplace") if isinstance(prefix, bytes) else prefix
            raise parse_error(response, "listing s3://%s/%s" % (self.bucket, shown))
        return parse_list_page(response.body, prefixes=prefixes)

    def head(self, key):
        """Response headers of ``key`` or None when it does not exist."""
        response = self._request("HEAD", self.endpoint.object_path(key), "")
        if response.status == 404:
            return None
        if response.status != 200:
            raise parse_error(response, "HEAD s3://%s/%s" % (self.bucket, key), key=key)
        return response.headers

    def get(self, key, sink):
        """Stream ``key`` into ``sink``; return the headers, or None when it does not exist."""
        response = self._request("GET", self.endpoint.object_path(key), "", sink)
        if response.status == 404:
            return None
        if response.status != 200:
            raise parse_error(response, "GET s3://%s/%s" % (self.bucket, key), key=key)
        return response.headers
