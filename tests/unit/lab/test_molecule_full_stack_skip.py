"""tools/molecule.sh full-stack where the CernVM-FS packages cannot be installed: the scenario is
reported SKIPPED with the one-line reason (never passed), nothing is created, and the run succeeds."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.mark.skipif(os.geteuid() != 0, reason="tools/molecule.sh needs root (lab hosts)")
def test_full_stack_is_skipped_with_one_clear_reason():
    env = dict(os.environ, SHAREDSW_CVMFS_PACKAGE_URL="http://cvmfs-packages.invalid/cvmrepo/apt/",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if not shutil.which("molecule", path=env["PATH"]):
        pytest.fail("molecule is not installed next to this Python (%s)" % sys.executable)
    proc = subprocess.run([os.path.join(ROOT, "tools", "molecule.sh"), "full-stack"], env=env, capture_output=True,
                          text=True, check=False, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    skipped = [line for line in proc.stdout.splitlines() if "SKIPPED" in line]
    assert skipped[0] == ("== molecule.sh: scenario full-stack SKIPPED: CernVM-FS packages unavailable: the package "
                          "repository host cvmfs-packages.invalid does not resolve from this machine (set "
                          "SHAREDSW_CVMFS_PACKAGE_URL to a reachable mirror of "
                          "http://cvmfs-packages.invalid/cvmrepo/apt/, or SHAREDSW_CVMFS_PACKAGE_DIR to a mirror directory)"), proc.stdout
    assert "full-stack: SKIPPED: CernVM-FS packages unavailable:" in proc.stdout
    assert "full-stack: passed" not in proc.stdout
    assert "1 scenario(s) SKIPPED" in proc.stdout
