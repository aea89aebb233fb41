"""Contract tests: the TEST DOUBLE of cvmfs_server (tests/cvmfs_double) against the REAL cvmfs_server.

The same sequence of ``cvmfs_server`` calls (the ones our modules and runner make) runs on the
session's lab host (tests/support/cvmfs_lab_host.py) twice: against the real CernVM-FS 2.12 and
against the double, copied there and run with ``CVMFS_DOUBLE_ROOT`` pointing at a scratch tree
(whose storage Apache serves at ``http://localhost/cvmfs-double/``, as it serves the real one at
``http://localhost/cvmfs/``). After every call both must give the exit status the step expects and
print its key message on the same stream, and the state files our modules read must be the same:
``server.conf`` and ``replica.conf`` (every key and value), ``in_transaction.lock``, the revision
and name in ``.cvmfspublished``, the whitelist's name and lifetime, ``.cvmfs_master_replica``,
``.cvmfs_last_snapshot``, the key files, the scratch area and the published files a step names.
Paths under the double's root and its URL are mapped back to the real ones before comparing.

Every mismatch of a test is collected, so one run lists all the ways the double differs.
"""

import json
import os
import re
import uuid

import pytest

from tests.support.cvmfs_lab_host import skip_module_without_packages
from tests.support.tarballs import tarball

pytestmark = pytest.mark.cvmfs
skip_module_without_packages()

DOUBLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cvmfs_double")
DOUBLE_DIR = "/opt/sharedsw-pytest/cvmfs_double"
DOUBLE_URL = "http://localhost/cvmfs-double"
REAL_URL = "http://localhost/cvmfs"
APACHE_CONF = "/etc/apache2/conf-enabled/sharedsw-pytest-cvmfs-double.conf"

PROBE = r"""
import datetime, json, os, sys
root, request = sys.argv[1], json.loads(sys.argv[2])
etc, spool, srv = root + "/etc/cvmfs", root + "/var/spool/cvmfs", root + "/srv/cvmfs"


def conf(path):
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def header(path):
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    fields = {}
    for index, line in enumerate(data.split(b"\n--\n", 1)[0].decode("latin-1").split("\n")):
        if line and not (index == 0 and line.isdigit()):
            fields.setdefault(line[0], line[1:])
    return fields


def scratch(name):
    path = os.path.join(spool, name, "scratch", "current")
    if not os.path.isdir(path):
        return "absent"
    return "changed" if os.listdir(path) else "empty"


state = {"repositories": sorted(n for n in os.listdir(etc + "/repositories.d") if n in request["names"])
         if os.path.isdir(etc + "/repositories.d") else []}
now = datetime.datetime.utcnow()
for name in request["names"]:
    manifest = header(os.path.join(srv, name, ".cvmfspublished")) or {}
    whitelist = header(os.path.join(srv, name, ".cvmfswhitelist")) or {}
    expires = whitelist.get("E")
    state[name] = {
        "server.conf": conf(os.path.join(etc, "repositories.d", name, "server.conf")),
        "replica.conf": conf(os.path.join(etc, "repositories.d", name, "replica.conf")),
        "in_transaction.lock": os.path.isfile(os.path.join(spool, name, "in_transaction.lock")),
        "spool": os.path.isdir(os.path.join(spool, name)),
        "scratch": scratch(name),
        "storage": os.path.isdir(os.path.join(srv, name)),
        "revision (S)": manifest.get("S"),
        "manifest name (N)": manifest.get("N"),
        "whitelist name (N)": whitelist.get("N"),
        "whitelist days": (datetime.datetime.strptime(expires, "%Y%m%d%H%M%S") - now).days if expires else None,
        ".cvmfs_master_replica": os.path.isfile(os.path.join(srv, name, ".cvmfs_master_replica")),
        ".cvmfs_last_snapshot": os.path.isfile(os.path.join(srv, name, ".cvmfs_last_snapshot")),
        "keys": sorted(k for k in ("masterkey", "pub", "key", "crt", "gw")
                       if os.path.isfile(os.path.join(etc, "keys", "%s.%s" % (name, k)))),
    }
for name, relpath in request["published"]:
    state["published %s/%s" % (name, relpath)] = os.path.exists(
        os.path.join(request["published_dir"] % name, relpath))
print(json.dumps(state, sort_keys=True))
"""


