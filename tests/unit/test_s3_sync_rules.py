"""Pure rules of the S3 sync engine: keys, metadata, symlink targets, filters, SigV4."""

import datetime

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _s3_http as http
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _s3_sync as engine

from .s3_sync_corpus import CORPUS


def test_corpus_is_big_enough_and_has_both_verdicts():
    assert len(CORPUS) >= 200
    assert len(set(key for key, unused in CORPUS)) == len(CORPUS), "duplicate keys in the corpus"
    assert sum(1 for unused, verdict in CORPUS if verdict is None) >= 40
    assert sum(1 for unused, verdict in CORPUS if verdict is not None) >= 150


@pytest.mark.parametrize("key,expected", CORPUS, ids=[repr(k)[:60] for k, unused in CORPUS])
def test_hostile_key_verdict(key, expected):
    path, is_dir, reason = engine.check_key(key)
    if expected is None:
        assert reason is None, "%r was rejected: %s" % (key, reason)
        assert path is not None
        assert is_dir == key.endswith(b"/") or key == b""
        # an accepted path can never leave dest
        if path:
            assert not path.startswith("/")
            assert all(seg not in ("", ".", "..") for seg in path.split("/"))
    else:
        assert path is None
        assert reason is not None and expected in reason, "%r: %r" % (key, reason)


def test_display_escapes_controls_and_bad_bytes():
    assert engine.display(b"a\nb") == "a\\nb"
    assert engine.display(b"a\xffb") == "a\\\\xffb"
    assert engine.display("plain/name") == "plain/name"


@pytest.mark.parametrize("value,expected", [
    ("755", 0o755), ("0755", 0o755), ("100755", 0o755), ("0644", 0o644), ("4755", 0o755),
    ("7777", 0o777), ("", None), ("rwx", None), ("0x1ed", None), ("99", None), ("12345678", None),
])
def test_parse_mode(value, expected):
    assert engine.parse_mode(value) == expected


@pytest.mark.parametrize("value,expected", [
    ("1577934245", 1577934245 * 10 ** 9),
    ("1577934245.123456789", 1577934245123456789),
    ("1577934245.5", 1577934245500000000),
    ("2020-01-02T03:04:05Z", 1577934245 * 10 ** 9),
    ("2020-01-02T03:04:05.25Z", 1577934245250000000),
    ("2020-01-02T05:04:05+02:00", 1577934245 * 10 ** 9),
    ("2020-01-02T03:04:05.123456789123+00:00", 1577934245123456789),
    ("yesterday", None), ("", None), ("-5", None),
])
def test_parse_epoch_ns(value, expected):
    assert engine.parse_epoch_ns(value) == expected


def test_http_dates():
    assert engine.parse_http_date_ns("Thu, 02 Jan 2020 03:04:05 GMT") == 1577934245 * 10 ** 9
    assert engine.parse_http_date_ns("2020-01-02T03:04:05.000Z") == 1577934245 * 10 ** 9
    assert engine.parse_http_date_ns("garbage") is None


LM = {"last-modified": "Thu, 02 Jan 2020 03:04:05 GMT"}


def _attrs(meta, is_dir=False):
    headers = dict(LM)
    headers.update(("x-amz-meta-" + k, v) for k, v in meta.items())
    warnings = []
    return engine.object_attributes(headers, is_dir, warnings), warnings


def test_attributes_defaults():
    attrs = _attrs({})[0]
    assert (attrs.kind, attrs.mode, attrs.mtime_ns) == ("f", 0o644, 1577934245 * 10 ** 9)
    attrs = _attrs({}, is_dir=True)[0]
    assert (attrs.kind, attrs.mode) == ("d", 0o755)


def test_attributes_s3cmd():
    attrs = _attrs({"s3cmd-attrs": "atime:1/ctime:2/gid:0/gname:root/md5:x/mode:33261/mtime:1500000000/uid:0/uname:root"})[0]
    assert (attrs.mode, attrs.mtime_ns) == (0o755, 1500000000 * 10 ** 9)


def test_attributes_rclone_and_precedence():
    meta = {"mtime": "1577934245.123456789", "mode": "100750", "s3cmd-attrs": "mode:33188/mtime:1"}
    attrs = _attrs(meta)[0]
    assert (attrs.mode, attrs.mtime_ns) == (0o750, 1577934245123456789)


def test_attributes_bad_metadata_warns_and_falls_back():
    attrs, warnings = _attrs({"mode": "rwxr-xr-x", "mtime": "soon"})
    assert (attrs.mode, attrs.mtime_ns) == (0o644, 1577934245 * 10 ** 9)
    assert len(warnings) == 2


def test_attributes_setuid_dropped():
    attrs = _attrs({"s3cmd-attrs": "mode:%d" % 0o104755})[0]
    assert attrs.mode == 0o755


