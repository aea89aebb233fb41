"""Unit tests of _image_list: list validation, validity in time, site approval, entries of local files."""

import datetime
import hashlib
import os

import pytest
import yaml

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _image_list as imagelist
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from tests.unit.plugins.module_utils.image_support import (  # pylint: disable=unused-import
    ENDORSER,
    NOW,
    entry,
    image_list,
)


# --------------------------------------------------------------------------- list contents

@pytest.mark.parametrize("data, message", [
    (image_list(endorser="someone.else"), "signed with the key of endorser images.example.org but says.*someone.else"),
    (image_list(expires="2026-01-01T00:00:00Z"), "expired at 2026-01-01T00:00:00\\+00:00; ask the endorser"),
    (image_list(expires="next tuesday"), "not a date and time"),
    (image_list(format=2), "format 2; this collection reads format 1"),
    (image_list(signer="x"), "unknown key.*signer"),
    (b"- just\n- a list\n", "must be a mapping"),
    (b"format: [", "not valid YAML"),
    (image_list(images={"a": 1}), "images must be a list"),
    (image_list(entry(version=2026.1)), "version must be a string; quote it"),
    (image_list(entry(name="bad name")), "name 'bad name' must be"),
    (image_list(entry(size=0)), "size must be the number of bytes"),
    (image_list(entry(size=True)), "size must be the number of bytes"),
    (image_list(entry(sha256="abc")), "sha256 must be 64 hexadecimal"),
    (image_list(entry(path="/cvmfs/repo/x")), "exactly one source"),
    (image_list(entry(url=None)), "exactly one source"),
    (image_list(entry(url="ftp://host/x")), "must be an http:// or https:// URL"),
    (image_list(entry(url=None, path="/srv/x.qcow2")), "must be a file under /cvmfs/"),
    (image_list(entry(url=None, path="/cvmfs/repo/../../etc/shadow")), "no '.', '..'"),
    (image_list(entry(disk_format="exe")), "disk_format 'exe' is not one of"),
    (image_list(entry(container_format="zip")), "container_format 'zip' is not one of"),
    (image_list(entry(properties={"visibility": "public"})), "property visibility is set by Glance"),
    (image_list(entry(properties={"endorser": "me"})), "property endorser is set by Glance or by this collection"),
    (image_list(entry(properties={"os_version": 12})), "property os_version must be a string"),
    (image_list(entry(checksum="x")), "unknown key.*checksum"),
    (image_list(entry(), entry()), "image client version 2026.11 appears twice"),
])
def test_bad_lists_are_refused_with_the_reason(data, message):
    with pytest.raises(CvmfsError, match=message):
        imagelist.parse_image_list(data, ENDORSER, now=NOW)


@pytest.mark.parametrize("top, max_age, message", [
    ({"expires": None}, None, "has no expires: it would stay valid forever; ask the endorser to sign lists with an "
                              "expiry, or set max_age"),
    ({"issued": None}, None, "has no issued"),
    ({"issued": None, "expires": None}, None, "has no issued"),
    ({"issued": "2026-11-23T00:06:00Z"}, None, "issued at 2026-11-23T00:06:00\\+00:00, after now"),
    ({"issued": "soon"}, None, "issued: 'soon' is not a date and time"),
    # with a maximum age: issued 2026-11-20 12:00, 2 days are over at 2026-11-22 12:00, before NOW
    ({"expires": None}, datetime.timedelta(days=2), "issued at 2026-11-20T12:00:00\\+00:00 is older than max_age"),
    ({}, datetime.timedelta(days=2), "is older than max_age"),
])
def test_lists_without_a_limited_lifetime_are_refused(top, max_age, message):
    with pytest.raises(CvmfsError, match=message):
        imagelist.parse_image_list(image_list(**top), ENDORSER, now=NOW, max_age=max_age)


