"""sharedsw.cvmfs.squid on lab hosts: the proxy serves and caches stratum-1 content for its allowed
client, and refuses every other destination and every other client."""

import uuid

import pytest

PROXY = "http://sq-proxy:3128"
ALLOWED_CLIENT = "10.77.0.12"
OUTSIDER = "10.77.0.13"


def fetch(host, url):
    """One GET through the proxy from `host`: (status, headers (lower-case names), body)."""
    cmd = host.run("curl -sS -m 10 -x %s -D /dev/stderr %s", PROXY, url)
    head = cmd.stderr.replace("\r", "").strip().split("\n")
    assert head and head[0].startswith("HTTP/"), "curl %s from %s: %s" % (url, host.backend.host, cmd.stderr)
    headers = {}
    for line in head[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    return int(head[0].split()[1]), headers, cmd.stdout


@pytest.fixture
def unique():
    return uuid.uuid4().hex[:12]


def test_squid_runs_enabled_with_a_clean_configuration(proxy):
    assert proxy.service("squid").is_running
    assert proxy.service("squid").is_enabled
    assert proxy.socket("tcp://0.0.0.0:3128").is_listening or proxy.socket("tcp://:::3128").is_listening
    parse = proxy.run("squid -k parse -f /etc/squid/squid.conf")
    assert parse.rc == 0, parse.stderr
    assert "WARNING" not in parse.stderr and "ERROR" not in parse.stderr, parse.stderr
    conf = proxy.file("/etc/squid/squid.conf").content_string
    assert "http_access allow all" not in conf
    assert [line for line in conf.splitlines() if line.startswith("http_access")][-1] == "http_access deny all"
    # inventory group stratum1 (name and ansible_host) and the extra URL's host and port
    assert "acl cvmfs_stratum1_domains dstdomain -n s1-extra.example.org sq-s1" in conf
    assert "acl cvmfs_stratum1_addresses dst 10.77.0.11" in conf
    assert "acl cvmfs_stratum1_ports port 80 8000 8080" in conf
    assert "acl cvmfs_clients src 10.77.0.12/32" in conf


def test_disk_cache_initialised(proxy):
    assert proxy.file("/var/spool/squid/00").is_directory
    assert proxy.file("/var/spool/squid").user == "proxy"


def test_allowed_client_is_served_then_hit(client, stratum1, proxy, unique):
    path = "/srv/cvmfs/lab.example.org/data/" + unique
    stratum1.run_test("printf 'chunk %%s\\n' %s > %s", unique, path)
    url = "http://sq-s1/cvmfs/lab.example.org/data/" + unique

    status, headers, body = fetch(client, url)
    assert status == 200 and body == "chunk %s\n" % unique
    assert headers["x-cache"].startswith("MISS")

    status, headers, body = fetch(client, url)
    assert status == 200 and body == "chunk %s\n" % unique
    assert headers["x-cache"].startswith("HIT"), headers

    log = proxy.check_output("grep -F %s /var/log/squid/access.log", unique).splitlines()
    assert len(log) == 2 and all(ALLOWED_CLIENT in line for line in log)
    assert "TCP_MISS/200" in log[0] and "HIT/200" in log[1], log


def test_allowed_client_reaches_stratum1_by_address(client):
    status, _headers, body = fetch(client, "http://10.77.0.11/cvmfs/lab.example.org/.cvmfspublished")
    assert status == 200 and body.startswith("stand-in manifest")


def test_cvmfs_control_files_only_as_fresh_as_their_headers(client, stratum1, unique):
    """Without Expires/Cache-Control, squid's heuristics would keep a file modified two days ago
    for hours (the plain file shows it); .cvmfs* files must go back to the stratum-1 every time."""
    base = "/srv/noheaders/" + unique
    stratum1.run_test("mkdir %s && echo w > %s/.cvmfswhitelist && echo f > %s/file && "
                      "touch -d '2 days ago' %s/.cvmfswhitelist %s/file", base, base, base, base, base)
    for name in (".cvmfswhitelist", "file", ".cvmfswhitelist", "file"):
        status = fetch(client, "http://sq-s1/noheaders/%s/%s" % (unique, name))[0]
        assert status == 200
    origin = stratum1.check_output("grep -F /noheaders/%s/ /var/log/apache2/access.log", unique)
    assert origin.count("/.cvmfswhitelist ") == 2, origin
    assert origin.count("/file ") == 1, origin


@pytest.mark.parametrize("url", [
    "http://sq-outsider/",                    # a host that is not a stratum-1
    "http://10.77.0.13/",                     # the same by address
    "http://sq-client/",                      # the client itself
    "http://sq-s1:22/",                       # a stratum-1 on a port that is not allowed
    "http://sq-s1:8081/cvmfs/",               # ditto
    "http://sq-proxy:3128/",                  # the proxy itself
    "http://127.0.0.1/",                      # the proxy's loopback
])
def test_other_destinations_are_denied(client, url):
    status, headers = fetch(client, url)[:2]
    assert status == 403, (url, headers)
    assert headers.get("x-squid-error", "").startswith("ERR_ACCESS_DENIED"), headers


def test_connect_is_denied(client):
    cmd = client.run("curl -sS -m 10 -p -x %s -o /dev/null -w '%%{http_connect}' https://sq-s1/", PROXY)
    assert cmd.rc != 0 and cmd.stdout == "403", (cmd.stdout, cmd.stderr)


def test_outsider_is_denied(outsider, proxy, unique):
    url = "http://sq-s1/cvmfs/lab.example.org/data/" + unique
    status, headers = fetch(outsider, url)[:2]
    assert status == 403
    assert headers.get("x-squid-error", "").startswith("ERR_ACCESS_DENIED"), headers
    log = proxy.check_output("grep -F %s /var/log/squid/access.log", unique)
    assert OUTSIDER in log and "TCP_DENIED/403" in log, log