def differences(real, double, prefix=""):
    """``(key path, real value, double value)`` of every leaf where two state dicts differ."""
    if isinstance(real, dict) and isinstance(double, dict):
        found = []
        for key in sorted(set(real) | set(double)):
            found.extend(differences(real.get(key), double.get(key), prefix + "/" + key if prefix else key))
        return found
    return [] if real == double else [(prefix, real, double)]


class Site:
    """Where one side of the contract runs: the real cvmfs_server (``root`` "") or the double."""

    def __init__(self, host, kind, root=""):
        self.host, self.kind, self.root = host, kind, root
        self.url = REAL_URL if kind == "real" else DOUBLE_URL
        self.fail = ""

    def run(self, argv, stdin=None):
        """``cvmfs_server *argv`` with stdin /dev/null, or the bytes ``stdin``."""
        if self.kind == "real":
            return self.host.cvmfs_server(*argv, stdin=stdin)
        return self.host.sh('cd / && CVMFS_DOUBLE_ROOT="$1" CVMFS_DOUBLE_FAIL="$2" LC_ALL=C exec "$3" "${@:4}"'
                            + (' </dev/null' if stdin is None else ''),
                            self.root, self.fail, DOUBLE_DIR + "/cvmfs_server", *argv, check=False, stdin=stdin)

    def apache(self, running):
        """Stop or start Apache (real); the double has no Apache to look at: its failure is injected."""
        if self.kind == "real":
            self.host.sh('systemctl "$1" apache2', "start" if running else "stop")
        else:
            self.fail = "" if running else "mkfs:no_apache,add-replica:no_apache"

    def normal(self, text):
        """``text`` with the double's root and URL mapped back to the real ones."""
        if self.kind == "real" or text is None:
            return text
        return text.replace(self.root + "/", "/").replace(DOUBLE_URL, REAL_URL)

    def state(self, names, published):
        published_dir = "/cvmfs/%s" if self.kind == "real" else self.root + "/var/spool/cvmfs/%s/rdonly"
        request = {"names": names, "published": published, "published_dir": published_dir}
        output = self.host.sh('exec /usr/bin/python3 -c "$1" "$2" "$3"', PROBE, self.root, json.dumps(request))
        return json.loads(self.normal(output.stdout))

    def write_in_transaction(self, name, relpath, data):
        """A change inside the open transaction: into /cvmfs/<name> (real) or the scratch area the
        double models the overlay with."""
        base = "/cvmfs/%s" if self.kind == "real" else self.root + "/var/spool/cvmfs/%s/scratch/current"
        self.host.write((base % name) + "/" + relpath, data)

    def path(self, path):
        """``path`` (an absolute path of the real host) inside this site's tree."""
        return self.root + path


