"""Hosts of the hardened scenario: the two strata (the stratum-0 is the squid too), and the probe host."""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))  # for tests.support

from tests.support.testinfra_hosts import lab_host  # noqa: E402  pylint: disable=wrong-import-position

s0 = lab_host("hd-s0")
s1 = lab_host("hd-s1")
probe = lab_host("hd-client")
