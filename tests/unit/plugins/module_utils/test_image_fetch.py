"""Unit tests of _image_fetch: streaming verification of /cvmfs sources (downloads over HTTP are tested
against the real apache in tests/integration)."""

import hashlib
import os

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _image_fetch as image_fetch
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _image_list as imagelist
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError


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
    data = os.urandom(3 * imagelist.CHUNK + 5)
    item = imagelist.ImageEntry("big", "1", len(data), hashlib.sha256(data).hexdigest(), url="http://x/big")
    reader = RecordingReader(data)
    size, digests = image_fetch._stream(iter(lambda: reader.read(imagelist.CHUNK), b""), item)
    assert size == len(data) and digests["sha256"] == item.sha256 and digests["md5"] == hashlib.md5(data).hexdigest()
    assert max(reader.asked) == imagelist.CHUNK

    endless = RecordingReader(b"y" * (50 * imagelist.CHUNK))
    small = imagelist.ImageEntry("small", "1", imagelist.CHUNK + 1, "0" * 64, url="http://x/small")
    with pytest.raises(CvmfsError, match="larger than the endorsed %d bytes" % (imagelist.CHUNK + 1)):
        image_fetch._stream(iter(lambda: endless.read(imagelist.CHUNK), b""), small)
    assert endless.offset <= 2 * imagelist.CHUNK, "it must stop reading once past the endorsed size"


@pytest.fixture
def cvmfs_root(tmp_path):
    root = tmp_path / "cvmfs"
    (root / "images.example.org").mkdir(parents=True)
    return root


def cvmfs_entry(root, data, stored=None, name="client"):
    (root / "images.example.org" / (name + ".qcow2")).write_bytes(data if stored is None else stored)
    return imagelist.ImageEntry(name, "1", len(data), hashlib.sha256(data).hexdigest(),
                                path="/cvmfs/images.example.org/%s.qcow2" % name)


def test_cvmfs_source_is_used_in_place_after_verification(cvmfs_root):
    data = os.urandom(4096)
    item = cvmfs_entry(cvmfs_root, data)
    verified = image_fetch.fetch_verified(item, cvmfs_root=str(cvmfs_root))
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
        image_fetch.fetch_verified(item, cvmfs_root=str(cvmfs_root))


def test_cvmfs_source_missing_or_outside(cvmfs_root, tmp_path):
    item = imagelist.ImageEntry("client", "1", 1, "0" * 64, path="/cvmfs/other.example.org/x.qcow2")
    with pytest.raises(CvmfsError, match="is the repository other.example.org mounted"):
        image_fetch.fetch_verified(item, cvmfs_root=str(cvmfs_root))
    (tmp_path / "secret").write_bytes(b"s")
    os.symlink(str(tmp_path / "secret"), str(cvmfs_root / "images.example.org" / "link"))
    item = imagelist.ImageEntry("client", "1", 1, "0" * 64, path="/cvmfs/images.example.org/link")
    with pytest.raises(CvmfsError, match="leads outside"):
        image_fetch.fetch_verified(item, cvmfs_root=str(cvmfs_root))
