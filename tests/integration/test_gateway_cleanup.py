"""gateway_cleanup on the test bed: one gateway goes, istiod, other gateways and applications stay.

No test runs a real purge: the bed's control planes are shared by concurrently running tests. The
purge is exercised in check mode (server-side dry-run deletes) and through its refusals; the real
run is covered by the unit tests against an in-memory cluster.
"""

import json
import subprocess
import uuid

import pytest
import yaml

from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.cleanup import PURGE_CONFIRMATION
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import strip_noise

from .ansible_run import assert_four_steps
from .conftest import snapshot

pytestmark = pytest.mark.integration

# A deliberate independent copy of ownership.OWNED_KINDS (the kinds of Istio's gateway charts, written out from
# the charts): a kind dropped from the collection's table would then show up here as left behind.
CHART_KINDS = [
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
]


def install(ansible, testbed, name, namespace, labels):
    args = {
        "name": name,
        "namespace": namespace,
        "labels": labels,
        "binary_path": str(testbed.istioctl),
        "wait_timeout": 180,
    }
    result = ansible.module("istio_gateway", args)
    assert result["changed"] and not result.get("failed"), result.get("msg")
    return result


def objects_of(kube, namespace, prefix):
    """kind/name -> object (without server noise) of the chart objects whose name starts with prefix."""
    found = {}
    for api_version, kind in CHART_KINDS:
        for obj in kube.list(api_version, kind, namespace):
            if obj["metadata"]["name"].startswith(prefix):
                found["%s/%s" % (kind, obj["metadata"]["name"])] = json.dumps(strip_noise(obj), sort_keys=True)
    return found


def control_plane(kube):
    """What a gateway cleanup must never touch: istiod Deployments and Services, webhooks, CRDs."""
    state = {}
    for api_version, kind, namespace in (
        ("apps/v1", "Deployment", "istio-system"),
        ("v1", "Service", "istio-system"),
        ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", None),
        ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", None),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition", None),
    ):
        for obj in kube.list(api_version, kind, namespace):
            state["%s/%s" % (kind, obj["metadata"]["name"])] = obj["metadata"]["uid"]
    return state


def istio_system(kube):
    """The objects in istio-system (snapshot() also lists every namespace, which concurrent tests change)."""
    return sorted(k for k in snapshot(kube, ["istio-system"]) if not k.startswith("Namespace/"))


def canary(name, namespace, stable):
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {L.CANARY_OF: stable}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
    }


def removed_names(result):
    return {"%s/%s" % (r["kind"], r["name"]) for r in result["removed"]}


def test_shared_gateway_leaves_istiod_and_the_second_gateway(ansible, kube, testbed, namespace_factory):
    ns = namespace_factory("shared")
    install(ansible, testbed, "istio-ingressgateway", ns, {"istio": "ingressgateway-" + ns})
    install(ansible, testbed, "second-gateway", ns, {"istio": "second-" + ns})
    kube.create(canary("istio-ingressgateway-canary", ns, "istio-ingressgateway"))
    plane = control_plane(kube)
    second = objects_of(kube, ns, "second-gateway")
    assert "Deployment/second-gateway" in second
    untouched = snapshot(kube, [ns])

    args = {"name": "istio-ingressgateway", "namespace": ns, "wait_timeout": 120}
    results = ansible.four_steps("gateway_cleanup", args)
    assert_four_steps(results)
    check, real, recheck, rerun = results

    expected = {
        "Deployment/istio-ingressgateway",
        "Service/istio-ingressgateway",
        "ServiceAccount/istio-ingressgateway-service-account",
        "Deployment/istio-ingressgateway-canary",
    }
    assert expected <= removed_names(check), check["removed"]
    assert removed_names(check) == removed_names(real)
    assert check["diff"]["before"].count("\n") == len(check["removed"])
    assert all(r["namespace"] == ns for r in real["removed"])
    assert real["gateway"]["installed_by"] == "collection"
    assert not recheck["removed"] and not rerun["removed"]

    after = snapshot(kube, [ns])
    assert [k for k in untouched if k not in after and "istio-ingressgateway" not in k] == []
    assert objects_of(kube, ns, "istio-ingressgateway") == {}
    assert objects_of(kube, ns, "second-gateway") == second
    assert control_plane(kube) == plane
    # The collection created the namespace, but the second gateway still lives there.
    namespace = real["namespace"]
    assert namespace["created_by_collection"] and not namespace["deleted"]
    assert {"kind": "Deployment", "namespace": ns, "name": "second-gateway"} in namespace["remaining"]
    assert kube.get("v1", "Namespace", ns) is not None


