"""Run plays on this machine through ansible-playbook and read their results (JSON callback).

For role tests that need no hosts: the inventory's hosts use the local connection, and the facts
the roles read come from a fact cache, so nothing is gathered from this machine.
"""

import json
import os
import shutil
import subprocess
import sys

import yaml


def run_plays(work, plays, inventory, facts=None, check=False):
    """Write ``plays``/``inventory`` (and ``facts``: {host: {fact: value}}) under ``work``, run them.

    Returns ``(returncode, parsed JSON output or None, stdout + stderr)``.
    """
    (work / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (work / "play.yml").write_text(yaml.safe_dump(plays, sort_keys=False))
    (work / "facts").mkdir(exist_ok=True)
    for host, host_facts in (facts or {}).items():
        (work / "facts" / host).write_text(json.dumps(host_facts))
    env = dict(os.environ, ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_DEPRECATION_WARNINGS="0",
               ANSIBLE_CACHE_PLUGIN="ansible.builtin.jsonfile", ANSIBLE_CACHE_PLUGIN_CONNECTION=str(work / "facts"))
    argv = [shutil.which("ansible-playbook") or os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            "-i", str(work / "inventory.yml"), str(work / "play.yml")] + (["--check"] if check else [])
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=str(work), check=False)
    try:
        parsed = json.loads(proc.stdout)
    except ValueError:
        parsed = None
    return proc.returncode, parsed, proc.stdout[-4000:] + proc.stderr[-2000:]


def task_results(parsed, host):
    """``{task name: result}`` of ``host`` over every play (handlers included, names without the
    ``role : `` prefix); a later task of the same name wins."""
    found = {}
    for play in parsed["plays"]:
        for task in play["tasks"]:
            if host in task["hosts"]:
                found[task["task"]["name"].split(" : ", 1)[-1]] = task["hosts"][host]
    return found


def tasks_that_ran(results, names):
    """The names among ``names`` (task names in ``task_results``) whose task ran, in order."""
    return [name for name in names if results[name].get("skip_reason") is None and not results[name].get("skipped")]


def assert_written_once_then_left_alone(run, writes):
    """``run()`` (a converge, returning ``task_results``) twice: the first runs and changes every
    task of ``writes``, the second finds every file as wanted, skips them and changes nothing."""
    first = run()
    assert tasks_that_ran(first, writes) == writes
    assert all(first[name].get("changed") for name in writes)
    second = run()
    assert tasks_that_ran(second, writes) == []
    assert not any(result.get("changed") for result in second.values())


def run_tasks_in_scratch_dirs(work, host, tasks, play_vars, dirs, facts):
    """One play of ``tasks`` on ``host`` (local connection), after making the scratch directories
    ``dirs`` under ``work``; it must succeed. Returns ``task_results`` of ``host``."""
    made = [{"ansible.builtin.file": {"path": str(work / d), "state": "directory", "mode": "0755"}} for d in dirs]
    play = {"name": "role tasks", "hosts": host, "gather_facts": False, "vars": play_vars, "tasks": made + tasks}
    inventory = {"all": {"hosts": {host: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}
    returncode, parsed, output = run_plays(work, [play], inventory, {host: facts})
    assert returncode == 0, output
    return task_results(parsed, host)
