"""Every install method on the test bed: istioctl, the Helm chart, plain Kubernetes objects (issue #14).

Each method installs in four steps and writes nothing on converged runs (the API server's audit log counts the
writes), serves egress, upgrades in place to another revision, carries a canary through promote and rollback,
is found by gateway_info with its method and owner, and is removed by gateway_cleanup without the foreign objects
beside it. A gateway moves istioctl -> helm -> manifest -> istioctl with its Service (uid, cluster IP, node ports)
kept and its ready endpoints never below the bound.
"""

import subprocess
import threading
import time

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils import ownership
from tests.testbed import build

from .ansible_run import assert_four_steps
from .audit import four_steps_writing_nothing_when_converged

pytestmark = pytest.mark.integration

METHODS = ("istioctl", "helm", "manifest")
# istioctl's egress, in-place upgrade, cleanup and refusal of foreign objects have tests of their own
# (test_istio_gateway.py, test_gateway_cleanup.py, test_install_safety.py); here the other methods join them.
NEW_METHODS = ("helm", "manifest")
CANARY_CHART = build.chart_version(build.load_versions()["ISTIO_CANARY_VERSION"])


def method_args(testbed, method, revision=None):
    """The options that pick a method and its binary; with revision, the binaries of that revision."""
    canary = revision == testbed.canary_revision
    if method == "istioctl":
        return {"binary_path": str(testbed.istioctl_canary if canary else testbed.istioctl)}
    if method == "helm":
        return {
            "method": "helm",
            "helm": {
                "repository": testbed.chart_repo,
                "version": CANARY_CHART if canary else testbed.default_chart_version,
                "binary_path": str(testbed.helm),
            },
        }
    return {"method": "manifest"}


def gateway_args(testbed, method, namespace, name="gw", revision=None, **extra):
    args = {"name": name, "namespace": namespace, "wait_timeout": 180}
    args.update(method_args(testbed, method, revision))
    if revision:
        args["revision"] = revision
    args.update(extra)
    return args


def owned_kinds(kube, name, namespace):
    return sorted("%s/%s" % (o["kind"], o["metadata"]["name"]) for o in ownership.owned_objects(kube, name, namespace))


def injected_revisions(kube, namespace, name):
    deployment = kube.get("apps/v1", "Deployment", name, namespace)
    selector = L.selector_string(deployment["spec"]["selector"]["matchLabels"])
    pods = [
        p
        for p in kube.list("v1", "Pod", namespace, label_selector=selector)
        if not p["metadata"].get("deletionTimestamp")
    ]
    images = {c["image"] for p in pods for c in p["spec"]["containers"] if c["name"] == "istio-proxy"}
    return {(p["metadata"].get("labels") or {}).get(L.REVISION, "default") for p in pods}, images


