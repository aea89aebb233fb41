"""Start, wait for and stop the harness's daemons; pick free loopback ports; find binaries.

Every daemon runs in its own session (process group), logs to a file in its server's
temporary directory and is stopped by PID. Servers still open when Python exits (an aborted or
interrupted session, or SIGTERM to pytest) are killed and cleaned up by an ``atexit`` hook.
"""

import atexit
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

LOOPBACK = "127.0.0.1"
KEEP_ENV = "SHAREDSW_KEEP_SERVICES"
DEBIAN_DIRS = ("/usr/lib/rabbitmq/bin", "/usr/bin", "/usr/sbin")  # rabbitmq: not the /usr/sbin wrappers (su)
LOG_TAIL_LINES = 40

_OPEN_SERVICES = set()
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an environment proxy


class HarnessError(RuntimeError):
    """A test server could not be found, started or reached."""


def find_binary(name, debian=False):
    """Path of executable ``name``: Debian directories when ``debian``, else PATH and the venv's bin."""
    if debian:
        candidates = [os.path.join(d, name) for d in DEBIAN_DIRS]
    else:
        candidates = [shutil.which(name), os.path.join(os.path.dirname(sys.executable), name)]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    raise HarnessError("test server binary %r not found; run `make deps` to install the test services" % name)


def keep_services():
    return os.environ.get(KEEP_ENV) == "1"


# --- ports ---------------------------------------------------------------------------------

def _bindable(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_ports(count=1, contiguous=False, avoid=()):
    """``count`` ports free on 127.0.0.1 right now (a run of consecutive ports if ``contiguous``),
    none of them in ``avoid`` (ports already promised to another daemon that has not bound them yet).

    Ports come from 20000-32000, below Linux's default ephemeral range (32768-60999), so
    outgoing connections do not take them between the check and the daemon's bind.
    """
    chosen = list(avoid)
    for _attempt in range(20000):
        base = random.randint(20000, 32000 - count)
        wanted = range(base, base + count) if contiguous else [base]
        if all(p not in chosen and _bindable(p) for p in wanted):
            chosen.extend(wanted)
            if len(chosen) - len(avoid) >= count:
                return chosen[len(avoid):len(avoid) + count]
    raise HarnessError("no %d free ports on %s" % (count, LOOPBACK))


def free_port():
    return free_ports(1)[0]


def listening(port, host=LOOPBACK):
    """True when a TCP socket listens on host:port (read from /proc, so no connection is made)."""
    wanted = "%s:%04X" % ("".join("%02X" % int(b) for b in reversed(host.split("."))), port)
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[1] == wanted and fields[3] == "0A":
                return True
    return False


# --- temporary directories ----------------------------------------------------------------

def make_server_dir(name):
    """A fresh directory for one server's data, logs and pid files (world-traversable)."""
    path = tempfile.mkdtemp(prefix="sharedsw-%s-" % name)
    os.chmod(path, 0o755)
    return path


def remove_server_dir(path):
    if keep_services():
        sys.stderr.write("\n%s=1: kept %s\n" % (KEEP_ENV, path))
    else:
        shutil.rmtree(path, ignore_errors=True)


def tail(path, lines=LOG_TAIL_LINES):
    try:
        with open(path, errors="replace") as log:
            return "".join(log.readlines()[-lines:])
    except OSError as error:
        return "(no log: %s)\n" % error


# --- daemons ------------------------------------------------------------------------------

class Daemon:
    """One server process: started in its own session, output to ``log``, stopped by PID."""

    def __init__(self, name, argv, log, env=None, cwd=None):
        self.name, self.argv, self.log = name, list(argv), log
        self.env = dict(os.environ, **(env or {}))
        self.cwd = cwd
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=self.env, cwd=self.cwd, start_new_session=True)
        _exit_cleanly_on_sigterm()
        return self

    def fail(self, what, logs=()):
        """Raise a HarnessError about this daemon with the tail of its log (and of ``logs``)."""
        text = "%s %s (argv: %s)\n--- last lines of %s ---\n%s" % (self.name, what, " ".join(self.argv), self.log, tail(self.log))
        for path in logs:
            text += "--- last lines of %s ---\n%s" % (path, tail(path))
        raise HarnessError(text)

    def wait_for(self, ready, timeout=60, what="to become ready", logs=()):
        """Poll ``ready()`` until it is true; fail with the log tail if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                self.fail("exited with status %s while waiting for it %s" % (self.proc.returncode, what), logs)
            try:
                if ready():
                    return
            except Exception:  # not ready yet: connection refused, 503, ...
                pass
            if time.monotonic() > deadline:
                self.stop(timeout=5)
                self.fail("did not manage %s within %s s" % (what, timeout), logs)
            time.sleep(0.05)

    def wait_listening(self, port, timeout=60):
        self.wait_for(lambda: listening(port), timeout, "to listen on %s:%s" % (LOOPBACK, port))

    def stop(self, timeout=30, sig=signal.SIGTERM):
        """Send ``sig`` to the process group, wait, then SIGKILL whatever is left."""
        if self.proc is None:
            return
        _signal_group(self.proc.pid, sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        _signal_group(self.proc.pid, signal.SIGKILL)  # helpers the daemon left in its group

    def kill(self):
        self.stop(timeout=10, sig=signal.SIGKILL)


def _signal_group(pid, sig):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@atexit.register
def _close_open_services():
    for service in list(_OPEN_SERVICES):
        service.close()


def _exit_cleanly_on_sigterm():
    """Turn SIGTERM into KeyboardInterrupt, so that fixtures and atexit still stop our daemons."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        try:
            signal.signal(signal.SIGTERM, signal.default_int_handler)
        except ValueError:  # not the main thread
            pass


