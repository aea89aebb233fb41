"""squid role on a host where systemd does not run (image builds, chroots; this machine too: PID 1
is not systemd): the handlers and the service tasks must not try to reload, stop or start squid,
and must still check the configuration and enable squid at boot.

The handlers run for real here (``squid -k parse`` of a small valid configuration); the service
tasks run in check mode, so nothing on this machine changes. Without the guards, systemd's
"unknown state" fails both plays.
"""

import os
import sys

import pytest

from tests.support.local_plays import run_plays, task_results

from .test_squid_config import FACTS

pytestmark = pytest.mark.skipif(os.path.isdir("/run/systemd/system"),
                                reason="systemd runs this machine: the unbooted case cannot be shown here")

ROLE_VARS = {"squid_allowed_client_networks": ["192.0.2.0/24"], "squid_stratum1_urls": ["http://s1.example.org/cvmfs/@fqrn@"]}


def _plays(config_file, cache_dir):
    preflight = {"ansible.builtin.include_role": {"name": "sharedsw.cvmfs.squid", "tasks_from": "preflight.yml",
                                                  "public": True}}
    return [
        {"name": "handlers", "hosts": "proxy", "gather_facts": False,
         "vars": dict(ROLE_VARS, __squid_config_file=config_file),
         "tasks": [
             preflight,
             {"name": "Say this host is not booted with systemd", "ansible.builtin.assert": {
                 "that": ["not __common_is_booted"]}},
             {"name": "A configuration change", "ansible.builtin.command": "true", "changed_when": True,
              "notify": "Squid configuration changed"},
         ]},
        {"name": "service", "hosts": "proxy", "gather_facts": False, "check_mode": True,
         "vars": dict(ROLE_VARS, squid_cache_dir_path=cache_dir, squid_cache_dir_size_mb=100),
         "tasks": [
             preflight,
             {"ansible.builtin.include_role": {"name": "sharedsw.cvmfs.squid", "tasks_from": "service.yml"}},
         ]},
    ]


def test_handlers_and_service_tasks_without_systemd(tmp_path):
    config = tmp_path / "squid.conf"
    config.write_text("http_port 127.0.0.1:3999\nhttp_access deny all\n")
    inventory = {"all": {"hosts": {"proxy": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}
    returncode, parsed, output = run_plays(tmp_path, _plays(str(config), str(tmp_path / "cache")), inventory,
                                           {"proxy": FACTS})
    assert returncode == 0, output
    results = task_results(parsed, "proxy")
    # the configuration is still checked; squid is not reloaded
    assert results["Check the squid configuration"].get("rc") == 0, results["Check the squid configuration"]
    assert results["Reload squid"].get("skipped") is True, results["Reload squid"]
    # a new disk cache: squid is not stopped or started, but it is enabled at boot
    assert results["Stop squid (squid -z refuses to run next to a running squid)"].get("skipped") is True
    assert results["Start squid"].get("skipped") is True
    assert not results["Enable squid at boot"].get("failed"), results["Enable squid at boot"]
