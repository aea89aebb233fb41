# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: publisher_jobs
short_description: The publish jobs one publisher host runs, from the repository catalogue
version_added: 0.1.0
author:
  - sharedsw.cvmfs developers
description:
  - Checks the catalogue like P(sharedsw.cvmfs.repository_catalogue#filter) and returns one job per
    repository that lists O(host) among its publishers, with the publisher's overrides applied
    (source bucket and prefix, schedule, owner) and the lease path worked out.
extends_documentation_fragment:
  - sharedsw.cvmfs._catalogue
options:
  host:
    description: Inventory host name of the publisher.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Repositories this host publishes
  ansible.builtin.debug:
    msg: "{{ cvmfs_repositories | sharedsw.cvmfs.publisher_jobs(inventory_hostname) | map(attribute='lease') }}"
"""

RETURN = r"""
_value:
  description:
    - One dict per job with C(repository), C(host), C(path) (lease sub-path), C(lease)
      (C(<repository><path>)), C(owner), C(schedule), C(url) (stratum-0 URL), C(gateway_url) and
      C(source) (the merged source settings, C(prefix) already extended by the sub-path).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from ansible_collections.sharedsw.cvmfs.plugins.plugin_utils._catalogue import publisher_jobs as _publisher_jobs


def publisher_jobs(catalogue, host):
    try:
        return _publisher_jobs(catalogue, host)
    except CvmfsError as error:
        raise AnsibleFilterError(error.message)


class FilterModule(object):
    def filters(self):
        return {"publisher_jobs": publisher_jobs}
