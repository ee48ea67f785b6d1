"""gateway_config on the test bed: Gateway resources bound to a live gateway, checked before they are written."""

import base64
import uuid

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L

from .ansible_run import assert_four_steps

pytestmark = pytest.mark.integration

API = "networking.istio.io/v1"
GATEWAY = "istio-ingressgateway"


@pytest.fixture(scope="module")
def shared(ansible, kube, testbed):
    """One shared gateway (unique labels, so other tests' gateways do not match), a TLS Secret, an app namespace."""
    suffix = uuid.uuid4().hex[:6]
    ns = "cfg-gw-" + suffix
    app_ns = "cfg-app-" + suffix
    labels = {"istio": "cfg-" + suffix}
    try:
        result = ansible.module(
            "istio_gateway",
            {
                "name": GATEWAY,
                "namespace": ns,
                "labels": labels,
                "binary_path": str(testbed.istioctl),
                "wait_timeout": 180,
            },
        )
        assert result["changed"] and not result.get("failed"), result.get("msg")
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": app_ns}})
        pem = base64.b64encode(b"not a real certificate, only its presence is checked").decode()
        kube.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/tls",
                "metadata": {"name": "public-cert", "namespace": ns},
                "data": {"tls.crt": pem, "tls.key": pem},
            }
        )
        yield {"ns": ns, "app_ns": app_ns, "labels": labels}
    finally:
        for name in (ns, app_ns):
            kube.delete("v1", "Namespace", name)


def https(credential, hosts):
    return {
        "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
        "hosts": hosts,
        "tls": {"mode": "SIMPLE", "credential_name": credential, "min_protocol_version": "TLSV1_2"},
    }


