# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one resolved connection to the API server: the Python client and every binary use it.

Order as kubernetes.core: a kubeconfig (given, or the default one when no host is given), else the
in-cluster service account; explicit options then override, on every request. (The kubeconfig
loader installs a refresh hook that resets host, CA, certificates and token before each request;
left alone, it would send the kubeconfig's token to its own cluster whatever `host` and `api_key`
say.) Binaries get either the user's own kubeconfig and context, when nothing overrides them, or a
kubeconfig written from this resolved connection, with the proxy decided here and the proxy
environment removed, so that istioctl and helm reach exactly the server the module reaches.

Inputs are checked before any request, so that a bad CA file, a host without a scheme or a file
that is no kubeconfig fails naming the option instead of ending as "cannot reach".
"""

import base64
import ipaddress
import os
import ssl

try:
    from urllib.parse import quote, unquote, urlparse, urlunparse
    from urllib.request import getproxies
except ImportError:  # pragma: no cover - Python 2 is not supported
    pass

try:
    import urllib3
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.client.rest import should_bypass_proxies
    from kubernetes.config.config_exception import ConfigException

    HAS_KUBERNETES = True
except ImportError:  # pragma: no cover - reported by the module
    HAS_KUBERNETES = False

    class ConfigException(Exception):
        pass

    def should_bypass_proxies(url, no_proxy):
        return False


try:
    import yaml
except ImportError:  # pragma: no cover - reported by run_module
    yaml = None

from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import GatewayError

_YAML_ERROR = yaml.YAMLError if yaml is not None else ValueError

# Options that, when given, replace what the kubeconfig says.
EXPLICIT_OPTIONS = (
    "host",
    "api_key",
    "username",
    "password",
    "validate_certs",
    "ca_cert",
    "client_cert",
    "client_key",
    "proxy",
    "no_proxy",
    "proxy_headers",
)
# Every connection option; an empty string in any of them means "not set" (AWX renders unset fields as "").
CONNECTION_OPTIONS = EXPLICIT_OPTIONS + ("kubeconfig", "context", "impersonate_user", "impersonate_groups")
# What binaries would otherwise take from the environment instead of the resolved connection.
PROXY_ENVIRONMENT = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")
# Keys of a kubeconfig user entry whose values are secrets.
_SECRET_USER_KEYS = ("token", "password", "client-key-data")


class ConfigError(GatewayError):
    """The connection options cannot make a client (kubeconfig, host, certificates)."""


def normalise(params):
    """The connection options with empty strings, lists and dicts taken as unset."""
    clean = dict(params)
    if isinstance(clean.get("impersonate_groups"), list):  # [""] is a survey's empty answer, not a group
        clean["impersonate_groups"] = [g for g in clean["impersonate_groups"] if str(g).strip()]
    for key in CONNECTION_OPTIONS:
        value = clean.get(key)
        if value in ("", [], {}) or (isinstance(value, str) and not value.strip()):
            clean[key] = None
    headers = clean.get("proxy_headers")
    if isinstance(headers, dict):
        headers = {k: v for k, v in headers.items() if v not in (None, "")}
        clean["proxy_headers"] = headers or None
    return clean


def explicit_options(params):
    """The explicit options that are set (names), in a stable order."""
    return [k for k in EXPLICIT_OPTIONS if params.get(k) is not None]


def kubeconfig_secrets(kubeconfig):
    """The secret strings of an inline kubeconfig, to mask in all output: tokens, passwords, private keys,
    auth-provider credentials, exec plugin environment values, and proxy credentials. Only these: every
    masked string is replaced wherever it occurs, so masking ordinary words (a region in exec args, a
    cluster name) would garble results."""
    found = set()
    if not isinstance(kubeconfig, dict):
        return found
    for entry in kubeconfig.get("users") or []:
        user = (entry.get("user") if isinstance(entry, dict) else None) or {}
        if not isinstance(user, dict):
            continue
        found.update(str(user[k]) for k in _SECRET_USER_KEYS if user.get(k))
        provider = (user.get("auth-provider") or {}).get("config") or {}
        if isinstance(provider, dict):
            found.update(str(v) for k, v in provider.items() if v and k not in ("cmd-path", "cmd-args", "expiry-key"))
        for item in (user.get("exec") or {}).get("env") or []:
            if isinstance(item, dict) and item.get("value"):
                found.add(str(item["value"]))
    for entry in kubeconfig.get("clusters") or []:
        cluster = (entry.get("cluster") if isinstance(entry, dict) else None) or {}
        if isinstance(cluster, dict) and cluster.get("proxy-url"):
            found.update(proxy_secrets(cluster["proxy-url"]))
    return {v for v in found if len(v) >= 4}  # shorter ones would mask all over the output and hide nothing


def proxy_secrets(url):
    """The password of a proxy URL (http://user:password@host:port), as given and decoded, to mask in all output:
    the option `proxy` is no secret as a whole, so Ansible would show it in every task's invocation."""
    if not url:
        return set()
    password = urlparse(str(url)).password
    return {v for v in (password, unquote(password or "")) if v and len(v) >= 4}


def _describe_kubeconfig(kubeconfig):
    """How error messages name a kubeconfig: its path, never an inline one's content."""
    if isinstance(kubeconfig, dict):
        return "the inline kubeconfig (a dict)"
    return repr(kubeconfig) if kubeconfig else "the default kubeconfig (%s)" % default_kubeconfig_path()


def default_kubeconfig_path():
    return os.environ.get("KUBECONFIG") or "~/.kube/config"


def _default_kubeconfig_exists():
    paths = os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)
    return any(p and os.path.exists(os.path.expanduser(p)) for p in paths)


