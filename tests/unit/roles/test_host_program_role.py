"""The common role's ``program`` entry point on this machine: it installs the host-program archive,
a second run changes nothing, and the package directory of earlier releases goes away."""

import os
import sys

from tests.support.local_plays import run_plays, task_results

TASK = "Host programs of the collection (sharedsw_cvmfs archive)"


def _play(path):
    return [{"name": "program", "hosts": "host", "gather_facts": False, "tasks": [
        {"ansible.builtin.include_role": {"name": "sharedsw.cvmfs.common", "tasks_from": "program.yml"},
         "vars": {"common_program_path": path}}]}]


def test_program_installs_the_archive_once(tmp_path):
    program_dir = tmp_path / "usr/local/lib/sharedsw-cvmfs"
    legacy = program_dir / "sharedsw_cvmfs"
    legacy.mkdir(parents=True)
    (legacy / "_common.py").write_text("# an earlier release\n")
    path = str(program_dir / "sharedsw-cvmfs.pyz")
    inventory = {"all": {"hosts": {"host": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}

    returncode, parsed, output = run_plays(tmp_path, _play(path), inventory)
    assert returncode == 0, output
    first = task_results(parsed, "host")[TASK]
    assert first["changed"] is True, first
    assert "_publish_job" in first["programs"] and "_common.py" in first["modules"], first
    with open(path, "rb") as handle:
        installed = handle.read()
    assert not legacy.exists()
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"

    returncode, parsed, output = run_plays(tmp_path, _play(path), inventory)
    assert returncode == 0, output
    results = task_results(parsed, "host")
    assert [name for name, result in results.items() if result.get("changed")] == [], results
    with open(path, "rb") as handle:
        assert handle.read() == installed
