"""Unit tests of module_utils/_vault.py: options, env policy, auth method classes, retry, errors.

No server here (the real OpenBao tests are in tests/integration/vault); hvac calls that must fail
are MagicMocks raising hvac's own exception classes.
"""

from unittest import mock

import hvac.exceptions
import pytest
import requests.exceptions

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _vault as v
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError

URL = "http://127.0.0.1:8200"


def client(environ=None, **options):
    options.setdefault("url", URL)
    return v.VaultClient(options, environ=environ or {}, sleep=lambda seconds: None)


# ---- environment policy -------------------------------------------------------------------

def test_env_fills_unset_options_vault_names_first():
    opts = v.resolve_options({}, {"VAULT_ADDR": "https://a:8200", "BAO_NAMESPACE": "ns", "VAULT_TOKEN": "t",
                                  "VAULT_CACERT": "/ca.pem"})
    assert (opts["url"], opts["namespace"], opts["token"], opts["ca_cert"]) == ("https://a:8200", "ns", "t", "/ca.pem")


def test_bao_names_work_alone_and_options_win_over_env():
    opts = v.resolve_options({"url": "https://given"}, {"BAO_ADDR": "https://env", "BAO_TOKEN": "bt"})
    assert (opts["url"], opts["token"]) == ("https://given", "bt")


def test_same_value_in_both_spellings_is_fine_different_values_are_an_error():
    assert v.resolve_options({}, {"VAULT_ADDR": "https://a", "BAO_ADDR": "https://a"})["url"] == "https://a"
    with pytest.raises(CvmfsError, match="VAULT_ADDR and BAO_ADDR are both set, to different values"):
        v.resolve_options({}, {"VAULT_ADDR": "https://a", "BAO_ADDR": "https://b"})


def test_env_token_is_not_picked_up_for_other_auth_methods():
    opts = v.resolve_options({"auth_method": "approle", "role_id": "r"}, {"VAULT_TOKEN": "t", "BAO_TOKEN": "u"})
    assert opts["token"] is None


def test_defaults_of_argspec_apply():
    opts = v.resolve_options({}, {})
    assert (opts["auth_method"], opts["engine_mount_point"], opts["retries"], opts["validate_certs"]) == \
        ("token", "secret", 3, True)


def test_argspec_marks_secrets_no_log():
    assert all(v.ARGSPEC[name].get("no_log") for name in ("jwt", "secret_id", "token"))
    assert v.ARGSPEC["role_id"]["no_log"] is False


# ---- offline validation -------------------------------------------------------------------

@pytest.mark.parametrize("options,message", [
    (dict(url=None), "no Vault address: set the option url or the environment variable VAULT_ADDR or BAO_ADDR"),
    (dict(url="vault:8200", token="t"), "is not an http(s) URL"),
    (dict(token=None), "auth_method=token needs the option token (or the environment variable VAULT_TOKEN or BAO_TOKEN)"),
    (dict(auth_method="approle"), "auth_method=approle needs the option role_id"),
    (dict(auth_method="jwt", jwt="x"), "auth_method=jwt needs the option jwt_role"),
    (dict(auth_method="approle", role_id="r", token="t"), "the option token belongs to auth_method=token"),
    (dict(token="t", secret_id="s"), "the option secret_id belongs to auth_method=approle"),
    (dict(auth_method="approle", role_id="r", jwt="j"), "the option jwt belongs to auth_method=jwt"),
    (dict(token="t", validate_certs=False, ca_cert="/etc/hostname"), "ca_cert is set but validate_certs is false"),
    (dict(token="t", ca_cert="/nonexistent/ca.pem"), "ca_cert /nonexistent/ca.pem is not a readable file"),
    (dict(token="t", retries=-1), "retries must be 0 or more"),
    (dict(token="t", engine_mount_point="/"), "engine_mount_point must name"),
])
def test_offline_errors(options, message):
    with pytest.raises(CvmfsError) as info:
        client(**options)
    assert message in info.value.message


