# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: repo_public_key
short_description: Read the public key of a CernVM-FS repository from Vault
version_added: 0.1.0
author:
  - sharedsw.cvmfs developers (@sharedsw)
description:
  - Returns the PEM public key (the C(<repo>.pub) file) of each repository named, read from a Vault or
    OpenBao KV version 2 secrets engine where the M(sharedsw.cvmfs.keys) module stored it.
  - Meant for templates and C(copy) tasks on clients and stratum-1s, whose policy grants only the
    C(public) path. Runs on the controller, so the Vault options (and the environment fallbacks) are
    those of the controller.
  - The value is checked to be a PEM RSA public key before it is returned.
extends_documentation_fragment:
  - sharedsw.cvmfs._vault
options:
  _terms:
    description: Fully qualified repository names.
    type: list
    elements: str
    required: true
  fields:
    description:
      - Field names per kind, as in M(sharedsw.cvmfs.keys); only C(pub) is used.
    type: dict
  layout:
    description:
      - V(per_kind) or V(single_path), as in M(sharedsw.cvmfs.keys).
    type: str
    choices: [per_kind, single_path]
    default: per_kind
  path_prefix:
    description:
      - Value of C({prefix}) in the path templates.
    type: str
    default: cvmfs
  paths:
    description:
      - Path templates per kind, as in M(sharedsw.cvmfs.keys); only C(pub) is used.
    type: dict
notes:
  - One login per lookup call, however many repositories are named.
seealso:
  - module: sharedsw.cvmfs.keys
"""

EXAMPLES = r"""
- name: Install the public key of a repository on a client
  ansible.builtin.copy:
    content: "{{ lookup('sharedsw.cvmfs.repo_public_key', 'software.example.org',
                 url='https://vault.example.org:8200', auth_method='approle',
                 role_id=client_role_id, secret_id=client_secret_id) }}"
    dest: /etc/cvmfs/keys/example.org/software.example.org.pub
    mode: "0444"

- name: Public keys of several repositories, token taken from VAULT_TOKEN on the controller
  ansible.builtin.set_fact:
    repo_pubkeys: "{{ query('sharedsw.cvmfs.repo_public_key', 'software.example.org', 'data.example.org',
                     url='https://vault.example.org:8200') }}"
"""

RETURN = r"""
_raw:
  description: The PEM public key of each repository, in the order of the terms.
  type: list
  elements: str
"""

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase
from ansible.utils.display import Display

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._cvmfs_keys import (
    CRYPTOGRAPHY_IMP_ERR, HAS_CRYPTOGRAPHY, Layout, load)
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._vault import ARGSPEC, HAS_HVAC, VaultClient

display = Display()


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        if not HAS_HVAC:
            raise AnsibleError("the lookup sharedsw.cvmfs.repo_public_key needs the Python library hvac on the controller")
        if not HAS_CRYPTOGRAPHY:
            raise AnsibleError("the lookup sharedsw.cvmfs.repo_public_key needs the Python library cryptography: %s"
                               % CRYPTOGRAPHY_IMP_ERR)
        self.set_options(var_options=variables, direct=kwargs)
        options = dict((name, self.get_option(name)) for name in ARGSPEC)
        try:
            layouts = [Layout(repo, self.get_option("layout"), self.get_option("path_prefix"),
                              self.get_option("paths"), self.get_option("fields")) for repo in terms]
            client = VaultClient(options, warn=display.warning)
            client.connect()
            result = []
            for layout in layouts:
                path, field = layout.path("pub"), layout.field("pub")
                data, _version = client.read(path)
                where = "field %s of the Vault secret %s/%s" % (field, client.mount, path)
                if data is None or field not in data:
                    raise CvmfsError("no public key of %s: %s does not exist; store the keys from the stratum-0 "
                                     "(sharedsw.cvmfs.keys state=stored) or check paths and fields" % (layout.repo, where))
                load("pub", data[field], where)
                result.append(data[field])
        except CvmfsError as error:
            raise AnsibleError("sharedsw.cvmfs.repo_public_key: %s" % error.message)
        return result
