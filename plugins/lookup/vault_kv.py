# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: vault_kv
short_description: Read a secret from a Vault or OpenBao KV version 2 engine
version_added: 0.1.0
author:
  - sharedsw.cvmfs developers (@sharedsw)
description:
  - Returns the data (a dict of fields) of the latest version of each KV v2 secret named, for
    credentials the roles need at deploy time, such as the S3 keys of a stratum-0's storage or of
    a publisher's source bucket (C(credentials.vault_path) in the repository catalogue).
  - Same connection and login options as M(sharedsw.cvmfs.keys); runs on the controller, so the
    environment fallbacks (E(VAULT_ADDR), E(VAULT_TOKEN), ...) are the controller's.
  - Use the result in tasks with C(no_log), and never write it on the controller.
extends_documentation_fragment:
  - sharedsw.cvmfs._vault
options:
  _terms:
    description: Paths of the secrets inside the KV mount (O(engine_mount_point)), e.g. C(cvmfs/s3/team-a).
    type: list
    elements: str
    required: true
  fields:
    description: Fields every secret must have; a secret without one of them is an error.
    type: list
    elements: str
    default: []
notes:
  - One login per lookup call, however many secrets are named.
seealso:
  - module: sharedsw.cvmfs.keys
"""

EXAMPLES = r"""
- name: S3 credentials of a source bucket, never shown
  ansible.builtin.copy:
    content: |
      AWS_ACCESS_KEY_ID={{ creds.access_key }}
      AWS_SECRET_ACCESS_KEY={{ creds.secret_key }}
    dest: /etc/sharedsw-cvmfs/publish/sw.example.org.credentials
    mode: "0600"
  vars:
    creds: "{{ query('sharedsw.cvmfs.vault_kv', 'cvmfs/s3/team-a', fields=['access_key', 'secret_key'],
                     url='https://vault.example.org:8200', auth_method='approle',
                     role_id=deploy_role_id, secret_id=deploy_secret_id) | first }}"
  no_log: true
"""

RETURN = r"""
_raw:
  description: The fields of each secret, in the order of the terms.
  type: list
  elements: dict
"""

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from ansible_collections.sharedsw.cvmfs.plugins.plugin_utils._vault_lookup import VaultLookupBase


class LookupModule(VaultLookupBase):
    lookup_name = "sharedsw.cvmfs.vault_kv"

    def prepare(self, terms):
        return [str(path).strip("/") for path in terms]

    def read_term(self, client, term):
        path = term
        data, _version = client.read(path)
        if data is None:
            raise CvmfsError("no secret at %s/%s (API path %s); write it first or fix the path"
                             % (client.mount, path, client.api_path(path)))
        missing = [field for field in self.get_option("fields") or [] if field not in data]
        if missing:
            raise CvmfsError("the secret %s/%s lacks the field(s) %s (it has %s)"
                             % (client.mount, path, ", ".join(missing), ", ".join(sorted(data)) or "none"))
        return data
