"""gateway_info without name or namespace: every gateway of the cluster, each with the flat summary the fleet
report reads (ready and desired pods, revision, address: the load balancer's, else the cluster IP)."""

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils import fleet_report

pytestmark = pytest.mark.integration

LOAD_BALANCER_IP = "203.0.113.7"  # what a cloud's load balancer controller would write (the bed has none)


def test_every_gateway_of_the_cluster_with_its_summary(ansible, kube, testbed, namespace_factory):
    first, second = namespace_factory("info-a"), namespace_factory("info-b")
    fixed = {"method": "manifest", "autoscaling": {"enabled": False}, "wait_timeout": 180}
    for args in (
        dict(fixed, name="gw-a", namespace=first, replicas=2),
        dict(fixed, name="gw-b", namespace=second, replicas=1, revision=testbed.canary_revision),
    ):
        result = ansible.module("istio_gateway", args)
        assert result["changed"] and not result.get("failed"), result.get("msg")
    status = {"status": {"loadBalancer": {"ingress": [{"ip": LOAD_BALANCER_IP}]}}}
    kube.patch("v1", "Service", "gw-b", second, status, subresource="status")

    info = ansible.module("gateway_info", {})
    assert not info.get("failed"), info.get("msg")
    summaries = {(g["namespace"], g["name"]): g["summary"] for g in info["gateways"]}
    common = {"api": "istio", "method": "manifest", "managed_by_collection": True}
    assert summaries[(first, "gw-a")] == dict(
        common,
        name="gw-a",
        namespace=first,
        revision="default",
        follows="default",
        ready=2,
        desired=2,
        address=kube.get("v1", "Service", "gw-a", first)["spec"]["clusterIP"],
    )
    assert summaries[(second, "gw-b")] == dict(
        common,
        name="gw-b",
        namespace=second,
        revision=testbed.canary_revision,
        follows=testbed.canary_revision,
        ready=1,
        desired=1,
        address=LOAD_BALANCER_IP,
    )

    # What gateway_info returned is what the fleet report takes, as it is.
    ours = [g for g in info["gateways"] if g["namespace"] in (first, second)]
    report = fleet_report.build(
        [{"cluster": "bed", "status": "unchanged", "error": None, "before": ours, "after": ours}]
    )
    assert [(r["gateway"], r["revision_after"], r["ready"], r["desired"], r["address"]) for r in report["rows"]] == [
        ("gw-a", "default", 2, 2, summaries[(first, "gw-a")]["address"]),
        ("gw-b", testbed.canary_revision, 1, 1, LOAD_BALANCER_IP),
    ]
