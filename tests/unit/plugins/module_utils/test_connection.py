"""The resolved connection: explicit options win on every request, binaries get the same decision, secrets
stay out of messages, and connection mistakes fail naming the option (pure logic: nothing is contacted)."""

import base64
import datetime
import json
import os

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.istio_ops.gateways.plugins.module_utils import connection
from ansible_collections.istio_ops.gateways.plugins.module_utils.connection import ConfigError, build_configuration

KUBECONFIG_TOKEN = "kubeconfig-token-of-cluster-a"


def kubeconfig_dict(server="https://cluster-a.example:6443", token=KUBECONFIG_TOKEN, **cluster):
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "a",
        "clusters": [{"name": "a", "cluster": dict({"server": server, "insecure-skip-tls-verify": True}, **cluster)}],
        "users": [{"name": "a", "user": {"token": token}}],
        "contexts": [{"name": "a", "context": {"cluster": "a", "user": "a"}}],
    }


@pytest.fixture
def kubeconfig_file(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig_dict()))
    return str(path)


def bearer(cfg):
    return cfg.get_api_key_with_prefix("BearerToken", alias="authorization")


def self_signed(tmp_path, name):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / (name + ".crt"), tmp_path / (name + ".key")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


def test_explicit_host_and_token_win_over_the_kubeconfig_on_every_request(kubeconfig_file):
    cfg = build_configuration(
        {"kubeconfig": kubeconfig_file, "host": "https://cluster-b.example:6443", "api_key": "token-for-b"}
    )
    # get_api_key_with_prefix runs the loader's refresh hook, as every request does.
    for _request in range(3):
        assert bearer(cfg) == "Bearer token-for-b"
        assert cfg.host == "https://cluster-b.example:6443"
    kubeconfig = connection.binary_kubeconfig(cfg)
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://cluster-b.example:6443"
    assert kubeconfig["users"][0]["user"] == {"token": "token-for-b"}
    assert KUBECONFIG_TOKEN not in json.dumps(kubeconfig)


def test_explicit_client_certificate_replaces_the_kubeconfig_token(kubeconfig_file, tmp_path):
    cert, key = self_signed(tmp_path, "client")
    cfg = build_configuration({"kubeconfig": kubeconfig_file, "client_cert": cert, "client_key": key})
    assert bearer(cfg) is None and (cfg.cert_file, cfg.key_file) == (cert, key)


def test_kubeconfig_alone_is_passed_through_and_keeps_its_refresh(kubeconfig_file):
    params = {"kubeconfig": kubeconfig_file, "context": "a"}
    cfg = build_configuration(params)
    assert bearer(cfg) == "Bearer " + KUBECONFIG_TOKEN and cfg.host == "https://cluster-a.example:6443"
    assert connection.passes_through(params)
    assert connection.passthrough_args(params) == ["--kubeconfig", kubeconfig_file, "--context", "a"]
    assert connection.binary_environment(True) == ()


def test_any_explicit_option_makes_binaries_use_the_resolved_connection(kubeconfig_file):
    for option, value in (("host", "https://b:6443"), ("validate_certs", False), ("no_proxy", "b")):
        assert not connection.passes_through({"kubeconfig": kubeconfig_file, option: value}), option
    assert not connection.passes_through({"kubeconfig": kubeconfig_dict()})
    assert "HTTPS_PROXY" in connection.binary_environment(False)
    assert "no_proxy" in connection.binary_environment(False)


def test_empty_strings_are_unset(kubeconfig_file):
    # AWX renders unset credential fields as "": context "" must not mean a context named "".
    cfg = build_configuration({"kubeconfig": kubeconfig_file, "context": "", "host": "", "api_key": "", "proxy": ""})
    assert cfg.host == "https://cluster-a.example:6443" and bearer(cfg) == "Bearer " + KUBECONFIG_TOKEN
    assert connection.passes_through({"kubeconfig": kubeconfig_file, "host": "", "proxy_headers": {"user_agent": ""}})


