# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: ip_network_check
short_description: Find the entries of an address list that are not addresses, or that cover (almost) everyone
version_added: 0.1.0
author:
  - sharedsw.cvmfs developers
description:
  - Reads each entry with Python's C(ipaddress) (an address, or a network as C(address/prefix) or
    C(address/netmask); host bits may be set) and sorts out those a squid access list must not hold.
  - O(_input) entries that C(ipaddress) cannot read are returned under C(invalid).
  - An entry is C(wide) when its prefix length, compared as a number (so C(/01) is C(/1)), is shorter
    than O(ipv4_min_prefix) (IPv4) or O(ipv6_min_prefix) (IPv6), or when it is C(all) or an unspecified
    address (C(0.0.0.0), C(::)).
  - squid keeps IPv4 clients as IPv4-mapped IPv6 addresses, so a range inside C(::ffff:0:0/96) is judged
    as the IPv4 range it maps (C(::ffff:0:0/96) is C(0.0.0.0/0)), and an IPv6 range that holds all of
    C(::ffff:0:0/96) (such as C(::/64)) is wide, as it matches every IPv4 client.
  - The check is per entry. C(0.0.0.0/1) and C(128.0.0.0/1), which together are everyone, are each
    wide; entries that each respect the minimum are accepted even where together they cover much.
options:
  _input:
    description: Addresses or networks, as strings.
    type: list
    elements: str
    required: true
  ipv4_min_prefix:
    description: Shortest IPv4 prefix length that is not wide.
    type: int
    default: 8
  ipv6_min_prefix:
    description: Shortest IPv6 prefix length that is not wide.
    type: int
    default: 16
"""

EXAMPLES = r"""
- name: Refuse client networks that would open the proxy
  ansible.builtin.assert:
    that: (squid_allowed_client_networks | sharedsw.cvmfs.ip_network_check).wide | length == 0
  # ['192.0.2.0/24', '0.0.0.0/01', '::ffff:0:0/96'] -> {'invalid': [], 'wide': ['0.0.0.0/01', '::ffff:0:0/96']}
"""

RETURN = r"""
_value:
  description: The entries of the input that fail, each list in input order.
  type: dict
  contains:
    invalid:
      description: Entries that are not an address or network.
      type: list
      elements: str
    wide:
      description: Entries that cover (almost) everyone, as described above.
      type: list
      elements: str
"""

import ipaddress

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.six import string_types

_IPV4_MAPPED = ipaddress.ip_network(u"::ffff:0:0/96")


def _network(entry):
    """The network of ``entry``, or None where ipaddress cannot read it."""
    try:
        return ipaddress.ip_network(to_text(entry).strip(), strict=False)
    except ValueError:
        return None


def _as_squid_reads_it(network):
    """squid keeps IPv4 addresses as IPv4-mapped IPv6 (::ffff:a.b.c.d): a range inside
    ::ffff:0:0/96 is the IPv4 range it maps."""
    if network.version == 6 and network.subnet_of(_IPV4_MAPPED):
        return ipaddress.IPv4Network((int(network.network_address) & 0xFFFFFFFF, network.prefixlen - 96))
    return network


def _is_wide(network, ipv4_min_prefix, ipv6_min_prefix):
    network = _as_squid_reads_it(network)
    if network.network_address.is_unspecified and network.prefixlen == network.max_prefixlen:
        return True  # a bare 0.0.0.0 or ::, meant as "any"
    if network.version == 4:
        return network.prefixlen < ipv4_min_prefix
    # an IPv6 range still overlapping the mapped range holds all of it: every IPv4 client
    return network.prefixlen < ipv6_min_prefix or network.overlaps(_IPV4_MAPPED)


def ip_network_check(entries, ipv4_min_prefix=8, ipv6_min_prefix=16):
    """``{"invalid": [...], "wide": [...]}``: the entries of ``entries`` that are no address, and
    those that cover (almost) everyone."""
    if isinstance(entries, string_types) or not isinstance(entries, (list, tuple)):
        raise AnsibleFilterError("ip_network_check: expected a list of addresses or networks, got %r" % (entries,))
    result = {"invalid": [], "wide": []}
    for entry in entries:
        if to_text(entry).strip().lower() == u"all":
            result["wide"].append(entry)
            continue
        network = _network(entry)
        if network is None:
            result["invalid"].append(entry)
        elif _is_wide(network, int(ipv4_min_prefix), int(ipv6_min_prefix)):
            result["wide"].append(entry)
    return result


class FilterModule(object):
    def filters(self):
        return {"ip_network_check": ip_network_check}
