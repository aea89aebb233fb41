# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: openstack_nodes
short_description: The CernVM-FS nodes of an OpenStack project, grouped by node type
version_added: 0.1.0
author:
  - sharedsw.cvmfs developers (@sharedsw)
description:
  - Lists the servers of one OpenStack cloud (Nova, through openstacksdk) and puts each server that
    carries the metadata key C(cvmfs_groups) into the inventory groups named there, for example
    C(cvmfs_groups=stratum0,publishers) puts it in C(stratum0) and C(publishers).
  - Valid groups are C(stratum0), C(publishers), C(stratum1), C(squids) and C(clients); other names
    in the metadata are ignored with a warning. The playbook C(sharedsw.cvmfs.provision_openstack)
    sets this metadata, and C(cvmfs_cluster) to the name of the deployment.
  - Servers without C(cvmfs_groups) are not listed, so one project can hold other servers too.
  - The configuration file name must end in C(openstack_nodes.yml) or C(openstack_nodes.yaml).
  - Each host gets C(ansible_host) (see O(address)) and C(cvmfs_openstack), a dict with the server's
    C(id), C(name), C(status), C(addresses), C(metadata), C(flavor), C(image_id),
    C(availability_zone) and C(key_name).
requirements:
  - openstacksdk >= 1.0
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: The name of this plugin; it makes Ansible use this plugin for the file.
    type: str
    required: true
    choices: [sharedsw.cvmfs.openstack_nodes]
  address:
    description:
      - Which address becomes C(ansible_host).
      - V(floating) takes the server's floating IP; servers without one are reached on their fixed
        address unless O(address_fallback=false).
      - V(private) takes the fixed address of the server's port, for a controller inside the
        project's network (an AWX instance or bastion in the same cloud).
    type: str
    choices: [floating, private]
    default: floating
  address_fallback:
    description:
      - With O(address=floating), use the fixed address of a server that has no floating IP.
      - When false, such a server is listed without C(ansible_host) and a warning.
    type: bool
    default: true
  cloud:
    description:
      - Name of the cloud in C(clouds.yaml).
      - If not set, E(OS_CLOUD) is used (or the E(OS_AUTH_URL) family of variables); if neither is set
        the inventory fails rather than guess.
    type: str
    env:
      - name: OS_CLOUD
  clouds_yaml_path:
    description:
      - Files searched for the cloud before the standard C(clouds.yaml) locations
        (E(OS_CLIENT_CONFIG_FILE), C(./clouds.yaml), C(~/.config/openstack/clouds.yaml),
        C(/etc/openstack/clouds.yaml)).
    type: list
    elements: path
  cluster:
    description:
      - Only servers whose C(cvmfs_cluster) metadata equals this value, to keep several deployments
        in one project apart. If not set, every server with C(cvmfs_groups) is listed.
    type: str
  hostname:
    description:
      - The inventory name of a host. V(name) is the server name, which must then be unique among the
        listed servers. V(id) is the server UUID.
    type: str
    choices: [id, name]
    default: name
  include_inactive:
    description:
      - Also list servers whose status is not C(ACTIVE) (for example C(SHUTOFF) or C(ERROR)).
    type: bool
    default: false
  ip_version:
    description: IP version of the address that becomes C(ansible_host).
    type: int
    choices: [4, 6]
    default: 4
  network:
    description:
      - Only addresses on this network (by name, as Nova lists them) are considered. Use it when
        servers have ports on several networks, for example the name of the provider network
        whose fixed addresses the controller can reach.
    type: str
  region_name:
    description: Region of the cloud, if it has several.
    type: str
"""

EXAMPLES = r"""
# inventories/openstack/cvmfs.openstack_nodes.yml
plugin: sharedsw.cvmfs.openstack_nodes
cloud: mycloud
cluster: cvmfs
address: floating
---
# The same, reached from inside the project (AWX running in the same cloud), cached for 10 minutes
plugin: sharedsw.cvmfs.openstack_nodes
cloud: mycloud
cluster: cvmfs
address: private
network: cvmfs-net
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/sharedsw-cvmfs-inventory
cache_timeout: 600
compose:
  ansible_user: "'debian'"
"""

from ansible.errors import AnsibleParserError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._nodes import NODE_GROUPS, inventory_hosts
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._openstack import (
    HAS_OPENSTACKSDK,
    connect,
    sdk_errors,
    server_record,
)


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):

    NAME = "sharedsw.cvmfs.openstack_nodes"

    def verify_file(self, path):
        if not super(InventoryModule, self).verify_file(path):
            return False
        return path.endswith(("openstack_nodes.yml", "openstack_nodes.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache=cache)
        self._read_config_data(path)
        try:
            servers = self._servers(path, cache)
            hosts, warnings = inventory_hosts(
                servers,
                cluster=self.get_option("cluster"),
                address=self.get_option("address"),
                network=self.get_option("network"),
                ip_version=self.get_option("ip_version"),
                fallback=self.get_option("address_fallback"),
                include_inactive=self.get_option("include_inactive"),
                hostname=self.get_option("hostname"),
            )
        except CvmfsError as error:
            raise AnsibleParserError("%s: %s" % (path, to_native(error.message)))
        for warning in warnings:
            self.display.warning(warning)
        self._populate(hosts)

    def _servers(self, path, cache):
        """Server records from the cache when allowed and present, else from Nova."""
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        update_cache = self.get_option("cache") and not cache
        servers = None
        if use_cache:
            try:
                servers = self._cache[cache_key]
            except KeyError:
                update_cache = True
        if servers is None:
            servers = self._fetch()
        if update_cache:
            self._cache[cache_key] = servers
        return servers

    def _fetch(self):
        if not HAS_OPENSTACKSDK:
            raise CvmfsError("the inventory plugin %s needs the Python library openstacksdk (pip install openstacksdk)"
                             % self.NAME)
        conn = connect(cloud=self.get_option("cloud"), region_name=self.get_option("region_name"),
                       config_files=self.get_option("clouds_yaml_path"))
        try:
            with sdk_errors("list the servers of cloud %s" % (self.get_option("cloud") or "from the environment")):
                return [server_record(server) for server in conn.compute.servers(details=True)]
        finally:
            conn.close()

    def _populate(self, hosts):
        for group in NODE_GROUPS:
            self.inventory.add_group(group)
        strict = self.get_option("strict")
        for host in hosts:
            name = host["name"]
            self.inventory.add_host(name)
            for group in host["groups"]:
                self.inventory.add_child(group, name)
            for key, value in host["vars"].items():
                self.inventory.set_variable(name, key, value)
            hostvars = self.inventory.get_host(name).get_vars()
            self._set_composite_vars(self.get_option("compose"), hostvars, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, name, strict=strict)
