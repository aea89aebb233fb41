"""_health_metrics (the metrics timer's program) and _metrics_text (the Prometheus text format):
formatting, the atomic write, and each metric from fixture data -- the real CernVM-FS repository
fixture laid out as a stratum-0's and a stratum-1's storage, the publish job's and the consumer's
status files as those programs write them, and cvmfs_talk answers as CernVM-FS 2.12 gives them.
Every text the program writes is read back with an independent parser (tests/support/prom_text)."""

import datetime
import json
import os
import shutil

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _health_metrics as hm
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _metrics_text as mt
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._cvmfs_state import CvmfsPaths
from tests.support import prom_text
from tests.support.cvmfs_repo import (  # pylint: disable=unused-import
    cvmfs_repo,  # noqa: F401  (the pytest fixture: re-keyed copy)
    flip_byte,
    pristine_repo,  # noqa: F401  (the pytest fixture: the committed fixture, untouched)
    write,
)
from tests.support.server_tree import make_stratum0, stratum0_conf
from tests.support.server_tree import write as write_text


# ---------------------------------------------------------------------------- the text format

def test_families_render_with_help_type_and_escaped_labels():
    families = mt.Families([("cvmfs_a", "gauge", 'Help with \\ and\nnewline.'),
                            ("cvmfs_b_total", "counter", "A counter."),
                            ("cvmfs_unused", "gauge", "Never set.")])
    families.set("cvmfs_a", 3, repository='we"ird\\name\n')
    families.set("cvmfs_a", 0.25, repository="plain")
    families.set("cvmfs_b_total", True)
    text = families.render()
    assert text.startswith('# HELP cvmfs_a Help with \\\\ and\\nnewline.\n# TYPE cvmfs_a gauge\n')
    parsed = prom_text.parse(text)
    assert prom_text.value(parsed, "cvmfs_a", repository='we"ird\\name\n') == 3
    assert prom_text.value(parsed, "cvmfs_a", repository="plain") == 0.25
    assert parsed["cvmfs_b_total"]["type"] == "counter"
    assert prom_text.value(parsed, "cvmfs_b_total") == 1
    assert "cvmfs_unused" not in text  # no samples: no HELP/TYPE lines either


def test_unknown_metric_names_are_refused():
    families = mt.Families([("cvmfs_a", "gauge", "A.")])
    with pytest.raises(KeyError):
        families.set("cvmfs_b", 1)


def test_special_float_values_are_spelled_as_the_format_wants():
    families = mt.Families([("cvmfs_a", "gauge", "A.")])
    families.set("cvmfs_a", float("inf"), k="inf")
    families.set("cvmfs_a", float("nan"), k="nan")
    families.set("cvmfs_a", 12345678901, k="big")
    text = families.render()
    assert 'cvmfs_a{k="inf"} +Inf\n' in text and 'cvmfs_a{k="nan"} NaN\n' in text
    assert 'cvmfs_a{k="big"} 12345678901\n' in text


