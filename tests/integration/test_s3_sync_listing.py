"""s3_sync's listing and GET paths against real S3 servers (Ceph RGW and SeaweedFS).

Keys are decoded exactly as ListObjectsV2 with ``encoding-type=url`` defines them; a key that
is listed but gone at GET time is never skipped in silence; the in-memory download path is
chosen from what the GET response says, not from the listing.
"""

import os
import tracemalloc

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _s3_sync as engine
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _s3_connect as connection
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError

from .s3_fault_proxy import FaultProxy
from .test_s3_sync import _upstream, conn_options, md5, put, tree

pytestmark = pytest.mark.integration

MIB = 1024 * 1024

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


# ------------------------------------------------------------------------------ gone at GET time

def _deleting_proxy(server, bucket, doomed):
    """A proxy in front of ``server`` that deletes each key of ``doomed`` (keys below the
    bucket) just before the first GET or HEAD of it goes through: listed, then gone."""
    from urllib.parse import unquote
    client = server.client()
    done = set()

    def rule(method, path, number):
        key = unquote(path.split("?")[0])[len("/%s/" % bucket):]
        if method in ("GET", "HEAD") and key in doomed and key not in done:
            done.add(key)
            return lambda: client.delete_object(Bucket=bucket, Key=key)
        return "pass"

    return FaultProxy(*_upstream(server), rule=rule)


def _sync_via(proxy, server, bucket, tmp_path, **options):
    options.setdefault("max_workers", 4)
    options.setdefault("retries", 2)
    return engine.sync(conn_options(server, endpoint_url=proxy.url),
                       engine.Options(bucket=bucket, dest=str(tmp_path / "repo"),
                                      state_file=str(tmp_path / "state.json"), **options))


def test_key_gone_at_get_time_fails_by_default_and_warns_when_asked(s3_server, bucket, tmp_path):
    put(s3_server, bucket, "cvmfs/changed.txt", b"version 1")
    _sync(s3_server, bucket, tmp_path, "fast")
    put(s3_server, bucket, "cvmfs/changed.txt", b"version 2, deleted before it is fetched")
    put(s3_server, bucket, "cvmfs/new gone.txt", b"deleted before it is fetched")
    put(s3_server, bucket, "cvmfs/kept.txt", b"stays")
    doomed = {"cvmfs/changed.txt", "cvmfs/new gone.txt"}
    before = tree(str(tmp_path / "repo"))

    proxy = _deleting_proxy(s3_server, bucket, set(doomed))
    try:
        with pytest.raises(CvmfsError) as failure:
            _sync_via(proxy, s3_server, bucket, tmp_path)
    finally:
        proxy.close()
    named = failure.value.extra["missing_keys"]
    assert named and set(named) <= doomed
    assert all(key in failure.value.message for key in named) and "on_missing" in failure.value.message
    assert tree(str(tmp_path / "repo")) == before, "nothing may be written"

    for key in doomed:
        put(s3_server, bucket, key, b"back again, to be deleted again")
    proxy = _deleting_proxy(s3_server, bucket, set(doomed))
    try:
        result = _sync_via(proxy, s3_server, bucket, tmp_path, on_missing="warn")
    finally:
        proxy.close()
    assert result["missing"]["count"] == 2 and sorted(result["missing_keys"]) == sorted(doomed)
    assert all(any(key in warning for warning in result["warnings"]) for key in doomed)
    got = tree(str(tmp_path / "repo"))
    assert got["kept.txt"][1] == md5(b"stays")
    assert got["changed.txt"][:2] == before["changed.txt"][:2], "the local file of a missing key stays as it was"
    assert "new gone.txt" not in got
    # the keys are really gone now: the next run deletes what they left
    clean = _sync(s3_server, bucket, tmp_path, "fast")
    assert clean["missing"]["count"] == 0 and clean["changed_paths"]["deleted"] == ["changed.txt"]


def test_module_on_missing_option(s3_server, bucket, tmp_path, run_module):
    put(s3_server, bucket, "cvmfs/gone", b"deleted before it is fetched")
    put(s3_server, bucket, "cvmfs/kept", b"stays")
    args = dict(s3_server.module_args(), bucket=bucket, dest=str(tmp_path / "repo"),
                state_file=str(tmp_path / "state.json"), retries=1)
    for on_missing in (None, "warn"):
        put(s3_server, bucket, "cvmfs/gone", b"deleted before it is fetched")
        proxy = _deleting_proxy(s3_server, bucket, {"cvmfs/gone"})
        try:
            extra = {} if on_missing is None else {"on_missing": on_missing}
            result = run_module("s3_sync", dict(args, endpoint_url=proxy.url, **extra))
        finally:
            proxy.close()
        if on_missing is None:
            assert result.failed and "cvmfs/gone" in result["msg"], result
            assert result["missing_keys"] == ["cvmfs/gone"] and not os.path.exists(str(tmp_path / "repo" / "kept"))
        else:
            assert not result.failed, result
            assert result["missing"] == {"count": 1, "bytes": len(b"deleted before it is fetched")}
            assert result["missing_keys"] == ["cvmfs/gone"] and result["added"]["count"] == 1
            assert "cvmfs/gone was listed but gone" in str(result["warnings"]), result


