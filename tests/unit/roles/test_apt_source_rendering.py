"""common role, main entry point (apt): ansible.builtin.deb822_repository runs only when the source
file is not what the module would write or the keyring it names is missing (a key at a URL is then
fetched only in that case). The role renders the module's text itself (templates/cernvm.sources.j2):
these tests hold that rendering to the real module, run in check mode (it returns the text it would
write in ``repo`` and writes nothing) for every argument shape the role passes, then run the role's
tasks (check mode) against scratch copies of the source file and keyrings: as the module wrote them
the module is skipped; any difference (text, mode, keyring) makes it run."""

import functools
import http.server
import os
import sys
import threading

import pytest

from tests.support.local_plays import run_plays, task_results, tasks_that_ran

ARMORED = ("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBGX0test  \n  second line\n\n=AbCd\n"
           "-----END PGP PUBLIC KEY BLOCK-----\n")
BINARY = b"\x99\x02\x0d\x04binary-key-material"
SOURCES = "/etc/apt/sources.list.d/cernvm.sources"
MODULE_FILES = [SOURCES, "/etc/apt/keyrings/cernvm.asc", "/etc/apt/keyrings/cernvm.gpg"]
TASK = "CernVM-FS apt repository (deb822 source, key in its own keyring)"
INVENTORY = {"all": {"hosts": {"h": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}


@pytest.fixture(name="key_server", scope="module")
def fixture_key_server(tmp_path_factory):
    """An http server with the key armored (cernvm.asc) and binary (cernvm.gpg)."""
    root = tmp_path_factory.mktemp("keys")
    (root / "armored.key").write_text(ARMORED)
    (root / "binary.key").write_bytes(BINARY)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def shapes(key_server):
    """The __common_repo shapes the role passes: key at a URL (armored or binary), key inline, and
    several components."""
    base = {"url": "http://mirror.example/cvmrepo/apt/", "suite": "bookworm-prod", "components": ["main"]}
    return {
        "url-armored": dict(base, key="", key_url=key_server + "/armored.key"),
        "url-binary": dict(base, key="", key_url=key_server + "/binary.key"),
        "inline": dict(base, key=ARMORED, key_url=""),
        "components": dict(base, components=["main", "testing", "contrib"], key="", key_url=key_server + "/armored.key"),
    }


def real_module(tmp_path, repo):
    """What deb822_repository (check mode) would write for the role's arguments: (text, keyring)."""
    task = {"name": "module", "ansible.builtin.deb822_repository": {
        "name": "cernvm", "types": ["deb"], "uris": [repo["url"]], "suites": [repo["suite"]],
        "components": repo["components"], "signed_by": repo["key"] or repo["key_url"], "state": "present"}}
    before = {path: os.path.exists(path) for path in MODULE_FILES}
    returncode, parsed, output = run_plays(tmp_path, [{"hosts": "h", "gather_facts": False, "tasks": [task]}],
                                           INVENTORY, check=True)
    assert returncode == 0, output
    assert {path: os.path.exists(path) for path in MODULE_FILES} == before   # check mode wrote nothing
    result = task_results(parsed, "h")["module"]
    return result["repo"], result["key_filename"]


def role_run(tmp_path, repo):
    """The role's apt repository tasks in check mode with the module's files in scratch places;
    returns the results."""
    settings = {"__common_repo": repo, "__common_apt_read_root": str(tmp_path / "root"),
                "__common_apt_sources_file": "/etc/apt/sources.list.d/cernvm.sources",
                "__common_apt_keyrings": ["/etc/apt/keyrings/cernvm.asc", "/etc/apt/keyrings/cernvm.gpg"],
                "__common_pin_file": str(tmp_path / "pin.pref"), "common_systemd_dir": str(tmp_path),
                "common_packages": [], "__common_missing_packages": [], "common_cvmfs_version": ""}
    task = {"name": "apt", "ansible.builtin.include_role": {"name": "sharedsw.cvmfs.common", "tasks_from": "repository_apt"},
            "vars": settings}
    returncode, parsed, output = run_plays(tmp_path, [{"hosts": "h", "gather_facts": False, "tasks": [task]}],
                                           INVENTORY, check=True)
    assert returncode == 0, output
    return task_results(parsed, "h")


def scratch(tmp_path, path):
    """Where the role's read finds ``path`` (under __common_apt_read_root)."""
    place = tmp_path / "root" / path.lstrip("/")
    place.parent.mkdir(parents=True, exist_ok=True)
    return place


def as_the_module_wrote_it(tmp_path, text, keyring):
    scratch(tmp_path, SOURCES).write_text(text)
    os.chmod(scratch(tmp_path, SOURCES), 0o644)
    if keyring:
        scratch(tmp_path, keyring).write_bytes(b"key")
        os.chmod(scratch(tmp_path, keyring), 0o644)


@pytest.mark.parametrize("shape", ["url-armored", "url-binary", "inline", "components"])
def test_the_module_is_skipped_only_when_the_host_holds_what_it_would_write(tmp_path, key_server, shape):
    repo = shapes(key_server)[shape]
    text, keyring = real_module(tmp_path, repo)
    assert (keyring is None) == (shape == "inline")
    if keyring:
        assert keyring.endswith(".gpg" if shape == "url-binary" else ".asc")

    assert tasks_that_ran(role_run(tmp_path, repo), [TASK]) == [TASK]   # nothing there yet

    as_the_module_wrote_it(tmp_path, text, keyring)
    assert tasks_that_ran(role_run(tmp_path, repo), [TASK]) == []

    os.chmod(scratch(tmp_path, SOURCES), 0o600)   # drift: mode
    assert tasks_that_ran(role_run(tmp_path, repo), [TASK]) == [TASK]

    as_the_module_wrote_it(tmp_path, text.replace("bookworm-prod", "bookworm-testing"), keyring)   # drift: text
    assert tasks_that_ran(role_run(tmp_path, repo), [TASK]) == [TASK]

    if keyring:   # drift: the keyring the file names is gone (the other one does not count)
        as_the_module_wrote_it(tmp_path, text, keyring)
        other = scratch(tmp_path, keyring[:-3] + ("gpg" if keyring.endswith(".asc") else "asc"))
        other.write_bytes(b"key")
        os.chmod(other, 0o644)
        os.unlink(scratch(tmp_path, keyring))
        assert tasks_that_ran(role_run(tmp_path, repo), [TASK]) == [TASK]
