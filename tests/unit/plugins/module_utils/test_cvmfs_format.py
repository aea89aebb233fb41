"""_cvmfs_format on the bytes of a real CernVM-FS 2.12 repository and on tampered copies of it.

Tests of what real CernVM-FS wrote and signed read the committed fixture untouched (``pristine_repo``,
checked with its own ``.pub``); tests that sign variants use a copy re-keyed at test time
(``cvmfs_repo``: fresh master and repository keys, see tests/support/cvmfs_repo.py). Expected values
come from the fixture's own files, never from the code under test. "now" is always passed
explicitly: the fixture's whitelist has a fixed expiry.
"""

import datetime
import hashlib
import http.server
import json
import os
import socket
import threading
import zlib

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _cvmfs_format as fmt
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from tests.support.cvmfs_repo import (  # pylint: disable=unused-import
    cvmfs_repo,  # noqa: F401  (the pytest fixture: re-keyed copy)
    flip_byte,
    new_signing_identity,
    pristine_repo,  # noqa: F401  (the pytest fixture: the committed fixture, untouched)
    public_pem,
    store_object,
    write,
)


UTC = datetime.timezone.utc


def fails(reason, match=None):
    """Context manager: the block raises CvmfsError with this ``reason`` (and message regex)."""
    class _Check:
        def __enter__(self):
            self.raises = pytest.raises(CvmfsError, match=match)
            self.info = self.raises.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self.raises.__exit__(*exc)
            assert self.info.value.extra.get("reason") == reason, self.info.value.message
            return handled

    return _Check()


class DirectoryFetcher:
    """Reads "URLs" from the local file system: ``<dir>/<name>`` (no HTTP; that is tested with apache)."""

    def __init__(self):
        self.requests = []

    def get(self, url, max_bytes=fmt.MAX_SMALL_FILE, missing_ok=False):
        self.requests.append(url)
        if not os.path.isfile(url):
            if missing_ok:
                return None
            raise CvmfsError("GET %s failed: HTTP 404" % url, reason="http_error")
        with open(url, "rb") as handle:
            return handle.read()


@pytest.fixture(scope="module")
def master_keys(cvmfs_repo):
    """The re-keyed copy's master public key."""
    return fmt.load_public_keys([("fixture pub", cvmfs_repo.public_key_text())])


@pytest.fixture(scope="module")
def pristine_keys(pristine_repo):
    """The committed fixture's master public key, as real CernVM-FS made it."""
    return fmt.load_public_keys([("fixture pub", pristine_repo.public_key_text())])


@pytest.fixture(scope="module")
def intruder():
    """A foreign RSA key and certificate: not the repository's."""
    return new_signing_identity()


# --------------------------------------------------------------------------- hashes

@pytest.mark.parametrize("data", [b"", b"abc", b"a" * 1000, bytes(range(256)) * 3])
def test_digests_match_hashlib(data):
    assert fmt.hash_string(data, "sha1") == hashlib.sha1(data).hexdigest()
    assert fmt.hash_string(data, "shake128") == hashlib.shake_128(data).hexdigest(20) + "-shake128"
    assert fmt._ripemd160(data) == hashlib.new("ripemd160", data).hexdigest()


def test_ripemd160_fallback_reference_vectors():
    # RIPEMD-160 test vectors from the algorithm's authors
    assert fmt._ripemd160(b"") == "9c1185a5c5e9fc54612808977ee8f548b2258d31"
    assert fmt._ripemd160(b"abc") == "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc"
    assert fmt._ripemd160(b"1234567890" * 8) == "9b752e45573d4b39f4dbd3323cab82bf63326bfb"


@pytest.mark.parametrize("text,algorithm", [
    ("62c4f22a1e8b1bf0032a8c41f4cbf82eb03be57b", "sha1"),
    ("62C4F22A1E8B1BF0032A8C41F4CBF82EB03BE57B-rmd160", "rmd160"),
    ("62c4f22a1e8b1bf0032a8c41f4cbf82eb03be57b-shake128", "shake128"),
])
def test_hash_algorithm_from_suffix(text, algorithm):
    assert fmt.hash_algorithm(text) == algorithm


