"""The filters security_group_rules and openstack_servers: results, and errors as AnsibleFilterError."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sharedsw.cvmfs.plugins.filter.openstack_servers import FilterModule as ServersFilters
from ansible_collections.sharedsw.cvmfs.plugins.filter.security_group_rules import FilterModule as RulesFilters

RULES = RulesFilters().filters()["security_group_rules"]
SERVERS = ServersFilters().filters()["openstack_servers"]


def test_security_group_rules_filter():
    rules = RULES({"squids": [{"port": 3128, "sources": ["clients"]}]}, {"clients": ["10.0.0.0/8"]}, egress=False)
    assert rules == {"squids": [{"description": "tcp/3128 from clients", "direction": "ingress",
                                 "ether_type": "IPv4", "port_range_max": 3128, "port_range_min": 3128,
                                 "protocol": "tcp", "remote_ip_prefix": "10.0.0.0/8"}]}
    with pytest.raises(AnsibleFilterError, match="security_group_rules: source CIDRs clients is empty"):
        RULES({"squids": [{"port": 3128, "sources": ["clients"]}]}, {"clients": []})


def test_openstack_servers_filter():
    (server,) = SERVERS([{"name": "s1", "groups": ["stratum1"]}], "lab",
                        {"image": "i", "flavor": "f", "network": "n"})
    assert server["name"] == "lab-s1" and server["security_groups"] == ["lab-stratum1"]
    with pytest.raises(AnsibleFilterError, match="openstack_servers: node s1 has no image"):
        SERVERS([{"name": "s1", "groups": ["stratum1"]}], "lab", {"flavor": "f", "network": "n"})
