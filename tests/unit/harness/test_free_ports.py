"""The test services' port picker: ports promised to one daemon are never given to another."""

from tests.harness._process import free_ports


def test_ports_promised_to_another_daemon_are_not_given_again():
    promised = list(range(20000, 31980))
    ports = free_ports(3, avoid=promised)
    assert len(set(ports)) == 3
    assert not set(ports) & set(promised)


def test_a_contiguous_run_is_consecutive():
    ports = free_ports(16, contiguous=True)
    assert ports == list(range(ports[0], ports[0] + 16))
