"""The publisher role without CernVM-FS: its task files run for real on this machine (paths in a
scratch tree), against a real OpenBao with a least-privilege publisher policy and a real S3
server (SeaweedFS); then the publish job exactly as the role installed and configured it runs
once, as its systemd unit would run it.

What is not real: cvmfs_server. The job talks to the TEST DOUBLE
tests/support/publish_double/cvmfs_server (union mount modelled as a plain directory), and the
gateway-publisher repository itself (mkfs) is not created. The molecule scenario `publisher`
covers those where CernVM-FS packages install.
"""

import json
import os
import stat
import subprocess
import sys
import uuid

import pytest

from tests.support.cvmfs_keyset import keyset
from tests.support.role_hosts import PublisherHost

from ._playbook import assert_converged_then_unchanged, run_playbook, systemd_verify

pytestmark = pytest.mark.integration

SW = "sw.example.org"

POLICY = """
path "secret/data/{prefix}/+/public"  {{ capabilities = ["read"] }}
path "secret/data/{prefix}/+/gateway" {{ capabilities = ["read"] }}
path "secret/data/{prefix}/s3/*"      {{ capabilities = ["read"] }}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory, openbao, seaweedfs):
    host = PublisherHost(tmp_path_factory.mktemp("publisher"))
    prefix = "t-" + uuid.uuid4().hex[:8]
    admin = openbao.client()
    keys = keyset(SW)
    kv = admin.secrets.kv.v2
    kv.create_or_update_secret(path="%s/%s/public" % (prefix, SW), mount_point="secret",
                               secret={"pub": keys["pub"], "crt": keys["crt"]})
    kv.create_or_update_secret(path="%s/%s/gateway" % (prefix, SW), mount_point="secret", secret={"gw": keys["gw"]})
    kv.create_or_update_secret(path="%s/%s/master" % (prefix, SW), mount_point="secret",
                               secret={"masterkey": keys["masterkey"]})
    kv.create_or_update_secret(path="%s/s3/source" % prefix, mount_point="secret",
                               secret={"access_key": seaweedfs.access_key, "secret_key": seaweedfs.secret_key})
    admin.sys.create_or_update_policy(name="publisher-" + prefix, policy=POLICY.format(prefix=prefix))
    token = admin.auth.token.create(policies=["publisher-" + prefix], ttl="1h")["auth"]["client_token"]
    bucket = seaweedfs.make_bucket("src")
    catalogue = [
        {"name": SW, "stratum0": "s0.example.org",
         "publishers": [{"host": "localhost", "path": "/team-a"}, {"host": "pub2", "path": "/team-b"}],
         "source": {"endpoint_url": seaweedfs.endpoint_url, "region": seaweedfs.region, "bucket": bucket,
                    "ingest_prefix": "ingest/", "ingest_dir": "pkgs", "schedule": "*:0/5",
                    "credentials": {"vault_path": prefix + "/s3/source"}}},
        {"name": "other.example.org", "stratum0": "s0.example.org", "publishers": [{"host": "pub2"}],
         "source": {"bucket": "x"}},
    ]
    # the job runs against the cvmfs_server double and its tree (see the module docstring)
    extra = dict(host.vars, **{
        # the distribution's python3 has no boto3 on this machine (the role installs python3-boto3)
        "__publisher_python": sys.executable,
        "publisher_repositories": catalogue,
        "publisher_vault": {"url": openbao.url, "token": token},
        "publisher_vault_path_prefix": prefix,
    })
    first = run_playbook(host.work, "publisher.yml", extra)
    second = run_playbook(host.work, "publisher.yml", extra)
    return {"host": host, "root": host.root, "first": first, "second": second, "keys": keys, "bucket": bucket,
            "s3": seaweedfs, "prefix": prefix}


def test_converges_then_changes_nothing(site):
    assert_converged_then_unchanged(site["first"], site["second"])


def test_publisher_keys_only_pub_crt_gw(site):
    keys_dir = site["root"] / "etc/cvmfs/keys"
    assert sorted(os.listdir(str(keys_dir))) == [SW + ".crt", SW + ".gw", SW + ".pub"]
    for kind, mode in (("pub", 0o444), ("crt", 0o444), ("gw", 0o400)):
        path = keys_dir / ("%s.%s" % (SW, kind))
        assert path.read_text() == site["keys"][kind]
        assert stat.S_IMODE(path.stat().st_mode) == mode
    output = site["first"].output + site["second"].output
    assert site["keys"]["gw"].split()[2] not in output
    assert site["s3"].secret_key not in output


def test_credentials_file_from_vault(site):
    path = site["root"] / "etc/sharedsw-cvmfs/publish" / (SW + ".credentials")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "AWS_ACCESS_KEY_ID=%s\n" % site["s3"].access_key in text
    assert "AWS_SECRET_ACCESS_KEY=%s\n" % site["s3"].secret_key in text


def test_job_configuration(site):
    config = json.loads((site["root"] / "etc/sharedsw-cvmfs/publish" / (SW + ".json")).read_text())
    assert config["repository"] == SW and config["path"] == "/team-a" and config["lease"] == SW + "/team-a"
    assert config["source"]["prefix"] == "cvmfs/team-a/"
    assert config["source"]["ingest_prefix"] == "ingest/team-a/"
    assert config["credentials_file"].endswith("/%s.credentials" % SW)
    assert config["lock_file"] == str(site["root"] / "var/lib/sharedsw-cvmfs/publish" / SW / "publish.lock")
    assert not (site["root"] / "etc/sharedsw-cvmfs/publish/other.example.org.json").exists()


def test_units_pass_systemd_analyze_verify(site):
    unit_dir = site["root"] / "etc/systemd/system"
    units = ["sharedsw-cvmfs-publish@%s.service" % SW, "sharedsw-cvmfs-publish@%s.timer" % SW,
             "sharedsw-cvmfs-mount.service"]
    assert systemd_verify(unit_dir, units) == []
    schedule = (unit_dir / ("sharedsw-cvmfs-publish@%s.timer.d" % SW) / "schedule.conf").read_text()
    assert "OnCalendar=*:0/5" in schedule


def test_the_timed_run_waits_for_the_lock_instead_of_skipping(site):
    """The consumer shares the lock: the unit must wait for it (bounded), not exit 75 counted as success."""
    argv, _env = site["host"].unit_command("sharedsw-cvmfs-publish@.service", SW)
    assert argv[-2:] == ["--wait-lock", "3600"]
    unit = (site["root"] / "etc/systemd/system/sharedsw-cvmfs-publish@.service").read_text()
    assert "SuccessExitStatus" not in unit


def test_the_installed_job_publishes_from_s3(site):
    """Run the job as the unit would; the double stands in for cvmfs_server."""
    host = site["host"]
    host.add_repository(SW)
    client = site["s3"].client()
    client.put_object(Bucket=site["bucket"], Key="cvmfs/team-a/bin/app", Body=b"#!/bin/sh\n", Metadata={"mode": "33261"})
    client.put_object(Bucket=site["bucket"], Key="cvmfs/team-b/not-ours", Body=b"x")
    argv, env = host.unit_command("sharedsw-cvmfs-publish@.service", SW)
    proc = subprocess.run(argv, env=env, capture_output=True, check=False, text=True, stdin=subprocess.DEVNULL, cwd="/", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    published = host.double / "published" / SW
    assert (published / "team-a/bin/app").read_bytes() == b"#!/bin/sh\n"
    assert os.stat(str(published / "team-a/bin/app")).st_mode & 0o111
    assert not (published / "team-b").exists()
    calls = [json.loads(line)["argv"] for line in (host.double / "calls.jsonl").read_text().splitlines()]
    assert calls == [["transaction", "-t", "300", SW + "/team-a"], ["publish", SW]]
    status = json.loads((site["root"] / "var/lib/sharedsw-cvmfs/publish" / SW / "last-run.json").read_text())
    assert status["outcome"] == "ok" and status["published"] is True
