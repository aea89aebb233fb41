"""Test set-up shared by every layer.

Makes the collection importable as ``ansible_collections.sharedsw.cvmfs`` (through a symlink
outside the work tree, so nothing walks into a loop, and through Ansible's collection loader), and loads the real-service harness
(tests/harness) as a pytest plugin.
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile

import pytest
from ansible.plugins.loader import init_plugin_loader

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _collections_root():
    tag = hashlib.sha256(REPO_ROOT.encode()).hexdigest()[:12]
    root = os.path.join(tempfile.gettempdir(), "sharedsw-cvmfs-collections-" + tag)
    namespace = os.path.join(root, "ansible_collections", "sharedsw")
    link = os.path.join(namespace, "cvmfs")
    os.makedirs(namespace, exist_ok=True)
    if os.path.realpath(link) != REPO_ROOT:
        if os.path.islink(link):
            os.unlink(link)
        os.symlink(REPO_ROOT, link)
    return root


COLLECTIONS_ROOT = _collections_root()
sys.path.insert(0, COLLECTIONS_ROOT)
os.environ["ANSIBLE_COLLECTIONS_PATH"] = COLLECTIONS_ROOT + os.pathsep + os.environ.get(
    "ANSIBLE_COLLECTIONS_PATH", os.path.expanduser("~/.ansible/collections"))
sys.path.insert(0, REPO_ROOT)

# Ansible's collection loader, installed before any test or conftest imports the collection: a
# package imported around it (by plain sys.path) has no collection metadata, and the plugin
# loader (inventory and filter tests) then refuses every module of it.
init_plugin_loader([COLLECTIONS_ROOT])

pytest_plugins = ["tests.harness.fixtures"]


class ModuleResult(dict):
    """A module's JSON result; ``rc`` is the process exit status (1 when the module failed)."""

    @property
    def failed(self):
        return bool(self.get("failed"))


@pytest.fixture(scope="session")
def run_module():
    """Run one of our modules for real, in a child process, as Ansible would on a target.

    ``run_module("s3_sync", {...}, check=True, diff=True)`` returns a :class:`ModuleResult`.
    """

    def _run(name, args, check=False, diff=False, env=None):
        with tempfile.TemporaryDirectory(prefix="ansible-module-") as tmpdir:
            payload = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
            payload.setdefault("_ansible_tmpdir", tmpdir)
            args_file = os.path.join(tmpdir, "args.json")
            with open(args_file, "w") as handle:
                json.dump({"ANSIBLE_MODULE_ARGS": payload}, handle)
            child_env = dict(os.environ, PYTHONPATH=COLLECTIONS_ROOT, **(env or {}))
            proc = subprocess.run(
                [sys.executable, "-m", "ansible_collections.sharedsw.cvmfs.plugins.modules." + name, args_file],
                capture_output=True, text=True, env=child_env, stdin=subprocess.DEVNULL, check=False)
        try:
            result = ModuleResult(json.loads(proc.stdout))
        except ValueError:
            raise AssertionError("module %s printed no JSON (rc=%s):\n%s\n%s" % (name, proc.returncode, proc.stdout, proc.stderr))
        result["rc"] = proc.returncode
        result["_stderr"] = proc.stderr
        return result

    return _run
