# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The notification consumer's publish step: the publish job, its sync limited to the touched keys.

Internal to sharedsw.cvmfs; may change in any release. No Ansible import; the s3_sync engine
is imported only when a batch applies keys. Owns :class:`EventJob`. Must not import the consumer
(``_event_consumer``) or the entry points (``_events``, ``_publish_job``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ._event_metrics import quote
from ._publish_run import PublishJob, log_missing_keys


class EventJob(PublishJob):
    """The publish job of the timer, run by the consumer: same lock, recovery, transaction,
    abort and publish; the sync applies only ``keys`` (None: the full mirror). Signals belong to
    the consumer's main thread, so the job's own signal handling is switched off."""

    def __init__(self, config, log, keys=None, env=None):
        if keys is not None:
            # events announce changes: planning first would only repeat the lookups. The job still
            # closes an unchanged transaction without publishing.
            config = dict(config, plan_first=False)
        super(EventJob, self).__init__(config, log, env)
        self.keys = None if keys is None else sorted(keys)
        self.mode = "full" if keys is None else "keys"

    def install_signal_handlers(self):
        pass

    def restore_signal_handlers(self):
        pass

    def shield(self):
        pass

    def interrupt(self):
        """Stop a running full sync (its child process); the transaction is then aborted."""
        child = self.child
        if child is not None and child.poll() is None:
            try:
                child.terminate()
            except OSError:
                pass

    def run_sync(self, check):
        if self.keys is None:
            return super(EventJob, self).run_sync(check)
        from ._s3_keys import NeedsFullSync
        try:
            return self._sync_keys(check)
        except NeedsFullSync as error:
            self.log.info("event=full_sync_needed repository=%s reason=%s" % (self.repository, quote(error.message)))
            self.keys = None
            self.mode = "full"
            return super(EventJob, self).run_sync(check)

    def _sync_keys(self, check):
        """The job's own sync (its ``sync_argv``, read with the command line's parser, so keys mode
        and the timer's full sync use the same options), limited to the touched keys, in-process."""
        from ._s3_sync import sync_keys
        from ._s3_sync_cli import _parser, sync_options
        argv = self.sync_argv(check)
        args = _parser().parse_args(argv[argv.index("--bucket"):])
        credentials = self.credentials
        # the credentials the command line would take from the environment
        conn, options = sync_options(args, credentials.get("AWS_ACCESS_KEY_ID"),
                                     credentials.get("AWS_SECRET_ACCESS_KEY"),
                                     credentials.get("AWS_SESSION_TOKEN"))
        what = "planning" if check else "applying"
        self.log.info("%s %d key(s) of %s from s3://%s/%s to %s"
                      % (what, len(self.keys), self.repository, args.bucket, args.prefix, args.dest))
        result = sync_keys(conn, options, self.keys)
        for rejection in result.get("rejections") or []:
            self.log.warning("skipped %s: %s" % (rejection["key"], rejection["reason"]))
        log_missing_keys(self.log, result)
        return result
