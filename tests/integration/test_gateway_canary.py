"""gateway_canary on the test bed: split by replicas, promotion, rollback, external mode, HPA, convergence."""

import json
import threading
import time

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils import canary as canary_utils
from ansible_collections.istio_ops.gateways.plugins.module_utils import inventory
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import KubeClient

from .ansible_run import assert_four_steps
from .conftest import snapshot

pytestmark = pytest.mark.integration

GW = "istio-ingressgateway"
CANARY = GW + "-canary"
SEED_LABELS = {"istio": "ingressgateway"}
TIMEOUT = 300


def install_gateway(ansible, testbed, namespace, replicas, autoscaling=None):
    args = {
        "name": GW,
        "namespace": namespace,
        "labels": SEED_LABELS,
        "binary_path": str(testbed.istioctl),
        "replicas": replicas,
        "autoscaling": autoscaling or {"enabled": False},
        "wait_timeout": TIMEOUT,
    }
    result = ansible.module("istio_gateway", args)
    assert result["changed"] and not result.get("failed"), result.get("msg")
    return args


def canary_args(testbed, namespace, **extra):
    args = {"name": GW, "namespace": namespace, "revision": testbed.canary_revision, "wait_timeout": TIMEOUT}
    args.update(extra)
    return args


def run(ansible, args, **kwargs):
    result = ansible.module("gateway_canary", args, **kwargs)
    assert not result.get("failed"), result.get("msg")
    return result


def ready(endpoints):
    """{revision: ready count} without revisions that have no ready endpoint."""
    return {rev: entry["ready"] for rev, entry in endpoints.items() if entry["ready"]}


def live_ready(kube, namespace, service=GW):
    return ready(inventory.endpoints_by_revision(kube, service, namespace))


class ReadyFloor:
    """Samples the endpoints of the gateway Service in the background: `lowest` is the fewest ready
    endpoints seen, `pods` every pod seen behind it."""

    def __init__(self, testbed, namespace, interval=0.2):
        self.kube = KubeClient({"kubeconfig": str(testbed.kubeconfig)})
        self.namespace = namespace
        self.interval = interval
        self.lowest = None
        self.samples = 0
        self.pods = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while not self._stop.is_set():
            endpoints = inventory.endpoints_by_revision(self.kube, GW, self.namespace)
            self.pods.update(pod for entry in endpoints.values() for pod in entry["pods"])
            total = sum(ready(endpoints).values())
            self.lowest = total if self.lowest is None else min(self.lowest, total)
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()


def own_snapshot(kube, namespace):
    """snapshot() of one namespace; other tests create and delete namespaces meanwhile."""
    return {
        key: value
        for key, value in snapshot(kube, [namespace]).items()
        if not key.startswith("Namespace/") or key == "Namespace/" + namespace
    }


def state_annotation(obj):
    return (obj["metadata"].get("annotations") or {}).get(L.STATE)