@pytest.mark.parametrize("text,reason", [
    ("62c4f22a", "malformed"),
    ("zz" * 20, "malformed"),
    ("62c4f22a1e8b1bf0032a8c41f4cbf82eb03be57b-sha3", "unsupported"),
])
def test_hash_algorithm_rejects(text, reason):
    with fails(reason):
        fmt.hash_algorithm(text)


def test_object_path_of_fixture_objects(pristine_repo):
    catalog = pristine_repo.manifest_lines["C"]
    path = fmt.object_path(catalog, "C")
    assert path == "data/%s/%sC" % (catalog[:2], catalog[2:])
    assert os.path.isfile(os.path.join(pristine_repo.stratum0, path))
    assert fmt.object_path(catalog + "-shake128", "X").endswith(catalog[2:] + "-shake128X")


# --------------------------------------------------------------------------- manifest

def test_parse_manifest_of_fixture(pristine_repo):
    raw = pristine_repo.manifest_lines
    manifest = fmt.parse_manifest(pristine_repo.read(pristine_repo.stratum0, ".cvmfspublished"))
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
    s0 = fmt.parse_manifest(pristine_repo.read(pristine_repo.stratum0, ".cvmfspublished"))
    s1 = fmt.parse_manifest(pristine_repo.read(pristine_repo.stratum1, ".cvmfspublished"))
    assert (s1.revision, s1.root_catalog, s1.name) == (s0.revision, s0.root_catalog, s0.name)


def test_manifest_required_lines(cvmfs_repo):
    data = cvmfs_repo.sign_manifest(cvmfs_repo.manifest_body(S=None, D=None))
    with fails("malformed", "required line.*D, S"):
        fmt.parse_manifest(data)


def test_manifest_bad_integer(cvmfs_repo):
    with fails("malformed", r"line S \(revision\) is 'three'"):
        fmt.parse_manifest(cvmfs_repo.sign_manifest(cvmfs_repo.manifest_body(S="three")))


def test_manifest_keeps_channel_tips_and_unknown_lines(cvmfs_repo):
    manifest = fmt.parse_manifest(cvmfs_repo.sign_manifest(cvmfs_repo.manifest_body(Z="tip1", Q="future")))
    assert manifest.channel_tips == ["tip1"]
    assert manifest.fields["Q"] == "future"


# --------------------------------------------------------------------------- certificate

def test_certificate_object_is_zlib_compressed_and_is_the_repository_certificate(pristine_repo):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    x_hash = pristine_repo.manifest_lines["X"]
    stored = pristine_repo.read(pristine_repo.stratum0, fmt.object_path(x_hash, "X"))
    assert zlib.decompress(stored).startswith(b"-----BEGIN CERTIFICATE-----")  # compressed, as facts say
    certificate = fmt.load_certificate_object(stored, x_hash)
    with open(pristine_repo.crt, "rb") as handle:
        on_disk = x509.load_pem_x509_certificate(handle.read())
    der = on_disk.public_bytes(serialization.Encoding.DER)
    assert certificate.public_bytes(serialization.Encoding.DER) == der
    assert fmt.certificate_fingerprint(certificate) == hashlib.sha1(der).hexdigest()


def test_certificate_object_uncompressed_pem_is_accepted(pristine_repo):
    x_hash = pristine_repo.manifest_lines["X"]
    pem = zlib.decompress(pristine_repo.read(pristine_repo.stratum0, fmt.object_path(x_hash, "X")))
    certificate = fmt.load_certificate_object(pem, hashlib.sha1(pem).hexdigest())
    assert "CernVM-FS Release Managers" in certificate.subject.rfc4514_string()


def test_certificate_object_corrupt(cvmfs_repo):
    x_hash = cvmfs_repo.manifest_lines["X"]
    stored = cvmfs_repo.read(cvmfs_repo.stratum0, fmt.object_path(x_hash, "X"))
    with fails("hash_mismatch", "is corrupt: its content hashes to"):
        fmt.load_certificate_object(flip_byte(stored, 40), x_hash)
    garbage = b"\x00garbage" * 10
    with fails("malformed", "neither a PEM certificate nor zlib"):
        fmt.load_certificate_object(garbage, hashlib.sha1(garbage).hexdigest())


