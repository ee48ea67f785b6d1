"""istio_gateway and gateway_info on the test bed: install, reconcile, in-place upgrade, restart, removal."""

import pytest

from .ansible_run import assert_four_steps
from .conftest import snapshot

pytestmark = pytest.mark.integration

SEED_LABELS = {"istio": "ingressgateway"}


def istioctl_subcommands(result):
    return [" ".join(c["argv"][1:3]) for c in result["istioctl"]["commands"]]


def gateway_args(testbed, namespace, **extra):
    args = {
        "name": "istio-ingressgateway",
        "namespace": namespace,
        "labels": SEED_LABELS,
        "binary_path": str(testbed.istioctl),
        "wait_timeout": 180,
    }
    args.update(extra)
    return args


def test_seed_ingress_gateway_installs_idempotently(ansible, kube, testbed, namespace_factory):
    ns = namespace_factory("ingress")
    args = gateway_args(testbed, ns)
    results = ansible.four_steps("istio_gateway", args)
    assert_four_steps(results)
    check, real, recheck, rerun = results

    assert {o["action"] for o in check["objects"]} == {"create"}
    assert check["diff"], "check mode with diff shows the objects it would create"
    assert "install -y" in istioctl_subcommands(real)
    assert real["namespace_created"] is True
    assert real["deployment"]["ready_replicas"] >= 1
    assert real["iop"]["metadata"] == {"name": "%s.istio-ingressgateway" % ns, "namespace": "istio-system"}
    assert real["iop"]["spec"]["profile"] == "empty"
    # A converged run renders and compares, and never runs `istioctl install`.
    for converged in (recheck, rerun):
        assert "install -y" not in istioctl_subcommands(converged)
        assert {o["action"] for o in converged["objects"]} == {"none"}

    dep = kube.get("apps/v1", "Deployment", "istio-ingressgateway", ns)
    assert dep["spec"]["template"]["metadata"]["labels"]["istio"] == "ingressgateway"
    assert dep["spec"]["template"]["metadata"]["annotations"]["inject.istio.io/templates"] == "gateway"
    namespace = kube.get("v1", "Namespace", ns)
    assert namespace["metadata"]["annotations"]["gateways.istio-ops.io/created-by-collection"] == "true"

    info = ansible.module("gateway_info", {"namespace": ns})
    [gateway] = info["gateways"]
    assert gateway["name"] == "istio-ingressgateway" and gateway["kind"] == "ingress"
    assert SEED_LABELS.items() <= gateway["selector"].items()
    assert gateway["revision"] == "default"
    assert gateway["owner"]["managed_by_collection"] is True
    [service] = [s for s in gateway["services"] if s["name"] == "istio-ingressgateway"]
    assert (
        sum(e["ready"] for e in service["endpoints_by_revision"].values())
        == gateway["deployments"][0]["ready_replicas"]
    )


def test_egress_gateway_with_fixed_replicas_and_service(ansible, kube, testbed, namespace_factory):
    ns = namespace_factory("egress")
    args = {
        "name": "istio-egressgateway",
        "namespace": ns,
        "kind": "egress",
        "replicas": 2,
        "autoscaling": {"enabled": False},
        "binary_path": str(testbed.istioctl),
        "wait_timeout": 180,
        "service": {
            "type": "ClusterIP",
            "ports": [
                {"name": "http2", "port": 80, "target_port": 8080},
                {"name": "https", "port": 443, "target_port": 8443},
            ],
        },
    }
    assert_four_steps(ansible.four_steps("istio_gateway", args))
    dep = kube.get("apps/v1", "Deployment", "istio-egressgateway", ns)
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["selector"]["matchLabels"]["istio"] == "egressgateway"
    assert kube.list("autoscaling/v2", "HorizontalPodAutoscaler", ns) == []
    svc = kube.get("v1", "Service", "istio-egressgateway", ns)
    assert svc["spec"]["type"] == "ClusterIP"
    assert sorted(p["port"] for p in svc["spec"]["ports"]) == [80, 443]

    # A changed parameter is a change, applied once.
    args["replicas"] = 3
    changed = ansible.module("istio_gateway", args, diff=True)
    assert changed["changed"] and not changed.get("failed")
    assert [o["kind"] for o in changed["objects"] if o["action"] == "update"] == ["Deployment"]
    assert "replicas: 3" in changed["diff"][0]["after"]
    assert kube.get("apps/v1", "Deployment", "istio-egressgateway", ns)["spec"]["replicas"] == 3
    assert ansible.module("istio_gateway", args)["changed"] is False


