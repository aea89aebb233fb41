"""The body spool of the S3 sync engine's downloads (_s3_fetch): no server."""

import hashlib
import os

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _s3_fetch as fetch


def test_spool_keeps_small_bodies_in_memory_and_streams_longer_ones(tmp_path):
    opened = []

    def open_file():
        opened.append(str(tmp_path / "staged"))
        return os.open(opened[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)

    small = fetch._Spool(open_file, 10, hashlib.md5())
    for chunk in (b"0123", b"456789"):
        small.write(chunk)
    assert small.fd is None and not opened and small.buffered() == b"0123456789" and small.size == 10
    assert small.digest.hexdigest() == hashlib.md5(b"0123456789").hexdigest()
    longer = fetch._Spool(open_file, 10)
    for chunk in (b"0123", b"456789", b"A", b"BCDEF" * 1000):
        longer.write(chunk)
        assert longer.chunks is None or sum(len(c) for c in longer.chunks) <= 10
    longer.close()
    assert longer.size == 5011 and opened == [str(tmp_path / "staged")]
    assert (tmp_path / "staged").read_bytes() == b"0123456789A" + b"BCDEF" * 1000
