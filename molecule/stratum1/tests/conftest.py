"""Hosts of the stratum1 scenario: the stratum-1 under test and the stratum-0 it replicates."""

import pytest
import testinfra


@pytest.fixture(scope="module")
def s1(request):
    return testinfra.get_host("ansible://s1-lab", ansible_inventory=request.config.option.ansible_inventory)


@pytest.fixture(scope="module")
def s0(request):
    return testinfra.get_host("ansible://s0-replicated", ansible_inventory=request.config.option.ansible_inventory)