def test_full_flow_0_10_50_then_promote(ansible, kube, testbed, namespace_factory):
    ns = namespace_factory("canary")
    install_gateway(ansible, testbed, ns, replicas=10)
    rev = testbed.canary_revision
    stable_before = kube.get("apps/v1", "Deployment", GW, ns)
    table = []

    # 0%: the canary exists with no pods; the four-step pattern on the first state change.
    step0 = canary_args(testbed, ns, weight=0, total_replicas=10)
    results = ansible.four_steps("gateway_canary", step0)
    assert_four_steps(results)
    check, real = results[0], results[1]
    assert any("Deployment/%s/%s" % (ns, CANARY) in d["after_header"] for d in check["diff"])
    assert kube.get("apps/v1", "Deployment", CANARY, ns) is not None
    assert real["split"] == {
        "stable": 10,
        "canary": 0,
        "total": 10,
        "weight": 0,
        "ready": {"stable": 10, "canary": 0},
        "effective_weight": 0.0,
    }
    assert ready(real["endpoints_by_revision"]) == {"default": 10}
    table.append(("0%", ready(results[3]["endpoints_by_revision"]), None))

    copy = kube.get("apps/v1", "Deployment", CANARY, ns)
    labels = copy["metadata"]["labels"]
    assert labels[L.REVISION] == rev and labels[L.CANARY_OF] == GW
    assert not set(L.OWNER_LABEL_KEYS) & set(labels)
    assert not set(L.OWNER_LABEL_KEYS) & set(copy["spec"]["template"]["metadata"]["labels"])
    assert copy["spec"]["template"]["metadata"]["labels"][L.REVISION] == rev
    assert copy["spec"]["selector"] == stable_before["spec"]["selector"]
    template, stable_template = copy["spec"]["template"], stable_before["spec"]["template"]
    assert template["metadata"]["annotations"][L.INJECT_TEMPLATES] == "gateway"
    assert template["spec"] == stable_template["spec"], "same pods: image auto, service account, resources"
    spec_managers = [m["manager"] for m in copy["metadata"]["managedFields"] if m.get("subresource") != "status"]
    assert spec_managers == [L.FIELD_MANAGER], "server-side applied by the collection alone"

    # 10%: check mode shows the stable scaling down, writes nothing.
    step10 = canary_args(testbed, ns, weight=10, total_replicas=10)
    before = own_snapshot(kube, ns)
    check10 = run(ansible, step10, check=True, diff=True)
    assert own_snapshot(kube, ns) == before, "check mode writes nothing"
    assert check10["changed"] and check10["split"]["canary"] == 1
    [stable_diff] = [d for d in check10["diff"] if d["after_header"] == "Deployment/%s/%s" % (ns, GW)]
    assert "replicas: 10" in stable_diff["before"] and "replicas: 9" in stable_diff["after"]
    assert "managedFields" not in stable_diff["after"] and "resourceVersion" not in stable_diff["after"]
    assert kube.get("apps/v1", "Deployment", GW, ns)["spec"]["replicas"] == 10
    with ReadyFloor(testbed, ns) as floor:
        real10 = run(ansible, step10)
    assert floor.lowest >= 10, floor.lowest
    assert real10["changed"]
    assert (real10["stable"]["replicas"], real10["canary"]["replicas"]) == (9, 1)
    assert ready(real10["endpoints_by_revision"]) == {"default": 9, rev: 1}
    assert real10["split"]["effective_weight"] == 10.0
    assert json.loads(state_annotation(kube.get("apps/v1", "Deployment", GW, ns))) == {
        "canary": CANARY,
        "replicas": 10,
    }
    assert run(ansible, step10)["changed"] is False
    table.append(("10%", ready(real10["endpoints_by_revision"]), floor.lowest))

    # 50%: the canary grows first, then the stable shrinks, so fewer than 10 pods never serve.
    with ReadyFloor(testbed, ns) as floor:
        real50 = run(ansible, canary_args(testbed, ns, weight=50, total_replicas=10))
    assert floor.samples > 5 and floor.lowest >= 10, (floor.samples, floor.lowest)
    assert real50["actions"][0].startswith("apply canary Deployment")
    assert ready(real50["endpoints_by_revision"]) == {"default": 5, rev: 5}
    assert live_ready(kube, ns) == {"default": 5, rev: 5}
    table.append(("50%", ready(real50["endpoints_by_revision"]), floor.lowest))

    # Promote: the canary carries the gateway, the stable rolls onto the new revision, the canary goes.
    promote = canary_args(testbed, ns, state="promoted")
    with ReadyFloor(testbed, ns) as floor:
        results = ansible.four_steps("gateway_canary", promote)
    assert_four_steps(results)
    assert floor.samples > 5 and floor.lowest >= 10, (floor.samples, floor.lowest)
    promoted = results[1]
    assert any("istio_gateway" in w for w in promoted.get("warnings", [])), "the IstioOperator note is given"
    assert ready(promoted["endpoints_by_revision"]) == {rev: 10}
    assert promoted["canary"]["exists"] is False
    table.append(("promoted", ready(promoted["endpoints_by_revision"]), floor.lowest))
    stable = kube.get("apps/v1", "Deployment", GW, ns)
    assert stable["metadata"]["labels"][L.REVISION] == rev
    assert stable["spec"]["template"]["metadata"]["labels"][L.REVISION] == rev
    assert stable["spec"]["replicas"] == 10 and state_annotation(stable) is None
    assert kube.get("apps/v1", "Deployment", CANARY, ns) is None
    pods = kube.list("v1", "Pod", ns, label_selector="istio=ingressgateway")
    assert {p["metadata"]["labels"][L.REVISION] for p in pods if not p["metadata"].get("deletionTimestamp")} == {rev}
    print("\nendpoints by revision (ready) at each step, and the fewest ready endpoints seen during it:")
    for step, counts, lowest in table:
        print("  %-9s %-28s %s" % (step, counts, lowest))

    # The documented next step: istio_gateway on the new revision agrees with what promotion did.
    upgraded = ansible.module(
        "istio_gateway",
        {
            "name": GW,
            "namespace": ns,
            "labels": SEED_LABELS,
            "replicas": 10,
            "autoscaling": {"enabled": False},
            "revision": rev,
            "binary_path": str(testbed.istioctl_canary),
            "wait_timeout": TIMEOUT,
        },
    )
    assert not upgraded.get("failed"), upgraded.get("msg")
    assert upgraded["deployment"]["revision"] == rev and upgraded["deployment"]["ready_replicas"] == 10


