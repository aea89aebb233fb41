"""Hosts of the stratum1 scenario: the stratum-1 under test and the stratum-0 it replicates."""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))  # for tests.support

from tests.support.testinfra_hosts import lab_host  # noqa: E402  pylint: disable=wrong-import-position

s1 = lab_host("s1-lab")
s0 = lab_host("s0-replicated")
