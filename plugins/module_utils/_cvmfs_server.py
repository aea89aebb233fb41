# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``cvmfs_server`` command-line runner.

Internal to sharedsw.cvmfs; may change in any release. Pure Python, no Ansible import: the same
file drives ``cvmfs_server`` from modules and from the programs the roles install on hosts.

* Every sub-command is declared once in :data:`COMMANDS`: its options in argv order, each with a
  named formatter (``flag('-f')``, ``opt('-o')``, ``opt_each('-d')``, ``arg()``, ``fixed('-f')``).
  A call is ``runner.run('mkfs', name=..., owner=...)``; an unknown or missing argument is a
  programming error and raises at once.
* argv lists only, ``LC_ALL=C``, stdin from ``/dev/null`` (or, for ``ingest -t -``, a file object
  copied in bounded chunks: :meth:`CvmfsServer.run` ``stdin=``), cwd ``/`` (never under
  ``/cvmfs/<repo>``). Flags that stop prompts (``-f``, ``-o``) are part of the declarations.
* Mutating sub-commands are marked in the declaration and are skipped automatically in check
  mode; read-only ones (``list``, ``info``, ``diff``, ``tag -l``) always run.
* Exit codes and messages (cvmfs-facts §1) are mapped to specific :class:`CvmfsServerError`
  subclasses, so callers can treat "already open", "not in a transaction", "repository exists"
  and "does not exist" as states, and report everything else with a precise message.
* Every call is recorded in :attr:`CvmfsServer.history` (argv, environment overrides, rc, output);
  with ``log=`` (anything with ``info``/``warning``, e.g. a :class:`logging.Logger`) each output
  line is logged as ``cvmfs_server <command>: <line>`` (stderr lines as warnings).

