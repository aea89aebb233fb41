"""publisher role: systemd is asked to enable or start a unit only when its state differs from the
wanted one, and systemd-analyze checks only the schedules the timer drop-ins do not hold yet.

- units.yml (with events.yml) reads the job timers, the consumers and the unit that mounts the
  repositories at boot in one call (common's unit_states), and lists in one call the timers and
  consumers enabled on the host; a timer or consumer stopped by hand is started again, and only it.
- schedules.yml (in preflight.yml) checks a schedule with systemd-analyze only when the job's timer drop-in does not
  hold it yet; a schedule systemd cannot parse still stops the run with systemd's error.

systemctl is a fake on PATH (this machine's PID 1 is not systemd) that answers from
FAKE_SYSTEMCTL_STATES ("unit=ENABLED,ACTIVE;...") and logs the units it is asked to act on;
systemd-analyze is the real one.
"""

import os

import pytest

from tests.support.local_plays import run_plays, run_tasks_in_scratch_dirs, task_results, tasks_that_ran

from .test_common_unit_states import FAKE_SYSTEMCTL, INVENTORY
from .test_publisher_job_files import CATALOGUE, REPOSITORY, ROLE_VARS
from .test_squid_config import FACTS

TIMER = "sharedsw-cvmfs-publish@%s.timer" % REPOSITORY
CONSUMER = "sharedsw-cvmfs-events@%s.service" % REPOSITORY
MOUNT = "sharedsw-cvmfs-mount.service"
ACTS = ["Enable and start the job timers", "Enable and start the consumers (restarted when their configuration or program changed)",
        "Enable the unit that mounts the repositories at boot"]
STOPS = ["Stop the job timers of repositories this host no longer publishes",
         "Stop the consumers of repositories this host no longer publishes on events"]
SCHEDULE_CHECK = "Check with systemd the job schedules that the timer drop-ins do not hold yet"
# the fake also acts (exit 0) and logs what it is asked to do
ACTING_SYSTEMCTL = FAKE_SYSTEMCTL.replace(
    "  reset-failed|daemon-reload) exit 0 ;;",
    "  reset-failed|daemon-reload) exit 0 ;;\n  enable|disable|start|stop|restart) echo \"$cmd $unit\" >> \"$FAKE_SYSTEMCTL_LOG\" ;;")


def _paths(work):
    return {"__publisher_config_dir": str(work / "etc"), "__publisher_systemd_dir": str(work / "systemd"),
            "__publisher_state_root": str(work / "state")}


def _units(work, monkeypatch, states, **role_vars):
    """file_states.yml, units.yml and (when main.yml would) events.yml with systemctl answering ``states``;
    returns the task results and what systemctl was asked to do."""
    (work / "bin").mkdir(exist_ok=True)
    fake = work / "bin" / "systemctl"
    fake.write_text(ACTING_SYSTEMCTL)
    fake.chmod(0o755)
    log = work / "systemctl.log"
    log.write_text("")
    monkeypatch.setenv("PATH", "%s:%s" % (work / "bin", os.environ["PATH"]))
    monkeypatch.setenv("FAKE_SYSTEMCTL_STATES", ";".join("%s=%s,%s" % (u, e, a) for u, (e, a) in states.items()))
    monkeypatch.setenv("FAKE_SYSTEMCTL_LOG", str(log))
    tasks = [{"ansible.builtin.include_role": {"name": "sharedsw.cvmfs.publisher", "tasks_from": name, "public": True},
              "vars": _paths(work)} for name in ("file_states.yml", "units.yml", "events.yml")]
    tasks[-1]["when"] = "publisher_events_enabled or __publisher_consumers_to_stop | length > 0"   # as main.yml
    play_vars = dict(ROLE_VARS, __common_is_booted=True, **role_vars)
    results = run_tasks_in_scratch_dirs(work, "pub", tasks, play_vars, ("etc", "systemd", "state"), FACTS)
    return results, log.read_text().split("\n")[:-1]


RUNNING = {TIMER: ("enabled", "active"), CONSUMER: ("enabled", "active"), MOUNT: ("enabled", "active")}


def test_units_left_alone_when_enabled_and_running(tmp_path, monkeypatch):
    _units(tmp_path, monkeypatch, RUNNING)   # writes the unit files
    results, asked = _units(tmp_path, monkeypatch, RUNNING)
    assert tasks_that_ran(results, ACTS) == []
    assert asked == []


def test_a_unit_stopped_by_hand_is_started_again_and_only_it(tmp_path, monkeypatch):
    _units(tmp_path, monkeypatch, RUNNING)
    results, asked = _units(tmp_path, monkeypatch, dict(RUNNING, **{TIMER: ("enabled", "inactive")}))
    assert tasks_that_ran(results, ACTS) == ["Enable and start the job timers"]
    assert asked == ["start " + TIMER]
    stopped = {CONSUMER: ("disabled", "active"), MOUNT: ("disabled", "inactive")}
    results, asked = _units(tmp_path, monkeypatch, dict(RUNNING, **stopped))
    assert tasks_that_ran(results, ACTS) == ACTS[1:]
    assert sorted(asked) == sorted(["enable " + CONSUMER, "enable " + MOUNT])


