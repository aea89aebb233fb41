"""The client proxy list (CVMFS_HTTP_PROXY): '|' inside a group, ';' between groups, DIRECT only when asked."""

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.sharedsw.cvmfs.plugins.filter.proxy_string import proxy_string

GROUPS = {
    "squids_a": ["sq1.a.example.org", "sq2.a.example.org"],
    "squids_central": ["sq.central.example.org"],
    "empty": [],
}
HOSTVARS = {"sq1.a.example.org": {}, "sq2.a.example.org": {"squid_http_port": 8128},
            "sq.central.example.org": {"squid_http_port": "3129"}}


def test_groups_load_balance_and_fail_over():
    assert proxy_string(["squids_a", "squids_central"], GROUPS, HOSTVARS) == (
        "http://sq1.a.example.org:3128|http://sq2.a.example.org:8128;http://sq.central.example.org:3129")


def test_explicit_lists_and_default_port():
    assert proxy_string([["p1", "p2:8080"], ["http://P3.example.org:3128/"]], port=3130) == (
        "http://p1:3130|http://p2:8080;http://p3.example.org:3128")


def test_ipv6_and_mixed():
    assert proxy_string([["[2001:db8::1]:3128"], "squids_central"], GROUPS) == (
        "http://[2001:db8::1]:3128;http://sq.central.example.org:3128")


def test_direct_only_when_asked():
    assert proxy_string(["squids_central"], GROUPS, HOSTVARS, direct=True) == (
        "http://sq.central.example.org:3129;DIRECT")
    assert "DIRECT" not in proxy_string(["squids_central"], GROUPS, HOSTVARS)
    assert proxy_string([], direct=True) == "DIRECT"


@pytest.mark.parametrize("groups_in, message", [
    ([], "no proxies"),
    ([["DIRECT"]], "DIRECT is not accepted"),
    ([["direct"]], "DIRECT is not accepted"),
    (["nosuch"], "no such inventory group"),
    (["empty"], "is empty"),
    ([[]], "is empty"),
    ([["p1|p2"]], "is not a proxy"),
    ([["p1;p2"]], "is not a proxy"),
    ([["p 1"]], "is not a proxy"),
    ([["https://p1:3128"]], "is not a proxy"),
    ([["p1:70000"]], "out of range"),
    ([["p1"], ["http://p1:3128"]], "appears twice"),
    ([{"host": "p1"}], "inventory group name or a list"),
    ("squids_a", "list of load-balancing groups"),
])
def test_refused(groups_in, message):
    with pytest.raises(AnsibleFilterError, match=message):
        proxy_string(groups_in, GROUPS, HOSTVARS)
