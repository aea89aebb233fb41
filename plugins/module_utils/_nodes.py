# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nodes of the service as a cloud sees them: node types, server metadata, addresses, ports.

Internal to sharedsw.cvmfs; may change in any release. Pure Python, no Ansible and no
openstacksdk import: used by the ``openstack_nodes`` inventory plugin, the ``openstack_servers``
and ``security_group_rules`` filters, and tests.

Must not import Ansible or ``_openstack`` (it would load openstacksdk): the filters import it
and stay fast.

Public surface:

* :data:`NODE_GROUPS`, :data:`GROUPS_KEY`, :data:`CLUSTER_KEY`, :func:`parse_groups`,
  :func:`format_groups` -- the metadata a provisioned server carries
  (``cvmfs_groups=stratum0,publishers``, ``cvmfs_cluster=<name>``).
* :func:`openstack_servers` -- the servers of a cluster, defaults applied and checked.
* :func:`choose_address`, :func:`inventory_hosts` -- from server records to inventory hosts and groups.
* :func:`security_group_rules` -- the ingress rules of each node type from a port table and named
  source CIDR lists.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

from ._common import CvmfsError

# The node types of DESIGN.md section 2, in the order a site is built.
NODE_GROUPS = ("stratum0", "publishers", "stratum1", "squids", "clients")

# Metadata keys a provisioned server carries.
GROUPS_KEY = "cvmfs_groups"
CLUSTER_KEY = "cvmfs_cluster"
NODE_KEY = "cvmfs_node"


# --------------------------------------------------------------------------- node metadata


def format_groups(groups):
    """The metadata value naming a server's node types: ``"stratum0,publishers"``."""
    unknown = [g for g in groups if g not in NODE_GROUPS]
    if unknown:
        raise CvmfsError("unknown node type(s) %s; use some of %s" % (", ".join(unknown), ", ".join(NODE_GROUPS)))
    return ",".join(g for g in NODE_GROUPS if g in groups)


def parse_groups(value):
    """Split a ``cvmfs_groups`` metadata value; returns ``(known groups, unknown names)``."""
    names = [part.strip() for part in (value or "").split(",") if part.strip()]
    known = [g for g in NODE_GROUPS if g in names]
    unknown = sorted(set(n for n in names if n not in NODE_GROUPS))
    return known, unknown


# --------------------------------------------------------------------------- servers and addresses

ADDRESS_CHOICES = ("floating", "private")


def _entries(addresses, network):
    for net_name, entries in (addresses or {}).items():
        if network and net_name != network:
            continue
        for entry in entries or []:
            yield net_name, entry


def choose_address(addresses, address="floating", network=None, ip_version=4, fallback=True):
    """Pick the address Ansible uses for a server, or ``None``.

    ``addresses`` is Nova's ``{network name: [{addr, version, OS-EXT-IPS:type}, ...]}``.
    ``address`` is ``floating`` (a floating IP) or ``private`` (a fixed address of a port);
    ``network`` keeps only the addresses on that network; with ``fallback`` a server without a
    floating IP is reached on its fixed address.
    """
    if address not in ADDRESS_CHOICES:
        raise CvmfsError("address must be one of %s, not %r" % (", ".join(ADDRESS_CHOICES), address))
    wanted = "floating" if address == "floating" else "fixed"
    candidates = [(entry.get("OS-EXT-IPS:type", "fixed"), entry.get("addr"))
                  for _net, entry in _entries(addresses, network)
                  if int(entry.get("version", 4)) == int(ip_version) and entry.get("addr")]
    for kind, addr in candidates:
        if kind == wanted:
            return addr
    if wanted == "floating" and fallback:
        for kind, addr in candidates:
            if kind == "fixed":
                return addr
    return None


def inventory_hosts(servers, cluster=None, address="floating", network=None, ip_version=4, fallback=True,
                    include_inactive=False, hostname="name"):
    """Turn server records into inventory hosts.

    Returns ``(hosts, warnings)``. ``hosts`` is a list of dicts ``{name, groups, vars}`` sorted by
    name; ``vars`` has ``ansible_host`` (when an address was found) and ``cvmfs_openstack`` (the
    server record). Servers without ``cvmfs_groups`` metadata, of another ``cluster``, or (unless
    ``include_inactive``) not ACTIVE are left out.
    """
    hosts = {}
    warnings = []
    for record in sorted(servers, key=lambda r: (r.get("name") or "", r.get("id") or "")):
        metadata = record.get("metadata") or {}
        if GROUPS_KEY not in metadata:
            continue
        if cluster and metadata.get(CLUSTER_KEY) != cluster:
            continue
        if not include_inactive and record.get("status") != "ACTIVE":
            continue
        groups, unknown = parse_groups(metadata.get(GROUPS_KEY))
        if unknown:
            warnings.append("server %s (%s): ignoring unknown node type(s) %s in metadata %s; valid are %s"
                            % (record.get("name"), record.get("id"), ", ".join(unknown), GROUPS_KEY,
                               ", ".join(NODE_GROUPS)))
        name = record.get("id") if hostname == "id" else record.get("name")
        if name in hosts:
            raise CvmfsError("two servers are named %s (ids %s and %s); rename one, or set hostname: id"
                             % (name, hosts[name]["vars"]["cvmfs_openstack"]["id"], record.get("id")))
        host_vars = {"cvmfs_openstack": record}
        chosen = choose_address(record.get("addresses"), address=address, network=network,
                                ip_version=ip_version, fallback=fallback)
        if chosen:
            host_vars["ansible_host"] = chosen
        else:
            warnings.append("server %s (%s) has no %s IPv%s address%s; it is listed without ansible_host"
                            % (record.get("name"), record.get("id"), address, ip_version,
                               (" on network %s" % network) if network else ""))
        hosts[name] = {"name": name, "groups": groups, "vars": host_vars}
    return [hosts[k] for k in sorted(hosts)], warnings


