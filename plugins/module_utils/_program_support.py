# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the publisher's host programs share: journal lines, the publish lock, JSON files.

Internal to sharedsw.cvmfs; may change in any release. Pure Python, no Ansible import. Owns
:class:`Log` (lines for the journal), :class:`Lock` (the ``flock`` the publish job and the
notification consumer take for a repository), :func:`load_json_object` (a program's JSON
config) and :func:`write_json_file` (status files, replaced atomically). Must not import the
programs (``_publish_*``, ``_event*``): they import this.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import json
import os
import sys
import tempfile
import time

from ._common import CvmfsError

#: the entry modules, as they appear in a process's command line (``python3 -m <package>.<module>``)
CONSUMER_MODULE = "_events"
JOB_MODULE = "_publish_job"


class Log:
    """Lines for the journal: sd-daemon priority prefixes when stdout/stderr is the journal."""

    def __init__(self, stream=None):
        self.stream = stream
        self.journal = bool(os.environ.get("JOURNAL_STREAM"))

    def _say(self, priority, message):
        stream = self.stream or (sys.stderr if priority <= 4 else sys.stdout)
        for line in str(message).splitlines() or [""]:
            stream.write("%s%s\n" % ("<%d>" % priority if self.journal else "", line))
        stream.flush()

    def critical(self, message):
        self._say(2, message)

    def error(self, message):
        self._say(3, message)

    def warning(self, message):
        self._say(4, message)

    def info(self, message):
        self._say(6, message)


class Lock:
    """Exclusive ``flock`` on a file; the kernel drops it if the process dies."""

    def __init__(self, path):
        self.path = path
        self.handle = None

    def acquire(self, wait=0.0):
        directory = os.path.dirname(self.path)
        if directory and not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        self.handle = open(self.path, "a+")
        deadline = time.time() + max(wait, 0)
        while True:
            try:
                fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except (IOError, OSError) as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.time() >= deadline:
                    self.handle.close()
                    self.handle = None
                    return False
                time.sleep(0.5)
                continue
            self.handle.seek(0)
            self.handle.truncate()
            self.handle.write("%d\n" % os.getpid())
            self.handle.flush()
            return True

    def holder(self):
        """Who holds the lock, as far as the file and /proc say: ``"the notification consumer (pid 12)"``."""
        try:
            with open(self.path) as handle:
                pid = int(handle.read().split()[0])
        except (IOError, OSError, ValueError, IndexError):
            return "an unknown process"
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as handle:
                argv = handle.read().decode("utf-8", "replace").split("\0")
        except (IOError, OSError):
            argv = []
        if __package__ and __package__ + "." + CONSUMER_MODULE in argv:
            return "the notification consumer (pid %d)" % pid
        if __package__ and __package__ + "." + JOB_MODULE in argv:
            return "another run of the publish job (pid %d)" % pid
        return "pid %d" % pid

    def release(self):
        if self.handle is not None:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


def load_json_object(path, what):
    """The JSON object in the file ``path``; :class:`CvmfsError` names ``what`` (``the job config``)."""
    try:
        with open(path) as handle:
            raw = json.load(handle)
    except (IOError, OSError) as error:
        raise CvmfsError("cannot read %s %s: %s" % (what, path, error))
    except ValueError as error:
        raise CvmfsError("%s %s is not valid JSON: %s" % (what, path, error))
    if not isinstance(raw, dict):
        raise CvmfsError("%s %s must hold a JSON object" % (what, path))
    return raw


def load_config_with_defaults(path, what, defaults, required):
    """``defaults`` overlaid with the JSON object in ``path`` (its null values count as unset);
    :class:`CvmfsError` names ``what`` and the first ``required`` key that is missing or empty."""
    config = dict(defaults)
    config.update((k, v) for k, v in load_json_object(path, what).items() if v is not None)
    for key in required:
        if not config.get(key):
            raise CvmfsError("%s %s lacks %r" % (what, path, key))
    return config


def write_json_file(path, data, indent=None):
    """Replace ``path`` by ``data`` as JSON (mode 0644) in one rename, so readers never see half a file."""
    directory = os.path.dirname(path) or "."
    name = os.path.splitext(os.path.basename(path))[0]
    handle, tmp = tempfile.mkstemp(dir=directory, prefix=".%s." % name)
    with os.fdopen(handle, "w") as stream:
        json.dump(data, stream, sort_keys=True, indent=indent)
        stream.write("\n")
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)
