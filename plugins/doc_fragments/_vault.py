# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection and auth options of every plugin that talks to Vault / OpenBao.

Internal to sharedsw.cvmfs; may change in any release. Matches ARGSPEC in module_utils/_vault.py;
``key_layout`` (where repository keys live in the KV mount) matches LAYOUT_ARGSPEC in
module_utils/_cvmfs_keys.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  auth_method:
    description:
      - How to log in to Vault.
      - V(token) uses O(token). V(approle) logs in with O(role_id) and O(secret_id).
        V(jwt) logs in with O(jwt) under the role O(jwt_role).
      - Options of an auth method other than the chosen one are rejected, so credentials meant for
        one method never ride along with another.
    type: str
    choices: [approle, jwt, token]
    default: token
  auth_mount_point:
    description:
      - Path at which the auth method is enabled, without C(auth/).
      - Defaults to the name of the method (V(approle) or V(jwt)).
    type: str
  ca_cert:
    description:
      - PEM bundle of the CA that signed the Vault server certificate.
      - If not set, the environment variable E(VAULT_CACERT), then E(BAO_CACERT), is used; otherwise
        the system trust store.
    type: path
  engine_mount_point:
    description:
      - Mount point of the KV version 2 secrets engine that holds the keys.
      - A KV version 1 mount is refused with an error.
    type: str
    default: secret
  jwt:
    description:
      - The signed JSON Web Token, for O(auth_method=jwt).
    type: str
  jwt_role:
    description:
      - Name of the role of the JWT auth method, for O(auth_method=jwt).
    type: str
  namespace:
    description:
      - Vault / OpenBao namespace.
      - If not set, the environment variable E(VAULT_NAMESPACE), then E(BAO_NAMESPACE), is used.
    type: str
  retries:
    description:
      - How many times to retry a request that failed in a way a retry can fix (connection refused
        or reset, timeout, HTTP 429, 500, 502, 503 other than "sealed"), with jittered exponential backoff.
      - V(0) disables retries.
    type: int
    default: 3
  role_id:
    description:
      - AppRole role ID, for O(auth_method=approle).
    type: str
  secret_id:
    description:
      - AppRole secret ID, for O(auth_method=approle). Leave unset for roles with C(bind_secret_id=false).
    type: str
  timeout:
    description:
      - Seconds to wait for each HTTP request.
    type: int
    default: 30
  token:
    description:
      - Vault token, for O(auth_method=token).
      - If not set, the environment variable E(VAULT_TOKEN), then E(BAO_TOKEN), is used, and only for
        O(auth_method=token). The token helper file C(~/.vault-token) is never read.
    type: str
  url:
    description:
      - Address of the Vault or OpenBao server, for example C(https://vault.example.org:8200).
      - If not set, the environment variable E(VAULT_ADDR), then E(BAO_ADDR), is used. If both E(VAULT_*)
        and E(BAO_*) variables of one option are set to different values, the task fails instead of guessing.
      - A plain C(http://) URL to a host other than loopback gives a warning.
      - Proxy environment variables and C(~/.netrc) are ignored.
    type: str
  validate_certs:
    description:
      - Verify the TLS certificate of the server. E(VAULT_SKIP_VERIFY) is deliberately not honoured.
    type: bool
    default: true
"""

    KEY_LAYOUT = r"""
options:
  fields:
    description:
      - Field name of each kind inside its secret, overriding the defaults of O(layout).
      - Defaults for O(layout=per_kind) are the kind names. Defaults for O(layout=single_path) are
        C(masterKey), C(repositoryKey), C(certificateKey), C(publicKey) and C(gatewayKey).
    type: dict
    suboptions:
      crt:
        description: Field of the certificate.
        type: str
      gw:
        description: Field of the gateway key.
        type: str
      key:
        description: Field of the repository key.
        type: str
      masterkey:
        description: Field of the masterkey.
        type: str
      pub:
        description: Field of the public key.
        type: str
  layout:
    description:
      - V(per_kind) keeps each kind at its own path (see the description), which lets a policy give
        a publisher the public and gateway paths and nothing else.
      - V(single_path) keeps all kinds in one secret at C(<prefix>/<repo>), as some sites already do
        (INFN-style field names, see O(fields)). A policy cannot keep the masterkey from any host that
        may read that secret, publishers included; prefer V(per_kind) for new sites.
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
      - Path template of each kind inside the KV mount, overriding the defaults of O(layout).
        C({prefix}) is O(path_prefix), C({repo}) is the repository name.
      - Kinds may share a path when their fields differ.
    type: dict
    suboptions:
      crt:
        description: Path of the certificate.
        type: str
      gw:
        description: Path of the gateway key.
        type: str
      key:
        description: Path of the repository key.
        type: str
      masterkey:
        description: Path of the masterkey.
        type: str
      pub:
        description: Path of the public key.
        type: str
"""

    # the action group of meta/runtime.yml whose members share these options
    ACTION_GROUP = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/sharedsw.cvmfs.vault) in C(module_defaults) to set the Vault connection once
      per play (O(url), O(auth_method) and its credentials, O(engine_mount_point), O(ca_cert)) for the modules that
      read or write repository keys.
    support: full
    membership:
      - sharedsw.cvmfs.vault
  platform:
    platforms: posix
"""