Must not import Ansible, nor the programs that use it (``_publish_*``, ``_event*``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile

from ._common import CvmfsError, describe_error
from ._cvmfs_server_errors import CvmfsServerError, classify
from ._cvmfs_state import CvmfsPaths


DEFAULT_BINARY = "cvmfs_server"
SEARCH_PATH = ("/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin")
FORCED_ENV = {"LC_ALL": "C", "LANG": "C", "LANGUAGE": "C"}
CHUNK = 1024 * 1024  # bytes per read and write while a file object streams into cvmfs_server's stdin


# --------------------------------------------------------------------------- formatters

class fmt:  # pylint: disable=invalid-name
    """Named formatters: each turns one value into a list of argv tokens (``None`` -> nothing)."""

    @staticmethod
    def flag(option):
        return lambda value: [option] if value else []

    @staticmethod
    def flag_not(option):
        return lambda value: [option] if value is False else []

    @staticmethod
    def flag_unless_false(option):
        """On by default (``None``): a flag that stops a prompt, which only an explicit ``False`` leaves out."""
        return lambda value: [] if value is False else [option]

    @staticmethod
    def opt(option):
        return lambda value: [] if value is None else [option, str(value)]

    @staticmethod
    def opt_each(option):
        def _format(value):
            tokens = []
            for item in value or []:
                tokens.extend([option, str(item)])
            return tokens
        return _format

    @staticmethod
    def arg():
        return lambda value: [] if value is None else [str(value)]

    @staticmethod
    def fixed(*tokens):
        return lambda value: list(tokens)


class Command:
    """One sub-command: its argv-ordered options and whether it changes anything."""

    def __init__(self, name, mutating, options, required=("name",)):
        self.name = name
        self.mutating = mutating
        self.options = options  # list of (argument name, formatter)
        self.required = required
        self._fixed = set(n for n, _f in options if n.startswith("_"))

    def argv(self, values):
        known = set(n for n, _f in self.options)
        unknown = set(values) - known
        if unknown:
            raise TypeError("cvmfs_server %s: unknown argument(s) %s" % (self.name, ", ".join(sorted(unknown))))
        for name in self.required:
            if values.get(name) in (None, "", []):
                raise TypeError("cvmfs_server %s: argument %r is required" % (self.name, name))
        argv = [self.name]
        for name, formatter in self.options:
            argv.extend(formatter(values.get(name)))
        return argv


_F = fmt
COMMANDS = dict((c.name, c) for c in [
    Command("mkfs", True, [
        ("stratum0_url", _F.opt("-w")), ("upstream", _F.opt("-u")), ("owner", _F.opt("-o")),
        ("volatile", _F.flag("-v")), ("auto_tag", _F.flag_not("-g")), ("auto_tag_timespan", _F.opt("-G")),
        ("hash_algorithm", _F.opt("-a")), ("garbage_collection", _F.flag("-z")), ("s3_config", _F.opt("-s")),
        ("keys_dir", _F.opt("-k")), ("apache", _F.flag_not("-p")), ("compression", _F.opt("-Z")),
        ("external_data", _F.flag("-X")), ("proxy", _F.opt("-x")), ("name", _F.arg())],
        required=("name", "owner")),
    Command("import", True, [
        ("stratum0_url", _F.opt("-w")), ("owner", _F.opt("-o")), ("upstream", _F.opt("-u")),
        ("keys_dir", _F.opt("-k")), ("chown_storage", _F.flag("-g")), ("resign_whitelist", _F.flag("-r")),
        ("new_keys", _F.flag("-t")), ("apache", _F.flag_not("-p")), ("name", _F.arg())],
        required=("name", "owner")),
    Command("rmfs", True, [
        ("_force", _F.fixed("-f")), ("preserve", _F.flag("-p")), ("name", _F.arg())]),
    Command("transaction", True, [
        ("retry_timeout", _F.opt("-t")), ("name", _F.arg())]),
    Command("abort", True, [
        ("_force", _F.fixed("-f")), ("name", _F.arg())]),
    Command("publish", True, [
        ("force_remount", _F.flag_unless_false("-f")), ("tag", _F.opt("-a")), ("tag_description", _F.opt("-m")),
        ("name", _F.arg())]),
    Command("ingest", True, [
        ("tarball", _F.opt("-t")), ("base_dir", _F.opt("-b")), ("delete", _F.opt_each("-d")),
        ("catalog", _F.flag("-c")), ("user", _F.opt("-u")), ("group", _F.opt("-g")),
        ("keep_ownership", _F.flag("-k")), ("name", _F.arg())]),
    Command("add-replica", True, [
        ("owner", _F.opt("-o")), ("stratum1_url", _F.opt("-w")), ("alias", _F.opt("-n")),
        ("s3_config", _F.opt("-s")), ("require_apache", _F.flag_not("-a")), ("auto_gc", _F.flag("-z")),
        ("apache", _F.flag_not("-p")), ("snapshot_group", _F.opt("-g")),
        ("stratum0_url", _F.arg()), ("public_key", _F.arg())],
        required=("owner", "stratum0_url", "public_key")),
    Command("snapshot", True, [
        ("no_wait", _F.flag("-t")), ("name", _F.arg())]),
    Command("diff", False, [
        ("_worktree", _F.fixed("--worktree")), ("name", _F.arg())]),
    Command("list", False, [], required=()),
    Command("info", False, [("name", _F.arg())]),
])


# --------------------------------------------------------------------------- results

class CommandResult(collections.namedtuple("CommandResult", "cmd rc stdout stderr skipped", defaults=(False,))):
    """One run of a sub-command; ``skipped``: a mutating one not run in check mode (rc 0, no output)."""

    __slots__ = ()

    def as_dict(self):
        return {"cmd": list(self.cmd), "rc": self.rc, "stdout": self.stdout, "stderr": self.stderr}

    @property
    def output(self):
        return (self.stdout or "") + (self.stderr or "")

    def first_error_line(self):
        """The most telling line: first stderr line, else last stdout line (known noise skipped)."""
        for line in (self.stderr or "").splitlines():
            if line.strip() and not NOISE.match(line.strip()):
                return line.strip()
        lines = [line.strip() for line in (self.stdout or "").splitlines() if line.strip()]
        return lines[-1] if lines else "no output"


#: stderr lines of cvmfs_server 2.12 that never say what went wrong: dash (Debian's /bin/sh) on the
#: bash test in ingest, systemctl inside a container, and mkfs's own Apache restart slip
NOISE = re.compile(r"^(\S*cvmfs_server: \d+: eval: \[\[: not found"
                   r"|Failed to dump process list for '[^']*', ignoring: .*"
                   r"|Warning: Failed to restart apache after enabling necessary modules)$")


# --------------------------------------------------------------------------- the runner

def find_binary(path=None):
    """Absolute path of ``cvmfs_server``: ``path`` if it has a ``/``, else searched in PATH + sbin dirs."""
    wanted = path or DEFAULT_BINARY
    if os.sep in wanted:
        if os.path.isfile(wanted) and os.access(wanted, os.X_OK):
            return wanted
        raise CvmfsError("%s is not an executable file: it must be cvmfs_server "
                         "(usually /usr/bin/cvmfs_server from the cvmfs-server package)" % wanted)
    dirs = os.environ.get("PATH", "").split(os.pathsep) + list(SEARCH_PATH)
    for directory in dirs:
        candidate = os.path.join(directory, wanted)
        if directory and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise CvmfsError("%s not found in PATH or %s: install the cvmfs-server package on this host"
                     % (wanted, ":".join(SEARCH_PATH)))


class CvmfsServer:
    """Runs ``cvmfs_server`` sub-commands declared in :data:`COMMANDS`.

    ``check_mode``: mutating sub-commands are not run; they return a skipped
    :class:`CommandResult` (rc 0, empty output). ``env``: extra environment variables.
    ``binary`` is looked up (:func:`find_binary`) when the first command is built. ``log``: an
    object with ``info`` and ``warning`` (the host programs' journal log, a :class:`logging.Logger`)
    that gets each output line of each call, or ``None``.
    """

    def __init__(self, binary=None, check_mode=False, env=None, timeout=None, log=None):
        self._binary_option = binary
        self._binary = None
        self.check_mode = check_mode
        self.env = dict(env or {})
        self.timeout = timeout
        self.log = log
        self.history = []

    @property
    def binary(self):
        """Resolved on first use, so a module with nothing to do never needs cvmfs_server installed."""
        if self._binary is None:
            self._binary = find_binary(self._binary_option)
        return self._binary

    def argv(self, command, **values):
        spec = COMMANDS[command]
        return [self.binary] + spec.argv(values)

    def run(self, command, context=None, check=True, stdin=None, **values):
        """Run ``command``; raise its mapped error unless ``check`` is false. Returns the result.

        ``stdin``: a binary file object copied to the command's standard input (see :meth:`_feed`);
        without it, standard input is ``/dev/null``.
        """
        spec = COMMANDS[command]
        cmd = self.argv(command, **values)
        overrides = dict(self.env, **FORCED_ENV)
        record = {"cmd": cmd, "environ": overrides, "cwd": "/", "mutating": spec.mutating}
        if spec.mutating and self.check_mode:
            result = CommandResult(cmd, 0, "", "", skipped=True)
        else:
            environ = dict(os.environ, **overrides)
            try:
                proc = self._execute(command, cmd, environ, stdin)
            except subprocess.TimeoutExpired as exc:
                self.history.append(dict(record, rc=None, timed_out=True))
                raise CvmfsServerError("cvmfs_server %s did not finish within %s s" % (command, self.timeout),
                                       cmd=cmd, rc=None, stdout="", stderr="", exception=exc)
            result = CommandResult(cmd, proc.returncode, _text(proc.stdout), _text(proc.stderr))
            self._log_output(command, result)
        record.update(rc=result.rc, stdout=result.stdout, stderr=result.stderr, skipped=result.skipped)
        self.history.append(record)
        if check:
            context = dict(context or {})
            context.setdefault("name", values.get("name") or values.get("alias"))
            if values.get("stratum0_url"):
                context.setdefault("stratum0_url", values["stratum0_url"])
            classify(command, result, **context)
        return result

    def _execute(self, command, cmd, environ, stdin):
        if stdin is not None:
            return self._feed(command, cmd, environ, stdin)
        try:
            return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=environ, cwd="/", timeout=self.timeout, check=False)
        except OSError as exc:
            raise _cannot_run(cmd, exc)

    def _feed(self, command, cmd, environ, source):
        """Run ``cmd`` with ``source`` copied to its stdin, in bounded chunks; a ``CompletedProcess``.

        cvmfs_server publishes whatever tar it has read when its stdin ends, even one cut off between
        two members. So a failure while copying (a read error, a stop signal) never closes its stdin:
        cvmfs_server and all it started (its own session) are killed first, and the transaction they
        leave open is for the caller to abort.
        """
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out, stderr=err, env=environ, cwd="/",
                                        start_new_session=True)
            except OSError as exc:
                raise _cannot_run(cmd, exc)
            try:
                try:
                    shutil.copyfileobj(source, proc.stdin, CHUNK)
                    proc.stdin.close()
                except BrokenPipeError:  # cvmfs_server stopped reading: its exit status and messages say why
                    with contextlib.suppress(OSError):
                        proc.stdin.close()
                proc.wait(timeout=self.timeout)
            except BaseException as error:
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                if self.log is not None:
                    self.log.warning("stopped cvmfs_server %s (killed it and all it started): %s"
                                     % (command, describe_error(error)))
                raise
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())

    def _log_output(self, command, result):
        if self.log is None:
            return
        for line in result.stdout.splitlines():
            self.log.info("cvmfs_server %s: %s" % (command, line))
        for line in result.stderr.splitlines():
            self.log.warning("cvmfs_server %s: %s" % (command, line))

    @property
    def last_mutating(self):
        """The most recent mutating call as ``{cmd, rc, stdout, stderr}`` (``None`` if none ran)."""
        for record in reversed(self.history):
            if record.get("mutating"):
                return dict((k, record.get(k)) for k in ("cmd", "rc", "stdout", "stderr"))
        return None


