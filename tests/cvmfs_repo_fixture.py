"""Moved to tests/support/cvmfs_repo.py; this name stays only until the branches that import it
(stratum1, fullstack) are merged and switched to the new one. Then delete this file."""

from tests.support.cvmfs_repo import *  # noqa: F401,F403  pylint: disable=wildcard-import,unused-wildcard-import
