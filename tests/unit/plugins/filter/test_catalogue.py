"""The repository catalogue: schema, defaults, derived values, and the errors it refuses with."""

import os
import subprocess
import sys

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.sharedsw.cvmfs.plugins.filter.publisher_jobs import publisher_jobs
from ansible_collections.sharedsw.cvmfs.plugins.filter.repository_catalogue import repository_catalogue
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from ansible_collections.sharedsw.cvmfs.plugins.plugin_utils._catalogue import ENTRY_SPEC, normalise

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


def entry(**fields):
    base = {"name": "sw.example.org", "stratum0": "s0.example.org"}
    base.update(fields)
    return base


def error_of(*entries):
    with pytest.raises(CvmfsError) as info:
        normalise(list(entries))
    return info.value.message


def test_minimal_entry_gets_every_default():
    (repo,) = normalise([entry()])
    assert repo["owner"] == "root"
    assert repo["storage"] == {"type": "local", "s3": None}
    assert repo["url"] == "http://s0.example.org/cvmfs/sw.example.org"
    assert repo["gateway"] == {"enabled": True, "url": "http://s0.example.org:4929/api/v1", "key_path": "/"}
    assert repo["gc"] == {"enabled": False, "timespan": "3 days ago", "schedule": None}
    assert repo["auto_tag"] == {"enabled": True, "timespan": "4 weeks ago"}
    assert repo["source"]["prefix"] == "cvmfs/" and repo["source"]["schedule"] == "*:0/10"
    assert repo["replicate"] == ["stratum1"]
    assert repo["client"] == {"mount": True, "options": {}, "proxies": [], "repositories": []}
    assert repo["publishers"] == [] and repo["meta"] is None


def test_defaults_are_not_shared_between_entries():
    first, second = normalise([entry(), entry(name="data.example.net", stratum0="s0.example.net")])
    assert first["gateway"]["url"] == "http://s0.example.org:4929/api/v1"
    assert second["gateway"]["url"] == "http://s0.example.net:4929/api/v1"
    assert first["gateway"] is not second["gateway"]


def test_s3_storage_urls():
    s3 = {"host": "rgw.example.org", "port": 8080, "bucket": "cvmfs", "use_https": False,
          "credentials": {"vault_path": "cvmfs/s3/s0"}}
    (repo,) = normalise([entry(storage={"type": "s3", "s3": s3})])
    assert repo["storage"]["s3"]["public_url"] == "http://rgw.example.org:8080/cvmfs"
    assert repo["url"] == "http://rgw.example.org:8080/cvmfs/sw.example.org"
    (dns,) = normalise([entry(storage={"type": "s3", "s3": dict(s3, dns_buckets=True, port=None, use_https=True)})])
    assert dns["url"] == "https://cvmfs.rgw.example.org/sw.example.org"


def test_server_options_become_text():
    (repo,) = normalise([entry(server_options={"CVMFS_IGNORE_SPECIAL_FILES": True, "CVMFS_NUM_UPLOAD_TASKS": 4})])
    assert repo["server_options"] == {"CVMFS_IGNORE_SPECIAL_FILES": "true", "CVMFS_NUM_UPLOAD_TASKS": "4"}


def test_publisher_jobs_inherit_and_extend_the_source():
    catalogue = [entry(
        owner="cvmfs",
        publishers=[{"host": "pub1", "path": "team-a/"},
                    {"host": "pub2", "path": "/team-b", "owner": "teamb", "schedule": "hourly",
                     "source": {"bucket": "team-b-bucket", "prefix": "upload/"}}],
        source={"bucket": "software", "ingest_prefix": "ingest/", "ingest_dir": "pkgs",
                "credentials": {"vault_path": "cvmfs/s3/software"}})]
    (first,) = publisher_jobs(catalogue, "pub1")
    assert first["path"] == "/team-a" and first["lease"] == "sw.example.org/team-a"
    assert first["source"]["prefix"] == "cvmfs/team-a/" and first["source"]["ingest_prefix"] == "ingest/team-a/"
    assert first["owner"] == "cvmfs" and first["schedule"] == "*:0/10"
    assert first["gateway_url"] == "http://s0.example.org:4929/api/v1"
    (second,) = publisher_jobs(catalogue, "pub2")
    assert second["source"]["bucket"] == "team-b-bucket" and second["source"]["prefix"] == "upload/"
    assert second["source"]["credentials"]["vault_path"] == "cvmfs/s3/software"
    assert second["owner"] == "teamb" and second["schedule"] == "hourly"
    assert publisher_jobs(catalogue, "somebody-else") == []
    (root,) = publisher_jobs([entry(publishers=[{"host": "p"}], source={"bucket": "b"})], "p")
    assert root["lease"] == "sw.example.org" and root["source"]["prefix"] == "cvmfs/"
    assert root["source"]["on_missing"] == "fail"  # a publish that does not match the bucket fails
    (warn,) = publisher_jobs([entry(publishers=[{"host": "p"}], source={"bucket": "b", "on_missing": "warn"})], "p")
    assert warn["source"]["on_missing"] == "warn"


