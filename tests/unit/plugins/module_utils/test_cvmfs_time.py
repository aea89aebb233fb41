"""_cvmfs_time: the time notations of CernVM-FS files (the fixture's stratum-1 stamps among them)."""

import datetime

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _cvmfs_format as fmt
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _cvmfs_time as cvtime
from tests.support.cvmfs_repo import (  # pylint: disable=unused-import
    pristine_repo,  # noqa: F401  (the pytest fixture: the committed fixture, untouched)
)
from tests.unit.plugins.module_utils.cvmfs_support import (  # pylint: disable=unused-import
    UTC,
    fails,
)


def test_last_snapshot_of_fixture(pristine_repo):
    text = pristine_repo.read(pristine_repo.stratum1, ".cvmfs_last_snapshot")
    expected = datetime.datetime.strptime(text.decode().strip().replace("UTC ", ""),
                                          "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC)
    assert cvtime.parse_snapshot_time(text) == expected
    status = fmt.parse_status_json(pristine_repo.read(pristine_repo.stratum1, ".cvmfs_status.json"))
    assert cvtime.parse_snapshot_time(status["last_snapshot"]) == expected


@pytest.mark.parametrize("text,expected", [
    (b"Tue Nov  3 01:02:03 UTC 2026\n", datetime.datetime(2026, 11, 3, 1, 2, 3, tzinfo=UTC)),
    (b"2026-11-03T01:02:03Z", datetime.datetime(2026, 11, 3, 1, 2, 3, tzinfo=UTC)),
    (b"1795432805", datetime.datetime(2026, 11, 23, 11, 20, 5, tzinfo=UTC)),
    (b"", None),
])
def test_snapshot_time_formats(text, expected):
    assert cvtime.parse_snapshot_time(text) == expected


@pytest.mark.parametrize("text", [b"yesterday", b"Mon Foo 23 11:20:05 UTC 2026", b"\xff\xfe"])
def test_snapshot_time_garbage(text):
    with fails("malformed"):
        cvtime.parse_snapshot_time(text)


# --------------------------------------------------------------------------- time

@pytest.mark.parametrize("value,expected", [
    (0, datetime.datetime(1970, 1, 1, tzinfo=UTC)),
    ("1795432781", datetime.datetime(2026, 11, 23, 11, 19, 41, tzinfo=UTC)),
    ("2026-12-24T08:00:00Z", datetime.datetime(2026, 12, 24, 8, tzinfo=UTC)),
    ("2026-12-24 09:00:00+01:00", datetime.datetime(2026, 12, 24, 8, tzinfo=UTC)),
    ("2026-12-24T08:00:00", datetime.datetime(2026, 12, 24, 8, tzinfo=UTC)),
    (datetime.datetime(2026, 12, 24, 8), datetime.datetime(2026, 12, 24, 8, tzinfo=UTC)),
])
def test_utc_datetime(value, expected):
    assert cvtime.utc_datetime(value) == expected


def test_utc_datetime_rejects_text():
    with pytest.raises(ValueError, match="neither seconds since the epoch nor an ISO 8601"):
        cvtime.utc_datetime("next tuesday")
