# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whitelist expiry check: the program behind the stratum-0's ``sharedsw-cvmfs-whitelist@<repo>`` timer.

Internal to sharedsw.cvmfs; may change in any release. Pure Python, no Ansible import; installed
on hosts by the roles as the package ``sharedsw_cvmfs`` and run with the distribution's Python::

    python3 -m sharedsw_cvmfs._whitelist_check --name REPO (--file PATH | --url URL) --alert-days N

Reads the repository's ``.cvmfswhitelist`` (the file in local storage, or over HTTP for S3
storage), checks that it names the repository, and compares its expiry (``E`` line) with now.
Clients refuse a repository whose whitelist expired, so this fails loudly days before:

* exit 0 — valid for more than ``--alert-days`` days (one info line);
* exit 1 — expires within ``--alert-days`` days, or expired (error line: resign is not working);
* exit 2 — the whitelist cannot be read or parsed, or names another repository.

Lines carry sd-daemon priority prefixes (``<3>`` error, ``<6>`` info) when stdout is the journal.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import datetime
import os
import sys
import urllib.request

from ._cvmfs_state import parse_whitelist_expiry, signed_header

EXIT_OK = 0
EXIT_EXPIRING = 1
EXIT_UNREADABLE = 2


def _say(priority, message, stream=None):
    stream = stream or (sys.stderr if priority <= 3 else sys.stdout)
    prefix = "<%d>" % priority if os.environ.get("JOURNAL_STREAM") else ""
    stream.write("%s%s\n" % (prefix, message))
    stream.flush()


def read_whitelist(path=None, url=None, timeout=20):
    """Bytes of the whitelist from a local file or an HTTP URL (``.cvmfswhitelist`` appended to a base URL)."""
    if path:
        with open(path, "rb") as handle:
            return handle.read()
    if not url.rstrip("/").endswith(".cvmfswhitelist"):
        url = url.rstrip("/") + "/.cvmfswhitelist"
    # a host program without Ansible: plain urllib (no ansible.module_utils.urls here)
    response = urllib.request.build_opener().open(url, timeout=timeout)
    try:
        return response.read()
    finally:
        response.close()


def check(data, name, alert_days, now=None):
    """``(exit_status, message)`` for whitelist bytes ``data`` of repository ``name``."""
    now = now or datetime.datetime.now(tz=_utc())
    header = signed_header(data)
    listed = header.get("N")
    if listed is not None and listed != name:
        return EXIT_UNREADABLE, "the whitelist names repository %s, not %s; check the URL or file" % (listed, name)
    expiry = parse_whitelist_expiry(data)
    if expiry is None:
        return EXIT_UNREADABLE, "no expiry (E line) in the whitelist of %s; it is damaged or not a whitelist" % name
    left = expiry - now
    days = left.total_seconds() / 86400.0
    stamp = expiry.strftime("%Y-%m-%d %H:%M UTC")
    if days <= 0:
        return EXIT_EXPIRING, ("the whitelist of %s EXPIRED at %s; clients refuse the repository until it is re-signed "
                               "(cvmfs_server resign %s on the stratum-0)" % (name, stamp, name))
    if days < alert_days:
        return EXIT_EXPIRING, ("the whitelist of %s expires in %.1f days (%s), less than the alert threshold of %d days; "
                               "the resign timer is not keeping it fresh (journalctl -u sharedsw-cvmfs-resign@%s)"
                               % (name, days, stamp, alert_days, name))
    return EXIT_OK, "the whitelist of %s is valid for %.1f more days (until %s)" % (name, days, stamp)


def _utc():
    return datetime.timezone.utc


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m sharedsw_cvmfs._whitelist_check",
                                     description="Fail when a CernVM-FS whitelist expires soon.")
    parser.add_argument("--name", required=True, help="repository name")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", help="path of .cvmfswhitelist (local storage)")
    source.add_argument("--url", help="repository base URL, or the URL of .cvmfswhitelist")
    parser.add_argument("--alert-days", type=float, required=True, help="fail when fewer days are left")
    parser.add_argument("--now", help=argparse.SUPPRESS)  # tests: ISO time instead of the clock
    args = parser.parse_args(argv)
    try:
        data = read_whitelist(args.file, args.url)
    except Exception as error:  # pylint: disable=broad-except
        _say(3, "cannot read the whitelist of %s from %s: %s" % (args.name, args.file or args.url, error))
        return EXIT_UNREADABLE
    now = None
    if args.now:
        now = datetime.datetime.strptime(args.now, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_utc())
    status, message = check(data, args.name, args.alert_days, now)
    _say(6 if status == EXIT_OK else 3, message)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
