"""squid role: render squid.conf through Ansible (the role's own preflight, vars and template) for
several variable sets, and check the access rules and the CernVM-FS settings. No hosts: one
ansible-playbook run against a local connection renders every case; the preflight must refuse
the unsafe ones."""

import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.support.local_plays import run_plays

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TEMPLATE = os.path.join(REPO, "roles", "squid", "templates", "squid.conf.j2")

# Read by the role from the fact cache (nothing is gathered from this machine).
FACTS = {"ansible_os_family": "Debian", "ansible_distribution": "Debian", "ansible_distribution_major_version": "12",
         "ansible_distribution_version": "12", "ansible_service_mgr": "systemd", "ansible_pkg_mgr": "apt"}

INVENTORY = {
    "all": {
        "hosts": {"proxy": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}},
        "children": {
            "stratum1": {"hosts": {"s1a.example.net": {"ansible_host": "198.51.100.11"}, "s1b.example.org": {}}},
            "mirrors": {"hosts": {"m1.example.com": {"ansible_host": "m1-internal.example.com"}}},
        },
    }
}

RENDERED = {
    # inventory group only, defaults otherwise
    "defaults": {"squid_allowed_client_networks": ["192.0.2.0/24", "2001:db8::/48"]},
    # memory only, no group, URLs with ports and addresses, a .domain covering a URL host
    "memory_only": {
        "squid_allowed_client_networks": ["10.1.0.0/16"],
        "squid_cache_dir_size_mb": 0,
        "squid_stratum1_group": "",
        "squid_stratum1_urls": [
            "http://cvmfs-s1.Example.ORG:8080/cvmfs/@fqrn@",
            "http://203.0.113.7/cvmfs/@fqrn@",
            "https://example.org/cvmfs/@fqrn@",
        ],
        "squid_allowed_destinations": [".example.org", "198.51.100.0/24", "s1.other.example"],
        "squid_allowed_destination_ports": [80],
        "squid_http_address": "10.1.0.5",
        "squid_http_port": 8128,
        "squid_cache_dir_type": "aufs",
        "squid_extra_config": ["cache_peer upstream.example.org parent 3128 0 no-query", "acl lan src 10.0.0.0/8"],
    },
    # another group, whose ansible_host is a name
    "other_group": {"squid_allowed_client_networks": ["10.2.0.0/16"], "squid_stratum1_group": "mirrors"},
    # the explicit override accepts a world-wide client network
    "any_client_override": {"squid_allowed_client_networks": ["0.0.0.0/0"], "squid_allow_any_client": True},
}

# Refused through the whole preflight; the regular expressions behind it are tested one by one below,
# the network filter in tests/unit/plugins/filter/test_ip_network_check.py.
REFUSED = {
    "no_clients": ({}, "must list the client networks"),
    "world": ({"squid_allowed_client_networks": ["192.0.2.0/24", "0.0.0.0/0"]}, "open proxy"),
    "not_a_network": ({"squid_allowed_client_networks": ["clients.example.org"]}, "Not an address or network"),
    "no_destinations": ({"squid_allowed_client_networks": ["192.0.2.0/24"], "squid_stratum1_group": "none"},
                        "refuse every request"),
    "wide_destination": ({"squid_allowed_client_networks": ["192.0.2.0/24"],
                          "squid_allowed_destinations": ["0.0.0.0/0"]}, "Not accepted"),
    # wide networks the regular expressions of old let through (ip_network_check decides now)
    "halves_with_leading_zeros": ({"squid_allowed_client_networks": ["0.0.0.0/01", "128.0.0.0/01"]}, "open proxy"),
    "ipv4_mapped": ({"squid_allowed_client_networks": ["::ffff:0:0/96"]}, "open proxy"),
    "ipv6_holding_ipv4_mapped": ({"squid_allowed_client_networks": ["::/64"]}, "open proxy"),
    "unreadable_address": ({"squid_allowed_client_networks": ["192.0.2.0/33"]}, "Not an address or network"),
    "wide_destination_leading_zero": ({"squid_allowed_client_networks": ["192.0.2.0/24"],
                                       "squid_allowed_destinations": ["0.0.0.0/01"]}, "['0.0.0.0/01']"),
    "wide_destination_ipv4_mapped": ({"squid_allowed_client_networks": ["192.0.2.0/24"],
                                      "squid_allowed_destinations": ["::ffff:0:0/96"]}, "['::ffff:0:0/96']"),
    "bad_url": ({"squid_allowed_client_networks": ["192.0.2.0/24"],
                 "squid_stratum1_urls": ["cvmfs-s1.example.org/cvmfs"]}, "must be an http(s) URL"),
    "extra_http_access": ({"squid_allowed_client_networks": ["192.0.2.0/24"],
                           "squid_extra_config": ["http_access allow all"]}, "Refused"),
}


def _role_vars():
    with open(os.path.join(REPO, "roles", "squid", "vars", "main.yml")) as handle:
        return yaml.safe_load(handle)