def check_kubeconfig_shape(option, data, where):
    """A loaded kubeconfig must be a mapping with `clusters` and `contexts` lists."""
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("clusters"), list)
        or not isinstance(data.get("contexts"), list)
    ):
        raise ConfigError(
            "%s: %s is not a kubeconfig (it has no `clusters` and `contexts` lists); give a kubeconfig file such as "
            "`kubectl config view --raw` writes, or host and api_key" % (option, where)
        )


def check_context(data, context, where):
    names = [c.get("name") for c in data.get("contexts") or [] if isinstance(c, dict)]
    wanted = context or data.get("current-context")
    if not wanted:
        raise ConfigError(
            "context: %s sets no current-context; give context (one of: %s)" % (where, ", ".join(names) or "none")
        )
    if wanted not in names:
        raise ConfigError(
            "context: %r is not a context of %s; give one of: %s"
            % (wanted, where, ", ".join(map(str, names)) or "none")
        )


def _load_file(path, option="kubeconfig"):
    if os.path.isdir(path):
        raise ConfigError("%s: %r is a directory, not a kubeconfig file" % (option, path))
    if not os.access(path, os.R_OK):
        raise ConfigError(
            "%s: cannot read %r; give a readable kubeconfig file (option kubeconfig or K8S_AUTH_KUBECONFIG), "
            "or host and api_key" % (option, path)
        )
    try:
        with open(path) as handle:
            return yaml.safe_load(handle)
    except (_YAML_ERROR, UnicodeDecodeError) as exc:
        raise ConfigError("%s: %r is not YAML (%s); give a kubeconfig file" % (option, path, _first_line(exc)))


def check_host(host):
    parsed = urlparse(host)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        suggestion = "https://" + host.split("://", 1)[-1]
        raise ConfigError(
            "host: %r has no http(s) scheme; give the API server URL, e.g. %r (kubectl assumes https)"
            % (host, suggestion)
        )


def check_pem(option, path, what="certificate"):
    """A PEM file that exists, is a file and holds a `what` (certificate or private key)."""
    if os.path.isdir(path):
        raise ConfigError("%s: %r is a directory, not a PEM file" % (option, path))
    if not os.path.isfile(path):
        raise ConfigError("%s: %r does not exist; give the path of a PEM %s file" % (option, path, what))
    if not os.access(path, os.R_OK):
        raise ConfigError("%s: cannot read %r; give a readable PEM file" % (option, path))
    with open(path, "rb") as handle:
        text = handle.read()
    marker = b"PRIVATE KEY-----" if what == "private key" else b"-----BEGIN CERTIFICATE-----"
    if marker not in text:
        raise ConfigError(
            "%s: %r holds no PEM %s%s; give a PEM file (-----BEGIN %s-----)"
            % (option, path, what, " (it is empty)" if not text.strip() else "", what.upper())
        )


def check_ca(option, path):
    check_pem(option, path)
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError("%s: %r holds no usable CA certificate (%s)" % (option, path, _first_line(exc)))


def check_client_pair(cert_option, cert, key_option, key):
    if bool(cert) != bool(key):
        given, missing = (cert_option, key_option) if cert else (key_option, cert_option)
        raise ConfigError("%s: given without %s; a client certificate needs both files" % (given, missing))
    if not cert:
        return
    check_pem(cert_option, cert)
    check_pem(key_option, key, what="private key")
    try:
        ssl.create_default_context().load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise ConfigError(
            "%s/%s: the key %r does not match the certificate %r, or one is unreadable (%s); give the key that "
            "belongs to the certificate" % (cert_option, key_option, key, cert, _first_line(exc))
        )


def _first_line(exc):
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else exc.__class__.__name__


