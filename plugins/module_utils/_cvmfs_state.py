# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read (and carefully patch) the state files ``cvmfs_server`` itself uses.

Internal to sharedsw.cvmfs; may change in any release. Pure Python, no Ansible import.

What the tool considers true is what this module reads (cvmfs-facts §1.20, §2):

* a repository exists  <=> directory ``<etc>/repositories.d/<name>``;
* it is a stratum-1    <=> ``replica.conf`` in that directory is a regular file;
* storage type         =  first field of ``CVMFS_UPSTREAM_STORAGE`` in ``server.conf``
  (``local`` | ``S3`` | ``gw``, reported here as ``local`` | ``s3`` | ``gateway``);
* in a transaction     <=> flag file ``<spool>/<name>/in_transaction.lock`` exists;
* publishing           <=> a flock is held on ``<spool>/<name>/is_publishing.lock``
  (the file alone proves nothing; we look the lock up in ``/proc/locks`` and never take it,
  so probing cannot make a concurrent publish fail).

Every root (``/etc/cvmfs``, ``/var/spool/cvmfs``, ``/srv/cvmfs``, ``/proc/locks``) can be
redirected with :class:`CvmfsPaths`, which is how tests point this code at a scratch tree.

Owns the host-side state files and the bash ``KEY=VALUE`` config files (read and patched).
Must not import Ansible (the publisher's programs use it) nor parse signed repository files:
``.cvmfspublished`` and ``.cvmfswhitelist`` are ``_cvmfs_signed``'s; GETs are ``_http_get``'s.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shlex
import tempfile

from ._common import CvmfsError
from ._http_get import HttpFetcher

DEFAULT_ETC_DIR = "/etc/cvmfs"
DEFAULT_SPOOL_DIR = "/var/spool/cvmfs"
DEFAULT_SRV_DIR = "/srv/cvmfs"
DEFAULT_PROC_LOCKS = "/proc/locks"

KEY_KINDS = ("masterkey", "pub", "key", "crt", "gw")
SECRET_KEY_KINDS = ("masterkey", "key", "gw")

STORAGE_TYPES = {"local": "local", "S3": "s3", "gw": "gateway"}
UPSTREAM_TYPES = dict((v, k) for k, v in STORAGE_TYPES.items())

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,59}$")
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SAFE_VALUE_RE = re.compile(r"^[A-Za-z0-9_./:,@%+=-]+$")
# Variable names whose values must never be returned (server.conf normally holds none, but sites
# put things there; the S3 config file is never read into results at all).
_SECRET_NAME_RE = re.compile(r"(SECRET|PASSW|TOKEN|CREDENTIAL|ACCESS_KEY|LICENSE_KEY|PRIVATE|_KEY$)")
_NOT_SECRET = frozenset(["CVMFS_PUBLIC_KEY"])


class CvmfsPaths:
    """The roots ``cvmfs_server`` works under; all overridable (tests, unusual sites)."""

    def __init__(self, etc_dir=None, spool_dir=None, srv_dir=None, proc_locks=None):
        self.etc_dir = etc_dir or DEFAULT_ETC_DIR
        self.spool_dir = spool_dir or DEFAULT_SPOOL_DIR
        self.srv_dir = srv_dir or DEFAULT_SRV_DIR
        self.proc_locks = proc_locks or DEFAULT_PROC_LOCKS

    @property
    def repositories_d(self):
        return os.path.join(self.etc_dir, "repositories.d")

    @property
    def keys_dir(self):
        return os.path.join(self.etc_dir, "keys")

    def repo_dir(self, name):
        return os.path.join(self.repositories_d, name)

    def server_conf(self, name):
        return os.path.join(self.repo_dir(name), "server.conf")

    def replica_conf(self, name):
        return os.path.join(self.repo_dir(name), "replica.conf")

    def client_conf(self, name):
        return os.path.join(self.repo_dir(name), "client.conf")

    def spool(self, name):
        return os.path.join(self.spool_dir, name)

    def storage(self, name):
        return os.path.join(self.srv_dir, name)

    def key_file(self, name, kind):
        return os.path.join(self.keys_dir, "%s.%s" % (name, kind))

    def __repr__(self):
        return "CvmfsPaths(etc_dir=%r, spool_dir=%r, srv_dir=%r)" % (self.etc_dir, self.spool_dir, self.srv_dir)