def test_dedicated_gateway_keeps_the_application_and_its_namespace(ansible, kube, testbed, namespace_factory):
    ns = namespace_factory("shop")
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    app = canary("shop-api", ns, "x")
    app["metadata"]["labels"] = {"app": "shop-api"}
    app["spec"]["replicas"] = 1
    kube.create(app)
    kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shop-settings", "namespace": ns}})
    install(ansible, testbed, "shop-gateway", ns, {"istio": "shop-" + ns})
    config = ansible.module(
        "gateway_config",
        {
            "name": "shop",
            "gateway_name": "shop-gateway",
            "gateway_namespace": ns,
            "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["./shop.example.com"]}],
        },
    )
    assert config["changed"] and not config.get("failed"), config.get("msg")
    app_before = json.dumps(strip_noise(kube.get("apps/v1", "Deployment", "shop-api", ns)), sort_keys=True)

    result = ansible.module(
        "gateway_cleanup",
        {"name": "shop-gateway", "namespace": ns, "gateway_configs": True, "delete_namespace": True},
    )
    assert result["changed"] and not result.get("failed"), result.get("msg")
    assert "Gateway/shop" in removed_names(result) and "Deployment/shop-gateway" in removed_names(result)
    assert kube.get("networking.istio.io/v1", "Gateway", "shop", ns) is None
    namespace = result["namespace"]
    assert not namespace["deleted"] and not namespace["created_by_collection"]
    assert "Deployment shop-api" in namespace["reason"]
    assert any("was kept" in w for w in result.get("warnings", []))
    assert kube.get("v1", "Namespace", ns) is not None
    assert json.dumps(strip_noise(kube.get("apps/v1", "Deployment", "shop-api", ns)), sort_keys=True) == app_before
    assert kube.get("v1", "ConfigMap", "shop-settings", ns) is not None
    assert objects_of(kube, ns, "shop-gateway") == {}


def test_namespace_created_by_the_collection_and_left_empty_is_deleted(ansible, kube, testbed, namespace_factory):
    ns = namespace_factory("alone")
    install(ansible, testbed, "istio-ingressgateway", ns, {"istio": "alone-" + ns})
    results = ansible.four_steps("gateway_cleanup", {"name": "istio-ingressgateway", "namespace": ns})
    assert_four_steps(results)
    check, real, recheck, _rerun = results
    assert check["namespace"]["deleted"] and real["namespace"]["deleted"], (check["namespace"], real["namespace"])
    assert real["namespace"]["reason"] == "created by this collection and nothing else is left in it"
    assert kube.get("v1", "Namespace", ns) is None, "the module waits until the namespace is gone"
    assert recheck["namespace"]["reason"] == "it does not exist"


