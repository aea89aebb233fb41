"""common role, apache entry point: without a certificate the HTTPS virtual host and its key go,
and only the files that are there cost a task on the host (they are known from the one read of
the Apache files, tasks/file_states.yml). Run for real on scratch directories."""

import sys

from tests.support.local_plays import run_plays, task_results

from .test_squid_config import FACTS


def _run(work, conf_dir, enabled_dir, key_file):
    settings = {"common_apache_conf_dir": str(conf_dir), "common_apache_conf_enabled_dir": str(enabled_dir),
                "__common_https_key_file": str(key_file), "common_apache_https_certificate": ""}
    read = {"name": "sharedsw.cvmfs.common", "tasks_from": "file_states", "public": True}
    https = {"name": "sharedsw.cvmfs.common", "tasks_from": "apache_https"}
    tasks = [
        {"name": "read", "ansible.builtin.include_role": read,
         "vars": dict(settings, common_file_paths="{{ __common_https_paths }}")},
        {"name": "https", "ansible.builtin.include_role": https, "vars": settings},
    ]
    play = {"name": "https", "hosts": "s0", "gather_facts": False, "tasks": tasks}
    inventory = {"all": {"hosts": {"s0": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}
    returncode, parsed, output = run_plays(work, [play], inventory, {"s0": FACTS})
    assert returncode == 0, output
    return task_results(parsed, "s0")["No HTTPS virtual host without a certificate"]


def test_without_a_certificate_only_the_https_files_there_are_removed(tmp_path):
    conf_dir, enabled_dir = tmp_path / "conf-available", tmp_path / "conf-enabled"
    conf_dir.mkdir()
    enabled_dir.mkdir()
    (conf_dir / "cvmfs+https.conf").write_text("<VirtualHost *:443>\n</VirtualHost>\n")
    (enabled_dir / "cvmfs+https.conf").symlink_to("../conf-available/cvmfs+https.conf")
    (conf_dir / "cvmfs.other.conf").write_text("# not ours to remove\n")
    key_file = tmp_path / "https.key"   # never written: no task for it

    first = _run(tmp_path, conf_dir, enabled_dir, key_file)
    assert sorted(r["item"] for r in first["results"]) == [str(conf_dir / "cvmfs+https.conf"),
                                                           str(enabled_dir / "cvmfs+https.conf")]
    assert first["changed"]
    assert sorted(p.name for p in tmp_path.rglob("*.conf")) == ["cvmfs.other.conf"]

    again = _run(tmp_path, conf_dir, enabled_dir, key_file)
    assert again.get("results", []) == [] and not again.get("changed")
