"""Unit tests of _images: signing and verification with keys made at test time, tampered and
unsigned lists, list validation, site approval, streaming verification of /cvmfs sources."""

import base64
import datetime
import hashlib
import os
import shutil
import subprocess

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _images as images
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError

ENDORSER = "images.example.org"
NOW = datetime.datetime(2026, 11, 23, tzinfo=datetime.timezone.utc)


def entry(name="client", version="2026.11", data=b"x" * 10, **extra):
    raw = {"name": name, "version": version, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
           "url": "https://images.example.org/%s-%s.qcow2" % (name, version)}
    raw.update(extra)
    return raw


ISSUED = "2026-11-20T12:00:00Z"
EXPIRES = "2026-12-31T00:00:00Z"


def image_list(*entries, **top):
    """A list issued before NOW, expiring after it; top=None drops a key."""
    raw = {"format": 1, "endorser": ENDORSER, "issued": ISSUED, "expires": EXPIRES,
           "images": list(entries) or [entry()]}
    raw.update(top)
    raw = dict((k, v) for k, v in raw.items() if v is not None)
    return yaml.safe_dump(raw, sort_keys=False).encode()


@pytest.fixture(scope="module")
def keys():
    return images.generate_key()


# --------------------------------------------------------------------------- signatures

def test_a_signed_list_verifies_and_parses(keys):
    private_pem, public_pem = keys
    data = image_list(entry(), entry("stratum1", "1.0", path="/cvmfs/images.example.org/s1.qcow2", url=None))
    signature = images.sign(data, private_pem)
    assert signature.endswith(b"\n") and len(base64.b64decode(signature)) == 64
    images.verify(data, signature, public_pem)
    parsed = images.parse_image_list(data, ENDORSER, now=NOW)
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
    signature = images.sign(data, private_pem)
    with pytest.raises(CvmfsError, match="signature of the image list does not match.*refusing it"):
        images.verify(tamper(data), signature, public_pem)


def test_a_list_signed_by_another_key_is_refused(keys):
    other_private, _other_public = images.generate_key()
    data = image_list()
    with pytest.raises(CvmfsError, match="does not match"):
        images.verify(data, images.sign(data, other_private), keys[1])


@pytest.mark.parametrize("signature, message", [
    (b"", "not signed"),
    (b"\n", "not signed"),
    (b"not base64 at all!", "neither base64"),
    (base64.b64encode(b"short") + b"\n", "neither base64"),
])
def test_unsigned_or_garbage_signatures_are_refused(keys, signature, message):
    with pytest.raises(CvmfsError, match=message):
        images.verify(image_list(), signature, keys[1])


def test_a_raw_64_byte_signature_is_accepted(keys):
    data = image_list()
    raw = base64.b64decode(images.sign(data, keys[0]))
    images.verify(data, raw, keys[1])


def test_an_rsa_key_is_refused_with_the_scheme_named():
    rsa_public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(CvmfsError, match="RSAPublicKey.*Ed25519"):
        images.verify(image_list(), b"x" * 64, rsa_public)
    with pytest.raises(CvmfsError, match="not a PEM public key"):
        images.verify(image_list(), b"x" * 64, b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


def test_an_encrypted_private_key_needs_its_passphrase():
    private_pem, public_pem = images.generate_key(password=b"correct horse")
    data = image_list()
    with pytest.raises(CvmfsError, match="encrypted: give its passphrase"):
        images.sign(data, private_pem)
    with pytest.raises(CvmfsError, match="wrong passphrase"):
        images.sign(data, private_pem, password=b"wrong")
    images.verify(data, images.sign(data, private_pem, password=b"correct horse"), public_pem)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is not installed")
def test_openssl_signatures_are_the_same_scheme(keys, tmp_path):
    """An endorser without this collection signs with openssl (3.0+) and the site accepts it."""
    private_pem, public_pem = keys
    (tmp_path / "key.pem").write_bytes(private_pem)
    (tmp_path / "images.yml").write_bytes(image_list())
    raw = subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", str(tmp_path / "key.pem"),
                          "-in", str(tmp_path / "images.yml")], capture_output=True, check=True).stdout
    images.verify(image_list(), base64.b64encode(raw) + b"\n", public_pem)
    assert base64.b64encode(raw) + b"\n" == images.sign(image_list(), private_pem)  # Ed25519 is deterministic


