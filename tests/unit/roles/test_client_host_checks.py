"""client role: the checks it makes on the host before changing anything (tasks/host_checks.yml).

- client_mount_mode auto picks autofs where the kernel has it (``autofs`` in /proc/filesystems) and
  static mounts where it has not, and says so in one line; explicit autofs on a kernel without
  autofs fails before the install, naming the variable and what to set.

Each case is a host of one play (local connection); the files the role reads from /proc are
given through its internal path variable ``__client_proc_filesystems``, pointed at a file written
by the test. Only reading tasks (facts, the file above), and the configure tasks into a scratch
directory, run on this machine.
"""

import sys

import pytest

from tests.support.local_plays import run_plays, task_results

CATALOGUE = [
    {"name": "sw.example.org", "stratum0": "s0.example.org"},
    {"name": "data.example.net", "stratum0": "s0.example.net"},
]
PLAY_VARS = {"client_proxies": [["proxy.example.org"]], "client_public_keys_source": "none"}

FILESYSTEMS = "nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\n\text4\nnodev\toverlay\nnodev\tfuse\n"
FILESYSTEMS_AUTOFS = FILESYSTEMS + "nodev\tautofs\n"

# host: (host vars, files: fs = /proc/filesystems)
CASES = {
    "auto_without_autofs": ({}, {"fs": FILESYSTEMS}),
    "auto_with_autofs": ({}, {"fs": FILESYSTEMS_AUTOFS}),
    "auto_unbooted": ({"__common_is_booted": False}, {"fs": FILESYSTEMS_AUTOFS}),
    "autofs_without_autofs": ({"client_mount_mode": "autofs"}, {"fs": FILESYSTEMS}),
    "autofs_unbooted": ({"client_mount_mode": "autofs", "__common_is_booted": False},
                        {"fs": FILESYSTEMS}),
    "autofs_with_autofs": ({"client_mount_mode": "autofs"}, {"fs": FILESYSTEMS_AUTOFS}),
    "static_with_autofs": ({"client_mount_mode": "static"}, {"fs": FILESYSTEMS_AUTOFS}),
}
EARLY = "early_autofs_without_autofs"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("client-host-checks")
    hosts = {}
    for name, (host_vars, files) in list(CASES.items()) + [(EARLY, CASES["autofs_without_autofs"])]:
        base = work / name
        base.mkdir()
        (base / "filesystems").write_text(files["fs"])
        hosts[name] = dict({"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                            "__common_is_booted": True, "cvmfs_repositories": CATALOGUE,
                            "test_base": str(base)},
                           **host_vars)
    seams = {"__client_proc_filesystems": "{{ test_base }}/filesystems",
             "__client_config_dir": "{{ test_base }}/etc-cvmfs", "__client_keys_dir": "{{ test_base }}/etc-cvmfs/keys"}

    def include(tasks_from):
        return {"ansible.builtin.include_role": {"name": "sharedsw.cvmfs.client", "tasks_from": tasks_from},
                "vars": seams}
    plays = [
        # the facts the role reads (distribution, OS family), from this machine
        {"name": "facts", "hosts": "all", "gather_facts": False, "tasks": [
            {"ansible.builtin.setup": {"gather_subset": ["!all", "!min", "distribution", "os_family"]}}]},
        {"name": "checks", "hosts": ":".join(CASES), "gather_facts": False, "vars": PLAY_VARS, "tasks": [
            include("preflight"), include("host_checks"),
            # the files as the role writes them; not booted from here on, so no cvmfs_config reload
            {"name": "No cvmfs_config here", "ansible.builtin.set_fact": {"__common_is_booted": False}},
            include("configure")]},
        # the whole role, in check mode: the refusal comes before anything is installed
        {"name": "early", "hosts": EARLY, "gather_facts": False, "check_mode": True, "vars": PLAY_VARS, "tasks": [
            {"ansible.builtin.include_role": {"name": "sharedsw.cvmfs.client"}, "vars": seams}]},
    ]
    inventory = {"all": {"hosts": hosts}}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANSIBLE_FORKS", str(len(hosts)))  # one process per case
        _, parsed, output = run_plays(work, plays, inventory)
    assert parsed is not None, output
    return {"results": {host: task_results(parsed, host) for host in hosts}, "work": work, "output": output}


def _mounts(run, host):
    results = run["results"][host]
    assert "Mounts chosen" in results, "%s: no mounts chosen: %s" % (host, sorted(results))
    return results["Settle the mounts"]["ansible_facts"]["__client_mount_mode"], results["Mounts chosen"]["msg"]


def test_auto_picks_static_mounts_without_autofs(run):
    mode, message = _mounts(run, "auto_without_autofs")
    assert mode == "static"
    assert message == ("auto_without_autofs mounts /cvmfs with static mounts (/etc/fstab): client_mount_mode is auto "
                       "and the kernel has no autofs (not in %s/auto_without_autofs/filesystems)" % run["work"])


def test_auto_picks_autofs_where_the_kernel_has_it(run):
    mode, message = _mounts(run, "auto_with_autofs")
    assert mode == "autofs"
    assert "mounts /cvmfs with autofs: client_mount_mode is auto and the kernel has autofs" in message
    assert "\n" not in message


def test_auto_on_an_unbooted_host_is_static(run):
    mode, message = _mounts(run, "auto_unbooted")
    assert mode == "static"
    assert "host is not booted (image build): its kernel is unknown" in message


def test_explicit_modes_are_kept(run):
    assert _mounts(run, "static_with_autofs") == (
        "static", "static_with_autofs mounts /cvmfs with static mounts (/etc/fstab): client_mount_mode is static, "
                  "asked explicitly")
    assert _mounts(run, "autofs_with_autofs")[0] == "autofs"
    # an image build: the build machine's kernel says nothing about the host's
    mode, message = _mounts(run, "autofs_unbooted")
    assert mode == "autofs" and "its kernel is not checked" in message


def test_explicit_autofs_without_autofs_fails(run):
    results = run["results"]["autofs_without_autofs"]
    refusal = results["Autofs mounts need a kernel with autofs"]
    assert refusal.get("failed"), refusal
    assert refusal["msg"].startswith(
        "client_mount_mode is autofs, but the kernel of autofs_without_autofs has no autofs")
    assert "Set client_mount_mode to static (mounts from /etc/fstab) or to auto" in refusal["msg"]
    assert "Mounts chosen" not in results


def test_explicit_autofs_without_autofs_fails_before_the_install(run):
    results = run["results"][EARLY]
    assert results["Autofs mounts need a kernel with autofs"].get("failed"), run["output"]
    assert "Check the settings (catalogue, proxies, extra options, domains)" in results  # the preflight ran
    assert not [name for name in results if "packages" in name.lower() or name.startswith("Install")], sorted(results)