def test_plain_http_warns_only_off_loopback():
    warnings = []
    v.VaultClient(dict(url="http://vault.example.org:8200", token="t"), warn=warnings.append, environ={})
    v.VaultClient(dict(url="http://localhost:8200", token="t"), warn=warnings.append, environ={})
    v.VaultClient(dict(url="https://vault.example.org", token="t"), warn=warnings.append, environ={})
    assert len(warnings) == 1 and "plain HTTP" in warnings[0]


def test_auth_methods_are_small_classes_selected_by_name():
    assert sorted(v.AUTH_METHODS) == ["approle", "jwt", "token"]
    for name, cls in v.AUTH_METHODS.items():
        assert cls.NAME == name and set(cls.REQUIRED) <= set(cls.OPTIONS)
    approle = v.AppRoleAuth(dict(role_id="r", secret_id="s", auth_mount_point=None))
    hv = mock.MagicMock()
    approle.authenticate(hv)
    hv.auth.approle.login.assert_called_once_with(role_id="r", secret_id="s", mount_point="approle", use_token=True)
    jwt = v.JwtAuth(dict(jwt="tok", jwt_role="role", auth_mount_point="oidc"))
    jwt.authenticate(hv)
    hv.auth.jwt.jwt_login.assert_called_once_with(role="role", jwt="tok", path="oidc", use_token=True)


# ---- nothing picked up silently -----------------------------------------------------------

def test_client_ignores_token_helper_file_and_env_credentials(tmp_path, monkeypatch):
    (tmp_path / ".vault-token").write_text("from-helper-file")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("VAULT_TOKEN", "from-env")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    c = v.VaultClient(dict(url=URL, auth_method="approle", role_id="r"), environ={"VAULT_TOKEN": "from-env"})
    hv = c._build_client()
    assert hv.token is None
    assert hv.adapter._kwargs["cert"] is None
    assert hv.session.trust_env is False


# ---- retry --------------------------------------------------------------------------------

@pytest.mark.parametrize("error,transient", [
    (requests.exceptions.ConnectionError("refused"), True),
    (requests.exceptions.ReadTimeout("slow"), True),
    (requests.exceptions.SSLError("bad cert"), False),
    (hvac.exceptions.VaultDown("Vault is sealed"), False),
    (hvac.exceptions.VaultDown("standby"), True),
    (hvac.exceptions.InternalServerError("boom"), True),
    (hvac.exceptions.BadGateway("proxy"), True),
    (hvac.exceptions.RateLimitExceeded("slow down"), True),
    (hvac.exceptions.Forbidden("permission denied"), False),
    (hvac.exceptions.InvalidPath(), False),
    (ValueError("x"), False),
])
def test_vault_retry_knows_transient_errors(error, transient):
    assert v.VaultRetry.is_transient(error) is transient


def test_transient_errors_are_retried_then_translated():
    c = client(token="t", retries=2)
    calls = []

    def flaky(**kwargs):
        calls.append(kwargs)
        raise hvac.exceptions.InternalServerError("internal error")

    c.client = mock.MagicMock()
    c.client.secrets.kv.v2.read_secret_version.side_effect = flaky
    with pytest.raises(CvmfsError, match="refused to read secret/data/p: internal error"):
        c.read("p")
    assert len(calls) == 3


# ---- error translation --------------------------------------------------------------------

def connected(**options):
    c = client(token="t", retries=0, **options)
    c.client = mock.MagicMock()
    c.client.auth.token.lookup_self.return_value = {"data": {"policies": ["default", "cvmfs-public"],
                                                             "id": "hvs.SECRET-TOKEN"}}
    return c


def test_forbidden_names_path_policies_and_the_policy_to_add():
    c = connected()
    c.client.secrets.kv.v2.read_secret_version.side_effect = hvac.exceptions.Forbidden("permission denied")
    with pytest.raises(CvmfsError) as info:
        c.read("cvmfs/r/master")
    message = info.value.message
    assert "permission denied to read secret/data/cvmfs/r/master" in message
    assert "the token is valid, with policies cvmfs-public, default" in message
    assert 'path "secret/data/cvmfs/r/master" { capabilities = ["read"] }' in message
    assert "SECRET-TOKEN" not in message