def test_load_verified_list_refuses_a_missing_signature_file(keys, tmp_path):
    (tmp_path / "images.yml").write_bytes(image_list())
    (tmp_path / "e.pub").write_bytes(keys[1])
    with pytest.raises(CvmfsError, match="is not signed.*images.yml.sig does not exist"):
        images.load_verified_list(str(tmp_path / "images.yml"), str(tmp_path / "images.yml.sig"),
                                  str(tmp_path / "e.pub"), ENDORSER)


def test_verification_comes_before_parsing(keys, tmp_path):
    """A list that is not even YAML is refused for its signature, not parsed."""
    (tmp_path / "images.yml").write_bytes(b"{{{ not yaml")
    (tmp_path / "images.yml.sig").write_bytes(images.sign(b"something else", keys[0]))
    (tmp_path / "e.pub").write_bytes(keys[1])
    with pytest.raises(CvmfsError, match="signature of the image list does not match"):
        images.load_verified_list(str(tmp_path / "images.yml"), str(tmp_path / "images.yml.sig"),
                                  str(tmp_path / "e.pub"), ENDORSER)


def test_fingerprint_is_stable(keys):
    key = serialization.load_pem_public_key(keys[1])
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert images.public_key_fingerprint(keys[1]) == hashlib.sha256(raw).hexdigest()


# --------------------------------------------------------------------------- list contents

@pytest.mark.parametrize("data, message", [
    (image_list(endorser="someone.else"), "signed with the key of endorser images.example.org but says.*someone.else"),
    (image_list(expires="2026-01-01T00:00:00Z"), "expired at 2026-01-01T00:00:00\\+00:00; ask the endorser"),
    (image_list(expires="next tuesday"), "not a date and time"),
    (image_list(format=2), "format 2; this collection reads format 1"),
    (image_list(signer="x"), "unknown key.*signer"),
    (b"- just\n- a list\n", "must be a mapping"),
    (b"format: [", "not valid YAML"),
    (image_list(images={"a": 1}), "images must be a list"),
    (image_list(entry(version=2026.1)), "version must be a string; quote it"),
    (image_list(entry(name="bad name")), "name 'bad name' must be"),
    (image_list(entry(size=0)), "size must be the number of bytes"),
    (image_list(entry(size=True)), "size must be the number of bytes"),
    (image_list(entry(sha256="abc")), "sha256 must be 64 hexadecimal"),
    (image_list(entry(path="/cvmfs/repo/x")), "exactly one source"),
    (image_list(entry(url=None)), "exactly one source"),
    (image_list(entry(url="ftp://host/x")), "must be an http:// or https:// URL"),
    (image_list(entry(url=None, path="/srv/x.qcow2")), "must be a file under /cvmfs/"),
    (image_list(entry(url=None, path="/cvmfs/repo/../../etc/shadow")), "no '.', '..'"),
    (image_list(entry(disk_format="exe")), "disk_format 'exe' is not one of"),
    (image_list(entry(container_format="zip")), "container_format 'zip' is not one of"),
    (image_list(entry(properties={"visibility": "public"})), "property visibility is set by Glance"),
    (image_list(entry(properties={"endorser": "me"})), "property endorser is set by Glance or by this collection"),
    (image_list(entry(properties={"os_version": 12})), "property os_version must be a string"),
    (image_list(entry(checksum="x")), "unknown key.*checksum"),
    (image_list(entry(), entry()), "image client version 2026.11 appears twice"),
])
def test_bad_lists_are_refused_with_the_reason(data, message):
    with pytest.raises(CvmfsError, match=message):
        images.parse_image_list(data, ENDORSER, now=NOW)


@pytest.mark.parametrize("top, max_age, message", [
    ({"expires": None}, None, "has no expires: it would stay valid forever; ask the endorser to sign lists with an "
                              "expiry, or set max_age"),
    ({"issued": None}, None, "has no issued"),
    ({"issued": None, "expires": None}, None, "has no issued"),
    ({"issued": "2026-11-23T00:06:00Z"}, None, "issued at 2026-11-23T00:06:00\\+00:00, after now"),
    ({"issued": "soon"}, None, "issued: 'soon' is not a date and time"),
    # with a maximum age: issued 2026-11-20 12:00, 2 days are over at 2026-11-22 12:00, before NOW
    ({"expires": None}, datetime.timedelta(days=2), "issued at 2026-11-20T12:00:00\\+00:00 is older than max_age"),
    ({}, datetime.timedelta(days=2), "is older than max_age"),
])
def test_lists_without_a_limited_lifetime_are_refused(top, max_age, message):
    with pytest.raises(CvmfsError, match=message):
        images.parse_image_list(image_list(**top), ENDORSER, now=NOW, max_age=max_age)