def test_empty_environment_variables_and_group_lists_are_unset(monkeypatch):
    # K8S_AUTH_VERIFY_SSL="" is no boolean and K8S_AUTH_IMPERSONATE_GROUPS="" would be the group "": both unset.
    from ansible.module_utils.basic import AnsibleFallbackNotFound

    from ansible_collections.istio_ops.gateways.plugins.module_utils.args import set_env_fallback

    monkeypatch.setenv("K8S_AUTH_VERIFY_SSL", "")
    monkeypatch.setenv("K8S_AUTH_IMPERSONATE_GROUPS", "  ")
    for name in ("K8S_AUTH_VERIFY_SSL", "K8S_AUTH_IMPERSONATE_GROUPS"):
        with pytest.raises(AnsibleFallbackNotFound):
            set_env_fallback(name)
    monkeypatch.setenv("K8S_AUTH_VERIFY_SSL", "false")
    assert set_env_fallback("K8S_AUTH_VERIFY_SSL") == "false"
    assert connection.normalise({"impersonate_groups": [""]})["impersonate_groups"] is None
    assert connection.normalise({"impersonate_groups": ["", "ops"]})["impersonate_groups"] == ["ops"]


def test_validate_certs_false_writes_no_ca_for_binaries(kubeconfig_file, tmp_path):
    ca, _key = self_signed(tmp_path, "ca")
    cfg = build_configuration({"kubeconfig": kubeconfig_file, "ca_cert": ca, "validate_certs": False})
    cluster = connection.binary_kubeconfig(cfg)["clusters"][0]["cluster"]
    assert cluster["insecure-skip-tls-verify"] is True and "certificate-authority" not in cluster


def test_tls_server_name_reaches_binaries(kubeconfig_file, tmp_path):
    path = tmp_path / "sni"
    path.write_text(yaml.safe_dump(kubeconfig_dict(**{"tls-server-name": "api.internal"})))
    cfg = build_configuration({"kubeconfig": str(path), "api_key": "t"})
    assert cfg.tls_server_name == "api.internal"
    assert connection.binary_kubeconfig(cfg)["clusters"][0]["cluster"]["tls-server-name"] == "api.internal"


def test_proxy_credentials_reach_both_clients_and_no_proxy_bypasses_for_both(kubeconfig_file):
    params = {
        "kubeconfig": kubeconfig_file,
        "proxy": "http://proxy.example:3128",
        "proxy_headers": {"proxy_basic_auth": "user:p@ss"},
    }
    cfg = build_configuration(params)
    assert cfg.proxy_headers["proxy-authorization"] == "Basic " + base64.b64encode(b"user:p@ss").decode()
    assert connection.binary_kubeconfig(cfg)["clusters"][0]["cluster"]["proxy-url"] == (
        "http://user:p%40ss@proxy.example:3128"
    )
    bypassed = build_configuration(dict(params, no_proxy="cluster-a.example"))
    assert "proxy-url" not in connection.binary_kubeconfig(bypassed)["clusters"][0]["cluster"]


def test_proxy_from_the_environment_with_credentials(kubeconfig_file, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://envuser:envpass@proxy.example:3128")
    cfg = build_configuration({"kubeconfig": kubeconfig_file, "api_key": "t"})
    assert cfg.proxy == "http://proxy.example:3128"
    assert cfg.proxy_headers["proxy-authorization"] == "Basic " + base64.b64encode(b"envuser:envpass").decode()
    assert connection.effective_proxy(cfg) == "http://envuser:envpass@proxy.example:3128"
    monkeypatch.setenv("NO_PROXY", "cluster-a.example")
    cfg = build_configuration({"kubeconfig": kubeconfig_file, "api_key": "t"})
    assert connection.effective_proxy(cfg) is None
    # As Go reads the environment: a loopback API server is never proxied from it (the kubeconfig alone then
    # passes through to istioctl, which decides the same way).
    monkeypatch.delenv("NO_PROXY")
    for host in ("https://127.0.0.1:6443", "https://localhost:6443", "https://[::1]:6443"):
        assert build_configuration({"kubeconfig": kubeconfig_file, "host": host}).proxy is None, host
    assert connection.passes_through({"kubeconfig": kubeconfig_file})


def test_proxy_header_environment_variables_are_part_of_the_spec():
    from ansible_collections.istio_ops.gateways.plugins.module_utils.args import AUTH_ARG_SPEC

    options = AUTH_ARG_SPEC["proxy_headers"]["options"]
    assert options["proxy_basic_auth"]["fallback"][1] == ["K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH"]
    assert AUTH_ARG_SPEC["proxy_headers"]["apply_defaults"] is True


def test_inline_kubeconfig_secrets_are_listed_and_never_in_errors():
    inline = kubeconfig_dict(token="inline-secret-token")
    inline["users"][0]["user"]["exec"] = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": "aws",
        "args": ["--region", "eu-west-1", "eks", "get-token", "--cluster-name", "prod"],
        "env": [{"name": "CLOUD_SECRET", "value": "exec-env-secret"}],
    }
    inline["users"][0]["user"]["client-key-data"] = "a2V5LWRhdGE="
    inline["clusters"][0]["cluster"]["proxy-url"] = "http://alice:proxy-s3cret@proxy.example:3128"
    secrets = connection.kubeconfig_secrets(inline)
    assert secrets == {"inline-secret-token", "exec-env-secret", "a2V5LWRhdGE=", "proxy-s3cret"}
    with pytest.raises(ConfigError) as err:
        build_configuration({"kubeconfig": inline, "context": "nope"})
    assert "context: 'nope' is not a context of the inline kubeconfig" in err.value.message
    assert "inline-secret-token" not in err.value.message


