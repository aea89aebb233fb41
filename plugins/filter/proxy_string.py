# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: proxy_string
short_description: Build the CernVM-FS client proxy list (C(CVMFS_HTTP_PROXY)) from inventory groups
version_added: 0.1.0
author:
  - sharedsw.cvmfs developers
description:
  - Each element of the input is one B(load-balancing group) of squid proxies; the proxies of a group
    are joined with C(|) (the client picks one at random), and the groups are joined with C(;)
    (fail-over, in order).
  - An element is either the name of an inventory group (its hosts become the proxies, each as
    C(http://<host>:<port>) with the port from the host's C(squid_http_port), else O(port)) or a
    list of proxies (C(host), C(host:port) or C(http://host:port)).
  - C(DIRECT) (no proxy) is appended as the last fail-over group only when O(direct=true); a
    literal C(DIRECT) in the input is refused, so it is never added by accident.
  - Refuses an empty result (clients need a proxy unless O(direct=true)), unknown or empty
    inventory groups, duplicates, and proxies containing C(|), C(;), quotes or blanks.
options:
  _input:
    description: The load-balancing groups, in fail-over order.
    type: list
    elements: raw
    required: true
  groups:
    description: The inventory groups (pass C(groups)); needed when an element is a group name.
    type: dict
  hostvars:
    description: The inventory host variables (pass C(hostvars)), for each host's C(squid_http_port).
    type: dict
  port:
    description: Port of a proxy given without one.
    type: int
    default: 3128
  direct:
    description: Append C(DIRECT) as the last fail-over group.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Site squids first, the central squids as fail-over
  ansible.builtin.debug:
    msg: "{{ ['squids_site_a', 'squids_central'] | sharedsw.cvmfs.proxy_string(groups, hostvars) }}"
  # -> http://sq1.a.example.org:3128|http://sq2.a.example.org:3128;http://sq.central.example.org:3128
"""

RETURN = r"""
_value:
  description: The value of C(CVMFS_HTTP_PROXY), e.g. C(http://a:3128|http://b:3128;http://c:3128).
  type: str
"""

import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.six import string_types

_PROXY_RE = re.compile(r"^(?:(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://)?(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+)"
                       r"(?::(?P<port>[0-9]{1,5}))?/?$")


def _proxy_url(value, port, where):
    if not isinstance(value, string_types) or not value.strip():
        raise AnsibleFilterError("proxy_string: %s: a proxy must be a non-empty string such as "
                                 "http://squid.example.org:3128, not %r" % (where, value))
    value = value.strip()
    if value.upper() == "DIRECT":
        raise AnsibleFilterError("proxy_string: %s: DIRECT is not accepted in the proxy list; set direct=true "
                                 "(client_proxy_direct: true) to append it as the last fail-over group" % where)
    match = _PROXY_RE.match(value)
    if not match or (match.group("scheme") and match.group("scheme").lower() != "http"):
        raise AnsibleFilterError("proxy_string: %s: %r is not a proxy; expected host, host:port or "
                                 "http://host:port (no |, ;, quotes, blanks or paths)" % (where, value))
    proxy_port = int(match.group("port") or port)
    if not 0 < proxy_port < 65536:
        raise AnsibleFilterError("proxy_string: %s: port %d of %r is out of range 1-65535" % (where, proxy_port, value))
    return "http://%s:%d" % (match.group("host").lower(), proxy_port)


def _host_port(hostvars, host, port):
    if hostvars is None:
        return port
    try:
        return int(hostvars[host].get("squid_http_port", port) or port)
    except (KeyError, TypeError, ValueError):
        return port


def proxy_string(proxy_groups, groups=None, hostvars=None, port=3128, direct=False):
    if isinstance(proxy_groups, string_types) or not isinstance(proxy_groups, (list, tuple)):
        raise AnsibleFilterError("proxy_string: the input must be a list of load-balancing groups (inventory "
                                 "group names or lists of proxies), not %r" % (proxy_groups,))
    rendered, seen = [], set()
    for index, group in enumerate(proxy_groups):
        where = "group %d" % index
        if isinstance(group, string_types):
            where = "group %d (inventory group %s)" % (index, group)
            if groups is None or group not in groups:
                raise AnsibleFilterError("proxy_string: %s: no such inventory group; pass groups and name a group "
                                         "of squid hosts, or give the proxies as a list" % where)
            members = [_proxy_url(host, _host_port(hostvars, host, port), where) for host in groups[group]]
        elif isinstance(group, (list, tuple)):
            members = [_proxy_url(proxy, port, where) for proxy in group]
        else:
            raise AnsibleFilterError("proxy_string: %s: must be an inventory group name or a list of proxies, "
                                     "not %r" % (where, group))
        if not members:
            raise AnsibleFilterError("proxy_string: %s is empty; remove it or add squid hosts" % where)
        for member in members:
            if member in seen:
                raise AnsibleFilterError("proxy_string: %s: %s appears twice in the proxy list" % (where, member))
            seen.add(member)
        rendered.append("|".join(members))
    if direct:
        rendered.append("DIRECT")
    if not rendered:
        raise AnsibleFilterError("proxy_string: no proxies: clients need at least one squid group "
                                 "(client_proxies), or direct=true (client_proxy_direct: true) to fetch "
                                 "straight from the stratum-1s")
    return ";".join(rendered)


class FilterModule(object):
    def filters(self):
        return {"proxy_string": proxy_string}
