"""Firewall of the node roles (common role's firewall entry point, nftables): the one file the
stratum0, stratum1 and squid roles write on a host that is all three, rendered for real (local
connection, scratch paths, nothing loaded into the kernel). Checks the ports each node type opens,
from where, that the table is declared once, that nft accepts the file, and that a second run
changes nothing."""

import re
import shutil
import subprocess
import sys

import pytest

from tests.support.local_plays import run_plays, task_results

from .test_squid_config import FACTS

TABLE = "inet sharedsw_cvmfs"

INVENTORY = {
    "all": {
        "hosts": {"node": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}},
        "children": {
            "publishers": {"hosts": {"pub1": {"ansible_host": "192.0.2.21"}, "pub2": {"ansible_host": "2001:db8::22"}}},
            "stratum1": {"hosts": {"s1": {"ansible_host": "198.51.100.11"}}},
        },
    }
}

CATALOGUE = [{"name": "fw.example.org", "stratum0": "node", "gateway": {"enabled": True}, "replicate": ["stratum1"]}]


def _firewall_task(role, scratch, extra):
    # task vars: above the roles' vars/main.yml
    paths = {"__common_firewall_backend": "nftables", "__common_firewall_packages": [],
             "__common_firewall_data_dir": str(scratch / "firewall.d"),
             "__common_nftables_file": str(scratch / "nftables.d" / "sharedsw-cvmfs.nft"),
             "__common_nftables_main": str(scratch / "nftables.conf")}
    return {"name": "firewall of " + role,
            "ansible.builtin.include_role": {"name": "sharedsw.cvmfs." + role, "tasks_from": "firewall.yml"},
            "vars": dict(paths, **extra)}


def _play(scratch, roles):
    per_role = {
        "stratum0": {"stratum0_https_certificate": "-----BEGIN CERTIFICATE-----\n"},
        "stratum1": {"stratum1_squid_enabled": True, "stratum1_firewall_ssh_sources": ["203.0.113.0/24"]},
        "squid": {"squid_allowed_client_networks": ["10.1.0.0/16", "2001:db8:5::/48"], "squid_http_port": 3129},
    }
    return {"name": "firewall", "hosts": "node", "gather_facts": False,
            "vars": {"cvmfs_repositories": CATALOGUE, "__common_is_booted": False},
            "tasks": [_firewall_task(role, scratch, per_role[role]) for role in roles]}


def _run(work, scratch, roles, check=False):
    work.mkdir(exist_ok=True)
    returncode, parsed, output = run_plays(work, [_play(scratch, roles)], INVENTORY, {"node": FACTS}, check=check)
    assert returncode == 0, output
    return parsed


def _rules(text):
    """{comment: (port, sources)} of the accept rules of the input chain."""
    found = {}
    for line in text.splitlines():
        match = re.search(r'(?:(ip6?) saddr \{ ([^}]*) \} )?tcp dport (\d+) accept comment "([^"]+)"', line)
        if match:
            family, sources, port, comment = match.groups()
            key = comment + (" " + family if family else "")
            found[key] = (int(port), sorted(s.strip() for s in sources.split(",")) if sources else [])
    return found


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The file after the three roles ran, the same after a second run, and the results of the second."""
    base = tmp_path_factory.mktemp("firewall")
    scratch = base / "host"
    _run(base / "first", scratch, ["stratum0", "stratum1", "squid"])
    first = (scratch / "nftables.d" / "sharedsw-cvmfs.nft").read_text()
    parsed = _run(base / "second", scratch, ["stratum0", "stratum1", "squid"])
    second = (scratch / "nftables.d" / "sharedsw-cvmfs.nft").read_text()
    return {"scratch": scratch, "first": first, "second": second, "results": task_results(parsed, "node")}


def test_each_node_type_opens_its_ports_from_where_it_serves(rendered):
    assert _rules(rendered["first"]) == {
        "stratum0 ssh": (22, []),
        "stratum0 http": (80, []),
        "stratum0 https": (443, []),
        "stratum0 gateway ip": (4929, ["192.0.2.21"]),
        "stratum0 gateway ip6": (4929, ["2001:db8::22"]),
        "stratum1 ssh ip": (22, ["203.0.113.0/24"]),
        "stratum1 http": (80, []),
        "stratum1 reverse proxy": (8000, []),
        "squid ssh": (22, []),
        "squid proxy ip": (3129, ["10.1.0.0/16"]),
        "squid proxy ip6": (3129, ["2001:db8:5::/48"]),
    }


def test_the_table_is_declared_once_and_replaces_itself(rendered):
    text = rendered["first"]
    assert text.count("table %s {" % TABLE) == 1
    # declared, deleted, declared again: loading the file twice keeps one table
    assert text.index("delete table %s" % TABLE) < text.index("table %s {" % TABLE)
    assert "policy drop" in text and "ct state established,related accept" in text and 'iif "lo" accept' in text
    assert "flush ruleset" not in text


@pytest.mark.skipif(not shutil.which("nft"), reason="nft is not installed here")
def test_nft_accepts_the_file(rendered):
    check = subprocess.run(["nft", "-c", "-f", str(rendered["scratch"] / "nftables.d" / "sharedsw-cvmfs.nft")],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr


def test_a_second_run_changes_nothing(rendered):
    assert rendered["second"] == rendered["first"]
    changed = [name for name, result in rendered["results"].items() if result.get("changed")]
    assert changed == []


def test_the_main_configuration_includes_it_once(rendered):
    main = (rendered["scratch"] / "nftables.conf").read_text()
    assert main.count('include "%s"' % (rendered["scratch"] / "nftables.d" / "sharedsw-cvmfs.nft")) == 1


def test_one_role_alone_opens_only_its_ports(tmp_path):
    scratch = tmp_path / "host"
    _run(tmp_path / "run", scratch, ["squid"])
    rules = _rules((scratch / "nftables.d" / "sharedsw-cvmfs.nft").read_text())
    assert sorted(rules) == ["squid proxy ip", "squid proxy ip6", "squid ssh"]


def test_stratum0_without_https_nor_gateway_opens_http_and_ssh(tmp_path):
    scratch = tmp_path / "host"
    play = _play(scratch, ["stratum0"])
    play["tasks"][0]["vars"]["stratum0_gateway_enabled"] = False
    del play["tasks"][0]["vars"]["stratum0_https_certificate"]
    (tmp_path / "run").mkdir()
    returncode, _parsed, output = run_plays(tmp_path / "run", [play], INVENTORY, {"node": FACTS})
    assert returncode == 0, output
    assert sorted(_rules((scratch / "nftables.d" / "sharedsw-cvmfs.nft").read_text())) == ["stratum0 http", "stratum0 ssh"]


def test_a_name_instead_of_an_address_is_refused_with_the_variable_to_set(tmp_path):
    scratch = tmp_path / "host"
    play = _play(scratch, ["stratum0"])
    play["tasks"][0]["vars"]["stratum0_firewall_gateway_sources"] = ["pub1.example.org"]
    (tmp_path / "run").mkdir()
    returncode, _parsed, output = run_plays(tmp_path / "run", [play], INVENTORY, {"node": FACTS})
    assert returncode != 0
    assert "pub1.example.org" in output and "stratum0_firewall_gateway_sources" in output
