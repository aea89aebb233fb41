"""Unit tests of _nodes: node-type metadata, server resolution, address choice, security group rules."""

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _nodes as nodes

DEFAULTS = {"image": "debian-12", "flavor": "m1.small", "network": "private"}


# --------------------------------------------------------------------------- metadata

def test_groups_are_written_in_canonical_order_and_read_back():
    value = nodes.format_groups(["clients", "stratum0", "publishers"])
    assert value == "stratum0,publishers,clients"
    assert nodes.parse_groups(value) == (["stratum0", "publishers", "clients"], [])


def test_unknown_groups_are_reported_not_invented():
    assert nodes.parse_groups(" stratum1 , gateway,,squids ") == (["stratum1", "squids"], ["gateway"])
    with pytest.raises(CvmfsError, match="unknown node type.*gateway.*use some of stratum0"):
        nodes.format_groups(["gateway"])


# --------------------------------------------------------------------------- servers of a cluster

def test_servers_get_names_groups_metadata_and_defaults():
    servers = nodes.openstack_servers(
        [{"name": "s0", "groups": ["publishers", "stratum0"]},
         {"name": "c1", "groups": ["clients"], "flavor": "m1.medium"}],
        "lab", dict(DEFAULTS, client_image="client-img", client_user_data="#cloud-config\n"))
    s0, c1 = servers
    assert s0["name"] == "lab-s0"
    assert s0["groups"] == ["stratum0", "publishers"]
    assert s0["security_groups"] == ["lab-stratum0", "lab-publishers"]
    assert s0["metadata"] == {"cvmfs_cluster": "lab", "cvmfs_groups": "stratum0,publishers", "cvmfs_node": "s0"}
    assert (s0["image"], s0["flavor"], s0["network"], s0["user_data"]) == ("debian-12", "m1.small", "private", None)
    assert (c1["image"], c1["flavor"], c1["user_data"]) == ("client-img", "m1.medium", "#cloud-config\n")


def test_client_image_falls_back_to_image_and_node_values_win():
    (c1, c2) = nodes.openstack_servers(
        [{"name": "c1", "groups": ["clients"]},
         {"name": "c2", "groups": ["clients"], "image": "own", "user_data": "own-data"}],
        "lab", dict(DEFAULTS, client_image="", client_user_data="shared"))
    assert c1["image"] == "debian-12" and c1["user_data"] == "shared"
    assert c2["image"] == "own" and c2["user_data"] == "own-data"


def test_floating_ip_false_on_a_node_wins_over_a_true_default():
    servers = nodes.openstack_servers(
        [{"name": "a", "groups": ["squids"]}, {"name": "b", "groups": ["squids"], "floating_ip": False},
         {"name": "c", "groups": ["squids"], "floating_ip": None}],
        "lab", dict(DEFAULTS, floating_ip=True, floating_ip_network="public"))
    assert [s["floating_ip"] for s in servers] == [True, False, True]
    assert servers[0]["floating_ip_network"] == "public"


@pytest.mark.parametrize("node_list, cluster, defaults, message", [
    ([{"name": "a", "groups": ["squids"]}], "Lab", DEFAULTS, "cluster 'Lab' must be lower-case"),
    ([], "lab", DEFAULTS, "node list is empty"),
    ([{"groups": ["squids"]}], "lab", DEFAULTS, "node #1 has no name"),
    ([{"name": "a_b", "groups": ["squids"]}], "lab", DEFAULTS, "node name 'a_b' must be lower-case"),
    ([{"name": "a", "groups": ["squids"]}, {"name": "a", "groups": ["clients"]}], "lab", DEFAULTS,
     "node name a appears twice"),
    ([{"name": "a", "groups": []}], "lab", DEFAULTS, "node a has no groups"),
    ([{"name": "a", "groups": ["gateway"]}], "lab", DEFAULTS, "unknown node type"),
    ([{"name": "a", "groups": ["squids"], "flavour": "x"}], "lab", DEFAULTS, "node a: unknown key.*flavour"),
    ([{"name": "a", "groups": ["squids"]}], "lab", {"image": "i", "network": "n"}, "node a has no flavor"),
    ([{"name": "a", "groups": ["squids"], "floating_ip": True}], "lab", DEFAULTS,
     "node a gets a floating IP.*openstack_nodes_floating_ip_network"),
    ([{"name": "a", "groups": ["squids"], "floating_ip": "yes"}], "lab", DEFAULTS, "floating_ip must be true or false"),
    ([{"name": "a", "groups": ["squids"]}], "lab", dict(DEFAULTS, ram=4), "unknown server default"),
])
def test_bad_cluster_descriptions_fail_naming_the_problem(node_list, cluster, defaults, message):
    with pytest.raises(CvmfsError, match=message):
        nodes.openstack_servers(node_list, cluster, defaults)


