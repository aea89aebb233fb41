"""stratum1 role: /etc/cvmfs/server.local (tasks/geoapi.yml).

cvmfs_server sources server.local as shell, and the snapshot and GC timers run cvmfs_server as
root: the replica owner must be able to read the file (it runs cvmfs_server too), never to change
it. The role's task runs for real here (local connection), into a scratch directory, with a
non-root owner that exists on this machine (nobody); the owner's access is then tried as that user.
"""

import os
import pathlib
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

from tests.support.local_plays import run_plays

from .test_squid_config import FACTS

OWNER = "nobody"


def _write_server_local(work, etc_dir):
    play = {"name": "server.local", "hosts": "s1", "gather_facts": False,
            "vars": {"stratum1_owner": OWNER, "stratum1_secure_logging": False},
            # task vars: above the role's vars/main.yml, like the extra vars of the role's integration test
            "tasks": [{"ansible.builtin.include_role": {"name": "sharedsw.cvmfs.stratum1", "tasks_from": "geoapi.yml"},
                       "vars": {"__stratum1_etc_dir": etc_dir}}]}
    inventory = {"all": {"hosts": {"s1": {"ansible_connection": "local",
                                          "ansible_python_interpreter": sys.executable}}}}
    return run_plays(work, [play], inventory, {"s1": FACTS})


def _as_owner(command):
    return subprocess.run(["setpriv", "--reuid", OWNER, "--regid", str(pwd.getpwnam(OWNER).pw_gid),
                           "--clear-groups", "sh", "-c", command], check=False).returncode


@pytest.fixture
def etc_dir():
    """A scratch /etc/cvmfs the owner can reach (pytest's tmp_path is root's only)."""
    path = tempfile.mkdtemp(prefix="stratum1-etc-")
    os.chmod(path, 0o755)
    yield pathlib.Path(path)
    shutil.rmtree(path)


def test_server_local_is_root_owned_and_only_readable_by_the_replica_owner(tmp_path, etc_dir):
    returncode, _parsed, output = _write_server_local(tmp_path, str(etc_dir))
    assert returncode == 0, output
    server_local = etc_dir / "server.local"
    info = os.stat(server_local)
    assert (info.st_uid, info.st_gid) == (0, pwd.getpwnam(OWNER).pw_gid)
    assert stat.S_IMODE(info.st_mode) == 0o640
    # what the owner can do with it, tried as the owner
    assert _as_owner("test -r %s" % server_local) == 0
    assert _as_owner("test -w %s" % server_local) != 0