def test_in_place_revision_upgrade_and_restart(ansible, kube, testbed, namespace_factory):
    ns = namespace_factory("upgrade")
    args = gateway_args(testbed, ns, replicas=2, autoscaling={"enabled": False})
    first = ansible.module("istio_gateway", args)
    assert first["changed"] and not first.get("failed"), first.get("msg")
    pods_before = {p["metadata"]["name"] for p in kube.list("v1", "Pod", ns)}

    upgrade = gateway_args(
        testbed,
        ns,
        replicas=2,
        autoscaling={"enabled": False},
        revision=testbed.canary_revision,
        binary_path=str(testbed.istioctl_canary),
    )
    results = ansible.four_steps("istio_gateway", upgrade)
    assert_four_steps(results)
    assert results[1]["revision"] == {"before": "default", "after": testbed.canary_revision}
    dep = kube.get("apps/v1", "Deployment", "istio-ingressgateway", ns)
    assert dep["metadata"]["labels"]["istio.io/rev"] == testbed.canary_revision
    pods = kube.list("v1", "Pod", ns, label_selector="istio=ingressgateway")
    assert {p["metadata"]["labels"]["istio.io/rev"] for p in pods} == {testbed.canary_revision}
    assert not pods_before & {p["metadata"]["name"] for p in pods}, "the revision change rolled the pods"

    restarted = ansible.module("istio_gateway", dict(upgrade, restart=True))
    assert restarted["changed"] and restarted["restarted"] and not restarted.get("failed")
    after_restart = {p["metadata"]["name"] for p in kube.list("v1", "Pod", ns, label_selector="istio=ingressgateway")}
    assert not after_restart & {p["metadata"]["name"] for p in pods}
    assert restarted["deployment"]["ready_replicas"] == 2


def test_absent_removes_only_what_the_gateway_owns(ansible, kube, testbed, namespace_factory):
    ns = namespace_factory("absent")
    args = gateway_args(testbed, ns)
    assert ansible.module("istio_gateway", args)["changed"]
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "team-data", "namespace": ns},
            "data": {"k": "v"},
        }
    )
    absent = dict(args, state="absent")
    check = ansible.module("istio_gateway", absent, check=True)
    assert (
        check["changed"] and {"kind": "Deployment", "namespace": ns, "name": "istio-ingressgateway"} in check["removed"]
    )
    assert kube.get("apps/v1", "Deployment", "istio-ingressgateway", ns) is not None
    real = ansible.module("istio_gateway", absent)
    assert real["changed"] and not real.get("failed")
    assert kube.get("apps/v1", "Deployment", "istio-ingressgateway", ns) is None
    assert kube.get("v1", "ConfigMap", "team-data", ns) is not None
    assert kube.get("v1", "Namespace", ns) is not None
    assert ansible.module("istio_gateway", absent)["changed"] is False


def _expect_failure(ansible, kube, namespaces, args, fragments, env=None, check=False):
    before = snapshot(kube, namespaces)
    result = ansible.module("istio_gateway", args, env=env, check=check)
    assert result.get("failed"), result
    for fragment in fragments:
        assert fragment in result["msg"], result["msg"]
    assert snapshot(kube, namespaces) == before, "a failed run must leave the cluster untouched"
    return result


@pytest.fixture
def existing_namespace(kube, namespace_factory):
    ns = namespace_factory("bad")
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    return ns


