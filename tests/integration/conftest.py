"""Fixtures of the integration tests beyond the real-service harness (tests/harness).

``cvmfs_lab_host`` (tests/support/cvmfs_lab_host.py): one lab host with real CernVM-FS for the whole
session, shared by every test module that asks for it; ``dirs``: the destination and state file of an
s3_sync run.
"""

import pytest

from tests.support.cvmfs_lab_host import TIMINGS, cvmfs_lab_host  # noqa: F401  pylint: disable=unused-import


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.write_line("CernVM-FS lab host pt-cvmfs: " + ", ".join(
            "%s %.1f s" % (step, seconds) for step, seconds in TIMINGS.items()))


@pytest.fixture
def dirs(tmp_path):
    """An empty destination directory of an s3_sync run and the path of its state file."""
    dest = tmp_path / "repo"
    dest.mkdir()
    return str(dest), str(tmp_path / "state" / "sync.json")