def test_a_maximum_age_stands_in_for_a_missing_expiry():
    parsed = images.parse_image_list(image_list(expires=None), ENDORSER, now=NOW, max_age=datetime.timedelta(days=7))
    assert parsed.issued == datetime.datetime(2026, 11, 20, 12, tzinfo=datetime.timezone.utc)
    assert parsed.expires == datetime.datetime(2026, 11, 27, 12, tzinfo=datetime.timezone.utc)
    # both given: the earlier end counts
    parsed = images.parse_image_list(image_list(), ENDORSER, now=NOW, max_age=datetime.timedelta(days=7))
    assert parsed.expires == datetime.datetime(2026, 11, 27, 12, tzinfo=datetime.timezone.utc)
    parsed = images.parse_image_list(image_list(), ENDORSER, now=NOW, max_age=datetime.timedelta(days=90))
    assert parsed.expires == datetime.datetime(2026, 12, 31, tzinfo=datetime.timezone.utc)


def test_a_list_issued_a_moment_ahead_of_this_clock_is_accepted():
    """Clocks differ: up to five minutes ahead is taken as skew, not as a list from the future."""
    parsed = images.parse_image_list(image_list(issued="2026-11-23T00:04:59Z"), ENDORSER, now=NOW)
    assert parsed.issued.minute == 4


def test_expiry_in_the_future_and_date_forms():
    for value in ("2027-01-01T00:00:00Z", "2027-01-01", datetime.date(2027, 1, 1), "2027-01-01T01:00:00+01:00"):
        raw = yaml.safe_load(image_list())
        raw["expires"] = value
        parsed = images.parse_image_list(yaml.safe_dump(raw).encode(), ENDORSER, now=NOW)
        assert parsed.expires.year == 2027 or parsed.expires.isoformat().startswith("2027")


def test_an_empty_list_endorses_nothing():
    assert images.parse_image_list(image_list(images=[]), ENDORSER, now=NOW).images == []


def test_entry_defaults_and_properties():
    parsed = images.parse_image_list(image_list(entry(properties={"os_distro": "debian", "hw_disk_bus": "scsi"},
                                                      sha256="AB" * 32)), ENDORSER, now=NOW)
    item = parsed.images[0]
    assert (item.disk_format, item.container_format, item.sha256) == ("qcow2", "bare", "ab" * 32)
    assert item.properties == {"os_distro": "debian", "hw_disk_bus": "scsi"}


# --------------------------------------------------------------------------- site approval

def test_select_takes_the_intersection_and_reports_unmatched():
    parsed = images.parse_image_list(image_list(entry("client", "1"), entry("client", "2"), entry("s1", "1")),
                                     ENDORSER, now=NOW)
    wanted, unmatched = images.select(parsed, [{"name": "client"}, {"name": "s1", "version": "9"},
                                               {"name": "squid"}])
    assert [e.key for e in wanted] == [("client", "1"), ("client", "2")]
    assert unmatched == [{"name": "s1", "version": "9"}, {"name": "squid", "version": None}]
    wanted, unmatched = images.select(parsed, [{"name": "client", "version": "2"}, {"name": "client"}])
    assert unmatched == []
    assert [e.key for e in wanted] == [("client", "2"), ("client", "1")]
    with pytest.raises(CvmfsError, match="approved entry #1 needs a name"):
        images.select(parsed, [{"version": "1"}])
    with pytest.raises(CvmfsError, match="version must be a string"):
        images.select(parsed, [{"name": "client", "version": 2.0}])


def test_glance_name_template():
    item = images.ImageEntry("client", "2026.11", 1, "0" * 64, url="http://x/y")
    assert images.glance_name(item, "{name}-{version}") == "client-2026.11"
    with pytest.raises(CvmfsError, match="name_template.*use {name} and {version}"):
        images.glance_name(item, "{nam}")


# --------------------------------------------------------------------------- streaming verification

