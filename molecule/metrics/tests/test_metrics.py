"""Testinfra checks of the metrics scenario: CernVM-FS pinned at 2.12.0 and held by apt on both hosts,
and the metrics timers' files -- written after the service ran, valid Prometheus text (read with the
test suite's own parser), with the repository's real revision on the stratum-0 and the cache
metrics of the mounted repository on the client."""

import pytest

from tests.support import prom_text
from tests.support.testinfra_hosts import fresh_metrics

REPO = "lab-metrics.cvmfs.test"
PINNED = "2.12.0~1+debian12"


@pytest.mark.parametrize("which", ["stratum0", "client"])
def test_cvmfs_is_pinned_and_held(which, request):
    host = request.getfixturevalue(which)
    held = host.check_output("apt-mark showhold").split()
    assert {"cvmfs", "cvmfs-libs"} <= set(held), held
    if which == "stratum0":
        assert "cvmfs-server" in held
    preferences = host.file("/etc/apt/preferences.d/sharedsw-cvmfs.pref").content_string
    assert "Pin: version %s\n" % PINNED in preferences
    assert "Pin-Priority: 1001" in preferences
    policy = host.check_output("apt-cache policy cvmfs")
    assert "Installed: %s" % PINNED in policy and "Candidate: %s" % PINNED in policy, policy
    assert host.package("cvmfs").version == PINNED


def test_stratum0_metrics_carry_the_real_revision(stratum0):
    metrics = fresh_metrics(stratum0, "stratum0")
    header = stratum0.file("/srv/cvmfs/%s/.cvmfspublished" % REPO).content.split(b"\n--\n", 1)[0]
    revision = int([line[1:] for line in header.decode("ascii").splitlines() if line.startswith("S")][0])
    assert prom_text.value(metrics, "cvmfs_repository_revision", repository=REPO) == revision
    assert prom_text.value(metrics, "cvmfs_repository_check_success", repository=REPO) == 1
    assert prom_text.value(metrics, "cvmfs_whitelist_seconds_left", repository=REPO) > 0
    assert prom_text.value(metrics, "cvmfs_repository_in_transaction", repository=REPO) == 0
    assert metrics["cvmfs_repository_revision"]["type"] == "gauge"


def test_client_metrics_of_the_mounted_repository(client):
    client.check_output("cat /cvmfs/%s/new_repository", REPO)   # mounted (autofs mounts on access)
    metrics = fresh_metrics(client, "client")
    assert prom_text.value(metrics, "cvmfs_client_up", repository=REPO) == 1
    assert prom_text.value(metrics, "cvmfs_client_revision", repository=REPO) == \
        int(client.check_output("attr -qg revision /cvmfs/%s", REPO))
    assert prom_text.value(metrics, "cvmfs_client_cache_bytes", repository=REPO) > 0
    assert prom_text.value(metrics, "cvmfs_client_cache_limit_bytes", repository=REPO) > 0
    assert 0 <= prom_text.value(metrics, "cvmfs_client_cache_hit_ratio", repository=REPO) <= 1
    assert prom_text.value(metrics, "cvmfs_client_proxy_info", repository=REPO, proxy="DIRECT") == 1
