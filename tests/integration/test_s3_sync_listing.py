"""s3_sync's listing and GET paths against real S3 servers (Ceph RGW and SeaweedFS).

Keys are decoded exactly as ListObjectsV2 with ``encoding-type=url`` defines them; a key that
is listed but gone at GET time is never skipped in silence; the in-memory download path is
chosen from what the GET response says, not from the listing.
"""

import os

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _s3_sync as engine

from .test_s3_sync import conn_options, md5, put, tree

pytestmark = pytest.mark.integration

# keys below the prefix whose URL encoding is ambiguous or needs escaping (in the listing's XML
# too): space (form-encoded as "+" by AWS and SeaweedFS), "+" itself, "%" and its escapes as
# literal text, "&", non-ASCII; directories holding them are listed as common prefixes first
ODD_KEYS = [
    u"Transparent Busy.ani",
    u"a+b",
    u"a b+c d",
    u"100%",
    u"50%25 off",
    u"%2B%20literal",
    u"x&y=z;w",
    u"caf\u00e9 \u00fcml\u00e4ut \u20ac \U0001F600",
    u"dir with space/inner file",
    u"dir+plus/a+b c",
    u"dir%20pct/x",
    u"\u00e9t\u00e9/\u65e5\u672c\u8a9e",
]


@pytest.fixture
def bucket(s3_server):
    return s3_server.make_bucket("listing")


@pytest.fixture(params=["fast", "boto"])
def path_kind(request):
    """The engine's own HTTP path, and the boto3 path it takes behind a proxy."""
    return request.param


def _sync(server, bucket, tmp_path, path_kind, **options):
    conn = conn_options(server)
    conn.use_fast_path = path_kind == "fast"
    options.setdefault("max_workers", 4)
    options.setdefault("retries", 2)
    return engine.sync(conn, engine.Options(bucket=bucket, dest=str(tmp_path / "repo"),
                                            state_file=str(tmp_path / "state.json"), **options))


def test_keys_needing_url_encoding_are_all_synced(s3_server, bucket, tmp_path, path_kind):
    bodies = {}
    for number, key in enumerate(ODD_KEYS):
        bodies[key] = ("body %d of %s" % (number, key)).encode("utf-8")
        put(s3_server, bucket, "cvmfs/" + key, bodies[key])
    result = _sync(s3_server, bucket, tmp_path, path_kind)
    assert result["rejected"]["count"] == 0, result["rejections"]
    got = dict((path, info[1]) for path, info in tree(str(tmp_path / "repo")).items() if info[0] == "f")
    assert got == dict((key, md5(body)) for key, body in bodies.items())
    again = _sync(s3_server, bucket, tmp_path, path_kind)
    assert again["changed"] is False and again["unchanged"]["count"] == len(ODD_KEYS)


def test_prefix_needing_url_encoding(s3_server, bucket, tmp_path, path_kind):
    put(s3_server, bucket, u"soft ware+x/caf\u00e9/a b", b"inside")
    put(s3_server, bucket, u"soft ware x/caf\u00e9/a b", b"a sibling the prefix must not match")
    result = _sync(s3_server, bucket, tmp_path, path_kind, prefix=u"soft ware+x/")
    assert result["added"]["count"] == 2
    with open(os.path.join(str(tmp_path / "repo"), u"caf\u00e9", "a b"), "rb") as handle:
        assert handle.read() == b"inside"
