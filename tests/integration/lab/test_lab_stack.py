"""tools/lab/lab_stack.py against the harness's real services: the Vault set-up of the lab
(OpenBao: policies of docs/vault-policies.md, one AppRole per node type), and the `hello` demo
(upload to S3, wait for the stratum-0 and then the stratum-1 to serve a newer revision), with
apache serving copies of a manifest as the two servers. Only the publish itself is played by the
test: a thread that bumps the stratum-0's manifest once the upload is in the bucket (there is no
CernVM-FS here); the stratum-1's replication is the --nudge command, a plain copy."""

import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import uuid

import hvac
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PROGRAM = os.path.join(ROOT, "tools", "lab", "lab_stack.py")
REPO = "lab.example.org"

pytestmark = pytest.mark.integration


def _load_program():
    spec = importlib.util.spec_from_file_location("lab_stack", PROGRAM)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lab_stack = _load_program()


def manifest(revision):
    """A structurally valid .cvmfspublished (the signature bytes are not checked by the lab tool)."""
    return ("C%s\nB4096\nR%s\nD240\nS%d\nN%s\n--\n%s\n" % ("a" * 40, "b" * 32, revision, REPO, "c" * 40)).encode() + b"\x01sig"


def write_manifest(directory, revision):
    temporary = os.path.join(directory, ".cvmfspublished.tmp")
    with open(temporary, "wb") as handle:
        handle.write(manifest(revision))
    os.chmod(temporary, 0o644)
    os.rename(temporary, os.path.join(directory, ".cvmfspublished"))


@pytest.fixture
def servers(apache):
    """Two directories served by apache as the repository on a stratum-0 and on a stratum-1."""
    work = tempfile.mkdtemp(prefix="lab-stack-")   # not tmp_path: pytest keeps it 0700, apache could not read it
    urls = {}
    for name in ("s0", "s1"):
        os.makedirs(os.path.join(work, name))
        write_manifest(os.path.join(work, name), 5)
        urls[name] = apache.publish("lab-%s-%s" % (name, os.path.basename(work)), os.path.join(work, name)).rstrip("/")
    yield work, urls
    shutil.rmtree(work, ignore_errors=True)


def _services(directory, s3=None, bao=None):
    if s3 is not None:
        os.makedirs(os.path.join(directory, "ceph"), exist_ok=True)
        with open(os.path.join(directory, "ceph", "service.json"), "w") as handle:
            json.dump({"kind": "ceph", "local": s3.endpoint_url, "remote": s3.endpoint_url, "region": s3.region,
                       "access_key": s3.access_key, "secret_key": s3.secret_key}, handle)
    if bao is not None:
        os.makedirs(os.path.join(directory, "openbao"), exist_ok=True)
        with open(os.path.join(directory, "openbao", "service.json"), "w") as handle:
            json.dump({"kind": "openbao", "local": bao.url, "remote": bao.url, "token": bao.root_token}, handle)
    return directory


def _run(*args):
    return subprocess.run([sys.executable, PROGRAM] + list(args), capture_output=True, text=True, check=False,
                          timeout=300, stdin=subprocess.DEVNULL)


def test_revision_is_read_from_the_manifest(servers):
    _work, urls = servers
    assert lab_stack.manifest_revision(urls["s0"]) == 5


def test_wait_gives_up_with_what_it_saw(servers):
    _work, urls = servers
    seen = []
    with pytest.raises(lab_stack.CvmfsError) as error:
        lab_stack.wait_for_revision(urls["s1"], 6, timeout=0, label="stratum-1", report=seen.append)
    assert "did not serve revision 6 within 0 s; last seen: revision 5" in str(error.value)
    assert seen == ["   stratum-1: revision 5, waiting for 6 (0 s of 0)"]


def test_wait_reports_a_missing_manifest(apache):
    with pytest.raises(lab_stack.CvmfsError) as error:
        lab_stack.wait_for_revision(apache.url + "/no-such-repository", 1, timeout=0, report=lambda line: None)
    assert "HTTP 404" in str(error.value)


def test_bucket_is_created_once(s3_server):
    services = _services(tempfile.mkdtemp(prefix="lab-services-"), s3=s3_server)
    bucket = "lab-" + uuid.uuid4().hex[:12]
    try:
        first, second = _run("bucket", "--services", services, "--bucket", bucket), _run("bucket", "--services", services, "--bucket", bucket)
    finally:
        shutil.rmtree(services)
    assert first.returncode == 0 and "bucket %s created" % bucket in first.stdout, first.stderr
    assert second.returncode == 0 and "bucket %s exists" % bucket in second.stdout, second.stderr