def _paths(paths):
    return paths if paths is not None else CvmfsPaths()


# --------------------------------------------------------------------------- names

def is_valid_repo_name(name):
    """The rule of ``cvmfs_server mkfs``/``add-replica``: [A-Za-z0-9][A-Za-z0-9_.-]*, at most 60 chars."""
    return bool(name) and bool(_NAME_RE.match(name))


def split_lease_path(name):
    """``repo.example.org/sub/dir`` -> ``("repo.example.org", "/sub/dir")``; no sub-path -> ``""``."""
    repo, sep, sub = name.partition("/")
    if not sep:
        return repo, ""
    sub = "/" + sub.strip("/")
    return repo, ("" if sub == "/" else sub)


# --------------------------------------------------------------------------- bash KEY=VALUE files

def parse_bash_config(text):
    """Parse the ``KEY=VALUE`` assignments of a bash-sourced config file into an ordered dict.

    Understands comments, blank lines, ``export``, single and double quotes and backslashes
    like bash does; later assignments win. ``$VAR`` references are kept verbatim (never
    expanded: these files are data here, not code). Lines that are not plain assignments (commands, functions) are ignored.
    """
    result = {}
    for key, value, _line in _assignments(text):
        result[key] = value
    return result


def _bash_words(line):
    """Split one line into words the way bash quotes them (``shlex``, no expansion); ``ValueError`` if unbalanced.

    A ``#`` starts a comment only at the start of a word, as in bash (``A=b#c`` is one word).
    """
    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    words = []
    while not line[lexer.instream.tell():].lstrip(" \t").startswith("#"):
        word = lexer.get_token()
        if word is None:
            break
        words.append(word)
    return words


def _assignments(text):
    """Yield ``(key, value, line_index)`` for each assignment line of ``text``."""
    for index, line in enumerate(text.splitlines()):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            tokens = _bash_words(stripped)
        except ValueError:
            continue
        if tokens and tokens[0] == "export":
            tokens = tokens[1:]
        for token in tokens:
            key, sep, value = token.partition("=")
            if not sep or not _KEY_RE.match(key):
                break
            yield key, value, index


def read_config(path):
    """Parsed ``KEY=VALUE`` file, or ``{}`` when it does not exist."""
    try:
        with open(path) as handle:
            return parse_bash_config(handle.read())
    except (IOError, OSError):
        return {}


def quote_value(value):
    """Quote ``value`` so bash (and :func:`parse_bash_config`) assigns it back unchanged.

    Double quotes for text with spaces; single quotes (``shlex.quote``) for text with ``$`` or a
    backtick, which double quotes would expand.
    """
    value = "" if value is None else str(value)
    if _SAFE_VALUE_RE.match(value):
        return value
    if "$" in value or "`" in value:
        return shlex.quote(value)
    escaped = re.sub(r'(["\\])', r"\\\1", value)
    return '"%s"' % escaped


