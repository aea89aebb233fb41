"""One lab host with REAL CernVM-FS, shared by every test of a pytest session.

:func:`cvmfs_lab_host` (session scope; registered for the integration tests in
tests/integration/conftest.py) boots the lab host ``pt-cvmfs`` at 10.77.0.90 (tools/lab), serves
the CernVM-FS package mirror on the lab bridge (tools/lab/package-mirror.sh) when a mirror directory
exists, installs ``cvmfs cvmfs-server apache2`` and Apache's wsgi module from it (or from the site
mirror / upstream repository the roles would use), starts Apache and yields a :class:`CvmfsLabHost`:

* ``host.sh(script)`` runs a bash script there as root (over one shared ssh connection);
* ``host.run_module(name, args, check=False, diff=False)`` runs OUR module there the way Ansible runs
  it (``ansible pt-cvmfs -m sharedsw.cvmfs.<name> -a <json>``, json callback) and returns a
  ``ModuleResult`` shaped like tests/conftest.py's ``run_module``;
* ``host.runner()`` is a stand-in for ``_cvmfs_server.CvmfsServer`` whose ``run()`` runs the real
  runner on the host (module_utils shipped there as the package ``sharedsw_cvmfs``, the way the roles
  ship programs, and imported by the distribution's Python without Ansible) and raises the same
  error classes here;
* ``host.cvmfs_server(*argv, stdin=None)`` runs ``cvmfs_server`` itself (stdin /dev/null or the given
  bytes, cwd /, ``LC_ALL=C``).

The host also gets what the stratum-1 role gives a replica host before ``add-replica``:
``CVMFS_GEO_DB_FILE=NONE`` in /etc/cvmfs/server.local (without it, add-replica tries to download
the GeoIP database and fails) and Apache's wsgi module (add-replica checks for it).

The tests skip with one line only when molecule/shared/requires-cvmfs.sh says no package source
exists (exit 77); any other failure to set the host up fails them. At the end the host is powered
off and deleted, and the mirror stopped if this fixture started it.
"""

import atexit
import io
import json
import os
import shlex
import subprocess
import tarfile
import tempfile
import time

import pytest
import yaml

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _cvmfs_server as srv
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _cvmfs_server_errors as errs
from ansible_collections.sharedsw.cvmfs.plugins.plugin_utils import _host_program
from tests.conftest import ModuleResult

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(REPO_ROOT, "tools", "lab")
REQUIRES_CVMFS = os.path.join(REPO_ROOT, "molecule", "shared", "requires-cvmfs.sh")
NAME = "pt-cvmfs"
ADDRESS = "10.77.0.90"
PACKAGES = ("cvmfs", "cvmfs-server", "apache2", "libapache2-mod-wsgi-py3")
#: module_utils module shipped to the host, with every module_utils file it imports (found as the
#: host-program archive finds them)
RUNNER_MODULES = ("_cvmfs_server",)
PROGRAM_DIR = "/opt/sharedsw-pytest"
TIMEOUT = 900  # seconds any one remote command may take before the test fails (a hang, not a measure)

#: Timings of the session's host, for the summary line (tests/integration/conftest.py)
TIMINGS = {}


def _lab_env():
    return dict(os.environ, LC_ALL="C")


