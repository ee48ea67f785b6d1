"""Credentials go only where the user sent them, and binaries reach the cluster the module reaches.

Each case runs the Python client (gateway_info) and istioctl (istio_gateway) with the same connection options:
explicit options over a kubeconfig that points at a decoy server, an inline kubeconfig at -vvv, validate_certs
false with a CA, two impersonated groups, a proxy that demands credentials (as an option, and from
HTTPS_PROXY) and no_proxy; then a job cancel (SIGTERM) and a hanging istioctl in the middle of an install.
"""

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import KubeClient

from .common import COUNTS, token_connection, uid
from .faults import wait_until
from .servers import ConnectProxy, WebServer

pytestmark = pytest.mark.integration

GW = "conn-gw"


@pytest.fixture(scope="module")
def admin_token(kube, testbed):
    """host, ca_cert and a real token of a cluster-admin ServiceAccount (TokenRequest API)."""
    sfx = uid()
    ns = "rel-conn-sa-" + sfx
    binding = "rel-conn-admin-" + sfx
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    kube.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "ops", "namespace": ns}})
    kube.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": binding},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "ops", "namespace": ns}],
        }
    )
    try:
        yield token_connection(kube, testbed, ns, "ops")
    finally:
        kube.delete("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", binding)
        kube.delete("v1", "Namespace", ns)


def gateway(namespace, istioctl, **extra):
    args = {
        "name": GW,
        "namespace": namespace,
        "labels": {"istio": namespace},
        "binary_path": istioctl,
        "replicas": 1,
        "autoscaling": {"enabled": False},
        "wait_timeout": 120,
    }
    args.update(extra)
    return args


def decoy_kubeconfig(tmp_path, server, token):
    path = tmp_path / "decoy-kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "decoy",
                "clusters": [{"name": "decoy", "cluster": {"server": server}}],
                "users": [{"name": "decoy", "user": {"token": token}}],
                "contexts": [{"name": "decoy", "context": {"cluster": "decoy", "user": "decoy"}}],
            }
        )
    )
    return str(path)


NO_KUBECONFIG = {"K8S_AUTH_KUBECONFIG": "", "KUBECONFIG": ""}


def ok(result):
    assert not result.get("failed"), result.get("msg")
    return result


def test_explicit_host_and_token_win_over_the_kubeconfig(ansible, testbed, admin_token, namespace_factory, tmp_path):
    """kubeconfig (another cluster, another token) + host/api_key/ca_cert: both clients go to `host` with
    `api_key`; the kubeconfig's server sees no request and its token goes nowhere."""
    namespace = namespace_factory("rel-conn-explicit")
    with WebServer(status=403, body=b"{}", content_type="application/json") as decoy:
        connection = dict(admin_token, kubeconfig=decoy_kubeconfig(tmp_path, decoy.url, "decoy-token-" + uid()))
        info = ok(ansible.module("gateway_info", dict(connection, namespace=namespace), env=NO_KUBECONFIG))
        installed = ok(ansible.module("istio_gateway", gateway(namespace, str(testbed.istioctl), **connection)))
        assert info["gateways"] == [] and installed["changed"]
        assert installed["deployment"]["ready_replicas"] == 1
        assert decoy.requests == [], "the kubeconfig's server was called: %s" % decoy.requests[:5]


def test_an_awx_credential_with_empty_optional_fields_connects(ansible, testbed, admin_token, namespace_factory):
    """AWX injects every field of a credential type, the unset ones as "": a boolean, a list, a context and a
    proxy that are "" mean unset, for the Python client and istioctl alike."""
    namespace = namespace_factory("rel-conn-empty")
    env = dict(
        NO_KUBECONFIG,
        K8S_AUTH_HOST=admin_token["host"],
        K8S_AUTH_API_KEY=admin_token["api_key"],
        K8S_AUTH_SSL_CA_CERT=admin_token["ca_cert"],
        **{
            "K8S_AUTH_" + name: ""
            for name in (
                "VERIFY_SSL",
                "PERSIST_CONFIG",
                "IMPERSONATE_GROUPS",
                "CONTEXT",
                "PROXY",
                "NO_PROXY",
                "IMPERSONATE_USER",
                "USERNAME",
                "PASSWORD",
            )
        },
    )
    info = ok(ansible.module("gateway_info", {"namespace": namespace}, env=env))
    installed = ok(ansible.module("istio_gateway", gateway(namespace, str(testbed.istioctl)), env=env))
    assert info["gateways"] == [] and installed["changed"] and installed["deployment"]["ready_replicas"] == 1


