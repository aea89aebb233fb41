#!/usr/bin/env python
"""The service side of `make lab`: Vault set-up, the source bucket, and the `hello` demo.

    lab_stack.py vault  --services DIR --repository REPO          # policies, AppRoles, S3 credentials
    lab_stack.py bucket --services DIR --bucket BUCKET             # the source bucket users upload to
    lab_stack.py hello  --services DIR --bucket BUCKET --repository REPO \\
                        --stratum0 URL --stratum1 URL [--key cvmfs/hello] [--timeout 600] [--nudge CMD]

DIR holds the state of the harness services started by molecule/shared/lab_services.py:
DIR/openbao/service.json, DIR/ceph/service.json (and DIR/rabbitmq/service.json). Everything is
reached on this machine's loopback (the `local` endpoints); the lab hosts reach the same ports
through ssh tunnels.

vault: loads the policies of docs/vault-policies.md (stratum-0 writes every key; a publisher reads
the public and gateway keys of its repository and the source bucket's credentials; stratum-1 and
clients read public keys), makes one AppRole per node type, stores the S3 credentials of the source
bucket at secret/<prefix>/s3/<bucket> and writes DIR/vault-approles.json (mode 0600) with each
role's role_id and secret_id, which the lab inventory reads. Safe to run again.

hello: records the revision the stratum-0 serves, uploads a small shell program `hello`
(mode 0755 in the object's metadata) to s3://BUCKET/KEY, waits until the stratum-0 serves a newer
revision (the publisher synced and published it), runs --nudge (e.g. a snapshot on the
stratum-1), then waits until the stratum-1 serves that revision too. Progress goes to stdout; on
time-out it exits 1 with what it last saw. Revisions are read from the `S` line of
.cvmfspublished over plain HTTP (no proxy).
"""

import argparse
import datetime
import json
import os
import re
import shlex
import subprocess
import sys
import time
from urllib.error import HTTPError, URLError
from urllib.request import ProxyHandler, build_opener

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from plugins.module_utils._common import CvmfsError  # noqa: E402  pylint: disable=wrong-import-position
from plugins.module_utils._cvmfs_signed import parse_manifest  # noqa: E402  pylint: disable=wrong-import-position

POLICY_DOC = os.path.join(ROOT, "docs", "vault-policies.md")
DOC_REPOSITORY = "software.example.org"   # the repository the policy examples of the page name
APPROLES = {  # role name -> policies (names as in docs/vault-policies.md, publisher's made per repository)
    "stratum0": ["cvmfs-stratum0"],
    "publisher": ["cvmfs-publisher-{repo}"],
    "public": ["cvmfs-public"],          # stratum-1s and clients
}


def say(text):
    print(text, flush=True)


def read_service(services, kind):
    path = os.path.join(services, kind, "service.json")
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError) as error:
        raise CvmfsError("cannot read %s (%s): is the %s service of the lab running "
                         "(molecule/shared/lab_services.py start)?" % (path, error, kind))


# --------------------------------------------------------------------------- Vault

def doc_policies(path=POLICY_DOC):
    """``{name: hcl}`` of every ``# policy: <name>`` block of docs/vault-policies.md."""
    with open(path) as handle:
        text = handle.read()
    blocks = dict(re.findall(r"```hcl\n# policy: (\S+)\n(.*?)```", text, re.S))
    for name in ("cvmfs-stratum0", "cvmfs-publisher-" + DOC_REPOSITORY, "cvmfs-public"):
        if name not in blocks:
            raise CvmfsError("%s has no '# policy: %s' block; the lab loads its policies from there" % (path, name))
    return blocks


def lab_policies(repository, source_path, mount="secret", prefix="cvmfs"):
    """The policies of the lab: those of the documentation, the publisher's for ``repository`` and
    allowed to read the source bucket's credentials at ``source_path`` (below the mount)."""
    docs = doc_policies()
    if (mount, prefix) != ("secret", "cvmfs"):
        docs = dict((name, hcl.replace('"secret/data/cvmfs/', '"%s/data/%s/' % (mount, prefix))
                     .replace('"secret/metadata/cvmfs/', '"%s/metadata/%s/' % (mount, prefix)))
                    for name, hcl in docs.items())
    publisher = docs["cvmfs-publisher-" + DOC_REPOSITORY].replace(DOC_REPOSITORY, repository)
    publisher += '\n# the source bucket\'s credentials (read on the controller by the publisher role)\n' \
                 'path "%s/data/%s" {\n  capabilities = ["read"]\n}\n' % (mount, source_path)
    return {"cvmfs-stratum0": docs["cvmfs-stratum0"], "cvmfs-public": docs["cvmfs-public"],
            "cvmfs-publisher-" + repository: publisher}


