"""The publish job's ingest against REAL CernVM-FS: compressed tarballs streamed into ``cvmfs_server ingest -t -``.

Runs on the session's lab host ``pt-cvmfs`` (tests/support/cvmfs_lab_host.py): the job's own
``PublishJob.ingest`` (the publish job's files shipped there with the runner's modules, run by the host's
Python) against the real cvmfs_server 2.12 and a local stratum-0. Only S3 is stood in for: the
download copies a file on the host and the deletion is recorded. The rest of the job, against real
S3 and the publish double, is tests/integration/publisher/test_publish_job.py.
"""

import json
import uuid

import pytest

from tests.support.cvmfs_lab_host import PROGRAM_DIR, package_files, skip_module_without_packages
from tests.support.tarballs import tarball

pytestmark = pytest.mark.cvmfs
skip_module_without_packages()


INGEST = r"""
import io, json, shutil, sys
from sharedsw_cvmfs import _publish_job as pj, _tarballs
request = json.loads(sys.argv[1])


class Bucket:
    # stands in for the boto3 client: the tarball is a file on this host, deletions are recorded
    deleted = []

    def download_file(self, _bucket, _key, path):
        shutil.copyfile(request["file"], path)

    def head_object(self, **_kwargs):
        return {"ETag": "etag"}

    def delete_object(self, Bucket, Key):  # pylint: disable=invalid-name
        self.deleted.append(Key)


class ReadError:
    # the tar stream fails with an I/O error after `limit` bytes
    def __init__(self, stream, limit):
        self.stream, self.limit = stream, limit

    def read(self, size=-1):
        data = self.stream.read(min(size, self.limit) if size >= 0 else self.limit)
        self.limit -= len(data)
        if not data:
            raise OSError(5, "Input/output error (test)")
        return data

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return self.stream.__exit__(*exc_info)


if request.get("fail_after") is not None:
    opened = []
    real_open_tar = _tarballs.open_tar

    def open_tar(path, compression):  # the first opening is the check, the second the stream into ingest
        opened.append(path)
        stream = real_open_tar(path, compression)
        return stream if len(opened) == 1 else ReadError(stream, request["fail_after"])
    _tarballs.open_tar = open_tar

log = io.StringIO()
job = pj.PublishJob(pj.load_config(request["config"]), pj.Log(stream=log))
job._s3 = Bucket()
try:
    job.ingest([(request["key"], "etag", request["base"])])
    error = None
except Exception as exc:
    error = "%s: %s" % (type(exc).__name__, exc)
print(json.dumps({"error": error, "deleted": Bucket.deleted, "log": log.getvalue()}))
"""


@pytest.fixture
def host(cvmfs_lab_host):
    """The lab host with ``_publish_job`` and what it imports next to the runner's modules in ``sharedsw_cvmfs``."""
    cvmfs_lab_host.put_tree(package_files("_publish_job"), PROGRAM_DIR)
    return cvmfs_lab_host


@pytest.fixture
def repo(host):
    name = "pj-%s.test.invalid" % uuid.uuid4().hex[:8]
    created = host.cvmfs_server("mkfs", "-o", "root", name)
    assert created.rc == 0, created
    yield name
    host.sh('cd / && [ ! -e "/var/spool/cvmfs/$1/in_transaction.lock" ] || cvmfs_server abort -f "$1" </dev/null\n'
            'cvmfs_server rmfs -f "$1" </dev/null; rm -rf /var/tmp/"$1"', name)


def revision(host, repo):
    return int(host.sh('attr -qg revision /var/spool/cvmfs/"$1"/rdonly', repo).stdout)


def ingest(host, repo, key, data, fail_after=None):
    """``PublishJob.ingest`` of the tarball ``data``, uploaded as ``key``, on the host."""
    work = "/var/tmp/" + repo
    config = {"repository": repo, "state_dir": work + "/state", "lock_file": work + "/publish.lock",
              "source": {"bucket": "software", "ingest_prefix": "ingest/", "sync": False}}
    host.write(work + "/config.json", json.dumps(config))
    host.write(work + "/upload", data)
    host.sh('install -d "$1"', work + "/state")
    request = {"config": work + "/config.json", "file": work + "/upload", "key": key,
               "base": key[len("ingest/"):].split(".")[0], "fail_after": fail_after}
    output = host.python(INGEST, json.dumps(request))
    assert output.rc == 0, output
    return json.loads(output.stdout)


@pytest.mark.parametrize("compression", ["gz", "bz2", "xz"])
def test_compressed_tarball_is_ingested(host, repo, compression):
    before = revision(host, repo)
    key = "ingest/tool.tar." + compression
    result = ingest(host, repo, key, tarball({"bin/tool": b"#!/bin/sh\necho hi\n", "share/big": b"x" * 300000},
                                             compression))
    assert result["error"] is None, result["log"]
    assert host.read("/cvmfs/%s/tool/bin/tool" % repo) == b"#!/bin/sh\necho hi\n"
    assert host.read("/cvmfs/%s/tool/share/big" % repo) == b"x" * 300000
    assert revision(host, repo) == before + 1
    assert result["deleted"] == [key]


def test_read_error_while_streaming_kills_ingest_and_aborts(host, repo):
    """The stream breaks where the first member ends: had the job closed stdin there, the real
    cvmfs_server would have published half the tarball (see test_cvmfs_double_contract's
    test_ingest_from_stdin). It is killed instead, and its transaction aborted."""
    before = revision(host, repo)
    data = tarball({"a/one": b"1" * 100000, "a/two": b"2" * 100000}, "gz")
    result = ingest(host, repo, "ingest/half.tar.gz", data, fail_after=512 + 100352)
    assert result["error"] and "Input/output error (test)" in result["error"], result
    assert not host.exists("/cvmfs/%s/half" % repo), "half the tarball was published"
    assert revision(host, repo) == before
    assert not host.exists("/var/spool/cvmfs/%s/in_transaction.lock" % repo)
    assert "stopped cvmfs_server ingest (killed it and all it started)" in result["log"]
    assert "aborting the transaction it left open on %s" % repo in result["log"]
    assert result["deleted"] == []
