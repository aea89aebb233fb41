"""sharedsw.cvmfs.keys and the repo_public_key lookup against a REAL OpenBao server.

Key material is generated at test time (tests/support/cvmfs_keyset.py). The policies are the HCL
blocks of docs/vault-policies.md, loaded into the server as they are written there. Every module
run is checked for leaked key material in its result, stdout and stderr.
"""

import base64
import json
import os
import re
import stat
import subprocess
import sys
import time
import uuid

import hvac.exceptions
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.harness._process import free_port
from tests.support.cvmfs_keyset import KINDS, assert_no_secrets, keyset, snapshot, write_keyset

pytestmark = pytest.mark.integration

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
POLICY_DOC = os.path.join(REPO_ROOT, "docs", "vault-policies.md")
SUFFIX = {"masterkey": ".masterkey", "key": ".key", "crt": ".crt", "pub": ".pub", "gw": ".gw"}
APPROLE_MOUNT = "approle-cvmfs-keys"
JWT_MOUNT = "jwt-cvmfs-keys"


# ---- helpers --------------------------------------------------------------------------------

def set_a():
    """Two real key sets serve every test: RSA key generation is the slow part."""
    return keyset("set-a.example.org")


def set_b():
    return keyset("set-b.example.org")


def warnings_of(result):
    """Warning texts of a module result (ansible-core 2.19 returns them as WarningSummary dicts)."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


def seed(hv, repo, material, mount="secret"):
    """Store a full key set in the per-kind layout directly with hvac (set-up, not the code under test)."""
    for leaf, data in (("master", {"masterkey": material["masterkey"]}), ("signing", {"key": material["key"]}),
                       ("gateway", {"gw": material["gw"]}),
                       ("public", {"pub": material["pub"], "crt": material["crt"]})):
        hv.secrets.kv.v2.create_or_update_secret(path="cvmfs/%s/%s" % (repo, leaf), secret=data, mount_point=mount)


def new_repo():
    return "t%s.example.org" % uuid.uuid4().hex[:8]


def policies_from_doc():
    """``{name: hcl}`` of every ``# policy: <name>`` block of docs/vault-policies.md."""
    with open(POLICY_DOC) as handle:
        text = handle.read()
    blocks = re.findall(r"```hcl\n# policy: (\S+)\n(.*?)```", text, re.S)
    assert {"cvmfs-stratum0", "cvmfs-publisher-software.example.org", "cvmfs-public"} <= set(block[0] for block in blocks)
    return dict(blocks)


def install_policies(hv, repo):
    """Load the documented policies for ``repo``; returns ``{node type: policy name}``."""
    names = {}
    for name, hcl in policies_from_doc().items():
        node = name.split("-")[1]
        name = name.replace("software.example.org", repo)
        hv.sys.create_or_update_policy(name=name, policy=hcl.replace("software.example.org", repo))
        names[node] = name
    return names


def enable_auth(hv, method, path):
    if path + "/" not in hv.sys.list_auth_methods()["data"]:
        hv.sys.enable_auth_method(method, path=path)


def approle_login_args(hv, role, policies):
    enable_auth(hv, "approle", APPROLE_MOUNT)
    hv.auth.approle.create_or_update_approle(role, token_policies=policies, token_ttl="5m", mount_point=APPROLE_MOUNT)
    role_id = hv.auth.approle.read_role_id(role, mount_point=APPROLE_MOUNT)["data"]["role_id"]
    secret_id = hv.auth.approle.generate_secret_id(role, mount_point=APPROLE_MOUNT)["data"]["secret_id"]
    return dict(auth_method="approle", auth_mount_point=APPROLE_MOUNT, role_id=role_id, secret_id=secret_id)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_jwt(key, claims):
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    signature = key.sign(("%s.%s" % (header, payload)).encode(), padding.PKCS1v15(), hashes.SHA256())
    return "%s.%s.%s" % (header, payload, b64url(signature))


def kv_version(hv, path):
    try:
        return hv.secrets.kv.v2.read_secret_metadata(path=path, mount_point="secret")["data"]["current_version"]
    except hvac.exceptions.InvalidPath:
        return None


def kv_data(hv, path):
    return hv.secrets.kv.v2.read_secret_version(path=path, mount_point="secret",
                                                raise_on_deleted_version=True)["data"]["data"]