def vault_setup(client, repository, s3_credentials, bucket, mount="secret", prefix="cvmfs"):
    """Policies, AppRoles and the source bucket's credentials; returns ``{role: {role_id, secret_id}}``."""
    source_path = "%s/s3/%s" % (prefix, bucket)
    for name, hcl in sorted(lab_policies(repository, source_path, mount, prefix).items()):
        client.sys.create_or_update_policy(name=name, policy=hcl)
    if "approle/" not in client.sys.list_auth_methods():
        client.sys.enable_auth_method("approle")
    roles = {}
    for role, policies in sorted(APPROLES.items()):
        name = "cvmfs-lab-" + role
        client.auth.approle.create_or_update_approle(
            role_name=name, token_policies=[p.format(repo=repository) for p in policies],
            token_ttl="20m", token_max_ttl="1h", secret_id_ttl="0")
        role_id = client.auth.approle.read_role_id(role_name=name)["data"]["role_id"]
        secret_id = client.auth.approle.generate_secret_id(role_name=name)["data"]["secret_id"]
        roles[role] = {"role_id": role_id, "secret_id": secret_id}
    client.secrets.kv.v2.create_or_update_secret(
        path=source_path, mount_point=mount,
        secret={"access_key": s3_credentials["access_key"], "secret_key": s3_credentials["secret_key"]})
    return roles


def write_private_json(path, data):
    temporary = path + ".tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(data, handle, indent=1)
    os.rename(temporary, path)


# --------------------------------------------------------------------------- S3

def s3_client(service):
    import boto3  # pylint: disable=import-outside-toplevel
    from botocore.config import Config  # pylint: disable=import-outside-toplevel
    return boto3.client("s3", endpoint_url=service["local"], region_name=service["region"],
                        aws_access_key_id=service["access_key"], aws_secret_access_key=service["secret_key"],
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5}))


def ensure_bucket(s3, bucket):
    """Create ``bucket`` unless it exists; returns True when it was created."""
    names = [entry["Name"] for entry in s3.list_buckets().get("Buckets", [])]
    if bucket in names:
        return False
    s3.create_bucket(Bucket=bucket)
    return True


def hello_program(repository, stamp):
    """The shell program the demo publishes (it names its repository and upload time)."""
    return ("#!/bin/sh\n"
            "# Uploaded by tools/lab.sh to the lab's source bucket, published into /cvmfs/%(repo)s.\n"
            "echo \"hello from /cvmfs/%(repo)s (uploaded %(stamp)s), running on $(hostname)\"\n"
            % {"repo": repository, "stamp": stamp}).encode()


def upload_hello(s3, bucket, key, body):
    """Upload ``body`` as ``key``, executable for the publisher's sync (metadata ``mode``)."""
    s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata={"mode": "0755"},
                  ContentType="text/x-shellscript")


# --------------------------------------------------------------------------- revisions

_OPENER = build_opener(ProxyHandler({}))   # the lab hosts are reached directly, never through a proxy


def manifest_revision(base_url, timeout=10):
    """Revision (``S`` line) of ``<base_url>/.cvmfspublished``; CvmfsError if it cannot be read."""
    url = base_url.rstrip("/") + "/.cvmfspublished"
    try:
        with _OPENER.open(url, timeout=timeout) as answer:
            data = answer.read(1024 * 1024)
    except HTTPError as error:
        raise CvmfsError("%s: HTTP %s" % (url, error.code))
    except (URLError, OSError) as error:
        raise CvmfsError("%s: %s" % (url, getattr(error, "reason", error)))
    return parse_manifest(data, what=url).revision


