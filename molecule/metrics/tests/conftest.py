"""The two hosts of the metrics scenario: the stratum-0 and the client reading from it."""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))  # for tests.support

from tests.support.testinfra_hosts import lab_host  # noqa: E402  pylint: disable=wrong-import-position

stratum0 = lab_host("mt-s0")
client = lab_host("mt-client")
