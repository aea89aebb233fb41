"""GlanceImages (the Glance side of image distribution), in-process with the real openstacksdk against
the OpenStack API TEST DOUBLE (tests/openstack_double), not a real Glance. Sources are files under a
scratch /cvmfs root; downloads over HTTP are tested against the real apache in tests/integration."""

import datetime
import hashlib
import os

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._image_fetch import fetch_verified
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._image_glance import GlanceImages, glance_name
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._image_list import CHUNK, PROP_LIST_ISSUED, ImageEntry
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._openstack import connect

ENDORSER = "images.example.org"


@pytest.fixture
def site(openstack_double, tmp_path):
    """A project's Glance (the double), a scratch /cvmfs, and helpers to make entries and run a sync."""

    class Site:
        double = openstack_double
        root = tmp_path / "cvmfs"
        conn = connect(openstack_double.cloud_config())

        def entry(self, name, version, data, **extra):
            folder = self.root / "images.example.org"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / ("%s-%s" % (name, version))).write_bytes(data)
            return ImageEntry(name, version, len(data), hashlib.sha256(data).hexdigest(),
                              path="/cvmfs/images.example.org/%s-%s" % (name, version), **extra)

        def glance(self, **options):
            return GlanceImages(self.conn, ENDORSER, **options)

        def sync(self, wanted, **options):
            glance = self.glance(**options)
            actions = glance.plan(wanted)
            glance.apply(actions, lambda e: fetch_verified(e, cvmfs_root=str(self.root)))
            return [(a["action"], a["glance_name"]) for a in actions]

        def state(self):
            return sorted((i["name"], i["status"]) for i in self.double.images.values() if i.get("endorser"))

    yield Site()
    Site.conn.close()


def test_upload_stores_the_exact_bytes_with_the_endorsement_properties(site):
    data = os.urandom(2 * CHUNK + 3)
    client = site.entry("client", "1", data, properties={"os_distro": "debian"})
    assert site.sync([client]) == [("upload", "client-1")]
    (stored,) = [i for i in site.double.images.values() if i.get("endorser")]
    assert site.double.image_data(stored["id"]) == data
    assert (stored["endorser"], stored["endorsed_name"], stored["endorsed_version"], stored["endorsed_sha256"]) == (
        ENDORSER, "client", "1", hashlib.sha256(data).hexdigest())
    assert stored["os_distro"] == "debian" and stored["visibility"] == "private"
    assert stored["disk_format"] == "qcow2" and stored["container_format"] == "bare"
    assert site.sync([client]) == [], "a second run changes nothing"


def test_new_version_is_uploaded_before_the_old_is_deactivated(site):
    old = site.entry("client", "1", b"old" * 100)
    site.sync([old])
    new = site.entry("client", "2", b"new" * 100)
    assert site.sync([new]) == [("upload", "client-2"), ("deactivate", "client-1")]
    assert site.state() == [("client-1", "deactivated"), ("client-2", "active")]
    # approved again: the old one comes back without a new upload
    assert site.sync([old, new]) == [("reactivate", "client-1")]
    assert site.state() == [("client-1", "active"), ("client-2", "active")]


def test_an_image_with_other_bytes_under_the_same_version_is_replaced(site):
    site.sync([site.entry("client", "1", b"a" * 50)])
    reissued = site.entry("client", "1", b"b" * 50)
    actions = site.sync([reissued])
    assert actions == [("upload", "client-1"), ("deactivate", "client-1")]
    active = [i for i in site.double.images.values() if i["status"] == "active" and i.get("endorser")]
    assert [i["endorsed_sha256"] for i in active] == [reissued.sha256]


def test_incomplete_uploads_are_deleted_and_foreign_images_untouched(site):
    client = site.entry("client", "1", b"c" * 64)
    stale = site.double._new_image({"name": "client-1", "endorser": ENDORSER, "endorsed_name": "client",
                                    "endorsed_version": "1", "endorsed_sha256": client.sha256})
    foreign = site.double.add_image("their-image", endorser="other.example.org", endorsed_name="client",
                                    endorsed_version="1")
    plain = site.double.add_image("debian-13")
    plan = [(a["action"], a["id"]) for a in site.glance().plan([client])]
    assert plan[0] == ("upload", None) and ("delete", stale["id"]) in plan
    site.sync([client])
    assert stale["id"] not in site.double.images
    assert site.double.images[foreign]["status"] == "active"
    assert site.double.images[plain]["status"] == "active"
    assert site.sync([]) == [("deactivate", "client-1")]
    assert site.double.images[foreign]["status"] == "active", "another endorser's image is never touched"