# --------------------------------------------------------------------------- security group rules

EGRESS_RULES = (
    {"direction": "egress", "ether_type": "IPv4", "description": "all egress (IPv4)"},
    {"direction": "egress", "ether_type": "IPv6", "description": "all egress (IPv6)"},
)


def _network(cidr, where):
    try:
        return ipaddress.ip_network(str(cidr).strip(), strict=False)
    except ValueError:
        raise CvmfsError("%s: %r is not a network in CIDR notation (for example 192.0.2.0/24 or 2001:db8::/32)"
                         % (where, cidr))


def security_group_rules(ports, source_cidrs, egress=True):
    """Rules of ``openstack.cloud.security_group`` for each node type.

    ``ports`` maps a node type to a list of ``{port, sources, protocol=tcp, description}``, where
    ``sources`` names lists of ``source_cidrs`` (``{admin: [...], service: [...], clients: [...]}``).
    Returns ``{node type: [rule, ...]}`` with one rule per (port, network), networks normalised
    (``10.1.2.3/8`` becomes ``10.0.0.0/8``, which is what Neutron stores, so a second run finds
    the same rules), duplicates dropped, and the default egress rules appended.
    """
    if not isinstance(ports, dict):
        raise CvmfsError("the port table must map node types to lists of ports, not %s" % type(ports).__name__)
    if not isinstance(source_cidrs, dict):
        raise CvmfsError("the source CIDRs must map source names (admin, service, clients) to lists of networks")
    result = {}
    for node_type in sorted(ports):
        if node_type not in NODE_GROUPS:
            raise CvmfsError("port table: unknown node type %s; use some of %s" % (node_type, ", ".join(NODE_GROUPS)))
        rules = []
        seen = set()
        for index, entry in enumerate(ports[node_type] or []):
            where = "port table %s[%d]" % (node_type, index)
            if not isinstance(entry, dict) or "port" not in entry:
                raise CvmfsError("%s: each entry needs port and sources, e.g. {port: 22, sources: [admin]}" % where)
            try:
                port = int(entry["port"])
            except (TypeError, ValueError):
                raise CvmfsError("%s: port %r is not a number" % (where, entry["port"]))
            if not 0 < port < 65536:
                raise CvmfsError("%s: port %d is outside 1-65535" % (where, port))
            protocol = entry.get("protocol", "tcp")
            if protocol not in ("tcp", "udp"):
                raise CvmfsError("%s: protocol must be tcp or udp, not %r" % (where, protocol))
            sources = entry.get("sources")
            if isinstance(sources, str):
                sources = [sources]
            if not sources:
                raise CvmfsError("%s: sources is empty; name at least one of %s"
                                 % (where, ", ".join(sorted(source_cidrs))))
            description = entry.get("description") or "%s/%d" % (protocol, port)
            for source in sources:
                if source not in source_cidrs:
                    raise CvmfsError("%s: unknown source %r; define it in the source CIDRs (known: %s)"
                                     % (where, source, ", ".join(sorted(source_cidrs)) or "none"))
                cidrs = source_cidrs[source]
                if isinstance(cidrs, str):
                    cidrs = [cidrs]
                if not cidrs:
                    raise CvmfsError(
                        "source CIDRs %s is empty, but %s port %d needs it: list the networks allowed to reach it "
                        "(for example ['192.0.2.0/24']; ['0.0.0.0/0', '::/0'] allows everyone), or remove the port "
                        "from the port table" % (source, node_type, port))
                for cidr in cidrs:
                    net = _network(cidr, "source CIDRs %s" % source)
                    key = (protocol, port, str(net))
                    if key in seen:
                        continue
                    seen.add(key)
                    rules.append({
                        "description": "%s from %s" % (description, source),
                        "direction": "ingress",
                        "ether_type": "IPv%d" % net.version,
                        "port_range_max": port,
                        "port_range_min": port,
                        "protocol": protocol,
                        "remote_ip_prefix": str(net),
                    })
        if egress:
            rules.extend(dict(rule) for rule in EGRESS_RULES)
        result[node_type] = rules
    return result