def test_forbidden_with_rejected_token_says_so():
    c = connected()
    c.client.auth.token.lookup_self.side_effect = hvac.exceptions.Forbidden("permission denied")
    c.client.secrets.kv.v2.create_or_update_secret.side_effect = hvac.exceptions.Forbidden("permission denied")
    with pytest.raises(CvmfsError, match="the token itself is rejected"):
        c.write("p", {"a": "b"}, cas=0)


def test_missing_secret_reads_as_none_and_delete_of_missing_is_quiet():
    c = connected()
    c.client.secrets.kv.v2.read_secret_version.side_effect = hvac.exceptions.InvalidPath()
    c.client.secrets.kv.v2.read_secret_metadata.side_effect = hvac.exceptions.InvalidPath()
    c.client.secrets.kv.v2.delete_metadata_and_all_versions.side_effect = hvac.exceptions.InvalidPath()
    assert c.read("p") == (None, None)
    assert c.read_metadata("p") is None
    c.delete("p")


@pytest.mark.parametrize("error,message", [
    (hvac.exceptions.VaultDown("Vault is sealed"), "is sealed; unseal it"),
    (hvac.exceptions.VaultNotInitialized("not init"), "is not initialised"),
    (requests.exceptions.ConnectionError("HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded "
                                         "(Caused by NewConnectionError('<x>: Failed to establish a new connection: "
                                         "[Errno 111] Connection refused'))"),
     "is unreachable ([Errno 111] Connection refused) while trying to read secret/data/p"),
    (requests.exceptions.SSLError("certificate verify failed"), "TLS verification of http://127.0.0.1:8200 failed"),
])
def test_server_state_errors(error, message):
    c = connected()
    c.client.secrets.kv.v2.read_secret_version.side_effect = error
    with pytest.raises(CvmfsError) as info:
        c.read("p")
    assert message in info.value.message


def test_check_and_set_conflict_is_explained():
    c = connected()
    c.client.secrets.kv.v2.create_or_update_secret.side_effect = hvac.exceptions.InvalidRequest(
        errors=["check-and-set parameter did not match the current version"])
    with pytest.raises(CvmfsError, match="changed while this task ran"):
        c.write("p", {}, cas=3)


def test_write_over_soft_deleted_secret_retries_with_current_version():
    c = connected()
    kv = c.client.secrets.kv.v2
    kv.create_or_update_secret.side_effect = [
        hvac.exceptions.InvalidRequest(errors=["check-and-set parameter did not match the current version"]),
        {"data": {"version": 4}}]
    kv.read_secret_metadata.return_value = {"data": {"current_version": 3, "versions": {
        "3": {"deletion_time": "2026-01-01T00:00:00Z", "destroyed": False}}}}
    assert c.write("p", {"a": "b"}, cas=0) == 4
    assert kv.create_or_update_secret.call_args_list[-1] == mock.call(path="p", secret={"a": "b"}, cas=3,
                                                                      mount_point="secret")


@pytest.mark.parametrize("mount,message", [
    ({"type": "kv", "options": {"version": "1"}}, "is KV version 1; these keys need KV version 2"),
    ({"type": "kv", "options": None}, "is KV version 1"),
    ({"type": "transit", "options": {}}, "is a 'transit' secrets engine, not KV"),
])
def test_wrong_engine_or_kv_version(mount, message):
    c = connected()
    c.client.adapter.get.return_value = {"data": mount}
    with pytest.raises(CvmfsError, match=message.replace("(", r"\(")):
        c._check_mount()


def test_login_failure_names_method_and_hint():
    c = client(auth_method="approle", role_id="r", secret_id="s", retries=0)
    hv = mock.MagicMock()
    hv.auth.approle.login.side_effect = hvac.exceptions.InvalidRequest(errors=["invalid role or secret ID"])
    with mock.patch.object(c, "_build_client", return_value=hv):
        with pytest.raises(CvmfsError) as info:
            c.connect()
    assert info.value.message == ("login failed with auth_method=approle at auth/approle: invalid role or secret ID; "
                                  "check role_id and secret_id, and that an AppRole auth method is enabled at auth/approle")