@pytest.mark.parametrize("meta,is_dir,expected", [
    ({"mode": "0666"}, False, 0o644), ({"mode": "0777"}, False, 0o755), ({"mode": "0000"}, False, 0o600),
    ({"mode": "0220"}, False, 0o600), ({"mode": "0400"}, False, 0o600), ({"mode": "0750"}, False, 0o750),
    ({"s3cmd-attrs": "mode:%d" % 0o100666}, False, 0o644),
    ({"mode": "0000"}, True, 0o700), ({"mode": "0555"}, True, 0o755), ({"mode": "0777"}, True, 0o755),
    ({"mode": "0500"}, True, 0o700), ({"s3cmd-attrs": "mode:%d" % 0o40777}, True, 0o755),
])
def test_attributes_never_group_or_world_write_and_owner_keeps_access(meta, is_dir, expected):
    assert _attrs(meta, is_dir)[0].mode == expected


def test_attributes_symlink_percent_decoded():
    attrs = _attrs({"symlink-target": "../lib/libfoo%25.so"})[0]
    assert (attrs.kind, attrs.target) == ("l", "../lib/libfoo%.so")


DEST = "/cvmfs/repo.example.org/sw"
ROOT = "/cvmfs/repo.example.org"


@pytest.mark.parametrize("path,target,verdict", [
    ("bin/tool", "../lib/tool", None),
    ("bin/tool", "tool-1.2", None),
    ("bin/tool", "./tool-1.2", None),
    ("bin/tool", "../../sw/bin/x", None),            # up to dest's parent, still in root
    ("bin/tool", "../../../repo.example.org/x", None),
    ("bin/tool", "/cvmfs/repo.example.org/sw/x", None),
    ("bin/tool", "/cvmfs/repo.example.org", None),
    ("top", ".", None),
    ("bin/tool", "../../../other.org/x", "outside"),
    ("bin/tool", "../../../../etc/passwd", "outside"),
    ("bin/tool", "/etc/passwd", "outside"),
    ("bin/tool", "/cvmfs/repo.example.org.evil/x", "outside"),
    ("bin/tool", "/cvmfs/repo.example.org/../x", "after a name"),
    ("bin/tool", "sub/../../x", "after a name"),
    ("bin/tool", "d/../../../..", "after a name"),
    ("bin/tool", "../" * 40, "climbs above /"),
    ("bin/tool", "", "empty"),
    ("bin/tool", "a\nb", "control character"),
    ("bin/tool", "x" * 5000, "longer than"),
])
def test_symlink_targets(path, target, verdict):
    reason = engine.check_symlink(path, target, DEST, ROOT)
    if verdict is None:
        assert reason is None, reason
    else:
        assert reason is not None and verdict in reason, reason


def test_symlink_escape_allowed():
    assert engine.check_symlink("a", "/etc/passwd", DEST, DEST, allow_escape=True) is None
    assert engine.check_symlink("a", "", DEST, DEST, allow_escape=True) is not None


@pytest.mark.parametrize("include,exclude,path,selected", [
    ([], [], "a/b", True),
    ([], ["*.tmp"], "a/b.tmp", True and False),
    ([], ["scratch"], "scratch/deep/file", False),
    ([], ["scratch"], "x/scratch", False and True or True),
    (["bin"], [], "bin/tool", True),
    (["bin"], [], "lib/x", False),
    (["*.so"], [], "lib/libx.so", True),
    (["lib"], ["lib/private"], "lib/private/x", False),
    (["lib"], ["lib/private"], "lib/public/x", True),
])
def test_filter(include, exclude, path, selected):
    assert engine.PathFilter(include, exclude).selected(path) is selected


class _Creds:
    def __init__(self, access_key, secret_key, token=None):
        self.access_key, self.secret_key, self.token = access_key, secret_key, token


@pytest.mark.parametrize("token", [None, "SESSIONTOKEN/with+chars="])
@pytest.mark.parametrize("path,query", [
    ("/bucket/cvmfs/dir/file.so", ""),
    ("/bucket/cvmfs/a%20b/%E2%82%AC%2B%3D", ""),
    ("/bucket", "continuation-token=1%2Fab%2Bc%3D&encoding-type=url&list-type=2&max-keys=1000&prefix=cvmfs%2F"),
])
def test_sigv4_matches_botocore(path, query, token):
    from unittest import mock
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    fixed = datetime.datetime(2026, 11, 23, 13, 4, 5)
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    request = AWSRequest(method="GET", url="http://127.0.0.1:7480" + path + ("?" + query if query else ""))
    request.context["payload_signing_enabled"] = True
    with mock.patch("botocore.auth.get_current_datetime", return_value=fixed):
        S3SigV4Auth(creds, "s3", "us-east-1").add_auth(request)
    signer = http.SigV4(lambda: _Creds(creds.access_key, creds.secret_key, token), "us-east-1",
                        clock=lambda: 1795439045.0)
    ours = dict(signer.sign("GET", "127.0.0.1:7480", path, query))
    assert ours["X-Amz-Date"] == request.headers["X-Amz-Date"] == "20261123T130405Z"
    assert ours["Authorization"] == request.headers["Authorization"]


