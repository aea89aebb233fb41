"""Unit tests of _image_signature: signing and verification with keys made at test time, tampered and
unsigned lists; verification before parsing."""

import base64
import hashlib
import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _image_list as imagelist
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _image_signature as image_signature
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from tests.unit.plugins.module_utils.image_support import (  # pylint: disable=unused-import
    ENDORSER,
    NOW,
    entry,
    image_list,
    keys,  # noqa: F401  (pytest fixture)
)


# --------------------------------------------------------------------------- signatures

def test_a_signed_list_verifies_and_parses(keys):
    private_pem, public_pem = keys
    data = image_list(entry(), entry("stratum1", "1.0", path="/cvmfs/images.example.org/s1.qcow2", url=None))
    signature = image_signature.sign(data, private_pem)
    assert signature.endswith(b"\n") and len(base64.b64decode(signature)) == 64
    image_signature.verify(data, signature, public_pem)
    parsed = imagelist.parse_image_list(data, ENDORSER, now=NOW)
    assert [(e.name, e.version, e.source) for e in parsed.images] == [
        ("client", "2026.11", "https://images.example.org/client-2026.11.qcow2"),
        ("stratum1", "1.0", "/cvmfs/images.example.org/s1.qcow2")]
    assert parsed.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("tamper", [
    lambda d: d.replace(b"2026.11", b"2026.12"),          # a changed version
    lambda d: d + b"\n",                                  # one byte appended
    lambda d: d[:-1],                                     # one byte cut
    lambda d: d.replace(b"format: 1", b"format:  1"),     # same YAML meaning, other bytes
])
def test_a_tampered_list_is_refused(keys, tamper):
    private_pem, public_pem = keys
    data = image_list()
    signature = image_signature.sign(data, private_pem)
    with pytest.raises(CvmfsError, match="signature of the image list does not match.*refusing it"):
        image_signature.verify(tamper(data), signature, public_pem)


def test_a_list_signed_by_another_key_is_refused(keys):
    other_private, _other_public = image_signature.generate_key()
    data = image_list()
    with pytest.raises(CvmfsError, match="does not match"):
        image_signature.verify(data, image_signature.sign(data, other_private), keys[1])


@pytest.mark.parametrize("signature, message", [
    (b"", "not signed"),
    (b"\n", "not signed"),
    (b"not base64 at all!", "neither base64"),
    (base64.b64encode(b"short") + b"\n", "neither base64"),
])
def test_unsigned_or_garbage_signatures_are_refused(keys, signature, message):
    with pytest.raises(CvmfsError, match=message):
        image_signature.verify(image_list(), signature, keys[1])


def test_a_raw_64_byte_signature_is_accepted(keys):
    data = image_list()
    raw = base64.b64decode(image_signature.sign(data, keys[0]))
    image_signature.verify(data, raw, keys[1])


def test_an_rsa_key_is_refused_with_the_scheme_named():
    rsa_public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(CvmfsError, match="RSAPublicKey.*Ed25519"):
        image_signature.verify(image_list(), b"x" * 64, rsa_public)
    with pytest.raises(CvmfsError, match="not a PEM public key"):
        image_signature.verify(image_list(), b"x" * 64, b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


def test_an_encrypted_private_key_needs_its_passphrase():
    private_pem, public_pem = image_signature.generate_key(password=b"correct horse")
    data = image_list()
    with pytest.raises(CvmfsError, match="encrypted: give its passphrase"):
        image_signature.sign(data, private_pem)
    with pytest.raises(CvmfsError, match="wrong passphrase"):
        image_signature.sign(data, private_pem, password=b"wrong")
    image_signature.verify(data, image_signature.sign(data, private_pem, password=b"correct horse"), public_pem)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is not installed")
def test_openssl_signatures_are_the_same_scheme(keys, tmp_path):
    """An endorser without this collection signs with openssl (3.0+) and the site accepts it."""
    private_pem, public_pem = keys
    (tmp_path / "key.pem").write_bytes(private_pem)
    (tmp_path / "images.yml").write_bytes(image_list())
    raw = subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", str(tmp_path / "key.pem"),
                          "-in", str(tmp_path / "images.yml")], capture_output=True, check=True).stdout
    image_signature.verify(image_list(), base64.b64encode(raw) + b"\n", public_pem)
    assert base64.b64encode(raw) + b"\n" == image_signature.sign(image_list(), private_pem)  # Ed25519 is deterministic


def test_load_verified_list_refuses_a_missing_signature_file(keys, tmp_path):
    (tmp_path / "images.yml").write_bytes(image_list())
    (tmp_path / "e.pub").write_bytes(keys[1])
    with pytest.raises(CvmfsError, match="is not signed.*images.yml.sig does not exist"):
        imagelist.load_verified_list(str(tmp_path / "images.yml"), str(tmp_path / "images.yml.sig"),
                                     str(tmp_path / "e.pub"), ENDORSER)


def test_verification_comes_before_parsing(keys, tmp_path):
    """A list that is not even YAML is refused for its signature, not parsed."""
    (tmp_path / "images.yml").write_bytes(b"{{{ not yaml")
    (tmp_path / "images.yml.sig").write_bytes(image_signature.sign(b"something else", keys[0]))
    (tmp_path / "e.pub").write_bytes(keys[1])
    with pytest.raises(CvmfsError, match="signature of the image list does not match"):
        imagelist.load_verified_list(str(tmp_path / "images.yml"), str(tmp_path / "images.yml.sig"),
                                     str(tmp_path / "e.pub"), ENDORSER)


def test_fingerprint_is_stable(keys):
    key = serialization.load_pem_public_key(keys[1])
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert image_signature.public_key_fingerprint(keys[1]) == hashlib.sha256(raw).hexdigest()
