# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Endorsed VM images, the download: stream an image from its URL or /cvmfs, checking size and SHA-256.

Internal to sharedsw.cvmfs; may change in any release. Owns :func:`fetch_verified` and
:class:`VerifiedFile`. Must not import Ansible or OpenStack.

Why ``requests`` and not the collection's one GET helper (``_http_get``): that helper reads small
files whole into memory; images are gigabytes, streamed to disk in chunks while they are hashed,
and a download must be retried from the start on a dropped connection or a broken chunked
transfer, and never on a TLS failure -- the distinctions ``requests``' exception classes make
(:class:`DownloadRetry`). ``image_sync`` already needs ``requests`` through openstacksdk.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import tempfile
import traceback

try:
    import requests
except ImportError:
    HAS_REQUESTS = False
    REQUESTS_IMP_ERR = traceback.format_exc()
else:
    HAS_REQUESTS = True
    REQUESTS_IMP_ERR = None

from ._common import CvmfsError, Retry, requests_error_is_transient
from ._image_list import CHUNK, cvmfs_relative


class VerifiedFile:
    """A local file whose size and SHA-256 matched the image list, with the digests computed on the way."""

    def __init__(self, path, size, digests, temporary):
        self.path = path
        self.size = size
        self.digests = digests
        self.temporary = temporary

    def cleanup(self):
        if self.temporary and os.path.exists(self.path):
            os.unlink(self.path)


class DownloadRetry(Retry):
    """Retry downloads that failed in a way a second attempt can fix (the download starts over)."""

    @staticmethod
    def is_transient(error):
        if not HAS_REQUESTS:
            return False
        if isinstance(error, requests.exceptions.HTTPError):
            return error.response is not None and error.response.status_code in (408, 429, 500, 502, 503, 504)
        return bool(requests_error_is_transient(error, requests))


def _hashers():
    return {"md5": hashlib.md5(), "sha256": hashlib.sha256(), "sha512": hashlib.sha512()}


def _stream(chunks, entry, sink=None):
    """Hash and count an iterator of byte chunks; stop as soon as it goes past the endorsed size."""
    hashers = _hashers()
    size = 0
    for chunk in chunks:
        if not chunk:
            continue
        size += len(chunk)
        if size > entry.size:
            raise CvmfsError("image %s %s from %s is larger than the endorsed %d bytes; not uploaded"
                             % (entry.name, entry.version, entry.source, entry.size))
        for hasher in hashers.values():
            hasher.update(chunk)
        if sink is not None:
            sink.write(chunk)
    digests = dict((name, hasher.hexdigest()) for name, hasher in hashers.items())
    if size != entry.size:
        raise CvmfsError("image %s %s from %s has %d bytes, the endorsed size is %d; not uploaded"
                         % (entry.name, entry.version, entry.source, size, entry.size))
    if digests["sha256"] != entry.sha256:
        raise CvmfsError("image %s %s from %s has SHA-256 %s, the endorsed one is %s; not uploaded (the source "
                         "is corrupt or was replaced)"
                         % (entry.name, entry.version, entry.source, digests["sha256"], entry.sha256))
    return size, digests


def fetch_verified(entry, download_dir=None, cvmfs_root="/cvmfs", timeout=60, validate_certs=True, retries=3):
    """A :class:`VerifiedFile` of ``entry``: the file under ``cvmfs_root`` itself, or a download in
    ``download_dir`` (removed again if it does not match)."""
    if entry.path:
        relative = cvmfs_relative(entry.path, "image %s %s" % (entry.name, entry.version))
        root = os.path.realpath(cvmfs_root)
        local = os.path.realpath(os.path.join(root, relative))
        if not (local + os.sep).startswith(root + os.sep):
            raise CvmfsError("image %s %s: %s leads outside %s" % (entry.name, entry.version, entry.path, cvmfs_root))
        if not os.path.isfile(local):
            repository = relative.split("/", 1)[0]
            raise CvmfsError("image %s %s: %s is not a file here; is the repository %s mounted on this host "
                             "(cvmfs_config probe %s)?" % (entry.name, entry.version, entry.path, repository, repository))
        with open(local, "rb") as handle:
            size, digests = _stream(iter(lambda: handle.read(CHUNK), b""), entry)
        return VerifiedFile(local, size, digests, temporary=False)

    if not HAS_REQUESTS:
        raise CvmfsError("the Python library requests is needed to download images; install requests")

    @DownloadRetry.backoff(retries=retries)
    def download():
        handle, path = tempfile.mkstemp(prefix=".image-%s-" % entry.name, dir=download_dir)
        try:
            with os.fdopen(handle, "wb") as sink:
                with requests.get(entry.url, stream=True, timeout=timeout, verify=validate_certs,
                                  headers={"User-Agent": "sharedsw.cvmfs image_sync"}) as response:
                    response.raise_for_status()
                    length = response.headers.get("Content-Length")
                    encoded = response.headers.get("Content-Encoding", "identity") != "identity"
                    if length is not None and length.isdigit() and not encoded and int(length) != entry.size:
                        raise CvmfsError("image %s %s: %s announces %s bytes, the endorsed size is %d; not uploaded"
                                         % (entry.name, entry.version, entry.url, length, entry.size))
                    size, digests = _stream(response.iter_content(CHUNK), entry, sink)
            return VerifiedFile(path, size, digests, temporary=True)
        except BaseException:
            if os.path.exists(path):
                os.unlink(path)
            raise

    try:
        return download()
    except CvmfsError:
        raise
    except requests.exceptions.HTTPError as error:
        raise CvmfsError("Failed to download image %s %s from %s: HTTP %s %s"
                         % (entry.name, entry.version, entry.url, error.response.status_code, error.response.reason))
    except (requests.exceptions.RequestException, OSError) as error:
        raise CvmfsError("Failed to download image %s %s from %s: %s" % (entry.name, entry.version, entry.url, error))