@pytest.mark.parametrize(
    "case, overrides, fragments",
    [
        ("invalid name", {"name": "Istio_GW"}, ["name: 'Istio_GW' is not a valid gateway name"]),
        ("missing istioctl", {"binary_path": "/nonexistent/istioctl"}, ["binary_path", "not an executable file"]),
        (
            "unknown revision",
            {"revision": "9-99"},
            ["revision: no Istio control plane serves revision '9-99'", "installed revisions:"],
        ),
        ("invalid labels", {"labels": {"istio": "bad value"}}, ["labels: value 'bad value'"]),
        (
            "missing namespace without create",
            {"create_namespace": False, "namespace": "does-not-exist-x"},
            ["namespace: 'does-not-exist-x' does not exist"],
        ),
    ],
)
def test_bad_input_fails_clearly_and_changes_nothing(
    ansible, kube, testbed, existing_namespace, case, overrides, fragments
):
    args = gateway_args(testbed, existing_namespace)
    args.update(overrides)
    _expect_failure(ansible, kube, [existing_namespace, args["namespace"]], args, fragments)


def test_istioctl_version_must_match_control_plane(ansible, kube, testbed, existing_namespace):
    args = gateway_args(testbed, existing_namespace, binary_path=str(testbed.istioctl_canary))
    _expect_failure(
        ansible, kube, [existing_namespace], args, ["binary_path: istioctl", "does not match", "skip_version_check"]
    )


def test_namespace_with_injection_disabled_fails_or_is_fixed(ansible, kube, testbed, existing_namespace):
    kube.patch("v1", "Namespace", existing_namespace, None, {"metadata": {"labels": {"istio-injection": "disabled"}}})
    args = gateway_args(testbed, existing_namespace)
    _expect_failure(
        ansible, kube, [existing_namespace], args, ["istio-injection=disabled", "'auto'", "fix_injection_label: true"]
    )
    fixed = ansible.module("istio_gateway", dict(args, fix_injection_label=True))
    assert fixed["changed"] and not fixed.get("failed"), fixed.get("msg")
    labels = kube.get("v1", "Namespace", existing_namespace)["metadata"].get("labels") or {}
    assert "istio-injection" not in labels


def test_colliding_labels_fail(ansible, kube, testbed, existing_namespace):
    kube.create(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "other-team-proxy", "namespace": existing_namespace},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": SEED_LABELS},
                "template": {
                    "metadata": {"labels": SEED_LABELS},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        }
    )
    _expect_failure(
        ansible,
        kube,
        [existing_namespace],
        gateway_args(testbed, existing_namespace),
        ["labels:", "other-team-proxy", "choose labels unique"],
    )


def test_connection_errors_name_the_option(ansible, kube, testbed, existing_namespace, tmp_path):
    args = gateway_args(testbed, existing_namespace)
    _expect_failure(
        ansible,
        kube,
        [existing_namespace],
        args,
        ["kubeconfig: cannot read"],
        env={"K8S_AUTH_KUBECONFIG": str(tmp_path / "missing")},
    )
    unreachable = dict(args, host="https://127.0.0.1:9", api_key="not-a-real-token", kubeconfig=None)
    result = _expect_failure(
        ansible,
        kube,
        [existing_namespace],
        unreachable,
        ["cannot reach the Kubernetes API"],
        env={"K8S_AUTH_KUBECONFIG": ""},
    )
    assert "not-a-real-token" not in result["_raw"]


def test_gateway_info_lists_control_planes(ansible, testbed):
    info = ansible.module("gateway_info", {"namespace": "istio-system"})
    assert not info.get("failed"), info.get("msg")
    planes = {p["revision"]: p for p in info["control_planes"]}
    assert planes["default"]["version"] == testbed.default_version
    assert planes[testbed.canary_revision]["version"] == testbed.canary_version
    assert planes["default"]["istiod"] == ["istiod"]
