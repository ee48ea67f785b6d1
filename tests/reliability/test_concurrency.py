"""Two plays on the same gateway at once (an AWX double launch): two ansible-playbook processes started
together. Both end without a lost write: the final state is the desired one and a third run reports no change.

What makes that hold: every write is a server-side apply or a merge patch of absolute values (replica counts,
bounds, selectors) computed from what the canary recorded in its state annotation, never an increment or a
list edit of what was read, so the second writer writes the same thing; and a namespace the other run created
in between is taken as it is (a 409 AlreadyExists there used to fail the second run).
"""

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils import inventory
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L

from . import faults
from .common import COUNTS, assert_no_orphans, desired_objects, uid

pytestmark = pytest.mark.integration

GW = "gw"
CANARY = GW + "-canary"


def double_launch(ansible, module, args):
    """Both runs' results; each must succeed (a failure would have to be retried by hand in AWX)."""
    COUNTS["faults_injected"] += 1
    runs = [faults.Background(ansible.module, module, args), faults.Background(ansible.module, module, args)]
    results = [r.result() for r in runs]
    for result in results:
        assert not result.get("failed"), "one of two simultaneous runs failed: %s" % result.get("msg")
    assert any(r["changed"] for r in results), "neither run changed anything"
    third = ansible.module(module, args)
    assert not third.get("failed") and third["changed"] is False, third.get("msg") or third.get("actions")
    return results, third


def test_double_launch_istio_gateway(ansible, kube, testbed, namespace_factory):
    ns = namespace_factory("rel-c-gw")  # does not exist yet: both runs want to create it
    args = {
        "name": GW,
        "namespace": ns,
        "labels": {"istio": "rel-c-" + uid()},
        "binary_path": str(testbed.istioctl),
        "replicas": 2,
        "autoscaling": {"enabled": False},
        "wait_timeout": 120,
    }
    _results, third = double_launch(ansible, "istio_gateway", args)
    namespace = kube.get("v1", "Namespace", ns)
    assert namespace["metadata"]["annotations"][L.CREATED_NAMESPACE] == "true"
    assert third["deployment"]["replicas"] == third["deployment"]["ready_replicas"] == 2
    assert_no_orphans(kube, ns, desired_objects(third))
    COUNTS["faults_survived"] += 1

    changed = dict(args, replicas=3, service={"type": "ClusterIP"})
    _results, third = double_launch(ansible, "istio_gateway", changed)
    assert third["deployment"]["replicas"] == third["deployment"]["ready_replicas"] == 3
    assert kube.get("v1", "Service", GW, ns)["spec"]["type"] == "ClusterIP"
    assert_no_orphans(kube, ns, desired_objects(third))
    COUNTS["faults_survived"] += 1


def test_double_launch_gateway_canary(ansible, kube, testbed, namespace_factory):
    ns = namespace_factory("rel-c-canary")
    rev = testbed.canary_revision
    install = {
        "name": GW,
        "namespace": ns,
        "labels": {"istio": "rel-c-" + uid()},
        "binary_path": str(testbed.istioctl),
        "replicas": 4,
        "autoscaling": {"enabled": True, "min": 4, "max": 6},
        "wait_timeout": 120,
    }
    installed = ansible.module("istio_gateway", install)
    assert installed["changed"] and not installed.get("failed"), installed.get("msg")
    hpa_before = kube.get("autoscaling/v2", "HorizontalPodAutoscaler", GW, ns)["spec"]
    service_before = kube.get("v1", "Service", GW, ns)["spec"]["selector"]
    args = {"name": GW, "namespace": ns, "revision": rev, "weight": 50, "total_replicas": 4, "wait_timeout": 120}

    _results, third = double_launch(ansible, "gateway_canary", args)
    assert (third["split"]["stable"], third["split"]["canary"]) == (2, 2)
    assert third["split"]["ready"] == {"stable": 2, "canary": 2}
    hpa = third["hpa"]["stable"]
    assert (hpa["min_replicas"], hpa["max_replicas"], hpa["original"]) == (
        2,
        2,
        {"min_replicas": 4, "max_replicas": 6},
    ), "the HPA's original bounds were lost"
    assert_no_orphans(kube, ns, desired_objects(installed), {"Deployment/" + CANARY})
    COUNTS["faults_survived"] += 1

    promote = {"name": GW, "namespace": ns, "revision": rev, "state": "promoted", "wait_timeout": 120}
    _results, third = double_launch(ansible, "gateway_canary", promote)
    stable = kube.get("apps/v1", "Deployment", GW, ns)
    hpa = kube.get("autoscaling/v2", "HorizontalPodAutoscaler", GW, ns)
    service = kube.get("v1", "Service", GW, ns)
    assert stable["metadata"]["labels"][L.REVISION] == rev and stable["spec"]["replicas"] == 4
    assert kube.get("apps/v1", "Deployment", CANARY, ns) is None
    assert hpa["spec"] == hpa_before, "promotion must restore the HPA exactly"
    assert service["spec"]["selector"] == service_before
    for obj in (stable, hpa, service):
        assert L.STATE not in (obj["metadata"].get("annotations") or {}), "canary state left on %s" % obj["kind"]
    endpoints = inventory.endpoints_by_revision(kube, GW, ns)
    assert {r: e["ready"] for r, e in endpoints.items() if e["ready"]} == {rev: 4}
    assert_no_orphans(kube, ns, desired_objects(installed))
    COUNTS["faults_survived"] += 1