def test_visibility_and_property_drift_is_corrected_in_place(site):
    client = site.entry("client", "1", b"v" * 10, properties={"os_distro": "debian"})
    site.sync([client])
    changed = site.entry("client", "1", b"v" * 10, properties={"os_distro": "debian", "os_version": "12"})
    assert site.sync([changed], visibility="shared") == [("update", "client-1")]
    (stored,) = [i for i in site.double.images.values() if i.get("endorser")]
    assert (stored["visibility"], stored["os_version"]) == ("shared", "12")
    assert site.sync([changed], visibility="shared") == []


def test_plan_does_not_touch_glance(site):
    site.sync([site.entry("client", "1", b"p" * 10)])
    before = site.state()
    requests = len(site.double.requests)
    plan = site.glance().plan([site.entry("client", "2", b"q" * 10)])
    assert [a["action"] for a in plan] == ["upload", "deactivate"]
    assert site.state() == before
    assert all(method == "GET" for method, _path in site.double.requests[requests:])


def test_a_damaged_upload_is_detected_deleted_and_reported(site):
    client = site.entry("client", "1", os.urandom(5000))
    site.double.corrupt_uploads = 1
    with pytest.raises(CvmfsError, match="Failed to upload image client 1.*checksum"):
        site.sync([client])
    assert site.state() == [], "the damaged image must not stay in Glance"
    assert site.sync([client]) == [("upload", "client-1")]


def test_a_damaged_upload_is_caught_by_glance_hash_when_there_is_no_checksum(site):
    client = site.entry("client", "1", os.urandom(5000))
    site.double.corrupt_uploads = 1
    site.double.report_checksum = False
    with pytest.raises(CvmfsError, match="arrived damaged in Glance.*sha512.*it was deleted"):
        site.sync([client])
    assert site.state() == []


def test_a_failing_store_leaves_nothing_behind(site):
    client = site.entry("client", "1", b"f" * 100)
    site.double.fail_uploads = 1
    with pytest.raises(CvmfsError, match="Failed to upload image client 1.*500"):
        site.sync([client])
    assert site.state() == []


def test_a_source_that_does_not_match_is_never_uploaded(site):
    client = site.entry("client", "1", b"good" * 10)
    (site.root / "images.example.org" / "client-1").write_bytes(b"evil" * 10)
    with pytest.raises(CvmfsError, match="has SHA-256 .* not uploaded"):
        site.sync([client])
    assert site.state() == []
    assert not [m for m, p in site.double.requests if m == "POST" and p.startswith("/image")]


def _issued(day):
    return datetime.datetime(2026, 11, day, tzinfo=datetime.timezone.utc)


def test_a_list_older_than_the_last_accepted_is_refused(site):
    """Replay: the images record when the list they were synchronised from was issued; a list
    issued before that (an old, still valid, signed list) is refused before anything changes."""
    client = site.entry("client", "1", b"c" * 100)
    assert site.sync([client], list_issued=_issued(20)) == [("upload", "client-1")]
    (stored,) = [i for i in site.double.images.values() if i.get("endorser")]
    assert stored[PROP_LIST_ISSUED] == "2026-11-20T00:00:00+00:00"
    withdrawn_again = site.entry("old", "1", b"o" * 100)
    with pytest.raises(CvmfsError, match="issued at 2026-11-10T00:00:00\\+00:00, before the list last accepted "
                                         "here \\(issued at 2026-11-20T00:00:00\\+00:00"):
        site.glance(list_issued=_issued(10)).plan([client, withdrawn_again])
    assert site.state() == [("client-1", "active")]
    # the same list again changes nothing; a newer one moves the record forward on the images it keeps
    assert site.sync([client], list_issued=_issued(20)) == []
    assert site.sync([client], list_issued=_issued(22)) == [("update", "client-1")]
    with pytest.raises(CvmfsError, match="before the list last accepted here"):
        site.glance(list_issued=_issued(20)).plan([client])


def test_the_newest_record_counts_also_on_deactivated_images(site):
    old, new = site.entry("client", "1", b"a" * 40), site.entry("client", "2", b"b" * 40)
    site.sync([old], list_issued=_issued(5))
    assert site.sync([new], list_issued=_issued(15)) == [("upload", "client-2"), ("deactivate", "client-1")]
    # the old list that still endorsed client 1 would reactivate it
    with pytest.raises(CvmfsError, match="before the list last accepted here"):
        site.glance(list_issued=_issued(5)).plan([old])


def test_glance_name_template():
    item = ImageEntry("client", "2026.11", 1, "0" * 64, url="http://x/y")
    assert glance_name(item, "{name}-{version}") == "client-2026.11"
    with pytest.raises(CvmfsError, match="name_template.*use {name} and {version}"):
        glance_name(item, "{nam}")
