"""Helpers for tests that drive our modules against the TEST DOUBLE of cvmfs_server.

The double (cvmfs_server next to this file) mimics documented behaviour from the facts file;
it is not CernVM-FS.
"""

import datetime
import hashlib
import json
import os
import subprocess

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._cvmfs_server import TEST_HOOK_ENVIRON

DOUBLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cvmfs_server")


class DoubleHost:
    """One scratch 'host' for the TEST DOUBLE of cvmfs_server."""

    def __init__(self, root, run_module):
        self.root = str(root)
        self._run_module = run_module
        self.etc = os.path.join(self.root, "etc/cvmfs")
        self.spool = os.path.join(self.root, "var/spool/cvmfs")
        self.srv = os.path.join(self.root, "srv/cvmfs")
        self.fail = []
        # as the stratum1 role leaves a host: GeoAPI off, so add-replica installs no GeoIP database
        self.write("etc/cvmfs/server.local", "CVMFS_GEO_DB_FILE=NONE\n")

    def env(self):
        return {"CVMFS_DOUBLE_ROOT": self.root, "CVMFS_DOUBLE_FAIL": ",".join(self.fail)}

    def module_env(self, **paths):
        """The environment of a module run: the double's, and the test hook pointing the module at the
        double and at this host's tree (``paths``, e.g. ``etc_dir=...``, points it elsewhere)."""
        where = dict({"cvmfs_server": DOUBLE, "etc_dir": self.etc, "spool_dir": self.spool, "storage_dir": self.srv},
                     **paths)
        return dict(self.env(), **hook_env(**where))

    def run(self, module, args, check=False, diff=False, **paths):
        """Run ``module`` against the double; ``paths`` as for :meth:`module_env`."""
        return self._run_module(module, args, check=check, diff=diff, env=self.module_env(**paths))

    def cvmfs(self, *args):
        """Run the double directly (test set-up that is not the subject of the test); asserts success."""
        proc = subprocess.run([DOUBLE] + list(args), env=dict(os.environ, **self.env()), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc

    def calls(self):
        path = os.path.join(self.root, "calls.jsonl")
        if not os.path.exists(path):
            return []
        with open(path) as handle:
            return [json.loads(line) for line in handle]

    def argvs(self):
        return [c["argv"] for c in self.calls()]

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def write(self, relpath, text):
        path = self.path(relpath)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(text)
        return path

    def in_transaction(self, name):
        return os.path.exists(os.path.join(self.spool, name, "in_transaction.lock"))

    def revision(self, storage):
        with open(os.path.join(storage, ".cvmfspublished"), "rb") as handle:
            for line in handle.read().split(b"\n"):
                if line.startswith(b"S"):
                    return int(line[1:])
        return None


def hook_env(**where):
    """The environment variables of the modules' test hook (module_utils/_cvmfs_server.py) for
    ``where`` (keys ``cvmfs_server``, ``etc_dir``, ``spool_dir``, ``storage_dir``)."""
    return dict((TEST_HOOK_ENVIRON[key], str(value)) for key, value in where.items())


def warning_texts(result):
    """Warning messages of a module result (ansible-core >= 2.19 returns structured warnings)."""
    texts = []
    for warning in result.get("warnings", []):
        if isinstance(warning, dict):
            warning = (warning.get("event") or {}).get("msg") or warning.get("msg") or str(warning)
        texts.append(warning)
    return texts


def make_storage(directory, fqrn, revision=5, whitelist_days=30, replicable=True):
    """Storage of a repository served elsewhere (a gateway's or a stratum-0's), reached by file:// URL.

    Written in the layout of cvmfs-facts §2.3 / §8 with fake hashes and signatures (TEST DATA).
    """
    os.makedirs(os.path.join(directory, "data", "txn"), exist_ok=True)
    catalog = hashlib.sha1(("%s/%d/catalog" % (fqrn, revision)).encode()).hexdigest()
    manifest = "C%s\nB1\nRd41d8cd98f00b204e9800998ecf8427e\nD240\nS%d\nGno\nAno\nN%s\nT1700000000\n" % (
        catalog, revision, fqrn)
    with open(os.path.join(directory, ".cvmfspublished"), "wb") as handle:
        handle.write(manifest.encode() + b"--\n" + hashlib.sha1(manifest.encode()).hexdigest().encode() + b"\n\x00sig")
    now = datetime.datetime.now(datetime.timezone.utc)
    expiry = now + datetime.timedelta(days=whitelist_days)
    whitelist = "%s\nE%s\nN%s\nAB:CD\n" % (now.strftime("%Y%m%d%H%M%S"), expiry.strftime("%Y%m%d%H%M%S"), fqrn)
    with open(os.path.join(directory, ".cvmfswhitelist"), "wb") as handle:
        handle.write(whitelist.encode() + b"--\n" + hashlib.sha1(whitelist.encode()).hexdigest().encode() + b"\n\x00sig")
    if replicable:
        with open(os.path.join(directory, ".cvmfs_master_replica"), "w") as handle:
            handle.write("This file marks the repository as replicatable to stratum 1 servers\n")
    return "file://" + directory