def test_rollback_from_50_percent(ansible, kube, testbed, namespace_factory):
    ns = namespace_factory("rollback")
    gateway = install_gateway(ansible, testbed, ns, replicas=4)
    before = kube.get("apps/v1", "Deployment", GW, ns)
    half = run(ansible, canary_args(testbed, ns, weight=50))
    assert ready(half["endpoints_by_revision"]) == {"default": 2, testbed.canary_revision: 2}, "total defaults to 4"

    # A scheduled istio_gateway run during the canary keeps the split (no fight, nothing written), and
    # istioctl never claims nor prunes the canary.
    canary_before = kube.get("apps/v1", "Deployment", CANARY, ns)
    reinstalled = ansible.module("istio_gateway", gateway)
    assert not reinstalled.get("failed"), reinstalled.get("msg")
    assert reinstalled["canary_in_progress"] is True and reinstalled["changed"] is False
    assert reinstalled["deployment"]["replicas"] == 2
    assert kube.get("apps/v1", "Deployment", CANARY, ns)["metadata"]["uid"] == canary_before["metadata"]["uid"]
    again = run(ansible, canary_args(testbed, ns, weight=50))
    assert not again["changed"] and (again["stable"]["replicas"], again["canary"]["replicas"]) == (2, 2)

    with ReadyFloor(testbed, ns) as floor:
        results = ansible.four_steps("gateway_canary", {"name": GW, "namespace": ns, "state": "absent"})
    assert_four_steps(results)
    assert floor.lowest >= 4, floor.lowest
    rolled = results[1]
    assert ready(rolled["endpoints_by_revision"]) == {"default": 4}
    assert rolled["canary"]["exists"] is False and rolled["stable"]["replicas"] == 4
    after = kube.get("apps/v1", "Deployment", GW, ns)
    assert kube.get("apps/v1", "Deployment", CANARY, ns) is None
    assert state_annotation(after) is None
    assert after["spec"]["template"] == before["spec"]["template"], "no rolling restart of the stable"


