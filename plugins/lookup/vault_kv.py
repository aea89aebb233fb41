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

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase
from ansible.utils.display import Display

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._vault import ARGSPEC, HAS_HVAC, VaultClient

display = Display()


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        if not HAS_HVAC:
            raise AnsibleError("the lookup sharedsw.cvmfs.vault_kv needs the Python library hvac on the controller")
        self.set_options(var_options=variables, direct=kwargs)
        options = dict((name, self.get_option(name)) for name in ARGSPEC)
        fields = self.get_option("fields") or []
        try:
            client = VaultClient(options, warn=display.warning)
            client.connect()
            result = []
            for path in terms:
                path = str(path).strip("/")
                data, _version = client.read(path)
                if data is None:
                    raise CvmfsError("no secret at %s/%s (API path %s); write it first or fix the path"
                                     % (client.mount, path, client.api_path(path)))
                missing = [field for field in fields if field not in data]
                if missing:
                    raise CvmfsError("the secret %s/%s lacks the field(s) %s (it has %s)"
                                     % (client.mount, path, ", ".join(missing), ", ".join(sorted(data)) or "none"))
                result.append(data)
        except CvmfsError as error:
            raise AnsibleError("sharedsw.cvmfs.vault_kv: %s" % error.message)
        return result
