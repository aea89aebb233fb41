# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a failed ``cvmfs_server`` call means: one :class:`CvmfsServerError` subclass per state a
caller treats as such ("already open", "not in a transaction", "repository exists", ...), and the
rules (exit code and message, cvmfs-facts section 1) that :func:`classify` maps a result to them with.

Internal to sharedsw.cvmfs; may change in any release. Pure Python; must not import Ansible, the
runner (``_cvmfs_server``) or the programs that use it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ._common import CvmfsError


# --------------------------------------------------------------------------- errors

class CvmfsServerError(CvmfsError):
    """``cvmfs_server`` failed; ``extra`` carries ``cmd``, ``rc``, ``stdout``, ``stderr``."""

    def __init__(self, message, result=None, **extra):
        if result is not None:
            extra = dict(result.as_dict(), **extra)
        super(CvmfsServerError, self).__init__(message, **extra)
        self.result = result


class UsageError(CvmfsServerError):
    """Exit 2 (help) or 3 (``NOTE: ...``): the call itself was malformed."""


class PermissionDenied(CvmfsServerError):
    """Not root / not the repository owner."""


class RepositoryExists(CvmfsServerError):
    """mkfs/import: ``The repository <fqrn> already exists``."""


class ReplicaExists(CvmfsServerError):
    """add-replica: ``There is already a Stratum1 repository <alias>``."""


class AliasIsStratum0(CvmfsServerError):
    """add-replica: the alias is already a stratum-0 repository on this host."""


class RepositoryMissing(CvmfsServerError):
    """``The repository <fqrn> does not exist.`` / cvmfs_publish found no ``server.conf``."""


class NotStratum0(CvmfsServerError):
    """The command needs a stratum-0 repository."""


class NotStratum1(CvmfsServerError):
    """The command needs a stratum-1 replica."""


class AlreadyInTransaction(CvmfsServerError):
    """transaction exit 17 (EEXIST): another transaction is already open."""


class NotInTransaction(CvmfsServerError):
    """abort exit 22 / publish exit 1: ``Repository <fqrn> is not in a transaction``."""


class LeaseBusy(CvmfsServerError):
    """transaction exit 16 (EBUSY): another publisher holds an overlapping gateway lease."""

    def __init__(self, message, result=None, time_remaining=None, **extra):
        super(LeaseBusy, self).__init__(message, result=result, time_remaining=time_remaining, **extra)
        self.time_remaining = time_remaining


class BadLeasePath(CvmfsServerError):
    """transaction exit 2 (ENOENT) or 20 (ENOTDIR): the lease path's parent is missing/no dir."""


class WhitelistExpired(CvmfsServerError):
    """transaction exit 22 / publish / import: the repository whitelist has expired."""


class PublishActive(CvmfsServerError):
    """publish: another publish process holds the publishing lock."""


class TagInUse(CvmfsServerError):
    """publish -a: ``Tag name '<t>' is already in use.``"""


class UpdateInProgress(CvmfsServerError):
    """snapshot -t: another snapshot or gc is running on the replica."""


class ReplicaSourceError(CvmfsServerError):
    """add-replica: the stratum-0 URL cannot be read or is not replicable."""


# --------------------------------------------------------------------------- error mapping

class _Rule:
    def __init__(self, commands, pattern, error, message, rcs=None):
        self.commands = commands
        self.pattern = re.compile(pattern, re.MULTILINE)
        self.error = error
        self.message = message
        self.rcs = rcs

    def match(self, command, result):
        if self.commands and command not in self.commands:
            return None
        if self.rcs is not None and result.rc not in self.rcs:
            return None
        return self.pattern.search(result.output)


_ALL = None
_CREATE = ("mkfs", "import", "add-replica")
_TXN = ("transaction", "abort", "publish", "ingest")
RESIGN_HINT = ("re-sign it with 'cvmfs_server resign {repository}' on the host that holds the master key "
               "(e.g. from its resign timer), then retry")
