"""client role: render the client configuration through Ansible (the role's own preflight, vars and
templates) and check default.local, config.d, domain.d, keys, the proxy list and the cloud-init
user-data. No CernVM-FS: one ansible-playbook run renders every case through the entry point
cloud_init (block/rescue records refusals); a second playbook runs the role's configure tasks
into a temporary /etc/cvmfs twice and checks the files and that the second run changes nothing."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.support.cvmfs_keyset import keyset
from tests.support.local_plays import task_results, tasks_that_ran

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

INVENTORY = {
    "all": {
        "hosts": {"vm": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}},
        "children": {
            "squids_a": {"hosts": {"sq1.a.example.org": {}, "sq2.a.example.org": {"squid_http_port": 8128}}},
            "squids_central": {"hosts": {"sq.central.example.org": {}}},
            "stratum1": {"hosts": {"s1a.example.org": {}, "s1b.example.net": {}}},
            "stratum1_extra": {"hosts": {"s1b.example.net": {}, "s1c.example.com": {}}},
        },
    }
}

CATALOGUE = [
    {"name": "sw.example.org", "stratum0": "s0.example.org",
     "client": {"options": {"CVMFS_MAX_TTL": 10, "CVMFS_FOLLOW_REDIRECTS": True}}},
    {"name": "data.example.org", "stratum0": "s0.example.org", "replicate": ["stratum1", "stratum1_extra"]},
    {"name": "tools.example.net", "stratum0": "s0b.example.net", "replicate": []},
    {"name": "private.example.org", "stratum0": "s0.example.org", "client": {"mount": False}},
]


def _base(keydir):
    return {
        "cvmfs_repositories": CATALOGUE,
        "client_proxies": ["squids_a", "squids_central"],
        "client_public_keys_source": "files",
        "client_public_key_files": {r["name"]: str(keydir / (r["name"] + ".pub")) for r in CATALOGUE},
    }


CASES = {
    "site": {"client_default_options": {"CVMFS_SEND_INFO_HEADER": True, "CVMFS_PAC_URLS": "http://wpad/it's.dat"},
             "client_domains": {"example.org": {"CVMFS_USE_GEOAPI": True}}, "client_quota_limit_mb": 20000},
    "direct_static": {"client_proxies": [["proxy.example.org:3129"]], "client_proxy_direct": True,
                      "client_mount_mode": "static", "client_probe": False,
                      "client_stratum1_urls": ["http://s1.example.org:8000/cvmfs/@fqrn@"]},
    "only_direct": {"client_proxies": [], "client_proxy_direct": True, "client_public_keys_source": "none"},
    "autofs": {"client_mount_mode": "autofs"},
}

REFUSED = {
    "no_proxy": ({"client_proxies": []}, "no proxies"),
    "direct_literal": ({"client_proxies": [["DIRECT"]]}, "DIRECT is not accepted"),
    "reserved_option": ({"client_default_options": {"CVMFS_HTTP_PROXY": "DIRECT"}}, "may not set"),
    "config_repo": ({"client_default_options": {"CVMFS_CONFIG_REPOSITORY": "cfg.example.org"}}, "may not set"),
    "not_cvmfs_option": ({"client_default_options": {"PATH": "/tmp"}}, "CVMFS_\\* names only"),
    "bad_domain": ({"client_domains": {"not a domain": {}}}, "DNS domains"),
    "bad_key": ({"client_public_key_files": {r["name"]: "/etc/hostname" for r in CATALOGUE}}, "not a PEM public key"),
    "bad_catalogue": ({"cvmfs_repositories": [{"name": "sw.example.org"}]}, "stratum0"),
}


# The facts the role reads (distribution, OS family), gathered once from this machine; systemd is
# treated as not running (-e __common_is_booted=false), so no service is touched.
FACTS = {"name": "facts", "hosts": "vm", "gather_facts": False, "tasks": [
    {"ansible.builtin.setup": {"gather_subset": ["!all", "!min", "distribution", "os_family"]}}]}


def _run(work, plays, name):
    (work / (name + ".yml")).write_text(yaml.safe_dump(plays, sort_keys=False))
    env = dict(os.environ, ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_DEPRECATION_WARNINGS="0")
    proc = subprocess.run(
        [shutil.which("ansible-playbook") or os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
         "-i", str(work / "inventory.yml"), "-e", '{"__common_is_booted": false}', str(work / (name + ".yml"))],
        capture_output=True, text=True, env=env, cwd=str(work), check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("client-render")
    (work / "inventory.yml").write_text(yaml.safe_dump(INVENTORY))
    (work / "keys").mkdir()
    for index, repo in enumerate(CATALOGUE):
        (work / "keys" / (repo["name"] + ".pub")).write_text(keyset(repo["name"], index)["pub"])
    return work


def render_cases(work, cases):
    """Render ``{case: play vars}`` through the entry point cloud_init, in one ansible-playbook run:
    ``{case: {"user_data": text} or {"failed": message}}``."""
    def play(name, case_vars):
        def record(value):
            return {"ansible.builtin.set_fact": {
                "client_results": "{{ client_results | default({}) | combine({%r: %s}) }}" % (name, value)}}
        return {"name": name, "hosts": "vm", "gather_facts": False, "vars": case_vars,
                "tasks": [{"block": [
                    {"ansible.builtin.include_role": {"name": "sharedsw.cvmfs.client", "tasks_from": "cloud_init"}},
                    record("{'user_data': client_cloud_init_user_data}")],
                    "rescue": [record("{'failed': ansible_failed_result.msg}")]}]}
    plays = [FACTS] + [play(name, case_vars) for name, case_vars in cases.items()]
    plays.append({"name": "results", "hosts": "vm", "gather_facts": False,
                  "tasks": [{"ansible.builtin.debug": {"var": "client_results"}}]})
    out = _run(work, plays, "render")
    return out["plays"][-1]["tasks"][0]["hosts"]["vm"]["client_results"]


# the configure tasks that write; each runs only for what the one read finds other than wanted
CONFIG_WRITES = ["Configuration directories", "Public keys of the repositories", "/etc/cvmfs/default.local",
                 "Per-domain settings (domain.d)", "Per-repository settings (config.d)",
                 "Public keys of the external entries", "No configuration repository of ours"]


def _configure_play(etc, case_vars):
    role_vars = {"__client_config_dir": str(etc), "__client_keys_dir": str(etc / "keys")}
    return [FACTS, {"name": "configure", "hosts": "vm", "gather_facts": False, "vars": case_vars,
                    "tasks": [{"ansible.builtin.include_role": {"name": "sharedsw.cvmfs.client", "tasks_from": name},
                               "vars": role_vars} for name in ("preflight", "configure")]}]


def _writes_that_ran(out):
    results = task_results(out, "vm")
    return tasks_that_ran(results, [name for name in CONFIG_WRITES if name in results])


def configure_twice(work, case_vars, etc_name="etc-cvmfs"):
    """Run the configure tasks twice into ``work``/etc-cvmfs; the second run must change nothing,
    and run no write task. Returns the files written, ``{path as on a host: content}``."""
    etc = work / etc_name
    play = _configure_play(etc, case_vars)
    first = _run(work, play, "configure")
    assert first["stats"]["vm"]["changed"] > 0
    second = _run(work, play, "configure")
    assert second["stats"]["vm"]["changed"] == 0
    assert _writes_that_ran(second) == []
    assert oct((etc / "default.local").stat().st_mode & 0o777) == "0o644"
    return {str(p).replace(str(etc), "/etc/cvmfs"): p.read_text().replace(str(etc), "/etc/cvmfs")
            for p in etc.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def rendered(work):
    """{case: {"user_data": text} or {"failed": message}}."""
    cases = dict(CASES, **{name: case[0] for name, case in REFUSED.items()})
    return render_cases(work, {name: dict(_base(work / "keys"), **case_vars) for name, case_vars in cases.items()})


def _user_data(rendered, name):
    result = rendered[name]
    assert "user_data" in result, "case %s was not rendered: %s" % (name, result.get("failed"))
    text = result["user_data"]
    assert text.startswith("#cloud-config\n")
    return yaml.safe_load(text)


def _files(data):
    return {f["path"]: f["content"] for f in data["write_files"]}


def _settings(text):
    """Values of a cvmfs config file as /bin/sh reads it."""
    script = text + "\nset\n"
    proc = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=True, env={})
    values = {}
    for line in proc.stdout.splitlines():
        if line.startswith("CVMFS_"):
            name, value = line.split("=", 1)
            values[name] = subprocess.run(["/bin/sh", "-c", "printf %s " + value], capture_output=True,
                                          text=True, check=True).stdout
    return values


def test_site_default_local(rendered):
    files = _files(_user_data(rendered, "site"))
    values = _settings(files["/etc/cvmfs/default.local"])
    assert values["CVMFS_REPOSITORIES"] == "sw.example.org,data.example.org,tools.example.net"
    assert values["CVMFS_HTTP_PROXY"] == (
        "http://sq1.a.example.org:3128|http://sq2.a.example.org:8128;http://sq.central.example.org:3128")
    assert values["CVMFS_QUOTA_LIMIT"] == "20000"
    assert values["CVMFS_CACHE_BASE"] == "/var/lib/cvmfs"
    assert values["CVMFS_USE_GEOAPI"] == "no"
    assert values["CVMFS_SEND_INFO_HEADER"] == "yes"
    assert values["CVMFS_PAC_URLS"] == "http://wpad/it's.dat"
    assert "DIRECT" not in files["/etc/cvmfs/default.local"]


def test_site_repositories(rendered):
    files = _files(_user_data(rendered, "site"))
    assert "/etc/cvmfs/config.d/private.example.org.conf" not in files
    sw = _settings(files["/etc/cvmfs/config.d/sw.example.org.conf"])
    assert sw["CVMFS_SERVER_URL"] == "http://s1a.example.org/cvmfs/@fqrn@;http://s1b.example.net/cvmfs/@fqrn@"
    assert sw["CVMFS_PUBLIC_KEY"] == "/etc/cvmfs/keys/example.org/sw.example.org.pub"
    assert sw["CVMFS_MAX_TTL"] == "10" and sw["CVMFS_FOLLOW_REDIRECTS"] == "yes"
    data = _settings(files["/etc/cvmfs/config.d/data.example.org.conf"])
    assert data["CVMFS_SERVER_URL"].split(";") == [
        "http://%s/cvmfs/@fqrn@" % h for h in ("s1a.example.org", "s1b.example.net", "s1c.example.com")]
    # not replicated: read from the stratum-0
    tools = _settings(files["/etc/cvmfs/config.d/tools.example.net.conf"])
    assert tools["CVMFS_SERVER_URL"] == "http://s0b.example.net/cvmfs/tools.example.net"
    assert _settings(files["/etc/cvmfs/domain.d/example.org.conf"]) == {"CVMFS_USE_GEOAPI": "yes"}


def test_site_keys_and_commands(rendered, work):
    data = _user_data(rendered, "site")
    files = _files(data)
    key = files["/etc/cvmfs/keys/example.net/tools.example.net.pub"]
    assert key == (work / "keys" / "tools.example.net.pub").read_text().strip() + "\n"
    assert "PRIVATE" not in rendered["site"]["user_data"]
    assert all(f["permissions"] == "0644" and f["owner"] == "root:root" for f in data["write_files"])
    # client_mount_mode auto (the default): the VM's kernel decides at boot (test_auto_decides_at_boot)
    assert data["packages"] == ["cvmfs", "cvmfs-fuse3", "cvmfs-config-default", "attr", "autofs"]
    assert len(data["runcmd"]) == 2 and data["runcmd"][0].startswith("if grep -qw autofs /proc/filesystems; then")
    assert data["runcmd"][1] == ["cvmfs_config", "probe"]


def test_autofs(rendered):
    data = _user_data(rendered, "autofs")
    assert data["packages"] == ["cvmfs", "cvmfs-fuse3", "cvmfs-config-default", "attr", "autofs"]
    assert data["runcmd"] == [["cvmfs_config", "setup"], ["cvmfs_config", "probe"]]


@pytest.mark.parametrize("kernel_autofs", [True, False])
def test_auto_decides_at_boot(rendered, tmp_path, kernel_autofs):
    """The boot command of auto, run by /bin/sh against a stand-in /proc/filesystems, with
    cvmfs_config, mkdir and mount replaced by stubs that record their arguments."""
    command = _user_data(rendered, "site")["runcmd"][0]
    (tmp_path / "filesystems").write_text("nodev\tsysfs\n\text4\n" + ("nodev\tautofs\n" if kernel_autofs else ""))
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name in ("cvmfs_config", "mkdir", "mount"):
        (stubs / name).write_text('#!/bin/sh\necho "%s $*" >> %s\n' % (name, tmp_path / "calls"))
        (stubs / name).chmod(0o755)
    subprocess.run(["/bin/sh", "-c", command.replace("/proc/filesystems", str(tmp_path / "filesystems"))],
                   env={"PATH": "%s:/usr/bin:/bin" % stubs}, check=True)
    calls = (tmp_path / "calls").read_text().splitlines()
    if kernel_autofs:
        assert calls == ["cvmfs_config setup"]
    else:
        assert calls == ["cvmfs_config setup noautofs"] + [
            line for repo in ("sw.example.org", "data.example.org", "tools.example.net")
            for line in ("mkdir -p /cvmfs/" + repo, "mount -t cvmfs %s /cvmfs/%s" % (repo, repo))]


def test_direct_static(rendered):
    data = _user_data(rendered, "direct_static")
    values = _settings(_files(data)["/etc/cvmfs/default.local"])
    assert values["CVMFS_HTTP_PROXY"] == "http://proxy.example.org:3129;DIRECT"
    sw = _settings(_files(data)["/etc/cvmfs/config.d/sw.example.org.conf"])
    assert sw["CVMFS_SERVER_URL"] == "http://s1.example.org:8000/cvmfs/@fqrn@"
    assert data["runcmd"][0] == ["cvmfs_config", "setup", "noautofs"]
    assert "mount -t cvmfs sw.example.org /cvmfs/sw.example.org" in data["runcmd"][1]
    assert ["cvmfs_config", "probe"] not in data["runcmd"]
    assert "autofs" not in data["packages"]


def test_only_direct_without_keys(rendered):
    files = _files(_user_data(rendered, "only_direct"))
    assert _settings(files["/etc/cvmfs/default.local"])["CVMFS_HTTP_PROXY"] == "DIRECT"
    assert not [p for p in files if p.startswith("/etc/cvmfs/keys/")]
    assert "CVMFS_PUBLIC_KEY" not in _settings(files["/etc/cvmfs/config.d/sw.example.org.conf"])


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused(rendered, name):
    assert "failed" in rendered[name], "case %s was rendered" % name
    assert __import__("re").search(REFUSED[name][1], rendered[name]["failed"]), rendered[name]["failed"]


def test_configure_tasks_write_the_same_files_idempotently(work, rendered):
    written = configure_twice(work, dict(_base(work / "keys"), **CASES["site"]))
    # the same files with the same content as the cloud-init user-data (paths moved to the test's directory)
    assert written == _files(_user_data(rendered, "site"))


def test_configure_tasks_write_again_only_what_drifted(work):
    case_vars = dict(_base(work / "keys"), **CASES["site"])
    configure_twice(work, case_vars, "etc-drift")
    etc = work / "etc-drift"
    (etc / "default.local").write_text("# edited by hand\n")
    (etc / "config.d" / "sw.example.org.conf").chmod(0o600)
    again = _run(work, _configure_play(etc, case_vars), "configure")
    assert _writes_that_ran(again) == ["/etc/cvmfs/default.local", "Per-repository settings (config.d)"]
    assert (etc / "default.local").read_text() != "# edited by hand\n"
    assert (etc / "config.d" / "sw.example.org.conf").stat().st_mode & 0o777 == 0o644