def test_canonical_query_sorted_and_encoded():
    assert http.canonical_query({"prefix": "cvmfs/a b", "list-type": "2"}) == "list-type=2&prefix=cvmfs%2Fa%20b"


def test_endpoint_from_presigned_url():
    ep = http.Endpoint("http://127.0.0.1:8333/bkt/s3sync-endpoint-probe?X-Amz-Credential=AK%2F20261123%2Feu-west-9%2Fs3%2Faws4_request",
                       "s3sync-endpoint-probe")
    assert (ep.host, ep.port, ep.host_header, ep.base_path, ep.region) == ("127.0.0.1", 8333, "127.0.0.1:8333", "/bkt/", "eu-west-9")
    assert ep.object_path("a b/€") == "/bkt/a%20b/%E2%82%AC"
    assert ep.bucket_path() == "/bkt"
    virtual = http.Endpoint("https://bkt.s3.example.org/s3sync-endpoint-probe", "s3sync-endpoint-probe")
    assert (virtual.host_header, virtual.base_path, virtual.port, virtual.bucket_path()) == ("bkt.s3.example.org", "/", 443, "/")


def test_list_page_parsing_url_encoded_keys():
    body = (b'<?xml version="1.0"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            b'<EncodingType>url</EncodingType><IsTruncated>true</IsTruncated><NextContinuationToken>tok</NextContinuationToken>'
            b'<Contents><Key>cvmfs/a%0Ab%FF</Key><ETag>&quot;abc&quot;</ETag><Size>3</Size>'
            b'<LastModified>2026-11-23T13:04:05.000Z</LastModified></Contents></ListBucketResult>')
    objects, token = http.parse_list_page(body)
    assert token == "tok"
    assert [(o.key, o.size, o.etag, o.last_modified) for o in objects] == [
        (b"cvmfs/a\nb\xff", 3, "abc", "2026-11-23T13:04:05.000Z")]


def test_list_page_decodes_keys_as_encoding_type_url_defines():
    """encoding-type=url is form encoding: "+" stands for a space (AWS, SeaweedFS), a literal
    "+" comes as %2B, and RGW's %20 for a space means the same."""
    body = (b'<?xml version="1.0"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            b'<EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>'
            b'<Contents><Key>cvmfs/Transparent+Busy.ani</Key><Size>1</Size></Contents>'
            b'<Contents><Key>cvmfs/a%2Bb+c%20d</Key><Size>1</Size></Contents>'
            b'<Contents><Key>cvmfs/50%2525+x%26y</Key><Size>1</Size></Contents>'
            b'<Contents><Key>cvmfs%2Fcaf%C3%A9+%E2%82%AC</Key><Size>1</Size></Contents>'
            b'<CommonPrefixes><Prefix>cvmfs/dir+with%2Bplus/</Prefix></CommonPrefixes>'
            b'<CommonPrefixes><Prefix>cvmfs/x&amp;y/</Prefix></CommonPrefixes></ListBucketResult>')
    prefixes = []
    objects, token = http.parse_list_page(body, prefixes=prefixes)
    assert token is None
    assert [o.key for o in objects] == [b"cvmfs/Transparent Busy.ani", b"cvmfs/a+b c d", b"cvmfs/50%25 x&y",
                                        u"cvmfs/caf\u00e9 \u20ac".encode("utf-8")]
    assert prefixes == [b"cvmfs/dir with+plus/", b"cvmfs/x&y/"]
    unencoded = body.replace(b"<EncodingType>url</EncodingType>", b"")
    assert [o.key for o in http.parse_list_page(unencoded)[0]][:2] == [b"cvmfs/Transparent+Busy.ani", b"cvmfs/a%2Bb+c%20d"]


def test_list_page_survives_rgw_raw_prefix_echo():
    """RGW echoes a requested prefix unencoded: control characters as invalid character
    references, invalid UTF-8 as raw bytes. Keys must still come out byte-exact."""
    body = (b'<?xml version="1.0"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            b'<EncodingType>url</EncodingType><Prefix>cvmfs/a&#1;b\xff/</Prefix><IsTruncated>true</IsTruncated>'
            b'<NextContinuationToken>cvmfs/a&#1;b\xff/x</NextContinuationToken>'
            b'<Contents><Key>cvmfs/a%01b%FF/x</Key><ETag>&quot;e&quot;</ETag><Size>0</Size>'
            b'<LastModified>2026-11-23T13:04:05.000Z</LastModified></Contents></ListBucketResult>')
    objects, token = http.parse_list_page(body)
    assert [o.key for o in objects] == [b"cvmfs/a\x01b\xff/x"]
    assert http.uri_encode(token, safe="-_.~") == "cvmfs%2Fa%01b%FF%2Fx"
    raw_keys = body.replace(b"<EncodingType>url</EncodingType>", b"").replace(b"cvmfs/a%01b%FF/x", b"k&#27;\xfe")
    objects, token = http.parse_list_page(raw_keys)
    assert [o.key for o in objects] == [b"k\x1b\xfe"]
