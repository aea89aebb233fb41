"""Hosts of the squid scenario, by role in the test, from molecule's inventory."""

import pytest
import testinfra


def _host(request, name):
    return testinfra.get_host("ansible://" + name, ansible_inventory=request.config.option.ansible_inventory)


@pytest.fixture(scope="module")
def proxy(request):
    return _host(request, "sq-proxy")


@pytest.fixture(scope="module")
def stratum1(request):
    return _host(request, "sq-s1")


@pytest.fixture(scope="module")
def client(request):
    return _host(request, "sq-client")


@pytest.fixture(scope="module")
def outsider(request):
    return _host(request, "sq-outsider")