@pytest.mark.parametrize(
    "url, secrets",
    [
        ("http://alice:proxy-s3cret@proxy.example:3128", {"proxy-s3cret"}),
        ("http://alice:p%40ss-word@proxy.example:3128", {"p%40ss-word", "p@ss-word"}),  # as given and decoded
        ("http://proxy.example:3128", set()),
        ("http://alice:abc@proxy.example:3128", set()),  # too short to mask without garbling the output
        (None, set()),
    ],
)
def test_proxy_url_passwords_are_listed_for_masking(url, secrets):
    """The option `proxy` (K8S_AUTH_PROXY of an AWX credential) shows in every task's invocation: its password
    must be masked there."""
    assert connection.proxy_secrets(url) == secrets


@pytest.mark.parametrize(
    "content, fragment",
    [("", "holds no PEM certificate (it is empty)"), ("not a certificate\n", "holds no PEM certificate")],
)
def test_ca_cert_without_a_certificate(tmp_path, content, fragment):
    path = tmp_path / "ca.crt"
    path.write_text(content)
    with pytest.raises(ConfigError) as err:
        build_configuration({"host": "https://127.0.0.1:6443", "ca_cert": str(path)})
    assert err.value.message.startswith("ca_cert: %r %s" % (str(path), fragment))


def test_ca_cert_directory(tmp_path):
    with pytest.raises(ConfigError) as err:
        build_configuration({"host": "https://127.0.0.1:6443", "ca_cert": str(tmp_path)})
    assert err.value.message == "ca_cert: %r is a directory, not a PEM file" % str(tmp_path)


def test_client_certificate_problems(tmp_path):
    cert, key = self_signed(tmp_path, "client")
    _other_cert, other_key = self_signed(tmp_path, "other")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello\n")
    host = {"host": "https://127.0.0.1:6443"}
    cases = [
        ({"client_cert": str(garbage), "client_key": key}, "client_cert: %r holds no PEM certificate" % str(garbage)),
        ({"client_cert": cert, "client_key": str(garbage)}, "client_key: %r holds no PEM private key" % str(garbage)),
        (
            {"client_cert": cert, "client_key": other_key},
            "client_cert/client_key: the key %r does not match" % other_key,
        ),
        ({"client_cert": cert}, "client_cert: given without client_key"),
    ]
    for params, message in cases:
        with pytest.raises(ConfigError) as err:
            build_configuration(dict(host, **params))
        assert err.value.message.startswith(message), err.value.message


def test_host_without_scheme():
    with pytest.raises(ConfigError) as err:
        build_configuration({"host": "127.0.0.1:6443", "api_key": "t"})
    assert "host: '127.0.0.1:6443' has no http(s) scheme" in err.value.message
    assert "'https://127.0.0.1:6443'" in err.value.message


@pytest.mark.parametrize("text", ["foo: bar\n", "- a\n- b\n", "just a string\n"])
def test_yaml_that_is_not_a_kubeconfig(tmp_path, text):
    path = tmp_path / "not-a-kubeconfig"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        build_configuration({"kubeconfig": str(path)})
    assert err.value.message.startswith("kubeconfig: %r is not a kubeconfig" % str(path))


def test_kubeconfig_ca_file_is_checked_naming_the_kubeconfig(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    empty = tmp_path / "empty-ca.crt"
    empty.write_text("")
    config = kubeconfig_dict(**{"certificate-authority": str(empty)})
    del config["clusters"][0]["cluster"]["insecure-skip-tls-verify"]
    path = tmp_path / "kc"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as err:
        build_configuration({"kubeconfig": str(path)})
    assert err.value.message.startswith("kubeconfig (certificate-authority of %r)" % str(path))
    assert os.path.exists(empty)
