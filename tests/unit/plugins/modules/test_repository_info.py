"""sharedsw.cvmfs.repository_info: local mode on a scratch tree laid out like cvmfs_server leaves
it (cvmfs-facts §2.1, §2.2), and argument errors. Runs the module for real in a child process.
The remote mode is tested against apache and squid in tests/integration/test_repository_info.py.
"""

import json
import os

import pytest

from tests.cvmfs_double import hook_env
from tests.support.server_tree import make_stratum0, stratum0_conf, write

MODULE = "repository_info"

SERVER_CONF_S0 = stratum0_conf(upstream="S3,/var/spool/cvmfs/sw.example.org/tmp,sw.example.org@/etc/cvmfs/s3.conf",
                               CVMFS_HASH_ALGORITHM="shake128")

SERVER_CONF_S1 = """\
CVMFS_CREATOR_VERSION=143
CVMFS_REPOSITORY_NAME=sw.example.org
CVMFS_REPOSITORY_TYPE=stratum1
CVMFS_USER=root
CVMFS_SPOOL_DIR=/var/spool/cvmfs/sw-s1.example.org
CVMFS_STRATUM0=http://s0.example.org/cvmfs/sw.example.org
CVMFS_STRATUM1=http://localhost/cvmfs/sw-s1.example.org
CVMFS_UPSTREAM_STORAGE=local,/srv/cvmfs/sw-s1.example.org/data/txn,/srv/cvmfs/sw-s1.example.org
"""

REPLICA_CONF = """\
CVMFS_NUM_WORKERS=16
CVMFS_PUBLIC_KEY=/etc/cvmfs/keys/example.org
CVMFS_HTTP_TIMEOUT=10
CVMFS_HTTP_RETRIES=3
"""


@pytest.fixture
def server_tree(tmp_path):
    """A stratum-0 in a transaction and an aliased stratum-1 of it, as cvmfs_server writes them; returns
    the module environment that points the module at it (the test hook of module_utils/_cvmfs_server.py)."""
    etc = tmp_path / "etc"
    spool = tmp_path / "spool"
    make_stratum0(etc, spool, "sw.example.org", SERVER_CONF_S0, in_transaction=True)
    write(etc / "repositories.d/sw-s1.example.org/server.conf", SERVER_CONF_S1)
    write(etc / "repositories.d/sw-s1.example.org/replica.conf", REPLICA_CONF)
    os.makedirs(str(spool / "sw-s1.example.org"))
    return hook_env(etc_dir=etc, spool_dir=spool)


def test_local_lists_repositories(run_module, server_tree):
    result = run_module(MODULE, {}, check=True, env=server_tree)
    assert not result.failed, result.get("msg")
    assert result["changed"] is False
    found = dict((r["name"], r) for r in result["repositories"])
    assert sorted(found) == ["sw-s1.example.org", "sw.example.org"]
    s0, s1 = found["sw.example.org"], found["sw-s1.example.org"]
    assert (s0["type"], s0["storage"], s0["in_transaction"], s0["owner"]) == ("stratum0", "s3", True, "cvmfs")
    assert (s1["type"], s1["storage"], s1["in_transaction"], s1["fqrn"]) == ("stratum1", "local", False,
                                                                             "sw.example.org")
    assert s1["replica_config"]["CVMFS_PUBLIC_KEY"] == "/etc/cvmfs/keys/example.org"
    assert s0["config"]["CVMFS_HASH_ALGORITHM"] == "shake128"


def test_local_filter_by_alias_or_name(run_module, server_tree):
    alias = run_module(MODULE, {"name": "sw-s1.example.org"}, env=server_tree)
    assert [r["name"] for r in alias["repositories"]] == ["sw-s1.example.org"]
    fqrn = run_module(MODULE, {"repository": "sw.example.org"}, env=server_tree)
    assert sorted(r["name"] for r in fqrn["repositories"]) == ["sw-s1.example.org", "sw.example.org"]
    absent = run_module(MODULE, {"name": "absent.example.org"}, env=server_tree)
    assert not absent.failed and absent["repositories"] == []


def test_local_without_any_repository(run_module, tmp_path):
    result = run_module(MODULE, {}, env=hook_env(etc_dir=tmp_path, spool_dir=tmp_path))
    assert not result.failed and result["repositories"] == []


