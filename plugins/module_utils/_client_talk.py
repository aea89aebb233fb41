# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a CernVM-FS client's ``cvmfs_talk`` says about a mounted repository, as metrics.

Internal to sharedsw.cvmfs; may change in any release. Pure Python, no Ansible import; part of
the metrics program (``_health_metrics``). Owns finding the mounted repositories (``cvmfs2`` FUSE
mounts in ``/proc/mounts``) and parsing the answers of CernVM-FS 2.12's ``cvmfs_talk -i <repo>``:

* ``cache size``: ``Current cache size is 0MB (17535 Bytes), pinned: 0MB (16384 Bytes)``
* ``cache limit get``: the limit in MB (``4000``)
* ``proxy info``: ``... Active proxy: [0] DIRECT``
* ``revision``: the mounted revision
* ``internal affairs``: ``name|value|description`` counters; the hit ratio is
  ``1 - fetch.n_downloads / fetch.n_invocations``, what the client's ``hitrate`` attribute shows.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import subprocess

MB = 1024 * 1024
TALK = "cvmfs_talk"


def run_talk(repository, command):
    """stdout of ``cvmfs_talk -i <repository> <command>``, or ``None`` when it fails."""
    try:
        result = subprocess.run([TALK, "-i", repository] + command.split(), stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, timeout=20, check=False, universal_newlines=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def mounted_repositories(mounts_file="/proc/mounts"):
    """Names of the repositories mounted by the CernVM-FS client (``cvmfs2`` FUSE mounts), sorted."""
    names = set()
    with open(mounts_file) as handle:
        for line in handle:
            fields = line.split()
            if len(fields) >= 3 and fields[0] == "cvmfs2" and fields[2].startswith("fuse"):
                names.add(os.path.basename(fields[1].replace("\\040", " ")))
    return sorted(names)


def parse_cache_size(text):
    """``(bytes, pinned bytes)`` from ``cache size``, or ``None``."""
    match = re.search(r"\((\d+) Bytes\), pinned: \S+ \((\d+) Bytes\)", text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def parse_active_proxy(text):
    match = re.search(r"^Active proxy: \[\d+\] (\S+)", text or "", re.M)
    return match.group(1) if match else None


def parse_counters(text):
    """``{name: int}`` from ``internal affairs`` (``name|value|description`` lines)."""
    counters = {}
    for line in (text or "").splitlines():
        parts = line.split("|")
        if len(parts) >= 2 and re.match(r"^-?\d+$", parts[1].strip()):
            counters[parts[0].strip()] = int(parts[1])
    return counters


def hit_ratio(counters):
    invocations = counters.get("fetch.n_invocations")
    if not invocations:
        return None
    return 1.0 - float(counters.get("fetch.n_downloads", 0)) / invocations


def _integer(text):
    text = (text or "").strip()
    return int(text) if re.match(r"^\d+$", text) else None


def repository_client_metrics(families, repository, talk):
    revision = _integer(talk(repository, "revision"))
    families.set("cvmfs_client_up", revision is not None, repository=repository)
    if revision is None:
        return
    families.set("cvmfs_client_revision", revision, repository=repository)
    sizes = parse_cache_size(talk(repository, "cache size"))
    if sizes:
        families.set("cvmfs_client_cache_bytes", sizes[0], repository=repository)
        families.set("cvmfs_client_cache_pinned_bytes", sizes[1], repository=repository)
    limit = _integer(talk(repository, "cache limit get"))
    if limit is not None:
        families.set("cvmfs_client_cache_limit_bytes", limit * MB, repository=repository)
    ratio = hit_ratio(parse_counters(talk(repository, "internal affairs")))
    if ratio is not None:
        families.set("cvmfs_client_cache_hit_ratio", ratio, repository=repository)
    proxy = parse_active_proxy(talk(repository, "proxy info"))
    if proxy:
        families.set("cvmfs_client_proxy_info", 1, repository=repository, proxy=proxy)


def client_metrics(families, talk=None, mounts_file="/proc/mounts"):
    """Metrics of every repository the client has mounted."""
    for repository in mounted_repositories(mounts_file):
        repository_client_metrics(families, repository, talk or run_talk)
