"""stratum1 role: the public keys of the replicated repositories (tasks/keys.yml) for an own entry
(key from stratum1_public_key_dir) and external entries (key from the catalogue entry: a file, or
inline PEM), written for real into a scratch keys directory; entries not replicated here get none."""

import sys

from tests.support.cvmfs_keyset import keyset
from tests.support.local_plays import run_plays

from .test_squid_config import FACTS


def test_keys_of_own_and_external_replicas(tmp_path):
    keys = {name: keyset(name, index)["pub"] for index, name in
            enumerate(["own.example.org", "ext.community.org", "inline.community.org"])}
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "own.example.org.pub").write_text(keys["own.example.org"])
    (tmp_path / "ext.pub").write_text(keys["ext.community.org"])
    catalogue = [
        {"name": "own.example.org", "stratum0": "s0"},
        {"name": "ext.community.org", "url": "http://s0.community.org/cvmfs/ext.community.org",
         "public_key": {"file": str(tmp_path / "ext.pub")}, "replicate": ["stratum1"]},
        {"name": "inline.community.org", "url": "http://s1.community.org/cvmfs/inline.community.org",
         "public_key": {"pem": keys["inline.community.org"]}, "replicate": ["stratum1"]},
        {"name": "mounted-only.community.org", "server_urls": ["http://s1.community.org/cvmfs/@fqrn@"],
         "public_key": {"pem": keys["inline.community.org"]}},
    ]
    play = {"name": "keys", "hosts": "s1", "gather_facts": False,
            "vars": {"cvmfs_repositories": catalogue, "stratum1_groups": ["stratum1"],
                     "stratum1_public_keys_source": "files", "stratum1_public_key_dir": str(tmp_path / "dir")},
            "tasks": [{"ansible.builtin.include_role": {"name": "sharedsw.cvmfs.stratum1", "tasks_from": "keys.yml"},
                       "vars": {"__stratum1_keys_dir": str(tmp_path / "keys")}}]}
    inventory = {"all": {"hosts": {"s1": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}
    returncode, _parsed, output = run_plays(tmp_path, [play], inventory, {"s1": FACTS})
    assert returncode == 0, output
    written = {path.name: path.read_text() for path in (tmp_path / "keys").iterdir()}
    assert written == {name + ".pub": key.strip() + "\n" for name, key in keys.items()}
