"""The lab hosts of a molecule scenario as testinfra fixtures, for its tests/conftest.py.

A scenario names its hosts by their part in the test, one line each::

    proxy = lab_host("sq-proxy")

molecule's verifier runs pytest from the scenario's directory, so the conftest puts the checkout
on ``sys.path`` before importing this module.
"""

import pytest
import testinfra

from tests.support import prom_text

METRICS_DIR = "/var/lib/prometheus/node-exporter"


def lab_host(name):
    """A module-scoped fixture: the host ``name`` of molecule's inventory, reached through Ansible."""
    def host_fixture(request):
        return testinfra.get_host("ansible://" + name, ansible_inventory=request.config.option.ansible_inventory)
    host_fixture.__doc__ = "The lab host %s of molecule's inventory." % name
    return pytest.fixture(scope="module")(host_fixture)


def manifest_revision(host, repo, storage="/srv/cvmfs"):
    """The revision (``S`` line) of ``repo``'s ``.cvmfspublished`` in ``storage`` on ``host``.

    A real manifest ends with a binary signature after the ``--`` line: only the header before it
    is text, so the file is read as bytes.
    """
    data = host.file("%s/%s/.cvmfspublished" % (storage, repo)).content
    header = data.split(b"\n--\n", 1)[0].decode("ascii")
    return int([line[1:] for line in header.splitlines() if line.startswith("S")][0])


def fresh_metrics(host, kind, metrics_dir=METRICS_DIR):
    """Run the metrics service of node type ``kind`` once more on ``host`` (as its timer does),
    check it replaced its file (a new inode) and left nothing else in the directory, and return
    the file parsed as Prometheus text (``prom_text.parse``)."""
    path = "%s/sharedsw_cvmfs_%s.prom" % (metrics_dir, kind)
    before = host.run("stat -c %%Y.%%i %s", path).stdout
    host.check_output("systemctl start sharedsw-cvmfs-metrics-%s.service", kind)
    assert host.service("sharedsw-cvmfs-metrics-%s.timer" % kind).is_enabled
    assert host.run("stat -c %%Y.%%i %s", path).stdout != before   # a new file (new inode) in its place
    assert host.check_output("ls %s", metrics_dir).split() == ["sharedsw_cvmfs_%s.prom" % kind]
    return prom_text.parse(host.file(path).content_string)
