"""playbooks/provision_openstack.yml and teardown_openstack.yml, run by ansible-playbook with the real
openstack.cloud modules and openstacksdk against the OpenStack API TEST DOUBLE (tests/openstack_double),
not a real cloud. The double keeps state, so idempotence and teardown are observable."""

import base64

import pytest

from tests.openstack_double.api import OpenStackDouble

from tests.openstack_double.playbook import run_playbook, task_results

pytestmark = pytest.mark.slow

USER_DATA = "#cloud-config\nwrite_files:\n  - path: /etc/cvmfs/default.local\n    content: CVMFS_HTTP_PROXY=DIRECT\n"

VARS = {
    "openstack_nodes_cloud": "double",
    "openstack_nodes_cluster": "lab",
    "openstack_nodes_image": "debian-12",
    "openstack_nodes_flavor": "m1.small",
    "openstack_nodes_network": "private",
    "openstack_nodes_floating_ip_network": "public",
    "openstack_nodes_nodes": [
        {"name": "s0", "groups": ["publishers", "stratum0"], "floating_ip": True},
        {"name": "c1", "groups": ["clients"]},
    ],
    "openstack_nodes_client_user_data": USER_DATA,
    "openstack_nodes_source_cidrs": {"admin": ["198.51.100.0/24"], "service": ["10.0.0.0/24"],
                                     "clients": ["10.0.0.0/8", "2001:db8::/32"]},
}


def snapshot(double):
    """What a site cares about, in a comparable form."""
    groups = {}
    for sg in double.security_groups.values():
        groups[sg["name"]] = sorted((r["direction"], r["ethertype"], r["port_range_min"], r["remote_ip_prefix"])
                                    for r in sg["security_group_rules"])
    servers = {}
    for server_id, server in double.servers.items():
        view = double._server_view(server)
        servers[server["name"]] = {
            "id": server_id, "metadata": dict(server["metadata"]),
            "security_groups": sorted(g["name"] for g in view["security_groups"]),
            "floating": sorted(a["addr"] for net in view["addresses"].values() for a in net
                               if a["OS-EXT-IPS:type"] == "floating")}
    return {"groups": groups, "servers": servers, "floating_ips": len(double.floating_ips)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """check mode on an empty project, apply, apply again, teardown, teardown again -- once for the module."""
    tmp_path = tmp_path_factory.mktemp("provision")
    double = OpenStackDouble().start()
    double.clouds_yaml_path = double.clouds_yaml(str(tmp_path / "clouds.yaml"))
    double.add_image("debian-12")
    results = {"empty": snapshot(double)}
    try:
        results["check"] = run_playbook("provision_openstack.yml", double, tmp_path, VARS, check=True)
        results["after_check"] = snapshot(double)
        results["apply"] = run_playbook("provision_openstack.yml", double, tmp_path, VARS)
        results["after_apply"] = snapshot(double)
        results["user_data"] = double.server_user_data("lab-c1"), double.server_user_data("lab-s0")
        results["again"] = run_playbook("provision_openstack.yml", double, tmp_path, VARS)
        results["after_again"] = snapshot(double)
        teardown_vars = {"openstack_nodes_cloud": "double", "openstack_nodes_cluster": "lab",
                         "openstack_nodes_teardown_confirm": "lab"}
        results["teardown"] = run_playbook("teardown_openstack.yml", double, tmp_path, teardown_vars)
        results["after_teardown"] = snapshot(double)
        results["teardown_again"] = run_playbook("teardown_openstack.yml", double, tmp_path, teardown_vars)
        results["unknown"] = list(double.unknown)
        yield results
    finally:
        double.stop()


def test_check_mode_reports_changes_and_creates_nothing(runs):
    assert runs["check"]["localhost"]["changed"] > 0
    assert runs["after_check"] == runs["empty"]


def test_security_groups_have_exactly_the_ports_of_their_node_types(runs):
    groups = runs["after_apply"]["groups"]
    assert sorted(groups) == ["default", "lab-clients", "lab-publishers", "lab-stratum0"]
    egress = [("egress", "IPv4", None, None), ("egress", "IPv6", None, None)]
    assert groups["lab-stratum0"] == sorted(egress + [
        ("ingress", "IPv4", 22, "198.51.100.0/24"), ("ingress", "IPv4", 80, "10.0.0.0/24"),
        ("ingress", "IPv4", 4929, "10.0.0.0/24")])
    assert groups["lab-publishers"] == sorted(egress + [("ingress", "IPv4", 22, "198.51.100.0/24")])
    assert groups["lab-clients"] == sorted(egress + [("ingress", "IPv4", 22, "198.51.100.0/24")])


def test_servers_carry_their_node_types_and_security_groups(runs):
    servers = runs["after_apply"]["servers"]
    assert sorted(servers) == ["lab-c1", "lab-s0"]
    assert servers["lab-s0"]["metadata"] == {"cvmfs_cluster": "lab", "cvmfs_groups": "stratum0,publishers",
                                             "cvmfs_node": "s0"}
    assert servers["lab-s0"]["security_groups"] == ["lab-publishers", "lab-stratum0"]
    assert servers["lab-c1"]["security_groups"] == ["lab-clients"]
    assert len(servers["lab-s0"]["floating"]) == 1
    assert servers["lab-c1"]["floating"] == []


def test_clients_get_the_cloud_init_user_data_and_others_none(runs):
    client, stratum0 = runs["user_data"]
    assert base64.b64decode(client).decode() == USER_DATA
    assert stratum0 is None


def test_second_run_changes_nothing(runs):
    assert runs["again"]["localhost"]["changed"] == 0
    assert runs["after_again"] == runs["after_apply"]
    report = [r["msg"] for r in task_results(runs["again"], "Report the nodes")[0]["results"]]
    assert any(line.startswith("lab-s0 [stratum0,publishers] 10.0.0.") for line in report), report


def test_teardown_deletes_the_cluster_and_only_it(runs):
    assert runs["teardown"]["localhost"]["changed"] == 2
    after = runs["after_teardown"]
    assert after["servers"] == {}
    assert sorted(after["groups"]) == ["default"]
    assert after["floating_ips"] == 0, "floating IPs of deleted servers are released"
    assert runs["teardown_again"]["localhost"]["changed"] == 0


def test_no_call_outside_what_the_double_implements(runs):
    assert runs["unknown"] == []


def test_a_bad_description_fails_before_the_cloud_is_touched(openstack_double, tmp_path):
    bad = dict(VARS, openstack_nodes_source_cidrs={"admin": [], "service": ["10.0.0.0/24"], "clients": []})
    result = run_playbook("provision_openstack.yml", openstack_double, tmp_path, bad, expect_failure=True)
    failed = task_results(result, "Compute the security group rules")[0]
    assert "source CIDRs admin is empty" in failed["msg"]
    assert openstack_double.requests == []


def test_teardown_wants_the_cluster_name_repeated(openstack_double, tmp_path):
    openstack_double.add_server("lab-s0", {"cvmfs_cluster": "lab", "cvmfs_groups": "stratum0"})
    result = run_playbook("teardown_openstack.yml", openstack_double, tmp_path,
                          {"openstack_nodes_cluster": "lab", "openstack_nodes_teardown_confirm": "prod"},
                          expect_failure=True)
    assert "Refusing to delete cluster lab" in task_results(result, "names the cluster")[0]["msg"]
    assert len(openstack_double.servers) == 1
