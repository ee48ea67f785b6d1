# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs shared by every module, with their constraints.

Each dict here has a twin in plugins/doc_fragments/; a unit test
(tests/unit/plugins/test_doc_fragments.py) keeps the two equal, and
ansible-test's validate-modules checks every module against its docs.
"""

import os

from ansible.module_utils.basic import AnsibleFallbackNotFound


def set_env_fallback(*names):
    """env_fallback that takes a variable set to "" (or blanks) as unset: AWX's credential injectors render an
    empty field so, and "" is no boolean, no list and no host."""
    for name in names:
        value = os.environ.get(name)
        if value is not None and value.strip():
            return value
    raise AnsibleFallbackNotFound


def _env(name):
    return {"fallback": (set_env_fallback, ["K8S_AUTH_" + name])}


# Same names, aliases and K8S_AUTH_* variables as kubernetes.core. An inline kubeconfig (a dict) is not
# no_log as a whole, which would mask every string in it ("v1", cluster names) wherever it occurs in any
# output; run_module masks its secrets (tokens, keys, passwords) instead: connection.kubeconfig_secrets.
AUTH_ARG_SPEC = {
    "kubeconfig": dict(type="raw", **_env("KUBECONFIG")),
    "context": dict(type="str", **_env("CONTEXT")),
    "host": dict(type="str", **_env("HOST")),
    "api_key": dict(type="str", no_log=True, **_env("API_KEY")),
    "username": dict(type="str", **_env("USERNAME")),
    "password": dict(type="str", no_log=True, **_env("PASSWORD")),
    "validate_certs": dict(type="bool", aliases=["verify_ssl"], **_env("VERIFY_SSL")),
    "ca_cert": dict(type="path", aliases=["ssl_ca_cert"], **_env("SSL_CA_CERT")),
    "client_cert": dict(type="path", aliases=["cert_file"], **_env("CERT_FILE")),
    "client_key": dict(type="path", aliases=["key_file"], no_log=False, **_env("KEY_FILE")),
    "proxy": dict(type="str", **_env("PROXY")),
    "no_proxy": dict(type="str", **_env("NO_PROXY")),
    "proxy_headers": dict(
        type="dict",
        apply_defaults=True,  # so that the K8S_AUTH_PROXY_HEADERS_* fallbacks apply without the dict
        options=dict(
            proxy_basic_auth=dict(type="str", no_log=True, **_env("PROXY_HEADERS_PROXY_BASIC_AUTH")),
            basic_auth=dict(type="str", no_log=True, **_env("PROXY_HEADERS_BASIC_AUTH")),
            user_agent=dict(type="str", **_env("PROXY_HEADERS_USER_AGENT")),
        ),
    ),
    "persist_config": dict(type="bool", **_env("PERSIST_CONFIG")),
    "impersonate_user": dict(type="str", **_env("IMPERSONATE_USER")),
    "impersonate_groups": dict(type="list", elements="str", **_env("IMPERSONATE_GROUPS")),
}

WAIT_ARG_SPEC = {
    "wait": dict(type="bool", default=True),
    "wait_timeout": dict(type="int", default=300),
}

ISTIOCTL_ARG_SPEC = {
    "binary_path": dict(type="path"),
    "skip_version_check": dict(type="bool", default=False),
}


def merge_specs(*specs):
    """One argument spec from several; later dicts win on a clash."""
    merged = {}
    for spec in specs:
        merged.update(spec)
    return merged
