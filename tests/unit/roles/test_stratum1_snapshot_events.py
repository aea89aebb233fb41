"""stratum1 role: the snapshot listener's configuration (tasks/snapshot_events.yml), as the role
writes it, is one the listener program accepts.

The role's tasks run for real (local connection, a host that is not booted, so no service is
started) into a scratch configuration directory; the program's own loader then reads what they
wrote, the password file included.
"""

import json
import stat
import sys

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _snapshot_listener

from tests.support.local_plays import run_plays

from .test_squid_config import FACTS

AMQP = {"host": "mq.example.org", "port": 5671, "tls": True, "username": "stratum1", "password": "s3cret-amqp"}


def _write_config(work, config_dir, **role_vars):
    play = {"name": "snapshot events", "hosts": "s1", "gather_facts": False,
            "vars": dict({"stratum1_snapshot_events": True, "stratum1_snapshot_events_amqp": AMQP,
                          "__common_is_booted": False}, **role_vars),
            "tasks": [{"ansible.builtin.include_role": {"name": "sharedsw.cvmfs.stratum1",
                                                        "tasks_from": "snapshot_events.yml"},
                       "vars": {"__stratum1_config_dir": str(config_dir)}}]}
    inventory = {"all": {"hosts": {"s1": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}
    return run_plays(work, [play], inventory, {"s1": FACTS})


def test_the_listener_reads_the_configuration_the_role_writes(tmp_path):
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    returncode, _parsed, output = _write_config(tmp_path, config_dir)
    assert returncode == 0, output
    assert "s3cret-amqp" not in (config_dir / "snapshot-events.json").read_text()
    password_file = config_dir / "snapshot-events.amqp-password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600

    config = _snapshot_listener.load_config(str(config_dir / "snapshot-events.json"))
    assert config["queue"] == "cvmfs-snapshot-s1" and config["exchange"] == "cvmfs-publications"
    assert config["amqp"]["password"] == "s3cret-amqp" and config["amqp"]["tls"] is True
    assert (config["etc_dir"], config["spool_dir"], config["storage_dir"]) == (
        "/etc/cvmfs", "/var/spool/cvmfs", "/srv/cvmfs")


def test_without_a_password_no_password_file_is_named(tmp_path):
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    returncode, _parsed, output = _write_config(
        tmp_path, config_dir, stratum1_snapshot_events_amqp={"host": "mq.example.org", "auth_method": "external"})
    assert returncode == 0, output
    written = json.loads((config_dir / "snapshot-events.json").read_text())
    assert written["amqp"]["password_file"] is None
    assert not (config_dir / "snapshot-events.amqp-password").exists()
