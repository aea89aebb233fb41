"""pytest fixtures around the OpenStack API TEST DOUBLE (tests/openstack_double/api.py).

Import them into a test directory's conftest.py: ``from tests.openstack_double.fixtures import *``.
"""

import pytest

from .api import OpenStackDouble

__all__ = ["openstack_double"]


@pytest.fixture
def openstack_double(tmp_path):
    """A fresh test double of Keystone/Nova/Neutron/Glance on 127.0.0.1, with ``.clouds_yaml_path``
    (a clouds.yaml naming the cloud ``double``) and one public image ``debian-12``.

    Fails the test if any request reached an endpoint the double does not implement.
    """
    double = OpenStackDouble().start()
    double.clouds_yaml_path = double.clouds_yaml(str(tmp_path / "clouds.yaml"))
    double.add_image("debian-12")
    try:
        yield double
    finally:
        double.stop()
    assert double.unknown == [], "requests the OpenStack test double does not implement: %s" % double.unknown