RULES = [
    # transaction (cvmfs-facts §1.3)
    _Rule(("transaction", "ingest"), r"another transaction is already open", AlreadyInTransaction,
          "a transaction is already open on {name}"),
    _Rule(("transaction",), r"lease path busy|Path busy", LeaseBusy,
          "the gateway lease on {name} is busy: another publisher holds an overlapping lease "
          "(time remaining {time_remaining} s); retry later or set retry_timeout to wait for it", (16,)),
    _Rule(("transaction",), r"cannot open transaction on non-existing path (\S+)", BadLeasePath,
          "lease path {match1} does not exist in {name}: its parent directory must already be "
          "published; publish the parent first or lease a path whose parent exists", (2,)),
    _Rule(("transaction",), r"cannot open transaction on (\S+), which is not a directory", BadLeasePath,
          "lease path {match1} of {name} is not a directory: lease a directory", (20,)),
    _Rule(_TXN + ("import",), r"whitelist (?:for \S+ )?(?:is )?expired", WhitelistExpired,
          "the whitelist of {repository} has expired; " + RESIGN_HINT),
    _Rule(("abort", "publish"), r"Repository \S+ is not in a transaction", NotInTransaction,
          "{name} is not in a transaction"),
    _Rule(("publish", "ingest"), r"Another publish process is active for", PublishActive,
          "another publish process is active for {name}; wait for it to finish and retry"),
    _Rule(("publish",), r"Failed to acquire publishing lock", PublishActive,
          "could not take the publishing lock of {name} (another publish is active); retry later"),
    _Rule(("publish",), r"Tag name '([^']*)' is already in use", TagInUse,
          "tag {match1!r} already exists in {name}; choose a new tag name or leave tag unset"),
    _Rule(("publish",), r"Spaces are not allowed in tag names", UsageError,
          "tag names may not contain spaces"),
    # existence
    _Rule(("mkfs", "import"), r"The repository \S+ already exists", RepositoryExists,
          "repository {name} already exists on this host"),
    _Rule(("add-replica",), r"There is already a Stratum1 repository", ReplicaExists,
          "a stratum-1 replica named {name} already exists on this host"),
    _Rule(("add-replica",), r"already exists as a Stratum0 repository", AliasIsStratum0,
          "{name} is already a stratum-0 repository on this host; choose another replica name (alias)"),
    _Rule(_ALL, r"The repository \S+ does not exist|Unable to find the configuration file `server.conf`",
          RepositoryMissing, "repository {name} does not exist on this host"),
    # type
    _Rule(_ALL, r"is not a stratum 1 repository", NotStratum1,
          "{name} is not a stratum-1 replica on this host"),
    _Rule(_ALL, r"is not a stratum 0 repository|This is not a stratum 0 repository", NotStratum0,
          "{name} is not a stratum-0 repository on this host"),
    # permissions
    _Rule(_ALL, r"Only root can|Permission denied|Permission error|need root", PermissionDenied,
          "cvmfs_server {command} on {name} was refused: {line}; run it as root (become: true) "
          "or as the repository owner"),
    # replicas (cvmfs-facts §1.14, §1.15)
    _Rule(("add-replica",), r"Failed to access Stratum0 repository at (\S+)", ReplicaSourceError,
          "cannot read the stratum-0 at {match1}: check stratum0_url (it must end in /cvmfs/<repository> "
          "or the bucket URL) and that this host can reach it"),
    _Rule(("add-replica",), r"does not point to a replicable master copy", ReplicaSourceError,
          "{stratum0_url} is not replicable (.cvmfs_master_replica missing): run "
          "'cvmfs_server alterfs -m on <repository>' on the stratum-0"),
    _Rule(("add-replica",), r"CVMFS_GEO_(?:ACCOUNT_ID|LICENSE_KEY) not set|failed to download geodb"
          r"|(\S+) doesn't exist or is not readable", CvmfsServerError,
          "add-replica of {name} could not set up the GeoIP database of the stratum-1 GeoAPI ({line}): in "
          "/etc/cvmfs/server.local set CVMFS_GEO_ACCOUNT_ID and CVMFS_GEO_LICENSE_KEY (a MaxMind account), or "
          "CVMFS_GEO_DB_FILE to a readable database or to NONE to turn the GeoAPI off (the stratum1 role writes "
          "this file)"),
    _Rule(("add-replica",), r"The apache wsgi module must be installed and enabled", CvmfsServerError,
          "add-replica of {name} needs Apache's wsgi module for the stratum-1 GeoAPI: install and enable it "
          "(libapache2-mod-wsgi-py3 on Debian and Ubuntu, python3-mod_wsgi on EL), or set apache=false and "
          "configure Apache yourself"),
    _Rule(("snapshot",), r"another update is in progress|an initial snapshot is in progress", UpdateInProgress,
          "another snapshot or garbage collection is running on {name} ({line}); retry later or "
          "set wait to true"),
    # call shape
    _Rule(_ALL, r"invalid repository name", UsageError,
          "{name!r} is not a valid repository name: use letters, digits, '-', '_' and '.', "
          "starting with a letter or digit, at most 60 characters"),
    _Rule(_ALL, r"No user (\S+)", UsageError,
          "owner {match1!r} is not a user on this host: create the user first"),
    _Rule(_ALL, r"Please specify the HTTP-URL for S3", UsageError,
          "S3 storage needs the public HTTP URL of the bucket (stratum0_url / stratum1_url)"),
]

