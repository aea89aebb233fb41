"""The action groups of meta/runtime.yml work with ``module_defaults``: a play sets each group's
shared options once, and every member of the group runs with them, against real services where
there are some (SeaweedFS and Ceph RGW, OpenBao), the TEST DOUBLE of cvmfs_server (tests/cvmfs_double)
and the OpenStack API TEST DOUBLE (tests/openstack_double).

A member without the option fails its task with "Unsupported parameters", so the play fails.
"""

import os
import subprocess
import sys

import pytest
import yaml

from tests.conftest import COLLECTIONS_ROOT, REPO_ROOT
from tests.cvmfs_double import DOUBLE, hook_env, make_storage
from tests.integration.events.helpers import module_args as notification_args
from tests.openstack_double.fixtures import *  # noqa: F401,F403  pylint: disable=wildcard-import,unused-wildcard-import
from tests.support.cvmfs_keyset import keyset, write_keyset

pytestmark = pytest.mark.integration

NAME = "sw.example.org"
#: the modules each test below runs through its group; test_every_member_is_run holds this to runtime.yml
RUN = {
    "cvmfs_server": {"repository", "transaction", "repository_info", "replica"},
    "s3": {"s3_sync", "bucket_notification"},
    "vault": {"keys"},
    "openstack": {"image_sync"},
}


def action_groups():
    with open(os.path.join(REPO_ROOT, "meta", "runtime.yml")) as handle:
        return yaml.safe_load(handle)["action_groups"]


def task(module, args=None, **keywords):
    return dict({"name": module, "sharedsw.cvmfs." + module: args or {}, "register": module}, **keywords)


def check(*conditions):
    return {"name": "check", "ansible.builtin.assert": {"that": list(conditions)}}


def run_play(tmp_path, group, defaults, tasks, env=None):
    """One play on localhost with ``module_defaults: {group/sharedsw.cvmfs.<group>: defaults}``;
    returns (rc, output)."""
    play = {"hosts": "localhost", "gather_facts": False,
            "module_defaults": {"group/sharedsw.cvmfs." + group: defaults}, "tasks": tasks}
    playbook = tmp_path / ("module-defaults-%s.yml" % group)
    playbook.write_text(yaml.safe_dump([play], sort_keys=False))
    child_env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_NOCOLOR="1",
                     ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
                     ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_RETRY_FILES_ENABLED="False",
                     ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"), ANSIBLE_REMOTE_TEMP=str(tmp_path / "ansible-tmp"))
    child_env.update(env or {})
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
            str(playbook)]
    proc = subprocess.run(argv, env=child_env, capture_output=True, text=True, check=False, timeout=600,
                          stdin=subprocess.DEVNULL, cwd=str(tmp_path))
    return proc.returncode, proc.stdout + proc.stderr


def test_every_member_is_run():
    groups = action_groups()
    assert sorted(groups) == sorted(RUN)
    for group, members in groups.items():
        assert set(members) == RUN[group], group


def test_cvmfs_server_group_sets_the_repository_name(tmp_path):
    """``name`` once: create a repository, open and publish a transaction, list it, and (on a second
    tree) add a replica of it, all against the cvmfs_server double."""
    root = tmp_path / "host"
    source = make_storage(str(tmp_path / "s0" / NAME), NAME, revision=5)
    pub = root / "etc/cvmfs/keys/example.org" / (NAME + ".pub")
    pub.parent.mkdir(parents=True)
    pub.write_text("-----BEGIN PUBLIC KEY-----\nS0\n")
    (root / "etc/cvmfs/server.local").write_text("CVMFS_GEO_DB_FILE=NONE\n")
    env = dict(hook_env(cvmfs_server=DOUBLE, etc_dir=root / "etc/cvmfs", spool_dir=root / "var/spool/cvmfs",
                        storage_dir=root / "srv/cvmfs"), CVMFS_DOUBLE_ROOT=str(root))
    tasks = [
        task("repository", {"state": "present", "owner": "root", "apache": False}),
        task("transaction", {"state": "opened"}),
        task("transaction", {"state": "published"}),
        task("repository_info"),
        check("repository.repository.name == %r" % NAME, "transaction.published",
              "repository_info.repositories | map(attribute='name') | list == [%r]" % NAME),
        task("repository", {"state": "absent"}),
        task("replica", {"state": "present", "stratum0_url": source, "public_key": [str(pub)], "apache": False}),
        check("replica.replica.name == %r" % NAME, "replica.replica.type == 'stratum1'"),
    ]
    rc, output = run_play(tmp_path, "cvmfs_server", {"name": NAME}, tasks, env=env)
    assert rc == 0, output[-6000:]


