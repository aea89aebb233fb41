"""client role: the checks it makes on the host before changing anything (tasks/host_checks.yml).

- client_mount_mode auto picks autofs where the kernel has it (``autofs`` in /proc/filesystems) and
  static mounts where it has not, and says so in one line; explicit autofs on a kernel without
  autofs fails before the install, naming the variable and what to set.
- CVMFS_NFILES: where CernVM-FS's default (131072) is above the hard limit of open files (the lower
  of systemd's, /proc/1/limits, and the session's, /proc/self/limits), default.local gets the
  limit and a warning is printed; a CVMFS_NFILES set above the limit fails, saying what to set.

Each case is a host of one play (local connection); the files the role reads from /proc are
given through its internal path variables (``__client_proc_filesystems``, ``__client_limits_files``),
pointed at files written by the test. Only reading tasks (facts, the files above), and the
configure tasks into a scratch directory, run on this machine.
"""

import copy
import sys

import pytest

from tests.support.local_plays import run_plays, task_results

from .test_client_config import _settings

CATALOGUE = [
    {"name": "sw.example.org", "stratum0": "s0.example.org"},
    {"name": "data.example.net", "stratum0": "s0.example.net"},
]
PLAY_VARS = {"client_proxies": [["proxy.example.org"]], "client_public_keys_source": "none"}

FILESYSTEMS = "nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\n\text4\nnodev\toverlay\nnodev\tfuse\n"
FILESYSTEMS_AUTOFS = FILESYSTEMS + "nodev\tautofs\n"
LIMITS = ("Limit                     Soft Limit           Hard Limit           Units     \n"
          "Max cpu time              unlimited            unlimited            seconds   \n"
          "Max processes             96367                96367                processes \n"
          "Max open files            {soft:<20} {hard:<20} files     \n"
          "Max locked memory         8388608              8388608              bytes     \n")


def _repo_option(name, value):
    catalogue = copy.deepcopy(CATALOGUE)
    catalogue[0]["client"] = {"options": {name: value}}
    return catalogue


