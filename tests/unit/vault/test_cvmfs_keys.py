"""Unit tests of module_utils/_cvmfs_keys.py: validation, fingerprints, layout, atomic writes."""

import os
import stat

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _cvmfs_keys as ck
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError

from tests.support.cvmfs_keyset import KINDS, assert_no_secrets, keyset

REPO = "unit.example.org"


@pytest.fixture(scope="module")
def keys():
    return keyset(REPO)


@pytest.fixture(scope="module")
def other():
    return keyset(REPO, variant=1)


@pytest.mark.parametrize("kind", KINDS)
def test_real_material_of_each_kind_loads(keys, kind):
    assert ck.load(kind, keys[kind], "x") is not None
    assert ck.load(kind, keys[kind].encode(), "x") is not None


@pytest.mark.parametrize("kind,wrong", [
    ("pub", "crt"), ("pub", "masterkey"), ("crt", "pub"), ("crt", "key"), ("masterkey", "pub"),
    ("key", "crt"), ("gw", "pub"), ("masterkey", "gw"),
])
def test_material_of_another_kind_is_refused_without_quoting_it(keys, kind, wrong):
    with pytest.raises(CvmfsError) as info:
        ck.load(kind, keys[wrong], "/keys/r.%s" % kind)
    message = info.value.message
    assert message.startswith("/keys/r.%s" % kind)
    assert ck.describe(kind) in message
    assert_no_secrets(message, keys)
    assert "MII" not in message  # no base64 of any PEM body


@pytest.mark.parametrize("text,detail", [
    ("", "empty"),
    ("plain_text onlyid\n", "2 token(s)"),
    ("plain_text id secret extra\n", "4 token(s)"),
    ("hmac id secret\n", "first is not plain_text"),
])
def test_gateway_key_shape(text, detail):
    with pytest.raises(CvmfsError) as info:
        ck.load("gw", text, "r.gw")
    assert detail in info.value.message
    assert "secret" not in info.value.message.replace("<secret>", "")


def test_gateway_key_parses_id_and_secret():
    assert ck.parse_gw("plain_text key1 s3cr3t\n") == ("key1", "s3cr3t")


def test_encrypted_private_key_is_named_as_such(keys):
    from cryptography.hazmat.primitives import serialization
    obj = ck.load("key", keys["key"], "x")
    encrypted = obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(b"pw")).decode()
    with pytest.raises(CvmfsError, match="encrypted private key"):
        ck.load("key", encrypted, "x")


def test_non_rsa_key_is_refused():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    with pytest.raises(CvmfsError, match="not RSA"):
        ck.load("masterkey", pem, "x")


def test_truncated_certificate_and_non_ascii_are_refused(keys):
    with pytest.raises(CvmfsError, match="PEM X.509 certificate"):
        ck.load("crt", keys["crt"][:200], "x")
    with pytest.raises(CvmfsError, match="not ASCII"):
        ck.load("pub", keys["pub"] + "\u00e9", "x")
    with pytest.raises(CvmfsError, match="not ASCII"):
        ck.load("pub", b"\xff\xfe", "x")
    with pytest.raises(CvmfsError, match="not text"):
        ck.load("pub", 42, "x")


def test_fingerprints_pair_private_and_public_halves(keys):
    parsed = dict((k, ck.load(k, keys[k], k)) for k in KINDS)
    assert ck.fingerprint("masterkey", parsed["masterkey"]) == ck.fingerprint("pub", parsed["pub"])
    assert ck.fingerprint("pub", parsed["pub"]).startswith("SHA256:")
    crt = ck.fingerprint("crt", parsed["crt"])
    assert crt.startswith("SHA1:") and len(crt.split(":")) == 21
    gw_id = keys["gw"].split()[1]
    assert ck.fingerprint("gw", parsed["gw"]) == "plain_text id=%s" % gw_id
    diff = ck.fingerprint("gw", parsed["gw"], stable=False)
    assert diff == ck.fingerprint("gw", parsed["gw"], stable=False)
    assert ck.fingerprint("gw", ("id", "other"), stable=False) != ck.fingerprint("gw", ("id", "secret"), stable=False)
    assert_no_secrets(repr([ck.fingerprint(k, parsed[k], stable=False) for k in KINDS]), keys)


def test_check_pairs_refuses_mixed_up_key_sets(keys, other):
    good = dict((k, ck.load(k, keys[k], k)) for k in KINDS)
    sources = dict((k, "f." + k) for k in KINDS)
    ck.check_pairs(good, sources)
    with pytest.raises(CvmfsError, match="f.masterkey and f.pub do not belong together"):
        ck.check_pairs(dict(good, pub=ck.load("pub", other["pub"], "p")), sources)
    with pytest.raises(CvmfsError, match="f.key and f.crt do not belong together"):
        ck.check_pairs(dict(good, crt=ck.load("crt", other["crt"], "c")), sources)


