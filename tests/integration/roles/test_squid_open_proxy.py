"""squid role: client networks that make the real squid an open proxy are refused by the role.

For each case, the role renders squid.conf as it would write it when told that a firewall already
limits the clients (squid_allow_any_client: true, so the open-proxy check is off), and the client
networks of that rendering (acl cvmfs_clients) go into the harness's real squid: a request from
127.0.0.1, an address no site network of these cases names, is let through, so squid reads them as
(almost) everyone. The same networks with the check on must fail the role's preflight. A site's own
networks are the control: squid refuses the loopback client, and the preflight lets them through.
"""

import os
import tempfile
import urllib.error
import urllib.request

import pytest

from tests.support.local_plays import run_plays
from tests.unit.roles.test_squid_config import FACTS, INVENTORY, _acl, _conf, _play

pytestmark = pytest.mark.integration

OPEN = {
    "two_halves_written_with_leading_zeros": ["0.0.0.0/01", "128.0.0.0/01"],
    "ipv4_mapped_ipv6": ["::ffff:0:0/96"],
    "ipv4_mapped_ipv6_half": ["192.0.2.0/24", "::ffff:0:0/097"],
    "ipv6_range_holding_the_ipv4_mapped_range": ["2001:db8::/48", "::/64"],
}
SITE = {"site_networks": ["192.0.2.0/24", "2001:db8::/48", "::ffff:192.0.2.0/120"]}
DESTINATION = ["http://s1.example.org/cvmfs/@fqrn@"]


@pytest.fixture(scope="module")
def role(tmp_path_factory):
    """{case: {"written": rendering with the check off, "checked": rendering or preflight failure}}."""
    work = tmp_path_factory.mktemp("squid-open-proxy")
    plays = []
    for name, networks in list(OPEN.items()) + list(SITE.items()):
        case_vars = {"squid_allowed_client_networks": networks, "squid_stratum1_urls": DESTINATION}
        plays.append(_play(name + "/written", dict(case_vars, squid_allow_any_client=True)))
        plays.append(_play(name + "/checked", case_vars))
    plays.append({"name": "results", "hosts": "proxy", "gather_facts": False, "tasks": [
        {"name": "results", "ansible.builtin.debug": {"var": "squid_test_results"}}]})
    returncode, parsed, output = run_plays(work, plays, INVENTORY, {"proxy": FACTS})
    assert returncode == 0, output
    results = parsed["plays"][-1]["tasks"][0]["hosts"]["proxy"]["squid_test_results"]
    return {name: {"written": results[name + "/written"], "checked": results[name + "/checked"]}
            for name in list(OPEN) + list(SITE)}


@pytest.fixture(scope="module")
def origin(apache):
    directory = tempfile.mkdtemp(prefix="squid-origin-")
    with open(os.path.join(directory, "index.txt"), "w") as handle:
        handle.write("origin\n")
    os.chmod(directory, 0o755)
    return apache.publish("squid-open-proxy", directory) + "index.txt"


def _status_through(squid, url):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": squid.url}))
    try:
        with opener.open(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _client_networks_written(role, name):
    networks = _acl(_conf({name: role[name]["written"]}, name), "cvmfs_clients")
    assert networks, role[name]["written"]
    return networks


@pytest.mark.parametrize("name", sorted(OPEN))
def test_open_proxy_networks_are_refused(role, origin, squid_factory, name):
    squid = squid_factory(allowed_dst=("127.0.0.1",), allowed_src=_client_networks_written(role, name))
    assert _status_through(squid, origin) == 200, "squid did not let the loopback client in: not an open case"
    checked = role[name]["checked"]
    assert "conf" not in checked, "the role would write an open proxy for %s" % OPEN[name]
    assert "open proxy" in checked["failed"], checked["failed"]
    for network in OPEN[name]:
        if network not in ("192.0.2.0/24", "2001:db8::/48"):
            assert network in checked["failed"], checked["failed"]


@pytest.mark.parametrize("name", sorted(SITE))
def test_site_networks_are_accepted_and_keep_others_out(role, origin, squid_factory, name):
    squid = squid_factory(allowed_dst=("127.0.0.1",), allowed_src=_client_networks_written(role, name))
    assert _status_through(squid, origin) == 403
    assert "conf" in role[name]["checked"], role[name]["checked"]
    assert _acl(_conf({name: role[name]["checked"]}, name), "cvmfs_clients") == SITE[name]