# --------------------------------------------------------------------------- signatures

def _verified_manifest(cvmfs_repo, data):
    manifest = fmt.parse_manifest(data)
    x_hash = cvmfs_repo.manifest_lines["X"]
    certificate = fmt.load_certificate_object(cvmfs_repo.read(cvmfs_repo.stratum0, fmt.object_path(x_hash, "X")),
                                              x_hash)
    fmt.verify_manifest(manifest, certificate)
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
        fmt.parse_manifest(garbage)


# --------------------------------------------------------------------------- whitelist

def test_parse_whitelist_of_fixture(pristine_repo):
    whitelist = fmt.parse_whitelist(pristine_repo.read(pristine_repo.stratum0, ".cvmfswhitelist"))
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
    whitelist = fmt.parse_whitelist(pristine_repo.read(pristine_repo.stratum0, ".cvmfswhitelist"))
    assert hashlib.sha1(der).hexdigest() in whitelist.fingerprints


def test_whitelist_signature_verifies_with_master_key(pristine_repo, pristine_keys, intruder):
    whitelist = fmt.parse_whitelist(pristine_repo.read(pristine_repo.stratum0, ".cvmfswhitelist"))
    assert fmt.verify_whitelist(whitelist, pristine_keys) == 0
    other = fmt.load_public_keys([("intruder", public_pem(intruder[0]))])
    assert fmt.verify_whitelist(whitelist, other + pristine_keys) == 1  # any configured key may match


def test_whitelist_with_wrong_key(cvmfs_repo, intruder):
    whitelist = fmt.parse_whitelist(cvmfs_repo.read(cvmfs_repo.stratum0, ".cvmfswhitelist"))
    wrong = fmt.load_public_keys([("intruder", public_pem(intruder[0]))])
    with fails("bad_signature", "does not verify with the given public key.*master public key"):
        fmt.verify_whitelist(whitelist, wrong)


def test_whitelist_signed_by_foreign_master_key(cvmfs_repo, master_keys, intruder):
    data = cvmfs_repo.sign_whitelist(cvmfs_repo.whitelist_body(), key=intruder[0])
    with fails("bad_signature"):
        fmt.verify_whitelist(fmt.parse_whitelist(data), master_keys)


def test_whitelist_truncated_signature(cvmfs_repo, master_keys):
    data = cvmfs_repo.read(cvmfs_repo.stratum0, ".cvmfswhitelist")
    with fails("bad_signature", "is 200 bytes long, which fits none of the given master public keys \\(2048 bits\\)"):
        fmt.verify_whitelist(fmt.parse_whitelist(data[:-56]), master_keys)
    with fails("bad_signature", "does not verify"):
        fmt.verify_whitelist(fmt.parse_whitelist(flip_byte(data, len(data) - 1)), master_keys)


def test_whitelist_flipped_byte_in_text(cvmfs_repo, master_keys):
    data = cvmfs_repo.read(cvmfs_repo.stratum0, ".cvmfswhitelist")
    tampered = flip_byte(data, data.index(b"\nE") + 5)  # move the expiry
    with fails("hash_mismatch"):
        fmt.verify_whitelist(fmt.parse_whitelist(tampered), master_keys)


def test_whitelist_expiry_at_hour_precision(cvmfs_repo):
    whitelist = fmt.parse_whitelist(cvmfs_repo.read(cvmfs_repo.stratum0, ".cvmfswhitelist"))
    expires = cvmfs_repo.whitelist_expires
    hour = expires.replace(minute=0, second=0)
    fmt.check_whitelist_expiry(whitelist, hour - datetime.timedelta(seconds=1))
    with fails("whitelist_expired", "expired at %s" % expires.strftime("%Y-%m-%dT%H:%M:%SZ")):
        fmt.check_whitelist_expiry(whitelist, hour)
    info = whitelist.to_dict(cvmfs_repo.valid_time)
    assert info["seconds_left"] == int((hour - cvmfs_repo.valid_time).total_seconds())
    assert info["days_left"] == (hour - cvmfs_repo.valid_time).days
    assert info["expired"] is False