@pytest.mark.parametrize("method", METHODS)
def test_install_is_idempotent_and_reported_with_method_and_owner(
    ansible, kube, audit, testbed, namespace_factory, method
):
    ns = namespace_factory("m-" + method)
    args = gateway_args(
        testbed, method, ns, autoscaling={"min": 2, "max": 3}, pod_disruption_budget={"max_unavailable": 1}
    )
    check, real, _recheck, _rerun = four_steps_writing_nothing_when_converged(ansible, audit, args)
    assert {o["action"] for o in check["objects"]} == {"create"}
    # The HPA scales to its minimum at its own pace (its sync period): the rollout awaited is the Deployment's.
    assert real["method"] == method and real["deployment"]["ready_replicas"] >= 1
    hpa = kube.get("autoscaling/v2", "HorizontalPodAutoscaler", "gw", ns)
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 3)
    expected = [
        "Deployment/gw",
        "HorizontalPodAutoscaler/gw",
        "PodDisruptionBudget/gw",
        "Role/gw-sds",
        "RoleBinding/gw-sds",
        "Service/gw",
        "ServiceAccount/gw-service-account",
    ]
    if method == "helm":
        expected = sorted(e.replace("gw-sds", "gw-service-account") for e in expected)
    assert owned_kinds(kube, "gw", ns) == sorted(expected)
    revisions, images = injected_revisions(kube, ns, "gw")
    assert revisions == {"default"} and all("proxyv2" in i for i in images), images
    pdb = kube.get("policy/v1", "PodDisruptionBudget", "gw", ns)
    assert pdb["spec"]["maxUnavailable"] == 1
    service = kube.get("v1", "Service", "gw", ns)
    assert service["spec"]["selector"] == {"app": "istio-ingressgateway", "istio": "ingressgateway"}
    assert sorted(p["port"] for p in service["spec"]["ports"]) == [80, 443, 15021]

    [info] = ansible.module("gateway_info", {"namespace": ns})["gateways"]
    assert info["method"] == method and info["owner"]["managed_by_collection"] is True
    # gateway_config finds the gateway of any method and selects its pods.
    server = {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*.example.com"]}
    config = {"name": "public", "namespace": ns, "gateway_name": "gw", "gateway_namespace": ns, "servers": [server]}
    configured = ansible.module("gateway_config", config)
    assert configured["changed"] and not configured.get("failed"), configured.get("msg")
    gateway = kube.get("networking.istio.io/v1", "Gateway", "public", ns)
    assert gateway["spec"]["selector"] == {"app": "istio-ingressgateway", "istio": "ingressgateway"}
    if method == "helm":
        assert info["owner"]["helm_release"] == "gw" and "Helm release %s/gw" % ns in info["owner"]["description"]
        records = ownership.helm_records(kube, "gw", ns)
        assert len(records) == 1, "a converged run writes no new release record"
    if method == "istioctl":
        assert info["owner"]["iop"] == L.iop_name("gw", ns)


@pytest.mark.parametrize("method", NEW_METHODS)
def test_egress_gateway(ansible, kube, audit, testbed, namespace_factory, method):
    ns = namespace_factory("e-" + method)
    args = gateway_args(testbed, method, ns, name="egress", kind="egress", replicas=2, autoscaling={"enabled": False})
    four_steps_writing_nothing_when_converged(ansible, audit, args)
    deployment = kube.get("apps/v1", "Deployment", "egress", ns)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": "istio-egressgateway", "istio": "egressgateway"}
    assert kube.get("v1", "Service", "egress", ns)["spec"]["type"] == "ClusterIP"
    assert kube.list("autoscaling/v2", "HorizontalPodAutoscaler", ns) == []


@pytest.mark.parametrize("method", ("istioctl", "manifest", "gateway_api"))
def test_fixed_replicas_handed_to_an_autoscaler_keep_their_count(ansible, kube, testbed, namespace_factory, method):
    """Fixed replicas -> autoscaling: an apply that stops setting spec.replicas would reset the Deployment to 1 pod
    (here it would stay at 1: the bed has no metrics, so the HPA never scales up). Not helm: its three-way merge
    deletes the field whoever owns it."""
    ns = namespace_factory("h-" + method.replace("_", ""))
    if method == "gateway_api":
        from .test_gateway_api import api_args, make_namespace

        make_namespace(kube, ns)
        base, deployed = api_args(ns), "gw-istio"
    else:
        base, deployed = gateway_args(testbed, method, ns), "gw"
    fixed = dict(base, replicas=3, autoscaling={"enabled": False})
    first = ansible.module("istio_gateway", fixed)
    assert first["changed"] and not first.get("failed"), first.get("msg")
    scaled = dict(base, autoscaling={"min": 1, "max": 5})
    switched = ansible.module("istio_gateway", scaled)
    assert switched["changed"] and not switched.get("failed"), switched.get("msg")

    def autoscaled():
        hpa = kube.get("autoscaling/v2", "HorizontalPodAutoscaler", deployed, ns)
        return hpa is not None, "no HPA yet"

    kube.wait("the HPA", autoscaled, 60)  # istiod deploys it for a Gateway API gateway after the module returns
    assert kube.get("apps/v1", "Deployment", deployed, ns)["spec"]["replicas"] == 3
    assert ansible.module("istio_gateway", scaled)["changed"] is False


@pytest.mark.parametrize("method", NEW_METHODS)
def test_in_place_revision_upgrade(ansible, kube, testbed, namespace_factory, method):
    ns = namespace_factory("u-" + method)
    first = ansible.module(
        "istio_gateway", gateway_args(testbed, method, ns, replicas=2, autoscaling={"enabled": False})
    )
    assert first["changed"] and not first.get("failed"), first.get("msg")
    upgrade = gateway_args(
        testbed, method, ns, revision=testbed.canary_revision, replicas=2, autoscaling={"enabled": False}
    )
    results = ansible.four_steps("istio_gateway", upgrade)
    assert_four_steps(results)
    assert results[1]["revision"] == {"before": "default", "after": testbed.canary_revision}
    revisions, images = injected_revisions(kube, ns, "gw")
    assert revisions == {testbed.canary_revision}, revisions
    assert all(testbed.canary_revision.replace("-", ".") in i or "1.31" in i for i in images), images


@pytest.mark.parametrize("method", METHODS)
def test_canary_promote_and_rollback(ansible, kube, testbed, namespace_factory, method):
    ns = namespace_factory("c-" + method)
    base = gateway_args(testbed, method, ns, replicas=2, autoscaling={"enabled": False})
    assert not ansible.module("istio_gateway", base).get("failed")
    canary = {"name": "gw", "namespace": ns, "revision": testbed.canary_revision, "weight": 50, "wait_timeout": 180}

    started = ansible.module("gateway_canary", canary)
    assert started["changed"] and not started.get("failed"), started.get("msg")
    # A reconcile of the stable gateway during the canary keeps the split and deletes nothing of the canary.
    during = ansible.module("istio_gateway", base)
    assert not during.get("failed"), during.get("msg")
    assert during.get("canary_in_progress") is True
    assert kube.get("apps/v1", "Deployment", "gw-canary", ns) is not None
    rolled_back = ansible.module("gateway_canary", dict(canary, state="absent"))
    assert rolled_back["changed"] and not rolled_back.get("failed"), rolled_back.get("msg")
    assert kube.get("apps/v1", "Deployment", "gw-canary", ns) is None
    restored = ansible.module("istio_gateway", base)
    # The charts (istioctl, helm) render no PDB for the stable side's one pod during the canary; it comes back now.
    assert [o["kind"] for o in restored["objects"] if o["action"] != "none"] == (
        [] if method == "manifest" else ["PodDisruptionBudget"]
    ), restored["objects"]
    assert ansible.module("istio_gateway", base)["changed"] is False, "rollback restores what the method applied"

    assert not ansible.module("gateway_canary", canary).get("failed")
    promoted = ansible.module("gateway_canary", dict(canary, state="promoted"))
    assert promoted["changed"] and not promoted.get("failed"), promoted.get("msg")
    assert injected_revisions(kube, ns, "gw")[0] == {testbed.canary_revision}
    # The method then takes the promoted revision over without a fight.
    after = gateway_args(
        testbed, method, ns, revision=testbed.canary_revision, replicas=2, autoscaling={"enabled": False}
    )
    settled = ansible.module("istio_gateway", after)
    assert not settled.get("failed"), settled.get("msg")
    assert ansible.module("istio_gateway", after)["changed"] is False


@pytest.mark.parametrize("method", NEW_METHODS)
def test_cleanup_removes_the_gateway_and_leaves_foreign_objects(ansible, kube, testbed, namespace_factory, method):
    ns = namespace_factory("r-" + method)
    assert not ansible.module("istio_gateway", gateway_args(testbed, method, ns)).get("failed")
    foreign = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "gw", "namespace": ns, "labels": {"app": "gw"}}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {
                "name": "gw-other",
                "namespace": ns,
                "labels": {L.INSTALLED_FOR: "gw", L.INSTALLED_BY: method},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "gw-sidecar", "namespace": ns, "labels": {"app": "istio-ingressgateway"}},
            "spec": {"ports": [{"port": 80}], "selector": {"app": "istio-ingressgateway"}},
        },
    ]
    for item in foreign:
        kube.create(item)
    results = ansible.four_steps("gateway_cleanup", {"name": "gw", "namespace": ns})
    assert_four_steps(results)
    real = results[1]
    assert real["gateway"]["installed_by"] == "collection" and real["gateway"]["method"] == method
    assert owned_kinds(kube, "gw", ns) == []
    if method == "helm":
        assert {"kind": "Secret", "namespace": ns, "name": "sh.helm.release.v1.gw.v1"} in real["removed"]
        assert ownership.helm_records(kube, "gw", ns) == []
    for item in foreign:
        assert kube.get(item["apiVersion"], item["kind"], item["metadata"]["name"], ns) is not None, item


