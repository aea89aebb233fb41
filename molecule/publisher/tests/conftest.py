"""Hosts of the publisher scenario, from molecule's inventory."""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))  # for tests.support

from tests.support.testinfra_hosts import lab_host  # noqa: E402  pylint: disable=wrong-import-position

stratum0 = lab_host("p-s0")
publisher = lab_host("p-pub")
