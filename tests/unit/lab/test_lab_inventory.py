"""inventories/lab: the inventory tools/lab.sh writes, with the committed group_vars, has all five
node types, passes site.yml's syntax check, and gives every role valid variables."""

import json
import os
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
HERE = os.path.dirname(os.path.abspath(__file__))
GROUPS = ("stratum0", "publishers", "stratum1", "squids", "clients")
BIN = os.path.dirname(sys.executable)


def _lab_hosts():
    hosts = {}
    with open(os.path.join(ROOT, "tools", "lab", "lab-hosts")) as handle:
        for line in handle:
            if line.strip() and not line.lstrip().startswith("#"):
                name, address, groups = line.split()
                hosts[name] = (address, groups.split(","))
    return hosts


@pytest.fixture(scope="module")
def inventory():
    """tools/lab.sh inventory into a scratch directory, next to a link to the committed group_vars."""
    work = tempfile.mkdtemp(prefix="lab-inventory-")
    os.symlink(os.path.join(ROOT, "inventories", "lab", "group_vars"), os.path.join(work, "group_vars"))
    path = os.path.join(work, "hosts.yml")
    proc = subprocess.run([os.path.join(ROOT, "tools", "lab.sh"), "inventory"], env=dict(os.environ, LAB_INVENTORY=path),
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    yield path
    subprocess.run(["rm", "-rf", "--", work], check=True)


def _fake_services(directory):
    """Service state files shaped like molecule/shared/lab_services.py's and lab_stack.py vault's."""
    files = {
        "openbao/service.json": {"kind": "openbao", "local": "http://127.0.0.1:18200", "remote": "http://127.0.0.1:18200",
                                 "port": 18200, "token": "root-token"},
        "ceph/service.json": {"kind": "ceph", "local": "http://127.0.0.1:17480", "remote": "http://127.0.0.1:17480",
                              "port": 17480, "region": "default", "access_key": "ak", "secret_key": "sk"},
        "rabbitmq/service.json": {"kind": "rabbitmq", "local": "amqp://127.0.0.1:15673", "remote": "amqp://127.0.0.1:15673",
                                  "port": 15673, "username": "guest", "password": "guest"},
        "vault-approles.json": dict((role, {"role_id": "id-" + role, "secret_id": "secret-" + role})
                                    for role in ("stratum0", "publisher", "public")),
    }
    for name, data in files.items():
        os.makedirs(os.path.dirname(os.path.join(directory, name)), exist_ok=True)
        with open(os.path.join(directory, name), "w") as handle:
            json.dump(data, handle)


def test_every_node_type_is_populated(inventory):
    proc = subprocess.run([os.path.join(BIN, "ansible-inventory"), "-i", inventory, "--list"],
                          capture_output=True, text=True, check=True)
    listed = json.loads(proc.stdout)
    expected = _lab_hosts()
    for group in GROUPS:
        assert listed.get(group, {}).get("hosts"), "group %s is empty in the lab inventory" % group
        assert sorted(listed[group]["hosts"]) == sorted(n for n, (_a, gs) in expected.items() if group in gs)
    for name, (address, _groups) in expected.items():
        assert listed["_meta"]["hostvars"][name]["ansible_host"] == address


def test_site_playbook_syntax(inventory):
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", inventory, "--syntax-check",
                           os.path.join(ROOT, "playbooks", "site.yml")], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_roles_accept_the_lab_variables(inventory):
    services = tempfile.mkdtemp(prefix="lab-services-")
    try:
        _fake_services(services)
        proc = subprocess.run(
            [os.path.join(BIN, "ansible-playbook"), "-i", inventory, os.path.join(HERE, "lab_inventory.yml"),
             "-e", "lab_services_dir=" + services, "-e", "roles_dir=" + os.path.join(ROOT, "roles")],
            capture_output=True, text=True, check=False, env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    finally:
        subprocess.run(["rm", "-rf", "--", services], check=True)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "failed=0" in proc.stdout and "skipped=" in proc.stdout
    assert proc.stdout.count("ok=") == len(_lab_hosts())


def test_example_inventory_is_a_complete_site():
    """inventories/example: every node type populated, and with the values of its site.yml.example
    (secrets given as dummies) every role of every host accepts its variables."""
    inventory = os.path.join(ROOT, "inventories", "example", "hosts.yml")
    listed = json.loads(subprocess.run([os.path.join(BIN, "ansible-inventory"), "-i", inventory, "--list"],
                                       capture_output=True, text=True, check=True).stdout)
    for group in GROUPS:
        members = set(listed.get(group, {}).get("hosts", []))
        for child in listed.get(group, {}).get("children", []):
            members.update(listed.get(child, {}).get("hosts", []))
        assert members, "group %s is empty in the example inventory" % group
    secrets = dict(("vault_vaulted_%s" % name, "dummy-" + name) for name in (
        "public_secret_id", "stratum0_secret_id", "publisher_secret_id", "amqp_password", "rgw_amqp_password",
        "geo_license_key"))
    proc = subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), "-i", inventory, os.path.join(HERE, "inventory_specs.yml"),
         "-e", "@" + os.path.join(ROOT, "inventories", "example", "group_vars", "all", "site.yml.example"),
         "-e", json.dumps(secrets), "-e", "roles_dir=" + os.path.join(ROOT, "roles")],
        capture_output=True, text=True, check=False, env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert proc.stdout.count("failed=0") == len(listed["_meta"]["hostvars"])


def test_inventory_records_where_cvmfs_comes_from():
    """Step 3 writes the package source decided at step 1 (preinstalled: the roles add no repository)."""
    work = tempfile.mkdtemp(prefix="lab-inventory-")
    try:
        path = os.path.join(work, "hosts.yml")
        subprocess.run([os.path.join(ROOT, "tools", "lab.sh"), "inventory", "preinstalled"],
                       env=dict(os.environ, LAB_INVENTORY=path), capture_output=True, check=True)
        listed = json.loads(subprocess.run([os.path.join(BIN, "ansible-inventory"), "-i", path, "--list"],
                                           capture_output=True, text=True, check=True).stdout)
    finally:
        subprocess.run(["rm", "-rf", "--", work], check=True)
    for name in _lab_hosts():
        hostvars = listed["_meta"]["hostvars"][name]
        assert hostvars["cvmfs_package_source"] == "preinstalled"
        assert hostvars["lab_services_dir"].endswith("/lab-services")
