"""_whitelist_check (the stratum-0's whitelist timer program) on the real fixture repository's whitelist
and on tampered or foreign-signed copies of it. Moments are counted from the whitelist's own dates."""

import datetime

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _whitelist_check as check
from tests.support.cvmfs_repo import (  # pylint: disable=unused-import
    cvmfs_repo,  # noqa: F401  (the pytest fixture: re-keyed copy)
    flip_byte,
    new_rsa_key,
    pristine_repo,  # noqa: F401  (the pytest fixture: the committed fixture, untouched)
    write,
)


def run(repo, path, capsys, public_key=None, now=None, name=None):
    now = now or repo.whitelist_expires - datetime.timedelta(days=20)
    status = check.main(["--name", name or repo.name, "--file", str(path), "--alert-days", "14",
                         "--public-key", public_key or repo.pub, "--now", now.strftime("%Y-%m-%dT%H:%M:%S")])
    out = capsys.readouterr()
    return status, out.out + out.err


def test_valid_whitelist_of_the_fixture_passes(pristine_repo, tmp_path, capsys):
    path = tmp_path / ".cvmfswhitelist"
    write(str(path), pristine_repo.read(pristine_repo.stratum0, ".cvmfswhitelist"))
    status, output = run(pristine_repo, path, capsys)
    assert status == check.EXIT_OK, output
    assert "the whitelist of %s is valid for 20.0 more days" % pristine_repo.name in output


def test_whitelist_with_bad_signature_is_reported(cvmfs_repo, tmp_path, capsys):
    """A whitelist whose signature was damaged is not trusted, however far its expiry is."""
    data = cvmfs_repo.read(cvmfs_repo.stratum0, ".cvmfswhitelist")
    path = tmp_path / ".cvmfswhitelist"
    write(str(path), flip_byte(data, len(data) - 1))
    status, output = run(cvmfs_repo, path, capsys)
    assert status == check.EXIT_UNREADABLE
    assert "signature of the whitelist of %s does not verify with the given public key" % cvmfs_repo.name in output
    assert "valid for" not in output


def test_whitelist_signed_with_another_master_key_is_reported(cvmfs_repo, tmp_path, capsys):
    """Well-formed and signed, with a fresh expiry -- by a key that is not the repository's master key."""
    path = tmp_path / ".cvmfswhitelist"
    write(str(path), cvmfs_repo.sign_whitelist(cvmfs_repo.whitelist_body(), key=new_rsa_key()))
    status, output = run(cvmfs_repo, path, capsys)
    assert status == check.EXIT_UNREADABLE
    assert "does not verify with the given public key" in output


def test_whitelist_with_edited_expiry_is_reported(cvmfs_repo, tmp_path, capsys):
    data = cvmfs_repo.read(cvmfs_repo.stratum0, ".cvmfswhitelist")
    path = tmp_path / ".cvmfswhitelist"
    write(str(path), flip_byte(data, data.index(b"\nE") + 5))  # move the expiry
    status, output = run(cvmfs_repo, path, capsys)
    assert status == check.EXIT_UNREADABLE
    assert "was modified or damaged" in output


def test_missing_public_key_is_reported(pristine_repo, tmp_path, capsys):
    path = tmp_path / ".cvmfswhitelist"
    write(str(path), pristine_repo.read(pristine_repo.stratum0, ".cvmfswhitelist"))
    status, output = run(pristine_repo, path, capsys, public_key=str(tmp_path / "absent.pub"))
    assert status == check.EXIT_UNREADABLE
    assert "cannot read public key file %s" % (tmp_path / "absent.pub") in output