class Contract:
    """Runs each step on both sites and collects every way the double differs from the real program."""

    def __init__(self, sites, names):
        self.sites = sites
        self.names = list(names)
        self.published = []
        self.mismatches = []
        self.seen = set()
        self.steps = 0

    def step(self, argv, rc, stdout=None, stderr=None, not_stdout=None, stdin=None):
        """Run ``argv`` (a list, or a function of the site giving one) on both sites, with the bytes
        ``stdin`` on its standard input if given; both must exit ``rc`` and match the regular
        expressions ``stdout``/``stderr`` (on that stream), and not ``not_stdout``; then the states
        must agree."""
        self.steps += 1
        label = None
        for site in self.sites:
            words = argv(site) if callable(argv) else argv
            label = label or "step %d: cvmfs_server %s%s" % (self.steps, " ".join(words),
                                                             "" if stdin is None else " <%d bytes" % len(stdin))
            output = site.run(words, stdin=stdin)
            streams = {"stdout": site.normal(output.stdout), "stderr": site.normal(output.stderr)}
            problems = []
            if output.rc != rc:
                problems.append("exit status %s, expected %s" % (output.rc, rc))
            for stream, pattern in (("stdout", stdout), ("stderr", stderr)):
                if pattern is not None and not re.search(pattern, streams[stream], re.MULTILINE):
                    problems.append("%s does not match %r" % (stream, pattern))
            if not_stdout is not None and re.search(not_stdout, streams["stdout"], re.MULTILINE):
                problems.append("stdout matches %r" % not_stdout)
            if problems:
                self.mismatches.append("%s [%s]: %s\n    stdout: %r\n    stderr: %r" % (
                    label, site.kind, "; ".join(problems), streams["stdout"][-800:], streams["stderr"][-800:]))
        self.compare(label)

    def compare(self, label):
        """Report each state difference once, at the step where it first shows."""
        real, double = [site.state(self.names, self.published) for site in self.sites]
        for key, real_value, double_value in differences(real, double):
            seen = (key, json.dumps(real_value, sort_keys=True), json.dumps(double_value, sort_keys=True))
            if seen not in self.seen:
                self.seen.add(seen)
                self.mismatches.append("%s: %s is %s for real, %s for the double" % (label, key, seen[1], seen[2]))

    def each(self, action):
        """Do ``action(site)`` on both sites (set-up between steps, not compared)."""
        for site in self.sites:
            action(site)

    def check(self):
        assert not self.mismatches, "the double differs from the real cvmfs_server in %d place(s):\n%s" % (
            len(self.mismatches), "\n".join(self.mismatches))


@pytest.fixture(scope="module")
def sites(cvmfs_lab_host):
    """The real site and the double's site on the lab host (the double copied there, its storage
    served by Apache like the real one)."""
    host = cvmfs_lab_host
    root = "/srv/sharedsw-pytest/cvmfs-double-" + uuid.uuid4().hex[:8]  # not under /tmp: Apache has a private /tmp
    files = {}
    for name in ("cvmfs_server", "cvmfs_server.py"):
        with open(os.path.join(DOUBLE, name), "rb") as handle:
            files[name] = handle.read()
    host.put_tree(files, DOUBLE_DIR)
    host.sh('chmod 755 "$1/cvmfs_server" && install -d "$2/srv/cvmfs" "$2/etc/cvmfs"\n'
            'echo CVMFS_GEO_DB_FILE=NONE > "$2/etc/cvmfs/server.local"\n'
            'printf "Alias /cvmfs-double %s\\n<Directory %s>\\n  Require all granted\\n</Directory>\\n" '
            '"$2/srv/cvmfs" "$2/srv/cvmfs" > "$3" && systemctl reload apache2', DOUBLE_DIR, root, APACHE_CONF)
    yield [Site(host, "real"), Site(host, "double", root)]
    host.sh('rm -f "$1" && systemctl reload apache2; rm -rf "$2"', APACHE_CONF, root)


def unique(prefix="ct"):
    return "%s-%s.test.invalid" % (prefix, uuid.uuid4().hex[:8])


@pytest.fixture
def cleanup(sites):
    names = []
    yield names
    for site in sites:
        leftovers = []
        for name in reversed(names):
            site.run(["abort", "-f", name])
            site.run(["rmfs", "-f", name])
            leftovers += [site.path("/srv/cvmfs/" + name)] + [site.path("/etc/cvmfs/keys/%s.%s" % (name, kind))
                                                              for kind in ("masterkey", "pub", "key", "crt")]
        site.host.sh('rm -rf -- "$@"', *leftovers)