def build_configuration(params):
    """A kubernetes.client.Configuration for the resolved connection (see the module docstring)."""
    if not HAS_KUBERNETES:
        raise ConfigError("the 'kubernetes' Python package is required (pip install kubernetes)")
    params = normalise(params)
    if params.get("host"):
        check_host(params["host"])
    if params.get("ca_cert"):
        check_ca("ca_cert", params["ca_cert"])
    check_client_pair("client_cert", params.get("client_cert"), "client_key", params.get("client_key"))
    cfg = k8s_client.Configuration()
    kubeconfig = params.get("kubeconfig")
    context = params.get("context")
    where = _describe_kubeconfig(kubeconfig)
    try:
        if isinstance(kubeconfig, dict):
            check_kubeconfig_shape("kubeconfig", kubeconfig, where)
            check_context(kubeconfig, context, where)
            k8s_config.load_kube_config_from_dict(kubeconfig, context=context, client_configuration=cfg)
        elif kubeconfig or context or (not params.get("host") and _default_kubeconfig_exists()):
            if kubeconfig:
                path = os.path.expanduser(kubeconfig)
                data = _load_file(path)
                check_kubeconfig_shape("kubeconfig", data, where)
                check_context(data, context, where)
            k8s_config.load_kube_config(
                config_file=os.path.expanduser(kubeconfig) if kubeconfig else None,
                context=context,
                client_configuration=cfg,
                persist_config=bool(params.get("persist_config")),
            )
        elif not params.get("host"):
            k8s_config.load_incluster_config(client_configuration=cfg)
    except ConfigError:
        raise
    except (ConfigException, OSError, ValueError, TypeError, AttributeError, KeyError, _YAML_ERROR) as exc:
        # Not only ConfigException: a directory, a YAML syntax error or a file that is no mapping raise others.
        # The message names the kubeconfig by path; an inline one's content (tokens) is never echoed.
        raise ConfigError(
            "kubeconfig: cannot build a Kubernetes client from %s (context %r): %s; set kubeconfig (or "
            "K8S_AUTH_KUBECONFIG) to a valid file, or host and api_key"
            % (where, context, _scrub(str(exc), kubeconfig_secrets(kubeconfig)))
        )
    _override(cfg, params)
    _environment_proxy(cfg, params)
    _proxy_credentials(cfg)
    loader_hook = cfg.refresh_api_key_hook
    if loader_hook is not None:

        def refresh(configuration):
            loader_hook(configuration)  # may renew an expiring kubeconfig token (exec plugins)...
            configuration.refresh_api_key_hook = refresh  # ...and re-registers itself, which must not stick
            _override(configuration, params)  # explicit options win, on every request
            _proxy_credentials(configuration)

        cfg.refresh_api_key_hook = refresh
    if not cfg.host:
        raise ConfigError("host: no API server; give kubeconfig, or host (K8S_AUTH_HOST) with credentials")
    check_host(cfg.host)
    if cfg.ssl_ca_cert and not params.get("ca_cert") and cfg.verify_ssl:
        check_ca("kubeconfig (certificate-authority of %s)" % where, cfg.ssl_ca_cert)
    return cfg


def _override(cfg, params):
    """Explicit options over what a kubeconfig (or the in-cluster config) said."""
    if params.get("host"):
        cfg.host = params["host"].rstrip("/")
    explicit_credential = any(params.get(k) for k in ("api_key", "client_cert", "username"))
    if explicit_credential:
        # The user sent these credentials, and only these: the kubeconfig's go nowhere.
        cfg.api_key, cfg.api_key_prefix = {}, {}
        cfg.cert_file = cfg.key_file = None
    if params.get("api_key"):
        cfg.api_key = {"BearerToken": params["api_key"]}
        cfg.api_key_prefix = {"BearerToken": "Bearer"}
    if params.get("username"):
        cfg.username = params["username"]
    if params.get("password"):
        cfg.password = params["password"]
    if params.get("validate_certs") is not None:
        cfg.verify_ssl = params["validate_certs"]
    if params.get("ca_cert"):
        cfg.ssl_ca_cert = params["ca_cert"]
    if params.get("client_cert"):
        cfg.cert_file, cfg.key_file = params["client_cert"], params["client_key"]
    if params.get("proxy"):
        cfg.proxy = params["proxy"]
    if params.get("no_proxy"):
        cfg.no_proxy = params["no_proxy"]
    headers = params.get("proxy_headers") or {}
    if headers:
        cfg.proxy_headers = urllib3.util.make_headers(**headers)


def _environment_proxy(cfg, params):
    """The proxy environment as Go (istioctl, helm) reads it, when neither an option nor the kubeconfig set
    a proxy: HTTPS_PROXY/HTTP_PROXY by scheme, NO_PROXY, and never for localhost or a loopback address."""
    if params.get("proxy") or not getattr(cfg, "_proxy_from_env", cfg.proxy is None):
        return
    proxies = getproxies()
    host = urlparse(cfg.host).hostname or ""
    loopback = host == "localhost"
    try:
        loopback = loopback or ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    cfg.proxy = None if loopback else proxies.get(urlparse(cfg.host).scheme) or proxies.get("all")
    if not params.get("no_proxy"):
        cfg.no_proxy = proxies.get("no")