def _text(data):
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else (data or "")


def _cannot_run(cmd, exc):
    return CvmfsServerError("cannot run %s: %s" % (cmd[0], exc), cmd=cmd, exception=exc)


# --------------------------------------------------------------------------- module glue (still Ansible-free)

#: TEST HOOK, not an interface: the test suite runs the modules against a double of cvmfs_server in
#: a scratch tree and points them there through these environment variables (a module run with
#: connection local inherits the controller's environment). Unset, which is every real host, the
#: modules run the cvmfs_server found in PATH on the directories the packages use. Never document
#: them as options.
TEST_HOOK_ENVIRON = {
    "cvmfs_server": "_SHAREDSW_CVMFS_TEST_CVMFS_SERVER",
    "etc_dir": "_SHAREDSW_CVMFS_TEST_ETC_DIR",
    "spool_dir": "_SHAREDSW_CVMFS_TEST_SPOOL_DIR",
    "storage_dir": "_SHAREDSW_CVMFS_TEST_STORAGE_DIR",
}


def _test_hook(what):
    return os.environ.get(TEST_HOOK_ENVIRON[what]) or None


def host_paths():
    """The directories cvmfs_server works under on this host (see :data:`TEST_HOOK_ENVIRON`)."""
    return CvmfsPaths(etc_dir=_test_hook("etc_dir"), spool_dir=_test_hook("spool_dir"),
                      srv_dir=_test_hook("storage_dir"))