@pytest.mark.parametrize("with_notifications", [True, False], ids=["with-bucket-notification", "s3-sync-only"])
def test_s3_group_sets_the_s3_connection(tmp_path, request, with_notifications):
    """The S3 connection once: s3_sync against SeaweedFS and Ceph RGW; bucket_notification against Ceph
    RGW and RabbitMQ (SeaweedFS has no notification API)."""
    server = request.getfixturevalue("ceph_rgw" if with_notifications else "seaweedfs")
    bucket = server.make_bucket("defaults")
    server.client().put_object(Bucket=bucket, Key="cvmfs/hello.txt", Body=b"hello\n")
    dest = tmp_path / "dest"
    dest.mkdir()
    tasks = [
        task("s3_sync", {"bucket": bucket, "prefix": "cvmfs/", "dest": str(dest), "state_file": str(tmp_path / "state")}),
        check("s3_sync is changed"),
    ]
    if with_notifications:
        notification = notification_args(server, request.getfixturevalue("rabbitmq"), "defaults-" + bucket, bucket)
        for option in server.module_args():
            del notification[option]
        tasks += [task("bucket_notification", notification), check("bucket_notification is changed")]
    rc, output = run_play(tmp_path, "s3", server.module_args(), tasks)
    assert rc == 0, output[-6000:]
    assert (dest / "hello.txt").read_text() == "hello\n"


def test_vault_group_sets_the_vault_connection(tmp_path, openbao):
    repo = "defaults.example.org"
    material = keyset(repo)
    write_keyset(str(tmp_path / "keys"), repo, material)
    tasks = [task("keys", {"name": repo, "state": "stored", "keys_dir": str(tmp_path / "keys"),
                           "path_prefix": "defaults-" + os.path.basename(str(tmp_path))}),
             check("keys is changed")]
    rc, output = run_play(tmp_path, "vault", {"url": openbao.url, "token": openbao.root_token}, tasks)
    assert rc == 0, output[-6000:]
    assert material["masterkey"] not in output


def test_openstack_group_sets_the_cloud(tmp_path, openstack_double):
    """The cloud once: image_sync with an empty endorsed list leaves the double's Glance as it is."""
    from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _image_signature as images  # pylint: disable=import-outside-toplevel
    private_pem, public_pem = images.generate_key()
    (tmp_path / "endorser.pub").write_bytes(public_pem)
    data = yaml.safe_dump({"format": 1, "endorser": "images.example.org", "issued": "2026-01-01T00:00:00Z",
                           "expires": "2099-01-01T00:00:00Z", "images": []}).encode()
    (tmp_path / "images.yml").write_bytes(data)
    (tmp_path / "images.yml.sig").write_bytes(images.sign(data, private_pem))
    tasks = [task("image_sync", {"endorser": "images.example.org", "image_list": str(tmp_path / "images.yml"),
                                 "public_key": str(tmp_path / "endorser.pub"), "approved": []}),
             check("image_sync is not changed")]
    rc, output = run_play(tmp_path, "openstack", {"cloud": openstack_double.cloud_config()}, tasks)
    assert rc == 0, output[-6000:]
