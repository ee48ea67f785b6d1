# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# The option set is plugins/module_utils/args.py AUTH_ARG_SPEC; a unit test keeps the two equal.


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file, or the kubeconfig itself as a dictionary.
      - Without it and without O(host), the default kubeconfig (E(KUBECONFIG) or C(~/.kube/config)) is used,
        else the in-cluster service account.
      - The secrets of an inline kubeconfig (tokens, keys, passwords, exec plugin environment) are never logged
        nor echoed, also not in an error about the kubeconfig.
      - Explicit options (O(host), O(api_key), O(ca_cert), O(client_cert), O(proxy), ...) override what the
        kubeconfig says, on every request of the module and for istioctl alike. When O(api_key),
        O(client_cert) or O(username) is given, the kubeconfig's own credentials are not sent at all.
      - An empty string in any connection option counts as not set (AWX renders unset fields as V("")).
      - Can also be set with the E(K8S_AUTH_KUBECONFIG) environment variable.
    type: raw
  context:
    description:
      - The kubeconfig context to use. Can also be set with E(K8S_AUTH_CONTEXT).
    type: str
  host:
    description:
      - URL of the Kubernetes API server, with its scheme (V(https://api.example.com:6443)).
        Can also be set with E(K8S_AUTH_HOST).
    type: str
  api_key:
    description:
      - Bearer token for the API server. Never logged. Can also be set with E(K8S_AUTH_API_KEY).
    type: str
  username:
    description:
      - Username for basic authentication. Can also be set with E(K8S_AUTH_USERNAME).
    type: str
  password:
    description:
      - Password for basic authentication. Never logged. Can also be set with E(K8S_AUTH_PASSWORD).
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate. Verification is on unless this is V(false)
        or the kubeconfig says C(insecure-skip-tls-verify).
      - Can also be set with E(K8S_AUTH_VERIFY_SSL).
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path to a CA certificate that signs the API server's certificate. Can also be set with E(K8S_AUTH_SSL_CA_CERT).
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description:
      - Path to a client certificate. Can also be set with E(K8S_AUTH_CERT_FILE).
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path to the client certificate's key. Can also be set with E(K8S_AUTH_KEY_FILE).
    type: path
    aliases: [key_file]
  proxy:
    description:
      - URL of an HTTP proxy for API requests (and istioctl's). Can also be set with E(K8S_AUTH_PROXY).
      - Without it, the proxy environment (E(HTTPS_PROXY), E(NO_PROXY)) or the kubeconfig's C(proxy-url) is used;
        istioctl is given the same decision, never its own reading of the environment.
    type: str
  no_proxy:
    description:
      - Comma-separated hosts or CIDRs that bypass O(proxy). Can also be set with E(K8S_AUTH_NO_PROXY).
    type: str
  proxy_headers:
    description:
      - Headers for the proxy.
    type: dict
    suboptions:
      proxy_basic_auth:
        description: C(user:password) for the proxy. Never logged. Can also be set with
          E(K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH).
        type: str
      basic_auth:
        description: C(user:password) sent as basic authentication. Never logged. Can also be set with
          E(K8S_AUTH_PROXY_HEADERS_BASIC_AUTH).
        type: str
      user_agent:
        description: The User-Agent header. Can also be set with E(K8S_AUTH_PROXY_HEADERS_USER_AGENT).
        type: str
  persist_config:
    description:
      - Whether refreshed credentials (for example an OIDC token) are written back to the kubeconfig file.
      - Can also be set with E(K8S_AUTH_PERSIST_CONFIG).
    type: bool
  impersonate_user:
    description:
      - User to impersonate for every request (and for istioctl). Can also be set with E(K8S_AUTH_IMPERSONATE_USER).
    type: str
  impersonate_groups:
    description:
      - Groups to impersonate, each sent as a header of its own. Can also be set with
        E(K8S_AUTH_IMPERSONATE_GROUPS), comma-separated.
    type: list
    elements: str
requirements:
  - python >= 3.9
  - kubernetes >= 29.0.0
  - PyYAML >= 6.0
"""