def test_per_kind_layout_defaults():
    layout = ck.Layout(REPO)
    assert layout.path("masterkey") == "cvmfs/%s/master" % REPO
    assert layout.path("key") == "cvmfs/%s/signing" % REPO
    assert layout.path("gw") == "cvmfs/%s/gateway" % REPO
    assert layout.path("pub") == layout.path("crt") == "cvmfs/%s/public" % REPO
    assert (layout.field("pub"), layout.field("crt")) == ("pub", "crt")
    assert layout.by_path(["pub", "crt", "gw"]) == {
        "cvmfs/%s/public" % REPO: ["crt", "pub"], "cvmfs/%s/gateway" % REPO: ["gw"]}


def test_single_path_layout_uses_infn_field_names():
    layout = ck.Layout(REPO, "single_path", "owners/alice", fields={"key": "signingKey"})
    assert set(layout.path(k) for k in KINDS) == {"owners/alice/%s" % REPO}
    assert layout.field("masterkey") == "masterKey"
    assert layout.field("pub") == "publicKey"
    assert layout.field("gw") == "gatewayKey"
    assert layout.field("key") == "signingKey"
    assert layout.sharing("owners/alice/%s" % REPO) == list(KINDS)


@pytest.mark.parametrize("kwargs,message", [
    (dict(paths={"pub": "{prefix}/{repo}/../x"}), "not a clean Vault path"),
    (dict(paths={"pub": "{prefix}/{owner}"}), "may only use {prefix} and {repo}"),
    (dict(paths={"pub": "a//b"}), "not a clean Vault path"),
    (dict(fields={"crt": "pub"}), "crt and pub would both be stored in field pub"),
    (dict(fields={"cert": "x"}), "unknown key kind cert"),
    (dict(layout="flat"), "layout must be one of"),
])
def test_layout_errors(kwargs, message):
    with pytest.raises(CvmfsError, match=message.replace("{", r"\{").replace("}", r"\}").replace(".", r"\.")):
        ck.Layout(REPO, **kwargs)


@pytest.mark.parametrize("name", ["", "-x", "a/b", "..", "a" * 61, "x y"])
def test_repository_names_follow_cvmfs_rules(name):
    with pytest.raises(CvmfsError, match="not a CernVM-FS repository name"):
        ck.check_repo_name(name)


def test_parse_kinds_keeps_canonical_order_and_rejects_unknown():
    assert ck.parse_kinds(["gw", "pub", "crt"]) == ["crt", "pub", "gw"]
    assert ck.parse_kinds("pub,crt") == ["crt", "pub"]
    with pytest.raises(CvmfsError, match="unknown key kind cert"):
        ck.parse_kinds(["cert"])


def test_modes():
    assert ck.mode_for("masterkey") == ck.mode_for("key") == ck.mode_for("gw") == 0o400
    assert ck.mode_for("pub") == ck.mode_for("crt") == 0o444


def test_write_atomic_replaces_with_mode_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "r.key"
    target.write_text("old")
    inode = target.stat().st_ino
    ck.write_atomic(str(target), b"new content", 0o400)
    assert target.read_bytes() == b"new content"
    assert stat.S_IMODE(target.stat().st_mode) == 0o400
    assert target.stat().st_ino != inode  # replaced by rename, not rewritten in place
    assert os.listdir(str(tmp_path)) == ["r.key"]


def test_write_atomic_failure_leaves_target_and_no_temporary(tmp_path):
    target = tmp_path / "r.pub"
    target.write_text("old")
    with pytest.raises(TypeError):
        ck.write_atomic(str(target), None, 0o444)
    assert target.read_text() == "old"
    assert os.listdir(str(tmp_path)) == ["r.pub"]


def test_file_state(tmp_path):
    assert ck.file_state(str(tmp_path / "missing")) is None
    (tmp_path / "f").write_bytes(b"x")
    os.chmod(str(tmp_path / "f"), 0o444)
    content, mode, uid, gid = ck.file_state(str(tmp_path / "f"))
    assert (content, mode) == (b"x", 0o444)
    os.symlink("nowhere", str(tmp_path / "dangling"))
    with pytest.raises(CvmfsError, match="dangling symbolic link"):
        ck.file_state(str(tmp_path / "dangling"))
    with pytest.raises(CvmfsError, match="not a regular file"):
        ck.file_state(str(tmp_path))