# --- probes and set-up commands -----------------------------------------------------------

def http_answers(url, timeout=2):
    """True when ``url`` gives any HTTP response, error statuses included."""
    try:
        with _DIRECT.open(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def http_get(url, timeout=10, headers=None):
    """The body of a direct (never proxied) GET of ``url``."""
    with _DIRECT.open(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as response:
        return response.read()


def wait_until(ready, timeout, what):
    """Poll ``ready()`` (exceptions count as not ready) until true; HarnessError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except Exception as error:  # pylint: disable=broad-except
            last_error = error
        time.sleep(0.1)
    raise HarnessError("timed out after %s s waiting %s (last error: %r)" % (timeout, what, last_error))


def run(argv, env=None, timeout=120, cwd=None):
    """Run a set-up command; HarnessError with its output if it fails."""
    proc = subprocess.run(argv, env=dict(os.environ, **(env or {})), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise HarnessError("%s failed (rc=%s):\n%s%s" % (" ".join(argv), proc.returncode,
                                                         _last_lines(proc.stdout), _last_lines(proc.stderr)))
    return proc.stdout


def _last_lines(text):
    return "".join(text.splitlines(True)[-LOG_TAIL_LINES:])


# --- servers ------------------------------------------------------------------------------

class Service:
    """Base of every test server: one temporary directory, some daemons, a context manager.

    Subclasses implement ``start()``; ``close()`` stops the daemons in reverse order of start
    and removes the directory. The data is thrown away, so ``close()`` kills at once (SIGKILL);
    with SHAREDSW_KEEP_SERVICES=1 it stops them gracefully and keeps the directory.
    """

    kind = "service"

    def __init__(self):
        self.dir = make_server_dir(self.kind)
        self.daemons = []
        self.start_seconds = None
        _OPEN_SERVICES.add(self)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def daemon(self, name, argv, env=None, cwd=None):
        """Start ``argv`` as a daemon logging to ``<dir>/<name>.log``."""
        started = Daemon(name, argv, self.path(name + ".log"), env=env, cwd=cwd).start()
        self.daemons.append(started)
        return started

    def start(self):
        raise NotImplementedError

    def stop_daemons(self):
        while self.daemons:
            self.daemons.pop().stop()

    def close(self):
        if keep_services():
            self.stop_daemons()
        while self.daemons:
            self.daemons.pop().kill()
        if self in _OPEN_SERVICES:
            _OPEN_SERVICES.discard(self)
            remove_server_dir(self.dir)

    def __enter__(self):
        began = time.monotonic()
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def __exit__(self, *exc_info):
        self.close()
