"""_cvmfs_signed on the bytes of a real CernVM-FS 2.12 repository and on tampered copies of it.

Tests of what real CernVM-FS wrote and signed read the committed fixture untouched (``pristine_repo``,
checked with its own ``.pub``); tests that sign variants use a copy re-keyed at test time
(``cvmfs_repo``: fresh master and repository keys, see tests/support/cvmfs_repo.py). Expected values
come from the fixture's own files, never from the code under test. "now" is always passed
explicitly: the fixture's whitelist has a fixed expiry.
"""

import datetime
import hashlib
import os
import zlib

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _cvmfs_hashes as hashes
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _cvmfs_signed as signed
from tests.support.cvmfs_repo import (  # pylint: disable=unused-import
    cvmfs_repo,  # noqa: F401  (the pytest fixture: re-keyed copy)
    flip_byte,
    pristine_repo,  # noqa: F401  (the pytest fixture: the committed fixture, untouched)
    public_pem,
    write,
)
from tests.unit.plugins.module_utils.cvmfs_support import (  # pylint: disable=unused-import
    UTC,
    fails,
    intruder,  # noqa: F401  (pytest fixture)
    master_keys,  # noqa: F401  (pytest fixture)
    pristine_keys,  # noqa: F401  (pytest fixture)
)


# --------------------------------------------------------------------------- manifest

def test_parse_manifest_of_fixture(pristine_repo):
    raw = pristine_repo.manifest_lines
    manifest = signed.parse_manifest(pristine_repo.read(pristine_repo.stratum0, ".cvmfspublished"))
    assert manifest.revision == int(raw["S"]) == pristine_repo.expected["revision"]
    assert manifest.name == raw["N"] == pristine_repo.expected["repository"]
    assert manifest.root_catalog == raw["C"]
    assert manifest.root_catalog_size == int(raw["B"])
    assert manifest.root_path_hash == raw["R"] == hashlib.md5(b"").hexdigest()
    assert manifest.ttl == int(raw["D"])
    assert manifest.timestamp == int(raw["T"])
    assert manifest.garbage_collectable is (raw["G"] == "yes")
    assert manifest.alternative_paths is (raw["A"] == "yes")
    assert (manifest.certificate, manifest.history, manifest.metainfo, manifest.reflog) == (
        raw["X"], raw["H"], raw["M"], raw["Y"])
    assert manifest.published == datetime.datetime.fromtimestamp(int(raw["T"]), UTC)
    assert len(manifest.letter.signature) == 256  # RSA-2048


def test_stratum1_serves_the_same_manifest(pristine_repo):
    s0 = signed.parse_manifest(pristine_repo.read(pristine_repo.stratum0, ".cvmfspublished"))
    s1 = signed.parse_manifest(pristine_repo.read(pristine_repo.stratum1, ".cvmfspublished"))
    assert (s1.revision, s1.root_catalog, s1.name) == (s0.revision, s0.root_catalog, s0.name)


def test_manifest_required_lines(cvmfs_repo):
    data = cvmfs_repo.sign_manifest(cvmfs_repo.manifest_body(S=None, D=None))
    with fails("malformed", "required line.*D, S"):
        signed.parse_manifest(data)


def test_manifest_bad_integer(cvmfs_repo):
    with fails("malformed", r"line S \(revision\) is 'three'"):
        signed.parse_manifest(cvmfs_repo.sign_manifest(cvmfs_repo.manifest_body(S="three")))


def test_manifest_keeps_channel_tips_and_unknown_lines(cvmfs_repo):
    manifest = signed.parse_manifest(cvmfs_repo.sign_manifest(cvmfs_repo.manifest_body(Z="tip1", Q="future")))
    assert manifest.channel_tips == ["tip1"]
    assert manifest.fields["Q"] == "future"


# --------------------------------------------------------------------------- certificate