class RecordingReader:
    """A file-like source that records how much each read asked for."""

    def __init__(self, data):
        self.data = data
        self.offset = 0
        self.asked = []

    def read(self, size=-1):
        self.asked.append(size)
        chunk = self.data[self.offset:self.offset + size]
        self.offset += len(chunk)
        return chunk


def test_streaming_reads_in_bounded_chunks_and_stops_past_the_endorsed_size():
    data = os.urandom(3 * images.CHUNK + 5)
    item = images.ImageEntry("big", "1", len(data), hashlib.sha256(data).hexdigest(), url="http://x/big")
    reader = RecordingReader(data)
    size, digests = images._stream(iter(lambda: reader.read(images.CHUNK), b""), item)
    assert size == len(data) and digests["sha256"] == item.sha256 and digests["md5"] == hashlib.md5(data).hexdigest()
    assert max(reader.asked) == images.CHUNK

    endless = RecordingReader(b"y" * (50 * images.CHUNK))
    small = images.ImageEntry("small", "1", images.CHUNK + 1, "0" * 64, url="http://x/small")
    with pytest.raises(CvmfsError, match="larger than the endorsed %d bytes" % (images.CHUNK + 1)):
        images._stream(iter(lambda: endless.read(images.CHUNK), b""), small)
    assert endless.offset <= 2 * images.CHUNK, "it must stop reading once past the endorsed size"


@pytest.fixture
def cvmfs_root(tmp_path):
    root = tmp_path / "cvmfs"
    (root / "images.example.org").mkdir(parents=True)
    return root


def cvmfs_entry(root, data, stored=None, name="client"):
    (root / "images.example.org" / (name + ".qcow2")).write_bytes(data if stored is None else stored)
    return images.ImageEntry(name, "1", len(data), hashlib.sha256(data).hexdigest(),
                             path="/cvmfs/images.example.org/%s.qcow2" % name)


def test_cvmfs_source_is_used_in_place_after_verification(cvmfs_root):
    data = os.urandom(4096)
    item = cvmfs_entry(cvmfs_root, data)
    verified = images.fetch_verified(item, cvmfs_root=str(cvmfs_root))
    assert verified.path == str(cvmfs_root / "images.example.org" / "client.qcow2")
    assert not verified.temporary
    assert verified.digests["sha512"] == hashlib.sha512(data).hexdigest()
    verified.cleanup()
    assert os.path.exists(verified.path), "a /cvmfs source is never deleted"


@pytest.mark.parametrize("stored, message", [
    (b"z" * 4096, "has SHA-256 .* the endorsed one is .*not uploaded"),
    (b"z" * 4095, "has 4095 bytes, the endorsed size is 4096"),
    (b"z" * 4097, "larger than the endorsed 4096 bytes"),
])
def test_cvmfs_source_that_does_not_match_is_refused(cvmfs_root, stored, message):
    item = cvmfs_entry(cvmfs_root, b"a" * 4096, stored=stored)
    with pytest.raises(CvmfsError, match=message):
        images.fetch_verified(item, cvmfs_root=str(cvmfs_root))


def test_cvmfs_source_missing_or_outside(cvmfs_root, tmp_path):
    item = images.ImageEntry("client", "1", 1, "0" * 64, path="/cvmfs/other.example.org/x.qcow2")
    with pytest.raises(CvmfsError, match="is the repository other.example.org mounted"):
        images.fetch_verified(item, cvmfs_root=str(cvmfs_root))
    (tmp_path / "secret").write_bytes(b"s")
    os.symlink(str(tmp_path / "secret"), str(cvmfs_root / "images.example.org" / "link"))
    item = images.ImageEntry("client", "1", 1, "0" * 64, path="/cvmfs/images.example.org/link")
    with pytest.raises(CvmfsError, match="leads outside"):
        images.fetch_verified(item, cvmfs_root=str(cvmfs_root))


def test_describe_file_makes_a_valid_entry(tmp_path):
    data = os.urandom(3000)
    (tmp_path / "img").write_bytes(data)
    described = images.describe_file(str(tmp_path / "img"), "client", "2026.11", cvmfs_path="/cvmfs/r/img")
    assert described == {"name": "client", "version": "2026.11", "size": 3000,
                         "sha256": hashlib.sha256(data).hexdigest(), "disk_format": "qcow2",
                         "container_format": "bare", "path": "/cvmfs/r/img"}
