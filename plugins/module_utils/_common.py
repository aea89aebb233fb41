# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared core of the collection: the domain exception and one retry implementation.

Internal to sharedsw.cvmfs; may change in any release. Pure Python, no Ansible import:
the same file runs inside modules and in the programs the roles install on hosts.

Must not import Ansible, any third-party library or any other file of the collection: every
file imports it, the host programs included.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import os
import random
import sys
import time


class CvmfsError(Exception):
    """The one exception modules turn into ``fail_json``.

    ``message`` says which input is wrong and what would be right; keyword arguments become
    extra keys of the failed result (e.g. ``rc``, ``stderr``, ``key``).
    """

    def __init__(self, message, exception=None, **extra):
        super(CvmfsError, self).__init__(message)
        self.message = message
        self.exception = exception
        self.extra = extra


class Retry:
    """Jittered exponential backoff; a subclass says which errors are transient.

    Subclasses override :meth:`is_transient`. Retry sits inside, error translation outside:
    wrap the raw library call with ``@SomeRetry.backoff()`` and translate after it gave up.
    """

    @staticmethod
    def is_transient(error):
        return False

    @classmethod
    def backoff(cls, retries=5, delay=0.5, backoff=2.0, max_delay=30.0, sleep=time.sleep):
        def decorator(func):
            @functools.wraps(func)
            def wrapper(*args, **kwargs):
                wait = delay
                for attempt in range(retries + 1):
                    try:
                        return func(*args, **kwargs)
                    except Exception as error:  # pylint: disable=broad-except
                        if attempt == retries or not cls.is_transient(error):
                            raise
                    sleep(random.uniform(0, min(wait, max_delay)))
                    wait *= backoff
                raise AssertionError("unreachable")  # pragma: no cover

            return wrapper

        return decorator


def say(priority, message, stream=None):
    """One line of a host program: errors (``priority`` <= 3) to stderr, the rest to stdout, with the
    sd-daemon priority prefix (``<3>``, ``<6>``) when the output goes to the journal."""
    stream = stream or (sys.stderr if priority <= 3 else sys.stdout)
    prefix = "<%d>" % priority if os.environ.get("JOURNAL_STREAM") else ""
    stream.write("%s%s\n" % (prefix, message))
    stream.flush()


def describe_error(error):
    """One line for a log: the ``message`` of errors that carry one (:class:`CvmfsError`), else
    ``Type: text``; ``interrupted`` for Ctrl-C."""
    message = getattr(error, "message", None)
    if isinstance(message, str):
        return message
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    text = str(error)
    return "%s: %s" % (type(error).__name__, text) if text else type(error).__name__


def requests_error_is_transient(error, requests):
    """For clients built on ``requests`` (passed in: not every host has it): True for a dropped
    connection, a timeout or a cut-off body, False for a TLS failure (a second attempt meets the same
    certificate), None for anything else (the caller decides)."""
    if isinstance(error, requests.exceptions.SSLError):
        return False
    if isinstance(error, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                          requests.exceptions.ChunkedEncodingError)):
        return True
    return None
