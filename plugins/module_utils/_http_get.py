# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one helper for plain HTTP(S) GETs of small files: :class:`HttpFetcher`.

Internal to sharedsw.cvmfs; may change in any release. Owns: GET with the standard library
(``urllib``) the way ``cvmfs_server`` does it -- a proxy or none, TLS verification with an optional
CA file, ``Cache-Control: max-age=0``, retries of transient failures, a size limit, and errors that
name the URL (with proxy credentials redacted). ``file:`` URLs are read the same way (a missing file
answers like a 404). Must not import Ansible (host programs use it) nor any CernVM-FS format code:
it moves bytes, it does not read them.

Large streamed downloads (VM images) are not plain fetches: ``_image_fetch`` streams them with
``requests`` (see the note there).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import socket
import ssl

from http.client import HTTPException
from urllib.error import HTTPError, URLError
from urllib.request import HTTPSHandler, ProxyHandler, Request, build_opener

from ._common import CvmfsError, Retry

DEFAULT_MAX_BYTES = 1024 * 1024  # manifests, whitelists, certificates, status files


class _HttpRetry(Retry):
    @staticmethod
    def is_transient(error):
        if isinstance(error, HTTPError):
            return error.code in (502, 503, 504)
        if isinstance(error, URLError):
            error = error.reason
        return isinstance(error, (socket.timeout, ConnectionResetError, ConnectionAbortedError))


def redact_url(url):
    """``http://user:secret@proxy:3128`` -> ``http://***@proxy:3128`` (for messages)."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1***@", url)


def _missing_file(url, error):
    return url.startswith("file:") and isinstance(error.reason, (IOError, OSError))


class HttpFetcher:
    """GET small files over HTTP(S) (or ``file:``) with the standard library, like ``cvmfs_server`` does.

    ``proxy``: ``None`` uses the environment (``http_proxy`` ...), ``"DIRECT"`` (or ``""``)
    connects directly, anything else is the proxy URL for both http and https.
    Requests carry ``Cache-Control: max-age=0`` so that proxies revalidate their copy.
    """

    def __init__(self, proxy=None, timeout=10.0, ca_file=None, validate_certs=True, retries=2,
                 sleep=None, user_agent="sharedsw.cvmfs repository_info"):
        handlers = []
        if proxy is not None:
            if proxy in ("", "DIRECT"):
                handlers.append(ProxyHandler({}))
            else:
                handlers.append(ProxyHandler({"http": proxy, "https": proxy}))
        context = ssl.create_default_context(cafile=ca_file)
        if not validate_certs:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        handlers.append(HTTPSHandler(context=context))
        self.proxy = proxy
        self.timeout = timeout
        self.retries = retries
        self.user_agent = user_agent
        self._sleep = sleep
        self._opener = build_opener(*handlers)

    def _open(self, url, max_bytes):
        request = Request(url, headers={"Cache-Control": "max-age=0", "User-Agent": self.user_agent})
        response = self._opener.open(request, timeout=self.timeout)
        try:
            data = response.read(max_bytes + 1)
        finally:
            response.close()
        return data

    def get(self, url, max_bytes=DEFAULT_MAX_BYTES, missing_ok=False):
        """Body of ``url`` (bytes), or :class:`CvmfsError` with reason ``http_error`` (and ``status``
        for an HTTP error status; a missing ``file:`` is status 404).

        With ``missing_ok`` a 404 -- or a 403, which is what a public-read S3 bucket answers for a
        key that does not exist -- returns ``None``. Only optional files are fetched that way,
        after the manifest came through, so a proxy refusing access is still reported.
        """
        kwargs = {"retries": self.retries}
        if self._sleep is not None:
            kwargs["sleep"] = self._sleep
        fetch = _HttpRetry.backoff(**kwargs)(self._open)
        via = "" if self.proxy in (None, "", "DIRECT") else " through proxy %s" % redact_url(self.proxy)
        try:
            data = fetch(url, max_bytes)
        except HTTPError as exc:
            exc.close()
            if exc.code in (403, 404) and missing_ok:
                return None
            squid = exc.headers.get("X-Squid-Error") if exc.headers else None
            detail = " (proxy error %s)" % squid if squid else ""
            raise CvmfsError("GET %s%s failed: HTTP %s %s%s" % (url, via, exc.code, exc.reason, detail),
                             reason="http_error", status=exc.code)
        except URLError as exc:
            if _missing_file(url, exc):
                if missing_ok:
                    return None
                raise CvmfsError("GET %s failed: %s" % (url, exc.reason), reason="http_error", status=404)
            raise CvmfsError("GET %s%s failed: %s" % (url, via, exc.reason), reason="http_error")
        except (socket.timeout, OSError, HTTPException) as exc:
            raise CvmfsError("GET %s%s failed: %s" % (url, via, exc or type(exc).__name__), reason="http_error")
        if len(data) > max_bytes:
            raise CvmfsError("GET %s returned more than %d bytes; that is not a CernVM-FS repository file"
                             % (url, max_bytes), reason="malformed")
        return data