def test_expired_whitelist_resigned_with_masterkey(cvmfs_repo, master_keys):
    created = cvmfs_repo.whitelist_created - datetime.timedelta(days=60)
    data = cvmfs_repo.sign_whitelist(cvmfs_repo.whitelist_body(
        created=created, expires=created + datetime.timedelta(days=30)))
    whitelist = fmt.parse_whitelist(data)
    fmt.verify_whitelist(whitelist, master_keys)  # validly signed ...
    with fails("whitelist_expired", "cvmfs_server resign %s" % cvmfs_repo.name):  # ... but expired
        fmt.check_whitelist_expiry(whitelist, cvmfs_repo.valid_time)


def test_whitelist_fingerprint_notations(cvmfs_repo):
    fingerprint = cvmfs_repo.whitelist_lines[3]
    shake = "AB:" * 19 + "AB-SHAKE128"
    body = cvmfs_repo.whitelist_body(fingerprints=[fingerprint + "  # the release manager", shake, "junk"])
    whitelist = fmt.parse_whitelist(cvmfs_repo.sign_whitelist(body))
    assert whitelist.fingerprints == [fingerprint.replace(":", "").lower(), "ab" * 20 + "-shake128"]
    assert fmt.format_fingerprint(whitelist.fingerprints[1]) == shake


def test_certificate_listed_by_shake128_fingerprint(cvmfs_repo):
    x_hash = cvmfs_repo.manifest_lines["X"]
    certificate = fmt.load_certificate_object(
        cvmfs_repo.read(cvmfs_repo.stratum0, fmt.object_path(x_hash, "X")), x_hash)
    from cryptography.hazmat.primitives import serialization
    der = certificate.public_bytes(serialization.Encoding.DER)
    listed = fmt.format_fingerprint(hashlib.shake_128(der).hexdigest(20) + "-shake128")
    whitelist = fmt.parse_whitelist(cvmfs_repo.sign_whitelist(cvmfs_repo.whitelist_body(fingerprints=[listed])))
    assert fmt.check_certificate_listed(certificate, whitelist, "certificate").endswith("-shake128")


def test_certificate_not_in_whitelist(cvmfs_repo, intruder):
    certificate = fmt.load_certificate_object(intruder[1], hashlib.sha1(intruder[1]).hexdigest())
    whitelist = fmt.parse_whitelist(cvmfs_repo.read(cvmfs_repo.stratum0, ".cvmfswhitelist"))
    with fails("not_in_whitelist", "is not listed in the whitelist of %s" % cvmfs_repo.name):
        fmt.check_certificate_listed(certificate, whitelist, "certificate")


def test_pkcs7_whitelist_is_unsupported(cvmfs_repo, master_keys):
    whitelist = fmt.parse_whitelist(cvmfs_repo.sign_whitelist(cvmfs_repo.whitelist_body(extra=["Vpkcs7"])))
    assert whitelist.pkcs7
    with fails("unsupported", "PKCS#7"):
        fmt.verify_whitelist(whitelist, master_keys)


@pytest.mark.parametrize("body,message", [
    (b"2026112311194\nE20261223111940\nNx\n", "first \\(creation time\\) line"),
    (b"20261123111940\nX20261223111940\nNx\n", "second \\(expiry\\) line"),
    (b"20261123111940\nE20261323111940\nNx\n", "not a real date"),
    (b"20261123111940\nE20261223111940\n", "needs a creation time"),
    (b"20261123111940\nE20261223111940\nfixture\n", "expected N<repository name>"),
])
def test_malformed_whitelist(cvmfs_repo, body, message):
    with fails("malformed", message):
        fmt.parse_whitelist(cvmfs_repo.sign_whitelist(body))


# --------------------------------------------------------------------------- keys