@pytest.fixture
def keys_module(run_module):
    """Run sharedsw.cvmfs.keys (diff on by default) and prove no key material left the module."""
    seen = []

    def _run(material, args, check=False, diff=True):
        result = run_module("keys", args, check=check, diff=diff)
        seen.append(result)
        assert_no_secrets(json.dumps(result) + result["_stderr"], material)
        return result

    return _run


@pytest.fixture
def root_args(openbao):
    return dict(url=openbao.url, token=openbao.root_token, retries=0)


# ---- round trip and idempotence ---------------------------------------------------------------

def test_full_key_set_round_trip(openbao, keys_module, root_args, tmp_path):
    repo, material = new_repo(), set_a()
    s0, restored = str(tmp_path / "s0"), str(tmp_path / "restored" / "keys")
    write_keyset(s0, repo, material)
    hv = openbao.client()

    result = keys_module(material, dict(root_args, name=repo, state="stored", keys_dir=s0))
    assert result["rc"] == 0 and result["changed"], result
    assert sorted(result["keys"]) == sorted(KINDS)
    assert result["secrets"] == dict(("secret/cvmfs/%s/%s" % (repo, leaf), {"changed": True, "version": 1})
                                     for leaf in ("gateway", "master", "public", "signing"))
    assert result["keys"]["masterkey"]["fingerprint"] == result["keys"]["pub"]["fingerprint"]
    assert kv_data(hv, "cvmfs/%s/master" % repo) == {"masterkey": material["masterkey"]}
    assert kv_data(hv, "cvmfs/%s/signing" % repo) == {"key": material["key"]}
    assert kv_data(hv, "cvmfs/%s/gateway" % repo) == {"gw": material["gw"]}
    assert kv_data(hv, "cvmfs/%s/public" % repo) == {"pub": material["pub"], "crt": material["crt"]}
    assert "SHA256:" in result["diff"]["after"] and result["diff"]["before"] == ""

    args = dict(root_args, name=repo, state="present", keys_dir=restored, kinds=list(KINDS), allow_masterkey=True,
                owner="nobody", group="nogroup")
    check = keys_module(material, args, check=True)
    assert check["changed"] and not os.path.exists(restored)
    result = keys_module(material, args)
    assert result["rc"] == 0 and result["changed"], result
    for kind in KINDS:
        path = os.path.join(restored, repo + SUFFIX[kind])
        with open(path) as handle:
            assert handle.read() == material[kind]
        st = os.stat(path)
        assert stat.S_IMODE(st.st_mode) == (0o444 if kind in ("pub", "crt") else 0o400), kind
        assert (st.st_uid, st.st_gid) == (65534, 65534)
    assert sorted(os.listdir(restored)) == sorted(repo + SUFFIX[k] for k in KINDS)  # no temporary files left

    again = keys_module(material, args)
    assert not again["changed"] and not any(k["changed"] for k in again["keys"].values())

    os.chmod(os.path.join(restored, repo + ".gw"), 0o644)
    fixed = keys_module(material, args)
    assert fixed["changed"] and [k for k, v in fixed["keys"].items() if v["changed"]] == ["gw"]
    assert stat.S_IMODE(os.stat(os.path.join(restored, repo + ".gw")).st_mode) == 0o400


def test_store_twice_keeps_kv_versions_and_only_changed_paths_move(openbao, keys_module, root_args, tmp_path):
    repo, material = new_repo(), set_a()
    s0 = str(tmp_path / "s0")
    write_keyset(s0, repo, material)
    hv = openbao.client()
    args = dict(root_args, name=repo, state="stored", keys_dir=s0)
    keys_module(material, args)
    paths = ["cvmfs/%s/%s" % (repo, leaf) for leaf in ("master", "signing", "gateway", "public")]
    assert [kv_version(hv, p) for p in paths] == [1, 1, 1, 1]

    second = keys_module(material, args)
    assert second["rc"] == 0 and not second["changed"], second
    assert [kv_version(hv, p) for p in paths] == [1, 1, 1, 1]
    assert second["diff"]["before"] == second["diff"]["after"]

    rotated = dict(material, gw="plain_text %s %s\n" % ("rotated-id", "rotated-secret-value"))
    os.chmod(os.path.join(s0, repo + ".gw"), 0o600)
    with open(os.path.join(s0, repo + ".gw"), "w") as handle:
        handle.write(rotated["gw"])
    check = keys_module(rotated, args, check=True)
    assert check["changed"] and [kv_version(hv, p) for p in paths] == [1, 1, 1, 1]
    assert "plain_text id=rotated-id" in check["diff"]["after"]
    changed = keys_module(rotated, args)
    assert [k for k, v in changed["keys"].items() if v["changed"]] == ["gw"]
    assert [kv_version(hv, p) for p in paths] == [1, 1, 2, 1]