def host_server(check_mode):
    """The runner of this host's cvmfs_server (see :data:`TEST_HOOK_ENVIRON`)."""
    return CvmfsServer(binary=_test_hook("cvmfs_server"), check_mode=check_mode)


#: The ``s3_config`` option of repository and replica (documented in doc_fragments/cvmfs_s3.py).
S3_ARGUMENT_SPEC = {
    "s3_config": {"type": "dict", "options": {
        "access_key": {"type": "str", "required": True, "no_log": False},
        "bucket": {"type": "str", "required": True},
        "dns_buckets": {"type": "bool"},
        "flavor": {"type": "str", "choices": ["awsv2", "awsv4", "azure"]},
        "host": {"type": "str", "required": True},
        "max_parallel_connections": {"type": "int"},
        "port": {"type": "int"},
        "region": {"type": "str"},
        "secret_key": {"type": "str", "required": True, "no_log": True},
        "use_https": {"type": "bool"},
    }},
    "s3_config_path": {"type": "path"},
}


def add_run_results(results, server, verbosity=0):
    """Put ``cmd``/``rc``/``stdout``/``stderr`` of the last mutating call into ``results``.

    ``run_info`` (every call: argv, environment overrides, cwd, rc, output, skipped) is added
    only at verbosity 4 (``-vvvv``).
    """
    last = server.last_mutating
    if last is not None:
        results.update(last)
    if verbosity >= 4:
        results["run_info"] = list(server.history)
    return results