def http_redirect(hosts):
    return {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": hosts, "tls": {"https_redirect": True}}


def test_delegated_hosts_with_tls_in_the_gateway_namespace(ansible, kube, shared):
    ns, app_ns = shared["ns"], shared["app_ns"]
    hosts = [app_ns + "/*.example.com"]
    args = {
        "name": "public",
        "gateway_name": GATEWAY,
        "gateway_namespace": ns,
        "servers": [https("public-cert", hosts), http_redirect(hosts)],
    }
    results = ansible.four_steps("gateway_config", args)
    assert_four_steps(results)
    check, real, recheck, rerun = results
    assert check["operation"] == "create" and check["diff"]["before"] == ""
    assert "credentialName: public-cert" in check["diff"]["after"]
    assert real["operation"] == "create" and recheck["operation"] == "none" and rerun["operation"] == "none"
    gateway = kube.get("apps/v1", "Deployment", GATEWAY, ns)
    assert real["selector"] == gateway["spec"]["selector"]["matchLabels"]
    assert shared["labels"].items() <= real["selector"].items()
    assert real["gateway"] == {"name": GATEWAY, "namespace": ns}
    assert real["delegated_hosts"] == {app_ns: ["*.example.com"]}
    assert real["secrets"] == [{"name": "public-cert", "namespace": ns, "found": True, "problem": None}]
    assert [g["name"] for g in real["matched_gateways"]] == [GATEWAY]
    assert real["matched_gateways"][0]["pods"] >= 1

    live = kube.get(API, "Gateway", "public", ns)
    assert live["metadata"]["labels"] == {
        L.GATEWAY_OF: GATEWAY,
        L.GATEWAY_NAMESPACE_OF: ns,
        L.MANAGED_BY: L.MANAGED_BY_VALUE,
    }
    assert live["spec"]["selector"] == real["selector"]
    assert live["spec"]["servers"][0]["tls"] == {
        "mode": "SIMPLE",
        "credentialName": "public-cert",
        "minProtocolVersion": "TLSV1_2",
    }
    assert live["spec"]["servers"][1]["tls"] == {"httpsRedirect": True}

    # A change is an update, shown in the diff, applied once.
    args["servers"] = [https("public-cert", hosts)]
    update = ansible.module("gateway_config", args, diff=True)
    assert update["changed"] and update["operation"] == "update" and "httpsRedirect" in update["diff"]["before"]
    assert len(kube.get(API, "Gateway", "public", ns)["spec"]["servers"]) == 1
    assert ansible.module("gateway_config", args)["changed"] is False

    removal = ansible.four_steps("gateway_config", {"name": "public", "namespace": ns, "state": "absent"})
    assert_four_steps(removal)
    assert kube.get(API, "Gateway", "public", ns) is None


def test_explicit_selector_that_matches(ansible, kube, shared):
    ns = shared["ns"]
    args = {
        "name": "by-selector",
        "namespace": shared["app_ns"],
        "gateway_namespace": ns,
        "selector": shared["labels"],
        "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["./app.example.com"]}],
    }
    result = ansible.module("gateway_config", args)
    assert result["changed"] and not result.get("failed"), result.get("msg")
    assert result["gateway"] == {"name": GATEWAY, "namespace": ns}
    live = kube.get(API, "Gateway", "by-selector", shared["app_ns"])
    assert live["spec"]["selector"] == shared["labels"]
    assert live["metadata"]["labels"][L.GATEWAY_OF] == GATEWAY


def test_mismatched_selector_fails_and_writes_nothing(ansible, kube, shared):
    ns = shared["ns"]
    result = ansible.module(
        "gateway_config",
        {
            "name": "wrong",
            "gateway_namespace": ns,
            "selector": {"istio": "ingressgateway-typo"},
            "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
        },
    )
    assert result.get("failed")
    assert (
        'selector: {"istio": "ingressgateway-typo"} selects no gateway pods in namespace \'%s\'' % ns in result["msg"]
    )
    # The label sets that would work: the gateway Deployment's selector, which istioctl extends with `app`.
    usable = '{"app": "%s", "istio": "%s"} (%s/%s)' % (GATEWAY, shared["labels"]["istio"], ns, GATEWAY)
    assert "gateways there select: " + usable in result["msg"]
    assert kube.get(API, "Gateway", "wrong", ns) is None


def test_missing_tls_secret_fails_or_warns(ansible, kube, shared):
    ns = shared["ns"]
    args = {
        "name": "needs-cert",
        "gateway_name": GATEWAY,
        "gateway_namespace": ns,
        "servers": [https("not-there", ["*.example.com"])],
    }
    failed = ansible.module("gateway_config", args)
    assert failed.get("failed")
    assert "servers[0].tls.credential_name: Secret 'not-there' does not exist in namespace '%s'" % ns in failed["msg"]
    assert "missing_secret: warn" in failed["msg"]
    assert kube.get(API, "Gateway", "needs-cert", ns) is None

    # The Secret must be in the gateway's namespace: one in the application namespace does not count.
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "not-there", "namespace": shared["app_ns"]},
            "data": {"tls.crt": "eA==", "tls.key": "eA=="},
        }
    )
    assert ansible.module("gateway_config", dict(args, namespace=shared["app_ns"])).get("failed")
    assert kube.get(API, "Gateway", "needs-cert", shared["app_ns"]) is None

    warned = ansible.module("gateway_config", dict(args, missing_secret="warn"))
    assert warned["changed"] and not warned.get("failed"), warned.get("msg")
    assert any("not-there" in w for w in warned.get("warnings", []))
    assert warned["secrets"][0]["found"] is False
    assert kube.get(API, "Gateway", "needs-cert", ns) is not None


def test_bad_servers_fail_before_the_cluster_is_asked(ansible, shared):
    result = ansible.module(
        "gateway_config",
        {
            "name": "bad",
            "gateway_name": GATEWAY,
            "gateway_namespace": shared["ns"],
            "servers": [{"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": ["Not A Host"]}],
        },
    )
    assert result.get("failed")
    assert "servers[0].hosts: 'Not A Host' is not a host" in result["msg"]
    assert "servers[0].tls.mode: a HTTPS port needs a TLS mode" in result["msg"]
