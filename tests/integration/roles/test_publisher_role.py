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
import shlex
import stat
import subprocess
import sys
import uuid

import pytest

from tests.support.cvmfs_keyset import keyset

from ._playbook import run_playbook, systemd_verify

pytestmark = pytest.mark.integration

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DOUBLE = os.path.join(REPO_ROOT, "tests", "support", "publish_double", "cvmfs_server")
SW = "sw.example.org"

POLICY = """
path "secret/data/{prefix}/+/public"  {{ capabilities = ["read"] }}
path "secret/data/{prefix}/+/gateway" {{ capabilities = ["read"] }}
path "secret/data/{prefix}/s3/*"      {{ capabilities = ["read"] }}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory, openbao, seaweedfs):
    base = tmp_path_factory.mktemp("publisher")
    root, work, double = base / "host", base / "work", base / "double"
    for directory in (root, work, double):
        directory.mkdir()
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
    paths = {"keys_dir": "etc/cvmfs/keys", "config_dir": "etc/sharedsw-cvmfs/publish",
             "state_root": "var/lib/sharedsw-cvmfs/publish", "systemd_dir": "etc/systemd/system",
             "program_dir": "usr/local/lib/sharedsw-cvmfs"}
    extra = {"__publisher_%s" % k: str(root / v) for k, v in paths.items()}
    os.makedirs(extra["__publisher_systemd_dir"])
    extra.update({
        # the job runs against the cvmfs_server double and its tree (see the module docstring)
        "__publisher_cvmfs_server": DOUBLE,
        "__publisher_mount_dir": str(double / "cvmfs"),
        "__publisher_spool_dir": str(double / "var/spool/cvmfs"),
        "__publisher_etc_dir": str(double / "etc/cvmfs"),
        # the distribution's python3 has no boto3 on this machine (the role installs python3-boto3)
        "__publisher_python": sys.executable,
        "publisher_repositories": catalogue,
        "publisher_vault": {"url": openbao.url, "token": token},
        "publisher_vault_path_prefix": prefix,
    })
    first = run_playbook(work, "publisher.yml", extra)
    second = run_playbook(work, "publisher.yml", extra)
    return {"root": root, "double": double, "first": first, "second": second, "keys": keys, "bucket": bucket,
            "s3": seaweedfs, "prefix": prefix}


def test_converges_then_changes_nothing(site):
    assert site["first"].rc == 0, site["first"]
    assert site["first"].changed > 0
    assert site["second"].rc == 0, site["second"]
    assert site["second"].changed == 0, site["second"]


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


def _exec_start(site):
    """The command line systemd would run for the instance (ExecStart and Environment, %i expanded)."""
    unit = (site["root"] / "etc/systemd/system/sharedsw-cvmfs-publish@.service").read_text()
    env, argv = {}, None
    for line in unit.splitlines():
        if line.startswith("Environment="):
            env.update(item.split("=", 1) for item in shlex.split(line[len("Environment="):]))
        if line.startswith("ExecStart="):
            argv = shlex.split(line[len("ExecStart="):].replace("%i", SW))
    return argv, env


def test_the_timed_run_waits_for_the_lock_instead_of_skipping(site):
    """The consumer shares the lock: the unit must wait for it (bounded), not exit 75 counted as success."""
    argv, _env = _exec_start(site)
    assert argv[-2:] == ["--wait-lock", "3600"]
    unit = (site["root"] / "etc/systemd/system/sharedsw-cvmfs-publish@.service").read_text()
    assert "SuccessExitStatus" not in unit


def test_the_installed_job_publishes_from_s3(site):
    """Run the job as the unit would; the double stands in for cvmfs_server."""
    double = site["double"]
    (double / "etc/cvmfs/repositories.d" / SW).mkdir(parents=True)
    (double / "etc/cvmfs/repositories.d" / SW / "server.conf").write_text("CVMFS_REPOSITORY_NAME=%s\n" % SW)
    (double / "cvmfs" / SW).mkdir(parents=True)
    (double / "published" / SW).mkdir(parents=True)
    client = site["s3"].client()
    client.put_object(Bucket=site["bucket"], Key="cvmfs/team-a/bin/app", Body=b"#!/bin/sh\n", Metadata={"mode": "33261"})
    client.put_object(Bucket=site["bucket"], Key="cvmfs/team-b/not-ours", Body=b"x")
    argv, env = _exec_start(site)
    proc = subprocess.run(argv, env=dict(env, PATH=os.environ["PATH"], CVMFS_DOUBLE_ROOT=str(double)),
                          capture_output=True, check=False, text=True, stdin=subprocess.DEVNULL, cwd="/", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    published = double / "published" / SW
    assert (published / "team-a/bin/app").read_bytes() == b"#!/bin/sh\n"
    assert os.stat(str(published / "team-a/bin/app")).st_mode & 0o111
    assert not (published / "team-b").exists()
    calls = [json.loads(line)["argv"] for line in (double / "calls.jsonl").read_text().splitlines()]
    assert calls == [["transaction", "-t", "300", SW + "/team-a"], ["publish", SW]]
    status = json.loads((site["root"] / "var/lib/sharedsw-cvmfs/publish" / SW / "last-run.json").read_text())
    assert status["outcome"] == "ok" and status["published"] is True
