# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The input of the filters that read the repository catalogue (C(cvmfs_repositories)).

Internal to sharedsw.cvmfs; may change in any release. The schema lives in plugin_utils/_catalogue.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  _input:
    description: The catalogue, a list of repository entries.
    type: list
    elements: dict
    required: true
"""