def test_inline_kubeconfig_secrets_stay_out_of_every_output(ansible, admin_token, namespace_factory):
    """A kubeconfig given as a dict: its token shows nowhere at -vvv, on success or with a bad context."""
    namespace = namespace_factory("rel-conn-inline")
    inline = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "bed",
        "clusters": [
            {"name": "bed", "cluster": {"server": admin_token["host"], "certificate-authority": admin_token["ca_cert"]}}
        ],
        "users": [{"name": "ops", "user": {"token": admin_token["api_key"]}}],
        "contexts": [{"name": "bed", "context": {"cluster": "bed", "user": "ops"}}],
    }
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "inline kubeconfig",
                    "istio_ops.gateways.gateway_info": {"kubeconfig": inline, "namespace": namespace},
                    "register": "good",
                },
                {
                    "name": "inline kubeconfig, bad context",
                    "istio_ops.gateways.gateway_info": {"kubeconfig": inline, "context": "nope"},
                    "ignore_errors": True,
                    "register": "bad",
                },
                {"name": "show", "ansible.builtin.debug": {"var": "bad"}},
            ],
        }
    ]
    env = dict(NO_KUBECONFIG, ANSIBLE_STDOUT_CALLBACK="default")
    rc, _parsed, output = ansible.playbook(yaml.safe_dump(play), env=env, verbosity=3)
    assert rc == 0, output[-3000:]
    assert admin_token["host"] in output, "the search must see the (public) server URL"
    COUNTS["secret_markers_searched"] += 2
    leaked = [form for form in (admin_token["api_key"], admin_token["api_key"].rsplit(".", 1)[1]) if form in output]
    COUNTS["secrets_leaked"] += len(leaked)
    assert not leaked, "the inline kubeconfig's token is in the -vvv output"
    assert "context: 'nope' is not a context of the inline kubeconfig" in output


def test_validate_certs_false_with_a_ca_works_for_istioctl_too(ansible, testbed, admin_token, namespace_factory):
    namespace = namespace_factory("rel-conn-insecure")
    connection = dict(admin_token, validate_certs=False)
    result = ok(ansible.module("istio_gateway", gateway(namespace, str(testbed.istioctl), **connection)))
    assert result["changed"] and result["deployment"]["ready_replicas"] == 1