# ---- least privilege enforced by the server ------------------------------------------------

def test_publisher_approle_fetches_pub_crt_gw_and_the_server_denies_the_masterkey(openbao, keys_module, tmp_path):
    repo, material = new_repo(), set_a()
    hv = openbao.client()
    policies = install_policies(hv, repo)
    s0_login = approle_login_args(hv, "s0-" + repo.split(".", 1)[0], [policies["stratum0"]])
    pub_login = approle_login_args(hv, "pub-" + repo.split(".", 1)[0], [policies["publisher"]])
    base = dict(url=openbao.url, retries=0, name=repo)

    s0 = str(tmp_path / "s0")
    write_keyset(s0, repo, material)
    stored = keys_module(material, dict(base, state="stored", keys_dir=s0, **s0_login))
    assert stored["rc"] == 0 and stored["changed"], stored
    again = keys_module(material, dict(base, state="stored", keys_dir=s0, **s0_login))
    assert not again["changed"], again  # the stratum-0 policy allows the compare

    pub_dir = str(tmp_path / "publisher")
    fetched = keys_module(material, dict(base, state="present", keys_dir=pub_dir, kinds=["pub", "crt", "gw"],
                                         **pub_login))
    assert fetched["rc"] == 0 and fetched["changed"], fetched
    assert sorted(os.listdir(pub_dir)) == sorted(repo + s for s in (".crt", ".gw", ".pub"))

    before = snapshot(pub_dir)
    for kind, leaf in (("masterkey", "master"), ("key", "signing")):
        denied = keys_module(material, dict(base, state="present", keys_dir=pub_dir, kinds=[kind],
                                            allow_masterkey=True, **pub_login))
        assert denied["failed"], denied
        assert "permission denied to read secret/data/cvmfs/%s/%s" % (repo, leaf) in denied["msg"]
        assert policies["publisher"] in denied["msg"]
        assert denied["vault_path"] == "secret/data/cvmfs/%s/%s" % (repo, leaf)
    assert snapshot(pub_dir) == before

    guard = keys_module(material, dict(base, state="present", keys_dir=pub_dir, kinds=["masterkey"], **pub_login))
    assert guard["failed"] and "allow_masterkey: true" in guard["msg"]

    # the stratum-1 / client policy: public only
    public_login = approle_login_args(hv, "s1-" + repo.split(".", 1)[0], [policies["public"]])
    s1_dir = str(tmp_path / "s1")
    ok = keys_module(material, dict(base, state="present", keys_dir=s1_dir, **public_login))
    assert ok["rc"] == 0 and os.listdir(s1_dir) == [repo + ".pub"]
    no_gw = keys_module(material, dict(base, state="present", keys_dir=s1_dir, kinds=["gw"], **public_login))
    assert no_gw["failed"] and "permission denied to read secret/data/cvmfs/%s/gateway" % repo in no_gw["msg"]
    assert os.listdir(s1_dir) == [repo + ".pub"]


def test_jwt_login_with_a_locally_signed_token(openbao, keys_module, root_args, tmp_path):
    repo, material = new_repo(), set_a()
    hv = openbao.client()
    policies = install_policies(hv, repo)
    seed(hv, repo, material)

    issuer = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issuer_pem = issuer.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    enable_auth(hv, "jwt", JWT_MOUNT)
    hv.auth.jwt.configure(jwt_validation_pubkeys=[issuer_pem], path=JWT_MOUNT)
    hv.auth.jwt.create_role(name="cvmfs-client", user_claim="sub", allowed_redirect_uris=None, role_type="jwt",
                            bound_audiences=["cvmfs"], token_policies=[policies["public"]], token_ttl="5m",
                            path=JWT_MOUNT)
    now = int(time.time())
    token = sign_jwt(issuer, {"sub": "client1.example.org", "aud": "cvmfs", "iat": now, "nbf": now - 5,
                              "exp": now + 300})
    login = dict(auth_method="jwt", auth_mount_point=JWT_MOUNT, jwt_role="cvmfs-client", jwt=token)
    client_dir = str(tmp_path / "client")
    result = keys_module(material, dict(url=openbao.url, retries=0, name=repo, state="present",
                                        keys_dir=client_dir, **login))
    assert result["rc"] == 0 and result["changed"], result
    with open(os.path.join(client_dir, repo + ".pub")) as handle:
        assert handle.read() == material["pub"]
    assert token not in json.dumps(result) + result["_stderr"]

    forged = sign_jwt(rsa.generate_private_key(public_exponent=65537, key_size=2048),
                      {"sub": "intruder", "aud": "cvmfs", "iat": now, "exp": now + 300})
    before = snapshot(client_dir)
    refused = keys_module(material, dict(url=openbao.url, retries=0, name=repo, state="present", keys_dir=client_dir,
                                         **dict(login, jwt=forged)))
    assert refused["failed"] and refused["msg"].startswith("login failed with auth_method=jwt at auth/%s" % JWT_MOUNT)
    assert forged not in json.dumps(refused)
    assert snapshot(client_dir) == before


