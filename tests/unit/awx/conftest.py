"""Ansible's collection loader, installed before any test here imports the collection: the templating
test runs the collection's filters (and community.general's) by their FQCN."""

from ansible.plugins.loader import init_plugin_loader

from tests.conftest import COLLECTIONS_ROOT

init_plugin_loader([COLLECTIONS_ROOT])