# host: (host vars, files: fs = /proc/filesystems, limits = [PID 1's, the session's] hard limits)
BIG = 1048576
CASES = {
    "auto_without_autofs": ({}, {"fs": FILESYSTEMS, "limits": [BIG, BIG]}),
    "auto_with_autofs": ({}, {"fs": FILESYSTEMS_AUTOFS, "limits": [BIG, BIG]}),
    "auto_unbooted": ({"__common_is_booted": False}, {"fs": FILESYSTEMS_AUTOFS, "limits": [20000, 20000]}),
    "autofs_without_autofs": ({"client_mount_mode": "autofs"}, {"fs": FILESYSTEMS, "limits": [BIG, BIG]}),
    "autofs_unbooted": ({"client_mount_mode": "autofs", "__common_is_booted": False},
                        {"fs": FILESYSTEMS, "limits": [BIG, BIG]}),
    "autofs_with_autofs": ({"client_mount_mode": "autofs"}, {"fs": FILESYSTEMS_AUTOFS, "limits": [BIG, BIG]}),
    "static_with_autofs": ({"client_mount_mode": "static"}, {"fs": FILESYSTEMS_AUTOFS, "limits": [BIG, BIG]}),
    # systemd may have a higher limit than the session (this machine: 65536 and 20000): the lower one counts
    "nfiles_lowered": ({}, {"fs": FILESYSTEMS, "limits": [65536, 20000]}),
    "nfiles_set_below": ({"client_default_options": {"CVMFS_NFILES": 16384}},
                         {"fs": FILESYSTEMS, "limits": [20000, 20000]}),
    "nfiles_set_above": ({"client_default_options": {"CVMFS_NFILES": 65536}},
                         {"fs": FILESYSTEMS, "limits": [20000, 20000]}),
    "nfiles_domain_above": ({"client_domains": {"example.org": {"CVMFS_NFILES": "30000"}}},
                            {"fs": FILESYSTEMS, "limits": [20000, 20000]}),
    "nfiles_repository_above": ({"cvmfs_repositories": _repo_option("CVMFS_NFILES", 50000)},
                                {"fs": FILESYSTEMS, "limits": [20000, 20000]}),
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
        limit_files = []
        for index, hard in enumerate(files["limits"]):
            limit_files.append(str(base / ("limits%d" % index)))
            (base / ("limits%d" % index)).write_text(LIMITS.format(soft=min(hard, 1024), hard=hard))
        hosts[name] = dict({"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                            "__common_is_booted": True, "cvmfs_repositories": CATALOGUE,
                            "test_base": str(base), "test_limits": limit_files},
                           **host_vars)
    seams = {"__client_proc_filesystems": "{{ test_base }}/filesystems", "__client_limits_files": "{{ test_limits }}",
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
        _rc, parsed, output = run_plays(work, plays, inventory)
    assert parsed is not None, output
    return {"results": {host: task_results(parsed, host) for host in hosts}, "work": work, "output": output}


def _mounts(run, host):
    results = run["results"][host]
    assert "Mounts chosen" in results, "%s: no mounts chosen: %s" % (host, sorted(results))
    return results["Settle the mounts"]["ansible_facts"]["__client_mount_mode"], results["Mounts chosen"]["msg"]


def _default_local(run, host):
    return run["work"] / host / "etc-cvmfs" / "default.local"


def _nfiles(run, host):
    """CVMFS_NFILES of the host's default.local as /bin/sh (and so cvmfs2's configuration) reads it."""
    return _settings(_default_local(run, host).read_text()).get("CVMFS_NFILES")


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


def test_nfiles_lowered_to_the_lowest_hard_limit_with_a_warning(run):
    results = run["results"]["nfiles_lowered"]
    assert results["Settle CVMFS_NFILES"]["ansible_facts"]["__client_nofile_hard"] == 20000
    warning = results["CVMFS_NFILES lowered to the hard limit of open files"]["msg"]
    assert warning.startswith("WARNING: nfiles_lowered gets CVMFS_NFILES=20000 in default.local, below CernVM-FS's "
                              "default 131072")
    assert "CVMFS_NFILES (at most 20000) in client_default_options" in warning
    assert _nfiles(run, "nfiles_lowered") == "20000"


def test_nfiles_untouched_where_the_limit_is_high(run):
    for host in ("auto_without_autofs", "auto_with_autofs"):
        results = run["results"][host]
        assert results["Settle CVMFS_NFILES"]["ansible_facts"]["__client_nofile_hard"] == BIG
        assert results["CVMFS_NFILES lowered to the hard limit of open files"].get("skipped"), host
        assert "CVMFS_NFILES" not in _default_local(run, host).read_text()


def test_nfiles_not_checked_on_an_unbooted_host(run):
    results = run["results"]["auto_unbooted"]
    assert results["Settle CVMFS_NFILES"]["ansible_facts"]["__client_nofile_hard"] is None
    assert "CVMFS_NFILES" not in _default_local(run, "auto_unbooted").read_text()


def test_nfiles_set_below_the_limit_is_kept(run):
    results = run["results"]["nfiles_set_below"]
    assert not results["No CVMFS_NFILES above the hard limit of open files"].get("failed")
    assert results["CVMFS_NFILES lowered to the hard limit of open files"].get("skipped")
    assert _default_local(run, "nfiles_set_below").read_text().count("CVMFS_NFILES=") == 1
    assert _nfiles(run, "nfiles_set_below") == "16384"


@pytest.mark.parametrize("host, where, value", [
    ("nfiles_set_above", "client_default_options", "65536"),
    ("nfiles_domain_above", "client_domains of example.org", "30000"),
    ("nfiles_repository_above", "client.options of sw.example.org", "50000"),
])
def test_nfiles_set_above_the_limit_fails(run, host, where, value):
    result = run["results"][host]["No CVMFS_NFILES above the hard limit of open files"]
    assert result.get("failed"), result
    messages = [item["msg"] for item in result["results"] if item.get("failed")]
    assert len(messages) == 1, result
    assert messages[0].startswith("CVMFS_NFILES=%s (in %s) is above the hard limit of open files of %s (20000;"
                                  % (value, where, host)), messages[0]
    assert "Set CVMFS_NFILES in %s to at most 20000, or remove it" % where in messages[0]
    assert "Failed to set maximum number of open files" in messages[0]
    assert not _default_local(run, host).exists()