def test_public_key_sources(cvmfs_repo, tmp_path, intruder):
    pem = cvmfs_repo.public_key_text()
    write(str(tmp_path / "a.pub"), pem.encode())
    write(str(tmp_path / "b.pub"), public_pem(intruder[0]).encode())
    write(str(tmp_path / "notes.txt"), b"ignored")
    sources = fmt.read_public_key_sources([str(tmp_path), cvmfs_repo.pub, pem])
    assert [label for label, _text in sources] == [
        str(tmp_path / "a.pub"), str(tmp_path / "b.pub"), cvmfs_repo.pub, "inline PEM text #4"]
    assert len(fmt.load_public_keys(sources)) == 4
    # several keys in one text (like a concatenated key file)
    assert len(fmt.load_public_keys([("both", pem + public_pem(intruder[0]))])) == 2


def test_private_key_is_refused_without_echoing_it(intruder):
    from cryptography.hazmat.primitives import serialization
    private = intruder[0].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
    with fails("bad_key", "is a private key") as info:
        fmt.load_public_keys([("given", private)])
    body = private.splitlines()[1]
    assert body not in info.value.message


@pytest.mark.parametrize("text,message", [
    ("not a key", "holds no PEM public key"),
    ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "cannot be read"),
])
def test_bad_public_keys(text, message):
    with fails("bad_key", message):
        fmt.load_public_keys([("given", text)])


def test_missing_key_file(tmp_path):
    with fails("bad_key", "cannot read public key file"):
        fmt.read_public_key_sources([str(tmp_path / "absent.pub")])
    with fails("bad_key", "contains no \\*.pub file"):
        fmt.read_public_key_sources([str(tmp_path)])


# --------------------------------------------------------------------------- stratum-1 files, catalog

