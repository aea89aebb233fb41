"""Hosts of the external scenario: the stratum-0 publishing, the stratum-1 replicating an external
entry, and the client configured from the external catalogue and the configuration repository."""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))  # for tests.support

from tests.support.testinfra_hosts import lab_host  # noqa: E402  pylint: disable=wrong-import-position

s0 = lab_host("ext-s0")
s1 = lab_host("ext-s1")
client = lab_host("ext-client")
