"""tools/lab/package-mirror.sh: a local mirror directory of the CernVM-FS apt repository, served on
the lab bridge address only, for as long as the caller needs it; and which package sources
molecule/shared/requires-cvmfs.sh accepts. Uses a bridge, address and state directory of its own."""

import os
import shutil
import subprocess
import tempfile
import urllib.request
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MIRROR = os.path.join(ROOT, "tools", "lab", "package-mirror.sh")
NET_DOWN = os.path.join(ROOT, "tools", "lab", "net-down.sh")
REQUIRES = os.path.join(ROOT, "molecule", "shared", "requires-cvmfs.sh")

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="serving on a bridge needs root")


def make_mirror(directory, key=True, release=True):
    os.makedirs(os.path.join(directory, "dists", "bookworm-prod", "main"))
    if release:
        with open(os.path.join(directory, "dists", "bookworm-prod", "InRelease"), "w") as handle:
            handle.write("Suite: bookworm-prod\n")
    if key:
        with open(os.path.join(directory, "cernvm.gpg"), "wb") as handle:
            handle.write(b"\x99key")
    return directory


def settings(stdout):
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


@pytest.fixture
def env():
    work = tempfile.mkdtemp(prefix="lab-mirror-")
    tag = uuid.uuid4().hex[:6]
    environment = dict(os.environ, LAB_STATE_DIR=os.path.join(work, "state"), LAB_BRIDGE="cvmfsm" + tag,
                       LAB_NFT_TABLE="sharedsw_cvmfs_mirrortest_" + tag,
                       LAB_GW="10.251.%d.1" % (int(tag, 16) % 250), LAB_MIRROR_PORT="18480",
                       SHAREDSW_CVMFS_PACKAGE_DIR=make_mirror(os.path.join(work, "mirror")))
    for name in ("SHAREDSW_CVMFS_PACKAGE_URL", "SHAREDSW_CVMFS_PACKAGE_KEY_URL"):
        environment.pop(name, None)
    yield environment
    subprocess.run([MIRROR, "stop"], env=environment, capture_output=True, check=False)
    subprocess.run([NET_DOWN, "--force"], env=environment, capture_output=True, check=False)
    shutil.rmtree(work, ignore_errors=True)


def run(args, env, check=True):
    proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False, timeout=60)
    if check:
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return proc


@needs_root
def test_serves_the_directory_on_the_bridge_address_once(env):
    first = settings(run([MIRROR, "start"], env).stdout)
    url = "http://%s:18480/" % env["LAB_GW"]
    assert first == {"LAB_PACKAGE_MIRROR_STARTED": "1", "SHAREDSW_CVMFS_PACKAGE_URL": url,
                     "SHAREDSW_CVMFS_PACKAGE_KEY_URL": url + "cernvm.gpg"}
    with urllib.request.urlopen(url + "dists/bookworm-prod/InRelease", timeout=10) as answer:
        assert answer.read() == b"Suite: bookworm-prod\n"
    listening = run(["ss", "-Hltn", "sport = :18480"], env).stdout.split()
    assert "%s:18480" % env["LAB_GW"] in listening and "0.0.0.0:18480" not in listening
    second = settings(run([MIRROR, "start"], env).stdout)
    assert second["LAB_PACKAGE_MIRROR_STARTED"] == "0"       # reused: the first caller stops it
    assert run([MIRROR, "status"], env).stdout.startswith("serving " + env["SHAREDSW_CVMFS_PACKAGE_DIR"])
    # the bridge stays while it serves, even with no host attached
    run([NET_DOWN], env)
    assert run(["ip", "link", "show", env["LAB_BRIDGE"]], env, check=False).returncode == 0
    run([MIRROR, "stop"], env)
    assert run([MIRROR, "status"], env, check=False).returncode == 1


@needs_root
@pytest.mark.parametrize("broken, message", [
    ({"release": False}, "not an apt repository"),
    ({"key": False}, "has no cernvm.gpg"),
])
def test_a_directory_that_is_no_apt_repository_is_refused(env, broken, message):
    env["SHAREDSW_CVMFS_PACKAGE_DIR"] = make_mirror(os.path.join(env["LAB_STATE_DIR"] + "-bad"), **broken)
    proc = run([MIRROR, "start"], env, check=False)
    assert proc.returncode != 0 and message in proc.stderr and env["SHAREDSW_CVMFS_PACKAGE_DIR"] in proc.stderr
    shutil.rmtree(env["SHAREDSW_CVMFS_PACKAGE_DIR"])


def test_a_package_url_wins_over_the_default_directory():
    environment = dict(os.environ, SHAREDSW_CVMFS_PACKAGE_URL="http://192.0.2.7/apt/")
    environment.pop("SHAREDSW_CVMFS_PACKAGE_DIR", None)
    assert run([MIRROR, "dir"], environment, check=False).returncode == 1


@pytest.mark.parametrize("url", ["http://192.0.2.7:8480/", "http://[2001:db8::7]:8480/apt/"])
def test_requires_accepts_an_address_literal_without_a_name_lookup(url):
    environment = dict(os.environ, SHAREDSW_CVMFS_PACKAGE_URL=url)
    environment.pop("SHAREDSW_CVMFS_PACKAGE_DIR", None)
    proc = run([REQUIRES], environment, check=False)
    assert proc.returncode == 0, proc.stdout


def test_requires_refuses_a_name_that_does_not_resolve():
    environment = dict(os.environ, SHAREDSW_CVMFS_PACKAGE_URL="http://cvmfs-packages.invalid/apt/")
    environment.pop("SHAREDSW_CVMFS_PACKAGE_DIR", None)
    proc = run([REQUIRES], environment, check=False)
    assert proc.returncode == 77
    assert proc.stdout.startswith("CernVM-FS packages unavailable: the package repository host cvmfs-packages.invalid")
