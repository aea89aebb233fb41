# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action of sharedsw.cvmfs.host_program: build the host-program archive here, copy it there."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import tempfile

from ansible import constants as C
from ansible.plugins.action import ActionBase

from ansible_collections.sharedsw.cvmfs.plugins.modules.host_program import ARGUMENT_SPEC
from ansible_collections.sharedsw.cvmfs.plugins.plugin_utils import _host_program


class ActionModule(ActionBase):

    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        source_dir = _host_program.module_utils_dir()
        version = _host_program.collection_version()
        try:
            programs = _host_program.entry_points(source_dir)
            modules = _host_program.import_closure(source_dir, programs)
            archive = _host_program.build_archive(source_dir, version, programs, modules)
        except _host_program.HostProgramError as error:
            result.update(failed=True, msg="cannot build the host programs: %s" % error)
            return result
        result.update(self._copy(archive, args, task_vars))
        result.update(version=version, programs=programs, modules=modules)
        return result

    def _copy(self, archive, args, task_vars):
        local_dir = tempfile.mkdtemp(dir=C.DEFAULT_LOCAL_TMP)
        try:
            path = os.path.join(local_dir, _host_program.ARCHIVE_NAME)
            with open(path, "wb") as handle:
                handle.write(archive)
            copy_task = self._task.copy()
            copy_task.args = dict(src=path, dest=args["dest"], owner=args["owner"], group=args["group"],
                                  mode=args["mode"])
            copy_action = self._shared_loader_obj.action_loader.get(
                "ansible.legacy.copy", task=copy_task, connection=self._connection, play_context=self._play_context,
                loader=self._loader, templar=self._templar, shared_loader_obj=self._shared_loader_obj)
            return copy_action.run(task_vars=task_vars)
        finally:
            shutil.rmtree(local_dir)