def test_certificate_object_is_zlib_compressed_and_is_the_repository_certificate(pristine_repo):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    x_hash = pristine_repo.manifest_lines["X"]
    stored = pristine_repo.read(pristine_repo.stratum0, hashes.object_path(x_hash, "X"))
    assert zlib.decompress(stored).startswith(b"-----BEGIN CERTIFICATE-----")  # compressed, as facts say
    certificate = signed.load_certificate_object(stored, x_hash)
    with open(pristine_repo.crt, "rb") as handle:
        on_disk = x509.load_pem_x509_certificate(handle.read())
    der = on_disk.public_bytes(serialization.Encoding.DER)
    assert certificate.public_bytes(serialization.Encoding.DER) == der
    assert signed.certificate_fingerprint(certificate) == hashlib.sha1(der).hexdigest()


def test_certificate_object_uncompressed_pem_is_accepted(pristine_repo):
    x_hash = pristine_repo.manifest_lines["X"]
    pem = zlib.decompress(pristine_repo.read(pristine_repo.stratum0, hashes.object_path(x_hash, "X")))
    certificate = signed.load_certificate_object(pem, hashlib.sha1(pem).hexdigest())
    assert "CernVM-FS Release Managers" in certificate.subject.rfc4514_string()


def test_certificate_object_corrupt(cvmfs_repo):
    x_hash = cvmfs_repo.manifest_lines["X"]
    stored = cvmfs_repo.read(cvmfs_repo.stratum0, hashes.object_path(x_hash, "X"))
    with fails("hash_mismatch", "is corrupt: its content hashes to"):
        signed.load_certificate_object(flip_byte(stored, 40), x_hash)
    garbage = b"\x00garbage" * 10
    with fails("malformed", "neither a PEM certificate nor zlib"):
        signed.load_certificate_object(garbage, hashlib.sha1(garbage).hexdigest())


# --------------------------------------------------------------------------- signatures

def _verified_manifest(cvmfs_repo, data):
    manifest = signed.parse_manifest(data)
    x_hash = cvmfs_repo.manifest_lines["X"]
    certificate = signed.load_certificate_object(cvmfs_repo.read(cvmfs_repo.stratum0, hashes.object_path(x_hash, "X")),
                                                 x_hash)
    signed.verify_manifest(manifest, certificate)
    return manifest


def test_fixture_manifest_signature_verifies(pristine_repo):
    data = pristine_repo.read(pristine_repo.stratum0, ".cvmfspublished")
    assert _verified_manifest(pristine_repo, data).revision == pristine_repo.revision


def test_flipped_byte_in_manifest_text(cvmfs_repo):
    data = cvmfs_repo.read(cvmfs_repo.stratum0, ".cvmfspublished")
    offset = data.index(b"\nS") + 2  # inside the revision number
    with fails("hash_mismatch", "was modified or damaged: its text hashes to"):
        _verified_manifest(cvmfs_repo, flip_byte(data, offset))


def test_flipped_byte_in_manifest_signature(cvmfs_repo):
    data = cvmfs_repo.read(cvmfs_repo.stratum0, ".cvmfspublished")
    with fails("bad_signature", "does not verify with the repository certificate"):
        _verified_manifest(cvmfs_repo, flip_byte(data, len(data) - 10))


def test_manifest_signed_with_another_key(cvmfs_repo, intruder):
    key, _pem = intruder
    data = cvmfs_repo.sign_manifest(cvmfs_repo.manifest_body(), key=key)
    with fails("bad_signature"):
        _verified_manifest(cvmfs_repo, data)


def test_manifest_signed_with_shake128_hash_line(cvmfs_repo):
    data = cvmfs_repo.sign_manifest(cvmfs_repo.manifest_body(), algorithm="shake128")
    manifest = _verified_manifest(cvmfs_repo, data)
    assert manifest.letter.algorithm == "shake128"