def update_config_text(text, updates):
    """Return ``text`` with every ``KEY=VALUE`` of ``updates`` in force, touching nothing else.

    An existing assignment (its last occurrence, the one bash keeps) is rewritten in place;
    a missing key is appended. Keys whose parsed value already equals the wanted one are left
    byte-for-byte alone, so the result equals ``text`` when nothing has to change.
    """
    lines = text.splitlines()
    current = {}
    last_line = {}
    for key, value, index in _assignments(text):
        current[key] = value
        last_line[key] = index
    appended = []
    for key in updates:
        if not _KEY_RE.match(key):
            raise ValueError("invalid variable name %r: use letters, digits and '_'" % key)
        wanted = "" if updates[key] is None else str(updates[key])
        if key in current and current[key] == wanted:
            continue
        new_line = "%s=%s" % (key, quote_value(wanted))
        if key in last_line:
            old = lines[last_line[key]]
            indent = old[:len(old) - len(old.lstrip())]
            export = "export " if old.lstrip().startswith("export ") else ""
            lines[last_line[key]] = indent + export + new_line
        else:
            appended.append(new_line)
    if not appended and lines == text.splitlines():
        return text
    result = "\n".join(lines + appended)
    return result + "\n" if result else result


def is_secret_name(key):
    return key not in _NOT_SECRET and bool(_SECRET_NAME_RE.search(key))


def public_config(config):
    """The config dict without variables that look like secrets."""
    return dict((k, v) for k, v in config.items() if not is_secret_name(k))


# --------------------------------------------------------------------------- upstream

def parse_upstream(value):
    """Split ``CVMFS_UPSTREAM_STORAGE`` (``<type>,<tmp dir>,<config>``).

    Returns a dict: ``type`` (raw: local|S3|gw), ``storage`` (local|s3|gateway, or the raw type
    lower-cased if unknown), ``tmp_dir``, ``config``, and per type ``local_path`` (local),
    ``s3_alias`` + ``s3_config_file`` (S3) or ``gateway_url`` (gw). ``None`` if unset or not
    three fields.
    """
    if not value:
        return None
    parts = value.split(",", 2)
    if len(parts) != 3:
        return None
    kind, tmp_dir, config = [p.strip() for p in parts]
    result = {"type": kind, "storage": STORAGE_TYPES.get(kind, kind.lower()),
              "tmp_dir": tmp_dir, "config": config}
    if kind == "local":
        result["local_path"] = config
    elif kind == "S3":
        alias, _sep, conf = config.partition("@")
        result["s3_alias"] = alias
        result["s3_config_file"] = conf
    elif kind == "gw":
        result["gateway_url"] = config
    return result


# --------------------------------------------------------------------------- per repository

def repository_names(paths=None):
    """Names of the repositories on this host (directories in repositories.d), sorted."""
    base = _paths(paths).repositories_d
    try:
        entries = os.listdir(base)
    except (IOError, OSError):
        return []
    return sorted(e for e in entries if os.path.isdir(os.path.join(base, e)))


def repository_exists(name, paths=None):
    return os.path.isdir(_paths(paths).repo_dir(name))


def is_stratum1(name, paths=None):
    return os.path.isfile(_paths(paths).replica_conf(name))


def server_config(name, paths=None):
    return read_config(_paths(paths).server_conf(name))


def replica_config(name, paths=None):
    return read_config(_paths(paths).replica_conf(name))


def in_transaction(name, paths=None):
    return os.path.isfile(os.path.join(_paths(paths).spool(name), "in_transaction.lock"))