@pytest.mark.parametrize("entries, expected", [
    ([{"name": "sw.example.org"}], "cvmfs_repositories[0] (sw.example.org): an external entry (no stratum0) needs"),
    ([entry(name="bad name!")], "name 'bad name!' is not a valid repository name"),
    ([entry(), entry()], "repository sw.example.org is already described at index 0"),
    ([entry(storage={"type": "s3"})], "storage.type is s3 but storage.s3"),
    ([entry(storage={"s3": {"host": "h", "bucket": "b", "credentials": {"vault_path": "x"}}})],
     "storage.s3 is set but storage.type is local"),
    ([entry(storage={"type": "s3", "s3": {"host": "h", "bucket": "b", "credentials": {"access_key": "a"}}})],
     "needs both access_key and secret_key"),
    ([entry(storage={"type": "s3", "s3": {
        "host": "h", "bucket": "b", "credentials": {"vault_path": "x", "access_key": "a", "secret_key": "s"}}})],
     "either vault_path or access_key/secret_key"),
    ([entry(storage={"type": "nfs"})], "storage: value of type must be one of: local, s3, got: nfs"),
    ([entry(publishers=[{"host": "a", "path": "/x"}, {"host": "b", "path": "/x/y"}], source={"bucket": "b"})],
     "publisher paths overlap (a owns /x, b owns /x/y)"),
    ([entry(publishers=[{"host": "a"}, {"host": "b", "path": "/y"}], source={"bucket": "b"})],
     "publisher paths overlap"),
    ([entry(publishers=[{"host": "a", "path": "/x"}, {"host": "a", "path": "/y"}], source={"bucket": "b"})],
     "host a is listed twice"),
    ([entry(publishers=[{"host": "a", "path": "/../etc"}], source={"bucket": "b"})], "no . or .. segments"),
    ([entry(publishers=[{"host": "a", "path": "/x"}], gateway={"key_path": "/y"}, source={"bucket": "b"})],
     "outside gateway.key_path /y"),
    ([entry(publishers=[{"host": "a"}], gateway={"enabled": False}, source={"bucket": "b"})],
     "publishers need gateway.enabled: true"),
    ([entry(publishers=[{"host": "a"}])], "source.bucket is required"),
    ([entry(publishers=[{"host": "a"}], source={"bucket": "b", "ingest_prefix": "in/"})],
     "set source.ingest_dir"),
    ([entry(gc={"enabled": True}, auto_tag={"timespan": ""})], "GC could never free anything"),
    ([entry(server_options={"cvmfs_lower": "x"})], "not a server.conf variable name"),
    ([entry(bogus=1)], "bogus"),
])
def test_refusals_name_the_entry_and_the_field(entries, expected):
    message = error_of(*entries)
    assert expected in message
    assert message.startswith("cvmfs_repositories[")


def test_not_a_list():
    with pytest.raises(CvmfsError, match="must be a list"):
        normalise({"name": "x"})
    assert normalise(None) == []


def test_filters_raise_ansible_errors():
    with pytest.raises(AnsibleFilterError, match="stratum0"):
        repository_catalogue([{"name": "x.org"}])
    with pytest.raises(AnsibleFilterError, match="overlap"):
        publisher_jobs([entry(publishers=[{"host": "a"}, {"host": "b", "path": "/c"}], source={"bucket": "b"})], "a")


def test_every_field_is_documented_and_the_doc_is_generated_from_the_schema():
    def check(spec, where):
        for name, option in spec.items():
            assert option.get("description"), "%s%s has no description" % (where, name)
            if "options" in option:
                check(option["options"], where + name + ".")
    check(ENTRY_SPEC, "")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "catalogue_doc.py"), "--check"],
                          capture_output=True, check=False, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
