"""Hosts of the publisher scenario, from molecule's inventory."""

import pytest
import testinfra


def _host(request, name):
    return testinfra.get_host("ansible://" + name, ansible_inventory=request.config.option.ansible_inventory)


@pytest.fixture(scope="module")
def stratum0(request):
    return _host(request, "p-s0")


@pytest.fixture(scope="module")
def publisher(request):
    return _host(request, "p-pub")