def _lab(script, *args, check=True):
    proc = subprocess.run([os.path.join(LAB, script)] + list(args), capture_output=True, text=True,
                          env=_lab_env(), stdin=subprocess.DEVNULL, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError("tools/lab/%s %s failed (rc=%d):\n%s%s" % (
            script, " ".join(args), proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    return proc


def lab_setting(name):
    """A setting of tools/lab/common.sh (environment overrides included)."""
    proc = subprocess.run(["bash", "-c", '. "$1/common.sh"; printf %s "${!2}"', "-", LAB, name],
                          capture_output=True, text=True, env=_lab_env(), check=True)
    return proc.stdout


def package_source():
    """``(url, key_url, mirror_started)``: the lab mirror if a mirror directory exists (started here
    when nobody serves it yet), else SHAREDSW_CVMFS_PACKAGE_URL/KEY_URL, else the repository the
    roles use (roles/common/vars/Debian.yml)."""
    if _lab("package-mirror.sh", "dir", check=False).returncode == 0:
        settings = dict(line.split("=", 1) for line in _lab("package-mirror.sh", "start").stdout.split()
                        if "=" in line)
        return (settings["SHAREDSW_CVMFS_PACKAGE_URL"], settings["SHAREDSW_CVMFS_PACKAGE_KEY_URL"],
                settings["LAB_PACKAGE_MIRROR_STARTED"] == "1")
    with open(os.path.join(REPO_ROOT, "roles", "common", "vars", "Debian.yml")) as handle:
        upstream = yaml.safe_load(handle)["__common_repository"]
    url = os.environ.get("SHAREDSW_CVMFS_PACKAGE_URL") or upstream["url"]
    key_url = os.environ.get("SHAREDSW_CVMFS_PACKAGE_KEY_URL") or (
        url.rstrip("/") + "/cernvm.gpg" if os.environ.get("SHAREDSW_CVMFS_PACKAGE_URL") else upstream["key_url"])
    return url, key_url, False


INSTALL = r"""
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
install -d -m 755 /etc/apt/keyrings
curl -fsS -o /etc/apt/keyrings/cernvm.gpg "$1"
echo "deb [signed-by=/etc/apt/keyrings/cernvm.gpg] $2 bookworm-prod main" > /etc/apt/sources.list.d/cernvm.list
shift 2
apt-get update -q >/tmp/apt.log 2>&1 || { tail -20 /tmp/apt.log; exit 1; }
apt-get install -y -q --no-install-recommends "$@" >>/tmp/apt.log 2>&1 || { tail -30 /tmp/apt.log; exit 1; }
# what the stratum-1 role sets before add-replica (GeoAPI off: no download at add-replica)
echo CVMFS_GEO_DB_FILE=NONE > /etc/cvmfs/server.local
systemctl start apache2
systemctl is-active --quiet apache2
modprobe -q overlay
"""


class CommandOutput:
    """``rc``, ``stdout``, ``stderr`` of one remote command; ``out`` is both streams."""

    def __init__(self, proc):
        self.rc, self.stdout, self.stderr = proc.returncode, proc.stdout, proc.stderr

    @property
    def out(self):
        return self.stdout + self.stderr

    def __repr__(self):
        return "CommandOutput(rc=%r, stdout=%r, stderr=%r)" % (self.rc, self.stdout[-2000:], self.stderr[-2000:])


class CvmfsLabHost:
    """The lab host ``pt-cvmfs`` with real CernVM-FS (see the module docstring)."""

    def __init__(self, workdir, key):
        self.name, self.address, self.key = NAME, ADDRESS, key
        self.workdir = workdir
        self.control = os.path.join(workdir, "ssh-%C")
        self.ssh_options = ["-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                            "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20",
                            "-o", "ControlMaster=auto", "-o", "ControlPersist=600", "-o", "ControlPath=" + self.control]

    # ------------------------------------------------------------------ shell

    def sh(self, script, *args, check=True, stdin=None, timeout=TIMEOUT):
        """Run the bash ``script`` (``$1``... = ``args``) as root on the host; returns :class:`CommandOutput`."""
        remote = " ".join(shlex.quote(word) for word in ["bash", "-c", script, "-"] + list(args))
        proc = subprocess.run(["ssh"] + self.ssh_options + ["root@" + self.address, remote],
                              input=stdin if stdin is not None else b"", capture_output=True, timeout=timeout,
                              check=False)
        output = CommandOutput(subprocess.CompletedProcess(proc.args, proc.returncode,
                                                           proc.stdout.decode("utf-8", "replace"),
                                                           proc.stderr.decode("utf-8", "replace")))
        if check and output.rc != 0:
            raise AssertionError("on %s: %s\n%r" % (self.name, script, output))
        return output

    def cvmfs_server(self, *argv, env=None, stdin=None):
        """``cvmfs_server *argv`` as our runner calls it: stdin /dev/null (or the bytes ``stdin``), cwd /,
        LC_ALL=C."""
        assignments = ["%s=%s" % (k, shlex.quote(v)) for k, v in sorted((env or {}).items())]
        command = " ".join(["cd / && exec env LC_ALL=C"] + assignments
                           + ["cvmfs_server"] + [shlex.quote(a) for a in argv] + (["</dev/null"] if stdin is None else []))
        return self.sh(command, check=False, stdin=stdin)

    def exists(self, path):
        return self.sh('test -e "$1"', path, check=False).rc == 0

    def read(self, path):
        """Bytes of the file ``path`` on the host, or ``None`` if it does not exist."""
        remote = " ".join(shlex.quote(w) for w in ["bash", "-c", 'test -f "$1" || exit 3; cat -- "$1"', "-", path])
        proc = subprocess.run(["ssh"] + self.ssh_options + ["root@" + self.address, remote], input=b"",
                              capture_output=True, timeout=TIMEOUT, check=False)
        if proc.returncode == 3:
            return None
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def write(self, path, data, mode="0644"):
        """Write ``data`` (bytes or text) to ``path`` on the host, creating its directory."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sh('install -d "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"', path, mode, stdin=data)

    def put_tree(self, files, destination):
        """Unpack ``{relative path: bytes}`` under ``destination`` on the host."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for relpath, data in files.items():
                info = tarfile.TarInfo(relpath)
                info.size, info.mode = len(data), 0o644
                archive.addfile(info, io.BytesIO(data))
        self.sh('install -d "$1" && tar -x -C "$1"', destination, stdin=buffer.getvalue())

    # ------------------------------------------------------------------ our code on the host

    def run_module(self, name, args, check=False, diff=False):
        """Run ``sharedsw.cvmfs.<name>`` on the host through ``ansible`` (json callback).

        Returns a ``ModuleResult`` like tests/conftest.py's ``run_module``: the module's result,
        ``rc`` 1 when it failed (0 otherwise) and ``_stderr``.
        """
        argv = ["ansible", self.name, "-i", self.name + ",", "-e", "ansible_host=" + self.address,
                "-m", "sharedsw.cvmfs." + name, "-a", json.dumps(args)]
        argv += ["--check"] if check else []
        argv += ["--diff"] if diff else []
        env = dict(os.environ, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json",
                   ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_PIPELINING="1", ANSIBLE_REMOTE_USER="root",
                   ANSIBLE_PRIVATE_KEY_FILE=self.key, ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3",
                   ANSIBLE_SSH_ARGS=" ".join(self.ssh_options[2:]), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_DEPRECATION_WARNINGS="0",
                   ANSIBLE_LOCAL_TEMP=os.path.join(self.workdir, "ansible-local"))
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                              timeout=TIMEOUT, check=False)
        try:
            result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"][self.name]
        except (ValueError, LookupError):
            raise AssertionError("ansible printed no result for %s (rc=%s):\n%s\n%s"
                                 % (name, proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
        if result.get("unreachable"):
            raise AssertionError("%s unreachable: %s" % (self.name, result.get("msg")))
        result = ModuleResult(result)
        result["rc"] = 1 if result.failed else 0
        result["_stderr"] = proc.stderr
        return result

    def python(self, code, *args):
        """Run Python ``code`` on the host with the shipped ``sharedsw_cvmfs`` package importable and
        nothing else added (no Ansible there); ``sys.argv[1:]`` = ``args``. Returns :class:`CommandOutput`."""
        return self.sh('cd / && PYTHONPATH="$1" exec /usr/bin/python3 -c "$2" "${@:3}" </dev/null',
                       PROGRAM_DIR, code, *args, check=False)

    def runner(self, **options):
        """A :class:`RemoteRunner`: ``CvmfsServer(**options)`` run on the host."""
        return RemoteRunner(self, options)

    def ship_runner(self):
        files = {"sharedsw_cvmfs/__init__.py": b"# sharedsw.cvmfs module_utils, shipped by the tests\n"}
        files.update(package_files(*RUNNER_MODULES))
        self.put_tree(files, PROGRAM_DIR)

    def close(self):
        subprocess.run(["ssh"] + self.ssh_options + ["-O", "exit", "root@" + self.address],
                       capture_output=True, check=False)


def package_files(*modules):
    """``{"sharedsw_cvmfs/<file>": bytes}``: the module_utils ``modules`` and every file they import."""
    source = _host_program.module_utils_dir()
    files = {}
    for relative in _host_program.import_closure(source, modules):
        with open(os.path.join(source, relative), "rb") as handle:
            files["sharedsw_cvmfs/" + relative] = handle.read()
    return files


RUNNER_SNIPPET = r"""
import json, sys
from sharedsw_cvmfs import _cvmfs_server as srv, _cvmfs_server_errors as errs
request = json.loads(sys.argv[1])
server = srv.CvmfsServer(**request["options"])
try:
    result = server.run(request["command"], check=request["check"], **request["values"])
    answer = {"result": result.as_dict()}
except errs.CvmfsServerError as error:
    answer = {"error": type(error).__name__, "message": error.message,
              "result": error.result.as_dict() if error.result is not None else None,
              "extra": dict((k, v) for k, v in error.extra.items() if k != "exception")}
print(json.dumps(answer))
"""


class RemoteRunner:
    """``CvmfsServer`` on the lab host: ``run()`` returns a ``CommandResult`` or raises the same
    ``CvmfsServerError`` subclass (rebuilt here with the remote message and result)."""

    def __init__(self, host, options):
        self.host, self.options = host, options

    def run(self, command, check=True, **values):
        request = {"options": self.options, "command": command, "check": check, "values": values}
        output = self.host.python(RUNNER_SNIPPET, json.dumps(request))
        try:
            answer = json.loads(output.stdout)
        except ValueError:
            raise AssertionError("the runner on %s printed no answer: %r" % (self.host.name, output))
        result = answer["result"] and srv.CommandResult(answer["result"]["cmd"], answer["result"]["rc"],
                                                        answer["result"]["stdout"], answer["result"]["stderr"])
        if "error" in answer:
            error_class = getattr(errs, answer["error"])
            extra = {} if result else answer["extra"]
            raise error_class(answer["message"], result, **extra)
        return result


def skip_reason():
    """The one-line reason to skip when no CernVM-FS package source exists (requires-cvmfs.sh exits
    77), else ``None``; any other failure of the check is an error."""
    check = subprocess.run([REQUIRES_CVMFS], capture_output=True, text=True, env=_lab_env(), check=False)
    if check.returncode == 77:
        return "real CernVM-FS tests skipped: " + (check.stdout.strip() or check.stderr.strip())
    if check.returncode != 0:
        raise RuntimeError("molecule/shared/requires-cvmfs.sh failed (rc=%d): %s%s"
                           % (check.returncode, check.stdout, check.stderr))
    return None


def skip_module_without_packages():
    """Skip the calling test module (one line in pytest's summary) when :func:`skip_reason` says so."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason, allow_module_level=True)


def _setup(workdir, state):
    """Boot and install the host into ``state`` (``host``, ``mirror_started``, ``booted``)."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    url, key_url, state["mirror_started"] = package_source()
    state["booted"] = True
    start = time.monotonic()
    _lab("hosts-up.sh", "%s=%s" % (NAME, ADDRESS))
    TIMINGS["boot"] = time.monotonic() - start
    host = state["host"] = CvmfsLabHost(workdir, lab_setting("LAB_SSH_KEY"))
    start = time.monotonic()
    install = host.sh(INSTALL, key_url, url, *PACKAGES, check=False)
    if install.rc != 0:
        raise RuntimeError("installing CernVM-FS on %s from %s failed:\n%s" % (NAME, url, install.out[-4000:]))
    host.ship_runner()
    TIMINGS["install"] = time.monotonic() - start
    return host


def _bridge_unused():
    """No host on the lab bridge and no mirror served there: net-down.sh would remove it. Checked
    first because net-down.sh waits for the exclusive lab lock, which hosts booting elsewhere hold
    shared (it keeps the bridge anyway while they use it)."""
    ports = "/sys/class/net/%s/brif" % lab_setting("LAB_BRIDGE")
    for _attempt in range(10):  # the host's veth goes away shortly after the host
        if not (os.path.isdir(ports) and os.listdir(ports)):
            return _lab("package-mirror.sh", "status", check=False).returncode != 0
        time.sleep(0.2)
    return False


def _teardown(state):
    start = time.monotonic()
    if state["host"] is not None:
        state["host"].close()
    if state["booted"]:
        _lab("host-down.sh", NAME, check=False)
    if state["mirror_started"]:
        _lab("package-mirror.sh", "stop", check=False)
    if (state["booted"] or state["mirror_started"]) and _bridge_unused():
        _lab("net-down.sh", check=False)
    if state["booted"]:
        TIMINGS["teardown"] = time.monotonic() - start


@pytest.fixture(scope="session")
def cvmfs_lab_host():
    """The lab host ``pt-cvmfs`` with real CernVM-FS (:class:`CvmfsLabHost`), once per session."""
    state = {"host": None, "mirror_started": False, "booted": False, "down": False}

    def down():
        if not state["down"]:
            state["down"] = True
            _teardown(state)

    with tempfile.TemporaryDirectory(prefix="pt-cvmfs-") as workdir:
        atexit.register(down)  # also when pytest is interrupted before fixtures are torn down
        try:
            yield _setup(workdir, state)
        finally:
            down()