def _flock_held(path, proc_locks):
    """Is a flock/POSIX lock held on ``path``? Looked up in /proc/locks, never taken."""
    try:
        st = os.stat(path)
    except (IOError, OSError):
        return False
    wanted = "%02x:%02x:%d" % (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    try:
        with open(proc_locks) as handle:
            table = handle.read()
    except (IOError, OSError):
        return False
    for line in table.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:1234567 0 EOF"; blocked waiters have "->" after the id
        if "->" in fields:
            continue
        if len(fields) >= 6 and fields[5] == wanted:
            return True
    return False


def is_publishing(name, paths=None):
    paths = _paths(paths)
    return _flock_held(os.path.join(paths.spool(name), "is_publishing.lock"), paths.proc_locks)


def scratch_has_changes(name, paths=None):
    """``True`` if the overlay upper dir ``<spool>/<name>/scratch/current`` holds anything.

    ``None`` if it does not exist (e.g. a gateway publisher before its first transaction).
    """
    scratch = os.path.join(_paths(paths).spool(name), "scratch", "current")
    try:
        return bool(os.listdir(scratch))
    except (IOError, OSError):
        return None


def key_files(name, paths=None):
    """``{kind: path}`` of the key files of ``name`` present in the keys directory."""
    paths = _paths(paths)
    found = {}
    for kind in KEY_KINDS:
        path = paths.key_file(name, kind)
        if os.path.isfile(path):
            found[kind] = path
    return found


def public_key_text(name, paths=None, keys_dir=None):
    """Text of ``<name>.pub`` (public; safe to return), or ``None``."""
    path = os.path.join(keys_dir or _paths(paths).keys_dir, name + ".pub")
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


# --------------------------------------------------------------------------- local storage

def _read_bytes(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def read_storage_object(repo_state, filename, paths=None, timeout=10):
    """Bytes of a top-level storage object (``.cvmfspublished``, ``.cvmfswhitelist``, ...).

    ``repo_state`` is a :func:`repository_state` dict. Local storage is read from disk (the
    upstream path); S3 and gateway storage through the repository's public URL (stratum-1 URL
    for a replica, stratum-0 URL otherwise) with ``Cache-Control: max-age=0``, like cvmfs_server.
    Returns ``None`` if the object does not exist; raises ``IOError`` if the URL cannot be read.
    """
    upstream = repo_state.get("upstream") or {}
    if upstream.get("type") == "local" and upstream.get("local_path"):
        return _read_bytes(os.path.join(upstream["local_path"], filename))
    base = repo_state.get("stratum1_url") if repo_state.get("type") == "stratum1" else repo_state.get("stratum0_url")
    if not base:
        return None
    return read_url(base.rstrip("/") + "/" + filename, timeout=timeout)


def read_url(url, timeout=10):
    """GET ``url`` (http, https or file); ``None`` on 404 / missing file, ``IOError`` on other failures."""
    fetcher = HttpFetcher(timeout=timeout, retries=0, user_agent="sharedsw.cvmfs")
    try:
        return fetcher.get(url)
    except CvmfsError as error:
        if error.extra.get("status") == 404:
            return None
        raise IOError(error.message)


def write_file_atomic(path, data, mode=None, uid=None, gid=None):
    """Replace ``path`` with ``data`` atomically (temp file + rename in the same directory).

    Mode and ownership of an existing file are kept unless ``mode``/``uid``/``gid`` are given;
    the temporary file is created with mode 0600 so secrets are never readable in between.
    """
    directory = os.path.dirname(path) or "."
    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        old = os.stat(path)
    except (IOError, OSError):
        old = None
    if mode is None:
        mode = (old.st_mode & 0o7777) if old else 0o644
    if uid is None:
        uid = old.st_uid if old else -1
    if gid is None:
        gid = old.st_gid if old else -1
    handle, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        if uid != -1 or gid != -1:
            os.chown(tmp, uid, gid)
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_text(path):
    """Text of ``path`` or ``None`` if it does not exist."""
    data = _read_bytes(path)
    return None if data is None else data.decode("utf-8", "replace")


# --------------------------------------------------------------------------- S3 configuration file

#: (option, variable) pairs of an S3 configuration file, in the order they are written.
S3_CONFIG_KEYS = (
    ("host", "CVMFS_S3_HOST"), ("port", "CVMFS_S3_PORT"), ("bucket", "CVMFS_S3_BUCKET"),
    ("access_key", "CVMFS_S3_ACCESS_KEY"), ("secret_key", "CVMFS_S3_SECRET_KEY"),
    ("use_https", "CVMFS_S3_USE_HTTPS"), ("dns_buckets", "CVMFS_S3_DNS_BUCKETS"),
    ("max_parallel_connections", "CVMFS_S3_MAX_NUMBER_OF_PARALLEL_CONNECTIONS"),
    ("flavor", "CVMFS_S3_FLAVOR"), ("region", "CVMFS_S3_REGION"),
)
REDACTED = "********"


def conf_value(value):
    """A Python value as server.conf spells it (booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def render_s3_config(config, comment):
    """Text of an S3 config file for ``config`` (dict of :data:`S3_CONFIG_KEYS` options).

    Raises ``ValueError`` when ``host`` carries a scheme or path (cvmfs wants the host name only).
    """
    host = config.get("host") or ""
    if "://" in host or "/" in host:
        raise ValueError("s3_config.host must be a host name only, without scheme or path (got %r); "
                         "use port and use_https for the rest" % host)
    lines = ["# " + comment]
    for option, key in S3_CONFIG_KEYS:
        if config.get(option) is not None:
            lines.append("%s=%s" % (key, quote_value(conf_value(config[option]))))
    return "\n".join(lines) + "\n"


def redact_config_text(text):
    """``text`` of a KEY=VALUE file with the values of secret-looking variables replaced."""
    lines = []
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip()
        if key.startswith("export "):
            key = key[len("export "):].strip()
        lines.append("%s=%s" % (key, REDACTED) if "=" in line and is_secret_name(key) else line)
    return "\n".join(lines) + ("\n" if lines else "")


def ensure_file(path, text, mode, uid=-1, gid=-1, check_mode=False, dir_mode=0o755):
    """Make ``path`` hold ``text`` with ``mode`` and owner; returns ``(changed, old_text)``."""
    old = read_text(path)
    try:
        st = os.stat(path)
        wrong_meta = (st.st_mode & 0o7777) != mode or (uid != -1 and st.st_uid != uid) or \
            (gid != -1 and st.st_gid != gid)
    except (IOError, OSError):
        wrong_meta = False
    if old == text and not wrong_meta:
        return False, old
    if not check_mode:
        directory = os.path.dirname(path)
        if directory and not os.path.isdir(directory):
            os.makedirs(directory, dir_mode)
        write_file_atomic(path, text, mode=mode, uid=uid, gid=gid)
    return True, old


# --------------------------------------------------------------------------- summaries

def repository_state(name, paths=None):
    """Everything the state files say about one repository, as a plain dict (``None`` if absent).

    Keys: ``name`` (directory name; the alias of an aliased stratum-1), ``fqrn``
    (CVMFS_REPOSITORY_NAME), ``type`` (stratum0|stratum1), ``storage`` (local|s3|gateway, ``None``
    if unknown), ``owner``, ``stratum0_url``, ``stratum1_url`` (stratum-1 only), ``upstream``
    (see :func:`parse_upstream`), ``in_transaction``, ``publishing``, ``config`` (server.conf
    without secret-looking variables), ``replica_config`` (replica.conf likewise; stratum-1 only).
    """
    paths = _paths(paths)
    if not repository_exists(name, paths):
        return None
    config = server_config(name, paths)
    stratum1 = is_stratum1(name, paths)
    upstream = parse_upstream(config.get("CVMFS_UPSTREAM_STORAGE"))
    return {
        "name": name,
        "fqrn": config.get("CVMFS_REPOSITORY_NAME") or name,
        "type": "stratum1" if stratum1 else "stratum0",
        "storage": upstream["storage"] if upstream else None,
        "owner": config.get("CVMFS_USER"),
        "stratum0_url": config.get("CVMFS_STRATUM0"),
        "stratum1_url": config.get("CVMFS_STRATUM1") if stratum1 else None,
        "upstream": upstream,
        "in_transaction": in_transaction(name, paths),
        "publishing": is_publishing(name, paths),
        "config": public_config(config),
        "replica_config": public_config(replica_config(name, paths)) if stratum1 else None,
    }


def local_repositories(paths=None):
    """One :func:`repository_state` dict per repository under ``repositories.d``, sorted by name."""
    paths = _paths(paths)
    return [state for state in (repository_state(n, paths) for n in repository_names(paths)) if state]
