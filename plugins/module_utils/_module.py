# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base classes of the sharedsw.cvmfs modules.

Internal to sharedsw.cvmfs; may change in any release.

Ansible side only: imports ``ansible.module_utils`` and the collection's files by
``ansible_collections`` paths. Must not import the host programs (``_publish_*``, ``_event*``,
``_snapshot_listener``, ``_s3_sync_cli``), pika or boto3; no file a host program imports may
import it.

* :class:`CvmfsModule`, the base of every module: a subclass with ``argument_spec``,
  ``module_kwargs`` and ``run()``; ``main()`` is ``ThatModule()()``. ``run()`` fills
  ``self.results`` (``changed`` starts False) and raises :class:`CvmfsError` for anything the user
  must fix; the base turns it into ``fail_json``. :meth:`CvmfsModule.secret_values` names values
  that must stay out of the logged invocation and the results although their option is not no_log.
* :class:`CvmfsServerModule`, the base of the modules that drive ``cvmfs_server`` on one repository
  or replica (``repository``, ``replica``, ``transaction``): it owns their ``run()`` (name check,
  runner, state read, command results, diff) and the file helpers two of them share; a subclass
  implements :meth:`CvmfsServerModule.apply` and the hooks it needs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import traceback

from ansible.module_utils.basic import AnsibleModule, _load_params

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._cvmfs_server import add_run_results, host_paths, host_server
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._cvmfs_server_errors import RepositoryMissing
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._cvmfs_state import (
    ensure_file, is_valid_repo_name, read_storage_object, read_text, redact_config_text, render_s3_config,
    repository_state, update_config_text, write_file_atomic)
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._cvmfs_signed import manifest_revision


class CvmfsModule:
    argument_spec = {}
    module_kwargs = {}

    def __init__(self):
        secrets = self.secret_values(_load_params() or {})  # None where ansible-test introspects the module
        module_no_log = self.module_kwargs.get("no_log", False)
        kwargs = dict(self.module_kwargs, no_log=module_no_log or bool(secrets))
        self.ansible = AnsibleModule(argument_spec=self.argument_spec, **kwargs)
        if secrets:
            # AnsibleModule logs the invocation before any module code runs: hold that back (no_log
            # above) until the secrets are among the values it removes, then log it.
            self.ansible.no_log_values.update(secrets)
            self.ansible.no_log = module_no_log
            if not module_no_log:
                self.ansible._log_invocation()
        self.params = self.ansible.params
        self.check_mode = self.ansible.check_mode
        self.diff_mode = self.ansible._diff
        self.results = {"changed": False}

    def run(self):
        raise NotImplementedError

    @classmethod
    def secret_values(cls, raw_params):
        """Values of ``raw_params`` (the module arguments as given, not yet validated) that must be
        masked in the logged invocation and in the results, although their option is not no_log."""
        return set()

    def __call__(self):
        try:
            self.run()
        except CvmfsError as error:
            trace = None
            if error.exception is not None:
                trace = "".join(traceback.format_exception(
                    type(error.exception), error.exception, error.exception.__traceback__))
            self.ansible.fail_json(msg=error.message, exception=trace, **dict(self.results, **error.extra))
        self.ansible.exit_json(**self.results)