def test_external_mode_two_services_and_exact_restore(ansible, kube, testbed, namespace_factory):
    ns = namespace_factory("external")
    install_gateway(ansible, testbed, ns, replicas=4)
    rev = testbed.canary_revision
    service_before = kube.get("v1", "Service", GW, ns)

    args = canary_args(testbed, ns, weight=50, mode="external")
    with ReadyFloor(testbed, ns) as floor:
        results = ansible.four_steps("gateway_canary", args)
    assert_four_steps(results)
    assert floor.pods and not [p for p in floor.pods if p.startswith(CANARY)], (
        "the stable address never reached a canary pod"
    )
    assert floor.lowest >= 2, floor.lowest
    real = results[1]
    stable_svc, canary_svc = real["services"]["stable"], real["services"]["canary"]
    assert canary_svc["name"] == CANARY and canary_svc["address"] and stable_svc["address"]
    assert canary_svc["address"] != stable_svc["address"]
    assert stable_svc["selector"] == dict(service_before["spec"]["selector"], **{L.ROLE: "stable"})
    assert canary_svc["selector"] == dict(service_before["spec"]["selector"], **{L.ROLE: "canary"})
    assert [p["port"] for p in canary_svc["ports"]] == [p["port"] for p in stable_svc["ports"]]
    assert ready(stable_svc["endpoints_by_revision"]) == {"default": 2}
    assert ready(canary_svc["endpoints_by_revision"]) == {rev: 2}
    assert real["split"]["ready"] == {"stable": 2, "canary": 2}
    assert live_ready(kube, ns, CANARY) == {rev: 2}
    recorded = json.loads(state_annotation(kube.get("v1", "Service", GW, ns)))
    assert recorded == {"selector": service_before["spec"]["selector"]}

    results = ansible.four_steps("gateway_canary", {"name": GW, "namespace": ns, "state": "absent"})
    assert_four_steps(results)
    service_after = kube.get("v1", "Service", GW, ns)
    assert service_after["spec"]["selector"] == service_before["spec"]["selector"]
    assert service_after["metadata"].get("annotations") == service_before["metadata"].get("annotations")
    assert kube.get("v1", "Service", CANARY, ns) is None
    stable = kube.get("apps/v1", "Deployment", GW, ns)
    assert L.ROLE not in stable["spec"]["template"]["metadata"]["labels"]
    assert live_ready(kube, ns) == {"default": 4}


def test_interrupted_run_converges(ansible, kube, testbed, namespace_factory):
    ns = namespace_factory("interrupted")
    install_gateway(ansible, testbed, ns, replicas=4)
    rev = testbed.canary_revision
    # What a run killed after its first write leaves: the canary, at full size, and an untouched stable.
    stable = kube.get("apps/v1", "Deployment", GW, ns)
    kube.apply(canary_utils.canary_deployment(stable, CANARY, rev, 2))
    kube.wait_rollout(CANARY, ns, TIMEOUT)

    args = canary_args(testbed, ns, weight=50)
    rerun = run(ansible, args)
    assert rerun["changed"], "the stable still had to be scaled"
    assert [a.split(" Deployment/")[0] for a in rerun["actions"]] == ["update stable Deployment"]
    assert (rerun["stable"]["replicas"], rerun["canary"]["replicas"]) == (2, 2)
    assert ready(rerun["endpoints_by_revision"]) == {"default": 2, rev: 2}
    assert run(ansible, args)["changed"] is False

    # A promotion interrupted after the stable rolled (canary still there) finishes on re-run.
    kube.patch(
        "apps/v1",
        "Deployment",
        GW,
        ns,
        canary_utils.stable_promote_patch(kube.get("apps/v1", "Deployment", GW, ns), rev, 4),
    )
    kube.wait_rollout(GW, ns, TIMEOUT)
    finished = run(ansible, canary_args(testbed, ns, state="promoted"))
    assert finished["changed"] and kube.get("apps/v1", "Deployment", CANARY, ns) is None
    assert ready(finished["endpoints_by_revision"]) == {rev: 4}


def wait_for(what, check, timeout=120):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(2)


