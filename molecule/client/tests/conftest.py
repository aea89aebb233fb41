"""The client host of the scenario (the stratum-0 is only the source it reads from)."""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))  # for tests.support

from tests.support.testinfra_hosts import lab_host  # noqa: E402  pylint: disable=wrong-import-position

client = lab_host("client1")