def _proxy_credentials(cfg):
    """Credentials in a proxy URL (option, HTTPS_PROXY or the kubeconfig's proxy-url) as the header urllib3
    needs: it ignores them in the URL, where client-go (istioctl, helm) uses them."""
    parsed = urlparse(cfg.proxy or "")
    if not parsed.username:
        return
    host = parsed.hostname + (":%d" % parsed.port if parsed.port else "")
    cfg.proxy = urlunparse(parsed._replace(netloc=host))
    auth = "%s:%s" % (unquote(parsed.username), unquote(parsed.password or ""))
    extra = dict(cfg.proxy_headers or {})
    extra.setdefault("proxy-authorization", urllib3.util.make_headers(proxy_basic_auth=auth)["proxy-authorization"])
    cfg.proxy_headers = extra


def _scrub(text, secrets):
    for secret in secrets:
        text = text.replace(secret, "********")
    return text


def passes_through(params):
    """Whether binaries can use the user's own kubeconfig and context as they are.

    Not with explicit options or an inline kubeconfig. A proxy from the environment does not stop it: the
    binary reads the same variables, and build_configuration gives the Python client Go's reading of them
    (loopback never proxied), so both decide alike, and the binary keeps the kubeconfig's own token
    refresh (exec plugins) and impersonation.
    """
    params = normalise(params)
    if isinstance(params.get("kubeconfig"), dict) or explicit_options(params):
        return False
    return bool(params.get("kubeconfig")) or _default_kubeconfig_exists()


def binary_kubeconfig(cfg):
    """A kubeconfig (dict) for exactly the connection `cfg` resolves to, for istioctl and helm."""
    cluster = {"server": cfg.host}
    if not cfg.verify_ssl:
        cluster["insecure-skip-tls-verify"] = True  # client-go refuses it together with a CA
    elif cfg.ssl_ca_cert:
        cluster["certificate-authority"] = cfg.ssl_ca_cert
    if cfg.tls_server_name:
        cluster["tls-server-name"] = cfg.tls_server_name
    proxy = effective_proxy(cfg)
    if proxy:
        cluster["proxy-url"] = proxy
    user = {}
    token = cfg.get_api_key_with_prefix("BearerToken", alias="authorization")
    if token:
        user["token"] = token.split(" ", 1)[1] if token.lower().startswith("bearer ") else token
    if cfg.cert_file and cfg.key_file:
        user["client-certificate"] = cfg.cert_file
        user["client-key"] = cfg.key_file
    if cfg.username and cfg.password:
        user["username"] = cfg.username
        user["password"] = cfg.password
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "istio-ops",
        "clusters": [{"name": "istio-ops", "cluster": cluster}],
        "users": [{"name": "istio-ops", "user": user}],
        "contexts": [{"name": "istio-ops", "context": {"cluster": "istio-ops", "user": "istio-ops"}}],
    }


def effective_proxy(cfg):
    """The proxy URL the Python client uses for cfg.host (None when none or bypassed), with its credentials."""
    if not cfg.proxy or should_bypass_proxies(cfg.host, cfg.no_proxy or ""):
        return None
    auth = _proxy_basic_auth(cfg.proxy_headers)
    if not auth:
        return cfg.proxy
    parsed = urlparse(cfg.proxy)
    user, _sep, password = auth.partition(":")
    netloc = "%s:%s@%s" % (quote(user, safe=""), quote(password, safe=""), parsed.netloc.rpartition("@")[2])
    return urlunparse(parsed._replace(netloc=netloc))


def _proxy_basic_auth(headers):
    value = (headers or {}).get("proxy-authorization") or (headers or {}).get("Proxy-Authorization")
    if not value or not value.lower().startswith("basic "):
        return None
    try:
        return base64.b64decode(value.split(" ", 1)[1]).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


def binary_environment(passthrough):
    """Environment variables to remove for a binary: with a written kubeconfig, the proxy is decided here."""
    if passthrough:
        return ()
    return tuple(name for base in PROXY_ENVIRONMENT for name in (base, base.lower()))


def impersonation_args(params):
    params = normalise(params)
    args = []
    if params.get("impersonate_user"):
        args += ["--as", params["impersonate_user"]]
    for group in params.get("impersonate_groups") or []:
        args += ["--as-group", group]
    return args


def passthrough_args(params):
    params = normalise(params)
    args = []
    if params.get("kubeconfig"):
        args += ["--kubeconfig", os.path.expanduser(params["kubeconfig"])]
    if params.get("context"):
        args += ["--context", params["context"]]
    return args
