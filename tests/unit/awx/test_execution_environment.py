"""execution-environment.yml: valid ansible-builder schema 3, and `ansible-builder create` turns it into a
build context with the collection tarball, requirements.txt and bindep.txt. Building the image itself
needs a container engine and is not done here (docs/awx.md)."""

import glob
import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

from tests.conftest import REPO_ROOT

EE_FILE = os.path.join(REPO_ROOT, "execution-environment.yml")


def ansible_builder():
    path = shutil.which("ansible-builder") or os.path.join(os.path.dirname(sys.executable), "ansible-builder")
    if not os.path.exists(path):
        pytest.fail("ansible-builder is not installed; it is a test requirement (pip install ansible-builder)")
    return path


def test_the_definition_matches_schema_3():
    from ansible_builder.ee_schema import validate_schema

    with open(EE_FILE, encoding="utf-8") as handle:
        definition = yaml.safe_load(handle)
    assert definition["version"] == 3
    validate_schema(definition)
    assert definition["dependencies"]["python"] == "requirements.txt"
    assert definition["dependencies"]["system"] == "bindep.txt"


def test_bindep_file_parses_and_names_ssh_and_git():
    from bindep.depends import Depends

    with open(os.path.join(REPO_ROOT, "bindep.txt"), encoding="utf-8") as handle:
        text = handle.read()
    depends = Depends(text)
    rpm = [rule[0] for rule in depends.active_rules(["platform:rpm", "platform:redhat", "default"])]
    dpkg = [rule[0] for rule in depends.active_rules(["platform:dpkg", "platform:debian", "default"])]
    assert {"git", "openssh-clients", "rsync", "ca-certificates"} <= set(rpm)
    assert {"git", "openssh-client", "rsync", "ca-certificates"} <= set(dpkg)
    assert "gcc" not in rpm, "compilers belong to the compile profile only"


@pytest.mark.slow
def test_ansible_builder_create_makes_a_build_context(tmp_path):
    work = tmp_path / "src"
    work.mkdir()
    for name in ("execution-environment.yml", "requirements.txt", "bindep.txt"):
        shutil.copy(os.path.join(REPO_ROOT, name), str(work / name))
    build = work / "build"
    subprocess.run(["ansible-galaxy", "collection", "build", "--force", "--output-path", str(build), REPO_ROOT],
                   check=True, capture_output=True, text=True, cwd=str(tmp_path))
    context = tmp_path / "context"
    proc = subprocess.run([ansible_builder(), "create", "--file", str(work / "execution-environment.yml"),
                           "--context", str(context), "--output-filename", "Containerfile", "-v", "3"],
                          capture_output=True, text=True, cwd=str(work), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No matches" not in proc.stdout + proc.stderr

    containerfile = (context / "Containerfile").read_text()
    assert 'ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in containerfile
    assert "RUN ansible-galaxy collection install --offline --no-deps" in containerfile
    assert (context / "_build" / "requirements.txt").read_text() == open(os.path.join(REPO_ROOT, "requirements.txt")).read()
    assert (context / "_build" / "bindep.txt").read_text() == open(os.path.join(REPO_ROOT, "bindep.txt")).read()

    (tarball,) = glob.glob(str(context / "_build" / "collections" / "sharedsw-cvmfs-*.tar.gz"))
    with tarfile.open(tarball) as archive:
        manifest = json.load(archive.extractfile("MANIFEST.json"))
        names = archive.getnames()
    assert (manifest["collection_info"]["namespace"], manifest["collection_info"]["name"]) == ("sharedsw", "cvmfs")
    for shipped in ("plugins/modules/image_sync.py", "plugins/inventory/openstack_nodes.py",
                    "playbooks/provision_openstack.yml", "roles/openstack_nodes/tasks/main.yml",
                    "meta/execution-environment.yml"):
        assert shipped in names
    assert not [n for n in names if n.endswith(".tar.gz")], "no tarball inside the tarball"
