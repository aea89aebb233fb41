# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: repository_catalogue
short_description: Check the repository catalogue and fill in every default
version_added: 0.1.0
author:
  - sharedsw.cvmfs developers
description:
  - Takes C(cvmfs_repositories), the one list that describes every repository of the service,
    checks each entry against the catalogue schema and returns the entries with every field
    present (defaults filled in, URLs derived, sub-paths normalised).
  - Fails with a message naming the entry and the field when an entry is wrong, e.g. a missing
    O(_input[].stratum0), overlapping publisher paths, or S3 storage without credentials.
  - The schema is documented in C(docs/repositories.md) of the collection.
extends_documentation_fragment:
  - sharedsw.cvmfs._catalogue
"""

EXAMPLES = r"""
- name: Names of the repositories with local storage
  ansible.builtin.debug:
    msg: "{{ cvmfs_repositories | sharedsw.cvmfs.repository_catalogue
             | selectattr('storage.type', 'equalto', 'local') | map(attribute='name') }}"
"""

RETURN = r"""
_value:
  description: The checked entries, every field present.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from ansible_collections.sharedsw.cvmfs.plugins.plugin_utils._catalogue import normalise


def repository_catalogue(catalogue):
    try:
        return normalise(catalogue)
    except CvmfsError as error:
        raise AnsibleFilterError(error.message)


class FilterModule(object):
    def filters(self):
        return {"repository_catalogue": repository_catalogue}
