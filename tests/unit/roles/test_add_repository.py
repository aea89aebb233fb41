"""playbooks/add_repository.yml up to its plan (add_repository_plan_only=true): the entry from a
`repository` extra variable or from the AWX survey's variables, checked with the catalogue, on the
example inventory. The plays that change hosts need CernVM-FS and Vault (molecule `publisher`)."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BIN = os.path.dirname(sys.executable)


def plan(extra):
    proc = subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), "-i", os.path.join(ROOT, "inventories/example/hosts.yml"),
         os.path.join(ROOT, "playbooks/add_repository.yml"), "-e", json.dumps(dict(extra, add_repository_plan_only=True))],
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_PYTHON_INTERPRETER=sys.executable,
                 ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default"),
        capture_output=True, text=True, timeout=600, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_entry_from_the_awx_survey():
    rc, out = plan({
        "cvmfs_add_repository_name": "new.example.org",
        "cvmfs_add_repository_stratum0": "s0.site-a.example.org",
        "cvmfs_add_repository_owner": "",
        "cvmfs_add_repository_storage": "local",
        "cvmfs_add_repository_publishers": "pub1.site-a.example.org /team-a\npub2.site-a.example.org /team-b\n",
        "cvmfs_add_repository_source_bucket": "new-software",
        "cvmfs_add_repository_source_vault_path": "cvmfs/s3/new-reader",
        "cvmfs_add_repository_replicate": "no",
        "cvmfs_add_repository_extra": "gc:\n  enabled: true\n",
    })
    assert rc == 0, out[-3000:]
    assert '"new.example.org/team-a"' in out and '"new.example.org/team-b"' in out
    assert '"vault_path": "cvmfs/s3/new-reader"' in out
    assert '"replicate": []' in out
    assert '"enabled": true,' in out  # gc from the extra YAML


def test_entry_as_one_variable():
    rc, out = plan({"repository": {"name": "solo.example.org", "stratum0": "s0.site-b.example.org"}})
    assert rc == 0, out[-3000:]
    assert '"url": "http://s0.site-b.example.org/cvmfs/solo.example.org"' in out


def test_hosts_must_be_in_the_inventory():
    rc, out = plan({"repository": {"name": "x.example.org", "stratum0": "unknown-host"}})
    assert rc != 0
    assert "must be in the" in out and "unknown-host" in out


def test_catalogue_errors_stop_before_any_host_is_touched():
    rc, out = plan({"repository": {"name": "x.example.org", "stratum0": "s0.site-a.example.org",
                                   "publishers": [{"host": "pub1.site-a.example.org"}]}})
    assert rc != 0
    assert "source.bucket is required" in out
