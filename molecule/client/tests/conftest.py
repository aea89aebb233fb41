"""The client host of the scenario (the stratum-0 is only the source it reads from)."""

import pytest
import testinfra


@pytest.fixture(scope="module")
def client(request):
    return testinfra.get_host("ansible://client1", ansible_inventory=request.config.option.ansible_inventory)
