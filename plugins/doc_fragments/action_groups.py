# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action groups of meta/runtime.yml, one fragment each: which group a module belongs to and what
a play sets once for it with ``module_defaults``."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def _action_group(group, what):
    return r"""
options: {}
attributes:
  action_group:
    description: Use C(group/sharedsw.cvmfs.%s) in C(module_defaults) to set %s once per play.
    support: full
    membership:
      - sharedsw.cvmfs.%s
""" % (group, what, group)


class ModuleDocFragment(object):
    # the modules that work on one CernVM-FS repository of the host, named by O(name)
    CVMFS_SERVER = _action_group("cvmfs_server", "O(name), the repository of this host the modules work on,")
    S3 = _action_group("s3", "the S3 connection")
    VAULT = _action_group("vault", "the Vault options")
    OPENSTACK = _action_group("openstack", "the cloud options")
