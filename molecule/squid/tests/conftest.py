"""Hosts of the squid scenario, by role in the test, from molecule's inventory."""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))  # for tests.support

from tests.support.testinfra_hosts import lab_host  # noqa: E402  pylint: disable=wrong-import-position

proxy = lab_host("sq-proxy")
stratum1 = lab_host("sq-s1")
client = lab_host("sq-client")
outsider = lab_host("sq-outsider")
