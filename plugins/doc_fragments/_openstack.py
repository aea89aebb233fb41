# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options of every module that talks to OpenStack.

Internal to sharedsw.cvmfs; may change in any release. Matches ARGSPEC in module_utils/_openstack.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  api_timeout:
    description:
      - Seconds to wait for the answer to each OpenStack API request, including the time Glance takes to
        store an uploaded image after the last byte was sent.
    type: int
    default: 600
  cloud:
    description:
      - The cloud to talk to. A string names a cloud of C(clouds.yaml) (found through
        E(OS_CLIENT_CONFIG_FILE), C(./clouds.yaml), C(~/.config/openstack/clouds.yaml) or
        C(/etc/openstack/clouds.yaml)); a dict is a complete cloud, as one entry of C(clouds.yaml).
      - If not set, E(OS_CLOUD), or else the E(OS_AUTH_URL) family of variables (what an AWX OpenStack
        credential sets), is used. If none of these is set, the task fails rather than guess.
    type: raw
  region_name:
    description: Region of the cloud, if it has several.
    type: str
requirements:
  - openstacksdk >= 1.0
"""

    # the action group of meta/runtime.yml whose members share these options
    ACTION_GROUP = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/sharedsw.cvmfs.openstack) in C(module_defaults) to set the cloud options once per play.
    support: full
    membership:
      - sharedsw.cvmfs.openstack
  platform:
    platforms: posix
"""
