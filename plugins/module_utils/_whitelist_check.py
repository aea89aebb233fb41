# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whitelist expiry check: the program behind the stratum-0's ``sharedsw-cvmfs-whitelist@<repo>`` timer.

Internal to sharedsw.cvmfs; may change in any release. Pure Python, no Ansible import; installed
on hosts by the roles as the package ``sharedsw_cvmfs`` and run with the distribution's Python::

    python3 -m sharedsw_cvmfs._whitelist_check --name REPO (--file PATH | --url URL) --alert-days N \\
        [--public-key PATH]

Reads the repository's ``.cvmfswhitelist`` (the file in local storage, or over HTTP for S3
storage), verifies its signature with the master public key (``--public-key``, by default
``/etc/cvmfs/keys/<name>.pub``) as a client does, checks that it names the repository, and compares
its expiry (``E`` line) with now. Clients refuse a repository whose whitelist expired, so this
fails loudly days before:

* exit 0 — valid for more than ``--alert-days`` days (one info line);
* exit 1 — expires within ``--alert-days`` days, or expired (error line: resign is not working);
* exit 2 — the whitelist cannot be read or parsed, its signature does not verify with the master
  public key, or it names another repository.

Parsing and verifying are ``_cvmfs_signed``'s (the one parser of signed CernVM-FS files); the GET
is ``_http_get``'s.

Lines carry sd-daemon priority prefixes (``<3>`` error, ``<6>`` info) when stdout is the journal.

As a host program on stratum-0s it must not import Ansible (``ansible``,
``ansible_collections``; relative imports only), pika, boto3 or the publisher's programs
(``_publish_*``, ``_event*``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import datetime
import os

from ._common import CvmfsError, say
from ._cvmfs_signed import load_public_keys, parse_whitelist, read_public_key_sources, verify_whitelist
from ._http_get import HttpFetcher

EXIT_OK = 0
EXIT_EXPIRING = 1
EXIT_UNREADABLE = 2
KEYS_DIR = "/etc/cvmfs/keys"


def read_whitelist(path=None, url=None, timeout=20):
    """Bytes of the whitelist from a local file or an HTTP URL (``.cvmfswhitelist`` appended to a base URL)."""
    if path:
        with open(path, "rb") as handle:
            return handle.read()
    if not url.rstrip("/").endswith(".cvmfswhitelist"):
        url = url.rstrip("/") + "/.cvmfswhitelist"
    fetcher = HttpFetcher(timeout=timeout, retries=0, user_agent="sharedsw.cvmfs whitelist_check")
    return fetcher.get(url)


def check(data, name, alert_days, public_keys, now=None):
    """``(exit_status, message)`` for whitelist bytes ``data`` of repository ``name``, verified with
    ``public_keys`` (the master public keys, as :func:`_cvmfs_signed.load_public_keys` returns them)."""
    now = now or datetime.datetime.now(tz=datetime.timezone.utc)
    try:
        whitelist = parse_whitelist(data, "the whitelist of %s" % name)
        verify_whitelist(whitelist, public_keys, "the whitelist of %s" % name)
    except CvmfsError as error:
        return EXIT_UNREADABLE, error.message
    if whitelist.name != name:
        return EXIT_UNREADABLE, "the whitelist names repository %s, not %s; check the URL or file" % (whitelist.name, name)
    expiry = whitelist.expires
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


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m sharedsw_cvmfs._whitelist_check",
                                     description="Fail when a CernVM-FS whitelist expires soon.")
    parser.add_argument("--name", required=True, help="repository name")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", help="path of .cvmfswhitelist (local storage)")
    source.add_argument("--url", help="repository base URL, or the URL of .cvmfswhitelist")
    parser.add_argument("--alert-days", type=float, required=True, help="fail when fewer days are left")
    parser.add_argument("--public-key", action="append",
                        help="master public key of the repository: a PEM file, or a directory of *.pub files "
                             "(repeatable; default %s/<name>.pub)" % KEYS_DIR)
    parser.add_argument("--now", help=argparse.SUPPRESS)  # tests: ISO time instead of the clock
    args = parser.parse_args(argv)
    try:
        data = read_whitelist(args.file, args.url)
    except Exception as error:  # pylint: disable=broad-except
        say(3, "cannot read the whitelist of %s from %s: %s" % (args.name, args.file or args.url, error))
        return EXIT_UNREADABLE
    try:
        sources = args.public_key or [os.path.join(KEYS_DIR, args.name + ".pub")]
        public_keys = load_public_keys(read_public_key_sources(sources), "master public key")
    except CvmfsError as error:
        say(3, "cannot check the whitelist of %s: %s" % (args.name, error.message))
        return EXIT_UNREADABLE
    now = None
    if args.now:
        now = datetime.datetime.strptime(args.now, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    status, message = check(data, args.name, args.alert_days, public_keys, now)
    say(6 if status == EXIT_OK else 3, message)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