LOOKUP_PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: found
      ansible.builtin.debug:
        msg: "{{ lookup('sharedsw.cvmfs.repo_public_key', repo, retries=0) }}"
    - name: missing
      ansible.builtin.debug:
        msg: "{{ lookup('sharedsw.cvmfs.repo_public_key', 'absent.example.org', retries=0) }}"
      ignore_errors: true
"""


def test_lookup_returns_the_public_key(openbao, tmp_path):
    repo, material = new_repo(), set_a()
    seed(openbao.client(), repo, material)
    playbook = tmp_path / "lookup.yml"
    playbook.write_text(LOOKUP_PLAYBOOK)
    # url and token from the environment: the documented VAULT_ADDR / BAO_TOKEN fallbacks
    env = dict(os.environ, BAO_ADDR=openbao.url, VAULT_TOKEN=openbao.root_token, ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    env.pop("VAULT_ADDR", None)
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
                           "-e", "repo=" + repo, str(playbook)],
                          capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tasks = json.loads(proc.stdout)["plays"][0]["tasks"]
    found, missing = (task["hosts"]["localhost"] for task in tasks)
    assert found["msg"] == material["pub"]
    assert missing["failed"]
    assert "sharedsw.cvmfs.repo_public_key: no public key of absent.example.org: field pub of the Vault secret " \
        "secret/cvmfs/absent.example.org/public does not exist" in missing["msg"]
    assert_no_secrets(proc.stdout + proc.stderr, material)


# ---- failures: each a clear message, nothing touched -------------------------------------

@pytest.fixture
def seeded(openbao, tmp_path):
    """A repository stored in Vault, and a host keys directory holding an older .pub."""
    repo, material = new_repo(), set_a()
    seed(openbao.client(), repo, material)
    host = str(tmp_path / "host")
    write_keyset(host, repo, set_b(), kinds=("pub",))
    return repo, material, host


@pytest.mark.parametrize("case", ["down", "wrong_token", "wrong_path", "kv_version_1", "malformed_in_vault"])
def test_failures_are_clear_and_touch_nothing(openbao, keys_module, root_args, seeded, case):
    repo, material, host = seeded
    args = dict(root_args, name=repo, state="present", keys_dir=host, kinds=["pub", "crt", "gw"])
    if case == "down":
        args["url"] = "http://127.0.0.1:%d" % free_port()
        expected = "Vault at %s is unreachable ([Errno 111] Connection refused)" % args["url"]
    elif case == "wrong_token":
        args["token"] = "s.not-a-real-token"
        expected = "Vault at %s rejected the token (auth_method=token): it is invalid, expired or revoked" % openbao.url
    elif case == "wrong_path":
        args["path_prefix"] = "elsewhere"
        expected = "no secret at secret/elsewhere/%s/gateway" % repo
    elif case == "kv_version_1":
        hv = openbao.client()
        if "kv1-cvmfs/" not in hv.sys.list_mounted_secrets_engines()["data"]:
            hv.sys.enable_secrets_engine("kv", path="kv1-cvmfs", options={"version": "1"})
        args["engine_mount_point"] = "kv1-cvmfs"
        expected = "engine_mount_point kv1-cvmfs is KV version 1; these keys need KV version 2"
    else:
        openbao.client().secrets.kv.v2.create_or_update_secret(
            path="cvmfs/%s/gateway" % repo, secret={"gw": "plain_text only-two-tokens\n"}, mount_point="secret")
        expected = ("field gw of the Vault secret secret/cvmfs/%s/gateway is not a gateway key file of one line "
                    "'plain_text <key id> <secret>' (found 2 token(s))" % repo)
    before = snapshot(host)
    result = keys_module(material, args)
    assert result["failed"] and result["rc"] == 1, result
    assert expected in result["msg"], result["msg"]
    assert snapshot(host) == before
    assert sorted(os.listdir(host)) == [repo + ".pub"]


def test_malformed_local_key_is_refused_before_vault_is_written(openbao, keys_module, root_args, tmp_path):
    repo, material = new_repo(), set_a()
    s0 = str(tmp_path / "s0")
    write_keyset(s0, repo, material)
    os.chmod(os.path.join(s0, repo + ".pub"), 0o644)
    with open(os.path.join(s0, repo + ".pub"), "w") as handle:
        handle.write(material["crt"])  # a certificate where the public key should be
    result = keys_module(material, dict(root_args, name=repo, state="stored", keys_dir=s0))
    assert result["failed"]
    assert result["msg"] == "%s/%s.pub is not a PEM public key (-----BEGIN PUBLIC KEY-----)" % (s0, repo)
    hv = openbao.client()
    assert [kv_version(hv, "cvmfs/%s/%s" % (repo, leaf)) for leaf in ("master", "signing", "gateway", "public")] \
        == [None] * 4

    mixed = dict(material, pub=set_b()["pub"])
    write_keyset(s0, repo, mixed, kinds=("pub",))
    result = keys_module(material, dict(root_args, name=repo, state="stored", keys_dir=s0))
    assert result["failed"] and "do not belong together" in result["msg"]
    assert kv_version(hv, "cvmfs/%s/public" % repo) is None


def test_sealed_server_is_a_clear_error(openbao_raft, keys_module, tmp_path):
    repo, material = new_repo(), set_a()
    hv = openbao_raft.client()
    hv.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    seed(hv, repo, material)
    args = dict(url=openbao_raft.url, token=openbao_raft.root_token, retries=0, name=repo)
    host = str(tmp_path / "host")
    write_keyset(host, repo, material)
    assert keys_module(material, dict(args, state="present", keys_dir=host))["changed"] is False  # unsealed: works
    before = snapshot(host)

    openbao_raft.seal()
    for state in ("present", "stored"):
        result = keys_module(material, dict(args, state=state, keys_dir=host, kinds=["pub"]))
        assert result["failed"], result
        assert result["msg"] == "Vault at %s is sealed; unseal it (`bao operator unseal`) and run again" % openbao_raft.url
    assert snapshot(host) == before


# ---- absent and the single-path layout -----------------------------------------------------

def test_absent_deletes_secrets_and_optionally_files(openbao, keys_module, root_args, tmp_path):
    repo, material = new_repo(), set_a()
    s0 = str(tmp_path / "s0")
    write_keyset(s0, repo, material)
    hv = openbao.client()
    args = dict(root_args, name=repo, keys_dir=s0)
    keys_module(material, dict(args, state="stored"))

    partial = keys_module(material, dict(args, state="absent", kinds=["crt"]))
    assert partial["changed"] and any("earlier versions" in w for w in warnings_of(partial))
    assert kv_data(hv, "cvmfs/%s/public" % repo) == {"pub": material["pub"]}

    check = keys_module(material, dict(args, state="absent", remove_files=True), check=True)
    assert check["changed"] and kv_version(hv, "cvmfs/%s/master" % repo) == 1 and len(os.listdir(s0)) == 5
    gone = keys_module(material, dict(args, state="absent", remove_files=True))
    assert gone["changed"] and os.listdir(s0) == []
    assert [kv_version(hv, "cvmfs/%s/%s" % (repo, leaf)) for leaf in ("master", "signing", "gateway", "public")] \
        == [None] * 4
    again = keys_module(material, dict(args, state="absent", remove_files=True))
    assert not again["changed"], again


def test_single_path_layout_with_infn_field_names(openbao, keys_module, root_args, tmp_path):
    repo, material = new_repo(), set_a()
    s0 = str(tmp_path / "s0")
    write_keyset(s0, repo, material)
    hv = openbao.client()
    args = dict(root_args, name=repo, layout="single_path", path_prefix="owners/alice")
    stored = keys_module(material, dict(args, state="stored", keys_dir=s0))
    assert list(stored["secrets"]) == ["secret/owners/alice/%s" % repo]
    data = kv_data(hv, "owners/alice/%s" % repo)
    assert sorted(data) == ["certificateKey", "gatewayKey", "masterKey", "publicKey", "repositoryKey"]
    assert keys_module(material, dict(args, state="stored", keys_dir=s0))["changed"] is False
    assert kv_version(hv, "owners/alice/%s" % repo) == 1

    publisher = keys_module(material, dict(args, state="present", keys_dir=str(tmp_path / "p"),
                                           kinds=["pub", "crt", "gw"]))
    assert publisher["rc"] == 0
    assert any("also holds the masterkey" in w for w in warnings_of(publisher))


def test_namespace_and_bao_environment_fallbacks_reach_the_right_secret(openbao):
    """In-process (no module run): the client honours namespace, and BAO_* variables when options are unset."""
    from ansible_collections.sharedsw.cvmfs.plugins.module_utils._vault import VaultClient

    namespace = "ns" + uuid.uuid4().hex[:6]
    root = openbao.client()
    root.sys.create_namespace(namespace)
    scoped = hvac.Client(url=openbao.url, token=openbao.root_token, namespace=namespace)
    scoped.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    environ = {"BAO_ADDR": openbao.url, "BAO_TOKEN": openbao.root_token, "BAO_NAMESPACE": namespace}
    client = VaultClient({"retries": 0}, environ=environ).connect()
    assert client.write("cvmfs/ns.example.org/public", {"pub": "x"}, cas=0) == 1
    assert scoped.secrets.kv.v2.read_secret_version(path="cvmfs/ns.example.org/public", mount_point="secret",
                                                    raise_on_deleted_version=True)["data"]["data"] == {"pub": "x"}
    assert kv_version(root, "cvmfs/ns.example.org/public") is None  # not in the root namespace


DEBIAN_PYTHON = "/usr/bin/python3"


def _debian_python_has_libraries():
    if not os.path.exists(DEBIAN_PYTHON):
        return False
    probe = subprocess.run([DEBIAN_PYTHON, "-c", "import hvac, cryptography"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _debian_python_has_libraries(),
                    reason="Debian's python3-hvac and python3-cryptography are not installed (apt-get install python3-hvac)")
def test_module_runs_with_the_distribution_python_libraries(openbao, tmp_path):
    """On a Debian 12 target the module runs with /usr/bin/python3 and the distribution's hvac 0.11
    and cryptography 38, not with the controller's venv. Only ansible's own package is borrowed, as
    AnsiballZ would ship it."""
    import ansible

    shim = tmp_path / "shim"
    shim.mkdir()
    os.symlink(os.path.dirname(ansible.__file__), str(shim / "ansible"))
    collections = os.environ["ANSIBLE_COLLECTIONS_PATH"].split(os.pathsep)[0]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": "%s:%s" % (collections, shim), "HOME": str(tmp_path)}

    def run(args):
        payload = dict(args, _ansible_check_mode=False, _ansible_diff=True, _ansible_tmpdir=str(tmp_path))
        args_file = tmp_path / "args.json"
        args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": payload}))
        proc = subprocess.run([DEBIAN_PYTHON, "-m", "ansible_collections.sharedsw.cvmfs.plugins.modules.keys",
                               str(args_file)], capture_output=True, text=True, env=env, check=False)
        assert_no_secrets(proc.stdout + proc.stderr, material)
        return json.loads(proc.stdout)

    repo, material = new_repo(), set_a()
    s0, host = str(tmp_path / "s0"), str(tmp_path / "host")
    write_keyset(s0, repo, material)
    base = dict(url=openbao.url, token=openbao.root_token, retries=0, name=repo)
    version = subprocess.run([DEBIAN_PYTHON, "-c", "import hvac, sys; sys.stdout.write(hvac.__file__)"],
                             capture_output=True, text=True, env=env, check=True).stdout
    assert version.startswith("/usr/lib/python3/dist-packages/")

    stored = run(dict(base, state="stored", keys_dir=s0))
    assert stored.get("changed") and not stored.get("failed"), stored
    fetched = run(dict(base, state="present", keys_dir=host, kinds=["pub", "crt", "gw"]))
    assert fetched.get("changed") and not fetched.get("failed"), fetched
    assert run(dict(base, state="absent"))["changed"]
    missing = run(dict(base, state="present", keys_dir=host))
    assert missing["failed"] and "no secret at secret/cvmfs/%s/public" % repo in missing["msg"]