@pytest.mark.parametrize("method", NEW_METHODS)
def test_a_hand_made_object_of_the_gateways_name_is_refused_unless_adopted(
    ansible, kube, testbed, namespace_factory, method
):
    ns = namespace_factory("f-" + method)
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "gw-service-account", "namespace": ns, "labels": {L.INSTALLED_FOR: "gw"}},
        }
    )
    refused = ansible.module("istio_gateway", gateway_args(testbed, method, ns))
    assert refused["failed"] and "ServiceAccount %s/gw-service-account is not this collection's" % ns in refused["msg"]
    assert kube.get("apps/v1", "Deployment", "gw", ns) is None, "a refused run writes nothing"
    adopted = ansible.module("istio_gateway", gateway_args(testbed, method, ns, adopt=True))
    assert adopted["changed"] and not adopted.get("failed"), adopted.get("msg")
    assert {"kind": "ServiceAccount", "namespace": ns, "name": "gw-service-account"} in adopted["adopted"]
    assert "ServiceAccount/gw-service-account" in owned_kinds(kube, "gw", ns)


def test_a_hand_made_helm_release_is_found_refused_and_removed_only_on_adopt(ansible, kube, testbed, namespace_factory):
    ns = namespace_factory("hh")
    subprocess.run(
        [
            str(testbed.helm),
            "install",
            "gw",
            "gateway",
            "--repo",
            testbed.chart_repo,
            "--version",
            testbed.default_chart_version,
            "-n",
            ns,
            "--create-namespace",
            "--kubeconfig",
            str(testbed.kubeconfig),
            "--set",
            "service.type=ClusterIP",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    [info] = ansible.module("gateway_info", {"namespace": ns})["gateways"]
    assert info["method"] == "helm" and info["owner"]["managed_by_collection"] is False
    assert info["owner"]["helm_release"] == "gw"
    install = gateway_args(testbed, "helm", ns)
    refused = ansible.module("istio_gateway", install)
    assert refused["failed"] and "Helm release %s/gw" % ns in refused["msg"] and "adopt: true" in refused["msg"]
    canary = ansible.module("gateway_canary", {"name": "gw", "namespace": ns, "revision": testbed.canary_revision})
    assert canary["failed"] and "Helm release %s/gw" % ns in canary["msg"] and "adopt: true" in canary["msg"]
    assert kube.get("apps/v1", "Deployment", "gw-canary", ns) is None
    cleanup = ansible.module("gateway_cleanup", {"name": "gw", "namespace": ns})
    assert cleanup["failed"] and "set adopt: true" in cleanup["msg"]
    assert kube.get("apps/v1", "Deployment", "gw", ns) is not None
    removed = ansible.module("gateway_cleanup", {"name": "gw", "namespace": ns, "adopt": True})
    assert removed["changed"] and not removed.get("failed"), removed.get("msg")
    assert removed["gateway"]["installed_by"] == "helm"
    assert kube.get("apps/v1", "Deployment", "gw", ns) is None and ownership.helm_records(kube, "gw", ns) == []
    assert kube.get("v1", "ServiceAccount", "gw", ns) is None


class EndpointSampler(threading.Thread):
    """Ready endpoints behind a Service, sampled every 0.2 s until stopped: the lowest count seen."""

    def __init__(self, kube, service, namespace):
        super(EndpointSampler, self).__init__(daemon=True)
        self.kube, self.service, self.namespace = kube, service, namespace
        self.lowest, self.samples, self.stopped = None, 0, threading.Event()

    def ready(self):
        slices = self.kube.list(
            "discovery.k8s.io/v1",
            "EndpointSlice",
            self.namespace,
            label_selector="kubernetes.io/service-name=" + self.service,
        )
        return len(
            {
                e["targetRef"]["name"]
                for s in slices
                for e in s.get("endpoints") or []
                if (e.get("conditions") or {}).get("ready")
            }
        )

    def run(self):
        while not self.stopped.is_set():
            count = self.ready()
            self.lowest = count if self.lowest is None else min(self.lowest, count)
            self.samples += 1
            time.sleep(0.2)

    def stop(self):
        self.stopped.set()
        self.join(10)
        return self.lowest


def test_migration_between_every_method_keeps_the_service_and_the_ready_endpoints(
    ansible, kube, testbed, namespace_factory
):
    ns = namespace_factory("mig")
    sizing = {"replicas": 3, "autoscaling": {"enabled": False}, "pod_disruption_budget": {"max_unavailable": 1}}
    first = ansible.module("istio_gateway", gateway_args(testbed, "istioctl", ns, **sizing))
    assert first["changed"] and not first.get("failed"), first.get("msg")
    service = kube.get("v1", "Service", "gw", ns)
    keep = (
        service["metadata"]["uid"],
        service["spec"]["clusterIP"],
        sorted(p["nodePort"] for p in service["spec"]["ports"]),
    )
    sampler = EndpointSampler(kube, "gw", ns)
    assert sampler.ready() == 3
    sampler.start()
    try:
        for method in ("helm", "manifest", "istioctl"):
            args = gateway_args(testbed, method, ns, **sizing)
            check = ansible.module("istio_gateway", args, check=True)
            assert check["changed"] and not check.get("failed"), check.get("msg")
            assert {m["to"] for m in check["migrated"]} == {method}, "check mode says what moves"
            moved = ansible.module("istio_gateway", args)
            assert moved["changed"] and not moved.get("failed"), (method, moved.get("msg"))
            assert "Service" in {m["kind"] for m in moved["migrated"]}
            again = ansible.module("istio_gateway", args)
            assert again["changed"] is False, (
                method,
                [o for o in again["objects"] if o["action"] != "none"],
                again.get("pending"),
            )
            service = kube.get("v1", "Service", "gw", ns)
            now = (
                service["metadata"]["uid"],
                service["spec"]["clusterIP"],
                sorted(p["nodePort"] for p in service["spec"]["ports"]),
            )
            assert now == keep, method
            kinds = {ownership.owner_of(o, "gw", ns) for o in ownership.owned_objects(kube, "gw", ns)}
            assert kinds == {method}, "nothing of the previous method is left (%s)" % kinds
            leftovers = [
                o["metadata"]["name"]
                for api, kind in ownership.OWNED_KINDS
                for o in kube.list(api, kind, ns)
                if (o["metadata"].get("labels") or {}).get(L.OWNING_RESOURCE) and method != "istioctl"
            ]
            assert leftovers == [], "an istioctl owner label stays behind: istioctl could prune %s" % leftovers
            assert (ownership.helm_records(kube, "gw", ns) != []) == (method == "helm")
    finally:
        lowest = sampler.stop()
    assert sampler.samples > 20 and lowest >= 3 - 1, "ready endpoints fell to %s (bound 2)" % lowest
