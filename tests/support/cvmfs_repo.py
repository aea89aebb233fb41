"""The real CernVM-FS repository fixture, and tampered copies of it made at test time.

The fixture (``cvmfs-repo``: stratum-0 and stratum-1 storage, keys, expected tree) was produced by
real CernVM-FS 2.12. It lives in the project's shared fixtures directory next to the checkout
(``<checkout>/../shared/fixtures/cvmfs-repo``, searched upwards from the checkout); the
environment variable ``SHAREDSW_CVMFS_REPO_FIXTURE`` points somewhere else. Tests that need it
skip with one clear message when it is absent.

Test modules import the module-scoped fixture :func:`cvmfs_repo` (or call
:func:`fixture_repo_or_skip`). Expected values are read here from the fixture's own files with plain text handling (not with the
code under test). Signing helpers use the fixture's test-only private keys; they never print,
return or log key material.
"""

import datetime
import hashlib
import json
import os
import shutil
import zlib

import pytest

ENV = "SHAREDSW_CVMFS_REPO_FIXTURE"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def find_fixture():
    """Directory of the cvmfs-repo fixture, or ``None``."""
    if os.environ.get(ENV):
        path = os.environ[ENV]
        return path if os.path.isfile(os.path.join(path, "expected-tree.json")) else None
    parent = REPO_ROOT
    for _level in range(4):
        parent = os.path.dirname(parent)
        path = os.path.join(parent, "shared", "fixtures", "cvmfs-repo")
        if os.path.isfile(os.path.join(path, "expected-tree.json")):
            return path
    return None


def _header_lines(path):
    """Lines before the ``--`` line of a signed cvmfs file, read as plain text."""
    with open(path, "rb") as handle:
        data = handle.read()
    return data.split(b"\n--\n", 1)[0].decode("utf-8").split("\n")


class FixtureRepo:
    """Paths of the fixture and the facts a test compares against, read from its files."""

    def __init__(self, root):
        self.root = root
        with open(os.path.join(root, "expected-tree.json")) as handle:
            self.expected = json.load(handle)
        self.name = self.expected["repository"]
        self.stratum0 = os.path.join(root, "stratum0", self.name)
        stratum1_parent = os.path.join(root, "stratum1")
        self.stratum1 = os.path.join(stratum1_parent, sorted(os.listdir(stratum1_parent))[0])
        self.keys = os.path.join(root, "keys")
        self.pub = os.path.join(self.keys, self.name + ".pub")
        self.crt = os.path.join(self.keys, self.name + ".crt")
        self._key = os.path.join(self.keys, self.name + ".key")
        self._masterkey = os.path.join(self.keys, self.name + ".masterkey")
        self.manifest_lines = dict((line[0], line[1:]) for line in _header_lines(
            os.path.join(self.stratum0, ".cvmfspublished")) if line)
        self.whitelist_lines = _header_lines(os.path.join(self.stratum0, ".cvmfswhitelist"))

    # facts ------------------------------------------------------------------------------
    @property
    def revision(self):
        return int(self.manifest_lines["S"])

    @property
    def whitelist_created(self):
        return datetime.datetime.strptime(self.whitelist_lines[0], "%Y%m%d%H%M%S").replace(
            tzinfo=datetime.timezone.utc)

    @property
    def whitelist_expires(self):
        return datetime.datetime.strptime(self.whitelist_lines[1][1:], "%Y%m%d%H%M%S").replace(
            tzinfo=datetime.timezone.utc)

    @property
    def valid_time(self):
        """A moment at which the fixture's whitelist is valid: one day after it was signed."""
        return self.whitelist_created + datetime.timedelta(days=1)

    def read(self, *parts):
        with open(os.path.join(*parts), "rb") as handle:
            return handle.read()

    def public_key_text(self):
        with open(self.pub) as handle:
            return handle.read()

    # tampering --------------------------------------------------------------------------
    def copy(self, which, destination):
        """Copy ``stratum0``/``stratum1`` storage to ``destination``; return ``destination``."""
        shutil.copytree(getattr(self, which), str(destination))
        for root, dirs, files in os.walk(str(destination)):
            os.chmod(root, 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)
        return str(destination)

    def _private_key(self, which):
        from cryptography.hazmat.primitives import serialization
        path = self._masterkey if which == "master" else self._key
        with open(path, "rb") as handle:
            return serialization.load_pem_private_key(handle.read(), password=None)

    def sign_manifest(self, body, key=None, algorithm="sha1"):
        """``.cvmfspublished`` bytes: ``body`` signed like cvmfs does (repository key by default)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        hash_line = hash_string(body, algorithm).encode("ascii")
        signer = key if key is not None else self._private_key("repository")
        return body + b"--\n" + hash_line + b"\n" + signer.sign(hash_line, padding.PKCS1v15(), hashes.SHA1())

    def sign_whitelist(self, body, key=None, algorithm="sha1"):
        """``.cvmfswhitelist`` bytes: raw RSA PKCS#1 v1.5 signature of the hash line (masterkey by default)."""
        hash_line = hash_string(body, algorithm).encode("ascii")
        signer = key if key is not None else self._private_key("master")
        return body + b"--\n" + hash_line + b"\n" + raw_rsa_sign(signer, hash_line)

    def manifest_body(self, **changes):
        """The fixture's manifest text with some letters replaced (``S="4"``) or removed (``None``)."""
        lines = []
        for letter, value in self.manifest_lines.items():
            value = changes.pop(letter, value)
            if value is not None:
                lines.append(letter + value)
        lines += [letter + value for letter, value in changes.items() if value is not None]
        return ("\n".join(lines) + "\n").encode("utf-8")

    def whitelist_body(self, created=None, expires=None, name=None, fingerprints=None, extra=()):
        created = created or self.whitelist_created
        expires = expires or self.whitelist_expires
        lines = [created.strftime("%Y%m%d%H%M%S"), "E" + expires.strftime("%Y%m%d%H%M%S"),
                 "N" + (name or self.name)] + list(extra)
        lines += fingerprints if fingerprints is not None else self.whitelist_lines[3:]
        return ("\n".join(lines) + "\n").encode("utf-8")