@pytest.mark.parametrize("cut,reason,message", [
    (lambda d: d[:d.index(b"\n--\n")], "malformed", "no '--' line"),
    (lambda d: d[:d.index(b"\n--\n") + 10], "malformed", "truncated: it ends in the hash line"),
    (lambda d: d[:d.index(b"\n--\n") + 45], "malformed", "truncated: it has no signature"),
    (lambda d: d[:-1], "bad_signature", "is 255 bytes long.*truncated"),
    (lambda d: d[:-128], "bad_signature", "is 128 bytes long.*2048-bit key"),
    (lambda d: d + b"\n", "bad_signature", "is 257 bytes long.*bytes appended"),
    (lambda d: b"", "malformed", "is empty"),
])
def test_truncated_manifest(cvmfs_repo, cut, reason, message):
    data = cvmfs_repo.read(cvmfs_repo.stratum0, ".cvmfspublished")
    with fails(reason, message):
        _verified_manifest(cvmfs_repo, cut(data))


@pytest.mark.parametrize("garbage", [
    os.urandom(512),
    b"<html><body><h1>It works!</h1></body></html>\n",
    b"C\xff\xfe\n--\n" + b"0" * 40 + b"\nsig",
    b"hello\n--\nnot-a-hash\nsig",
])
def test_garbage_manifest(garbage):
    with fails("malformed"):
        signed.parse_manifest(garbage)


def test_unverified_revision_of_the_fixture_manifest(pristine_repo):
    """What the cvmfs_server modules read from storage without the keys at hand."""
    assert signed.manifest_revision(pristine_repo.read(pristine_repo.stratum0, ".cvmfspublished")) == pristine_repo.revision


@pytest.mark.parametrize("data", [b"", b"garbage\n", b"S42\n--\nff\n"])
def test_unverified_revision_of_garbage_is_none(data):
    assert signed.manifest_revision(data) is None


# --------------------------------------------------------------------------- whitelist

def test_parse_whitelist_of_fixture(pristine_repo):
    whitelist = signed.parse_whitelist(pristine_repo.read(pristine_repo.stratum0, ".cvmfswhitelist"))
    assert whitelist.created == pristine_repo.whitelist_created
    assert whitelist.expires == pristine_repo.whitelist_expires
    assert whitelist.name == pristine_repo.name
    assert whitelist.fingerprints == [line.replace(":", "").lower() for line in pristine_repo.whitelist_lines[3:]]
    assert not whitelist.pkcs7 and not whitelist.ca_chain


def test_whitelist_lists_the_fixture_certificate(pristine_repo):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    with open(pristine_repo.crt, "rb") as handle:
        der = x509.load_pem_x509_certificate(handle.read()).public_bytes(serialization.Encoding.DER)
    whitelist = signed.parse_whitelist(pristine_repo.read(pristine_repo.stratum0, ".cvmfswhitelist"))
    assert hashlib.sha1(der).hexdigest() in whitelist.fingerprints


def test_whitelist_signature_verifies_with_master_key(pristine_repo, pristine_keys, intruder):
    whitelist = signed.parse_whitelist(pristine_repo.read(pristine_repo.stratum0, ".cvmfswhitelist"))
    assert signed.verify_whitelist(whitelist, pristine_keys) == 0
    other = signed.load_public_keys([("intruder", public_pem(intruder[0]))])
    assert signed.verify_whitelist(whitelist, other + pristine_keys) == 1  # any configured key may match


def test_whitelist_with_wrong_key(cvmfs_repo, intruder):
    whitelist = signed.parse_whitelist(cvmfs_repo.read(cvmfs_repo.stratum0, ".cvmfswhitelist"))
    wrong = signed.load_public_keys([("intruder", public_pem(intruder[0]))])
    with fails("bad_signature", "does not verify with the given public key.*master public key"):
        signed.verify_whitelist(whitelist, wrong)


def test_whitelist_signed_by_foreign_master_key(cvmfs_repo, master_keys, intruder):
    data = cvmfs_repo.sign_whitelist(cvmfs_repo.whitelist_body(), key=intruder[0])
    with fails("bad_signature"):
        signed.verify_whitelist(signed.parse_whitelist(data), master_keys)


