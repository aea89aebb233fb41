"""common role: systemd is asked to change a unit only when its state differs from the wanted one.

- unit_states.yml reads, in one call on the host, whether each unit is enabled and active
  (``__common_unit_states``: {unit: "ENABLED ACTIVE"}, "unknown" for an empty answer).
- automounter.yml stops and disables autofs on a kernel without autofs only when it is not
  stopped and disabled already, and forgets a failed start.

systemctl is a fake on PATH (this machine's PID 1 is not systemd) that answers from
FAKE_SYSTEMCTL_STATES ("unit=ENABLED,ACTIVE;..."); the automounter tasks run in check mode, so a
task that acts shows as not skipped.
"""

import os
import stat
import sys

from tests.support.local_plays import run_plays, task_results

FAKE_SYSTEMCTL = r"""#!/bin/sh
# is-enabled|is-active UNIT, show UNIT, reset-failed UNIT; states from FAKE_SYSTEMCTL_STATES
cmd=$1; shift
[ "$cmd" = --no-pager ] && { cmd=$1; shift; }
unit=$(echo "$*" | tr ' ' '\n' | grep -v '^-' | tail -1)
entry=$(echo "$FAKE_SYSTEMCTL_STATES" | tr ';' '\n' | grep "^$unit=" | cut -d= -f2)
enabled=${entry%%,*}; active=${entry#*,}
case $cmd in
  is-enabled) [ -n "$entry" ] || exit 1; echo "$enabled"; [ "$enabled" = enabled ] ;;
  is-active) [ -n "$entry" ] || exit 3; echo "$active"; [ "$active" = active ] ;;
  show) printf 'Id=%s\nLoadState=loaded\nActiveState=%s\nUnitFileState=%s\n' "$unit" "$active" "$enabled" ;;
  reset-failed|daemon-reload) exit 0 ;;
  *) exit 1 ;;
esac
"""
INVENTORY = {"all": {"hosts": {"h": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}
FACTS = {"h": {"os_family": "Debian", "distribution": "Debian", "distribution_major_version": "12",
               "service_mgr": "systemd", "pkg_mgr": "apt"}}


def _fake_systemctl(tmp_path, monkeypatch, states):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "systemctl"
    fake.write_text(FAKE_SYSTEMCTL)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", "%s:%s" % (bin_dir, os.environ["PATH"]))
    monkeypatch.setenv("FAKE_SYSTEMCTL_STATES", ";".join("%s=%s,%s" % (u, e, a) for u, (e, a) in states.items()))


def _play(tasks_from, check=False, **role_vars):
    return [{"name": tasks_from, "hosts": "h", "gather_facts": False, "check_mode": check,
             "vars": {"__common_is_booted": True},
             "tasks": [{"ansible.builtin.include_role": {"name": "sharedsw.cvmfs.common", "tasks_from": tasks_from,
                                                         "public": True},
                        "vars": role_vars},   # task vars: above the role's own vars
                       {"name": "Show the states", "ansible.builtin.debug": {"var": "__common_unit_states"},
                        "when": "__common_unit_states is defined"}]}]


def test_unit_states_one_line_per_unit(tmp_path, monkeypatch):
    _fake_systemctl(tmp_path, monkeypatch, {"a.timer": ("enabled", "active"), "b.service": ("disabled", "inactive")})
    units = ["a.timer", "b.service", "gone.timer"]
    returncode, parsed, output = run_plays(tmp_path, _play("unit_states.yml", common_unit_names=units), INVENTORY, FACTS)
    assert returncode == 0, output
    states = task_results(parsed, "h")["Show the states"]["__common_unit_states"]
    assert states == {"a.timer": "enabled active", "b.service": "disabled inactive", "gone.timer": "unknown unknown"}


def _automounter(tmp_path, monkeypatch, kernel_has_autofs, enabled, active):
    _fake_systemctl(tmp_path, monkeypatch, {"autofs.service": (enabled, active)})
    filesystems = tmp_path / "filesystems"
    filesystems.write_text("nodev\tsysfs\nnodev\tproc\n" + ("nodev\tautofs\n" if kernel_has_autofs else ""))
    returncode, parsed, output = run_plays(
        tmp_path, _play("automounter.yml", check=True, __common_proc_filesystems=str(filesystems)), INVENTORY, FACTS)
    assert returncode == 0, output
    results = task_results(parsed, "h")
    return (results["No automounter on a kernel without autofs"], results["Forget the automounter's failed start"])


def test_automounter_left_alone_when_stopped_and_disabled(tmp_path, monkeypatch):
    stop, forget = _automounter(tmp_path, monkeypatch, False, "disabled", "inactive")
    assert stop.get("skipped") is True, stop
    assert forget.get("skipped") is True, forget


def test_automounter_failed_start_forgotten_without_asking_systemd_to_stop_it(tmp_path, monkeypatch):
    stop, forget = _automounter(tmp_path, monkeypatch, False, "disabled", "failed")
    assert stop.get("skipped") is True, stop
    assert forget.get("skip_reason") is None, forget   # check mode: "would have run"


def test_automounter_stopped_when_enabled(tmp_path, monkeypatch):
    stop, forget = _automounter(tmp_path, monkeypatch, False, "enabled", "active")
    assert not stop.get("skipped") and not stop.get("failed"), stop
    assert forget.get("skipped") is True, forget


def test_automounter_kept_where_the_kernel_has_autofs(tmp_path, monkeypatch):
    stop, forget = _automounter(tmp_path, monkeypatch, True, "enabled", "active")
    assert stop.get("skipped") is True, stop
    assert forget.get("skipped") is True, forget
