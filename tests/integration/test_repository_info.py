"""sharedsw.cvmfs.repository_info against real CernVM-FS 2.12 repository data served by real apache,
directly and through a real squid, plus tampered copies that must fail verification.

Every copy is made at test time in a temporary directory; the fixture itself is never modified.
The variants are made from a copy re-keyed at test time (``cvmfs_repo``: fresh master and
repository keys, tests/support/cvmfs_repo.py); the committed fixture, signed by real CernVM-FS, is
served untouched too and checked with its own ``.pub``. Expected values are read from the
fixture's files; "now" is passed as reference_time.
"""

import datetime
import json
import os
import pathlib
import shutil
import socket
import tempfile

import pytest

from tests.support.cvmfs_repo import (  # pylint: disable=unused-import
    cvmfs_repo,  # noqa: F401  (the pytest fixture: re-keyed copy)
    flip_byte,
    new_signing_identity,
    pristine_repo,  # noqa: F401  (the pytest fixture: the committed fixture, untouched)
    public_pem,
    store_object,
    write,
)


pytestmark = pytest.mark.integration

MODULE = "repository_info"


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def served(cvmfs_repo, pristine_repo, apache):
    """URLs of the pristine stratum-0/1 copies and of each tampered variant, served by apache.

    Not under pytest's tmp_path: every pytest session on the machine resets /tmp/pytest-of-<user>
    to mode 0700, which would cut apache's user off in the middle of this run.
    """
    base = pathlib.Path(tempfile.mkdtemp(prefix="sharedsw-repository-info-"))
    try:
        urls = _serve_variants(cvmfs_repo, apache, base)
        for which in ("stratum0", "stratum1"):  # byte for byte; the copy only makes it readable for apache
            name = "pristine-" + which
            urls[name] = apache.publish("repoinfo-" + name, pristine_repo.copy(which, base / name)).rstrip("/")
        yield urls
    finally:
        shutil.rmtree(str(base), ignore_errors=True)


def _serve_variants(cvmfs_repo, apache, base):
    repo = cvmfs_repo
    key, certificate_pem = new_signing_identity()
    manifest = repo.read(repo.stratum0, ".cvmfspublished")
    separator = manifest.index(b"\n--\n")
    raw = repo.manifest_lines
    long_ago = repo.whitelist_created - datetime.timedelta(days=60)

    def variant(name, which="stratum0", **files):
        directory = repo.copy(which, base / name)
        for filename, data in files.items():
            path = os.path.join(directory, filename.replace("_", "."))
            if callable(data):
                data = data(directory)
            write(path, data)
        return apache.publish("repoinfo-" + name, directory)

    def intruder_manifest(directory):
        x_hash = store_object(directory, certificate_pem, "X")
        return repo.sign_manifest(repo.manifest_body(X=x_hash), key=key)

    urls = {
        "s0": variant("s0"),
        "s1": variant("s1", "stratum1"),
        "flipped_text": variant("flipped-text", _cvmfspublished=flip_byte(manifest, manifest.index(b"\nS") + 2)),
        "flipped_signature": variant("flipped-signature", _cvmfspublished=flip_byte(manifest, len(manifest) - 7)),
        "expired": variant("expired", _cvmfswhitelist=repo.sign_whitelist(repo.whitelist_body(
            created=long_ago, expires=long_ago + datetime.timedelta(days=30)))),
        "foreign_certificate": variant("foreign-certificate", _cvmfspublished=intruder_manifest),
        "garbage": variant("garbage", _cvmfspublished=b"<html><body>Welcome to nginx!</body></html>\n"),
        "truncated": variant("truncated", _cvmfspublished=manifest[:separator + 20]),
        "truncated_signature": variant("truncated-signature", _cvmfspublished=manifest[:-100]),
        "other_name": variant("other-name", _cvmfswhitelist=repo.sign_whitelist(
            repo.whitelist_body(name="other.example.org"))),
        "s0_ahead": variant("s0-ahead", _cvmfspublished=repo.sign_manifest(repo.manifest_body(
            S=str(int(raw["S"]) + 1), T=str(int(raw["T"]) + 600)))),
    }
    return {name: url.rstrip("/") for name, url in urls.items()}


@pytest.fixture(scope="module")
def args(cvmfs_repo):
    """Module arguments shared by the remote checks: the master public key file, a fixed 'now'."""
    return {"public_keys": [cvmfs_repo.pub], "reference_time": iso(cvmfs_repo.valid_time), "retries": 0,
            "proxy": "DIRECT"}  # loopback only, whatever proxy the environment names


def run(run_module, args, **extra):
    return run_module(MODULE, dict(args, **extra))


def expect_failure(result, reason, message):
    assert result.failed, result
    assert result["reason"] == reason, result["msg"]
    assert message in result["msg"], result["msg"]


# --------------------------------------------------------------------------- success

