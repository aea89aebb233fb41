"""The real CernVM-FS repository fixture, and re-keyed or tampered copies of it made at test time.

The fixture (``tests/fixtures/cvmfs-repo``: stratum-0 and stratum-1 storage, the PUBLIC keys and the
expected tree) was produced by real CernVM-FS 2.12 with ``tools/fixtures/make-cvmfs-repo-fixture.sh``
and is committed; the environment variable ``SHAREDSW_CVMFS_REPO_FIXTURE`` points at another copy
of the same layout (any private keys in it are ignored).

Test keys are generated at test time, never committed, so the fixture has no private keys. Tests
that sign variants (tampered or validly signed manifests and whitelists) use a RE-KEYED working
copy (:func:`rekeyed_copy`, the pytest fixture :func:`cvmfs_repo`): a fresh master key and a fresh
repository key with a self-signed certificate, the certificate stored as an object, the manifest's
``X`` line and the whitelist's fingerprint replaced and both files signed again, in the stratum-0
and the stratum-1 storage. Everything else is the real repository, byte for byte. Tests of the
signatures real CernVM-FS made use the untouched fixture (:func:`pristine_repo`).

Expected values are read here from the fixture's own files with plain text handling (not with the
code under test); the signing is written here with ``cryptography``. Helpers never print, return
or log private key material.
"""

import datetime
import hashlib
import json
import os
import re
import shutil
import tempfile
import zlib

import pytest

ENV = "SHAREDSW_CVMFS_REPO_FIXTURE"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMMITTED = os.path.join(REPO_ROOT, "tests", "fixtures", "cvmfs-repo")
_FINGERPRINT = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2})+(-[A-Za-z0-9]+)?$")


def find_fixture():
    """Directory of the cvmfs-repo fixture: ``$SHAREDSW_CVMFS_REPO_FIXTURE``, else the committed one."""
    path = os.environ.get(ENV) or COMMITTED
    if not os.path.isfile(os.path.join(path, "expected-tree.json")):
        raise FileNotFoundError(
            "no CernVM-FS repository fixture at %s (expected-tree.json missing): %s" % (
                path, "fix or unset %s" % ENV if os.environ.get(ENV)
                else "restore it from git, or produce it with tools/fixtures/make-cvmfs-repo-fixture.sh"))
    return path


def _header_lines(path):
    """Lines before the ``--`` line of a signed cvmfs file, read as plain text."""
    with open(path, "rb") as handle:
        data = handle.read()
    return data.split(b"\n--\n", 1)[0].decode("utf-8").split("\n")


def _manifest_lines(storage):
    """``{letter: value}`` of the manifest in ``storage``, in file order."""
    return dict((line[0], line[1:]) for line in _header_lines(os.path.join(storage, ".cvmfspublished")) if line)


class FixtureRepo:
    """Paths of the fixture and the facts a test compares against, read from its files.

    ``private_keys`` (``{"master": key, "repository": key}``) are those of a re-keyed copy; the
    committed fixture has none, and signing with its keys fails with a message saying so.
    """

    def __init__(self, root, private_keys=None):
        self.root = root
        self._private_keys = dict(private_keys or {})
        with open(os.path.join(root, "expected-tree.json")) as handle:
            self.expected = json.load(handle)
        self.name = self.expected["repository"]
        self.stratum0 = os.path.join(root, "stratum0", self.name)
        stratum1_parent = os.path.join(root, "stratum1")
        self.stratum1 = os.path.join(stratum1_parent, sorted(os.listdir(stratum1_parent))[0])
        self.keys = os.path.join(root, "keys")
        self.pub = os.path.join(self.keys, self.name + ".pub")
        self.crt = os.path.join(self.keys, self.name + ".crt")
        self.manifest_lines = _manifest_lines(self.stratum0)
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
        make_readable(destination)
        return str(destination)

    def _private_key(self, which):
        if which not in self._private_keys:
            raise RuntimeError("the %s key of the fixture at %s is not known here: test keys are made at test "
                               "time; sign with a re-keyed copy (the cvmfs_repo fixture, rekeyed_copy())"
                               % (which, self.root))
        return self._private_keys[which]

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


