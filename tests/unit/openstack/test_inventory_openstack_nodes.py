"""The openstack_nodes inventory plugin, run in-process with the real openstacksdk against the
OpenStack API TEST DOUBLE (tests/openstack_double), not a real cloud."""

import os

import pytest
import yaml

from ansible.errors import AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader


SERVERS_CALL = ("GET", "/compute/v2.1/servers/detail")


def parse(tmp_path, double, use_cache=True, name="lab.openstack_nodes.yml", **options):
    config = {"plugin": "sharedsw.cvmfs.openstack_nodes", "cloud": "double",
              "clouds_yaml_path": [double.clouds_yaml_path]}
    config.update(options)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    plugin = inventory_loader.get("sharedsw.cvmfs.openstack_nodes")
    inventory = InventoryData()
    plugin.parse(inventory, DataLoader(), str(path), cache=use_cache)
    if getattr(plugin, "_cache", None):  # what InventoryManager does after a parse
        plugin.update_cache_if_changed()
    return inventory


def members(inventory, group):
    return sorted(h.name for h in inventory.groups[group].get_hosts())


@pytest.fixture
def lab(openstack_double):
    openstack_double.add_server("lab-s0", {"cvmfs_groups": "stratum0,publishers", "cvmfs_cluster": "lab"},
                                floating_ip=True)
    openstack_double.add_server("lab-s1", {"cvmfs_groups": "stratum1", "cvmfs_cluster": "lab"}, floating_ip=True)
    openstack_double.add_server("lab-sq", {"cvmfs_groups": "squids", "cvmfs_cluster": "lab"})
    openstack_double.add_server("lab-c1", {"cvmfs_groups": "clients", "cvmfs_cluster": "lab"})
    openstack_double.add_server("prod-s1", {"cvmfs_groups": "stratum1", "cvmfs_cluster": "prod"})
    openstack_double.add_server("jumphost", {})
    openstack_double.add_server("lab-old", {"cvmfs_groups": "clients", "cvmfs_cluster": "lab"}, status="SHUTOFF")
    return openstack_double


def test_verify_file_accepts_only_its_own_file_names(tmp_path):
    plugin = inventory_loader.get("sharedsw.cvmfs.openstack_nodes")
    for name, wanted in (("openstack_nodes.yml", True), ("site.openstack_nodes.yaml", True),
                         ("openstack.yml", False), ("hosts.yml", False)):
        (tmp_path / name).write_text("plugin: sharedsw.cvmfs.openstack_nodes\n")
        assert plugin.verify_file(str(tmp_path / name)) is wanted, name


def test_groups_come_from_metadata_and_the_cluster_filters(tmp_path, lab):
    inventory = parse(tmp_path, lab, cluster="lab")
    assert members(inventory, "stratum0") == ["lab-s0"]
    assert members(inventory, "publishers") == ["lab-s0"]
    assert members(inventory, "stratum1") == ["lab-s1"]
    assert members(inventory, "squids") == ["lab-sq"]
    assert members(inventory, "clients") == ["lab-c1"]
    assert sorted(inventory.hosts) == ["lab-c1", "lab-s0", "lab-s1", "lab-sq"]
    s0 = inventory.get_host("lab-s0").get_vars()
    assert s0["ansible_host"].startswith("172.24.4.")
    assert s0["cvmfs_openstack"]["metadata"]["cvmfs_groups"] == "stratum0,publishers"
    assert s0["cvmfs_openstack"]["status"] == "ACTIVE"
    assert s0["cvmfs_openstack"]["flavor"] == "m1.small"
    # a server without floating IP is reached on its fixed address by default
    assert inventory.get_host("lab-sq").get_vars()["ansible_host"].startswith("10.0.0.")


def test_without_cluster_every_server_with_groups_is_listed(tmp_path, lab):
    inventory = parse(tmp_path, lab)
    assert members(inventory, "stratum1") == ["lab-s1", "prod-s1"]
    assert "jumphost" not in inventory.hosts
    assert "lab-old" not in inventory.hosts
    assert "lab-old" in parse(tmp_path, lab, include_inactive=True).hosts


def test_private_addresses_and_no_fallback(tmp_path, lab):
    private = parse(tmp_path, lab, cluster="lab", address="private", network="private")
    assert all(private.get_host(h).get_vars()["ansible_host"].startswith("10.0.0.") for h in private.hosts)
    strict = parse(tmp_path, lab, cluster="lab", address_fallback=False)
    assert "ansible_host" not in strict.get_host("lab-sq").get_vars()
    assert strict.get_host("lab-s1").get_vars()["ansible_host"].startswith("172.24.4.")


def test_constructed_options_apply(tmp_path, lab):
    inventory = parse(tmp_path, lab, cluster="lab", compose={"ansible_user": "'debian'"},
                      keyed_groups=[{"key": "cvmfs_openstack.flavor", "prefix": "flavor"}],
                      groups={"replicas_and_proxies": "'stratum1' in group_names or 'squids' in group_names"})
    assert inventory.get_host("lab-c1").get_vars()["ansible_user"] == "debian"
    assert members(inventory, "flavor_m1_small") == ["lab-c1", "lab-s0", "lab-s1", "lab-sq"]
    assert members(inventory, "replicas_and_proxies") == ["lab-s1", "lab-sq"]


def test_cache_is_used_and_refreshed(tmp_path, lab):
    options = dict(cluster="lab", cache=True, cache_plugin="ansible.builtin.jsonfile",
                   cache_connection=str(tmp_path / "cache"), cache_timeout=3600)
    first = parse(tmp_path, lab, **options)
    calls = lab.requests.count(SERVERS_CALL)
    assert calls == 1
    assert os.listdir(str(tmp_path / "cache"))
    lab.add_server("lab-s2", {"cvmfs_groups": "stratum1", "cvmfs_cluster": "lab"})

    cached = parse(tmp_path, lab, **options)
    assert lab.requests.count(SERVERS_CALL) == calls, "a cached inventory must not ask Nova again"
    assert sorted(cached.hosts) == sorted(first.hosts)

    refreshed = parse(tmp_path, lab, use_cache=False, **options)  # what --flush-cache does
    assert lab.requests.count(SERVERS_CALL) == calls + 1
    assert "lab-s2" in refreshed.hosts
    assert "lab-s2" in parse(tmp_path, lab, **options).hosts, "the refresh must have updated the cache"


def test_unknown_group_names_are_ignored(tmp_path, openstack_double):
    openstack_double.add_server("odd", {"cvmfs_groups": "stratum1,portal"})
    inventory = parse(tmp_path, openstack_double)
    assert members(inventory, "stratum1") == ["odd"]
    assert "portal" not in inventory.groups


def test_wrong_credentials_fail_with_a_clear_message(tmp_path, openstack_double):
    openstack_double.clouds_yaml_path = openstack_double.clouds_yaml(str(tmp_path / "bad.yaml"), password="wrong")
    with pytest.raises(AnsibleParserError, match="Failed to list the servers of cloud double.*check the credentials"):
        parse(tmp_path, openstack_double)


def test_unknown_cloud_fails_with_a_clear_message(tmp_path, openstack_double):
    with pytest.raises(AnsibleParserError, match="check clouds.yaml"):
        parse(tmp_path, openstack_double, cloud="nosuchcloud")


def test_no_cloud_at_all_is_refused(tmp_path, openstack_double, monkeypatch):
    for name in ("OS_CLOUD", "OS_AUTH_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(AnsibleParserError, match="no OpenStack cloud given"):
        parse(tmp_path, openstack_double, cloud=None)
