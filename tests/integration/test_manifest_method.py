"""The manifest method on the test bed: its render, applied by server-side apply, gives pods the bed's istiod
injects and that become Ready; a second, dry-run apply equals the live objects, so a converged run writes
nothing (the plan compares exactly that)."""

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils import install_manifest
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import strip_noise
from tests.unit.plugins.module_utils.render_facets import gateway_params

pytestmark = pytest.mark.integration

TIMEOUT = 180


def options(namespace, **overrides):
    return gateway_params(namespace=namespace, **overrides)


def create_changes(objects):
    return [
        {"api_version": o["apiVersion"], "kind": o["kind"], "name": o["metadata"]["name"], "action": "create"}
        for o in objects
    ]


def live(kube, obj):
    meta = obj["metadata"]
    return kube.get(obj["apiVersion"], obj["kind"], meta["name"], meta["namespace"])


def assert_injected_and_ready(kube, params, version):
    deployment = kube.wait_rollout(params["name"], params["namespace"], TIMEOUT)
    selector = L.selector_string(deployment["spec"]["selector"]["matchLabels"])
    pods = kube.list("v1", "Pod", params["namespace"], label_selector=selector)
    assert len(pods) == deployment["spec"]["replicas"] >= 1
    for pod in pods:
        (proxy,) = [c for c in pod["spec"]["containers"] if c["name"] == "istio-proxy"]
        assert proxy["image"] != "auto", "the injection webhook did not run"
        assert proxy["image"].endswith("/proxyv2:%s" % version), proxy["image"]
        ready = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
        assert ready.get("Ready") == "True", pod["status"]


@pytest.mark.parametrize(
    "case",
    [
        "default revision, HPA, LoadBalancer",
        "canary revision, fixed replicas, PDB, NodePort",
    ],
)
def test_render_applied_is_injected_ready_and_converges(case, kube, testbed, namespace_factory):
    namespace = namespace_factory("manifest")
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    if case.startswith("default"):
        params, version = options(namespace), testbed.default_version
    else:
        params = options(
            namespace,
            revision=testbed.canary_revision,
            replicas=2,
            autoscaling={"enabled": False, "min": None, "max": None},
            pod_disruption_budget={"max_unavailable": 1},
            service={"type": "NodePort", "ports": [{"name": "http2", "port": 80, "target_port": 8080}]},
            resources={"requests": {"cpu": "50m"}},
        )
        version = testbed.canary_version
    method = install_manifest.ManifestMethod(None, kube, params, {})
    desired = method.render(params)

    method.apply(desired, create_changes(desired))
    assert sorted(method.describe()["applied"]) == sorted("%s/%s" % (o["kind"], o["metadata"]["name"]) for o in desired)
    assert_injected_and_ready(kube, params, version)

    for obj in desired:
        before = live(kube, obj)
        assert method.owns(before), obj["kind"]
        managers = {(m["manager"], m["operation"]) for m in before["metadata"]["managedFields"]}
        assert (L.FIELD_MANAGER, "Apply") in managers, (obj["kind"], managers)
        # The plan's comparison: the dry run of the same render is the live object, field for field.
        assert strip_noise(method.dry_run(obj)) == strip_noise(before), obj["kind"]
        # And a real re-apply of it is a no-op: the API server stores nothing new.
        again = kube.apply(obj, field_manager=method.field_manager)
        assert again["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], obj["kind"]

    # The comparison sees a change: other resources give a Deployment that differs from the live one.
    changed = dict(params, resources={"limits": {"cpu": "3"}})
    (deployment,) = [o for o in method.render(changed) if o["kind"] == "Deployment"]
    assert strip_noise(method.dry_run(deployment)) != strip_noise(live(kube, deployment))


def test_claim_then_apply_drops_what_the_previous_method_set(kube, namespace_factory):
    """A ServiceAccount as istioctl applies it (its field manager, chart and owner labels): claimed and applied,
    it holds exactly the manifest render's labels; without the managedFields transfer the chart's would stay."""
    namespace = namespace_factory("manifest-claim")
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    params = options(namespace)
    method = install_manifest.ManifestMethod(None, kube, params, {})
    (account,) = [o for o in method.render(params) if o["kind"] == "ServiceAccount"]
    meta = account["metadata"]
    istioctl_labels = {"helm.sh/chart": "istio-ingress-1.0.0", L.OWNING_RESOURCE: "x", "app": "istio-ingressgateway"}
    istioctl_made = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": dict(meta, labels=istioctl_labels)}
    kube.apply(istioctl_made, field_manager=L.ISTIOCTL_FIELD_MANAGER)

    kube.patch("v1", "ServiceAccount", meta["name"], namespace, method.claim_patch(live(kube, account)))
    kube.apply(account, field_manager=method.field_manager)
    after = live(kube, account)
    assert after["metadata"]["labels"] == meta["labels"]
    assert method.owns(after)
    assert L.ISTIOCTL_FIELD_MANAGER not in {m["manager"] for m in after["metadata"]["managedFields"]}
    assert strip_noise(method.dry_run(account)) == strip_noise(after)
