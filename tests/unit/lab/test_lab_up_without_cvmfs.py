"""`make lab` (tools/lab.sh up) where the CernVM-FS packages cannot be had: it must stop at step 1
with the one-line reason and exit status 77, having created nothing: no bridge, no nft table, no
host, no state or cache directory, no inventory. Also the check itself (tools/lab/cvmfs-check.sh):
a resolvable mirror, a lab image hook that declares CernVM-FS, a cached image that has it or not.

The runs use their own LAB_* settings (scratch directories, a bridge name of their own), so a lab or
molecule scenario running on this machine is not touched. A regression that went on past step 1
would really boot hosts: the test then fails, and takes them down again with the same settings."""

import os
import shutil
import subprocess
import tarfile
import tempfile
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
LAB = os.path.join(ROOT, "tools", "lab.sh")
CHECK = os.path.join(ROOT, "tools", "lab", "cvmfs-check.sh")
UNRESOLVABLE = "http://cvmfs-packages.invalid/cvmrepo/apt/"   # .invalid never resolves (RFC 2606)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (tools/lab.sh checks that first)")


@pytest.fixture
def lab_env():
    """Environment of a lab of its own: scratch state, cache and inventory, its own bridge and nft table."""
    work = tempfile.mkdtemp(prefix="lab-step1-")
    tag = uuid.uuid4().hex[:6]
    env = dict(os.environ, LAB_STATE_DIR=os.path.join(work, "state"), LAB_CACHE_DIR=os.path.join(work, "cache"),
               LAB_INVENTORY=os.path.join(work, "inventory", "hosts.yml"), LAB_BRIDGE="cvmfst" + tag,
               LAB_NFT_TABLE="sharedsw_cvmfs_test_" + tag, SHAREDSW_CVMFS_PACKAGE_URL=UNRESOLVABLE)
    env.pop("LAB_IMAGE_HOOK", None)
    env.pop("LAB_IMAGE", None)
    yield env
    if os.path.exists(env["LAB_STATE_DIR"]):   # only when lab.sh went further than it may: clean up
        subprocess.run([LAB, "down"], env=env, capture_output=True, check=False, timeout=300)
    shutil.rmtree(work, ignore_errors=True)


def _created(env):
    """What a lab run leaves on this machine, for the settings in ``env``."""
    found = []
    if subprocess.run(["ip", "link", "show", env["LAB_BRIDGE"]], capture_output=True, check=False).returncode == 0:
        found.append("bridge " + env["LAB_BRIDGE"])
    if subprocess.run(["nft", "list", "table", "ip", env["LAB_NFT_TABLE"]], capture_output=True, check=False).returncode == 0:
        found.append("nft table " + env["LAB_NFT_TABLE"])
    for key, path in (("LAB_STATE_DIR", env["LAB_STATE_DIR"]), ("LAB_CACHE_DIR", env["LAB_CACHE_DIR"]),
                      ("LAB_INVENTORY", env["LAB_INVENTORY"]), ("LAB_INVENTORY's directory", os.path.dirname(env["LAB_INVENTORY"]))):
        if os.path.exists(path):
            found.append("%s %s" % (key, path))
    return found


def _check(env, *args):
    return subprocess.run([CHECK] + list(args), env=env, capture_output=True, text=True, check=False, timeout=120)


def _image_path(env):
    proc = subprocess.run(["bash", "-c", '. "$1/tools/lab/common.sh" && lab_image', "_", ROOT], env=env,
                          capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def _fake_image(path, with_cvmfs):
    """A .tar.zst shaped like the lab image (./usr/bin/...), with or without cvmfs_server."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(os.path.join(root, "usr", "bin"))
        for name in ["python3"] + (["cvmfs_server"] if with_cvmfs else []):
            with open(os.path.join(root, "usr", "bin", name), "w") as handle:
                handle.write("#!/bin/sh\n")
        plain = path + ".tar"
        with tarfile.open(plain, "w") as tar:
            tar.add(root, arcname=".")
        subprocess.run(["zstd", "-q", "--rm", "-f", plain, "-o", path], check=True)


@needs_root
def test_up_stops_at_step_1_and_creates_nothing(lab_env):
    try:
        proc = subprocess.run([LAB, "up"], env=lab_env, capture_output=True, text=True, check=False, timeout=120,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as error:
        pytest.fail("tools/lab.sh up went on past step 1 without CernVM-FS (still running after 120 s): %s" % error.stdout)
    assert _created(lab_env) == [], "tools/lab.sh up created something before stopping"
    assert proc.returncode == 77, proc.stdout + proc.stderr
    assert "[1/8] CernVM-FS packages" in proc.stdout
    assert "[2/8]" not in proc.stdout, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("CernVM-FS packages unavailable: ")
    assert "cvmfs-packages.invalid does not resolve" in lines[0]
    assert "SHAREDSW_CVMFS_PACKAGE_URL" in lines[0] and "LAB_IMAGE_HOOK" in lines[0]


def test_check_accepts_a_mirror_that_resolves(lab_env):
    env = dict(lab_env, SHAREDSW_CVMFS_PACKAGE_URL="http://localhost/cvmrepo/apt/")
    proc = _check(env)
    assert (proc.returncode, proc.stdout) == (0, "repository\n"), proc.stderr
    assert _created(lab_env) == []


def test_check_trusts_an_image_hook_that_declares_cvmfs(lab_env, tmp_path):
    hook = tmp_path / "hook.sh"
    hook.write_text("#!/bin/sh\n# lab-image-provides: cvmfs\napt-get install -y ./cvmfs*.deb\n")
    proc = _check(dict(lab_env, LAB_IMAGE_HOOK=str(hook)))
    assert (proc.returncode, proc.stdout) == (0, "preinstalled\n"), proc.stderr
    assert _created(lab_env) == []


def test_check_looks_into_the_cached_image_of_an_undeclared_hook(lab_env, tmp_path):
    hook = tmp_path / "hook.sh"
    hook.write_text("#!/bin/sh\napt-get install -y some-site-package\n")
    env = dict(lab_env, LAB_IMAGE_HOOK=str(hook))
    image = _image_path(env)
    assert image.startswith(lab_env["LAB_CACHE_DIR"] + "/")
    _fake_image(image, with_cvmfs=False)
    proc = _check(env)
    assert proc.returncode == 77 and proc.stdout.startswith("CernVM-FS packages unavailable: "), proc.stdout
    _fake_image(image, with_cvmfs=True)
    proc = _check(env)
    assert (proc.returncode, proc.stdout) == (0, "preinstalled\n"), proc.stderr


def test_image_check_after_the_build_catches_a_hook_that_did_not_install_it(lab_env, tmp_path):
    hook = tmp_path / "hook.sh"
    hook.write_text("#!/bin/sh\n# lab-image-provides: cvmfs\ntrue\n")
    env = dict(lab_env, LAB_IMAGE_HOOK=str(hook))
    _fake_image(_image_path(env), with_cvmfs=False)
    proc = _check(env, "--image")
    assert proc.returncode == 77, proc.stdout
    assert proc.stdout.startswith("CernVM-FS packages unavailable: LAB_IMAGE_HOOK ")
    assert "has no usr/bin/cvmfs_server" in proc.stdout
    _fake_image(_image_path(env), with_cvmfs=True)
    assert _check(env, "--image").returncode == 0