def test_stratum0(run_module, served, args, cvmfs_repo):
    result = run(run_module, args, url=served["s0"], name=cvmfs_repo.name, read_root_catalog=True)
    assert not result.failed, result.get("msg")
    assert result["changed"] is False
    repo = result["repository"]
    raw = cvmfs_repo.manifest_lines
    assert repo["name"] == cvmfs_repo.expected["repository"]
    assert repo["revision"] == cvmfs_repo.expected["revision"] == int(raw["S"])
    assert repo["root_catalog_hash"] == raw["C"]
    assert repo["root_catalog_size"] == int(raw["B"])
    assert repo["ttl"] == int(raw["D"])
    assert repo["published_epoch"] == int(raw["T"])
    assert repo["published"] == iso(datetime.datetime.fromtimestamp(int(raw["T"]), datetime.timezone.utc))
    assert repo["certificate"]["hash"] == raw["X"]
    assert repo["certificate"]["fingerprint"] == cvmfs_repo.whitelist_lines[3]
    whitelist = repo["whitelist"]
    assert whitelist["expires"] == iso(cvmfs_repo.whitelist_expires)
    effective = cvmfs_repo.whitelist_expires.replace(minute=0, second=0)
    assert whitelist["days_left"] == (effective - cvmfs_repo.valid_time).days
    assert whitelist["seconds_left"] == int((effective - cvmfs_repo.valid_time).total_seconds())
    assert repo["replicable"] is True
    assert repo["stratum1"] is None
    assert repo["catalog"]["revision"] == int(raw["S"])
    assert repo["catalog"]["statistics"]["regular"] == sum(
        1 for entry in cvmfs_repo.expected["tree"] if entry["type"] == "file")


def test_stratum1_in_sync_with_stratum0(run_module, served, args, cvmfs_repo):
    result = run(run_module, args, url=served["s1"], stratum0_url=served["s0"])
    assert not result.failed, result.get("msg")
    repo = result["repository"]
    snapshot = datetime.datetime.strptime(
        cvmfs_repo.read(cvmfs_repo.stratum1, ".cvmfs_last_snapshot").decode().strip().replace("UTC ", ""),
        "%a %b %d %H:%M:%S %Y").replace(tzinfo=datetime.timezone.utc)
    assert repo["name"] == cvmfs_repo.name  # the manifest's name, not the stratum-1 alias
    assert repo["stratum1"]["last_snapshot"] == iso(snapshot)
    assert repo["stratum1"]["snapshot_age_seconds"] == int((cvmfs_repo.valid_time - snapshot).total_seconds())
    assert repo["stratum1"]["snapshot_in_progress"] is False
    status = json.loads(cvmfs_repo.read(cvmfs_repo.stratum1, ".cvmfs_status.json"))
    assert repo["stratum1"]["status"]["last_snapshot"] == status["last_snapshot"]  # as written, e.g. "Mon Dec  7 ..."
    assert repo["replicable"] is False
    assert repo["replication"] == {
        "stratum0_url": served["s0"], "stratum0_revision": cvmfs_repo.revision,
        "stratum0_published": repo["published"], "revisions_behind": 0, "lag_seconds": 0, "in_sync": True}


def test_stratum1_behind(run_module, served, args, cvmfs_repo):
    result = run(run_module, args, url=served["s1"], stratum0_url=served["s0_ahead"])
    assert not result.failed, result.get("msg")
    replication = result["repository"]["replication"]
    assert replication["stratum0_revision"] == cvmfs_repo.revision + 1
    assert (replication["revisions_behind"], replication["lag_seconds"], replication["in_sync"]) == (1, 600, False)


def test_committed_fixture_as_real_cvmfs_signed_it(run_module, served, args, pristine_repo, cvmfs_repo):
    """The untouched fixture: whitelist, certificate and manifest signatures made by real CernVM-FS,
    checked with the fixture's own .pub, on the stratum-1 and its stratum-0."""
    pristine_args = dict(args, public_keys=[pristine_repo.pub], reference_time=iso(pristine_repo.valid_time))
    result = run(run_module, pristine_args, url=served["pristine-stratum1"], stratum0_url=served["pristine-stratum0"],
                 name=pristine_repo.name, read_root_catalog=True)
    assert not result.failed, result.get("msg")
    repo = result["repository"]
    raw = pristine_repo.manifest_lines
    assert (repo["revision"], repo["root_catalog_hash"]) == (pristine_repo.expected["revision"], raw["C"])
    assert repo["certificate"]["hash"] == raw["X"]
    assert repo["certificate"]["fingerprint"] == pristine_repo.whitelist_lines[3]
    assert repo["whitelist"]["expires"] == iso(pristine_repo.whitelist_expires)
    assert repo["replication"]["in_sync"] is True
    assert repo["catalog"]["statistics"]["regular"] == sum(
        1 for entry in pristine_repo.expected["tree"] if entry["type"] == "file")
    # the re-keyed copy's master key did not sign it: the keys of the other tests are really fresh
    other = run(run_module, dict(pristine_args, public_keys=[cvmfs_repo.pub]), url=served["pristine-stratum0"])
    expect_failure(other, "bad_signature", "/.cvmfswhitelist does not verify with the given public key")


def test_check_mode_and_key_as_text(run_module, served, args, cvmfs_repo):
    result = run_module(MODULE, dict(args, url=served["s0"], public_keys=[cvmfs_repo.public_key_text()]),
                        check=True)
    assert not result.failed, result.get("msg")
    assert result["changed"] is False
    assert result["repository"]["revision"] == cvmfs_repo.revision


