"""stratum1 role: the role reads its files in one call (tasks/file_states.yml) and its write tasks
run only for the files that differ from what the host holds: server.local, the authorities file
of HTTPS stratum-0s, and the snapshot listener's password and configuration are written once,
left alone the second time, and written again after they drift.

The tasks run for real (local connection, a host that is not booted) into a scratch tree.
"""

from tests.support.local_plays import assert_written_once_then_left_alone, run_tasks_in_scratch_dirs, tasks_that_ran

from .test_squid_config import FACTS

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
ROLE_VARS = {"stratum1_owner": "root", "stratum1_secure_logging": False, "stratum1_upstream_ca_bundle": CA,
             "stratum1_snapshot_events": True,
             "stratum1_snapshot_events_amqp": {"host": "mq.example.org", "username": "s1", "password": "s3cret"},
             "__common_is_booted": False, "__stratum1_names": []}
WRITES = ["GeoAPI settings of cvmfs_server", "Certificate authorities of HTTPS stratum-0s",
          "AMQP password of the snapshot listener", "Configuration of the snapshot listener"]


def _run(work):
    paths = {"__stratum1_etc_dir": str(work / "etc"), "__stratum1_config_dir": str(work / "config"),
             "__stratum1_keys_dir": str(work / "keys"), "__stratum1_log_dir": str(work / "log"),
             "__stratum1_logrotate_file": str(work / "logrotate"), "__stratum1_systemd_dir": str(work / "systemd")}
    tasks = [{"ansible.builtin.include_role": {"name": "sharedsw.cvmfs.stratum1", "tasks_from": name}, "vars": paths}
             for name in ("file_states.yml", "upstream_ca.yml", "geoapi.yml", "snapshot_events.yml")]
    return run_tasks_in_scratch_dirs(work, "s1", tasks, ROLE_VARS, ("etc", "config"), FACTS)


def _written(results):
    return tasks_that_ran(results, WRITES)


def test_files_written_once_then_left_alone(tmp_path):
    assert_written_once_then_left_alone(lambda: _run(tmp_path), WRITES)


def test_a_drifted_file_is_written_again_and_a_dropped_bundle_removed(tmp_path):
    _run(tmp_path)
    (tmp_path / "etc" / "server.local").write_text("# edited by hand\n")
    (tmp_path / "config" / "snapshot-events.amqp-password").chmod(0o644)
    again = _run(tmp_path)
    assert _written(again) == ["GeoAPI settings of cvmfs_server", "AMQP password of the snapshot listener"]
    assert (tmp_path / "etc" / "server.local").read_text() != "# edited by hand\n"
    assert (tmp_path / "config" / "snapshot-events.amqp-password").stat().st_mode & 0o777 == 0o600


def test_a_running_listener_with_nothing_changed_is_not_asked_to_start(tmp_path):
    _run(tmp_path)
    booted = {"ansible.builtin.set_fact": {
        "__common_is_booted": True,
        "__stratum1_units_now": {"sharedsw-cvmfs-snapshot-events.service": "enabled active"}}}
    paths = {"__stratum1_etc_dir": str(tmp_path / "etc"), "__stratum1_config_dir": str(tmp_path / "config"),
             "__stratum1_keys_dir": str(tmp_path / "keys"), "__stratum1_systemd_dir": str(tmp_path / "systemd")}
    events = {"ansible.builtin.include_role": {"name": "sharedsw.cvmfs.stratum1", "tasks_from": "snapshot_events.yml"},
              "vars": paths}
    # this machine has no such unit: a start asked of systemd would fail the play
    again = run_tasks_in_scratch_dirs(tmp_path, "s1", [_read_files(paths), booted, events], ROLE_VARS,
                                      ("etc", "config"), FACTS)
    assert tasks_that_ran(again, ["Start the snapshot listener (restarted when its configuration changed)"]) == []


def _read_files(paths):
    return {"ansible.builtin.include_role": {"name": "sharedsw.cvmfs.stratum1", "tasks_from": "file_states.yml"},
            "vars": paths}