def test_stratum0_lifecycle(sites, cleanup):
    """mkfs, transaction, abort, publish with and without changes and tags, diff, list, rmfs."""
    repo = unique()
    cleanup.append(repo)
    contract = Contract(sites, [repo])
    contract.step(["mkfs", "-o", "root", repo], 0, stdout=r"^Creating Configuration Files\.\.\. done$")
    contract.step(["mkfs", "-o", "root", repo], 1, stderr=r"^The repository %s already exists$" % re.escape(repo))
    contract.step(["list"], 0, stdout=r"^%s \(stratum0 / local\)  $" % re.escape(repo))
    contract.step(["abort", "-f", repo], 22, stderr=r"^Repository %s is not in a transaction$" % re.escape(repo))
    contract.step(["publish", "-f", repo], 1, stdout=r"^Repository %s is not in a transaction$" % re.escape(repo))
    contract.step(["transaction", repo], 0)
    contract.step(["transaction", repo], 17,
                  stderr=r"^CernVM-FS transaction error: another transaction is already open$")
    contract.step(["transaction", "-t", "1", repo], 17, stdout=r"^repository busy, retrying$",
                  stderr=r"^CernVM-FS transaction error: another transaction is already open$")
    contract.step(["list"], 0, stdout=r"^%s \(stratum0 / local - in transaction\)  $" % re.escape(repo))
    contract.step(["diff", "--worktree", repo], 0)
    contract.each(lambda site: site.write_in_transaction(repo, "hello.txt", "hello\n"))
    contract.step(["diff", "--worktree", repo], 0, stdout=r"^\[add\] /cvmfs/%s/hello\.txt$" % re.escape(repo))
    contract.step(["abort", "-f", repo], 0)
    contract.step(["transaction", "-t", "5", repo], 0)
    contract.each(lambda site: site.write_in_transaction(repo, "hello.txt", "hello\n"))
    contract.published.append((repo, "hello.txt"))  # checked from the publish on (the real overlay shows it before)
    contract.step(["publish", "-f", "-a", "first", "-m", "the first tag", repo], 0,
                  stdout=r"^Signing new manifest$", not_stdout="Using auto tag")
    contract.step(["transaction", repo], 0)
    contract.step(["publish", "-f", "-a", "first", repo], 1, stderr=r"^Tag name 'first' is already in use\.$")
    contract.step(["publish", "-f", "-a", "two words", repo], 1, stderr=r"^Spaces are not allowed in tag names$")
    contract.step(["publish", "-f", repo], 0, stdout=r"^Using auto tag 'generic-\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ'$")
    contract.step(["rmfs", "-f", repo], 0, stdout=r"^CernVM-FS repository %s wiped out!$" % re.escape(repo))
    contract.step(["rmfs", "-f", repo], 1, stderr=r"^The repository %s does not exist\.$" % re.escape(repo))
    contract.check()


def test_missing_repository_and_invalid_names(sites, cleanup):
    missing, dotless = unique("missing"), "ct-" + uuid.uuid4().hex[:8]
    cleanup.extend([dotless, dotless + "."])
    contract = Contract(sites, [missing, dotless, dotless + "."])
    no_repo = r"^The repository %s does not exist\.$" % re.escape(missing)
    no_conf = r"^CernVM-FS error: Unable to find the configuration file `server.conf` for the cvmfs publisher: %s$"
    contract.step(["rmfs", "-f", missing], 1, stderr=no_repo)
    contract.step(["publish", "-f", missing], 1, stderr=no_repo)
    contract.step(["snapshot", missing], 1, stderr=no_repo)
    contract.step(["transaction", missing], 1, stderr=no_conf % re.escape(missing))
    contract.step(["abort", "-f", missing], 1, stderr=no_conf % re.escape(missing))
    contract.step(["mkfs", "-o", "root", "bad!name.test"], 1, stderr=r"^invalid repository name: bad!name\.test$")
    contract.step(["mkfs", "-o", "nosuchuser", missing], 1, stderr=r"^No user nosuchuser$")
    contract.step(["mkfs", "-o", "root", "-G", "no such time", missing], 1,
                  stderr=r"^Auto tags time span cannot be parsed$")
    # a name without a dot gets ".$CVMFS_DEFAULT_DOMAIN" (empty) appended: the repository is "<name>."
    contract.step(["mkfs", "-o", "root", dotless], 0)
    contract.step(["transaction", dotless], 1, stderr=no_conf % re.escape(dotless))
    contract.step(["rmfs", "-f", dotless + "."], 0)
    contract.check()