@pytest.mark.parametrize("value, is_address", [
    ("192.0.2.7", True), ("192.0.2.0/24", True), ("2001:db8::/48", True), ("::1", True),
    ("s1.example.org", False), (".example.org", False), ("sq-s1", False), ("all", False)])
def test_address_regex(value, is_address):
    assert bool(re.match(_role_vars()["__squid_address_regex"], value)) is is_address


@pytest.mark.parametrize("value, ok", [
    ("s1.example.org", True), (".example.org", True), ("sq-s1", True), ("S1.Example.ORG", True),
    (".", False), ("*.example.org", False), ("exa mple.org", False), ("-bad.example.org", False), ("", False)])
def test_domain_regex(value, ok):
    assert bool(re.match(_role_vars()["__squid_domain_regex"], value)) is ok


@pytest.mark.parametrize("line, refused", [
    ("http_access allow all", True), ("  http_access allow lan", True), ("include /etc/squid/conf.d/*", True),
    ("acl cvmfs_clients src 0.0.0.0/0", True), ("acl lan src 10.0.0.0/8", False),
    ("cache_peer up.example.org parent 3128 0 no-query", False), ("logformat cvmfs %ts %>a %ru", False)])
def test_extra_config_guard(line, refused):
    assert bool(re.match(_role_vars()["__squid_extra_config_forbidden_regex"], line)) is refused


@pytest.mark.parametrize("pair, covered", [
    ("s1.example.org|.example.org", True), ("example.org|.example.org", True), ("a.b.example.org|.example.org", True),
    (".b.example.org|.example.org", True), (".example.org|.example.org", False), ("badexample.org|.example.org", False),
    ("example.org.evil|.example.org", False)])
def test_covered_destination_pairs(pair, covered):
    names = _role_vars()
    is_covered = bool(re.match(names["__squid_covered_pair_regex"], pair)) and not re.match(
        names["__squid_same_pair_regex"], pair)
    assert is_covered is covered


def _play(name, case_vars):
    def record(value):
        return {"ansible.builtin.set_fact": {
            "squid_test_results": "{{ squid_test_results | default({}) | combine({%r: %s}) }}" % (name, value)}}

    return {
        "name": name,
        "hosts": "proxy",
        "gather_facts": False,
        "vars": case_vars,
        "tasks": [{
            "block": [
                {"ansible.builtin.include_role": {"name": "sharedsw.cvmfs.squid", "tasks_from": "preflight.yml",
                                                  "public": True}},
                record("{'conf': lookup('ansible.builtin.template', %r)}" % TEMPLATE),
            ],
            "rescue": [record("{'failed': ansible_failed_result.msg}")],
        }],
    }


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """{case name: {"conf": text} or {"failed": preflight message}}, from one ansible-playbook run."""
    work = tmp_path_factory.mktemp("squid-render")
    plays = [_play(n, v) for n, v in list(RENDERED.items()) + [(n, case[0]) for n, case in REFUSED.items()]]
    plays.append({"name": "results", "hosts": "proxy", "gather_facts": False, "tasks": [
        {"name": "results", "ansible.builtin.debug": {"var": "squid_test_results"}}]})
    returncode, parsed, output = run_plays(work, plays, INVENTORY, {"proxy": FACTS})
    assert returncode == 0, output
    last_play = parsed["plays"][-1]
    results = last_play["tasks"][0]["hosts"]["proxy"]["squid_test_results"]
    for name, result in results.items():
        if "conf" in result:
            (work / (name + ".conf")).write_text(result["conf"])
    results["_dir"] = str(work)
    return results


def _conf(results, name):
    result = results[name]
    assert "conf" in result, "case %s was not rendered: %s" % (name, result.get("failed"))
    return [line for line in result["conf"].splitlines() if line.strip() and not line.startswith("#")]


def _acl(lines, name):
    values = []
    for line in lines:
        parts = line.split()
        if parts[:2] == ["acl", name]:
            values += [p for p in parts[3:] if p != "-n"]
    return values


def _http_access(lines):
    return [line for line in lines if line.startswith("http_access ")]


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_access_rules_never_open(rendered, name):
    lines = _conf(rendered, name)
    rules = _http_access(lines)
    assert rules[-1] == "http_access deny all"
    assert rules.count("http_access deny all") == 1
    assert "http_access allow all" not in rules
    # the protective denies come before any allow for clients
    first_allow = next(i for i, r in enumerate(rules) if r.startswith("http_access allow cvmfs_clients"))
    for deny in ("http_access deny !Safe_ports", "http_access deny CONNECT !SSL_ports",
                 "http_access deny to_localhost"):
        assert rules.index(deny) < first_allow
    # every allow names the clients and a destination (except the cache manager for localhost)
    for rule in rules:
        if rule.startswith("http_access allow") and rule != "http_access allow localhost manager":
            words = rule.split()[2:]
            assert words[0] == "cvmfs_clients", rule
            assert "cvmfs_stratum1_ports" in words, rule
            assert set(words) & {"cvmfs_stratum1_domains", "cvmfs_stratum1_addresses"}, rule
    # nothing after the final deny, and no other directive mentions access
    assert not any(line.startswith(("http_access", "include")) for line in lines[lines.index(rules[-1]) + 1:])