def test_hpa_is_pinned_then_restored(ansible, kube, testbed, namespace_factory):
    ns = namespace_factory("hpa")
    install_gateway(ansible, testbed, ns, replicas=None, autoscaling={"enabled": True, "min": 2, "max": 4})
    wait_for(
        "the HPA to scale the gateway to its minimum",
        lambda: kube.get("apps/v1", "Deployment", GW, ns)["spec"]["replicas"] == 2,
    )
    hpa_before = kube.get("autoscaling/v2", "HorizontalPodAutoscaler", GW, ns)

    # Left alone, the HPA would fight the split: refused before anything is written.
    before = own_snapshot(kube, ns)
    refused = ansible.module("gateway_canary", canary_args(testbed, ns, weight=50, manage_hpa=False))
    assert refused.get("failed") and "manage_hpa:" in refused["msg"] and GW in refused["msg"]
    assert own_snapshot(kube, ns) == before

    # Pinned: min = max = the stable's share, the original recorded.
    pinned = run(ansible, canary_args(testbed, ns, weight=50, total_replicas=4))
    assert pinned["hpa"]["canary"] is None
    hpa = pinned["hpa"]["stable"]
    assert (hpa["min_replicas"], hpa["max_replicas"], hpa["action"]) == (2, 2, "pinned")
    assert hpa["original"] == {"min_replicas": 2, "max_replicas": 4}
    assert ready(pinned["endpoints_by_revision"]) == {"default": 2, testbed.canary_revision: 2}
    assert [h["metadata"]["name"] for h in kube.list("autoscaling/v2", "HorizontalPodAutoscaler", ns)] == [GW]
    # 25% of 4 = 1 canary pod: the pin follows the stable to 3, and nothing scales it back.
    shifted = run(ansible, canary_args(testbed, ns, weight=25, total_replicas=4))
    assert (shifted["hpa"]["stable"]["min_replicas"], shifted["hpa"]["stable"]["max_replicas"]) == (3, 3)
    time.sleep(20)  # more than the HPA controller's 15 s sync period
    assert kube.get("apps/v1", "Deployment", GW, ns)["spec"]["replicas"] == 3
    assert run(ansible, canary_args(testbed, ns, weight=25, total_replicas=4))["changed"] is False

    promoted = run(ansible, canary_args(testbed, ns, state="promoted"))
    assert promoted["hpa"]["stable"]["action"] == "restored" and promoted["hpa"]["stable"]["original"] is None
    hpa_after = kube.get("autoscaling/v2", "HorizontalPodAutoscaler", GW, ns)
    assert hpa_after["spec"] == hpa_before["spec"]
    assert state_annotation(hpa_after) is None
    assert promoted["stable"]["replicas"] == 2 and ready(promoted["endpoints_by_revision"]) == {
        testbed.canary_revision: 2
    }


def test_bad_inputs_fail_clearly_and_change_nothing(ansible, kube, testbed, namespace_factory):
    ns = namespace_factory("badcanary")
    install_gateway(ansible, testbed, ns, replicas=1)
    kube.create(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "taken", "namespace": ns},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "taken"}},
                "template": {
                    "metadata": {"labels": {"app": "taken"}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]},
                },
            },
        }
    )
    cases = [
        ({"name": "no-such-gateway"}, ["name: no gateway Deployment 'no-such-gateway'"]),
        ({"revision": "9-99"}, ["revision: no Istio control plane serves revision '9-99'"]),
        ({"revision": "default"}, ["revision: the stable gateway", "already runs revision 'default'"]),
        ({"weight": 150}, ["weight: 150 is out of range"]),
        ({"weight": 10, "total_replicas": 1}, ["weight: 10% needs a pod on each side"]),
        ({"weight": 10}, ["weight: 10% needs a pod on each side", "total_replicas is 1"]),
        ({"weight": 10, "stable_replicas": 1, "canary_replicas": 1}, ["mutually exclusive", "weight|stable_replicas"]),
        ({"canary_name": GW}, ["canary_name: '%s' is the stable gateway's own name" % GW]),
        ({"canary_name": "taken"}, ["canary_name: a Deployment 'taken'", "not a canary of"]),
        ({"state": "promoted"}, ["state: promoted needs the canary Deployment"]),
        ({"state": "present", "revision": None}, ["state is present but all of the following are missing: revision"]),
    ]
    for overrides, fragments in cases:
        args = canary_args(testbed, ns, **overrides)
        args = {k: v for k, v in args.items() if v is not None}
        before = own_snapshot(kube, ns)
        result = ansible.module("gateway_canary", args)
        assert result.get("failed"), (overrides, result)
        for fragment in fragments:
            assert fragment in result["msg"], (overrides, result["msg"])
        assert own_snapshot(kube, ns) == before, "a failed run must leave the cluster untouched: %s" % overrides