def install_two_gateway_operator(kube, testbed, tmp_path, ns, iop_name):
    """`istioctl install` of a hand-written IstioOperator `iop_name` holding gateways gw-a and gw-b in a new `ns`."""
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    iop = {
        "apiVersion": "install.istio.io/v1alpha1",
        "kind": "IstioOperator",
        "metadata": {"name": iop_name, "namespace": "istio-system"},
        "spec": {
            "profile": "empty",
            "components": {
                "ingressGateways": [
                    {"name": gw, "namespace": ns, "enabled": True, "label": {"istio": "%s-%s" % (gw, ns)}}
                    for gw in ("gw-a", "gw-b")
                ]
            },
            "values": {"gateways": {"istio-ingressgateway": {"injectionTemplate": "gateway"}}},
        },
    }
    path = tmp_path / "iop.yaml"
    path.write_text(yaml.safe_dump(iop))
    proc = subprocess.run(
        [str(testbed.istioctl), "install", "-y", "-f", str(path), "--kubeconfig", str(testbed.kubeconfig)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return iop


def test_hand_made_operator_with_two_gateways_loses_only_one(kube, ansible, testbed, namespace_factory, tmp_path):
    ns = namespace_factory("hand")
    iop = install_two_gateway_operator(kube, testbed, tmp_path, ns, "hand-" + uuid.uuid4().hex[:6])
    gw_b = objects_of(kube, ns, "gw-b")
    assert "Deployment/gw-b" in gw_b and "ServiceAccount/gw-b-service-account" in gw_b

    # Installed by hand: refused, naming its IstioOperator, until the user opts in to adopting it.
    refused = ansible.module("gateway_cleanup", {"name": "gw-a", "namespace": ns})
    assert refused["failed"] and "IstioOperator %s" % iop["metadata"]["name"] in refused["msg"]
    assert "set adopt: true" in refused["msg"] and objects_of(kube, ns, "gw-b") == gw_b
    results = ansible.four_steps("gateway_cleanup", {"name": "gw-a", "namespace": ns, "adopt": True})
    assert_four_steps(results)
    real = results[1]
    assert real["gateway"]["installed_by"] == "istioctl"
    assert real["gateway"]["owner"][L.OWNING_RESOURCE] == iop["metadata"]["name"]
    assert {"Deployment/gw-a", "Service/gw-a", "ServiceAccount/gw-a-service-account"} <= removed_names(real)
    assert all(r["name"].startswith("gw-a") for r in real["removed"])
    assert objects_of(kube, ns, "gw-a") == {}
    assert objects_of(kube, ns, "gw-b") == gw_b
    assert not real["namespace"]["deleted"] and "did not create it" in real["namespace"]["reason"]


def test_missing_gateway_is_not_an_error(ansible, kube, namespace_factory):
    ns = namespace_factory("none")
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    result = ansible.module("gateway_cleanup", {"name": "never-installed", "namespace": ns})
    assert not result.get("failed") and result["changed"] is False and result["removed"] == []
    assert result["gateway"]["found"] is False


@pytest.mark.parametrize(
    "overrides, fragments",
    [
        ({}, ["confirm_purge: purge: true runs `istioctl uninstall --purge`", PURGE_CONFIRMATION]),
        ({"confirm_purge": "yes"}, ["confirm_purge:", "every Istio object in the cluster"]),
        (
            {"confirm_purge": PURGE_CONFIRMATION, "binary": "default"},
            ["binary_path: istioctl 1.30", "is older than the control plane"],
        ),
    ],
)
def test_purge_refusals_change_nothing(ansible, kube, testbed, overrides, fragments):
    overrides = dict(overrides)
    binary = testbed.istioctl if overrides.pop("binary", None) else testbed.istioctl_canary
    args = dict({"purge": True, "binary_path": str(binary)}, **overrides)
    before = istio_system(kube)
    plane = control_plane(kube)
    result = ansible.module("gateway_cleanup", args)
    assert result.get("failed"), result
    for fragment in fragments:
        assert fragment in result["msg"], result["msg"]
    assert not result.get("changed")
    assert istio_system(kube) == before
    assert control_plane(kube) == plane


def test_purge_in_check_mode_lists_the_whole_control_plane(ansible, kube, testbed):
    plane = control_plane(kube)
    result = ansible.module(
        "gateway_cleanup",
        {"purge": True, "confirm_purge": PURGE_CONFIRMATION, "binary_path": str(testbed.istioctl_canary)},
        check=True,
    )
    assert not result.get("failed"), result.get("msg")
    assert result["changed"]
    listed = {(r["kind"], r["namespace"], r["name"]) for r in result["removed"]}
    for istiod in kube.list("apps/v1", "Deployment", "istio-system", label_selector="app=istiod"):
        assert ("Deployment", "istio-system", istiod["metadata"]["name"]) in listed
    assert ("CustomResourceDefinition", None, "gateways.networking.istio.io") in listed
    assert any(kind == "MutatingWebhookConfiguration" for kind, _ns, _n in listed)
    assert result["purge"]["remaining"] == []
    assert not any("uninstall" in c["argv"] for c in result["purge"]["istioctl"]["commands"])
    assert control_plane(kube) == plane