# ------------------------------------------------------------------------------ grows after listing

class _GrowsAfterListing:
    """The engine's S3 access, except that right after the listing (so the listing still
    says 10 bytes) ``key`` is overwritten by ``path``'s content, uploaded from the file."""

    def __init__(self, fast, server, bucket, key, path):
        self._fast = fast
        self._grow = lambda: server.client().upload_file(path, bucket, key)
        self._grown = False

    def __getattr__(self, name):
        return getattr(self._fast, name)

    def list_page(self, *args):
        page = self._fast.list_page(*args)
        if not self._grown:
            self._grown = True
            self._grow()
            tracemalloc.reset_peak()  # the upload's own buffers are not the sync's
        return page


def test_object_grown_after_listing_is_not_held_in_memory(s3_server, bucket, tmp_path, path_kind):
    import hashlib
    big = tmp_path / "big"
    with open(str(big), "wb") as handle:
        for unused in range(32):
            handle.write(os.urandom(MIB))
    put(s3_server, bucket, "cvmfs/grows", b"ten bytes.")
    conn = conn_options(s3_server)
    conn.use_fast_path = path_kind == "fast"
    fast, client_factory, source = connection.connect(conn, bucket, 4)
    s3 = _GrowsAfterListing(fast, s3_server, bucket, "cvmfs/grows", str(big))
    options = engine.Options(bucket=bucket, dest=str(tmp_path / "repo"), state_file=str(tmp_path / "state.json"),
                             max_workers=2, retries=1)
    tracemalloc.start()
    try:
        result = engine.Sync(options, s3, source, client_factory).run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        fast.close()
    with open(str(tmp_path / "repo" / "grows"), "rb") as handle:
        assert hashlib.md5(handle.read()).hexdigest() == md5(big.read_bytes())
    assert result["transferred_bytes"] == 32 * MIB
    # held whole, the 32 MiB body would need at least 32 MiB (twice that with the join)
    assert peak < 8 * MIB, "%.1f MiB of Python memory at the peak" % (peak / MIB)


def _check_via_proxy(server, bucket, tmp_path, **options):
    """A check through a proxy that records every request; returns (result, requests)."""
    proxy = FaultProxy(*_upstream(server))
    try:
        result = _sync_via(proxy, server, bucket, tmp_path, check_mode=True, **options)
    finally:
        proxy.close()
    return result, [(method, path.split("?")[0]) for method, path, unused in proxy.log]


def test_first_change_check_reads_no_metadata(s3_server, bucket, tmp_path):
    client = s3_server.client()
    for number in range(1500):   # two listing pages
        client.put_object(Bucket=bucket, Key="cvmfs/pkg/f%04d" % number, Body=b"x", Metadata={"mode": "755"})
    full, full_requests = _check_via_proxy(s3_server, bucket, tmp_path)
    assert full["changed"] is True and full["added"]["count"] == 1501   # and the directory pkg
    assert sum(method == "HEAD" for method, unused in full_requests) == 1500   # a full check reads metadata

    quick, requests = _check_via_proxy(s3_server, bucket, tmp_path, first_change_only=True)
    assert quick["changed"] is True and quick["first_change"].startswith("pkg/f")
    # listing requests only (how many pages the listers fetched before they stopped depends on threads)
    assert requests and all(method == "GET" and path == "/" + bucket for method, path in requests), requests
    assert not os.path.exists(str(tmp_path / "repo")), "a check writes nothing"


def test_first_change_check_still_sees_deletions_and_no_change(s3_server, bucket, tmp_path):
    put(s3_server, bucket, "cvmfs/keep", b"same")
    put(s3_server, bucket, "cvmfs/gone", b"soon deleted")
    _sync(s3_server, bucket, tmp_path, "fast")
    quiet, unused = _check_via_proxy(s3_server, bucket, tmp_path, first_change_only=True)
    assert quiet["changed"] is False and "first_change" not in quiet
    s3_server.client().delete_object(Bucket=bucket, Key="cvmfs/gone")
    deleted, unused = _check_via_proxy(s3_server, bucket, tmp_path, first_change_only=True)
    assert deleted["changed"] is True and deleted["changed_paths"]["deleted"] == ["gone"]


def test_first_change_only_is_refused_outside_a_check(tmp_path):
    with pytest.raises(CvmfsError, match="first_change_only"):
        engine.Options(bucket="b", dest=str(tmp_path), first_change_only=True)
