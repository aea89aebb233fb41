"""pytest plugin: the real-service fixtures of tests/harness/README.md.

Loaded by tests/conftest.py (``pytest_plugins``). Servers start lazily, the first time a test
asks for them, and stop at the end of their fixture's scope.
"""

import pytest

from .apache import Apache
from .ceph import CephRGW
from .openbao import OpenBaoDev, OpenBaoRaft
from .rabbitmq import RabbitMQ
from .seaweedfs import SeaweedFS
from .squid import Squid

_STARTED = []  # (name, seconds) of every server started in this session, for the summary
_RUNNING_CEPH = []  # the ceph_rgw of the session once asked for, for the radosgw crash check


def _serve(service):
    """Start ``service`` for the duration of a fixture, record its start time, stop it after."""
    with service:
        _STARTED.append((service.kind, service.start_seconds))
        yield service


class _Factory:
    """Makes started servers on demand; closes them all at the end of the fixture."""

    def __init__(self, make):
        self.make, self.services = make, []

    def __call__(self, *args, **kwargs):
        service = self.make(*args, **kwargs)
        service.__enter__()
        _STARTED.append((service.kind, service.start_seconds))
        self.services.append(service)
        return service

    def close(self):
        while self.services:
            self.services.pop().close()


def _factory(make):
    factory = _Factory(make)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="session")
def seaweedfs():
    """The SeaweedFS ``weed mini`` S3Server of the session."""
    yield from _serve(SeaweedFS())


@pytest.fixture(scope="session")
def ceph_rgw():
    """The Ceph RGW S3Server of the session (+ ``.sns_client()``, ``.admin(*args)``)."""
    server = CephRGW()
    _RUNNING_CEPH.append(server)
    try:
        yield from _serve(server)
    finally:
        _RUNNING_CEPH.remove(server)


@pytest.fixture(autouse=True)
def _ceph_rgw_crash_check():
    """Blame the test during which radosgw died (RGW 16.2 aborts, e.g. on DeleteObjects in a bucket
    with a persistent notification), and start radosgw again so later tests still have S3."""
    yield
    for server in _RUNNING_CEPH:
        crash = server.revive_rgw()
        if crash:
            pytest.fail("radosgw crashed during this test and was restarted; its log says:\n" + crash, pytrace=False)


@pytest.fixture(scope="session", params=["ceph", "seaweedfs"])
def s3_server(request):
    """Each S3 server in turn (test ids ``[ceph]``, ``[seaweedfs]``)."""
    return request.getfixturevalue({"ceph": "ceph_rgw", "seaweedfs": "seaweedfs"}[request.param])


@pytest.fixture
def seaweedfs_factory():
    """``seaweedfs_factory()`` starts a private SeaweedFS you may ``.kill()`` and ``.start()``."""
    yield from _factory(SeaweedFS)


@pytest.fixture(scope="session")
def openbao():
    """OpenBao dev server: KV v2 at ``secret/``, ``.url``, ``.root_token``, ``.client()``."""
    yield from _serve(OpenBaoDev())


@pytest.fixture
def openbao_raft():
    """A non-dev OpenBao on raft storage, initialised and unsealed (``.seal()``, ``.unseal()``, ``.kill()``)."""
    yield from _serve(OpenBaoRaft())


@pytest.fixture(scope="session")
def rabbitmq():
    """RabbitMQ with the management API: ``.amqp_url``, ``.connection()``, ``.stop()``, ``.start()``."""
    yield from _serve(RabbitMQ())


@pytest.fixture(scope="session")
def apache():
    """apache2 on loopback: ``.url``, ``.publish(name, directory)``."""
    yield from _serve(Apache())


@pytest.fixture(scope="session")
def squid_factory():
    """``squid_factory(allowed_dst=("127.0.0.1",), allowed_src=("127.0.0.0/8",))`` starts a squid."""
    yield from _factory(Squid)


def pytest_terminal_summary(terminalreporter):
    if _STARTED:
        timings = ", ".join("%s %.1f s" % (name, seconds) for name, seconds in _STARTED)
        terminalreporter.write_line("test servers started: " + timings)
