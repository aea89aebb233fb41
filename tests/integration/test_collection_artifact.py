"""The collection as users get it: ``ansible-galaxy collection build``, installed from the tarball into
an empty collections path, documented and run from there only.

Galaxy is not reachable here: the dependencies come from the ``ansible`` package (``--no-deps``), as
requirements.txt says. The installed copy is the only sharedsw.cvmfs Ansible can see: the
collections path is the empty directory plus the ``ansible`` package's collections, and no
PYTHONPATH points at this checkout.
"""

import json
import os
import subprocess
import sys
import tarfile

import pytest
import yaml

import ansible_collections.ansible.posix

pytestmark = pytest.mark.slow

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
# the ``ansible`` package's collections (a directory named ansible_collections in site-packages)
BUNDLED = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(ansible_collections.ansible.posix.__file__))))
EXCLUDED = (".ci/", ".config/", ".venv/", "bench/", "build/", "changelogs/fragments/", "context/", "inventories/lab/",
            "molecule/", "tests/", "tools/", "Makefile", "pytest.ini", "requirements-test.txt", ".gitignore")
EXPECTED = ("COPYING", "README.md", "MANIFEST.json", "FILES.json", "meta/runtime.yml", "changelogs/changelog.yaml",
            "docs/producer.md", "inventories/example/hosts.yml", "playbooks/site.yml", "roles/publisher/tasks/main.yml",
            "plugins/action/host_program.py", "plugins/plugin_utils/_host_program.py")
# plugin directories whose every file is a plugin with documentation (ansible-doc -t <type>)
DOCUMENTED = {"modules": "module", "lookup": "lookup", "filter": "filter", "inventory": "inventory"}
MAX_TARBALL_BYTES = 2 * 1024 * 1024


def _galaxy():
    with open(os.path.join(REPO_ROOT, "galaxy.yml")) as handle:
        return yaml.safe_load(handle)


def _env(collections):
    env = dict((key, value) for key, value in os.environ.items()
               if not key.startswith("ANSIBLE_") and key != "PYTHONPATH")
    env.update(ANSIBLE_COLLECTIONS_PATH=os.pathsep.join([collections, BUNDLED]), ANSIBLE_NOCOLOR="1",
               ANSIBLE_DEPRECATION_WARNINGS="0", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    return env


def _run(argv, cwd, env=None):
    proc = subprocess.run(argv, cwd=str(cwd), env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, "%s failed:\n%s\n%s" % (" ".join(argv), proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    """``(tarball, installed collection directory, collections path, scratch directory)``."""
    work = tmp_path_factory.mktemp("artifact")
    galaxy = _galaxy()
    _run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(work / "dist"), REPO_ROOT],
         cwd=work, env=_env(str(work / "none")))
    tarball = work / "dist" / ("%s-%s-%s.tar.gz" % (galaxy["namespace"], galaxy["name"], galaxy["version"]))
    collections = work / "collections"
    collections.mkdir()
    _run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--no-deps", "-p", str(collections), str(tarball)],
         cwd=work, env=_env(str(collections)))
    installed = collections / "ansible_collections" / galaxy["namespace"] / galaxy["name"]
    return tarball, installed, str(collections), work


def test_the_tarball_holds_the_collection_and_nothing_of_the_development_tree(artifact):
    tarball = artifact[0]
    with tarfile.open(str(tarball)) as handle:
        names = handle.getnames()
    leaked = [name for name in names if any(name == part.rstrip("/") or name.startswith(part) for part in EXCLUDED)
              or "__pycache__" in name or name.endswith(".pyc")]
    assert leaked == []
    assert [name for name in EXPECTED if name not in names] == []
    assert os.path.getsize(str(tarball)) < MAX_TARBALL_BYTES


def test_the_manifest_declares_the_dependencies_and_the_licence(artifact):
    with open(str(artifact[1] / "MANIFEST.json")) as handle:
        info = json.load(handle)["collection_info"]
    assert info["license"] == ["GPL-3.0-or-later"]
    assert set(info["dependencies"]) == {"amazon.aws", "ansible.posix", "awx.awx", "community.general", "openstack.cloud"}
    with open(str(artifact[1] / "COPYING")) as handle:
        assert "GNU GENERAL PUBLIC LICENSE" in handle.read(200)


@pytest.mark.parametrize("directory", sorted(DOCUMENTED))
def test_every_plugin_is_documented_from_the_installed_copy(artifact, directory):
    _tarball, installed, collections, work = artifact
    names = sorted(name[:-3] for name in os.listdir(os.path.join(REPO_ROOT, "plugins", directory))
                   if name.endswith(".py") and name != "__init__.py")
    fqcns = ["sharedsw.cvmfs." + name for name in names]
    proc = _run([os.path.join(BIN, "ansible-doc"), "-t", DOCUMENTED[directory], "--json"] + fqcns,
                cwd=work, env=_env(collections))
    docs = json.loads(proc.stdout)
    assert sorted(docs) == fqcns
    for fqcn, doc in docs.items():
        assert doc["doc"]["filename"].startswith(str(installed) + os.sep), (fqcn, doc["doc"]["filename"])


def test_a_playbook_runs_from_the_installed_copy(artifact):
    """A filter plugin (with its plugin_utils) and the host_program action (which reads the version
    from MANIFEST.json when installed) on localhost."""
    _tarball, _installed, collections, work = artifact
    archive = work / "programs" / "sharedsw-cvmfs.pyz"
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Catalogue", "ansible.builtin.set_fact": {
            "catalogue": "{{ [{'name': 'sw.example.org', 'stratum0': 's0'}] | sharedsw.cvmfs.repository_catalogue }}"}},
        {"ansible.builtin.assert": {"that": ["catalogue[0].name == 'sw.example.org'", "catalogue[0].gateway.url == 'http://s0:4929/api/v1'"]}},
        {"ansible.builtin.file": {"path": str(archive.parent), "state": "directory", "mode": "0755"}},
        {"name": "Host programs", "sharedsw.cvmfs.host_program": {"dest": str(archive)}, "register": "program"},
        {"ansible.builtin.assert": {"that": ["program is changed", "program.version == '%s'" % _galaxy()["version"]]}},
    ]}]
    (work / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    _run([os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local",
          "-e", "ansible_python_interpreter=%s" % sys.executable, str(work / "play.yml")], cwd=work, env=_env(collections))
    version = _run([sys.executable, "-I", str(archive), "--version"], cwd=work)
    assert version.stdout.strip() == _galaxy()["version"]
