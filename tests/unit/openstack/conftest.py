"""Fixtures of the OpenStack API test double (Ansible's collection loader is installed by
tests/conftest.py, before any test imports the collection)."""

from tests.openstack_double.fixtures import *  # noqa: F401,F403  pylint: disable=wildcard-import,unused-wildcard-import
