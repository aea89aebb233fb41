"""_http_get: the one GET helper, against a standard-library HTTP(S) server on loopback."""

import datetime
import http.server
import socket
import threading

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _cvmfs_state as cvmfs_state
from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _http_get as http_get
from tests.support.cvmfs_repo import (  # pylint: disable=unused-import
    write,
)
from tests.unit.plugins.module_utils.cvmfs_support import (  # pylint: disable=unused-import
    UTC,
    fails,
)


# --------------------------------------------------------------------------- HTTP (stdlib server on loopback)

def closed_port():
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Handler(http.server.BaseHTTPRequestHandler):
    responses_by_path = {}
    seen = []

    def do_GET(self):  # noqa: N802 (http.server API)
        self.seen.append((self.path, self.headers.get("Cache-Control")))
        queue = self.responses_by_path.get(self.path, [(404, b"not found")])
        status, body = queue.pop(0) if len(queue) > 1 else queue[0]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    _Handler.responses_by_path = {}
    _Handler.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()


def test_fetcher_retries_transient_errors_and_asks_for_revalidation(http_server):
    _server, url = http_server
    _Handler.responses_by_path["/f"] = [(503, b"busy"), (200, b"ok")]
    fetcher = http_get.HttpFetcher(proxy="DIRECT", retries=2, sleep=lambda seconds: None)
    assert fetcher.get(url + "/f") == b"ok"
    assert _Handler.seen == [("/f", "max-age=0"), ("/f", "max-age=0")]


def test_fetcher_errors(http_server):
    _server, url = http_server
    _Handler.responses_by_path["/big"] = [(200, b"x" * 2000)]
    fetcher = http_get.HttpFetcher(proxy="DIRECT", retries=0)
    assert fetcher.get(url + "/absent", missing_ok=True) is None
    with fails("http_error", "GET %s/absent failed: HTTP 404" % url):
        fetcher.get(url + "/absent")
    with fails("malformed", "more than 1000 bytes"):
        fetcher.get(url + "/big", max_bytes=1000)


def test_proxy_credentials_stay_out_of_messages():
    port = closed_port()
    fetcher = http_get.HttpFetcher(proxy="http://user:s3cret@127.0.0.1:%d" % port, retries=0)
    with fails("http_error", r"through proxy http://\*\*\*@127\.0\.0\.1:%d failed" % port) as info:
        fetcher.get("http://127.0.0.1:1/x")
    assert "s3cret" not in info.value.message


def test_fetcher_treats_403_as_absent_only_for_optional_files(http_server):
    """A public-read S3 bucket answers 403 for keys that do not exist."""
    _server, url = http_server
    _Handler.responses_by_path["/.cvmfs_last_snapshot"] = [(403, b"AccessDenied")]
    fetcher = http_get.HttpFetcher(proxy="DIRECT", retries=0)
    assert fetcher.get(url + "/.cvmfs_last_snapshot", missing_ok=True) is None
    with fails("http_error", "HTTP 403"):
        fetcher.get(url + "/.cvmfs_last_snapshot")


@pytest.fixture
def https_server(tmp_path):
    """A stdlib HTTPS server on loopback with a self-signed certificate for 127.0.0.1."""
    import ipaddress
    import ssl
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .sign(key, hashes.SHA256()))
    cert_file, key_file = str(tmp_path / "server.crt"), str(tmp_path / "server.key")
    write(cert_file, certificate.public_bytes(serialization.Encoding.PEM))
    write(key_file, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    _Handler.responses_by_path = {"/f": [(200, b"secure")]}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "https://127.0.0.1:%d" % server.server_address[1], cert_file
    server.shutdown()
    server.server_close()


def test_fetcher_https_with_ca_file(https_server):
    url, ca_file = https_server
    assert http_get.HttpFetcher(proxy="DIRECT", ca_file=ca_file, retries=0).get(url + "/f") == b"secure"
    with fails("http_error", "CERTIFICATE_VERIFY_FAILED"):
        http_get.HttpFetcher(proxy="DIRECT", retries=0).get(url + "/f")
    assert http_get.HttpFetcher(proxy="DIRECT", validate_certs=False, retries=0).get(url + "/f") == b"secure"


def test_file_urls_answer_a_missing_file_like_a_404(tmp_path):
    (tmp_path / "present").write_bytes(b"here")
    fetcher = http_get.HttpFetcher(proxy="DIRECT", retries=0)
    assert fetcher.get("file://%s/present" % tmp_path) == b"here"
    assert fetcher.get("file://%s/absent" % tmp_path, missing_ok=True) is None
    with fails("http_error", "GET file://%s/absent failed" % tmp_path) as info:
        fetcher.get("file://%s/absent" % tmp_path)
    assert info.value.extra["status"] == 404


def test_state_read_url_is_none_only_for_a_missing_object(http_server, tmp_path):
    _server, url = http_server
    _Handler.responses_by_path["/broken"] = [(500, b"oops")]
    assert cvmfs_state.read_url(url + "/absent") is None
    assert cvmfs_state.read_url("file://%s/absent" % tmp_path) is None
    with pytest.raises(IOError, match="GET %s/broken failed: HTTP 500" % url):
        cvmfs_state.read_url(url + "/broken")
