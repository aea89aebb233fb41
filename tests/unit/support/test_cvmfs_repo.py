"""tests/support/cvmfs_repo.py: the committed fixture holds public material only, and a re-keyed
copy is the fixture signed again with fresh keys, nothing else changed. Checked with plain
``cryptography`` and hashlib, independently of the collection's verifier (which the fixture tests).
"""

import hashlib
import os
import zlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from tests.support import cvmfs_repo as support
from tests.support.cvmfs_repo import (  # pylint: disable=unused-import
    cvmfs_repo,  # noqa: F401  (the pytest fixture: re-keyed copy)
    pristine_repo,  # noqa: F401  (the pytest fixture: the committed fixture, untouched)
)

SIGNED = (".cvmfspublished", ".cvmfswhitelist")


def files_under(top):
    found = {}
    for root, _dirs, files in os.walk(top):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, top)] = handle.read()
    return found


def split(data):
    """``(text lines, hash line, signature)`` of a signed file; the hash line must be the SHA-1 of
    the text up to and including the newline before ``--`` (checked here on every split)."""
    text, _sep, rest = data.partition(b"\n--\n")
    hash_line, _newline, signature = rest.partition(b"\n")
    assert hash_line == hashlib.sha1(text + b"\n").hexdigest().encode()
    return text.decode("utf-8").split("\n"), hash_line, signature


def certificate_der(path):
    with open(path, "rb") as handle:
        return x509.load_pem_x509_certificate(handle.read()).public_bytes(serialization.Encoding.DER)


def master_public_key(path):
    with open(path, "rb") as handle:
        return serialization.load_pem_public_key(handle.read())


def raw_rsa_payload(public_key, signature):
    """What ``openssl pkeyutl -verifyrecover`` gives back: the PKCS#1 v1.5 type 1 block's payload
    (``None`` when the signature was not made with this key's private half)."""
    numbers = public_key.public_numbers()
    size = (numbers.n.bit_length() + 7) // 8
    block = pow(int.from_bytes(signature, "big"), numbers.e, numbers.n).to_bytes(size, "big")
    if block[:2] != b"\x00\x01" or b"\x00" not in block[2:]:
        return None
    return block[block.index(b"\x00", 2) + 1:]


def test_committed_fixture_holds_public_material_only():
    files = files_under(support.COMMITTED)
    assert files, support.COMMITTED
    for path, data in files.items():
        assert not path.endswith((".key", ".masterkey", ".gw")), path
        assert b"PRIVATE KEY" not in data, path
    assert sorted(p for p in files if p.startswith("keys/")) == [
        "keys/fixture.cvmfs.test.crt", "keys/fixture.cvmfs.test.pub"]


def test_committed_fixture_cannot_sign(pristine_repo):
    with pytest.raises(RuntimeError, match="test keys are made at test time"):
        pristine_repo.sign_manifest(pristine_repo.manifest_body(S="4"))
    with pytest.raises(RuntimeError, match="re-keyed copy"):
        pristine_repo.sign_whitelist(pristine_repo.whitelist_body())


def test_rekeyed_copy_changes_keys_and_signatures_only(cvmfs_repo, pristine_repo):
    before, after = files_under(pristine_repo.root), files_under(cvmfs_repo.root)
    assert after["keys/fixture.cvmfs.test.pub"] != before["keys/fixture.cvmfs.test.pub"]
    assert after["keys/fixture.cvmfs.test.crt"] != before["keys/fixture.cvmfs.test.crt"]
    assert not [p for p in after if p.endswith((".key", ".masterkey"))], "private keys stay in memory"
    before = dict((p, data) for p, data in before.items() if not p.endswith((".key", ".masterkey")))  # an override's
    assert set(before) <= set(after)
    changed = sorted(p for p in before if after[p] != before[p])
    assert changed == sorted(["keys/fixture.cvmfs.test.crt", "keys/fixture.cvmfs.test.pub"] + [
        os.path.join(which, storage, name) for which, storage in (
            ("stratum0", os.path.basename(pristine_repo.stratum0)), ("stratum1", os.path.basename(pristine_repo.stratum1)))
        for name in SIGNED])
    added = sorted(set(after) - set(before))
    assert len(added) == 2 and all(p.endswith("X") for p in added), added  # the certificate, in both storages


@pytest.mark.parametrize("which", ["stratum0", "stratum1"])
def test_rekeyed_manifest_points_at_the_new_certificate_and_verifies(cvmfs_repo, pristine_repo, which):
    lines, hash_line, signature = split(cvmfs_repo.read(getattr(cvmfs_repo, which), ".cvmfspublished"))
    old_lines, _old_hash, old_signature = split(pristine_repo.read(getattr(pristine_repo, which), ".cvmfspublished"))
    assert [line for line in lines if not line.startswith("X")] == [line for line in old_lines if not line.startswith("X")]
    x_hash = [line[1:] for line in lines if line.startswith("X")][0]
    stored = cvmfs_repo.read(getattr(cvmfs_repo, which), "data", x_hash[:2], x_hash[2:] + "X")
    assert hashlib.sha1(stored).hexdigest() == x_hash
    with open(cvmfs_repo.crt, "rb") as handle:
        assert zlib.decompress(stored) == handle.read()
    certificate = x509.load_pem_x509_certificate(zlib.decompress(stored))
    certificate.public_key().verify(signature, hash_line, padding.PKCS1v15(), hashes.SHA1())
    assert signature != old_signature


@pytest.mark.parametrize("which", ["stratum0", "stratum1"])
def test_rekeyed_whitelist_lists_the_new_certificate_signed_by_the_new_master_key(cvmfs_repo, pristine_repo, which):
    lines, hash_line, signature = split(cvmfs_repo.read(getattr(cvmfs_repo, which), ".cvmfswhitelist"))
    old_lines, old_hash, old_signature = split(pristine_repo.read(getattr(pristine_repo, which), ".cvmfswhitelist"))
    assert lines[:3] == old_lines[:3]  # created, expiry, name: the same dates
    digest = hashlib.sha1(certificate_der(cvmfs_repo.crt)).hexdigest().upper()
    assert lines[3] == ":".join(digest[i:i + 2] for i in range(0, 40, 2)) != old_lines[3]
    assert raw_rsa_payload(master_public_key(cvmfs_repo.pub), signature) == hash_line
    assert raw_rsa_payload(master_public_key(pristine_repo.pub), signature) is None  # not the committed master key
    assert raw_rsa_payload(master_public_key(pristine_repo.pub), old_signature) == old_hash  # which signed the original


def test_fixture_override(monkeypatch, tmp_path, pristine_repo):
    monkeypatch.setenv(support.ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="fix or unset %s" % support.ENV):
        support.find_fixture()
    monkeypatch.setenv(support.ENV, pristine_repo.root)
    assert support.find_fixture() == pristine_repo.root
    monkeypatch.delenv(support.ENV)
    assert support.find_fixture() == support.COMMITTED
