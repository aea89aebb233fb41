# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base of the lookups that read KV v2 secrets from Vault / OpenBao on the controller.

Internal to sharedsw.cvmfs; may change in any release. Owns what every Vault lookup does around
its own reading: the library check, the Vault options (doc fragment ``_vault``), one login per
call, and turning :class:`CvmfsError` into an ``AnsibleError`` that names the lookup. Controller
side only; the Vault client itself is module_utils/_vault.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase
from ansible.utils.display import Display

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._vault import ARGSPEC, HAS_HVAC, VaultClient

display = Display()


class VaultLookupBase(LookupBase):
    """Subclasses set :attr:`lookup_name` and implement :meth:`read_term`; they may override
    :meth:`check_libraries` and :meth:`prepare` (offline checks of the terms, before any login)."""

    lookup_name = None

    def check_libraries(self):
        if not HAS_HVAC:
            raise AnsibleError("the lookup %s needs the Python library hvac on the controller" % self.lookup_name)

    def prepare(self, terms):
        return terms

    def read_term(self, client, term):
        """What the lookup returns for one ``term`` (an item of what :meth:`prepare` returned)."""
        raise NotImplementedError

    def run(self, terms, variables=None, **kwargs):
        self.check_libraries()
        self.set_options(var_options=variables, direct=kwargs)
        options = dict((name, self.get_option(name)) for name in ARGSPEC)
        try:
            items = self.prepare(terms)
            client = VaultClient(options, warn=display.warning)
            client.connect()
            return [self.read_term(client, term) for term in items]
        except CvmfsError as error:
            raise AnsibleError("%s: %s" % (self.lookup_name, error.message))