def test_last_snapshot_of_fixture(pristine_repo):
    text = pristine_repo.read(pristine_repo.stratum1, ".cvmfs_last_snapshot")
    expected = datetime.datetime.strptime(text.decode().strip().replace("UTC ", ""),
                                          "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC)
    assert fmt.parse_snapshot_time(text) == expected
    status = fmt.parse_status_json(pristine_repo.read(pristine_repo.stratum1, ".cvmfs_status.json"))
    assert fmt.parse_snapshot_time(status["last_snapshot"]) == expected


@pytest.mark.parametrize("text,expected", [
    (b"Tue Nov  3 01:02:03 UTC 2026\n", datetime.datetime(2026, 11, 3, 1, 2, 3, tzinfo=UTC)),
    (b"2026-11-03T01:02:03Z", datetime.datetime(2026, 11, 3, 1, 2, 3, tzinfo=UTC)),
    (b"1795432805", datetime.datetime(2026, 11, 23, 11, 20, 5, tzinfo=UTC)),
    (b"", None),
])
def test_snapshot_time_formats(text, expected):
    assert fmt.parse_snapshot_time(text) == expected


@pytest.mark.parametrize("text", [b"yesterday", b"Mon Foo 23 11:20:05 UTC 2026", b"\xff\xfe"])
def test_snapshot_time_garbage(text):
    with fails("malformed"):
        fmt.parse_snapshot_time(text)


def test_status_json_garbage():
    with fails("malformed", "not JSON"):
        fmt.parse_status_json(b"{last_snapshot")
    with fails("malformed", "not an object"):
        fmt.parse_status_json(b"[1]")


def test_root_catalog_against_expected_tree(pristine_repo):
    c_hash = pristine_repo.manifest_lines["C"]
    catalog = fmt.read_catalog(pristine_repo.read(pristine_repo.stratum0, fmt.object_path(c_hash, "C")), c_hash)
    tree = pristine_repo.expected["tree"]
    nested = sum(1 for entry in tree if entry["path"].endswith("/.cvmfscatalog"))
    assert catalog["revision"] == pristine_repo.revision
    assert catalog["ttl"] == int(pristine_repo.manifest_lines["D"])
    assert catalog["nested_catalogs"] == nested
    stats = catalog["statistics"]
    assert stats["regular"] == sum(1 for entry in tree if entry["type"] == "file")
    assert stats["symlink"] == sum(1 for entry in tree if entry["type"] == "symlink")
    assert stats["file_size"] == sum(entry.get("size", 0) for entry in tree if entry["type"] == "file")
    # the root directory and each nested catalog root (counted in parent and child) come on top
    assert stats["dir"] == sum(1 for entry in tree if entry["type"] == "dir") + 1 + nested


def test_root_catalog_damaged(cvmfs_repo):
    c_hash = cvmfs_repo.manifest_lines["C"]
    data = cvmfs_repo.read(cvmfs_repo.stratum0, fmt.object_path(c_hash, "C"))
    with fails("hash_mismatch"):
        fmt.read_catalog(data[:-100], c_hash)
    cut = data[:-100]
    with fails("malformed", "truncated: its zlib stream does not end"):
        fmt.read_catalog(cut, hashlib.sha1(cut).hexdigest())
    not_sqlite = zlib.compress(b"not a database" * 100)
    with fails("malformed", "is not a CernVM-FS catalog"):
        fmt.read_catalog(not_sqlite, hashlib.sha1(not_sqlite).hexdigest())


# --------------------------------------------------------------------------- time

@pytest.mark.parametrize("value,expected", [
    (0, datetime.datetime(1970, 1, 1, tzinfo=UTC)),
    ("1795432781", datetime.datetime(2026, 11, 23, 11, 19, 41, tzinfo=UTC)),
    ("2026-12-24T08:00:00Z", datetime.datetime(2026, 12, 24, 8, tzinfo=UTC)),
    ("2026-12-24 09:00:00+01:00", datetime.datetime(2026, 12, 24, 8, tzinfo=UTC)),
    ("2026-12-24T08:00:00", datetime.datetime(2026, 12, 24, 8, tzinfo=UTC)),
    (datetime.datetime(2026, 12, 24, 8), datetime.datetime(2026, 12, 24, 8, tzinfo=UTC)),
])
def test_utc_datetime(value, expected):
    assert fmt.utc_datetime(value) == expected


def test_utc_datetime_rejects_text():
    with pytest.raises(ValueError, match="neither seconds since the epoch nor an ISO 8601"):
        fmt.utc_datetime("next tuesday")


# --------------------------------------------------------------------------- the whole check, on files

def test_inspect_stratum1_against_stratum0(pristine_repo, pristine_keys):
    fetcher = DirectoryFetcher()
    info = fmt.inspect_repository(pristine_repo.stratum1, fetcher, pristine_keys, pristine_repo.valid_time,
                                  stratum0_url=pristine_repo.stratum0, read_root_catalog=True)
    raw = pristine_repo.manifest_lines
    assert info["name"] == pristine_repo.name
    assert (info["revision"], info["root_catalog_hash"], info["ttl"]) == (
        pristine_repo.revision, raw["C"], int(raw["D"]))
    assert info["published_epoch"] == int(raw["T"])
    assert info["whitelist"]["expires"] == pristine_repo.whitelist_expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert info["certificate"]["fingerprint"] == pristine_repo.whitelist_lines[3]
    assert info["replicable"] is False
    snapshot = fmt.parse_snapshot_time(pristine_repo.read(pristine_repo.stratum1, ".cvmfs_last_snapshot"))
    assert info["stratum1"]["last_snapshot_epoch"] == int(snapshot.timestamp())
    assert info["stratum1"]["snapshot_age_seconds"] == int((pristine_repo.valid_time - snapshot).total_seconds())
    assert info["replication"]["in_sync"] is True
    assert info["replication"]["revisions_behind"] == 0
    assert info["catalog"]["revision"] == pristine_repo.revision
    json.dumps(info)  # plain data only


def test_inspect_stratum0(pristine_repo, pristine_keys):
    info = fmt.inspect_repository(pristine_repo.stratum0, DirectoryFetcher(), pristine_keys, pristine_repo.valid_time,
                                  name=pristine_repo.name)
    assert info["replicable"] is True
    assert info["stratum1"] is None and info["replication"] is None and info["catalog"] is None


def test_inspect_stratum1_behind(cvmfs_repo, master_keys, tmp_path):
    """A stratum-0 one revision ahead: manifest re-signed with S+1 and T+600."""
    stratum0 = cvmfs_repo.copy("stratum0", tmp_path / "s0")
    raw = cvmfs_repo.manifest_lines
    write(os.path.join(stratum0, ".cvmfspublished"), cvmfs_repo.sign_manifest(
        cvmfs_repo.manifest_body(S=str(int(raw["S"]) + 1), T=str(int(raw["T"]) + 600))))
    info = fmt.inspect_repository(cvmfs_repo.stratum1, DirectoryFetcher(), master_keys, cvmfs_repo.valid_time,
                                  stratum0_url=stratum0)
    assert info["replication"]["revisions_behind"] == 1
    assert info["replication"]["lag_seconds"] == 600
    assert info["replication"]["in_sync"] is False


def test_inspect_stratum1_while_snapshotting(cvmfs_repo, master_keys, tmp_path):
    storage = cvmfs_repo.copy("stratum1", tmp_path / "s1")
    write(os.path.join(storage, ".cvmfs_is_snapshotting"), b"")
    os.unlink(os.path.join(storage, ".cvmfs_status.json"))
    info = fmt.inspect_repository(storage, DirectoryFetcher(), master_keys, cvmfs_repo.valid_time)
    assert info["stratum1"]["snapshot_in_progress"] is True
    assert info["stratum1"]["status"] is None


def test_inspect_stratum1_with_empty_last_snapshot(cvmfs_repo, master_keys, tmp_path):
    storage = cvmfs_repo.copy("stratum1", tmp_path / "s1")
    write(os.path.join(storage, ".cvmfs_last_snapshot"), b"")
    with fails("malformed", "cvmfs_last_snapshot is empty"):
        fmt.inspect_repository(storage, DirectoryFetcher(), master_keys, cvmfs_repo.valid_time)


def test_inspect_wrong_repository_name(cvmfs_repo, master_keys):
    with fails("name_mismatch", "expected repository is other.example.org"):
        fmt.inspect_repository(cvmfs_repo.stratum0, DirectoryFetcher(), master_keys, cvmfs_repo.valid_time,
                               name="other.example.org")


def test_inspect_whitelist_for_another_repository(cvmfs_repo, master_keys, tmp_path):
    storage = cvmfs_repo.copy("stratum0", tmp_path / "s0")
    write(os.path.join(storage, ".cvmfswhitelist"),
          cvmfs_repo.sign_whitelist(cvmfs_repo.whitelist_body(name="other.example.org")))
    with fails("name_mismatch", "is for repository other.example.org"):
        fmt.inspect_repository(storage, DirectoryFetcher(), master_keys, cvmfs_repo.valid_time)


def test_inspect_certificate_not_in_whitelist(cvmfs_repo, master_keys, intruder, tmp_path):
    """Someone with another repository key signs a manifest and uploads their certificate."""
    storage = cvmfs_repo.copy("stratum0", tmp_path / "s0")
    key, pem = intruder
    x_hash = store_object(storage, pem, "X")
    write(os.path.join(storage, ".cvmfspublished"), cvmfs_repo.sign_manifest(
        cvmfs_repo.manifest_body(X=x_hash), key=key))
    with fails("not_in_whitelist", "re-sign the whitelist"):
        fmt.inspect_repository(storage, DirectoryFetcher(), master_keys, cvmfs_repo.valid_time)


def test_inspect_missing_certificate_line(cvmfs_repo, master_keys, tmp_path):
    storage = cvmfs_repo.copy("stratum0", tmp_path / "s0")
    write(os.path.join(storage, ".cvmfspublished"), cvmfs_repo.sign_manifest(cvmfs_repo.manifest_body(X=None)))
    with fails("malformed", "has no X line"):
        fmt.inspect_repository(storage, DirectoryFetcher(), master_keys, cvmfs_repo.valid_time)


def test_inspect_expired(cvmfs_repo, master_keys):
    with fails("whitelist_expired") as info:
        fmt.inspect_repository(cvmfs_repo.stratum0, DirectoryFetcher(), master_keys,
                               cvmfs_repo.whitelist_expires + datetime.timedelta(days=1))
    assert info.value.extra["whitelist_expires"] == cvmfs_repo.whitelist_expires.strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- HTTP (stdlib server on loopback)

def closed_port():
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Handler(http.server.BaseHTTPRequestHandler):
    responses_by_path = {}
    seen = []

    def do_GET(self):  # noqa: N802 (http.server API)
        self.seen.append((self.path, self.headers.get("Cache-Control")))
        queue = self.responses_by_path.get(self.path, [(404, b"not found")])
        status, body = queue.pop(0) if len(queue) > 1 else queue[0]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    _Handler.responses_by_path = {}
    _Handler.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()


def test_fetcher_retries_transient_errors_and_asks_for_revalidation(http_server):
    _server, url = http_server
    _Handler.responses_by_path["/f"] = [(503, b"busy"), (200, b"ok")]
    fetcher = fmt.HttpFetcher(proxy="DIRECT", retries=2, sleep=lambda seconds: None)
    assert fetcher.get(url + "/f") == b"ok"
    assert _Handler.seen == [("/f", "max-age=0"), ("/f", "max-age=0")]


def test_fetcher_errors(http_server):
    _server, url = http_server
    _Handler.responses_by_path["/big"] = [(200, b"x" * 2000)]
    fetcher = fmt.HttpFetcher(proxy="DIRECT", retries=0)
    assert fetcher.get(url + "/absent", missing_ok=True) is None
    with fails("http_error", "GET %s/absent failed: HTTP 404" % url):
        fetcher.get(url + "/absent")
    with fails("malformed", "more than 1000 bytes"):
        fetcher.get(url + "/big", max_bytes=1000)


def test_proxy_credentials_stay_out_of_messages():
    port = closed_port()
    fetcher = fmt.HttpFetcher(proxy="http://user:s3cret@127.0.0.1:%d" % port, retries=0)
    with fails("http_error", r"through proxy http://\*\*\*@127\.0\.0\.1:%d failed" % port) as info:
        fetcher.get("http://127.0.0.1:1/x")
    assert "s3cret" not in info.value.message


def test_fetcher_treats_403_as_absent_only_for_optional_files(http_server):
    """A public-read S3 bucket answers 403 for keys that do not exist."""
    _server, url = http_server
    _Handler.responses_by_path["/.cvmfs_last_snapshot"] = [(403, b"AccessDenied")]
    fetcher = fmt.HttpFetcher(proxy="DIRECT", retries=0)
    assert fetcher.get(url + "/.cvmfs_last_snapshot", missing_ok=True) is None
    with fails("http_error", "HTTP 403"):
        fetcher.get(url + "/.cvmfs_last_snapshot")


@pytest.fixture
def https_server(tmp_path):
    """A stdlib HTTPS server on loopback with a self-signed certificate for 127.0.0.1."""
    import ipaddress
    import ssl
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .sign(key, hashes.SHA256()))
    cert_file, key_file = str(tmp_path / "server.crt"), str(tmp_path / "server.key")
    write(cert_file, certificate.public_bytes(serialization.Encoding.PEM))
    write(key_file, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    _Handler.responses_by_path = {"/f": [(200, b"secure")]}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "https://127.0.0.1:%d" % server.server_address[1], cert_file
    server.shutdown()
    server.server_close()


def test_fetcher_https_with_ca_file(https_server):
    url, ca_file = https_server
    assert fmt.HttpFetcher(proxy="DIRECT", ca_file=ca_file, retries=0).get(url + "/f") == b"secure"
    with fails("http_error", "CERTIFICATE_VERIFY_FAILED"):
        fmt.HttpFetcher(proxy="DIRECT", retries=0).get(url + "/f")
    assert fmt.HttpFetcher(proxy="DIRECT", validate_certs=False, retries=0).get(url + "/f") == b"secure"
