# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one base class of every sharedsw.cvmfs module.

Internal to sharedsw.cvmfs; may change in any release.

A module is a subclass with ``argument_spec``, ``module_kwargs`` and ``run()``; ``main()`` is
``ThatModule()()``. ``run()`` fills ``self.results`` (``changed`` starts False) and raises
:class:`CvmfsError` for anything the user must fix; the base turns it into ``fail_json``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError


class CvmfsModule:
    argument_spec = {}
    module_kwargs = {}

    def __init__(self):
        self.ansible = AnsibleModule(argument_spec=self.argument_spec, **self.module_kwargs)
        self.params = self.ansible.params
        self.check_mode = self.ansible.check_mode
        self.diff_mode = self.ansible._diff
        self.results = {"changed": False}

    def run(self):
        raise NotImplementedError

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