def test_timers_stay_stopped_when_the_job_is_off(tmp_path, monkeypatch):
    stopped = dict(RUNNING, **{TIMER: ("disabled", "inactive")})
    _units(tmp_path, monkeypatch, stopped, publisher_job_enabled=False)
    results, asked = _units(tmp_path, monkeypatch, stopped, publisher_job_enabled=False)
    assert tasks_that_ran(results, ACTS[:1]) == []
    results, asked = _units(tmp_path, monkeypatch, RUNNING, publisher_job_enabled=False)
    assert tasks_that_ran(results, ACTS[:1]) == ACTS[:1]
    assert "stop " + TIMER in asked


@pytest.mark.parametrize("events", [True, False])
def test_timers_and_consumers_of_repositories_that_left_are_stopped(tmp_path, monkeypatch, events):
    running = dict(RUNNING)
    for wants, unit in (("timers.target.wants", "sharedsw-cvmfs-publish@gone.example.org.timer"),
                        ("multi-user.target.wants", "sharedsw-cvmfs-events@gone.example.org.service")):
        (tmp_path / "systemd" / wants).mkdir(parents=True)
        os.symlink("/dev/null", str(tmp_path / "systemd" / wants / unit))
        running[unit] = ("enabled", "active")
    results, asked = _units(tmp_path, monkeypatch, running, publisher_events_enabled=events)
    assert tasks_that_ran(results, STOPS) == STOPS
    assert "stop sharedsw-cvmfs-publish@gone.example.org.timer" in asked
    assert "stop sharedsw-cvmfs-events@gone.example.org.service" in asked


def test_no_event_tasks_when_events_are_off_and_no_consumer_is_left(tmp_path, monkeypatch):
    results, _asked = _units(tmp_path, monkeypatch, RUNNING, publisher_events_enabled=False)
    assert "Unit of the notification consumers" not in results


def _schedules_then_job_files(work, schedule):
    catalogue = [dict(CATALOGUE[0], source=dict(CATALOGUE[0]["source"], schedule=schedule))]
    include = {"vars": _paths(work)}
    tasks = [dict(include, **{"ansible.builtin.include_role": {"name": "sharedsw.cvmfs.publisher", "tasks_from": name}})
             for name in ("file_states.yml", "schedules.yml")]
    job_files = {"ansible.builtin.include_role": {"name": "sharedsw.cvmfs.publisher", "tasks_from": "job_files.yml"},
                 "loop": "{{ publisher_repositories | sharedsw.cvmfs.publisher_jobs('pub') }}",
                 "loop_control": {"loop_var": "__publisher_job"}}
    tasks.append(dict(include, **job_files))
    play = {"name": "schedules", "hosts": "pub", "gather_facts": False,
            "vars": dict(ROLE_VARS, publisher_repositories=catalogue, ansible_facts={"service_mgr": "systemd"}),
            "tasks": tasks}
    for d in ("etc", "systemd", "state"):
        (work / d).mkdir(exist_ok=True)
    inventory = {"all": {"hosts": {"pub": INVENTORY["all"]["hosts"]["h"]}}}
    returncode, parsed, output = run_plays(work, [play], inventory, {"pub": FACTS})
    return returncode, (task_results(parsed, "pub") if parsed else {}), output


def test_schedule_checked_only_when_the_drop_in_does_not_hold_it(tmp_path):
    returncode, results, output = _schedules_then_job_files(tmp_path, "*:0/5")
    assert returncode == 0, output
    assert tasks_that_ran(results, [SCHEDULE_CHECK]) == [SCHEDULE_CHECK]
    returncode, results, output = _schedules_then_job_files(tmp_path, "*:0/5")
    assert returncode == 0, output
    assert tasks_that_ran(results, [SCHEDULE_CHECK]) == []
    returncode, results, output = _schedules_then_job_files(tmp_path, "hourly")
    assert returncode == 0, output
    assert tasks_that_ran(results, [SCHEDULE_CHECK]) == [SCHEDULE_CHECK]


def test_a_schedule_systemd_cannot_parse_stops_the_run(tmp_path):
    _schedules_then_job_files(tmp_path, "*:0/5")
    returncode, results, output = _schedules_then_job_files(tmp_path, "every full moon")
    assert returncode != 0
    failed = results[SCHEDULE_CHECK]
    assert "every full moon" in failed.get("stderr", "") + str(failed.get("results", "")), failed
    assert "Job configuration of " + REPOSITORY not in results   # stopped before the job's files
