"""SigV4, URL encoding and listing parsing of the S3 hot path (_s3_http): no server."""

import datetime

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _s3_http as http


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
