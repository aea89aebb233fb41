"""ip_network_check: the entries of a squid address list that are no address, or that let (almost)
everyone in. squid keeps IPv4 clients as IPv4-mapped IPv6 addresses, so IPv6 ranges reaching into
::ffff:0:0/96 are judged by the IPv4 part they cover."""

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.sharedsw.cvmfs.plugins.filter.ip_network_check import ip_network_check

WIDE = ["0.0.0.0/0", "::/0", "all", "ALL", "0.0.0.0", "::", "::ffff:0.0.0.0", "0.0.0.0/1", "128.0.0.0/1",
        "0.0.0.0/01", "128.0.0.0/01", "0.0.0.0/001", "10.0.0.0/7", "10.0.0.0/07", "0.0.0.0/128.0.0.0",
        "2000::/3", "2001:db8::/15", "2001:db8::/015",
        # IPv4-mapped: every IPv4 client, half of them, a /7 of them
        "::ffff:0:0/96", "::ffff:0.0.0.0/96", "::ffff:0:0/097", "::ffff:a00:0/103",
        # IPv6 ranges wider than ::ffff:0:0/96 that hold it (squid: every IPv4 client)
        "::/64", "::/80", "::ffff:0:0/95"]
NARROW = ["10.0.0.0/8", "10.0.0.0/08", "192.0.2.0/24", "192.0.2.7", "192.0.2.7/24", "2001:db8::/16",
          "2001:db8::/48", "fd00::1", "::1", "::ffff:7f00:0/104", "::ffff:192.0.2.0/120", "::/96", "10.0.0.0/255.0.0.0"]
INVALID = ["clients.example.org", "", "010.0.0.0/8", "192.0.2.0/33", "2001:db8::/129", "10.0.0.0/-1", "10.0.0.0/8/8"]


@pytest.mark.parametrize("entry", WIDE)
def test_wide(entry):
    assert ip_network_check([entry]) == {"invalid": [], "wide": [entry]}


@pytest.mark.parametrize("entry", NARROW)
def test_narrow(entry):
    assert ip_network_check([entry]) == {"invalid": [], "wide": []}


@pytest.mark.parametrize("entry", INVALID)
def test_invalid(entry):
    assert ip_network_check([entry]) == {"invalid": [entry], "wide": []}


def test_keeps_input_order_and_sorts_out_each_entry():
    entries = ["192.0.2.0/24", "128.0.0.0/01", "nope", "::ffff:0:0/96", "0.0.0.0/01"]
    assert ip_network_check(entries) == {"invalid": ["nope"], "wide": ["128.0.0.0/01", "::ffff:0:0/96", "0.0.0.0/01"]}


def test_thresholds_are_options():
    assert ip_network_check(["10.0.0.0/8", "2001:db8::/32"], ipv4_min_prefix=16, ipv6_min_prefix=48)["wide"] == [
        "10.0.0.0/8", "2001:db8::/32"]
    assert ip_network_check(["::ffff:a00:0/104"], ipv4_min_prefix=16)["wide"] == ["::ffff:a00:0/104"]


@pytest.mark.parametrize("value", ["192.0.2.0/24", None, {"a": 1}])
def test_refuses_what_is_not_a_list(value):
    with pytest.raises(AnsibleFilterError, match="expected a list"):
        ip_network_check(value)