def test_mkfs_options_and_keys(sites, cleanup):
    """The mkfs options our repository module passes, rmfs -p, and re-creating from kept keys (-k)."""
    options, kept, imported = unique("opts"), unique("kept"), unique("keys")
    cleanup.extend([options, kept, imported])
    contract = Contract(sites, [options, kept, imported])
    contract.step(["mkfs", "-o", "root", "-g", "-a", "shake128", "-z", "-Z", "none", "-X", "-v", options], 0)
    contract.step(["mkfs", "-o", "root", "-G", "2 weeks ago", kept], 0)
    contract.step(["rmfs", "-f", "-p", kept], 0)
    contract.each(lambda site: site.apache(False))
    try:  # the Apache check of local storage does not depend on -p (no Apache configuration)
        contract.step(["mkfs", "-o", "root", "-p", imported], 1, stderr=r"^Apache must be installed and running$")
    finally:
        contract.each(lambda site: site.apache(True))

    def stage_keys(site, kinds=("masterkey", "pub", "key", "crt")):
        site.host.sh('install -d "$1" && for k in "${@:4}"; do cp "$2.$k" "$1/$3.$k"; done',
                     site.path("/var/tmp/keys-" + imported), site.path("/etc/cvmfs/keys/" + kept), imported, *kinds)

    contract.each(lambda site: stage_keys(site, ("pub", "crt")))
    contract.step(["mkfs", "-o", "root", "-k", "/var/tmp/keys-" + imported, imported], 1,
                  stderr=r"^cp: cannot stat '/var/tmp/keys-%s/%s\.(masterkey|key)': No such file or directory$"
                  % (re.escape(imported), re.escape(imported)))
    contract.step(["rmfs", "-f", imported], 0)
    contract.each(stage_keys)
    contract.step(["mkfs", "-o", "root", "-k", "/var/tmp/keys-" + imported, imported], 0,
                  stdout=r"^Importing CernVM-FS Master Key and Certificate from '/var/tmp/keys-%s'\.\.\. done$"
                  % re.escape(imported))
    contract.each(lambda site: site.host.sh('rm -rf "$1"', site.path("/var/tmp/keys-" + imported)))
    contract.check()


def test_ingest(sites, cleanup):
    repo = unique()
    cleanup.append(repo)
    contract = Contract(sites, [repo])
    contract.step(["mkfs", "-o", "root", repo], 0)
    tarballs = {"plain": tarball({"bin/tool": b"hi\n"}), "gz": tarball({"bin/tool": b"hi\n"}, "gz")}
    for kind, data in tarballs.items():
        sites[0].host.write("/var/tmp/%s.%s" % (repo, kind), data)  # outside the double's root: one copy serves both
    contract.published.extend([(repo, "app/1/bin/tool"), (repo, "app/2/bin/tool")])
    contract.step(["ingest", "-t", "/var/tmp/%s.plain" % repo, "-b", "app/1", repo], 0)
    contract.step(["ingest", "-t", "/var/tmp/%s.gz" % repo, "-b", "app/2", repo], 1,
                  stderr=r"^Impossible to open the archive: Unrecognized archive format$")
    contract.step(["transaction", repo], 0)
    contract.step(["ingest", "-t", "/var/tmp/%s.plain" % repo, "-b", "app/2", repo], 1,
                  stderr=r"^CernVM-FS transaction error: another transaction is already open\n"
                         r"Impossible to start a transaction$")
    contract.step(["abort", "-f", repo], 0)
    contract.step(["ingest", "-d", "app/1", repo], 0)
    sites[0].host.sh('rm -f /var/tmp/"$1".*', repo)
    contract.check()