def test_inventory_group_defaults(rendered):
    lines = _conf(rendered, "defaults")
    assert _acl(lines, "cvmfs_clients") == ["192.0.2.0/24", "2001:db8::/48"]
    assert sorted(_acl(lines, "cvmfs_stratum1_domains")) == ["s1a.example.net", "s1b.example.org"]
    assert "acl cvmfs_stratum1_domains dstdomain -n s1a.example.net s1b.example.org" in lines
    assert _acl(lines, "cvmfs_stratum1_addresses") == ["198.51.100.11"]
    assert _acl(lines, "cvmfs_stratum1_ports") == ["80", "8000"]
    assert "http_port 3128" in lines
    # CernVM-FS recommendations
    for expected in ("collapsed_forwarding on", "minimum_expiry_time 0", "maximum_object_size 1024 MB",
                     "cache_mem 128 MB", "maximum_object_size_in_memory 128 KB",
                     "cache_dir ufs /var/spool/squid 10000 16 256", "logfile_rotate 0"):
        assert expected in lines
    refresh = [line for line in lines if line.startswith("refresh_pattern")]
    assert refresh == ["refresh_pattern /\\.cvmfs[^/]*$ 0 0% 0", "refresh_pattern . 0 20% 4320"]


def test_refresh_rule_matches_cvmfs_control_files_only():
    pattern = re.compile(r"/\.cvmfs[^/]*$")
    for path in ("/cvmfs/repo.example.org/.cvmfspublished", "/cvmfs/r/.cvmfswhitelist",
                 "/cvmfs/r/.cvmfs_status.json", "/cvmfs/r/.cvmfs_last_snapshot"):
        assert pattern.search(path), path
    for path in ("/cvmfs/r/data/ab/cdef0123", "/cvmfs/r/.cvmfspublished/x", "/cvmfs/r/data/.cvmfs/x"):
        assert not pattern.search(path), path


def test_memory_only_urls_and_domains(rendered):
    lines = _conf(rendered, "memory_only")
    assert not any(line.startswith("cache_dir") for line in lines)
    assert "http_port 10.1.0.5:8128" in lines
    assert _acl(lines, "cvmfs_clients") == ["10.1.0.0/16"]
    # the group is off; URL hosts are lower-cased; names under .example.org are covered by it
    assert sorted(_acl(lines, "cvmfs_stratum1_domains")) == [".example.org", "s1.other.example"]
    assert sorted(_acl(lines, "cvmfs_stratum1_addresses")) == ["198.51.100.0/24", "203.0.113.7"]
    assert _acl(lines, "cvmfs_stratum1_ports") == ["80", "8080"]
    # site lines land before the access section
    peer = lines.index("cache_peer upstream.example.org parent 3128 0 no-query")
    assert peer < lines.index("http_access deny !Safe_ports")


def test_group_with_named_ansible_host(rendered):
    lines = _conf(rendered, "other_group")
    assert sorted(_acl(lines, "cvmfs_stratum1_domains")) == ["m1-internal.example.com", "m1.example.com"]
    assert _acl(lines, "cvmfs_stratum1_addresses") == []
    assert not any("cvmfs_stratum1_addresses" in line for line in lines)


def test_any_client_needs_the_override(rendered):
    assert _acl(_conf(rendered, "any_client_override"), "cvmfs_clients") == ["all"]


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_preflight_refuses(rendered, name):
    assert "conf" not in rendered[name], "case %s rendered a config" % name
    message = rendered[name]["failed"]
    assert REFUSED[name][1] in message, message


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(RENDERED))
def test_squid_accepts_rendered_config(rendered, name):
    """The real squid (Debian package) parses each rendered configuration without warnings."""
    squid = shutil.which("squid") or "/usr/sbin/squid"
    assert os.access(squid, os.X_OK), "squid is not installed (Debian package squid)"
    proc = subprocess.run([squid, "-k", "parse", "-f", os.path.join(rendered["_dir"], name + ".conf")],
                          capture_output=True, text=True, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert not re.search(r"WARNING|ERROR|FATAL", output), output


def test_defaults_match_argument_spec():
    """defaults/main.yml and meta/argument_specs.yml describe the same variables, with the same defaults."""
    role = os.path.join(REPO, "roles", "squid")
    with open(os.path.join(role, "defaults", "main.yml")) as handle:
        defaults = yaml.safe_load(handle)
    with open(os.path.join(role, "meta", "argument_specs.yml")) as handle:
        options = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
    assert sorted(defaults) == sorted(options)
    for name, spec in options.items():
        assert name.startswith("squid_")
        assert spec.get("description"), name
        assert spec.get("default") == defaults[name], name