#: transaction exit codes that say enough on their own (cvmfs-facts §1.3): the rules for when no
#: message above matched (another wording, another version)
TRANSACTION_EXIT_CODES = {
    17: (AlreadyInTransaction, "another transaction is already open on {repository} (exit 17: {line})"),
    16: (LeaseBusy, "the gateway lease on {name} is busy: another publisher holds an overlapping path "
                    "(exit 16: {line}); retry later or set a retry timeout to wait for it"),
    2: (BadLeasePath, "the parent directory of the lease path {name} does not exist in the repository "
                      "(exit 2: {line}); publish the parent first or lease a path whose parent exists"),
    20: (BadLeasePath, "the parent of the lease path {name} is not a directory (exit 20: {line}): lease a directory"),
    22: (WhitelistExpired, "the whitelist of {repository} has expired or the layout revision is wrong "
                           "(exit 22: {line}); " + RESIGN_HINT),
}
RULES += [_Rule(("transaction",), r"", error, message, (rc,))
          for rc, (error, message) in sorted(TRANSACTION_EXIT_CODES.items())]


def classify(command, result, **context):
    """Raise the specific error for a failed ``result`` of sub-command ``command``.

    Returns quietly when ``result.rc == 0``. ``context`` fills message templates (``name``, ...).
    """
    if result.rc == 0 or result.skipped:
        return
    line = result.first_error_line()
    values = dict(context, command=command, line=line, time_remaining="?")
    values.setdefault("name", "the repository")
    values.setdefault("repository", str(values["name"]).split("/", 1)[0])
    values.setdefault("stratum0_url", "the stratum-0 URL")
    busy = re.search(r"Time remaining = (\d+)", result.output)
    if busy:
        values["time_remaining"] = int(busy.group(1))
    for rule in RULES:
        match = rule.match(command, result)
        if match is None:
            continue
        values["match1"] = match.group(1) if match.groups() else ""
        message = rule.message.format(**values)
        if rule.error is LeaseBusy:
            raise LeaseBusy(message, result, time_remaining=values["time_remaining"] if busy else None)
        raise rule.error(message, result)
    if result.rc in (2, 3):
        raise UsageError("cvmfs_server %s rejected its arguments (rc=%s): %s" % (command, result.rc, line), result)
    raise CvmfsServerError("cvmfs_server %s on %s failed (rc=%s): %s" % (command, values["name"], result.rc, line), result)
