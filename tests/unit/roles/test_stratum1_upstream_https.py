"""stratum1 role: replication from HTTPS stratum-0s. The authorities file and /etc/cvmfs/server.local
(tasks/upstream_ca.yml, tasks/geoapi.yml) are written for real into a scratch directory; sourcing
server.local the way cvmfs_server does must hand X509_CERT_BUNDLE to the programs it starts
(cvmfs_swissknife pull reads it from its environment). The stratum-0 URL each replica uses comes
from the catalogue, switched to https by stratum1_upstream_https."""

import subprocess
import sys

from tests.support.local_plays import run_plays, task_results

from .test_squid_config import FACTS

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"


def _run(work, etc_dir, extra):
    # public: the role's vars (__stratum1_upstream_url) stay visible to the task after it
    tasks = [{"ansible.builtin.include_role": {"name": "sharedsw.cvmfs.stratum1", "tasks_from": name, "public": True},
              "vars": dict(extra, __stratum1_etc_dir=str(etc_dir))} for name in ("upstream_ca.yml", "geoapi.yml")]
    urls = {"name": "stratum-0 URL", "ansible.builtin.debug": {"msg": "{{ __stratum1_upstream_url }}"},
            "vars": dict(extra, __stratum1_repo={"url": "http://s0.example.org/cvmfs/r.example.org"})}
    play = {"name": "upstream", "hosts": "s1", "gather_facts": False,
            "vars": {"stratum1_owner": "root", "stratum1_secure_logging": False}, "tasks": tasks + [urls]}
    inventory = {"all": {"hosts": {"s1": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}
    returncode, parsed, output = run_plays(work, [play], inventory, {"s1": FACTS})
    assert returncode == 0, output
    return task_results(parsed, "s1")["stratum-0 URL"]["msg"]


def _bundle_seen_by_a_child(server_local):
    return subprocess.run(["bash", "-c", '. "$0"; sh -c \'echo "$X509_CERT_BUNDLE"\'', str(server_local)],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_the_bundle_reaches_the_programs_cvmfs_server_starts(tmp_path):
    etc_dir = tmp_path / "etc"
    etc_dir.mkdir()
    url = _run(tmp_path, etc_dir, {"stratum1_upstream_ca_bundle": CA, "stratum1_upstream_https": True})
    bundle = etc_dir / "sharedsw-upstream-ca.pem"
    assert bundle.read_text() == CA + "\n"
    assert _bundle_seen_by_a_child(etc_dir / "server.local") == str(bundle)
    assert url == "https://s0.example.org/cvmfs/r.example.org"


def test_without_a_bundle_nothing_is_exported_and_the_catalogue_url_stays(tmp_path):
    etc_dir = tmp_path / "etc"
    etc_dir.mkdir()
    (etc_dir / "sharedsw-upstream-ca.pem").write_text(CA)
    url = _run(tmp_path, etc_dir, {})
    assert not (etc_dir / "sharedsw-upstream-ca.pem").exists()
    assert _bundle_seen_by_a_child(etc_dir / "server.local") == ""
    assert url == "http://s0.example.org/cvmfs/r.example.org"
