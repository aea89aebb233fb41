# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one guarded import of the ``cryptography`` library, for every file that signs or verifies.

Internal to sharedsw.cvmfs; may change in any release. Owns: importing ``cryptography`` (RSA for
CernVM-FS keys and signatures, Ed25519 for image lists), :data:`HAS_CRYPTOGRAPHY` and
:func:`require_cryptography`. Must not import Ansible or any other module of this collection but
``_common``: modules, lookups and host programs all import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMP_ERR = traceback.format_exc()
    x509 = hashes = serialization = padding = rsa = None
    InvalidSignature = UnsupportedAlgorithm = Ed25519PrivateKey = Ed25519PublicKey = None
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMP_ERR = None

from ._common import CvmfsError

__all__ = ("CRYPTOGRAPHY_IMP_ERR", "HAS_CRYPTOGRAPHY", "Ed25519PrivateKey", "Ed25519PublicKey",
           "InvalidSignature", "UnsupportedAlgorithm", "hashes", "padding", "require_cryptography", "rsa",
           "serialization", "x509")


def require_cryptography(purpose, **extra):
    """Raise :class:`CvmfsError` saying the library is needed ``purpose`` (e.g. "to verify ...") when it is missing."""
    if not HAS_CRYPTOGRAPHY:
        raise CvmfsError("the Python library cryptography is needed %s; install it (Debian and EL: "
                         "python3-cryptography, PyPI: cryptography)" % purpose,
                         cryptography_import_error=CRYPTOGRAPHY_IMP_ERR, **extra)