class CvmfsServerModule(CvmfsModule):
    """A module that drives ``cvmfs_server`` on the repository or replica named by option ``name``.

    The subclass's ``argument_spec`` includes ``name``. :meth:`run`
    does, in this order:

    1. check ``name`` (:meth:`name_hint` may add to the message); set ``self.name``,
       ``self.paths`` and ``self.server`` (check mode skips mutating sub-commands),
       ``self.diffs = []``, and ``results['name']`` plus :attr:`initial_results`;
    2. :meth:`check_arguments`: hook for checks that need no state;
    3. read ``current = repository_state(...)`` (``None`` if absent) and :meth:`check_current`:
       hook that refuses the wrong kind of repository;
    4. :meth:`apply` the module's own work; the last mutating ``cvmfs_server`` call (and at
       ``-vvvv`` every call) goes into the results even when it fails;
    5. :meth:`finish`: by default ``results[noun]`` is the state after the run and ``diff`` the
       collected ``self.diffs`` (diff mode only).
    """

    #: What the module manages, as messages, diff headers and ``results`` name it.
    noun = "repository"
    #: Results every run returns, set before anything can fail.
    initial_results = {}

    def run(self):
        self.name = self.params["name"]
        if not is_valid_repo_name(self.name):
            raise CvmfsError("name %r is not a valid %s name: use letters, digits, '-', '_' and '.', starting with a "
                             "letter or digit, at most 60 characters%s" % (self.name, self.noun, self.name_hint()))
        if "." not in self.name:
            raise CvmfsError("name %r is not a fully qualified %s name: cvmfs_server appends '.' and "
                             "CVMFS_DEFAULT_DOMAIN to a name without a dot (with the default, empty domain it would "
                             "create %r, which nothing finds under %r); give the full name, for example %s.example.org"
                             % (self.name, self.noun, self.name + ".", self.name, self.name))
        self.paths = host_paths()
        self.server = host_server(self.check_mode)
        self.diffs = []
        self.results.update(self.initial_results, name=self.name)
        self.check_arguments()
        current = repository_state(self.name, self.paths)
        self.check_current(current)
        try:
            self.apply(current)
        finally:
            add_run_results(self.results, self.server, getattr(self.ansible, "_verbosity", 0))
        self.finish(current)

    # ------------------------------------------------------------------ hooks

    def name_hint(self):
        """Text appended to the invalid-name message (starts with a space), or ``""``."""
        return ""

    def check_arguments(self):
        """Raise :class:`CvmfsError` for option combinations that are wrong whatever the state."""

    def check_current(self, current):
        """Raise :class:`CvmfsError` if ``current`` (state dict or ``None``) is not for this module."""

    def apply(self, current):
        """Bring the repository to the wanted state; set ``results['changed']``, append to ``self.diffs``."""
        raise NotImplementedError

    def finish(self, current):
        self.results[self.noun] = repository_state(self.name, self.paths)
        if self.diff_mode and self.diffs:
            self.results["diff"] = self.diffs

    # ------------------------------------------------------------------ shared steps

    def state_diff(self, before, after):
        """A diff of the repository's existence, ``before``/``after`` being the text after ``state:``."""
        header = "%s %s" % (self.noun, self.name)
        return {"before_header": header, "after_header": header,
                "before": "state: %s\n" % before, "after": "state: %s\n" % after}

    def remove(self, current):
        """``cvmfs_server rmfs`` (keeping the data with option ``preserve_data``) and its S3 config file."""
        if current is None:
            return
        self.results["changed"] = True
        self.diffs.append(self.state_diff("present", "absent"))
        try:
            self.server.run("rmfs", name=self.name, preserve=self.params["preserve_data"])
        except RepositoryMissing:
            self.results["changed"] = False
            return
        s3_path = self.s3_config_path()
        if not self.params["preserve_data"] and os.path.isfile(s3_path) and not self.check_mode:
            os.unlink(s3_path)

    def s3_config_path(self):
        return self.params["s3_config_path"] or os.path.join(self.paths.etc_dir, "s3", self.name + ".conf")

    def ensure_s3_config(self, path, owner_pw):
        """Write option ``s3_config`` as the S3 config file ``path`` (mode 0600, owned by ``owner_pw``)."""
        try:
            text = render_s3_config(self.params["s3_config"], "Managed by sharedsw.cvmfs.%s for %s"
                                    % (self.noun, self.name))
        except ValueError as error:
            raise CvmfsError(str(error))
        changed, old = ensure_file(path, text, 0o600, owner_pw.pw_uid, owner_pw.pw_gid, self.check_mode)
        if changed:
            self.results["changed"] = True
            self.diffs.append({"before_header": path, "after_header": path,
                               "before": redact_config_text(old or ""), "after": redact_config_text(text)})

    def update_conf(self, path, wanted, old=None):
        """Set the ``wanted`` variables in the config file ``path`` (``old``: its text; read if ``None``)."""
        if old is None:
            old = read_text(path) or ""
        new = update_config_text(old, wanted)
        if new == old:
            return
        self.results["changed"] = True
        self.diffs.append({"before_header": path, "after_header": path,
                           "before": redact_config_text(old), "after": redact_config_text(new)})
        if not self.check_mode:
            write_file_atomic(path, new)

    def read_revision(self, state, warning):
        """Revision in the ``.cvmfspublished`` of ``state``; ``None`` if unreadable (warns ``warning: error``)."""
        try:
            data = read_storage_object(state, ".cvmfspublished", self.paths) if state else None
        except IOError as error:
            self.ansible.warn("%s: %s" % (warning, error))
            return None
        return revision_of(data)


def revision_of(data):
    """The revision (``S`` line) of a ``.cvmfspublished`` object, or ``None``."""
    return manifest_revision(data) if data else None