def test_each_impersonated_group_is_its_own_group(ansible, testbed, kube, namespace_factory):
    """The bed's admin impersonates a user with no rights of its own in two groups, one of them
    system:masters: the API server must see two groups (one comma-joined group would have no rights)."""
    namespace = namespace_factory("rel-conn-groups")
    who = {"impersonate_user": "rel-nobody-" + uid(), "impersonate_groups": ["rel-team", "system:masters"]}
    review = KubeClient(dict(kube.params, **who)).request(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    assert set(review["status"]["userInfo"]["groups"]) >= {"rel-team", "system:masters"}
    ok(ansible.module("gateway_info", dict(who, namespace=namespace)))
    installed = ok(ansible.module("istio_gateway", gateway(namespace, str(testbed.istioctl), **who)))
    assert installed["changed"]


def test_proxy_with_credentials_and_no_proxy_for_both_clients(
    ansible, testbed, admin_token, namespace_factory, monkeypatch
):
    namespace = namespace_factory("rel-conn-proxy")
    credentials = "rel-proxy-user:rel-proxy-" + uid()
    with ConnectProxy(credentials=credentials) as proxy:
        through = dict(admin_token, proxy=proxy.url, proxy_headers={"proxy_basic_auth": credentials})
        ok(ansible.module("gateway_info", dict(through, namespace=namespace), env=NO_KUBECONFIG))
        python_tunnels = len(proxy.authorized())
        installed = ok(ansible.module("istio_gateway", gateway(namespace, str(testbed.istioctl), **through)))
        assert installed["changed"]
        assert python_tunnels >= 1 and len(proxy.authorized()) > python_tunnels, proxy.tunnels
        assert proxy.refused() == [], "a client came without the proxy's credentials: %s" % proxy.refused()

        seen = len(proxy.tunnels)
        bypass = dict(through, no_proxy="127.0.0.1")
        ok(ansible.module("gateway_info", dict(bypass, namespace=namespace), env=NO_KUBECONFIG))
        again = ok(ansible.module("istio_gateway", gateway(namespace, str(testbed.istioctl), replicas=2, **bypass)))
        assert again["changed"] and len(proxy.tunnels) == seen, "no_proxy was not honoured by both clients"

        # From the environment, as a shell or an execution environment sets it: the kubeconfig alone passes
        # through to istioctl, which reads the variables as Go does (a loopback server is never proxied), and
        # the Python client reads them the same way: both go direct to the bed on 127.0.0.1.
        host, port = proxy.url.split("://")[1].split(":")
        env = {"HTTPS_PROXY": "http://%s@%s:%s" % (credentials, host, port), "NO_PROXY": ""}
        ok(ansible.module("gateway_info", {"namespace": namespace}, env=env))
        third = ok(ansible.module("istio_gateway", gateway(namespace, str(testbed.istioctl), replicas=1), env=env))
        assert third["changed"] and len(proxy.tunnels) == seen, proxy.tunnels[seen:]


def _module_processes(marker):
    """PIDs of running Python module processes (AnsiballZ_...) whose command line mentions `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and "AnsiballZ_" in cmdline and "python" in cmdline:
            found.append(int(entry.name))
    return found


def stalling_istioctl(tmp_path, real, subcommand):
    """A binary_path that runs the real istioctl, except `subcommand`, where it writes its PID and sleeps."""
    pid_file = tmp_path / "stalled.pid"
    path = tmp_path / "istioctl-stall"
    path.write_text(
        '#!/bin/sh\nif [ "$1" = %s ]; then echo $$ > %s; sleep 600; exit 0; fi\nexec %s "$@"\n'
        % (subcommand, pid_file, real)
    )
    path.chmod(0o755)
    return str(path), pid_file


def _alive(pid):
    try:
        os.kill(pid, 0)
        return Path("/proc/%d/stat" % pid).read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_job_cancel_mid_install_leaves_no_credentials_and_converges(
    ansible, testbed, admin_token, namespace_factory, tmp_path, signum
):
    """SIGTERM/SIGHUP to the module while istioctl installs: istioctl is stopped, the private kubeconfig
    (with the token) is gone, the task fails saying why, and a re-run converges."""
    namespace = namespace_factory("rel-conn-cancel")
    stall, pid_file = stalling_istioctl(tmp_path, testbed.istioctl, "install")
    remote_tmp = tmp_path / "remote-tmp"
    env = dict(NO_KUBECONFIG, ANSIBLE_REMOTE_TMP=str(remote_tmp), ANSIBLE_KEEP_REMOTE_FILES="1")
    args = gateway(namespace, stall, **admin_token)
    COUNTS["faults_injected"] += 1
    outcome = []
    job = threading.Thread(target=lambda: outcome.append(ansible.module("istio_gateway", args, env=env)))
    job.start()
    wait_until("istioctl install to start", pid_file.exists, timeout=120)
    # Only this test's module: its files live under this test's own ANSIBLE_REMOTE_TMP.
    modules = _module_processes(str(remote_tmp))
    assert modules, "no module process found"
    for pid in modules:
        os.kill(pid, signum)
    job.join(timeout=120)
    result = outcome[0]
    assert result.get("failed") and "interrupted by %s" % signal.Signals(signum).name in result["msg"], result
    stalled = int(pid_file.read_text())
    wait_until("the stalled istioctl to be killed", lambda: not _alive(stalled), timeout=10)
    # ANSIBLE_KEEP_REMOTE_FILES keeps the module's files: only the module itself can have removed its own.
    left = list(remote_tmp.rglob("istio_ops_*")) if remote_tmp.exists() else []
    assert left == [], "private files survived the cancel: %s" % left
    assert admin_token["api_key"] not in "".join(
        p.read_text(errors="replace") for p in remote_tmp.rglob("*") if p.is_file() and "AnsiballZ" not in p.name
    )
    first = ok(ansible.module("istio_gateway", gateway(namespace, str(testbed.istioctl), **admin_token)))
    second = ok(ansible.module("istio_gateway", gateway(namespace, str(testbed.istioctl), **admin_token)))
    assert first["changed"] and not second["changed"]
    COUNTS["faults_survived"] += 1


def test_a_hanging_istioctl_is_killed_after_the_wait_timeout(ansible, testbed, namespace_factory, tmp_path):
    namespace = namespace_factory("rel-conn-hang")
    stall, pid_file = stalling_istioctl(tmp_path, testbed.istioctl, "install")
    COUNTS["faults_injected"] += 1
    started = time.monotonic()
    result = ansible.module("istio_gateway", gateway(namespace, stall, wait_timeout=5))
    elapsed = time.monotonic() - started
    assert result.get("failed") and "istioctl install -y did not finish within 15s and was killed" in result["msg"]
    assert elapsed < 90, elapsed
    assert not _alive(int(pid_file.read_text()))
    converged = ok(ansible.module("istio_gateway", gateway(namespace, str(testbed.istioctl))))
    assert converged["changed"]
    COUNTS["faults_survived"] += 1
