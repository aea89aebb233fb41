"""Metadata parsing of the S3 sync engine (_s3_metadata): pure, no server."""

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _s3_metadata as metadata


@pytest.mark.parametrize("value,expected", [
    ("755", 0o755), ("0755", 0o755), ("100755", 0o755), ("0644", 0o644), ("4755", 0o755),
    ("7777", 0o777), ("", None), ("rwx", None), ("0x1ed", None), ("99", None), ("12345678", None),
])
def test_parse_mode(value, expected):
    assert metadata.parse_mode(value) == expected


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
    assert metadata.parse_epoch_ns(value) == expected


def test_http_dates():
    assert metadata.parse_http_date_ns("Thu, 02 Jan 2020 03:04:05 GMT") == 1577934245 * 10 ** 9
    assert metadata.parse_http_date_ns("2020-01-02T03:04:05.000Z") == 1577934245 * 10 ** 9
    assert metadata.parse_http_date_ns("garbage") is None


LM = {"last-modified": "Thu, 02 Jan 2020 03:04:05 GMT"}


def _attrs(meta, is_dir=False):
    headers = dict(LM)
    headers.update(("x-amz-meta-" + k, v) for k, v in meta.items())
    warnings = []
    return metadata.object_attributes(headers, is_dir, warnings), warnings


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