def test_whitelist_truncated_signature(cvmfs_repo, master_keys):
    data = cvmfs_repo.read(cvmfs_repo.stratum0, ".cvmfswhitelist")
    with fails("bad_signature", "is 200 bytes long, which fits none of the given master public keys \\(2048 bits\\)"):
        signed.verify_whitelist(signed.parse_whitelist(data[:-56]), master_keys)
    with fails("bad_signature", "does not verify"):
        signed.verify_whitelist(signed.parse_whitelist(flip_byte(data, len(data) - 1)), master_keys)


def test_whitelist_flipped_byte_in_text(cvmfs_repo, master_keys):
    data = cvmfs_repo.read(cvmfs_repo.stratum0, ".cvmfswhitelist")
    tampered = flip_byte(data, data.index(b"\nE") + 5)  # move the expiry
    with fails("hash_mismatch"):
        signed.verify_whitelist(signed.parse_whitelist(tampered), master_keys)


def test_whitelist_expiry_at_hour_precision(cvmfs_repo):
    whitelist = signed.parse_whitelist(cvmfs_repo.read(cvmfs_repo.stratum0, ".cvmfswhitelist"))
    expires = cvmfs_repo.whitelist_expires
    hour = expires.replace(minute=0, second=0)
    signed.check_whitelist_expiry(whitelist, hour - datetime.timedelta(seconds=1))
    with fails("whitelist_expired", "expired at %s" % expires.strftime("%Y-%m-%dT%H:%M:%SZ")):
        signed.check_whitelist_expiry(whitelist, hour)
    info = whitelist.to_dict(cvmfs_repo.valid_time)
    assert info["seconds_left"] == int((hour - cvmfs_repo.valid_time).total_seconds())
    assert info["days_left"] == (hour - cvmfs_repo.valid_time).days
    assert info["expired"] is False


def test_expired_whitelist_resigned_with_masterkey(cvmfs_repo, master_keys):
    created = cvmfs_repo.whitelist_created - datetime.timedelta(days=60)
    data = cvmfs_repo.sign_whitelist(cvmfs_repo.whitelist_body(
        created=created, expires=created + datetime.timedelta(days=30)))
    whitelist = signed.parse_whitelist(data)
    signed.verify_whitelist(whitelist, master_keys)  # validly signed ...
    with fails("whitelist_expired", "cvmfs_server resign %s" % cvmfs_repo.name):  # ... but expired
        signed.check_whitelist_expiry(whitelist, cvmfs_repo.valid_time)


def test_whitelist_fingerprint_notations(cvmfs_repo):
    fingerprint = cvmfs_repo.whitelist_lines[3]
    shake = "AB:" * 19 + "AB-SHAKE128"
    body = cvmfs_repo.whitelist_body(fingerprints=[fingerprint + "  # the release manager", shake, "junk"])
    whitelist = signed.parse_whitelist(cvmfs_repo.sign_whitelist(body))
    assert whitelist.fingerprints == [fingerprint.replace(":", "").lower(), "ab" * 20 + "-shake128"]
    assert signed.format_fingerprint(whitelist.fingerprints[1]) == shake


def test_certificate_listed_by_shake128_fingerprint(cvmfs_repo):
    x_hash = cvmfs_repo.manifest_lines["X"]
    certificate = signed.load_certificate_object(
        cvmfs_repo.read(cvmfs_repo.stratum0, hashes.object_path(x_hash, "X")), x_hash)
    from cryptography.hazmat.primitives import serialization
    der = certificate.public_bytes(serialization.Encoding.DER)
    listed = signed.format_fingerprint(hashlib.shake_128(der).hexdigest(20) + "-shake128")
    whitelist = signed.parse_whitelist(cvmfs_repo.sign_whitelist(cvmfs_repo.whitelist_body(fingerprints=[listed])))
    assert signed.check_certificate_listed(certificate, whitelist, "certificate").endswith("-shake128")