def test_ingest_from_stdin(sites, cleanup):
    """``ingest -t -``: the tar on stdin (what the publish job pipes in, decompressed). Only plain
    tar; an empty stdin is an empty archive; a tar that ends between two members is taken as
    complete (the publish job must never close stdin early), one that ends inside a member is not."""
    repo = unique()
    cleanup.append(repo)
    contract = Contract(sites, [repo])
    contract.step(["mkfs", "-o", "root", repo], 0)
    plain = tarball({"bin/tool": b"hi\n"})
    two = tarball({"a/one": b"1" * 100000, "a/two": b"2" * 100000})
    first_member = 512 + 100352  # header + data padded to 512-byte blocks
    contract.published.extend([(repo, "app/1/bin/tool"), (repo, "app/2"), (repo, "app/3"), (repo, "app/4/a/one"),
                               (repo, "app/4/a/two"), (repo, "app/5")])
    contract.step(["ingest", "-t", "-", "-b", "app/1", repo], 0, stdin=plain)
    contract.step(["ingest", "-t", "-", "-b", "app/2", repo], 1, stdin=tarball({"bin/tool": b"hi\n"}, "gz"),
                  stderr=r"^Impossible to open the archive: Unrecognized archive format$")
    contract.step(["ingest", "-t", "-", "-b", "app/3", repo], 0, stdin=b"")
    contract.step(["ingest", "-t", "-", "-b", "app/4", repo], 0, stdin=two[:first_member])
    contract.step(["ingest", "-t", "-", "-b", "app/5", repo], 1, stdin=two[:first_member + 50000],
                  stderr=r"^ Truncated tar archive$")
    contract.check()


def test_replica(sites, cleanup):
    """add-replica and snapshot of a local stratum-1 of a local stratum-0 on the same host."""
    repo = unique()
    alias = repo.replace("ct-", "ct-s1-")
    other = unique("other")
    cleanup.extend([repo, alias, other])
    contract = Contract(sites, [repo, alias, other])
    contract.step(["mkfs", "-o", "root", repo], 0)

    def add_replica(*args, source=repo):
        return lambda site: (["add-replica", "-o", "root"] + list(args)
                             + [site.url + "/" + source, site.path("/etc/cvmfs/keys/%s.pub" % repo)])

    contract.step(["snapshot", repo], 1, stdout=r"^Repository %s is not a stratum 1 repository$" % re.escape(repo))
    contract.step(add_replica("-n", alias), 0,
                  stdout=r"^Use 'cvmfs_server snapshot' to replicate %s\.$" % re.escape(alias))
    contract.step(add_replica("-n", alias), 1, stderr=r"^There is already a Stratum1 repository %s$" % re.escape(alias))
    contract.step(add_replica(), 1,
                  stderr=r"^Repository %s already exists as a Stratum0 repository\.$" % re.escape(repo))
    contract.step(add_replica("-n", other, source="nothere.test.invalid"), 1,
                  stderr=r"^Failed to access Stratum0 repository at %s/nothere\.test\.invalid$" % re.escape(REAL_URL))
    contract.step(["list"], 0, stdout=r"^%s \(stratum1 / local\) -> %s $" % (re.escape(alias), re.escape(repo)))
    contract.step(["snapshot", alias], 0, stdout=r"^Initial snapshot$")
    contract.step(["transaction", repo], 0)
    contract.step(["publish", "-f", repo], 0)
    contract.step(["snapshot", "-t", alias], 0, not_stdout=r"^Initial snapshot$")
    contract.step(["transaction", alias], 1, stderr=r"Repository %s is not a stratum 0 repository" % re.escape(alias))
    contract.step(["abort", "-f", alias], 1,
                  stderr=r"^CernVM-FS error: Repository %s is not a stratum 0 repository$" % re.escape(alias))
    contract.step(["publish", "-f", alias], 1, stderr=r"^This is not a stratum 0 repository$")
    contract.step(["mkfs", "-o", "root", alias], 1, stderr=r"^The repository %s already exists$" % re.escape(alias))
    contract.step(["rmfs", "-f", alias], 0)
    # without GeoIP settings (server.local) add-replica tries to install the GeoIP database
    contract.each(lambda site: site.host.sh('mv "$1" "$1.away"', site.path("/etc/cvmfs/server.local")))
    try:
        contract.step(add_replica("-n", other), 3, stdout=r"^Installing GeoIP Database\.\.\. fail$",
                      stderr=r"^CVMFS_GEO_ACCOUNT_ID not set$")
    finally:
        contract.each(lambda site: site.host.sh('mv "$1.away" "$1"', site.path("/etc/cvmfs/server.local")))
    contract.step(["rmfs", "-f", repo], 0)
    contract.check()
