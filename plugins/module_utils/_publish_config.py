# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The publish job's configuration: its JSON file with defaults, and the S3 credentials file.

Internal to sharedsw.cvmfs; may change in any release. Pure Python, no Ansible import. The
publisher role writes the JSON (templates/publish-job.json.j2); the job and the notification
consumer read it with :func:`load_config`. Must not import the programs (``_publish_*`` other
than this, ``_event*``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ._common import CvmfsError
from ._program_support import load_json_object

DEFAULTS = {
    "cvmfs_server": "/usr/bin/cvmfs_server",
    "mount_dir": "/cvmfs",
    "spool_dir": "/var/spool/cvmfs",
    "etc_dir": "/etc/cvmfs",
    "path": "/",
    "credentials_file": None,
    "transaction_retry_timeout": 300,
    "sync_command": None,
    "plan_first": True,
    "tmp_dir": None,
}
SOURCE_DEFAULTS = {
    "endpoint_url": None, "region": None, "bucket": None, "prefix": "cvmfs/", "sync": True, "delete": True,
    "exclude": [], "ingest_prefix": None, "ingest_dir": "", "addressing_style": "path", "validate_certs": True,
    "ca_bundle": None, "max_workers": 32, "on_invalid": "fail", "on_missing": "fail",
}


def load_config(path):
    """The job's JSON config with defaults filled in; :class:`CvmfsError` names what is wrong."""
    raw = load_json_object(path, "the job config")
    config = dict(DEFAULTS)
    config.update(raw)
    source = dict(SOURCE_DEFAULTS)
    source.update(raw.get("source") or {})
    config["source"] = source
    for key in ("repository", "state_dir", "lock_file"):
        if not config.get(key):
            raise CvmfsError("the job config %s lacks %r" % (path, key))
    parts = [p for p in (config["path"] or "/").split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise CvmfsError("path %r in %s must be a plain absolute path such as /team-a" % (config["path"], path))
    config["path"] = "/" + "/".join(parts)
    if not config.get("lease"):
        config["lease"] = config["repository"] + ("" if config["path"] == "/" else config["path"])
    if (source["sync"] or source["ingest_prefix"]) and not source["bucket"]:
        raise CvmfsError("source.bucket is missing in %s" % path)
    source["ingest_dir"] = (source["ingest_dir"] or "").strip("/")
    if source["ingest_prefix"] and source["sync"]:
        if not source["ingest_dir"] and source["delete"]:
            raise CvmfsError("ingest with a deleting sync needs source.ingest_dir in %s (the sync must leave the "
                             "ingested tree alone)" % path)
        if source["ingest_dir"] and source["ingest_dir"] not in source["exclude"]:
            # the mirror must neither delete nor overwrite what ingest put there
            source["exclude"] = list(source["exclude"]) + [source["ingest_dir"]]
    return config


def read_credentials(path):
    """``{"AWS_ACCESS_KEY_ID": .., "AWS_SECRET_ACCESS_KEY": ..}`` from a KEY=VALUE file (mode 0600)."""
    if not path:
        return {}
    values = {}
    try:
        with open(path) as handle:
            for line in handle:
                line = line.strip()
                if not line or line.startswith("#") or "=" not in line:
                    continue
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip().strip("'\"")
    except (IOError, OSError) as error:
        raise CvmfsError("cannot read the S3 credentials file %s: %s" % (path, error))
    wanted = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    missing = [k for k in wanted if not values.get(k)]
    if missing:
        raise CvmfsError("the S3 credentials file %s lacks %s" % (path, ", ".join(missing)))
    return dict((k, values[k]) for k in wanted + ("AWS_SESSION_TOKEN",) if values.get(k))
