#!/usr/bin/env python
"""The endorser's side of VM image distribution: keys, list entries, signing, verification.

    tools/image_list.py keygen --private endorser.key --public endorser.pub
    tools/image_list.py describe debian12.qcow2 --name cvmfs-client-debian12 --version 2026.11 \
        --url https://images.example.org/debian12.qcow2        # prints the YAML entry
    tools/image_list.py sign images.yml --key endorser.key      # checks the list, writes images.yml.sig
    tools/image_list.py verify images.yml --public-key endorser.pub --endorser images.example.org
    tools/image_list.py fingerprint endorser.pub                # to compare out of band

Signatures are Ed25519 over the exact bytes of the list file, base64 on one line in <list>.sig:
the same as `openssl pkeyutl -sign -rawin -inkey endorser.key -in images.yml | base64 -w0`.
A passphrase of the private key is read from the environment variable named by --passphrase-env.
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from plugins.module_utils._common import CvmfsError  # noqa: E402  pylint: disable=wrong-import-position
from plugins.module_utils import _image_list, _image_signature  # noqa: E402  pylint: disable=wrong-import-position


def _passphrase(args):
    if not args.passphrase_env:
        return None
    value = os.environ.get(args.passphrase_env)
    if not value:
        raise CvmfsError("the environment variable %s (--passphrase-env) is not set" % args.passphrase_env)
    return value.encode()


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def _write(path, data, mode):
    if os.path.exists(path):
        raise CvmfsError("%s exists; not overwriting it" % path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def keygen(args):
    private_pem, public_pem = _image_signature.generate_key(_passphrase(args))
    _write(args.private, private_pem, 0o600)
    _write(args.public, public_pem, 0o644)
    print("wrote %s (keep it secret) and %s; fingerprint %s"
          % (args.private, args.public, _image_signature.public_key_fingerprint(public_pem)))


def describe(args):
    import yaml

    entry = _image_list.describe_file(args.file, args.name, args.version, url=args.url, cvmfs_path=args.cvmfs_path,
                                      disk_format=args.disk_format, container_format=args.container_format)
    sys.stdout.write(yaml.safe_dump([entry], sort_keys=False, default_flow_style=False))


def sign(args):
    import yaml

    data = _read(args.list)
    try:
        endorser = (yaml.safe_load(data) or {}).get("endorser")
    except (yaml.YAMLError, AttributeError):
        endorser = None
    if not endorser:
        raise CvmfsError("%s has no endorser key; it is not an image list" % args.list)
    parsed = _image_list.parse_image_list(data, endorser)  # refuse to sign what sites would refuse to read
    signature = _image_signature.sign(data, _read(args.key), _passphrase(args))
    target = args.signature or args.list + _image_signature.SIGNATURE_SUFFIX
    if os.path.exists(target):
        os.unlink(target)
    _write(target, signature, 0o644)
    print("signed %s (%d images of %s, sha256 %s) -> %s" % (args.list, len(parsed.images), endorser,
                                                            parsed.sha256, target))


def verify(args):
    signature = args.signature or args.list + _image_signature.SIGNATURE_SUFFIX
    parsed = _image_list.load_verified_list(args.list, signature, args.public_key, args.endorser)
    print("OK: %s is signed by %s (key %s), %d images, issued %s, expires %s"
          % (args.list, args.endorser, _image_signature.public_key_fingerprint(_read(args.public_key)), len(parsed.images),
             parsed.issued.isoformat(), parsed.expires.isoformat()))


def fingerprint(args):
    print(_image_signature.public_key_fingerprint(_read(args.public_key)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("keygen", help="create an Ed25519 endorser key pair")
    p.add_argument("--private", required=True, help="private key file to write (PEM, mode 0600)")
    p.add_argument("--public", required=True, help="public key file to write (PEM), for the sites")
    p.add_argument("--passphrase-env", help="encrypt the private key with the passphrase in this variable")
    p.set_defaults(func=keygen)

    p = sub.add_parser("describe", help="print the image list entry of an image file")
    p.add_argument("file")
    p.add_argument("--name", required=True)
    p.add_argument("--version", required=True)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", help="http(s) URL sites download the image from")
    source.add_argument("--cvmfs-path", help="path of the image under /cvmfs/")
    p.add_argument("--disk-format", default="qcow2")
    p.add_argument("--container-format", default="bare")
    p.set_defaults(func=describe)

    p = sub.add_parser("sign", help="check an image list and write its detached signature")
    p.add_argument("list")
    p.add_argument("--key", required=True, help="the endorser's private key (PEM)")
    p.add_argument("--passphrase-env", help="environment variable holding the key's passphrase")
    p.add_argument("--signature", help="signature file to write (default: <list>.sig)")
    p.set_defaults(func=sign)

    p = sub.add_parser("verify", help="verify an image list as a site does")
    p.add_argument("list")
    p.add_argument("--public-key", required=True)
    p.add_argument("--endorser", required=True)
    p.add_argument("--signature", help="default: <list>.sig")
    p.set_defaults(func=verify)

    p = sub.add_parser("fingerprint", help="print the SHA-256 fingerprint of a public key")
    p.add_argument("public_key")
    p.set_defaults(func=fingerprint)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except CvmfsError as error:
        sys.stderr.write("error: %s\n" % error.message)
        return 1
    except (IOError, OSError) as error:
        sys.stderr.write("error: %s\n" % error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
