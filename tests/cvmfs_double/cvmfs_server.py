# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""TEST DOUBLE — mimics documented behaviour from the facts file, not CernVM-FS.

Run through the sh wrapper ``cvmfs_server`` next to this file.

This is NOT cvmfs_server. It reproduces, for tests only, the flags, exit codes, messages and
state files that the project's reference notes (cvmfs-facts.md, sections 1, 2 and 12) document
for the sub-commands our modules drive: mkfs, import, rmfs, transaction, abort, publish, ingest,
add-replica, snapshot (also ``snapshot -a``, which the stratum-1 role's timer runs), diff, list. Nothing is mounted, nothing is signed; manifests and whitelists
carry fake hashes and signatures.

The contract tests (tests/integration/test_cvmfs_double_contract.py) run the same calls against the
real cvmfs_server 2.12 on a lab host and hold this double to it: exit codes, key messages and the
state files the modules read. Where the two differed, the double was changed to match the real one.

Environment:
  CVMFS_DOUBLE_ROOT   required; the double works under ROOT/etc/cvmfs, ROOT/var/spool/cvmfs,
                      ROOT/srv/cvmfs and records every call in ROOT/calls.jsonl.
  CVMFS_DOUBLE_FAIL   optional, comma-separated "<subcommand>:<key>" failures to inject for
                      conditions a scratch tree cannot produce (no Apache, no CAP_SYS_ADMIN, ...);
                      see INJECTED below.
Gateway leases held by OTHER publishers: ROOT/gateway/leases.json, {"<fqrn>/<path>": seconds}.
Published content of a stratum-0: ROOT/var/spool/cvmfs/<fqrn>/rdonly (the "rdonly mount");
changes of a transaction: .../scratch/current (tests write there, as the overlay would).
Storage (.cvmfspublished, .cvmfswhitelist, ...) of S3 or gateway repositories lives at the
path of a file:// stratum-0/stratum-1 URL.
"""

import datetime
import fcntl
import getopt
import hashlib
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request

ROOT = os.environ.get("CVMFS_DOUBLE_ROOT")
if not ROOT:
    sys.stderr.write("TEST DOUBLE: CVMFS_DOUBLE_ROOT is not set\n")
    sys.exit(99)
ETC = os.path.join(ROOT, "etc/cvmfs")
REPOS = os.path.join(ETC, "repositories.d")
KEYS = os.path.join(ETC, "keys")
SPOOL = os.path.join(ROOT, "var/spool/cvmfs")
SRV = os.path.join(ROOT, "srv/cvmfs")
FAIL = set(x.strip() for x in os.environ.get("CVMFS_DOUBLE_FAIL", "").split(",") if x.strip())
LAYOUT_REVISION = "143"

# Failures a scratch tree cannot produce: (stream, text, exit code). Texts from cvmfs-facts.md.
STACK = "\n\nStacktrace:\n(TEST DOUBLE: no stack)"
INJECTED = {
    "mkfs:not_root": ("err", "Only root can create a new repository", 1),
    "mkfs:no_aufs": ("err", "aufs kernel module missing", 1),
    "mkfs:no_client": ("err", "cvmfs client missing", 1),
    "mkfs:autofs": ("err", "Autofs on /cvmfs has to be disabled", 1),
    "mkfs:no_cap": ("err", "Need CAP_SYS_ADMIN for cvmfs_swissknife", 1),
    "mkfs:no_masterkeycard": ("err", "masterkeycard not available: no card (TEST DOUBLE)", 1),
    "mkfs:no_unionfs": ("err", "neither OverlayFS nor AUFS detected on the system!", 1),
    "import:not_root": ("err", "Only root can create a new repository", 1),
    "import:not_owned": ("err", "{storage} not owned by {owner}", 1),
    "rmfs:not_root": ("err", "Only root can remove a repository", 1),
    "transaction:permission": ("err", "Permission error: No write permission to repository", 1),
    "transaction:autofs": ("err", "(unexpected termination) Autofs on /cvmfs has to be disabled" + STACK, 1),
    "transaction:enter_shell": ("err", "Invocation error: opening a transaction is unsupported within the "
                                       "ephemeral writable shell", 1),
    "transaction:hook": ("err", "transaction hook failed, not opening a transaction", 7),
    "transaction:gateway_error": ("both", ("Error: 'invalid_hmac'",
                                           "(unexpected termination) cannot parse session token" + STACK), 1),
    "transaction:eio": ("err", "CernVM-FS transaction error: TEST DOUBLE publisher initialisation failure", 5),
    "abort:broken": ("err", "publisher file system mount state is broken", 5),
    "publish:owned_by": ("out", "Permission denied: Repository {name} is owned by somebody", 1),
    "publish:unavailable": ("out", "Repository unavailable under {stratum0}", 1),
    "publish:open_fds": ("out", "Open writable file descriptors on {name}", 1),
    "publish:auto_repair": ("err", "Auto-Repair is disabled (CVMFS_AUTO_REPAIR_MOUNTPOINT = false)", 1),
    "publish:dirtab": ("err", "Failed to apply .cvmfsdirtab", 1),
    "publish:sync": ("err", "Synchronization failed\n\nExecuted Command:\ncvmfs_swissknife sync (TEST DOUBLE)", 1),
    "publish:manifest": ("err", "Manifest creation failed", 1),
    "publish:tagging": ("err", "Tagging failed", 1),
    "publish:signing": ("err", "Signing failed", 1),
    "publish:gc": ("err", "Garbage collection failed (1)", 1),
    "publish:lock": ("err", "Failed to acquire publishing lock", 1),
    "add-replica:not_root": ("err", "Only root can create a new repository", 1),
    "add-replica:no_apache": ("err", "Apache must be installed and running", 1),
    "snapshot:initial_in_progress": ("err", "an initial snapshot is in progress... aborting", 1),
    "mkfs:no_apache": ("err", "Apache must be installed and running", 1),
}


# --------------------------------------------------------------------------- plumbing

def record(argv):
    try:
        stdin_devnull = os.path.samestat(os.fstat(0), os.stat("/dev/null"))
    except OSError:
        stdin_devnull = False
    os.makedirs(ROOT, exist_ok=True)
    with open(os.path.join(ROOT, "calls.jsonl"), "a") as handle:
        handle.write(json.dumps({"argv": argv, "cwd": os.getcwd(), "LC_ALL": os.environ.get("LC_ALL"),
                                 "stdin_devnull": stdin_devnull}) + "\n")


def out(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def err(text):
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def die(text, rc=1):
    err(text)
    sys.exit(rc)


def usage(note=None):
    out("Usage: cvmfs_server COMMAND [options] <parameters>   (TEST DOUBLE help text)")
    if note:
        out("NOTE: " + note)
        sys.exit(3)
    sys.exit(2)


def fire(key, **values):
    """Emit the injected failure ``key`` (see INJECTED) and exit, if the test asked for it."""
    if key not in FAIL:
        return
    stream, text, rc = INJECTED[key]
    if stream == "both":
        out(text[0].format(**values))
        err(text[1].format(**values))
    elif stream == "out":
        out(text.format(**values))
    else:
        err(text.format(**values))
    sys.exit(rc)


def prompt(text):
    """Ask like cvmfs_server does; returns the answer or None on EOF."""
    sys.stdout.write(text)
    sys.stdout.flush()
    line = sys.stdin.readline()
    return line.strip() if line else None


def read_conf(path):
    conf = {}
    try:
        with open(path) as handle:
            for line in handle:
                line = line.strip()
                if not line or line.startswith("#") or "=" not in line:
                    continue
                key, value = line.split("=", 1)
                if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                    value = value[1:-1]
                conf[key.replace("export ", "").strip()] = value
    except OSError:
        pass
    return conf


def write_conf(path, items, header="# Created by cvmfs_server."):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        if header:
            handle.write(header + "\n")
        for key, value in items:
            if value == "" or " " in value:
                value = '"%s"' % value
            handle.write("%s=%s\n" % (key, value))


def valid_name(name):
    ok = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return bool(name) and len(name) <= 60 and name[0] in ok and all(c in ok + "_.-" for c in name)


def mkfqrn(name):
    """cvmfs_mkfqrn: a name without a dot gets ".$CVMFS_DEFAULT_DOMAIN" (empty by default) appended."""
    if "." in name:
        return name
    return name + "." + server_local().get("CVMFS_DEFAULT_DOMAIN", "")


def server_local():
    """/etc/cvmfs/server.local, sourced by the real cvmfs_server at start."""
    return read_conf(os.path.join(ETC, "server.local"))


def date_parses(spec):
    return subprocess.run(["date", "--date", spec], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          check=False).returncode == 0


def user_exists(user):
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False


def get_owner(owner, name):
    if owner is not None:
        return owner
    answer = prompt("Owner of %s [root]: " % name)
    if answer is None:
        die("TEST DOUBLE: interactive prompt reached with stdin at EOF; automation must pass -o", 99)
    return answer or "root"


def repo_dir(name):
    return os.path.join(REPOS, name)


def exists(name):
    return os.path.isdir(repo_dir(name))


def is_stratum1(name):
    return os.path.isfile(os.path.join(repo_dir(name), "replica.conf"))


def server_conf(name):
    return read_conf(os.path.join(repo_dir(name), "server.conf"))


def spool(name, *parts):
    return os.path.join(SPOOL, name, *parts)


def url_path(url):
    return url[len("file://"):] if url and url.startswith("file://") else None


def storage_of(conf, stratum1=False):
    """Directory holding .cvmfspublished etc. of a repository, or None (remote http storage)."""
    upstream = conf.get("CVMFS_UPSTREAM_STORAGE", "").split(",")
    if upstream[0] == "local" and len(upstream) == 3:
        return upstream[2]
    return url_path(conf.get("CVMFS_STRATUM1" if stratum1 else "CVMFS_STRATUM0"))


def fetch(url, name):
    opener = urllib.request.build_opener()
    with opener.open(url.rstrip("/") + "/" + name, timeout=10) as response:
        return response.read()


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def fake_hash(*parts):
    return hashlib.sha1("/".join(str(p) for p in parts).encode()).hexdigest()


def header(path):
    fields = {}
    try:
        with open(path, "rb") as handle:
            data = handle.read().decode("latin-1")
    except OSError:
        return None
    for index, line in enumerate(data.split("\n")):
        if line == "--":
            break
        if line and not (index == 0 and line.isdigit()):
            fields.setdefault(line[0], line[1:])
    return fields


def write_manifest(storage, fqrn, revision, gc=False):
    text = "".join([
        "C%s\n" % fake_hash(fqrn, revision, "catalog"), "B4096\n", "Rd41d8cd98f00b204e9800998ecf8427e\n",
        "D240\n", "S%d\n" % revision, "G%s\n" % ("yes" if gc else "no"), "Ano\n", "N%s\n" % fqrn,
        "X%s\n" % fake_hash(fqrn, "cert"), "T%d\n" % int(time.time())])
    data = text.encode() + b"--\n" + hashlib.sha1(text.encode()).hexdigest().encode() + b"\n\x00TEST-DOUBLE-SIG"
    os.makedirs(storage, exist_ok=True)
    with open(os.path.join(storage, ".cvmfspublished"), "wb") as handle:
        handle.write(data)


def write_whitelist(storage, fqrn, days=30):
    created = now_utc()
    expires = created + datetime.timedelta(days=days)
    fingerprint = ":".join(fake_hash(fqrn, "cert")[i:i + 2].upper() for i in range(0, 40, 2))
    text = "%s\nE%s\nN%s\n%s\n" % (
        created.strftime("%Y%m%d%H%M%S"), expires.strftime("%Y%m%d%H%M%S"), fqrn, fingerprint)
    data = text.encode() + b"--\n" + hashlib.sha1(text.encode()).hexdigest().encode() + b"\n\x00TEST-DOUBLE-SIG"
    with open(os.path.join(storage, ".cvmfswhitelist"), "wb") as handle:
        handle.write(data)


def whitelist_expiry(storage):
    fields = header(os.path.join(storage, ".cvmfswhitelist")) if storage else None
    try:
        return datetime.datetime.strptime(fields["E"], "%Y%m%d%H%M%S")
    except (TypeError, KeyError, ValueError):
        return None


def revision(storage):
    fields = header(os.path.join(storage, ".cvmfspublished")) if storage else None
    return int(fields["S"]) if fields and fields.get("S", "").isdigit() else 0


def tags_file(storage):
    return os.path.join(storage, ".double-tags.json")


def read_tags(storage):
    try:
        with open(tags_file(storage)) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def commit(name, conf, tag=None, description=None):
    """Publish: merge scratch into rdonly, bump the revision, tag; returns the new revision."""
    storage = storage_of(conf)
    scratch = spool(name, "scratch", "current")
    rdonly = spool(name, "rdonly")
    if os.path.isdir(scratch):
        shutil.copytree(scratch, rdonly, dirs_exist_ok=True, symlinks=True)
        shutil.rmtree(scratch)
    os.makedirs(scratch, exist_ok=True)
    new_revision = (revision(storage) if storage else 0) + 1
    if storage:
        write_manifest(storage, conf.get("CVMFS_REPOSITORY_NAME", name), new_revision,
                       conf.get("CVMFS_GARBAGE_COLLECTION") == "true")
        tags = read_tags(storage)
        if tag:
            tags[tag] = {"revision": new_revision, "description": description or ""}
        with open(tags_file(storage), "w") as handle:
            json.dump(tags, handle)
    return new_revision


def key_files(name, gateway):
    """The key files mkfs needs, in the order it imports them (no masterkey for a gateway publisher)."""
    kinds = ("crt", "pub", "gw") if gateway else ("masterkey", "crt", "pub", "key")
    return ["%s.%s" % (name, kind) for kind in kinds]


def keys_import_location(name, from_dir, gateway):
    """Where mkfs takes the keys from (``None``: it makes new ones). Keys already in /etc/cvmfs/keys
    are reused; -k pointing elsewhere then dies before anything is created."""
    if any(os.path.isfile(os.path.join(KEYS, k)) for k in key_files(name, gateway)):
        if from_dir and os.path.normpath(from_dir) != os.path.normpath(KEYS):
            die("Importing keys from '%s' would overwrite keys in '/etc/cvmfs/keys'" % from_dir)
        return KEYS
    return from_dir


def write_keys(name, location, gateway=False):
    """Import the key files from ``location`` (each one not already in /etc/cvmfs/keys is copied, in
    order; a missing one fails like cp does, leaving the configuration behind) or make new ones."""
    os.makedirs(KEYS, exist_ok=True)
    if location:
        shown = "/etc/cvmfs/keys" if location == KEYS else location
        sys.stdout.write("Importing CernVM-FS Master Key and Certificate from '%s'... " % shown)
        sys.stdout.flush()
        for keyfile in key_files(name, gateway):
            target = os.path.join(KEYS, keyfile)
            if not os.path.isfile(target):
                source = os.path.join(location, keyfile)
                if not os.path.isfile(source):
                    err("cp: cannot stat '%s': No such file or directory" % os.path.join(shown, keyfile))
                    die("fail!")
                shutil.copy(source, target)
            os.chmod(target, 0o400 if keyfile.endswith(("key", ".gw")) else 0o444)
        out("done")
        return
    if gateway:
        die("TEST DOUBLE: gateway publisher keys missing (text not documented in the facts)")
    for kind, mode, text in (("masterkey", 0o400, "-----BEGIN RSA PRIVATE KEY-----\nDOUBLE-MASTER\n"),
                             ("pub", 0o444, "-----BEGIN PUBLIC KEY-----\nDOUBLE-PUB-%s\n-----END PUBLIC KEY-----\n" % name),
                             ("key", 0o400, "-----BEGIN RSA PRIVATE KEY-----\nDOUBLE-KEY\n"),
                             ("crt", 0o444, "-----BEGIN CERTIFICATE-----\nDOUBLE-CRT\n-----END CERTIFICATE-----\n")):
        path = os.path.join(KEYS, "%s.%s" % (name, kind))
        with open(path, "w") as handle:
            handle.write(text)
        os.chmod(path, mode)
    out("Creating CernVM-FS Master Key and Self-Signed Certificate... done")


def s0_config(name, owner, stratum0, upstream, opts):
    items = [("CVMFS_CREATOR_VERSION", LAYOUT_REVISION), ("CVMFS_REPOSITORY_NAME", name),
             ("CVMFS_REPOSITORY_TYPE", "stratum0"), ("CVMFS_USER", owner),
             ("CVMFS_UNION_DIR", "/cvmfs/" + name), ("CVMFS_SPOOL_DIR", "/var/spool/cvmfs/" + name),
             ("CVMFS_STRATUM0", stratum0), ("CVMFS_UPSTREAM_STORAGE", upstream),
             ("CVMFS_USE_FILE_CHUNKING", "true"), ("CVMFS_MIN_CHUNK_SIZE", "4194304"),
             ("CVMFS_AVG_CHUNK_SIZE", "8388608"), ("CVMFS_MAX_CHUNK_SIZE", "16777216"),
             ("CVMFS_UNION_FS_TYPE", "overlayfs"), ("CVMFS_HASH_ALGORITHM", opts.get("-a", "sha1")),
             ("CVMFS_COMPRESSION_ALGORITHM", opts.get("-Z", "default")),
             ("CVMFS_EXTERNAL_DATA", "true" if "-X" in opts else "false"),
             ("CVMFS_AUTO_TAG", "false" if "-g" in opts else "true"),
             ("CVMFS_AUTO_TAG_TIMESPAN", opts.get("-G", "")),
             ("CVMFS_GARBAGE_COLLECTION", "true" if "-z" in opts else "false"),
             ("CVMFS_AUTO_REPAIR_MOUNTPOINT", "true"), ("CVMFS_AUTOCATALOGS", "false"),
             ("CVMFS_ASYNC_SCRATCH_CLEANUP", "true"), ("CVMFS_PRINT_STATISTICS", "false"),
             ("CVMFS_UPLOAD_STATS_DB", "false"), ("CVMFS_UPLOAD_STATS_PLOTS", "false"),
             ("CVMFS_IGNORE_XDIR_HARDLINKS", "true")]
    if "-z" in opts:
        items.append(("CVMFS_AUTO_GC", "true"))
    if "-x" in opts:
        items.append(("CVMFS_SERVER_PROXY", opts["-x"]))
    write_conf(os.path.join(repo_dir(name), "server.conf"), items)
    write_conf(os.path.join(repo_dir(name), "client.conf"), [
        ("CVMFS_CACHE_BASE", "/var/spool/cvmfs/%s/cache" % name), ("CVMFS_QUOTA_LIMIT", "4000"),
        ("CVMFS_MOUNT_DIR", "/cvmfs"), ("CVMFS_SERVER_URL", stratum0),
        ("CVMFS_HTTP_PROXY", opts.get("-x", "DIRECT")), ("CVMFS_PUBLIC_KEY", "/etc/cvmfs/keys/%s.pub" % name),
        ("CVMFS_TALK_OWNER", owner)], header="# Created by cvmfs_server.  Don't touch.")


def make_spool(name):
    for sub in ("scratch/current", "scratch/wastebin", "rdonly", "tmp", "cache", "ofs_workdir"):
        os.makedirs(spool(name, sub), exist_ok=True)


def parse(optstring, args, long_options=()):
    try:
        return getopt.getopt(args, optstring, list(long_options))
    except getopt.GetoptError as exc:
        usage("Unrecognized option: %s" % exc.opt)
        raise AssertionError("unreachable")


def one_name(rest):
    if not rest:
        usage("Please provide a repository name")
    if len(rest) > 1:
        usage("Too many arguments provided")
    return rest[0]


# --------------------------------------------------------------------------- sub-commands

def cmd_mkfs(args):
    """mkfs in the order of the real script: URLs, existence, upstream, environment, -G, keys, owner;
    then configuration, keys, spool, storage, initial commit (revision 1)."""
    opts, rest = parse("Xw:u:o:mf:vgG:a:zs:k:pRV:Z:x:", args)
    opts = dict(opts)
    name = mkfqrn(one_name(rest))
    if not valid_name(name):
        die("invalid repository name: %s" % name)
    if "-s" in opts:
        if "-w" not in opts:
            die("Please specify the HTTP-URL for S3 (add option -w)")
        stratum0 = opts["-w"].rstrip("/") + "/" + name
        upstream = opts.get("-u") or "S3,/var/spool/cvmfs/%s/tmp,%s@%s" % (name, name, opts["-s"])
    else:
        stratum0 = opts.get("-w", "http://localhost/cvmfs/" + name)
        upstream = opts.get("-u") or "local,%s/%s/data/txn,%s/%s" % (SRV, name, SRV, name)
    if exists(name):
        die("The repository %s already exists" % name)
    if len(upstream.split(",")) != 3:
        usage("The given upstream definition (-u) is invalid. Should look like: "
              "<spooler type> , <tmp directory> , <spooler configuration>")
    for what in ("not_root", "no_aufs", "no_client", "autofs", "no_cap", "no_masterkeycard", "no_unionfs"):
        fire("mkfs:" + what)
    kind = upstream.split(",")[0]
    if kind not in ("local", "S3", "gw"):
        die("unsupported storage type")
    if kind == "local":
        fire("mkfs:no_apache")
    if "-G" in opts and not date_parses(opts["-G"]):
        die("Auto tags time span cannot be parsed")
    gateway = kind == "gw"
    location = keys_import_location(name, opts.get("-k"), gateway)
    owner = get_owner(opts.get("-o"), name)
    if not user_exists(owner):
        die("No user %s" % owner)
    if "-s" in opts and not read_conf(opts["-s"]):
        die("TEST DOUBLE: cannot read S3 config %s" % opts["-s"])
    out("Creating Configuration Files... done")
    s0_config(name, owner, stratum0, upstream, opts)
    write_keys(name, location, gateway)
    out("Creating CernVM-FS Server Infrastructure... done")
    make_spool(name)
    if not gateway:
        storage = storage_of(server_conf(name))
        if kind == "local":
            os.makedirs(os.path.join(storage, "data", "txn"), exist_ok=True)
            out("Creating Backend Storage... done")
        if storage:
            write_manifest(storage, name, 0, "-z" in opts)
            write_whitelist(storage, name)
            out("Signing 30 day whitelist with master key... done")
            with open(os.path.join(storage, ".cvmfs_master_replica"), "w") as handle:
                handle.write("This file marks the repository as replicatable to stratum 1 servers\n")
        out("Creating Initial Repository... done")
        out("Mounting CernVM-FS Storage... (overlayfs) done")
        out("Allowing Replication of this Repository... done")
        out("Initial commit... New CernVM-FS repository for %s" % name)
        with open(spool(name, "scratch", "current", "new_repository"), "w") as handle:
            handle.write("")
        commit(name, server_conf(name))
    out("Updating global JSON information... done")
    out("If you go for production, backup your masterkey from /etc/cvmfs/keys/!")


def cmd_import(args):
    opts, rest = parse("w:o:u:k:c:lsf:grtRpx:", args)
    opts = dict(opts)
    name = one_name(rest)
    fire("import:not_root")
    if exists(name):
        die("The repository %s already exists" % name)
    owner = get_owner(opts.get("-o"), name)
    if not user_exists(owner):
        die("No user %s" % owner)
    upstream = opts.get("-u") or "local,%s/%s/data/txn,%s/%s" % (SRV, name, SRV, name)
    stratum0 = opts.get("-w", "http://localhost/cvmfs/" + name)
    conf = {"CVMFS_UPSTREAM_STORAGE": upstream, "CVMFS_STRATUM0": stratum0}
    storage = storage_of(conf)
    for item in (storage, os.path.join(storage, ".cvmfspublished"), os.path.join(storage, "data")):
        if not os.path.exists(item):
            die("%s missing" % item)
    fire("import:not_owned", storage=storage, owner=owner)
    keydir = opts.get("-k", KEYS)
    resign = "-r" in opts or "-t" in opts
    if "-t" not in opts and not all(os.path.isfile(os.path.join(keydir, "%s.%s" % (name, k))) for k in ("key", "crt")):
        die("repository signing key or certificate not found (use -t maybe?)")
    if not os.path.isfile(os.path.join(storage, ".cvmfswhitelist")):
        die("didn't find %s/.cvmfswhitelist" % storage)
    expiry = whitelist_expiry(storage)
    if not resign and (expiry is None or expiry < now_utc()):
        die("Repository whitelist expired (use -r maybe?)")
    if resign and not os.path.isfile(os.path.join(keydir, name + ".masterkey")):
        die("Neither masterkey nor masterkeycard found for recreating whitelist")
    if keydir != KEYS:
        os.makedirs(KEYS, exist_ok=True)
        for kind in ("masterkey", "crt", "pub", "key", "gw"):
            source = os.path.join(keydir, "%s.%s" % (name, kind))
            if os.path.isfile(source):
                shutil.copy(source, KEYS)
    s0_config(name, owner, stratum0, upstream, dict(opts))
    make_spool(name)
    if resign:
        write_whitelist(storage, name)
    out("Importing CernVM-FS repository %s (TEST DOUBLE)... done" % name)


def cmd_rmfs(args):
    opts, rest = parse("fp", args)
    opts = dict(opts)
    if not rest:
        usage("Please provide a repository name")
    for name in rest:
        if "-f" not in opts:
            what = ("REMOVE THE CERNVM-FS REPOSITORY INFRASTRUCTURE for %s!" % name if "-p" in opts
                    else "WIPE OUT THE CERNVM-FS REPOSITORY %s INCLUDING SIGNING KEYS!" % name)
            answer = prompt("You are about to %s  Are you sure (y/N)? " % what)
            if answer not in ("y", "Y"):
                continue
        fire("rmfs:not_root")
        if not exists(name):
            die("The repository %s does not exist." % name)
        conf = server_conf(name)
        stratum0 = not is_stratum1(name)
        upstream = conf.get("CVMFS_UPSTREAM_STORAGE", "").split(",")
        shutil.rmtree(spool(name), ignore_errors=True)
        shutil.rmtree(repo_dir(name), ignore_errors=True)
        if upstream[0] == "local" and "-p" not in opts and len(upstream) == 3:
            shutil.rmtree(upstream[2], ignore_errors=True)
        if stratum0 and "-p" not in opts:
            for kind in ("masterkey", "pub", "key", "crt", "gw"):
                path = os.path.join(KEYS, "%s.%s" % (name, kind))
                if os.path.exists(path):
                    os.unlink(path)
        out("CernVM-FS repository %s wiped out!" % name)


def publisher_settings(name):
    """cvmfs_publish's repository lookup (transaction/abort)."""
    if not os.path.isfile(os.path.join(repo_dir(name), "server.conf")):
        die("CernVM-FS error: Unable to find the configuration file `server.conf` for the cvmfs publisher: %s" % name)
    return server_conf(name)


def overlaps(a, b):
    a_parts = [p for p in a.split("/") if p]
    b_parts = [p for p in b.split("/") if p]
    if len(a_parts) == 1 or len(b_parts) == 1:
        return a_parts[0] == b_parts[0]
    shorter = min(len(a_parts), len(b_parts))
    return a_parts[:shorter] == b_parts[:shorter]


def busy_lease(path):
    try:
        with open(os.path.join(ROOT, "gateway", "leases.json")) as handle:
            leases = json.load(handle)
    except (OSError, ValueError):
        return None
    for held, remaining in leases.items():
        if overlaps(held, path):
            return int(remaining)
    return None


def cmd_transaction(args):
    opts, rest = parse("t:T:", args, ("retry-timeout=", "template="))
    opts = dict(opts)
    retry = opts.get("-t", opts.get("--retry-timeout"))
    if len(rest) != 1:
        err("Invocation error: transaction needs exactly one repository")
        sys.exit(1)
    full = rest[0].rstrip("/")
    name, _sep, sub = full.partition("/")
    conf = publisher_settings(name)
    if is_stratum1(name):
        die("(unexpected termination) Repository %s is not a stratum 0 repository" % name + STACK)
    for what in ("permission", "autofs", "enter_shell", "hook", "gateway_error", "eio"):
        fire("transaction:" + what)
    expiry = whitelist_expiry(storage_of(conf))
    if expiry is not None and expiry < now_utc():
        die("Repository whitelist for $name is expired", 22)
    if expiry is not None and expiry < now_utc() + datetime.timedelta(hours=12):
        out("Warning: Repository whitelist stays valid for less than 12 hours!")
    # -t: retry while busy (also when a transaction is open), 0 = for ever (the double: an hour)
    deadline = None if retry is None else time.time() + (float(retry) or 3600)
    while os.path.isfile(spool(name, "in_transaction.lock")):
        if deadline is None or time.time() >= deadline:
            die("CernVM-FS transaction error: another transaction is already open", 17)
        out("repository busy, retrying")
        time.sleep(0.5)
    if sub:
        rdonly = spool(name, "rdonly")
        parent = os.path.dirname(os.path.join(rdonly, sub))
        target = os.path.join(rdonly, sub)
        if not os.path.exists(parent):
            die("cannot open transaction on non-existing path %s" % full, 2)
        if not os.path.isdir(parent) or (os.path.exists(target) and not os.path.isdir(target)):
            die("cannot open transaction on %s, which is not a directory" % full, 20)
    if conf.get("CVMFS_UPSTREAM_STORAGE", "").startswith("gw,"):
        while True:
            remaining = busy_lease(full)
            if remaining is None:
                break
            if deadline is None or time.time() >= deadline:
                out("Path busy. Time remaining = %d" % remaining)
                die("CernVM-FS transaction error: lease path busy", 16)
            out("repository busy, retrying")
            time.sleep(0.2)
        with open(spool(name, "session_token"), "w") as handle:
            handle.write("TEST-DOUBLE-TOKEN %s\n" % full)
    os.makedirs(spool(name, "scratch", "current"), exist_ok=True)
    with open(spool(name, "in_transaction.lock"), "w") as handle:
        handle.write("")


def cmd_abort(args):
    opts, rest = parse("f", args, ("force",))
    opts = dict(opts)
    if len(rest) != 1:
        err("Invocation error: abort needs exactly one repository")
        sys.exit(1)
    name = rest[0].split("/")[0]
    publisher_settings(name)
    if is_stratum1(name):
        die("CernVM-FS error: Repository %s is not a stratum 0 repository" % name)
    if os.getcwd().startswith("/cvmfs/" + name):
        out("Current working directory is in /cvmfs/%s.  Please release, e.g. by 'cd $HOME'." % name)
        sys.exit(1)
    if not os.path.isfile(spool(name, "in_transaction.lock")):
        die("Repository %s is not in a transaction" % name, 22)
    if "-f" not in opts and "--force" not in opts:
        answer = prompt("You are about to DISCARD ALL CHANGES OF THE CURRENT TRANSACTION for %s!  "
                        "Are you sure (y/N)? " % name)
        if answer is not None and answer not in ("y", "Y"):
            sys.exit(4)
    fire("abort:broken")
    shutil.rmtree(spool(name, "scratch", "current"), ignore_errors=True)
    os.makedirs(spool(name, "scratch", "current"))
    for flag in ("in_transaction.lock", "session_token"):
        if os.path.exists(spool(name, flag)):
            os.unlink(spool(name, flag))


def cmd_publish(args):
    opts, rest = parse("F:NXZ:pa:c:m:vn:fed", args)
    opts = dict(opts)
    if not rest:
        usage("Please provide a repository name")
    retcode = 0
    for full in rest:
        name = full.split("/")[0]
        if not exists(name):
            die("The repository %s does not exist." % name)
        if is_stratum1(name):
            die("This is not a stratum 0 repository")
        tag = opts.get("-a")
        if tag is not None and " " in tag:
            die("Spaces are not allowed in tag names")
        conf = server_conf(name)
        storage = storage_of(conf)
        gateway = conf.get("CVMFS_UPSTREAM_STORAGE", "").startswith("gw,")
        values = dict(name=name, stratum0=conf.get("CVMFS_STRATUM0"))
        failed = [k for k in ("publish:owned_by", "publish:unavailable") if k in FAIL]
        if failed:
            out(INJECTED[failed[0]][1].format(**values))
            retcode = 1
            continue
        expiry = whitelist_expiry(storage)
        if expiry is not None and expiry < now_utc():
            out("Repository whitelist for %s is expired!" % name)
            retcode = 1
            continue
        if not os.path.isfile(spool(name, "in_transaction.lock")):
            out("Repository %s is not in a transaction" % name)
            retcode = 1
            continue
        if "publish:open_fds" in FAIL:
            out(INJECTED["publish:open_fds"][1].format(**values))
            retcode = 1
            continue
        if os.getcwd().startswith("/cvmfs/" + name):
            out("Current working directory is in /cvmfs/%s.  Please release, e.g. by 'cd $HOME'." % name)
            retcode = 1
            continue
        if os.path.exists(spool(name, "checkout")) and tag is None:
            out("Publishing a checked out revision requires a tag name")
            retcode = 1
            continue
        fire("publish:auto_repair")
        lock_fd = os.open(spool(name, "is_publishing.lock"), os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            die("Another publish process is active for %s" % name)
        if tag is not None and storage and tag in read_tags(storage):
            die("Tag name '%s' is already in use." % tag)
        if conf.get("CVMFS_AUTO_GC") == "true" and conf.get("CVMFS_AUTO_GC_TIMESPAN") \
                and not date_parses(conf["CVMFS_AUTO_GC_TIMESPAN"]):
            die("Failed to parse CVMFS_AUTO_GC_TIMESPAN: '%s'" % conf["CVMFS_AUTO_GC_TIMESPAN"])
        for what in ("lock", "dirtab", "sync", "manifest", "tagging", "signing", "gc"):
            fire("publish:" + what)
        if tag is None and conf.get("CVMFS_AUTO_TAG", "true") == "true" and not gateway:
            tag = "generic-" + now_utc().strftime("%Y-%m-%dT%H:%M:%SZ")
            out("Using auto tag '%s'" % tag)
        out("Waiting for upload of files before committing...")
        out("Committing file catalogs...")
        new_revision = commit(name, conf, tag, opts.get("-m"))
        for flag in ("in_transaction.lock", "session_token"):
            if os.path.exists(spool(name, flag)):
                os.unlink(spool(name, flag))
        os.close(lock_fd)
        if gateway:
            out("Changes submitted to repository gateway")
        else:
            out("Tagging %s" % name)
            out("Flushing file system buffers")
            out("Signing new manifest")
            out("Remounting newly created repository revision")
        out("(TEST DOUBLE) published revision %d" % new_revision)
    sys.exit(retcode)


def cmd_ingest(args):
    if not args:
        usage("Please provide a repository name")
    name = args[-1]
    try:
        opts, rest = getopt.getopt(args[:-1], "t:b:d:cu:g:k", [
            "tar_file=", "base_dir=", "delete=", "catalog", "user=", "group=", "keep-ownership"])
    except getopt.GetoptError as exc:
        usage("Unrecognized option: %s" % exc.opt)
    if rest:
        usage("Too many arguments provided")
    long_to_short = {"--tar_file": "-t", "--base_dir": "-b", "--delete": "-d", "--catalog": "-c",
                     "--user": "-u", "--group": "-g", "--keep-ownership": "-k"}
    tar = base = None
    deletes = []
    flags = set()
    for key, value in opts:
        key = long_to_short.get(key, key)
        if key == "-t":
            tar = value
        elif key == "-b":
            base = value
        elif key == "-d":
            deletes.append(value)
        else:
            flags.add(key)
    if not exists(name):
        die("The repository %s does not exist." % name)
    if tar is None and base is None and not deletes:
        die("Please provide some parameters, ...")
    if base is not None and tar is None:
        die("Please provide the tarball to extract, ...")
    if tar is not None and base is None:
        die("Please set the base directory where to extract the tarball, ...")
    if ("-u" in flags or "-g" in flags) and "-k" in flags:
        die("You cannot provide both: either provide user (-u)/group (-g) or keep the ownership (-k) of the tarball")
    conf = server_conf(name)
    if conf.get("CVMFS_UPSTREAM_STORAGE", "").startswith("gw,"):
        if len(deletes) > 1:
            die("Could not delete multiple paths using a gateway in a single transaction.")
        if deletes and tar is not None:
            die("Could not delete and add a file in the same transaction while using gateway.")
    if os.path.isfile(spool(name, "in_transaction.lock")):
        err("CernVM-FS transaction error: another transaction is already open")
        die("Impossible to start a transaction")
    tag = None
    if conf.get("CVMFS_AUTO_TAG", "true") == "true" and not conf.get("CVMFS_UPSTREAM_STORAGE", "").startswith("gw,"):
        tag = "generic-" + now_utc().strftime("%Y-%m-%dT%H:%M:%SZ")
        out("Using auto tag '%s'" % tag)
    out("Swissknife Ingest: Processing changes...")
    staged = None
    if tar is not None:
        staged = extract_tar(name, tar)
    rdonly = spool(name, "rdonly")
    for path in deletes:
        target = os.path.join(rdonly, path.strip("/"))
        if os.path.isdir(target):
            shutil.rmtree(target)
        elif os.path.lexists(target):
            os.unlink(target)
        else:
            err("[WARNING] '%s' cannot be deleted. Unrecognized file type." % path)
    if staged is not None:
        dest = os.path.join(rdonly, base.strip("/"))
        shutil.copytree(staged, dest, dirs_exist_ok=True, symlinks=True)
        shutil.rmtree(staged)
        if "-c" in flags:
            open(os.path.join(dest, ".cvmfscatalog"), "w").close()
    out("Waiting for upload of files before committing...")
    out("Committing file catalogs...")
    new_revision = commit(name, conf, tag)
    for line in ("Tagging %s" % name, "Flushing file system buffers", "Signing new manifest",
                 "Remounting newly created repository revision"):
        out(line)
    out("(TEST DOUBLE) ingested, revision %d" % new_revision)


def extract_tar(name, tar):
    """Extract the tar file ``tar`` (``-``: stdin) into a new directory of the spool and return it;
    ``None`` for an empty stdin, which the real ingest takes for an empty archive. Uncompressed tar
    only (cvmfs builds its libarchive without zlib, bzip2, xz, ...). A tar that ends between two
    members counts as complete, as for the real one; a bad one fails before anything changed."""
    failed = "Synchronization failed\n\nExecuted Command:\ncvmfs_swissknife ingest (TEST DOUBLE)"
    try:
        if tar != "-":
            archive = tarfile.open(tar, mode="r:")
        elif not sys.stdin.buffer.peek(1):
            return None
        else:
            archive = tarfile.open(fileobj=sys.stdin.buffer, mode="r|")
    except (OSError, tarfile.TarError):
        err("Impossible to open the archive: Unrecognized archive format")
        err("Swissknife Ingest: Initialization of the synchronisation engine failed")
        die(failed)
    staged = tempfile.mkdtemp(prefix="ingest-", dir=spool(name))
    try:
        with archive:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.12
                archive.extractall(staged, filter="data")
            else:
                archive.extractall(staged)
    except (OSError, tarfile.TarError) as error:
        shutil.rmtree(staged)
        err("failed to read data from the tar entry (TEST DOUBLE: %s)\n Truncated tar archive" % error)
        die(failed)
    return staged


def cmd_add_replica(args):
    opts, rest = parse("o:u:n:w:azs:pg:P", args)
    opts = dict(opts)
    if len(rest) < 2 and "-P" not in opts:
        usage("Too few arguments provided")
    if len(rest) > 2:
        usage("Too many arguments provided")
    fire("add-replica:not_root")
    url = rest[0].rstrip("/")
    public_key = rest[1] if len(rest) > 1 else None
    try:
        data = fetch(url, ".cvmfspublished")
    except Exception:  # pylint: disable=broad-except
        die("Failed to access Stratum0 repository at %s" % url)
    fqrn = None
    for line in data.decode("latin-1").split("\n"):
        if line == "--":
            break
        if line.startswith("N"):
            fqrn = line[1:]
    fqrn = fqrn or url.rsplit("/", 1)[-1]
    alias = mkfqrn(opts["-n"]) if "-n" in opts else fqrn
    if not valid_name(alias):
        die("invalid repository name: %s" % alias)
    try:
        fetch(url, ".cvmfs_master_replica")
    except Exception:  # pylint: disable=broad-except
        die("The repository URL %s does not point to a replicable master copy of %s" % (url, fqrn))
    if exists(alias):
        if is_stratum1(alias):
            die("There is already a Stratum1 repository %s" % alias)
        die("Repository %s already exists as a Stratum0 repository.\n"
            "Use -n to create an aliased Stratum1 replica for %s on this machine." % (alias, fqrn))
    if "-s" in opts:
        if "-w" not in opts:
            die("Please specify the HTTP-URL for S3 (add option -w)")
        stratum1 = opts["-w"].rstrip("/") + "/" + alias
        upstream = opts.get("-u") or "S3,/var/spool/cvmfs/%s/tmp,%s@%s" % (alias, alias, opts["-s"])
    else:
        stratum1 = opts.get("-w", "http://localhost/cvmfs/" + alias)
        upstream = opts.get("-u") or "local,%s/%s/data/txn,%s/%s" % (SRV, alias, SRV, alias)
    owner = get_owner(opts.get("-o"), alias)
    if not user_exists(owner):
        die("No user %s" % owner)
    if upstream.startswith("local,"):
        update_geodb()
        if "-a" not in opts:
            fire("add-replica:no_apache")
    out("Creating Configuration Files... done")
    items = [("CVMFS_CREATOR_VERSION", LAYOUT_REVISION), ("CVMFS_REPOSITORY_NAME", fqrn),
             ("CVMFS_REPOSITORY_TYPE", "stratum1"), ("CVMFS_USER", owner),
             ("CVMFS_SPOOL_DIR", "/var/spool/cvmfs/" + alias), ("CVMFS_STRATUM0", url),
             ("CVMFS_STRATUM1", stratum1), ("CVMFS_UPSTREAM_STORAGE", upstream),
             ("CVMFS_SNAPSHOT_GROUP", opts.get("-g", ""))]
    if "-z" in opts:
        items.append(("CVMFS_AUTO_GC", "true"))
    write_conf(os.path.join(repo_dir(alias), "server.conf"), items)
    if "-P" in opts:
        replica = [("CVMFS_PASSTHROUGH", "true")]
    else:
        replica = [("CVMFS_NUM_WORKERS", "16"), ("CVMFS_PUBLIC_KEY", public_key or ""),
                   ("CVMFS_HTTP_TIMEOUT", "10"), ("CVMFS_HTTP_RETRIES", "3")]
    write_conf(os.path.join(repo_dir(alias), "replica.conf"), replica)
    storage = storage_of(server_conf(alias), stratum1=True)
    if storage:
        os.makedirs(os.path.join(storage, "data", "txn"), exist_ok=True)
    if upstream.startswith("local,"):
        out("Create CernVM-FS Storage... done")
        if "-p" not in opts:
            out("Update Apache configuration... done")
    os.makedirs(spool(alias), exist_ok=True)
    out("Creating CernVM-FS Server Infrastructure... done")
    out("Updating global JSON information... done")
    out("")
    out("Use 'cvmfs_server snapshot' to replicate %s." % alias)
    out("Make sure to install the repository public key in /etc/cvmfs/keys/")
    out("You might have to add the key in /etc/cvmfs/repositories.d/%s/replica.conf" % alias)


GEO_DB = os.path.join(ROOT, "var/lib/cvmfs-server/geo/GeoLite2-City.mmdb")


def update_geodb():
    """``_update_geodb -l`` of a local stratum-1 (add-replica): link CVMFS_GEO_DB_FILE (NONE turns the
    GeoAPI off), or install the GeoIP database, which needs CVMFS_GEO_ACCOUNT_ID and
    CVMFS_GEO_LICENSE_KEY (from /etc/cvmfs/server.local). The double never downloads: with both set
    it writes a stand-in database."""
    settings = dict(server_local(), **dict((k, v) for k, v in os.environ.items() if k.startswith("CVMFS_GEO_")))
    db_file = settings.get("CVMFS_GEO_DB_FILE", "")
    os.makedirs(os.path.dirname(GEO_DB), exist_ok=True)
    if db_file:
        if not os.path.islink(GEO_DB) or os.readlink(GEO_DB) != db_file:
            if db_file != "NONE" and not os.access(db_file, os.R_OK):
                die("%s doesn't exist or is not readable" % db_file)
            if os.path.lexists(GEO_DB):
                os.unlink(GEO_DB)
            out("Linking GeoIP Database")
            os.symlink(db_file, GEO_DB)
        return
    if os.path.isfile(GEO_DB) and not os.path.islink(GEO_DB):
        return  # installed already; the lazy update is not modelled
    sys.stdout.write("Installing GeoIP Database... ")
    sys.stdout.flush()
    for key in ("CVMFS_GEO_ACCOUNT_ID", "CVMFS_GEO_LICENSE_KEY"):
        if not settings.get(key):
            err("%s not set" % key)
            out("fail")
            sys.exit(3)
    if os.path.lexists(GEO_DB):
        os.unlink(GEO_DB)
    with open(GEO_DB, "w") as handle:
        handle.write("TEST DOUBLE: stand-in GeoIP database\n")
    out("done")


LOGROTATE = os.path.join(ROOT, "etc/logrotate.d/cvmfs")
LOG_DIR = os.path.join(ROOT, "var/log/cvmfs")


def snapshot_one(alias, no_wait):
    """Snapshot of one replica (``snapshot [-t] <alias>``); returns normally or dies."""
    if not exists(alias):
        die("The repository %s does not exist." % alias)
    if not is_stratum1(alias):
        out("Repository %s is not a stratum 1 repository" % alias)
        sys.exit(1)
    conf = server_conf(alias)
    if not conf.get("CVMFS_STRATUM1"):
        die("Missing CVMFS_STRATUM1 URL in server.conf")
    fire("snapshot:initial_in_progress")
    os.makedirs(spool(alias), exist_ok=True)
    lock_fd = os.open(spool(alias, "is_updating.lock"), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        if no_wait:
            die("another update is in progress... aborting")
        out("waiting for another update to finish...")
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
    storage = storage_of(conf, stratum1=True)
    if storage is None:
        die("TEST DOUBLE: stratum-1 storage %s is not a local or file:// location" % conf["CVMFS_STRATUM1"])
    if not os.path.exists(os.path.join(storage, ".cvmfs_last_snapshot")):
        out("Initial snapshot")
    try:
        for item in (".cvmfspublished", ".cvmfswhitelist"):
            data = fetch(conf["CVMFS_STRATUM0"], item)
            with open(os.path.join(storage, item), "wb") as handle:
                handle.write(data)
    except Exception:  # pylint: disable=broad-except
        die("TEST DOUBLE: cannot fetch from %s (text not documented in the facts)" % conf["CVMFS_STRATUM0"])
    stamp = now_utc().strftime("%a %b %d %H:%M:%S UTC %Y")
    with open(os.path.join(storage, ".cvmfs_last_snapshot"), "w") as handle:
        handle.write(stamp + "\n")
    with open(os.path.join(storage, ".cvmfs_status.json"), "w") as handle:
        json.dump({"last_snapshot": stamp}, handle)
    out("(TEST DOUBLE) snapshot of %s at revision %d" % (alias, revision(storage)))
    os.close(lock_fd)


def snapshot_all(opts):
    """``snapshot -a [-s] [-n] [-i] [-g group]`` (facts 1.15): needs the logrotate file unless -n,
    snapshots every active replica of the group (-t implied), logs instead of printing, exits 0."""
    if "-n" not in opts and not os.path.isfile(LOGROTATE):
        # exit 1 and a suggested logrotate file, as documented; the wording is the double's own
        out("TEST DOUBLE: /etc/logrotate.d/cvmfs is missing; create it or pass -n. Suggested content:")
        out("/var/log/cvmfs/*.log {\n    weekly\n    missingok\n    notifempty\n}")
        sys.exit(1)
    group = opts.get("-g", "")
    os.makedirs(LOG_DIR, exist_ok=True)
    for alias in sorted(os.listdir(REPOS)) if os.path.isdir(REPOS) else []:
        if not is_stratum1(alias):
            continue
        replica = read_conf(os.path.join(repo_dir(alias), "replica.conf"))
        if replica.get("CVMFS_REPLICA_ACTIVE", "").lower() == "no":
            continue
        if server_conf(alias).get("CVMFS_SNAPSHOT_GROUP", "") != group:
            continue
        storage = storage_of(server_conf(alias), stratum1=True)
        if "-i" in opts and not (storage and os.path.exists(os.path.join(storage, ".cvmfs_last_snapshot"))):
            continue
        log = os.path.join(LOG_DIR, (alias + ".log") if "-s" in opts else "snapshots.log")
        with open(log, "a") as handle:
            child = subprocess.run([sys.executable, os.path.abspath(__file__), "snapshot", "-t", alias],
                                   stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT, check=False)
            handle.write("(TEST DOUBLE) snapshot of %s exited %d\n" % (alias, child.returncode))
    sys.exit(0)


def cmd_snapshot(args):
    opts, rest = parse("tasnig:", args)
    opts = dict(opts)
    if "-a" not in opts and any(k in opts for k in ("-s", "-n", "-i", "-g")):
        usage("options -s, -n, -i and -g need -a")
    if "-a" in opts:
        snapshot_all(opts)
    if not rest:
        usage("Please provide a repository name")
    for alias in rest:
        snapshot_one(alias, "-t" in opts)


def cmd_diff(args):
    """``diff --worktree``: the transaction's changes as ``[add]``/``[mod]``/``[rem]`` lines under
    /cvmfs/<name>, from the scratch area (overlay upper dir) against the published tree. An overlay
    whiteout (character device 0/0) is a removal. The real order follows the catalogs; this one is sorted."""
    opts, rest = parse("mhs:d:", args, ("worktree",))
    name = one_name(rest)
    if not exists(name):
        die("The repository %s does not exist." % name)
    if "--worktree" not in dict(opts):
        die("TEST DOUBLE: only diff --worktree is implemented")
    scratch, rdonly = spool(name, "scratch", "current"), spool(name, "rdonly")

    def show(change, relpath):
        out("[%s] /cvmfs/%s/%s" % (change, name, relpath))

    def removed(relpath):
        published = os.path.join(rdonly, relpath)
        if os.path.isdir(published) and not os.path.islink(published):
            for entry in sorted(os.listdir(published)):
                removed(os.path.join(relpath, entry))
        show("rem", relpath)

    def walk(relpath):
        for entry in sorted(os.listdir(os.path.join(scratch, relpath))):
            path = os.path.join(relpath, entry)
            st = os.lstat(os.path.join(scratch, path))
            published = os.path.join(rdonly, path)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                removed(path)
            elif stat.S_ISDIR(st.st_mode) and os.path.isdir(published):
                show("mod", path)
                walk(path)
            elif stat.S_ISDIR(st.st_mode):
                show("add", path)
                walk(path)
            else:
                if os.path.lexists(published):
                    show("rem", path)
                show("add", path)

    if os.path.isdir(scratch):
        walk("")


def cmd_list(args):
    """One line per repository: ``<name> (<type> / <storage>[ - in transaction]) [-> <fqrn>] ``
    (whitelist and health remarks are not modelled)."""
    if args:
        usage("Too many arguments provided")
    if not os.path.isdir(REPOS):
        return
    for name in sorted(os.listdir(REPOS)):
        path = os.path.join(REPOS, name)
        if not os.path.isdir(path):
            out("Warning: unexpected file '%s' in directory /etc/cvmfs/repositories.d/" % path)
            continue
        conf = server_conf(name)
        kind = conf.get("CVMFS_UPSTREAM_STORAGE", "local").split(",")[0]
        stratum1 = is_stratum1(name)
        transaction = " - in transaction" if not stratum1 and os.path.isfile(spool(name, "in_transaction.lock")) else ""
        alias_of = "-> " + conf.get("CVMFS_REPOSITORY_NAME", name) if stratum1 and \
            conf.get("CVMFS_REPOSITORY_NAME", name) != name else ""
        out("%s (%s / %s%s) %s " % (name, "stratum1" if stratum1 else "stratum0", kind, transaction, alias_of))


COMMANDS = {"mkfs": cmd_mkfs, "import": cmd_import, "rmfs": cmd_rmfs, "transaction": cmd_transaction,
            "abort": cmd_abort, "publish": cmd_publish, "ingest": cmd_ingest, "add-replica": cmd_add_replica,
            "snapshot": cmd_snapshot, "diff": cmd_diff, "list": cmd_list}


def main(argv):
    record(argv)
    if not argv:
        usage()
    if argv[0] not in COMMANDS:
        usage("Unrecognized command: %s" % argv[0])
    COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
