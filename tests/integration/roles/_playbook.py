"""Run a playbook on this machine (connection local) and read its recap.

The role tests include the roles' own task files, with the roles' internal path variables
(``__<role>_*_dir``) pointed at a scratch tree through extra vars, so everything the roles render
lands in a temporary directory. Nothing here needs CernVM-FS; where a step needs it (mkfs,
cvmfs_server itself) the test says what stands in for it.
"""

import json
import os
import re
import subprocess
import sys

RECAP = re.compile(r"^localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
HERE = os.path.dirname(os.path.abspath(__file__))


class PlaybookResult:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.output = proc.stdout + proc.stderr
        match = RECAP.search(proc.stdout)
        self.ok, self.changed, self.unreachable, self.failed = (int(g) for g in match.groups()) if match else (0, 0, 0, 0)

    def changed_tasks(self):
        """Names of the tasks that reported a change (for idempotence failures)."""
        return self._tasks_reporting(("changed:",))

    def ran_tasks(self):
        """Names of the tasks that ran on the host (reported ok or changed, not skipped), in order."""
        return self._tasks_reporting(("ok:", "changed:"))

    def _tasks_reporting(self, statuses):
        """Each task, once, whose result (or a loop item's) starts with one of ``statuses``."""
        found, task = [], None
        for line in self.output.splitlines():
            if line.startswith("TASK ["):
                task = line[6:].split("]")[0]
            elif line.startswith(statuses) and task:
                found.append(task)
                task = None
        return found

    def __repr__(self):
        return "<playbook rc=%s changed=%s failed=%s changed tasks: %s>\n%s" % (
            self.rc, self.changed, self.failed, self.changed_tasks(), self.output[-6000:])


def run_playbook(workdir, playbook, extra_vars, check=False, env=None):
    """Run ``playbook`` (a file name in this directory) with ``extra_vars``; return a PlaybookResult."""
    vars_file = os.path.join(str(workdir), "extra-vars.json")
    with open(vars_file, "w") as handle:
        json.dump(extra_vars, handle)
    child_env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_LOCALHOST_WARNING="False",
                     ANSIBLE_INVENTORY_UNPARSED_WARNING="False", ANSIBLE_PYTHON_INTERPRETER=sys.executable,
                     ANSIBLE_RETRY_FILES_ENABLED="False", ANSIBLE_PIPELINING="True", ANSIBLE_HOST_KEY_CHECKING="False",
                     ANSIBLE_LOCAL_TEMP=os.path.join(str(workdir), "ansible-tmp"),
                     ANSIBLE_REMOTE_TEMP=os.path.join(str(workdir), "ansible-tmp"))
    child_env.update(env or {})
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
            os.path.join(HERE, playbook), "-e", "@" + vars_file]
    if check:
        argv.append("--check")
    proc = subprocess.run(argv, env=child_env, capture_output=True, check=False, text=True, timeout=600, cwd=str(workdir),
                          stdin=subprocess.DEVNULL)
    return PlaybookResult(proc)


def assert_converged_then_unchanged(first, second):
    """The first run of a playbook changed something and succeeded; the second changed nothing."""
    assert first.rc == 0, first
    assert first.changed > 0, first
    assert second.rc == 0, second
    assert second.changed == 0, second


def systemd_verify(unit_dir, units):
    """``systemd-analyze verify`` of instance units found through ``unit_dir``; returns its complaints.

    Lines saying an ExecStart binary of CernVM-FS is missing are dropped (CernVM-FS is not
    installed on this machine); everything else systemd says is returned.
    """
    env = dict(os.environ, SYSTEMD_UNIT_PATH=str(unit_dir) + ":")
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", "--generators=no"] + list(units),
                          env=env, capture_output=True, check=False, text=True)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    return [line for line in lines
            if not re.search(r"Command /usr/bin/cvmfs_server is not executable: No such file", line)]