def test_write_replaces_the_file_in_one_rename_from_a_name_the_collector_ignores(tmp_path, monkeypatch):
    target = tmp_path / "sharedsw_cvmfs_stratum0.prom"
    target.write_text("old\n")
    renames = []
    real_rename = os.rename

    def rename(source, destination):
        renames.append((os.path.basename(source), os.path.basename(destination), target.read_text()))
        real_rename(source, destination)

    monkeypatch.setattr(os, "rename", rename)
    mt.write_textfile(str(target), "cvmfs_x 1\n")
    assert target.read_text() == "cvmfs_x 1\n"
    (source, destination, during), = renames
    assert destination == target.name and during == "old\n"   # the old file whole until the rename
    assert not source.endswith(".prom")                        # node_exporter reads *.prom only
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "m.prom"
    target.write_text("old\n")

    def broken_rename(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(os, "rename", broken_rename)
    with pytest.raises(OSError):
        mt.write_textfile(str(target), "new\n")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.prom"]


# ---------------------------------------------------------------------------- server repositories

def effective_expiry(repo):
    """Clients judge the whitelist expiry to the hour (minutes and seconds dropped)."""
    return repo.whitelist_expires.replace(minute=0, second=0)


def server_tree(tmp_path, repo, which="stratum0", stratum0_storage=None):
    """A host holding ``repo`` as cvmfs_server leaves it: ``server.conf`` (and ``replica.conf`` for a
    stratum-1) pointing at a copy of the fixture's storage, keys in ``<etc>/keys``."""
    etc, spool = tmp_path / "etc", tmp_path / "spool"
    storage = repo.copy(which, tmp_path / "srv" / repo.name)
    os.makedirs(str(etc / "keys"))
    shutil.copy(repo.pub, str(etc / "keys" / (repo.name + ".pub")))
    upstream = "local,%s/data/txn,%s" % (storage, storage)
    if which == "stratum0":
        make_stratum0(etc, spool, repo.name, conf=stratum0_conf(repo.name, upstream=upstream,
                                                                CVMFS_PUBLIC_KEY=str(etc / "keys" / (repo.name + ".pub"))))
    else:
        conf = stratum0_conf(repo.name, upstream=upstream, CVMFS_STRATUM1="http://localhost/cvmfs/" + repo.name,
                             CVMFS_PUBLIC_KEY=str(etc / "keys"))
        conf = conf.replace("CVMFS_STRATUM0=http://localhost/cvmfs/%s" % repo.name,
                            "CVMFS_STRATUM0=file://%s" % stratum0_storage)
        make_stratum0(etc, spool, repo.name, conf=conf)
        write_text(str(etc / "repositories.d" / repo.name / "replica.conf"), "CVMFS_NUM_WORKERS=16\n")
    return CvmfsPaths(etc_dir=str(etc), spool_dir=str(spool), proc_locks=str(tmp_path / "locks")), storage


def collect(kind, paths, now, **kwargs):
    return prom_text.parse(hm.collect(kind, now=now, paths=paths, **kwargs).render())


def test_stratum0_revision_publish_age_and_whitelist_from_the_real_repository(pristine_repo, tmp_path):
    paths, _storage = server_tree(tmp_path, pristine_repo)
    now = pristine_repo.valid_time
    parsed = collect("stratum0", paths, now)
    name = pristine_repo.name
    assert prom_text.value(parsed, "cvmfs_repository_check_success", repository=name) == 1
    assert prom_text.value(parsed, "cvmfs_repository_revision", repository=name) == pristine_repo.revision
    published = int(pristine_repo.manifest_lines["T"])
    assert prom_text.value(parsed, "cvmfs_repository_published_timestamp_seconds", repository=name) == published
    assert prom_text.value(parsed, "cvmfs_repository_seconds_since_publish", repository=name) == \
        int(now.timestamp()) - published
    assert prom_text.value(parsed, "cvmfs_whitelist_seconds_left", repository=name) == \
        int((effective_expiry(pristine_repo) - now).total_seconds())
    assert prom_text.value(parsed, "cvmfs_repository_in_transaction", repository=name) == 0
    assert "cvmfs_replication_revisions_behind" not in parsed   # a stratum-0 has no upstream
    assert prom_text.value(parsed, "cvmfs_metrics_last_run_timestamp_seconds") == int(now.timestamp())


def test_open_transaction_is_reported(pristine_repo, tmp_path):
    paths, _storage = server_tree(tmp_path, pristine_repo)
    write_text(os.path.join(paths.spool_dir, pristine_repo.name, "in_transaction.lock"), "")
    parsed = collect("stratum0", paths, pristine_repo.valid_time)
    assert prom_text.value(parsed, "cvmfs_repository_in_transaction", repository=pristine_repo.name) == 1


def test_a_manifest_that_does_not_verify_is_a_failed_check_without_a_revision(cvmfs_repo, tmp_path):
    paths, storage = server_tree(tmp_path, cvmfs_repo)
    manifest = os.path.join(storage, ".cvmfspublished")
    with open(manifest, "rb") as handle:
        data = handle.read()
    write(manifest, flip_byte(data, len(data) - 1))   # damage the signature
    parsed = collect("stratum0", paths, cvmfs_repo.valid_time)
    name = cvmfs_repo.name
    assert prom_text.value(parsed, "cvmfs_repository_check_success", repository=name) == 0
    assert prom_text.value(parsed, "cvmfs_repository_check_failure", repository=name, reason="bad_signature") == 1
    assert "cvmfs_repository_revision" not in parsed


def test_an_expired_whitelist_fails_the_check_and_counts_below_zero(pristine_repo, tmp_path):
    paths, _storage = server_tree(tmp_path, pristine_repo)
    now = pristine_repo.whitelist_expires + datetime.timedelta(days=2)
    parsed = collect("stratum0", paths, now)
    name = pristine_repo.name
    assert prom_text.value(parsed, "cvmfs_repository_check_success", repository=name) == 0
    assert prom_text.value(parsed, "cvmfs_repository_check_failure", repository=name,
                           reason="whitelist_expired") == 1
    left = prom_text.value(parsed, "cvmfs_whitelist_seconds_left", repository=name)
    assert left == int((effective_expiry(pristine_repo) - now).total_seconds()) < 0


def test_a_missing_public_key_is_a_failed_check_not_a_crash(pristine_repo, tmp_path):
    paths, _storage = server_tree(tmp_path, pristine_repo)
    os.unlink(os.path.join(paths.etc_dir, "keys", pristine_repo.name + ".pub"))
    parsed = collect("stratum0", paths, pristine_repo.valid_time)
    assert prom_text.value(parsed, "cvmfs_repository_check_success", repository=pristine_repo.name) == 0


def test_stratum1_in_sync_with_its_snapshot_age(pristine_repo, tmp_path):
    stratum0 = pristine_repo.copy("stratum0", tmp_path / "upstream")
    paths, storage = server_tree(tmp_path, pristine_repo, "stratum1", stratum0_storage=stratum0)
    now = pristine_repo.valid_time
    parsed = collect("stratum1", paths, now)
    name = pristine_repo.name
    with open(os.path.join(storage, ".cvmfs_last_snapshot")) as handle:
        snapshot = datetime.datetime.strptime(handle.read().strip(), "%a %b %d %H:%M:%S UTC %Y").replace(
            tzinfo=datetime.timezone.utc)
    assert prom_text.value(parsed, "cvmfs_repository_check_success", repository=name) == 1
    assert prom_text.value(parsed, "cvmfs_replication_revisions_behind", repository=name) == 0
    assert prom_text.value(parsed, "cvmfs_replication_stratum0_revision", repository=name) == pristine_repo.revision
    assert prom_text.value(parsed, "cvmfs_snapshot_age_seconds", repository=name) == \
        int((now - snapshot).total_seconds())
    assert prom_text.value(parsed, "cvmfs_snapshot_in_progress", repository=name) == 0


def test_stratum1_behind_its_stratum0(cvmfs_repo, tmp_path):
    stratum0 = cvmfs_repo.copy("stratum0", tmp_path / "upstream")
    ahead = cvmfs_repo.revision + 2
    published = int(cvmfs_repo.manifest_lines["T"]) + 600
    write(os.path.join(stratum0, ".cvmfspublished"),
          cvmfs_repo.sign_manifest(cvmfs_repo.manifest_body(S=str(ahead), T=str(published))))
    paths, _storage = server_tree(tmp_path, cvmfs_repo, "stratum1", stratum0_storage=stratum0)
    parsed = collect("stratum1", paths, cvmfs_repo.valid_time)
    name = cvmfs_repo.name
    assert prom_text.value(parsed, "cvmfs_replication_revisions_behind", repository=name) == 2
    assert prom_text.value(parsed, "cvmfs_replication_stratum0_revision", repository=name) == ahead
    assert prom_text.value(parsed, "cvmfs_replication_lag_seconds", repository=name) == 600
    assert prom_text.value(parsed, "cvmfs_repository_revision", repository=name) == cvmfs_repo.revision


def test_each_kind_reports_only_its_own_repositories(pristine_repo, tmp_path):
    paths, _storage = server_tree(tmp_path, pristine_repo)
    parsed = collect("stratum1", paths, pristine_repo.valid_time)
    assert "cvmfs_repository_check_success" not in parsed   # the stratum-0's repository is not a replica
    parsed = collect("publisher", paths, pristine_repo.valid_time, publish_state_dir=str(tmp_path / "none"))
    assert "cvmfs_repository_check_success" not in parsed   # nor one published through a gateway


# ---------------------------------------------------------------------------- publisher status files

LAST_RUN = {"repository": "sw.example.org", "lease": "sw.example.org/", "published": True, "outcome": "failed",
            "exit_status": 1, "started": "2026-12-07T10:00:00Z", "finished": "2026-12-07T10:01:05Z",
            "seconds": 65.25, "message": "sync failed"}
EVENTS = {"repository": "sw.example.org", "queue": "cvmfs-sw_example_org", "state": "idle", "connected": True,
          "counters": {"events_received": 12, "publishes": 3, "failures": 1, "messages_received": 10},
          "held_bytes": {"now": 2048, "max": 4096}, "last_batch": None}


def test_publish_job_and_consumer_status(tmp_path):
    state = tmp_path / "publish"
    write_text(str(state / "sw.example.org" / "last-run.json"), json.dumps(LAST_RUN))
    write_text(str(state / "sw.example.org" / "events-status.json"), json.dumps(EVENTS))
    write_text(str(state / "other.example.org" / "last-run.json"),
               json.dumps(dict(LAST_RUN, repository="other.example.org", outcome="ok", exit_status=0, seconds=2)))
    now = datetime.datetime(2026, 12, 7, 11, 0, tzinfo=datetime.timezone.utc)
    parsed = collect("publisher", CvmfsPaths(etc_dir=str(tmp_path / "etc")), now, publish_state_dir=str(state))
    repo = "sw.example.org"
    assert prom_text.value(parsed, "cvmfs_publish_last_success", repository=repo) == 0
    assert prom_text.value(parsed, "cvmfs_publish_last_success", repository="other.example.org") == 1
    assert prom_text.value(parsed, "cvmfs_publish_last_exit_status", repository=repo) == 1
    assert prom_text.value(parsed, "cvmfs_publish_last_duration_seconds", repository=repo) == 65.25
    assert prom_text.value(parsed, "cvmfs_publish_last_finished_timestamp_seconds", repository=repo) == \
        datetime.datetime(2026, 12, 7, 10, 1, 5, tzinfo=datetime.timezone.utc).timestamp()
    assert prom_text.value(parsed, "cvmfs_consumer_connected", repository=repo) == 1
    assert prom_text.value(parsed, "cvmfs_consumer_held_bytes", repository=repo) == 2048
    assert prom_text.value(parsed, "cvmfs_consumer_failures_total", repository=repo) == 1
    assert prom_text.value(parsed, "cvmfs_consumer_publishes_total", repository=repo) == 3
    assert prom_text.value(parsed, "cvmfs_consumer_events_received_total", repository=repo) == 12
    assert "repository=\"other.example.org\"" not in "".join(
        str(s) for s in parsed.get("cvmfs_consumer_connected", {}).get("samples", []))


def test_the_consumer_queue_depth_with_when_it_was_asked(tmp_path):
    state = tmp_path / "publish"
    depth = {"messages": 16, "checked": "2026-12-07T10:59:30.250Z", "error": None}
    write_text(str(state / "sw.example.org" / "events-status.json"), json.dumps(dict(EVENTS, queue_depth=depth)))
    never = dict(EVENTS, repository="other.example.org", queue_depth={"messages": None, "checked": None, "error": None})
    write_text(str(state / "other.example.org" / "events-status.json"), json.dumps(never))
    now = datetime.datetime(2026, 12, 7, 11, 0, tzinfo=datetime.timezone.utc)
    parsed = collect("publisher", CvmfsPaths(etc_dir=str(tmp_path / "etc")), now, publish_state_dir=str(state))
    labels = {"repository": "sw.example.org", "queue": "cvmfs-sw_example_org"}
    assert prom_text.value(parsed, "cvmfs_consumer_queue_messages", **labels) == 16
    assert prom_text.value(parsed, "cvmfs_consumer_queue_checked_timestamp_seconds", **labels) == \
        datetime.datetime(2026, 12, 7, 10, 59, 30, 250000, tzinfo=datetime.timezone.utc).timestamp()
    assert parsed["cvmfs_consumer_queue_messages"]["type"] == "gauge"
    assert len(parsed["cvmfs_consumer_queue_messages"]["samples"]) == 1   # never asked: no sample


def test_an_unreadable_status_file_is_skipped(tmp_path):
    state = tmp_path / "publish"
    write_text(str(state / "sw.example.org" / "last-run.json"), "{not json")
    parsed = collect("publisher", CvmfsPaths(etc_dir=str(tmp_path / "etc")),
                     datetime.datetime(2026, 12, 7, tzinfo=datetime.timezone.utc), publish_state_dir=str(state))
    assert "cvmfs_publish_last_success" not in parsed
    assert "cvmfs_metrics_last_run_timestamp_seconds" in parsed


# ---------------------------------------------------------------------------- clients (cvmfs_talk)

# what cvmfs_talk -i <repo> answered on a CernVM-FS 2.12.0 client of the lab
TALK = {
    "revision": "7\n",
    "cache size": "Current cache size is 0MB (17535 Bytes), pinned: 0MB (16384 Bytes)\n",
    "cache limit get": "4000\n",
    "proxy info": "Load-balance groups:\n[0] http://squid.example.org:3128\n[1] DIRECT\n"
                  "Active proxy: [0] http://squid.example.org:3128\n",
    "internal affairs": "cache.n_certificate_hits|0|Number of certificate hits\n"
                        "download.n_requests|2|Number of requests\n"
                        "fetch.n_downloads|1|overall number of downloaded files (incl. catalogs, chunks)\n"
                        "fetch.n_invocations|4|overall number of object requests (incl. catalogs, chunks)\n"
                        "inode_cache.sz_allocated|1663672|Number of allocated bytes \n",
}
MOUNTS = ("sysfs /sys sysfs rw,nosuid 0 0\n"
          "cvmfs2 /cvmfs/a.example.org fuse ro,nosuid,nodev,relatime,user_id=0,group_id=0 0 0\n"
          "cvmfs2 /cvmfs/b.example.org fuse ro,nosuid,nodev 0 0\n"
          "/dev/sda1 /srv ext4 rw 0 0\n")


def test_client_metrics_of_each_mounted_repository(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text(MOUNTS)
    asked = []

    def talk(repository, command):
        asked.append(repository)
        return None if repository == "b.example.org" else TALK[command]

    parsed = collect("client", None, datetime.datetime(2026, 12, 7, tzinfo=datetime.timezone.utc), talk=talk,
                     mounts_file=str(mounts))
    repo = "a.example.org"
    assert sorted(set(asked)) == ["a.example.org", "b.example.org"]
    assert prom_text.value(parsed, "cvmfs_client_up", repository=repo) == 1
    assert prom_text.value(parsed, "cvmfs_client_up", repository="b.example.org") == 0
    assert prom_text.value(parsed, "cvmfs_client_revision", repository=repo) == 7
    assert prom_text.value(parsed, "cvmfs_client_cache_bytes", repository=repo) == 17535
    assert prom_text.value(parsed, "cvmfs_client_cache_pinned_bytes", repository=repo) == 16384
    assert prom_text.value(parsed, "cvmfs_client_cache_limit_bytes", repository=repo) == 4000 * 1024 * 1024
    assert prom_text.value(parsed, "cvmfs_client_cache_hit_ratio", repository=repo) == 0.75
    assert prom_text.value(parsed, "cvmfs_client_proxy_info", repository=repo,
                           proxy="http://squid.example.org:3128") == 1
    assert len(parsed["cvmfs_client_revision"]["samples"]) == 1   # nothing more for the silent one


def test_main_writes_the_file(pristine_repo, tmp_path, monkeypatch):
    paths, _storage = server_tree(tmp_path, pristine_repo)
    monkeypatch.setattr(hm, "CvmfsPaths", lambda: paths)
    output = tmp_path / "out" / "sharedsw_cvmfs_stratum0.prom"
    output.parent.mkdir()
    assert hm.main(["--kind", "stratum0", "--output", str(output)]) == 0
    parsed = prom_text.parse(output.read_text())
    # the real clock: the fixture's whitelist may have expired by now, the revision is known anyway
    assert "cvmfs_repository_check_success" in parsed
    assert hm.main(["--kind", "stratum0", "--output", str(tmp_path / "missing" / "x.prom")]) == 1
