"""Run one of the collection's playbooks with ansible-playbook against the OpenStack API TEST DOUBLE."""

import json
import os
import subprocess
import sys

import yaml

from tests.conftest import COLLECTIONS_ROOT, REPO_ROOT


def run_playbook(playbook, double, tmp_path, extra_vars, check=False, expect_failure=False):
    """``ansible-playbook playbooks/<playbook>`` with the cloud ``double``; returns the JSON callback's result
    with ``stats`` (localhost's counters), ``tasks`` and ``stdout``/``stderr``."""
    vars_file = tmp_path / ("vars-%d.yml" % len(os.listdir(str(tmp_path))))
    vars_file.write_text(yaml.safe_dump(extra_vars))
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=double.clouds_yaml_path, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT,
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    env.pop("OS_CLOUD", None)
    argv = ["ansible-playbook", os.path.join(REPO_ROOT, "playbooks", playbook), "-e", "@" + str(vars_file)]
    if check:
        argv.append("--check")
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    try:
        result = json.loads(proc.stdout[proc.stdout.index("{"):])
    except ValueError:
        raise AssertionError("no JSON from ansible-playbook (rc=%s):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))
    result["rc"] = proc.returncode
    result["stderr"] = proc.stderr
    if expect_failure != (proc.returncode != 0):
        raise AssertionError("ansible-playbook %s returned %s:\n%s\n%s"
                             % (playbook, proc.returncode, json.dumps(result, indent=1)[-6000:], proc.stderr[-3000:]))
    result["localhost"] = result["stats"].get("localhost", {})
    return result


def task_results(result, name_part):
    """Per-host results of the tasks whose name contains ``name_part``."""
    found = []
    for play in result["plays"]:
        for task in play["tasks"]:
            if name_part in task["task"]["name"]:
                found.append(task["hosts"]["localhost"])
    return found
