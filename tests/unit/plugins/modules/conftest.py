"""Fixtures for module tests against the cvmfs_server TEST DOUBLE (tests/cvmfs_double/cvmfs_server).

The double mimics documented behaviour from the facts file; it is not CernVM-FS. Every test gets
its own scratch root; the modules are pointed at it through the test hook of
module_utils/_cvmfs_server.py (environment variables, see DoubleHost.module_env).
"""

import pytest

from tests.cvmfs_double import DoubleHost, make_storage


@pytest.fixture
def host(tmp_path, run_module):
    return DoubleHost(tmp_path / "host", run_module)


@pytest.fixture
def storage_factory(tmp_path):
    def _make(fqrn, revision=5, **kwargs):
        return make_storage(str(tmp_path / "remote" / fqrn), fqrn, revision, **kwargs)
    return _make
