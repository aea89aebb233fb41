"""The public options of the modules that work with cvmfs_server's files: no test seams.

Where cvmfs_server and its directories are is not an option: the tests point the modules at the
TEST DOUBLE of cvmfs_server through the test hook of module_utils/_cvmfs_server.py (environment
variables), see tests/cvmfs_double.
"""

import pytest

SEAMS = {
    "cvmfs_server_path": "/usr/bin/cvmfs_server",
    "etc_dir": "/etc/cvmfs",
    "spool_dir": "/var/spool/cvmfs",
    "storage_dir": "/srv/cvmfs",
}
ARGS = {
    "repository": {"name": "sw.example.org", "state": "absent"},
    "transaction": {"name": "sw.example.org", "state": "aborted"},
    "replica": {"name": "sw.example.org", "state": "absent"},
    "repository_info": {},
}


@pytest.mark.parametrize("option", sorted(SEAMS))
@pytest.mark.parametrize("module", sorted(ARGS))
def test_test_seams_are_not_options(run_module, module, option):
    result = run_module(module, dict(ARGS[module], **{option: SEAMS[option]}), check=True)
    assert result.failed, result
    assert "Unsupported parameters" in result["msg"] and option in result["msg"], result["msg"]