def test_hello_is_uploaded_and_waited_for_on_both_servers(s3_server, servers):
    work, urls = servers
    bucket = s3_server.make_bucket("lab")
    s3 = s3_server.client()
    services = _services(tempfile.mkdtemp(prefix="lab-services-"), s3=s3_server)
    stop = threading.Event()

    def publisher():   # the publish, played: once hello is in the bucket, the stratum-0 serves revision 6
        while not stop.is_set():
            if s3.list_objects_v2(Bucket=bucket, Prefix="cvmfs/hello").get("KeyCount"):
                write_manifest(os.path.join(work, "s0"), 6)
                return
            stop.wait(0.2)

    thread = threading.Thread(target=publisher)
    thread.start()
    nudge = "cp %s %s" % (os.path.join(work, "s0", ".cvmfspublished"), os.path.join(work, "s1", ".cvmfspublished"))
    try:
        proc = _run("hello", "--services", services, "--bucket", bucket, "--repository", REPO, "--stratum0", urls["s0"],
                    "--stratum1", urls["s1"], "--timeout", "120", "--interval", "0.2", "--nudge", nudge)
    finally:
        stop.set()
        thread.join()
        shutil.rmtree(services)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "stratum-0 serves revision 5 before the upload" in out
    assert "uploaded s3://%s/cvmfs/hello" % bucket in out
    assert "stratum-0 serves revision 6" in out
    assert "starting a replication now: cp " in out
    assert "stratum-1 serves revision 6" in out
    assert out.index("stratum-0 serves revision 6") < out.index("starting a replication") < out.index("stratum-1 serves revision 6")
    head = s3.head_object(Bucket=bucket, Key="cvmfs/hello")
    assert head["Metadata"].get("mode") == "0755"
    body = s3.get_object(Bucket=bucket, Key="cvmfs/hello")["Body"].read().decode()
    assert body.startswith("#!/bin/sh\n") and "hello from /cvmfs/%s" % REPO in body


def test_hello_times_out_when_nothing_is_published(s3_server, servers):
    _work, urls = servers
    bucket = s3_server.make_bucket("lab")
    services = _services(tempfile.mkdtemp(prefix="lab-services-"), s3=s3_server)
    try:
        proc = _run("hello", "--services", services, "--bucket", bucket, "--repository", REPO, "--stratum0", urls["s0"],
                    "--stratum1", urls["s1"], "--timeout", "0")
    finally:
        shutil.rmtree(services)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "lab_stack.py hello: stratum-0 (%s) did not serve revision 6 within 0 s; last seen: revision 5" % urls["s0"]]


def test_vault_setup_gives_each_node_type_only_its_keys(openbao):
    services = _services(tempfile.mkdtemp(prefix="lab-services-"), bao=openbao,
                         s3=type("S3", (), {"endpoint_url": "http://127.0.0.1:1", "region": "default",
                                            "access_key": "lab-ak", "secret_key": "lab-sk"})())
    try:
        first = _run("vault", "--services", services, "--repository", REPO, "--bucket", "lab-software")
        second = _run("vault", "--services", services, "--repository", REPO, "--bucket", "lab-software")
        path = os.path.join(services, "vault-approles.json")
        mode = stat.S_IMODE(os.stat(path).st_mode)
        with open(path) as handle:
            roles = json.load(handle)
    finally:
        shutil.rmtree(services)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert mode == 0o600
    assert sorted(roles) == ["public", "publisher", "stratum0"]
    root = openbao.client()
    for kind, data in (("master", {"masterkey": "m"}), ("gateway", {"gw": "g"}), ("public", {"pub": "p", "crt": "c"})):
        root.secrets.kv.v2.create_or_update_secret(path="cvmfs/%s/%s" % (REPO, kind), secret=data, mount_point="secret")

    def login(role):
        client = hvac.Client(url=openbao.url)
        client.auth.approle.login(role_id=roles[role]["role_id"], secret_id=roles[role]["secret_id"])
        return client

    def can_read(client, path):
        try:
            client.secrets.kv.v2.read_secret_version(path=path, mount_point="secret", raise_on_deleted_version=True)
            return True
        except hvac.exceptions.Forbidden:
            return False

    publisher, public, stratum0 = login("publisher"), login("public"), login("stratum0")
    assert can_read(publisher, "cvmfs/%s/public" % REPO) and can_read(publisher, "cvmfs/%s/gateway" % REPO)
    assert not can_read(publisher, "cvmfs/%s/master" % REPO)
    source = publisher.secrets.kv.v2.read_secret_version(
        path="cvmfs/s3/lab-software", mount_point="secret", raise_on_deleted_version=True)["data"]["data"]
    assert source == {"access_key": "lab-ak", "secret_key": "lab-sk"}
    assert can_read(public, "cvmfs/%s/public" % REPO)
    assert not can_read(public, "cvmfs/%s/gateway" % REPO) and not can_read(public, "cvmfs/s3/lab-software")
    stratum0.secrets.kv.v2.create_or_update_secret(path="cvmfs/%s/signing" % REPO, secret={"key": "k"}, mount_point="secret")
    assert can_read(stratum0, "cvmfs/%s/master" % REPO)