def new_rsa_key():
    from cryptography.hazmat.primitives.asymmetric import rsa
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def new_signing_identity(common_name="intruder CernVM-FS Release Managers", start=None):
    """A fresh RSA key and self-signed certificate (PEM), like ``cvmfs_server`` makes them
    (valid for 365 days from ``start``, a fixed day by default: no test reads the clock)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID
    key = new_rsa_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = start or datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
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


def _fingerprint_line(old_line, der):
    """The whitelist line for certificate ``der``, in the notation of ``old_line`` (``AB:CD:..[-SUFFIX]``)."""
    _hex, _sep, suffix = old_line.partition("-")
    digest = hash_string(der, suffix.lower() or "sha1").partition("-")[0]
    pairs = ":".join(digest[i:i + 2] for i in range(0, len(digest), 2)).upper()
    return pairs + ("-" + suffix if suffix else "")


def _resign(path, transform, sign):
    """Rewrite the signed file ``path``: new text ``transform(lines)``, signed again with ``sign``
    (hash line in the file's own algorithm)."""
    with open(path, "rb") as handle:
        text, _sep, rest = handle.read().partition(b"\n--\n")
    old_hash = rest.split(b"\n", 1)[0].decode("ascii")
    algorithm = old_hash.partition("-")[2] or "sha1"
    body = ("\n".join(transform(text.decode("utf-8").split("\n"))) + "\n").encode("utf-8")
    hash_line = hash_string(body, algorithm).encode("ascii")
    write(path, body + b"--\n" + hash_line + b"\n" + sign(hash_line))


def rekeyed_copy(source, destination):
    """A working copy of the fixture ``source`` (a :class:`FixtureRepo`) in ``destination``, signed
    with fresh test keys; returns its :class:`FixtureRepo`, which can sign variants.

    What ``cvmfs_server`` would have done with these keys: the new certificate stored as a
    zlib-compressed ``X`` object, the manifests' ``X`` line pointing at it and signed with the new
    repository key, the whitelists listing its fingerprint and signed with the new master key
    (raw RSA), ``<name>.pub``/``<name>.crt`` replaced. Dates and all other bytes stay as they were.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    destination = str(destination)
    shutil.copytree(source.root, destination, ignore=shutil.ignore_patterns("*.key", "*.masterkey"))
    master = new_rsa_key()
    repository, certificate = new_signing_identity(
        "%s CernVM-FS Release Managers" % source.name[:30], start=source.whitelist_created - datetime.timedelta(minutes=1))
    der = x509.load_pem_x509_certificate(certificate).public_bytes(serialization.Encoding.DER)
    copy = FixtureRepo(destination)
    with open(copy.pub, "w") as handle:
        handle.write(public_pem(master))
    write(copy.crt, certificate)

    def new_fingerprints(lines):
        listed = [i for i, line in enumerate(lines) if i >= 3 and _FINGERPRINT.match(line)]
        assert listed, "the fixture's whitelist lists no certificate fingerprint"
        return [_fingerprint_line(line, der) if i in listed else line for i, line in enumerate(lines)]

    for storage in (copy.stratum0, copy.stratum1):
        x_old = _manifest_lines(storage)["X"]
        x_hash = store_object(storage, certificate, "X", algorithm=x_old.partition("-")[2] or "sha1")
        _resign(os.path.join(storage, ".cvmfspublished"),
                lambda lines, x_hash=x_hash: ["X" + x_hash if line.startswith("X") else line for line in lines],
                lambda hash_line: repository.sign(hash_line, padding.PKCS1v15(), hashes.SHA1()))
        _resign(os.path.join(storage, ".cvmfswhitelist"), new_fingerprints,
                lambda hash_line: raw_rsa_sign(master, hash_line))
    make_readable(destination)
    return FixtureRepo(destination, private_keys={"master": master, "repository": repository})


def make_readable(top):
    """Directories 0755, files 0644 (apache's user reads the copies)."""
    for root, _dirs, files in os.walk(str(top)):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)


def fixture_repo():
    """The committed fixture (or ``$SHAREDSW_CVMFS_REPO_FIXTURE``), untouched: no private keys."""
    return FixtureRepo(find_fixture())


@pytest.fixture(scope="module")
def pristine_repo():
    """The real CernVM-FS 2.12 repository fixture as committed: signatures made by real CernVM-FS."""
    return fixture_repo()


@pytest.fixture(scope="module")
def cvmfs_repo():
    """A re-keyed working copy of the fixture (fresh test keys; can sign variants); import it into a
    test module. Not under pytest's tmp_path: apache's user must be able to read copies of it."""
    base = tempfile.mkdtemp(prefix="sharedsw-cvmfs-repo-")
    os.chmod(base, 0o755)
    try:
        yield rekeyed_copy(fixture_repo(), os.path.join(base, "cvmfs-repo"))
    finally:
        shutil.rmtree(base, ignore_errors=True)
