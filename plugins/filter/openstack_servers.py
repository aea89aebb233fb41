# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: openstack_servers
short_description: Resolve and check the servers of a CernVM-FS cluster on OpenStack
version_added: 0.1.0
author:
  - sharedsw.cvmfs developers (@sharedsw)
description:
  - Turns the node list of the role C(sharedsw.cvmfs.openstack_nodes) into what
    C(openstack.cloud.server) needs for each node, with defaults applied and every mistake reported
    before anything is created.
  - A node key that is unset, V(null) or empty takes the default; C(floating_ip=false) on a node wins
    over a default of V(true). Clients take O(defaults.client_image) and O(defaults.client_user_data).
  - Node types are put in the canonical order V(stratum0), V(publishers), V(stratum1), V(squids),
    V(clients), so the C(cvmfs_groups) metadata does not change when the list order does.
options:
  _input:
    description:
      - The nodes, each a dict with C(name), C(groups) and optional C(image), C(flavor), C(network),
        C(floating_ip), C(availability_zone), C(user_data).
    type: list
    elements: dict
    required: true
  cluster:
    description: Name of the cluster; prefixes server and security group names.
    type: str
    required: true
  defaults:
    description: Values for keys a node does not set.
    type: dict
    suboptions:
      availability_zone:
        description: Availability zone.
        type: str
      client_image:
        description: Image of client nodes; falls back to O(defaults.image).
        type: str
      client_user_data:
        description: cloud-init user data of client nodes.
        type: str
      flavor:
        description: Flavor.
        type: str
      floating_ip:
        description: Whether a node gets a floating IP.
        type: bool
      floating_ip_network:
        description: External network of floating IPs; required when any node gets one.
        type: str
      image:
        description: Image.
        type: str
      network:
        description: Network.
        type: str
"""

EXAMPLES = r"""
- name: Servers
  openstack.cloud.server:
    name: "{{ item.name }}"
    image: "{{ item.image }}"
    flavor: "{{ item.flavor }}"
    network: "{{ item.network }}"
    security_groups: "{{ item.security_groups }}"
    metadata: "{{ item.metadata }}"
  loop: "{{ nodes | sharedsw.cvmfs.openstack_servers('cvmfs', {'image': 'debian-12', 'flavor': 'm1.medium', 'network': 'cvmfs-net'}) }}"
  vars:
    nodes:
      - {name: s0, groups: [stratum0, publishers]}
      - {name: s1, groups: [stratum1]}
"""

RETURN = r"""
_value:
  description:
    - One dict per node, in the order of O(_input), with C(node) (short name), C(name)
      (C(<cluster>-<node>)), C(groups), C(security_groups) (C(<cluster>-<group>) for each group),
      C(metadata) (C(cvmfs_cluster), C(cvmfs_groups), C(cvmfs_node)), C(image), C(flavor), C(network),
      C(floating_ip), C(floating_ip_network), C(availability_zone) and C(user_data) (V(null) when unset).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._nodes import openstack_servers


def _openstack_servers(nodes, cluster, defaults=None):
    try:
        return openstack_servers(nodes, cluster, defaults)
    except CvmfsError as error:
        raise AnsibleFilterError("openstack_servers: %s" % error.message)


class FilterModule(object):

    def filters(self):
        return {"openstack_servers": _openstack_servers}
