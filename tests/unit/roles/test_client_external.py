"""client role: external entries, domain entries and the configuration repository of the catalogue,
rendered through Ansible (the role's preflight, vars and templates; entry point cloud_init) and
checked as /bin/sh reads the files; the configure tasks write the same files, idempotently; the
config package follows client_config_package."""

import re

import pytest

from tests.support.cvmfs_keyset import keyset
from tests.unit.roles.test_client_config import INVENTORY, _files, _settings, _user_data, configure_twice, render_cases

CATALOGUE = [
    {"name": "sw.example.org", "stratum0": "s0.example.org"},
    {"name": "stack.community.org", "server_urls": ["http://s1.community.org/cvmfs/@fqrn@"],
     "url": "http://s0.community.org/cvmfs/stack.community.org", "replicate": ["stratum1"],
     "client": {"proxies": ["http://p1:3128|http://p2:3128", "http://p3:3128"]}},
    {"name": "*.grid.example.net", "server_urls": ["http://s1.grid.example.net/cvmfs/@fqrn@",
                                                   "http://s1b.grid.example.net/cvmfs/@fqrn@"],
     "client": {"repositories": ["a.grid.example.net"], "options": {"CVMFS_USE_GEOAPI": True}}},
    {"name": "config.community.org", "server_urls": ["http://s0.community.org/cvmfs/config.community.org"],
     "config_repository": True},
    {"name": "tools.community.org"},
]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("client-external")
    (work / "inventory.yml").write_text(__import__("yaml").safe_dump(INVENTORY))
    keys = work / "keys"
    (keys / "grid").mkdir(parents=True)
    for index, name in enumerate(["sw.example.org", "stack.community.org", "config.community.org"]):
        (keys / (name + ".pub")).write_text(keyset(name, index)["pub"])
    for index, name in enumerate(["grid-a", "grid-b"]):
        (keys / "grid" / (name + ".pub")).write_text(keyset(name, 10 + index)["pub"])
    (keys / "grid" / "README").write_text("not a key\n")
    return work


def _catalogue(work):
    entries = [dict(entry) for entry in CATALOGUE]
    entries[1]["public_key"] = {"file": str(work / "keys" / "stack.community.org.pub")}
    entries[2]["public_key"] = {"dir": str(work / "keys" / "grid")}
    entries[3]["public_key"] = {"pem": (work / "keys" / "config.community.org.pub").read_text()}
    return entries


def _vars(work, **extra):
    base = {"cvmfs_repositories": _catalogue(work), "client_proxies": [], "client_proxy_direct": True,
            "client_mount_mode": "static", "client_public_keys_source": "files",
            "client_public_key_files": {"sw.example.org": str(work / "keys" / "sw.example.org.pub")},
            "client_domains": {"grid.example.net": {"CVMFS_TIMEOUT": 9}}}
    base.update(extra)
    return base


CASES = {
    "external": {"client_config_package": "config-repository"},
    "default_package": {},
    "config_none_package": {"client_config_package": "cvmfs-config-none"},
}
REFUSED = {
    "config_repository_missing": ({"client_config_package": "config-repository"}, "no entry of the catalogue"),
    "bad_package": ({"client_config_package": "cvmfs-config-egi"}, "client_config_package"),
    "pem_file_not_a_key": (None, "without a PEM public key"),
}


@pytest.fixture(scope="module")
def rendered(work):
    no_config_repo = [e for e in _catalogue(work) if not e.get("config_repository") and e["name"] != "tools.community.org"]
    bad_key = _catalogue(work)
    bad_key[1]["public_key"] = {"file": "/etc/hostname"}
    cases = {name: _vars(work, **case_vars) for name, case_vars in CASES.items()}
    cases.update({"config_repository_missing": _vars(work, cvmfs_repositories=no_config_repo,
                                                     **REFUSED["config_repository_missing"][0]),
                  "bad_package": _vars(work, **REFUSED["bad_package"][0]),
                  "pem_file_not_a_key": _vars(work, cvmfs_repositories=bad_key)})
    return render_cases(work, cases)