# --------------------------------------------------------------------------- addresses

ADDRESSES = {
    "private": [
        {"addr": "10.0.0.5", "version": 4, "OS-EXT-IPS:type": "fixed"},
        {"addr": "fd00::5", "version": 6, "OS-EXT-IPS:type": "fixed"},
        {"addr": "172.24.4.9", "version": 4, "OS-EXT-IPS:type": "floating"},
    ],
    "provider": [{"addr": "192.0.2.7", "version": 4, "OS-EXT-IPS:type": "fixed"}],
}


@pytest.mark.parametrize("kwargs, expected", [
    ({}, "172.24.4.9"),
    ({"address": "private"}, "10.0.0.5"),
    ({"address": "private", "network": "provider"}, "192.0.2.7"),
    ({"address": "private", "ip_version": 6}, "fd00::5"),
    ({"address": "floating", "network": "provider"}, "192.0.2.7"),
    ({"address": "floating", "network": "provider", "fallback": False}, None),
    ({"address": "floating", "network": "nowhere"}, None),
])
def test_address_choice(kwargs, expected):
    assert nodes.choose_address(ADDRESSES, **kwargs) == expected


def test_address_choice_rejects_unknown_kinds():
    with pytest.raises(CvmfsError, match="address must be one of floating, private"):
        nodes.choose_address(ADDRESSES, address="public")


# --------------------------------------------------------------------------- inventory hosts

def record(name, groups=None, cluster="lab", status="ACTIVE", addresses=None, server_id=None):
    metadata = {}
    if groups is not None:
        metadata["cvmfs_groups"] = groups
    if cluster is not None:
        metadata["cvmfs_cluster"] = cluster
    return {"id": server_id or name + "-id", "name": name, "status": status, "metadata": metadata,
            "addresses": ADDRESSES if addresses is None else addresses}


def test_inventory_hosts_group_filter_and_address():
    servers = [record("lab-s0", "stratum0,publishers"), record("lab-c1", "clients", addresses={}),
               record("other", None), record("prod-s0", "stratum0", cluster="prod"),
               record("lab-off", "squids", status="SHUTOFF"), record("lab-x", "stratum1,portal")]
    hosts, warnings = nodes.inventory_hosts(servers, cluster="lab")
    by_name = {h["name"]: h for h in hosts}
    assert sorted(by_name) == ["lab-c1", "lab-s0", "lab-x"]
    assert by_name["lab-s0"]["groups"] == ["stratum0", "publishers"]
    assert by_name["lab-s0"]["vars"]["ansible_host"] == "172.24.4.9"
    assert by_name["lab-s0"]["vars"]["cvmfs_openstack"]["id"] == "lab-s0-id"
    assert "ansible_host" not in by_name["lab-c1"]["vars"]
    assert by_name["lab-x"]["groups"] == ["stratum1"]
    assert any("lab-x" in w and "portal" in w for w in warnings)
    assert any("lab-c1" in w and "without ansible_host" in w for w in warnings)


def test_inventory_hosts_without_cluster_filter_and_with_inactive():
    servers = [record("a", "squids", cluster="one"), record("b", "squids", cluster="two", status="SHUTOFF")]
    hosts, _warnings = nodes.inventory_hosts(servers, include_inactive=True)
    assert [h["name"] for h in hosts] == ["a", "b"]


