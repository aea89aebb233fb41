"""Tar archives built in memory, for the ingest tests."""

import io
import tarfile


def tarball(members, compression=""):
    """Bytes of a tar archive of ``{path: bytes}`` (``compression`` as tarfile spells it: "", "gz", "bz2", "xz")."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:" + compression) as archive:
        for path, data in members.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
