"""Fixtures of the OpenStack API test double, and Ansible's collection loader.

The collection loader is installed here, before any test module of this directory imports
``ansible_collections.sharedsw.cvmfs``: the plugin loader (used by the inventory test) only knows
collection packages that were imported through it.
"""

from ansible.plugins.loader import init_plugin_loader

from tests.conftest import COLLECTIONS_ROOT
from tests.openstack_double.fixtures import *  # noqa: F401,F403  pylint: disable=wildcard-import,unused-wildcard-import

init_plugin_loader([COLLECTIONS_ROOT])