def test_mounted_and_listed_the_config_repository_first(rendered):
    data = _user_data(rendered, "external")
    values = _settings(_files(data)["/etc/cvmfs/default.local"])
    assert values["CVMFS_REPOSITORIES"] == (
        "config.community.org,sw.example.org,stack.community.org,tools.community.org,a.grid.example.net")
    mounts = [line.split()[-1] for line in data["runcmd"] if isinstance(line, str)]
    assert mounts[0] == "/cvmfs/config.community.org" and "/cvmfs/a.grid.example.net" in mounts
    assert "CVMFS_CONFIG_REPOSITORY" not in values


def test_config_repository_in_default_d(rendered):
    files = _files(_user_data(rendered, "external"))
    path = "/etc/cvmfs/default.d/90-sharedsw-config-repository.conf"
    assert _settings(files[path]) == {"CVMFS_CONFIG_REPOSITORY": "config.community.org"}
    config = _settings(files["/etc/cvmfs/config.d/config.community.org.conf"])
    assert config["CVMFS_SERVER_URL"] == "http://s0.community.org/cvmfs/config.community.org"
    assert config["CVMFS_PUBLIC_KEY"] == "/etc/cvmfs/keys/community.org/config.community.org.pub"
    # configured by the config repository: listed and mounted, no local file
    assert "/etc/cvmfs/config.d/tools.community.org.conf" not in files


def test_external_repository_config_d(rendered, work):
    files = _files(_user_data(rendered, "external"))
    stack = _settings(files["/etc/cvmfs/config.d/stack.community.org.conf"])
    # replicated by our stratum-1s: they come first, then the entry's own URLs
    assert stack["CVMFS_SERVER_URL"].split(";") == [
        "http://s1a.example.org/cvmfs/@fqrn@", "http://s1b.example.net/cvmfs/@fqrn@",
        "http://s1.community.org/cvmfs/@fqrn@"]
    assert stack["CVMFS_PUBLIC_KEY"] == "/etc/cvmfs/keys/community.org/stack.community.org.pub"
    assert stack["CVMFS_HTTP_PROXY"] == "http://p1:3128|http://p2:3128;http://p3:3128"
    key = files["/etc/cvmfs/keys/community.org/stack.community.org.pub"]
    assert key == (work / "keys" / "stack.community.org.pub").read_text().strip() + "\n"
    own = _settings(files["/etc/cvmfs/config.d/sw.example.org.conf"])
    assert own["CVMFS_SERVER_URL"] == "http://s1a.example.org/cvmfs/@fqrn@;http://s1b.example.net/cvmfs/@fqrn@"
    assert "CVMFS_HTTP_PROXY" not in own


def test_domain_entry_domain_d_and_keys_dir(rendered, work):
    files = _files(_user_data(rendered, "external"))
    grid = _settings(files["/etc/cvmfs/domain.d/grid.example.net.conf"])
    assert grid == {"CVMFS_SERVER_URL": "http://s1.grid.example.net/cvmfs/@fqrn@;http://s1b.grid.example.net/cvmfs/@fqrn@",
                    "CVMFS_KEYS_DIR": "/etc/cvmfs/keys/grid.example.net", "CVMFS_USE_GEOAPI": "yes",
                    "CVMFS_TIMEOUT": "9"}
    keys = sorted(p for p in files if p.startswith("/etc/cvmfs/keys/grid.example.net/"))
    assert keys == ["/etc/cvmfs/keys/grid.example.net/grid-a.pub", "/etc/cvmfs/keys/grid.example.net/grid-b.pub"]
    assert files[keys[1]] == (work / "keys" / "grid" / "grid-b.pub").read_text().strip() + "\n"
    assert "/etc/cvmfs/config.d/a.grid.example.net.conf" not in files


@pytest.mark.parametrize("case, package", [("external", "cvmfs-config-none"), ("default_package", "cvmfs-config-default"),
                                           ("config_none_package", "cvmfs-config-none")])
def test_config_package(rendered, case, package):
    packages = _user_data(rendered, case)["packages"]
    assert [p for p in packages if p.startswith("cvmfs-config")] == [package]


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused(rendered, name):
    assert "failed" in rendered[name], "case %s was rendered" % name
    assert re.search(REFUSED[name][1], rendered[name]["failed"]), rendered[name]["failed"]


def test_configure_tasks_write_the_same_files_idempotently(work, rendered):
    assert configure_twice(work, _vars(work, **CASES["external"])) == _files(_user_data(rendered, "external"))
