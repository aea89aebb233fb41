# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: security_group_rules
short_description: Security group rules of each CernVM-FS node type from a port table and source networks
version_added: 0.1.0
author:
  - sharedsw.cvmfs developers (@sharedsw)
description:
  - Turns a table of the ports each node type listens on, and named lists of source networks, into
    the O(_input) rules of C(openstack.cloud.security_group) (option C(security_group_rules)), one
    list per node type.
  - One ingress rule per port and source network. Networks are normalised the way Neutron stores
    them (C(10.1.2.3/8) becomes C(10.0.0.0/8)) and get C(ether_type) V(IPv4) or V(IPv6) from
    their address, so a second run finds exactly the rules of the first.
  - The default egress rules of Neutron (all egress, IPv4 and IPv6) are appended unless
    O(egress=false), because C(openstack.cloud.security_group) deletes every rule it is not given.
  - Fails with a message naming the entry when a node type, port, protocol or source name is wrong,
    or when a source a port needs lists no network.
options:
  _input:
    description:
      - The port table, a dict from node type (V(stratum0), V(publishers), V(stratum1), V(squids),
        V(clients)) to a list of dicts with C(port) (number), C(sources) (list of names of
        O(source_cidrs)), and optional C(protocol) (V(tcp), the default, or V(udp)) and C(description).
    type: dict
    required: true
  source_cidrs:
    description:
      - Dict from a source name (for example V(admin), V(service), V(clients)) to a list of networks
        in CIDR notation, IPv4 or IPv6.
    type: dict
    required: true
  egress:
    description: Append the default egress rules (all protocols to anywhere, IPv4 and IPv6).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Security groups with exactly the ports each node type needs
  openstack.cloud.security_group:
    name: "cvmfs-{{ item.key }}"
    security_group_rules: "{{ item.value }}"
  loop: "{{ ports | sharedsw.cvmfs.security_group_rules(source_cidrs) | dict2items }}"
  vars:
    ports:
      stratum1:
        - {port: 22, sources: [admin], description: ssh}
        - {port: 80, sources: [service, clients], description: stratum-1 HTTP}
    source_cidrs:
      admin: [198.51.100.0/24]
      service: [10.0.0.0/24]
      clients: [10.0.0.0/8, "2001:db8::/32"]
"""

RETURN = r"""
_value:
  description:
    - Dict from node type to the list of rules for C(openstack.cloud.security_group).
    - Each ingress rule has C(description), C(direction), C(ether_type), C(port_range_max),
      C(port_range_min), C(protocol) and C(remote_ip_prefix).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._nodes import security_group_rules


def _security_group_rules(ports, source_cidrs, egress=True):
    try:
        return security_group_rules(ports, source_cidrs, egress=egress)
    except CvmfsError as error:
        raise AnsibleFilterError("security_group_rules: %s" % error.message)


class FilterModule(object):

    def filters(self):
        return {"security_group_rules": _security_group_rules}