def test_duplicate_server_names_fail_unless_hosts_are_named_by_id():
    servers = [record("dup", "squids", server_id="1"), record("dup", "clients", server_id="2")]
    with pytest.raises(CvmfsError, match="two servers are named dup.*hostname: id"):
        nodes.inventory_hosts(servers)
    hosts, _warnings = nodes.inventory_hosts(servers, hostname="id")
    assert [h["name"] for h in hosts] == ["1", "2"]


# --------------------------------------------------------------------------- security group rules

PORTS = {
    "stratum1": [{"port": 22, "sources": ["admin"], "description": "ssh"},
                 {"port": 80, "sources": ["service", "clients"], "description": "http"}],
    "squids": [{"port": 3128, "sources": "clients"}],
}
CIDRS = {"admin": ["198.51.100.7/24"], "service": ["10.0.0.0/24"], "clients": ["10.0.0.0/24", "2001:db8::1/32"]}


def test_rules_are_normalised_deduplicated_and_keep_egress():
    rules = nodes.security_group_rules(PORTS, CIDRS)
    assert sorted(rules) == ["squids", "stratum1"]
    ingress = [(r["port_range_min"], r["remote_ip_prefix"], r["ether_type"])
               for r in rules["stratum1"] if r["direction"] == "ingress"]
    # 198.51.100.7/24 is stored by Neutron as its network; 10.0.0.0/24 from two sources is one rule
    assert ingress == [(22, "198.51.100.0/24", "IPv4"), (80, "10.0.0.0/24", "IPv4"), (80, "2001:db8::/32", "IPv6")]
    assert [r for r in rules["squids"] if r["direction"] == "egress"] == [
        {"direction": "egress", "ether_type": "IPv4", "description": "all egress (IPv4)"},
        {"direction": "egress", "ether_type": "IPv6", "description": "all egress (IPv6)"}]
    first = rules["stratum1"][0]
    assert first == {"description": "ssh from admin", "direction": "ingress", "ether_type": "IPv4",
                     "port_range_max": 22, "port_range_min": 22, "protocol": "tcp",
                     "remote_ip_prefix": "198.51.100.0/24"}


def test_rules_without_egress():
    rules = nodes.security_group_rules({"clients": [{"port": 22, "sources": ["admin"]}]}, CIDRS, egress=False)
    assert [r["direction"] for r in rules["clients"]] == ["ingress"]


@pytest.mark.parametrize("ports, cidrs, message", [
    ({"gateway": [{"port": 1, "sources": ["admin"]}]}, CIDRS, "unknown node type gateway"),
    ({"squids": [{"sources": ["admin"]}]}, CIDRS, r"squids\[0\]: each entry needs port"),
    ({"squids": [{"port": "http", "sources": ["admin"]}]}, CIDRS, "port 'http' is not a number"),
    ({"squids": [{"port": 70000, "sources": ["admin"]}]}, CIDRS, "outside 1-65535"),
    ({"squids": [{"port": 53, "protocol": "icmp", "sources": ["admin"]}]}, CIDRS, "protocol must be tcp or udp"),
    ({"squids": [{"port": 3128, "sources": []}]}, CIDRS, "sources is empty"),
    ({"squids": [{"port": 3128, "sources": ["world"]}]}, CIDRS, "unknown source 'world'"),
    ({"squids": [{"port": 3128, "sources": ["clients"]}]}, {"clients": []},
     r"source CIDRs clients is empty, but squids port 3128 needs it.*0\.0\.0\.0/0"),
    ({"squids": [{"port": 3128, "sources": ["clients"]}]}, {"clients": ["10.0.0.300/8"]}, "not a network in CIDR"),
    (["squids"], CIDRS, "must map node types"),
])
def test_bad_port_tables_fail_naming_the_entry(ports, cidrs, message):
    with pytest.raises(CvmfsError, match=message):
        nodes.security_group_rules(ports, cidrs)
