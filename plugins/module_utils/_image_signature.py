# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Endorsed VM images, the signature: Ed25519 keys, detached signatures of image lists.

Internal to sharedsw.cvmfs; may change in any release. Owns making endorser keys, signing an image
list and verifying its signature (the scheme is described in ``_image_list``). ``cryptography``
comes from ``_crypto``; must not import Ansible, YAML, HTTP or OpenStack.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import hashlib

from ._common import CvmfsError
from ._crypto import Ed25519PrivateKey, Ed25519PublicKey, InvalidSignature, require_cryptography, serialization

SIGNATURE_SUFFIX = ".sig"


def _need_cryptography():
    require_cryptography("to check image list signatures (cryptography>=41)")


def generate_key(password=None):
    """A new Ed25519 endorser key: ``(private PEM bytes, public PEM bytes)``.

    The private key is PKCS#8, encrypted with ``password`` (bytes) when given.
    """
    _need_cryptography()
    key = Ed25519PrivateKey.generate()
    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return private_pem, public_pem


def load_private_key(pem, password=None):
    _need_cryptography()
    try:
        key = serialization.load_pem_private_key(pem, password=password)
    except TypeError as error:
        raise CvmfsError("the private key is encrypted: give its passphrase (%s)" % error)
    except ValueError as error:
        raise CvmfsError("not a PEM private key, or a wrong passphrase: %s" % error)
    if not isinstance(key, Ed25519PrivateKey):
        raise CvmfsError("the private key is %s; image lists are signed with Ed25519 keys "
                         "(tools/image_list.py keygen, or openssl genpkey -algorithm ed25519)" % type(key).__name__)
    return key


def load_public_key(pem):
    _need_cryptography()
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as error:
        raise CvmfsError("the endorser public key is not a PEM public key (-----BEGIN PUBLIC KEY-----): %s" % error)
    if not isinstance(key, Ed25519PublicKey):
        raise CvmfsError("the endorser public key is %s; image lists are verified with Ed25519 keys"
                         % type(key).__name__)
    return key


def public_key_fingerprint(pem):
    """SHA-256 of the raw 32-byte public key, hex: what to compare out of band with the endorser."""
    raw = load_public_key(pem).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def sign(data, private_key_pem, password=None):
    """The detached signature of ``data`` (bytes): base64 text with a trailing newline, as bytes."""
    key = load_private_key(private_key_pem, password)
    return base64.b64encode(key.sign(data)) + b"\n"


def _decode_signature(signature):
    if len(signature) == 64:
        return signature
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 64:
        raise CvmfsError("the signature file is neither base64 text of a 64-byte Ed25519 signature nor the raw "
                         "64 bytes; it is not a signature of this scheme")
    return raw


def verify(data, signature, public_key_pem):
    """Raise :class:`CvmfsError` unless ``signature`` is the endorser's signature of exactly ``data``."""
    if not signature or not signature.strip():
        raise CvmfsError("the image list is not signed (the signature file is empty); refusing it")
    key = load_public_key(public_key_pem)
    try:
        key.verify(_decode_signature(signature), data)
    except InvalidSignature:
        raise CvmfsError("the signature of the image list does not match: the list was changed after it was "
                         "signed, or it was signed with another key than the endorser public key configured here; "
                         "refusing it")