def wait_for_revision(base_url, minimum, timeout, interval=2.0, label="server", report=say,
                      clock=time.monotonic, sleep=time.sleep):
    """Poll until ``base_url`` serves revision ``minimum`` or newer; return that revision.

    Reports each change of what it sees (and a line every 30 s while nothing changes); raises
    CvmfsError with the last revision or error seen when ``timeout`` seconds pass."""
    start = clock()
    last_seen = last_report = None
    while True:
        try:
            seen = manifest_revision(base_url)
        except CvmfsError as error:
            seen = "unreadable (%s)" % error
        elapsed = clock() - start
        if isinstance(seen, int) and seen >= minimum:
            report("   %s serves revision %d (%.0f s)" % (label, seen, elapsed))
            return seen
        if seen != last_seen or last_report is None or clock() - last_report >= 30:
            report("   %s: revision %s, waiting for %d (%.0f s of %.0f)" % (label, seen, minimum, elapsed, timeout))
            last_seen, last_report = seen, clock()
        if elapsed >= timeout:
            raise CvmfsError("%s (%s) did not serve revision %d within %.0f s; last seen: revision %s"
                             % (label, base_url, minimum, timeout, seen))
        sleep(interval)


def publish_hello(s3, bucket, key, repository, stratum0, stratum1, timeout, interval=2.0, nudge=None,
                  report=say, stamp=None):
    """Upload ``hello`` and wait for it to reach the stratum-0 and then the stratum-1.

    Returns ``(revision before, revision published)``. ``nudge`` (argv) runs once the stratum-0 has
    it, to start a replication at once instead of waiting for the stratum-1's timer."""
    before = manifest_revision(stratum0)
    report("   stratum-0 serves revision %d before the upload" % before)
    stamp = stamp or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    upload_hello(s3, bucket, key, hello_program(repository, stamp))
    report("   uploaded s3://%s/%s (a shell script, mode 0755)" % (bucket, key))
    deadline = time.monotonic() + timeout
    published = wait_for_revision(stratum0, before + 1, timeout, interval, "stratum-0", report)
    if nudge:
        report("   starting a replication now: %s" % " ".join(shlex.quote(arg) for arg in nudge))
        result = subprocess.run(nudge, check=False, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            report("   (the nudge failed with exit status %d; waiting for the stratum-1's timer)" % result.returncode)
    wait_for_revision(stratum1, published, max(deadline - time.monotonic(), 0), interval, "stratum-1", report)
    return before, published


# --------------------------------------------------------------------------- command line

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    vault = commands.add_parser("vault", help="policies, AppRoles and S3 credentials in the lab's OpenBao")
    bucket = commands.add_parser("bucket", help="create the source bucket")
    hello = commands.add_parser("hello", help="upload hello and wait for the publish")
    for sub in (vault, bucket, hello):
        sub.add_argument("--services", required=True, help="state directory of the lab services")
    for sub in (vault, hello):
        sub.add_argument("--repository", required=True)
    for sub in (vault, bucket, hello):
        sub.add_argument("--bucket", required=True)
    vault.add_argument("--prefix", default="cvmfs")
    vault.add_argument("--mount", default="secret")
    hello.add_argument("--key", default="cvmfs/hello")
    hello.add_argument("--stratum0", required=True, help="URL of the repository on the stratum-0")
    hello.add_argument("--stratum1", required=True, help="URL of the repository on the stratum-1")
    hello.add_argument("--timeout", type=float, default=600, help="seconds for the whole wait (default 600)")
    hello.add_argument("--interval", type=float, default=2.0)
    hello.add_argument("--nudge", help="command run once the stratum-0 has the new revision")
    args = parser.parse_args(argv)
    try:
        if args.command == "vault":
            import hvac  # pylint: disable=import-outside-toplevel
            bao, s3 = read_service(args.services, "openbao"), read_service(args.services, "ceph")
            roles = vault_setup(hvac.Client(url=bao["local"], token=bao["token"]), args.repository, s3,
                                args.bucket, args.mount, args.prefix)
            out = os.path.join(args.services, "vault-approles.json")
            write_private_json(out, roles)
            say("   Vault: policies of docs/vault-policies.md, AppRoles %s; S3 credentials at %s/%s/s3/%s; %s"
                % (", ".join("cvmfs-lab-" + role for role in sorted(roles)), args.mount, args.prefix,
                   args.bucket, out))
        elif args.command == "bucket":
            created = ensure_bucket(s3_client(read_service(args.services, "ceph")), args.bucket)
            say("   bucket %s %s" % (args.bucket, "created" if created else "exists"))
        else:
            publish_hello(s3_client(read_service(args.services, "ceph")), args.bucket, args.key, args.repository,
                          args.stratum0, args.stratum1, args.timeout, args.interval,
                          shlex.split(args.nudge) if args.nudge else None)
    except CvmfsError as error:
        sys.stderr.write("lab_stack.py %s: %s\n" % (args.command, error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
