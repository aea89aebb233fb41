"""common role: what runs on a host where nothing changed. Metrics turned off cost one skipped task
when the main entry point's read found no timer (and the removal still runs when one is there or
nothing was read); the Apache entry point checks the configuration (apachectl -t) and starts
Apache only when something changed or Apache is not enabled and running, as one read tells. Run
for real on scratch directories (systemd not booted: no unit is started)."""

import os

from tests.support.local_plays import run_tasks_in_scratch_dirs, tasks_that_ran

from .test_squid_config import FACTS

METRICS_OFF = ["Metrics timer on, or what is left of it removed", "Metrics timer left from before (metrics off, the timer not read before)",
               "Remove the units and the file of the metrics"]


def metrics_off(work, seen=None):
    settings = {"common_metrics_enabled": False, "common_metrics_kind": "stratum1", "__common_is_booted": False,
                "common_systemd_dir": str(work / "systemd"), "common_metrics_dir": str(work / "prom")}
    if seen is not None:   # as the main entry point's read left it
        settings["__common_metrics_timers_seen"] = {str(work / "systemd" / "sharedsw-cvmfs-metrics-stratum1.timer"): seen}
    task = {"name": "metrics", "ansible.builtin.include_role": {"name": "sharedsw.cvmfs.common", "tasks_from": "metrics"},
            "vars": settings}
    results = run_tasks_in_scratch_dirs(work, "h", [task], {}, ["systemd", "prom"], FACTS)
    ran = tasks_that_ran(results, [name for name in results if name != "metrics" and not name.startswith(("ansible.builtin.", "Validating arguments"))])
    assert set(ran) <= set(METRICS_OFF), ran
    return [name for name in METRICS_OFF if name in ran]


def test_metrics_off_and_no_timer_read_cost_one_skipped_task(tmp_path):
    assert metrics_off(tmp_path, seen="absent") == []


def test_metrics_off_with_a_timer_read_remove_it_without_a_stat(tmp_path):
    timer = tmp_path / "systemd" / "sharedsw-cvmfs-metrics-stratum1.timer"
    timer.parent.mkdir()
    timer.write_text("[Timer]\n")
    assert metrics_off(tmp_path, seen="644 root root 0123") == [METRICS_OFF[0], METRICS_OFF[2]]
    assert not timer.exists()


def test_metrics_off_without_a_read_look_themselves(tmp_path):
    timer = tmp_path / "systemd" / "sharedsw-cvmfs-metrics-stratum1.timer"
    timer.parent.mkdir()
    timer.write_text("[Timer]\n")
    assert metrics_off(tmp_path) == METRICS_OFF
    assert not timer.exists()
    assert metrics_off(tmp_path) == METRICS_OFF[:2]   # gone: looked, nothing removed


CHECK, START = "Check the Apache configuration before it is used", "Apache runs"


def apache(work, unit_state, booted):
    """apache.yml with a fake apachectl (logs its calls) and the unit's state as the read gives it."""
    ctl = work / "apachectl"
    ctl.write_text(f"#!/bin/sh\necho \"$@\" >> {work / 'ctl.log'}\n[ \"$1\" = -M ] && echo ' alias_module (shared)'\nexit 0\n")
    os.chmod(ctl, 0o755)
    settings = {"common_apache_ctl": str(ctl), "common_apache_conf_dir": str(work / "conf-available"),
                "common_apache_conf_enabled_dir": str(work / "conf-enabled"), "common_apache_repositories": ["a.example.org"],
                "common_apache_modules": ["alias"], "__common_is_booted": booted,
                "__common_https_key_file": str(work / "https.key"),
                "__common_unit_states_script": f"echo '{unit_state}'"}
    task = {"name": "apache", "ansible.builtin.include_role": {"name": "sharedsw.cvmfs.common", "tasks_from": "apache"},
            "vars": settings}
    results = run_tasks_in_scratch_dirs(work, "h", [task], {}, ["conf-available", "conf-enabled"], FACTS)
    return tasks_that_ran(results, [CHECK, START])


def test_apache_checked_only_when_its_configuration_changed_or_it_does_not_run(tmp_path):
    assert apache(tmp_path, "enabled active", booted=False) == [CHECK]   # files written: checked
    assert apache(tmp_path, "enabled active", booted=True) == []          # as wanted and running
    assert apache(tmp_path, "enabled inactive", booted=False) == [CHECK]  # not running: checked first
    (tmp_path / "conf-available" / "cvmfs.a.example.org.conf").write_text("# drift\n")
    assert apache(tmp_path, "enabled active", booted=False) == [CHECK]    # rewritten: checked
    assert (tmp_path / "ctl.log").read_text().split("\n").count("-t") == 3