def test_through_squid(run_module, served, args, squid_factory, cvmfs_repo):
    squid = squid_factory()
    result = run(run_module, args, url=served["s1"], stratum0_url=served["s0"], proxy=squid.url)
    assert not result.failed, result.get("msg")
    assert result["repository"]["replication"]["in_sync"] is True
    log = "\n".join(squid.access_log())
    for url in (served["s1"], served["s0"]):
        assert url + "/.cvmfspublished" in log
        assert url + "/.cvmfswhitelist" in log


def test_proxy_credentials_stay_out_of_the_result(run_module, served, args, squid_factory):
    """squid (no proxy authentication configured) serves the request; the password given in the
    proxy URL is masked in the returned invocation."""
    squid = squid_factory()
    proxy = squid.url.replace("http://", "http://reader:squid-pass-%d@" % os.getpid())
    result = run(run_module, args, url=served["s0"], proxy=proxy)
    assert not result.failed, result.get("msg")
    assert squid.access_log(wait_for="/.cvmfspublished")
    assert "squid-pass-" not in json.dumps(result)
    assert result["invocation"]["module_args"]["proxy"].endswith("@" + squid.url[len("http://"):])


def test_proxy_refuses(run_module, served, args, squid_factory):
    squid = squid_factory(allowed_dst=("192.0.2.1",))  # TEST-NET-1: our apache is not allowed
    result = run(run_module, args, url=served["s0"], proxy=squid.url)
    expect_failure(result, "http_error", "through proxy %s failed: HTTP 403" % squid.url)
    assert "ERR_ACCESS_DENIED" in result["msg"]


# --------------------------------------------------------------------------- tampered copies

@pytest.mark.parametrize("variant,reason,message", [
    ("flipped_text", "hash_mismatch", "/.cvmfspublished was modified or damaged"),
    ("flipped_signature", "bad_signature", "/.cvmfspublished does not verify with the repository certificate"),
    ("expired", "whitelist_expired", "/.cvmfswhitelist of fixture.cvmfs.test expired at"),
    ("foreign_certificate", "not_in_whitelist", "is not listed in the whitelist of fixture.cvmfs.test"),
    ("garbage", "malformed", "/.cvmfspublished is not a signed CernVM-FS file"),
    ("truncated", "malformed", "/.cvmfspublished is truncated"),
    ("truncated_signature", "bad_signature", "/.cvmfspublished is 156 bytes long"),
    ("other_name", "name_mismatch", "/.cvmfswhitelist is for repository other.example.org"),
])
def test_tampered(run_module, served, args, variant, reason, message):
    """Messages starting with '/' follow the variant's URL."""
    result = run(run_module, args, url=served[variant])
    expect_failure(result, reason, served[variant] + message if message.startswith("/") else message)
    assert "repository" not in result


def test_expired_whitelist_reports_expiry(run_module, served, args, cvmfs_repo):
    result = run(run_module, args, url=served["expired"])
    long_ago = cvmfs_repo.whitelist_created - datetime.timedelta(days=60)
    assert result["whitelist_expires"] == iso(long_ago + datetime.timedelta(days=30))


def test_pristine_repository_expires_at_its_time(run_module, served, args, cvmfs_repo):
    later = cvmfs_repo.whitelist_expires + datetime.timedelta(hours=1)
    result = run(run_module, args, url=served["s0"], reference_time=iso(later))
    expect_failure(result, "whitelist_expired", "cvmfs_server resign %s" % cvmfs_repo.name)


def test_wrong_master_key(run_module, served, args, tmp_path):
    key, _certificate = new_signing_identity()
    path = tmp_path / "wrong.pub"
    write(str(path), public_pem(key).encode())
    result = run(run_module, args, url=served["s0"], public_keys=[str(path)])
    expect_failure(result, "bad_signature", "does not verify with the given public key")


def test_wrong_repository_name(run_module, served, args):
    result = run(run_module, args, url=served["s0"], name="other.example.org")
    expect_failure(result, "name_mismatch", "the expected repository is other.example.org")


def test_stratum0_url_tampered(run_module, served, args):
    """The stratum-0 is verified too before it is compared."""
    result = run(run_module, args, url=served["s1"], stratum0_url=served["flipped_signature"])
    expect_failure(result, "bad_signature", served["flipped_signature"] + "/.cvmfspublished")


# --------------------------------------------------------------------------- HTTP errors

def test_not_a_repository(run_module, served, args, apache):
    url = apache.url + "/no-such-repository"
    result = run(run_module, args, url=url)
    expect_failure(result, "http_error", "GET %s/.cvmfspublished failed: HTTP 404" % url)
    assert "the URL should be the repository's base directory" in result["msg"]
    assert result["status"] == 404


def test_connection_refused(run_module, args):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = "http://127.0.0.1:%d/cvmfs/x" % port
    result = run(run_module, args, url=url)
    expect_failure(result, "http_error", "GET %s/.cvmfspublished failed: [Errno 111] Connection refused" % url)
