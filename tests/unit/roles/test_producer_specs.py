"""Argument specs of the stratum0, publisher and stratum1 roles against the example inventory, and the
roles' documentation as ansible-doc renders it. Runs ansible-playbook on this machine; no services."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)


def _env():
    return dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="False",
                ANSIBLE_PYTHON_INTERPRETER=sys.executable)


def _validate_specs(*args):
    """validate_specs.yml on the example inventory; ``args`` are extra ansible-playbook arguments."""
    return subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", os.path.join(ROOT, "inventories/example/hosts.yml"),
                           os.path.join(HERE, "validate_specs.yml"), "-e", "roles_dir=" + os.path.join(ROOT, "roles")]
                          + list(args), env=_env(), capture_output=True, check=False, text=True, timeout=600)


def test_example_inventory_passes_the_argument_specs_and_the_catalogue():
    proc = _validate_specs()
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    # every stratum-0 and publisher host of the example was checked
    for host in ("s0.site-a.example.org", "s0.site-b.example.org", "pub1.site-a.example.org",
                 "pub2.site-a.example.org", "pub1.site-b.example.org", "s1.site-a.example.org",
                 "s1.site-b.example.org"):
        assert host + " " in proc.stdout and "failed=0" in proc.stdout
    # each stratum-1 replicates the entries whose `replicate` names one of its groups
    assert "replicas of s1.site-a.example.org: software.example.org,containers.example.org" in proc.stdout
    assert "replicas of s1.site-b.example.org: software.example.org,data.site-b.example.org" in proc.stdout


def test_a_wrong_type_is_refused_by_the_spec():
    proc = _validate_specs("--limit", "s0.site-a.example.org", "-e", '{"stratum0_gateway_port": "not-a-port"}')
    assert proc.returncode != 0
    assert "stratum0_gateway_port" in proc.stdout


def test_stratum1_spec_refuses_a_wrong_choice():
    proc = _validate_specs("--limit", "s1.site-a.example.org",
                           "-e", '{"stratum1_public_keys_source": "ldap", "stratum1_squid_port": "eight thousand"}')
    assert proc.returncode != 0
    assert "stratum1_public_keys_source" in proc.stdout and "stratum1_squid_port" in proc.stdout


def test_ansible_doc_renders_the_roles():
    for role in ("stratum0", "publisher", "common", "stratum1"):
        proc = subprocess.run([os.path.join(BIN, "ansible-doc"), "-t", "role", "sharedsw.cvmfs." + role],
                              env=_env(), capture_output=True, check=False, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert "ENTRY POINT: main" in proc.stdout or "ENTRY POINT: *main*" in proc.stdout, proc.stdout[:500]