def test_certificate_not_in_whitelist(cvmfs_repo, intruder):
    certificate = signed.load_certificate_object(intruder[1], hashlib.sha1(intruder[1]).hexdigest())
    whitelist = signed.parse_whitelist(cvmfs_repo.read(cvmfs_repo.stratum0, ".cvmfswhitelist"))
    with fails("not_in_whitelist", "is not listed in the whitelist of %s" % cvmfs_repo.name):
        signed.check_certificate_listed(certificate, whitelist, "certificate")


def test_pkcs7_whitelist_is_unsupported(cvmfs_repo, master_keys):
    whitelist = signed.parse_whitelist(cvmfs_repo.sign_whitelist(cvmfs_repo.whitelist_body(extra=["Vpkcs7"])))
    assert whitelist.pkcs7
    with fails("unsupported", "PKCS#7"):
        signed.verify_whitelist(whitelist, master_keys)


@pytest.mark.parametrize("body,message", [
    (b"2026112311194\nE20261223111940\nNx\n", "first \\(creation time\\) line"),
    (b"20261123111940\nX20261223111940\nNx\n", "second \\(expiry\\) line"),
    (b"20261123111940\nE20261323111940\nNx\n", "not a real date"),
    (b"20261123111940\nE20261223111940\n", "needs a creation time"),
    (b"20261123111940\nE20261223111940\nfixture\n", "expected N<repository name>"),
])
def test_malformed_whitelist(cvmfs_repo, body, message):
    with fails("malformed", message):
        signed.parse_whitelist(cvmfs_repo.sign_whitelist(body))


def test_unverified_expiry_of_the_fixture_whitelist(pristine_repo):
    data = pristine_repo.read(pristine_repo.stratum0, ".cvmfswhitelist")
    assert signed.parse_whitelist_expiry(data) == pristine_repo.whitelist_expires


@pytest.mark.parametrize("data", [b"", b"garbage\n", b"20240101120000\nE2024\nNr.org\n--\nff\n\x00E"])
def test_unverified_expiry_of_garbage_is_none(data):
    assert signed.parse_whitelist_expiry(data) is None


# --------------------------------------------------------------------------- keys

def test_public_key_sources(cvmfs_repo, tmp_path, intruder):
    pem = cvmfs_repo.public_key_text()
    write(str(tmp_path / "a.pub"), pem.encode())
    write(str(tmp_path / "b.pub"), public_pem(intruder[0]).encode())
    write(str(tmp_path / "notes.txt"), b"ignored")
    sources = signed.read_public_key_sources([str(tmp_path), cvmfs_repo.pub, pem])
    assert [label for label, _text in sources] == [
        str(tmp_path / "a.pub"), str(tmp_path / "b.pub"), cvmfs_repo.pub, "inline PEM text #4"]
    assert len(signed.load_public_keys(sources)) == 4
    # several keys in one text (like a concatenated key file)
    assert len(signed.load_public_keys([("both", pem + public_pem(intruder[0]))])) == 2


def test_private_key_is_refused_without_echoing_it(intruder):
    from cryptography.hazmat.primitives import serialization
    private = intruder[0].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
    with fails("bad_key", "is a private key") as info:
        signed.load_public_keys([("given", private)])
    body = private.splitlines()[1]
    assert body not in info.value.message


@pytest.mark.parametrize("text,message", [
    ("not a key", "holds no PEM public key"),
    ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "cannot be read"),
])
def test_bad_public_keys(text, message):
    with fails("bad_key", message):
        signed.load_public_keys([("given", text)])


def test_missing_key_file(tmp_path):
    with fails("bad_key", "cannot read public key file"):
        signed.read_public_key_sources([str(tmp_path / "absent.pub")])
    with fails("bad_key", "contains no \\*.pub file"):
        signed.read_public_key_sources([str(tmp_path)])
