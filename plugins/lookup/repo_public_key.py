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
  - sharedsw.cvmfs._vault.key_layout
options:
  _terms:
    description: Fully qualified repository names.
    type: list
    elements: str
    required: true
notes:
  - One login per lookup call, however many repositories are named.
  - The key options are those of M(sharedsw.cvmfs.keys); of O(paths) and O(fields) only the C(pub) entry is used.
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

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._crypto import CRYPTOGRAPHY_IMP_ERR, HAS_CRYPTOGRAPHY
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._cvmfs_keys import Layout, load
from ansible_collections.sharedsw.cvmfs.plugins.plugin_utils._vault_lookup import VaultLookupBase


class LookupModule(VaultLookupBase):
    lookup_name = "sharedsw.cvmfs.repo_public_key"

    def check_libraries(self):
        super(LookupModule, self).check_libraries()
        if not HAS_CRYPTOGRAPHY:
            raise AnsibleError("the lookup %s needs the Python library cryptography: %s"
                               % (self.lookup_name, CRYPTOGRAPHY_IMP_ERR))

    def prepare(self, terms):
        return [Layout(repo, self.get_option("layout"), self.get_option("path_prefix"),
                       self.get_option("paths"), self.get_option("fields")) for repo in terms]

    def read_term(self, client, term):
        layout = term
        path, field = layout.path("pub"), layout.field("pub")
        data, _version = client.read(path)
        where = "field %s of the Vault secret %s/%s" % (field, client.mount, path)
        if data is None or field not in data:
            raise CvmfsError("no public key of %s: %s does not exist; store the keys from the stratum-0 "
                             "(sharedsw.cvmfs.keys state=stored) or check paths and fields" % (layout.repo, where))
        load("pub", data[field], where)
        return data[field]