@pytest.mark.parametrize("args,message", [
    ({"url": "http://127.0.0.1:9/cvmfs/x"}, "missing parameter(s) required by 'url': public_keys"),
    ({"public_keys": ["/k.pub"], "stratum0_url": "http://h/cvmfs/x"},
     "public_keys, stratum0_url only apply with url"),
    ({"url": "ftp://h/cvmfs/x", "public_keys": ["/k.pub"]}, "url must be an http:// or https:// URL"),
    ({"url": "http://h/cvmfs/x", "public_keys": ["/k.pub"], "reference_time": "soon"},
     "reference_time: 'soon' is neither seconds since the epoch nor an ISO 8601 time"),
    ({"url": "http://h/cvmfs/x", "public_keys": ["/nonexistent/k.pub"]}, "cannot read public key file /nonexistent/k.pub"),
])
def test_argument_errors(run_module, tmp_path, args, message):
    result = run_module(MODULE, args)
    assert result.failed
    assert message in result["msg"]


def test_private_key_given_by_mistake_is_not_echoed(run_module):
    """The key is generated here, for this test only; the result must not carry it anywhere."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    result = run_module(MODULE, {"url": "http://127.0.0.1:9/cvmfs/x", "public_keys": [pem]})
    assert result.failed and result["reason"] == "bad_key"
    assert "is a private key" in result["msg"]
    secret_line = pem.splitlines()[1]
    leaked = secret_line in json.dumps(result)
    assert not leaked, "the private key came back in the module result"


# The module's invocation as AnsibleModule logs it (journal or syslog, here syslog.syslog into a
# file): the module runs in a child process as run_module runs it, with syslog.syslog replaced.
LOGGING_RUNNER = """
import runpy, sys, syslog
import ansible.module_utils.basic as basic
log = open(sys.argv[2], "a")
basic.has_journal = False
syslog.syslog = lambda *args: log.write(str(args[-1]) + "\\n") or log.flush()
sys.argv = sys.argv[:2]
runpy.run_module("ansible_collections.sharedsw.cvmfs.plugins.modules.repository_info", run_name="__main__")
"""


def _run_logged(tmp_path, args):
    import subprocess
    import sys

    from tests.conftest import COLLECTIONS_ROOT
    args_file, log_file = tmp_path / "args.json", tmp_path / "syslog.txt"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict(args, _ansible_tmpdir=str(tmp_path))}))
    proc = subprocess.run([sys.executable, "-c", LOGGING_RUNNER, str(args_file), str(log_file)], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=COLLECTIONS_ROOT), check=False)
    assert log_file.exists() and "Invoked with" in log_file.read_text(), proc.stderr
    return json.loads(proc.stdout), log_file.read_text()


def _key_pem(private):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if private:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def test_private_key_given_by_mistake_is_not_logged(tmp_path):
    """Generated here, for this test only: neither the logged invocation nor the result carries it."""
    pem = _key_pem(private=True)
    result, log = _run_logged(tmp_path, {"url": "http://127.0.0.1:9/cvmfs/x", "public_keys": [pem]})
    assert result["failed"] and result["reason"] == "bad_key"
    secret_line = pem.splitlines()[1]
    assert secret_line not in log, "the private key was logged with the invocation"
    assert secret_line not in json.dumps(result)


def test_proxy_credentials_are_neither_logged_nor_returned(tmp_path):
    proxy = "http://alice:proxy-pass-%s@127.0.0.1:9" % os.getpid()
    public = _key_pem(private=False)
    result, log = _run_logged(tmp_path, {"url": "http://192.0.2.1/cvmfs/x", "public_keys": [public], "proxy": proxy,
                                         "retries": 0, "timeout": 5})
    assert result["failed"] and "through proxy" in result["msg"], result["msg"]
    for text, where in ((log, "the logged invocation"), (json.dumps(result), "the result")):
        assert "proxy-pass-" not in text, "the proxy password is in %s" % where
    assert "127.0.0.1:9" in result["invocation"]["module_args"]["proxy"], "the proxy's address stays visible"
    # public keys are no secret: they stay readable
    assert public.splitlines()[1] in json.dumps(result["invocation"])
