"""Real CernVM-FS key material, generated at test time (never committed).

Mirrors what ``cvmfs_server mkfs`` creates: an RSA-2048 masterkey with its PEM public key, an
RSA-2048 repository key with a self-signed X.509 certificate (CN "<fqrn> CernVM-FS Release
Managers", 365 days) and a gateway key file ``plain_text <id> <secret>``.
"""

import datetime
import functools
import os
import secrets

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

KINDS = ("masterkey", "key", "crt", "pub", "gw")


def _rsa():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_private(key, traditional):
    fmt = serialization.PrivateFormat.TraditionalOpenSSL if traditional else serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


def _pem_public(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _certificate(key, repo):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "%s CernVM-FS Release Managers" % repo[:30])])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=365)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@functools.lru_cache(maxsize=None)
def keyset(repo, variant=0):
    """``{kind: text}`` for ``repo``; cached, a different ``variant`` gives different keys."""
    master, signing = _rsa(), _rsa()
    return {
        "masterkey": _pem_private(master, traditional=True),   # `openssl genrsa` of OpenSSL 1.x
        "pub": _pem_public(master),
        "key": _pem_private(signing, traditional=False),       # `openssl genrsa` of OpenSSL 3
        "crt": _certificate(signing, repo),
        "gw": "plain_text %s %s\n" % ("key-" + secrets.token_hex(4), secrets.token_urlsafe(24)),
    }


def write_keyset(directory, repo, keys, kinds=KINDS):
    os.makedirs(directory, exist_ok=True)
    suffix = {"masterkey": ".masterkey", "key": ".key", "crt": ".crt", "pub": ".pub", "gw": ".gw"}
    for kind in kinds:
        path = os.path.join(directory, repo + suffix[kind])
        with open(path, "w") as handle:
            handle.write(keys[kind])
        os.chmod(path, 0o444 if kind in ("crt", "pub") else 0o400)


def secret_markers(keys):
    """Substrings that must never appear in any output: PEM headers of private keys, lines of
    their base64 bodies, and the gateway secret."""
    markers = ["PRIVATE KEY", keys["gw"].split()[2]]
    for kind in ("masterkey", "key"):
        body = [line for line in keys[kind].splitlines() if line and not line.startswith("-----")]
        markers.extend(body[1:4])  # the first line is mostly the ASN.1 header, the same in every key
    return markers


def assert_no_secrets(text, keys):
    for marker in secret_markers(keys):
        assert marker not in text, "key material leaked into output"


def snapshot(directory):
    """Names, contents, modes and mtimes of a directory, to prove nothing was touched."""
    if not os.path.isdir(directory):
        return None
    state = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        st = os.lstat(path)
        with open(path, "rb") as handle:
            state[name] = (handle.read(), st.st_mode, st.st_mtime_ns, st.st_ino)
    return state