def test_a_maximum_age_stands_in_for_a_missing_expiry():
    parsed = imagelist.parse_image_list(image_list(expires=None), ENDORSER, now=NOW, max_age=datetime.timedelta(days=7))
    assert parsed.issued == datetime.datetime(2026, 11, 20, 12, tzinfo=datetime.timezone.utc)
    assert parsed.expires == datetime.datetime(2026, 11, 27, 12, tzinfo=datetime.timezone.utc)
    # both given: the earlier end counts
    parsed = imagelist.parse_image_list(image_list(), ENDORSER, now=NOW, max_age=datetime.timedelta(days=7))
    assert parsed.expires == datetime.datetime(2026, 11, 27, 12, tzinfo=datetime.timezone.utc)
    parsed = imagelist.parse_image_list(image_list(), ENDORSER, now=NOW, max_age=datetime.timedelta(days=90))
    assert parsed.expires == datetime.datetime(2026, 12, 31, tzinfo=datetime.timezone.utc)


def test_a_list_issued_a_moment_ahead_of_this_clock_is_accepted():
    """Clocks differ: up to five minutes ahead is taken as skew, not as a list from the future."""
    parsed = imagelist.parse_image_list(image_list(issued="2026-11-23T00:04:59Z"), ENDORSER, now=NOW)
    assert parsed.issued.minute == 4


def test_expiry_in_the_future_and_date_forms():
    for value in ("2027-01-01T00:00:00Z", "2027-01-01", datetime.date(2027, 1, 1), "2027-01-01T01:00:00+01:00"):
        raw = yaml.safe_load(image_list())
        raw["expires"] = value
        parsed = imagelist.parse_image_list(yaml.safe_dump(raw).encode(), ENDORSER, now=NOW)
        assert parsed.expires.year == 2027 or parsed.expires.isoformat().startswith("2027")


def test_an_empty_list_endorses_nothing():
    assert imagelist.parse_image_list(image_list(images=[]), ENDORSER, now=NOW).images == []


def test_entry_defaults_and_properties():
    parsed = imagelist.parse_image_list(image_list(entry(properties={"os_distro": "debian", "hw_disk_bus": "scsi"},
                                                         sha256="AB" * 32)), ENDORSER, now=NOW)
    item = parsed.images[0]
    assert (item.disk_format, item.container_format, item.sha256) == ("qcow2", "bare", "ab" * 32)
    assert item.properties == {"os_distro": "debian", "hw_disk_bus": "scsi"}


# --------------------------------------------------------------------------- site approval

def test_select_takes_the_intersection_and_reports_unmatched():
    parsed = imagelist.parse_image_list(image_list(entry("client", "1"), entry("client", "2"), entry("s1", "1")),
                                        ENDORSER, now=NOW)
    wanted, unmatched = imagelist.select(parsed, [{"name": "client"}, {"name": "s1", "version": "9"},
                                                  {"name": "squid"}])
    assert [e.key for e in wanted] == [("client", "1"), ("client", "2")]
    assert unmatched == [{"name": "s1", "version": "9"}, {"name": "squid", "version": None}]
    wanted, unmatched = imagelist.select(parsed, [{"name": "client", "version": "2"}, {"name": "client"}])
    assert unmatched == []
    assert [e.key for e in wanted] == [("client", "2"), ("client", "1")]
    with pytest.raises(CvmfsError, match="approved entry #1 needs a name"):
        imagelist.select(parsed, [{"version": "1"}])
    with pytest.raises(CvmfsError, match="version must be a string"):
        imagelist.select(parsed, [{"name": "client", "version": 2.0}])


def test_describe_file_makes_a_valid_entry(tmp_path):
    data = os.urandom(3000)
    (tmp_path / "img").write_bytes(data)
    described = imagelist.describe_file(str(tmp_path / "img"), "client", "2026.11", cvmfs_path="/cvmfs/r/img")
    assert described == {"name": "client", "version": "2026.11", "size": 3000,
                         "sha256": hashlib.sha256(data).hexdigest(), "disk_format": "qcow2",
                         "container_format": "bare", "path": "/cvmfs/r/img"}