# --------------------------------------------------------------------------- servers of a cluster

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
CLUSTER_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
SERVER_DEFAULTS = ("availability_zone", "client_image", "client_user_data", "flavor", "floating_ip",
                   "floating_ip_network", "image", "network")


def _pick(node, key, default):
    value = node.get(key)
    return default if value in (None, "") else value


def openstack_servers(nodes, cluster, defaults=None):
    """What ``openstack.cloud.server`` needs for each node of a cluster, resolved and checked.

    ``nodes`` is a list of ``{name, groups, image?, flavor?, network?, floating_ip?,
    availability_zone?, user_data?}``; ``defaults`` holds the values of unset node keys
    (``image``, ``client_image`` for clients, ``flavor``, ``network``, ``floating_ip``,
    ``floating_ip_network``, ``client_user_data``, ``availability_zone``). A node key set to
    ``None`` or ``""`` takes the default; ``floating_ip: false`` on a node wins over a default of true.

    Returns a list of dicts: ``node``, ``name`` (``<cluster>-<node>``), ``groups`` (in the order of
    :data:`NODE_GROUPS`), ``security_groups``, ``metadata``, ``image``, ``flavor``, ``network``,
    ``floating_ip``, ``floating_ip_network``, ``availability_zone``, ``user_data``.
    """
    defaults = dict(defaults or {})
    unknown_defaults = sorted(set(defaults) - set(SERVER_DEFAULTS))
    if unknown_defaults:
        raise CvmfsError("unknown server default(s) %s; known are %s"
                         % (", ".join(unknown_defaults), ", ".join(SERVER_DEFAULTS)))
    if not isinstance(cluster, str) or not re.match(CLUSTER_PATTERN, cluster):
        raise CvmfsError("cluster %r must be lower-case letters, digits and dashes, at most 32, starting with a "
                         "letter or digit (it prefixes every server and security group name)" % (cluster,))
    if not isinstance(nodes, list) or not nodes:
        raise CvmfsError("the node list is empty or not a list; give at least one {name, groups} entry")
    result = []
    seen = set()
    for index, node in enumerate(nodes):
        if not isinstance(node, dict) or not node.get("name"):
            raise CvmfsError("node #%d has no name; each node is {name: ..., groups: [...]}" % (index + 1))
        short = node["name"]
        if not isinstance(short, str) or not re.match(NAME_PATTERN, short):
            raise CvmfsError("node name %r must be lower-case letters, digits and dashes, starting with a letter "
                             "or digit" % (short,))
        if short in seen:
            raise CvmfsError("node name %s appears twice in the node list; names must be unique" % short)
        seen.add(short)
        unknown_keys = sorted(set(node) - set(("name", "groups", "image", "flavor", "network", "floating_ip",
                                               "availability_zone", "user_data")))
        if unknown_keys:
            raise CvmfsError("node %s: unknown key(s) %s" % (short, ", ".join(unknown_keys)))
        groups = node.get("groups") or []
        if isinstance(groups, str):
            groups = [groups]
        if not groups:
            raise CvmfsError("node %s has no groups; give at least one of %s" % (short, ", ".join(NODE_GROUPS)))
        groups_value = format_groups(groups)
        ordered = groups_value.split(",")
        is_client = "clients" in ordered
        image = _pick(node, "image", defaults.get("client_image") if is_client else None) or defaults.get("image")
        flavor = _pick(node, "flavor", defaults.get("flavor"))
        network = _pick(node, "network", defaults.get("network"))
        missing = [k for k, v in (("image", image), ("flavor", flavor), ("network", network)) if not v]
        if missing:
            raise CvmfsError("node %s has no %s: set it on the node or give a default (the role variables "
                             "openstack_nodes_image, openstack_nodes_client_image, openstack_nodes_flavor, "
                             "openstack_nodes_network)" % (short, " or ".join(missing)))
        floating = node.get("floating_ip")
        if floating in (None, ""):
            floating = bool(defaults.get("floating_ip"))
        if not isinstance(floating, bool):
            raise CvmfsError("node %s: floating_ip must be true or false, not %r" % (short, floating))
        if floating and not defaults.get("floating_ip_network"):
            raise CvmfsError("node %s gets a floating IP, but no external network is named to take it from; "
                             "set openstack_nodes_floating_ip_network" % short)
        user_data = _pick(node, "user_data", defaults.get("client_user_data") if is_client else None) or None
        result.append({
            "node": short,
            "name": "%s-%s" % (cluster, short),
            "groups": ordered,
            "security_groups": ["%s-%s" % (cluster, group) for group in ordered],
            "metadata": {CLUSTER_KEY: cluster, GROUPS_KEY: groups_value, NODE_KEY: short},
            "image": image,
            "flavor": flavor,
            "network": network,
            "floating_ip": floating,
            "floating_ip_network": defaults.get("floating_ip_network") or None,
            "availability_zone": _pick(node, "availability_zone", defaults.get("availability_zone")) or None,
            "user_data": user_data,
        })
    return result