def hash_string(data, algorithm="sha1"):
    if algorithm == "sha1":
        return hashlib.sha1(data).hexdigest()
    if algorithm == "shake128":
        return hashlib.shake_128(data).hexdigest(20) + "-shake128"
    if algorithm == "rmd160":
        return hashlib.new("ripemd160", data).hexdigest() + "-rmd160"
    raise ValueError(algorithm)


def raw_rsa_sign(private_key, data):
    """``openssl pkeyutl -sign`` / ``RSA_private_encrypt(RSA_PKCS1_PADDING)``: no DigestInfo."""
    numbers = private_key.private_numbers()
    size = (numbers.public_numbers.n.bit_length() + 7) // 8
    block = b"\x00\x01" + b"\xff" * (size - len(data) - 3) + b"\x00" + data
    signed = pow(int.from_bytes(block, "big"), numbers.d, numbers.public_numbers.n)
    return signed.to_bytes(size, "big")


def new_signing_identity(common_name="intruder CernVM-FS Release Managers"):
    """A fresh RSA key and self-signed certificate (PEM), like ``cvmfs_server`` makes them."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=365))
                   .sign(key, hashes.SHA256()))
    return key, certificate.public_bytes(serialization.Encoding.PEM)


def public_pem(private_key):
    from cryptography.hazmat.primitives import serialization
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def store_object(storage, data, suffix, algorithm="sha1", compress=True):
    """Store ``data`` (zlib-compressed by default) as a content-addressed object; return its hash."""
    stored = zlib.compress(data) if compress else data
    hash_str = hash_string(stored, algorithm)
    directory = os.path.join(storage, "data", hash_str[:2])
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, hash_str[2:] + suffix), "wb") as handle:
        handle.write(stored)
    return hash_str


def write(path, data):
    with open(path, "wb") as handle:
        handle.write(data)


def flip_byte(data, offset):
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1:]


def fixture_repo_or_skip():
    """The :class:`FixtureRepo`, or skip the calling test with one clear message."""
    root = find_fixture()
    if root is None:
        pytest.skip("real CernVM-FS repository fixture not found: expected ../shared/fixtures/cvmfs-repo "
                    "next to the checkout, or set %s to its directory" % ENV)
    return FixtureRepo(root)


@pytest.fixture(scope="module")
def cvmfs_repo():
    """The real CernVM-FS 2.12 repository fixture (skips when absent); import it into a test module."""
    return fixture_repo_or_skip()
