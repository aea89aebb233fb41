"""Testinfra checks of the preinstalled scenario: CernVM-FS came with the image, the role added no
package source, and the repository it made is served."""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))  # for tests.support

from tests.support.testinfra_hosts import lab_host, manifest_revision  # noqa: E402  pylint: disable=wrong-import-position

REPO = "pre.cvmfs.test"
host = lab_host("pre-s0")


def test_no_cernvm_package_source_configured(host):
    found = host.run("grep -rl bookworm-prod /etc/apt/sources.list /etc/apt/sources.list.d/").stdout.split()
    assert found == [], "the role configured a CernVM-FS package source on a preinstalled image: %s" % found


def test_the_image_packages_are_the_ones_used(host):
    assert host.package("cvmfs-server").is_installed
    assert not host.package("cvmfs-gateway").is_installed


def test_repository_made_and_served(host):
    assert manifest_revision(host, REPO) >= 1
    assert host.run("curl -sSf -o /dev/null http://localhost/cvmfs/%s/.cvmfswhitelist" % REPO).rc == 0
