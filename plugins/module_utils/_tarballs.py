# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tarballs waiting to be ingested: which keys are tarballs, where they go, how to read them.

Internal to sharedsw.cvmfs; may change in any release. Pure Python (the ``zstd`` program for
``.tar.zst``), no Ansible import, no S3 and no cvmfs_server: the publish job downloads and
ingests, this file only names and decompresses. Must not import the programs (``_publish_*``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bz2
import gzip
import lzma
import subprocess
import tempfile
import zlib

from ._common import CvmfsError

TARBALL_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst", ".tgz", ".tar")
#: how a tarball is compressed, by suffix: cvmfs_server ingest reads plain tar only (CernVM-FS builds its
#: libarchive without compression support), so the job decompresses these into its stdin
COMPRESSION = {".tar.gz": "gzip", ".tgz": "gzip", ".tar.bz2": "bzip2", ".tar.xz": "xz", ".tar.zst": "zstd"}
#: errors of a corrupt or truncated compressed file, from gzip, bz2, lzma and ProgramOutput
DECOMPRESSION_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, CvmfsError)
CHUNK = 1024 * 1024  # bytes per read while a tarball is checked


def tarball_base_dir(key, ingest_prefix):
    """``<ingest_prefix>a/b.tar.gz`` -> ``a/b``; ``None`` for keys that are not plain tarball paths."""
    if not key.startswith(ingest_prefix):
        return None
    rest = key[len(ingest_prefix):]
    for suffix in TARBALL_SUFFIXES:
        if rest.endswith(suffix) and len(rest) > len(suffix):
            base = rest[:-len(suffix)]
            parts = base.split("/")
            if any(p in ("", ".", "..") for p in parts) or any(ord(c) < 32 for c in base):
                return None
            return base
    return None


def tarball_suffix(key):
    """The suffix of :data:`TARBALL_SUFFIXES` that ``key`` ends with, or ``""``."""
    for suffix in TARBALL_SUFFIXES:
        if key.endswith(suffix):
            return suffix
    return ""


class ProgramOutput:
    """The standard output of ``argv`` (``zstd -dc FILE``) as a file object; if the program fails, reading
    its end raises :class:`CvmfsError`, so a truncated stream never passes for a complete one."""

    def __init__(self, argv):
        self.argv = argv
        self.errors = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.errors)
        except OSError as error:
            self.errors.close()
            raise CvmfsError("cannot run %s: %s" % (argv[0], error))

    def read(self, size=-1):
        data = self.proc.stdout.read(size)
        if not data and self.proc.wait() != 0:
            self.errors.seek(0)
            message = self.errors.read().decode("utf-8", "replace").strip() or "no message"
            raise CvmfsError("%s failed (exit %d): %s" % (" ".join(self.argv[:2]), self.proc.returncode, message))
        return data

    def __enter__(self):
        return self

    def __exit__(self, *_exc_info):
        self.proc.stdout.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.errors.close()


def open_tar(path, compression):
    """A binary file object reading the uncompressed tar in ``path`` (``compression`` from :data:`COMPRESSION`)."""
    if compression == "zstd":  # no zstd in the standard library before Python 3.14
        return ProgramOutput(["zstd", "-d", "-c", "-q", "--", path])
    return {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open}[compression](path, "rb")


def check_tarball(path, compression):
    """Read the compressed file ``path`` through once; raises one of :data:`DECOMPRESSION_ERRORS` if corrupt.

    The checksums of gzip, bzip2, xz and zstd follow the data they cover: a corrupt tarball found only
    while it streams into cvmfs_server might be found after cvmfs_server has read the end of the tar.
    """
    with open_tar(path, compression) as stream:
        while stream.read(CHUNK):
            pass
