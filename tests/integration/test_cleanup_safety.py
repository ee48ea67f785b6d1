"""Deletes and writes touch only what the collection made, on the test bed (issue 12, items 2, 3, 5 and 13).

- gateway_config refuses another team's Gateway of the same name (present and absent) unless adopt: true.
- gateway_cleanup removes only the named gateway of a hand-written IstioOperator that bears the collection's name.
- gateway_cleanup reads what a namespace holds through discovery: a custom resource, a Secret or a PVC keeps it;
  a gateway name that matches nothing deletes nothing, namespace included.
- A delete whose preconditions (uid, resourceVersion) no longer hold answers Conflict and deletes nothing.
- gateway_canary fails clearly, before any write, on a state annotation of the wrong shape.
"""

import uuid

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import Conflict

from .conftest import snapshot
from .test_gateway_cleanup import install_two_gateway_operator, objects_of

pytestmark = pytest.mark.integration

API = "networking.istio.io/v1"
GW = "safety-gw"
HELM = {"meta.helm.sh/release-name": "payments", "meta.helm.sh/release-namespace": "payments"}


@pytest.fixture(scope="module")
def installed(ansible, kube, testbed):
    """One gateway (unique labels), installed by istio_gateway, shared by the tests that do not remove it."""
    ns = "safety-" + uuid.uuid4().hex[:6]
    labels = {"istio": ns}
    try:
        result = ansible.module(
            "istio_gateway",
            {
                "name": GW,
                "namespace": ns,
                "labels": labels,
                "binary_path": str(testbed.istioctl),
                "replicas": 1,
                "autoscaling": {"enabled": False},
                "wait_timeout": 180,
            },
        )
        assert result["changed"] and not result.get("failed"), result.get("msg")
        yield {"ns": ns, "labels": labels}
    finally:
        kube.delete("v1", "Namespace", ns)


def create_as(kube, obj, manager):
    """Create obj with another field manager than the collection's (as Helm or kubectl would)."""
    meta = obj["metadata"]
    path = kube.resource(obj["apiVersion"], obj["kind"]).path(meta.get("namespace"))
    return kube.request("POST", path, query={"fieldManager": manager}, body=obj)


def own(kube, ns):
    """snapshot() of one namespace; other tests create and delete namespaces meanwhile."""
    return {k: v for k, v in snapshot(kube, [ns]).items() if not k.startswith("Namespace/") or k == "Namespace/" + ns}


def http(hosts):
    return [{"port": {"number": 8080, "name": "http", "protocol": "HTTP"}, "hosts": hosts}]


# -- item 2: gateway_config and another team's Gateway ---------------------------------------------------------


def test_gateway_config_leaves_another_teams_gateway_alone_unless_adopt(ansible, kube, installed):
    ns = installed["ns"]
    foreign = {
        "apiVersion": API,
        "kind": "Gateway",
        "metadata": {"name": "payments", "namespace": ns, "labels": {"team": "payments"}, "annotations": HELM},
        "spec": {"selector": {"team": "payments"}, "servers": http(["payments.example.com"])},
    }
    create_as(kube, foreign, "helm")
    before = kube.get(API, "Gateway", "payments", ns)
    args = {"name": "payments", "gateway_name": GW, "gateway_namespace": ns, "servers": http(["*.example.com"])}
    for check in (True, False):
        refused = ansible.module("gateway_config", args, check=check)
        assert refused.get("failed") and not refused.get("changed"), refused
        assert "Gateway %s/payments is not this collection's (Helm release payments/payments" % ns in refused["msg"]
        assert "field managers helm" in refused["msg"] and "adopt: true" in refused["msg"], refused["msg"]
        gone = ansible.module("gateway_config", {"name": "payments", "namespace": ns, "state": "absent"}, check=check)
        assert gone.get("failed") and "delete it with the tool that made it" in gone["msg"], gone
    assert (
        kube.get(API, "Gateway", "payments", ns)["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    ), "refused runs changed the Gateway"

    adopted = ansible.module("gateway_config", dict(args, adopt=True))
    assert adopted["changed"] and adopted["adopted"] and not adopted.get("failed"), adopted.get("msg")
    assert any("Helm release payments/payments" in w for w in adopted.get("warnings", []))
    live = kube.get(API, "Gateway", "payments", ns)
    assert live["metadata"]["labels"][L.MANAGED_BY] == L.MANAGED_BY_VALUE
    assert live["metadata"]["labels"][L.GATEWAY_OF] == GW and live["spec"]["servers"][0]["hosts"] == ["*.example.com"]
    gateway = kube.get("apps/v1", "Deployment", GW, ns)
    assert live["spec"]["selector"] == gateway["spec"]["selector"]["matchLabels"], "the team's selector key is gone"
    # Adopted, it is the collection's now: a plain run converges and absent deletes it.
    assert ansible.module("gateway_config", args)["changed"] is False
    removed = ansible.module("gateway_config", {"name": "payments", "namespace": ns, "state": "absent"})
    assert removed["changed"] and kube.get(API, "Gateway", "payments", ns) is None


# -- item 5: delete preconditions on the real API server --------------------------------------------------------


def test_a_delete_with_stale_preconditions_is_refused_by_the_api_server(kube, namespace_factory):
    ns = namespace_factory("precond")
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": ns}, "data": {"a": "1"}}
    read = kube.create(config)
    kube.patch("v1", "ConfigMap", "c", ns, {"data": {"a": "2"}})  # changed since it was read
    with pytest.raises(Conflict, match="changed after it was read"):
        kube.delete("v1", "ConfigMap", "c", ns, read=read)
    assert kube.get("v1", "ConfigMap", "c", ns)["data"] == {"a": "2"}
    # Deleted and recreated under the same name: a new uid, also refused.
    current = kube.get("v1", "ConfigMap", "c", ns)
    assert kube.delete("v1", "ConfigMap", "c", ns, read=current)
    kube.wait_deleted([("v1", "ConfigMap", "c", ns)], 30)
    kube.create(config)
    with pytest.raises(Conflict, match="precondition"):
        kube.delete("v1", "ConfigMap", "c", ns, read=current)
    assert kube.get("v1", "ConfigMap", "c", ns) is not None


# -- item 3: what a namespace holds ----------------------------------------------------------------------------------


def fake_gateway(kube, name, ns):
    """A gateway as istio_gateway leaves it, without istioctl: a Deployment and Service with its owner labels."""
    labels = dict(L.owner_labels(L.iop_name(name, ns), "istio-system", None, "1.30.0", "ingress"), app=name)
    pod = {"labels": {"app": name}}
    kube.create(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": pod["labels"]},
                "template": {"metadata": pod, "spec": {"containers": [{"name": "proxy", "image": "auto"}]}},
            },
        }
    )
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"selector": pod["labels"], "ports": [{"name": "http", "port": 80}]},
        }
    )


def created_namespace(kube, namespace_factory, prefix):
    ns = namespace_factory(prefix)
    meta = {"name": ns, "annotations": {L.CREATED_NAMESPACE: "true"}}
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
    return ns


def test_a_gateway_name_that_matches_nothing_deletes_nothing(ansible, kube, namespace_factory):
    ns = created_namespace(kube, namespace_factory, "typo")
    args = {"name": "istio-ingressgatewya", "namespace": ns, "delete_namespace": True}
    result = ansible.module("gateway_cleanup", args)
    assert not result.get("failed") and result["changed"] is False and result["removed"] == [], result.get("msg")
    assert not result["namespace"]["deleted"] and "a typo?" in result["namespace"]["reason"]
    assert kube.get("v1", "Namespace", ns)["metadata"].get("deletionTimestamp") is None


@pytest.mark.parametrize(
    "item, flags, reason",
    [
        # Not in any of the old fixed kind lists: found by discovery now.
        (
            {"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry", "spec": {}},
            {},
            "created by this collection, but it still holds: Telemetry keep",
        ),
        (
            {"apiVersion": "v1", "kind": "Secret", "stringData": {"password": "x"}},
            {"delete_namespace": True},
            "it holds data this collection did not create: Secret keep",
        ),
        (
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            },
            {"delete_namespace": True},
            "it holds data this collection did not create: PersistentVolumeClaim keep",
        ),
    ],
    ids=["custom-resource", "secret", "pvc"],
)
def test_what_the_namespace_holds_keeps_it(ansible, kube, namespace_factory, item, flags, reason):
    ns = created_namespace(kube, namespace_factory, "holds")
    fake_gateway(kube, "gw", ns)
    kube.create(dict(item, metadata={"name": "keep", "namespace": ns}))
    result = ansible.module("gateway_cleanup", dict({"name": "gw", "namespace": ns}, **flags))
    assert result["changed"] and not result.get("failed"), result.get("msg")
    assert {(r["kind"], r["name"]) for r in result["removed"]} == {("Deployment", "gw"), ("Service", "gw")}
    assert not result["namespace"]["deleted"] and reason in result["namespace"]["reason"], result["namespace"]
    assert {"kind": item["kind"], "namespace": ns, "name": "keep"} in result["namespace"]["remaining"]
    assert kube.get(item["apiVersion"], item["kind"], "keep", ns) is not None
    assert kube.get("v1", "Namespace", ns)["metadata"].get("deletionTimestamp") is None


# -- item 2: a hand-written IstioOperator that bears the collection's name ----------------------------------------


def test_hand_written_operator_with_the_collections_name_loses_only_the_named_gateway(
    ansible, kube, testbed, namespace_factory, tmp_path
):
    ns = namespace_factory("handname")
    install_two_gateway_operator(kube, testbed, tmp_path, ns, L.iop_name("gw-a", ns))
    gw_b = objects_of(kube, ns, "gw-b")
    assert "Deployment/gw-b" in gw_b and "ServiceAccount/gw-b-service-account" in gw_b

    result = ansible.module("gateway_cleanup", {"name": "gw-a", "namespace": ns})
    assert result["changed"] and not result.get("failed"), result.get("msg")
    assert result["gateway"]["installed_by"] == "collection", "its name is the collection's"
    assert all(r["name"].startswith("gw-a") for r in result["removed"]), result["removed"]
    assert objects_of(kube, ns, "gw-b") == gw_b, "gw-b lost objects"
    assert kube.get("apps/v1", "Deployment", "gw-a", ns) is None


# -- item 13: a canary state annotation of the wrong shape ------------------------------------------------------------


def test_canary_state_of_the_wrong_shape_fails_clearly_and_changes_nothing(ansible, kube, testbed, installed):
    ns = installed["ns"]
    patch = {"metadata": {"annotations": {L.STATE: "[1]"}}}
    kube.patch("apps/v1", "Deployment", GW, ns, patch)
    try:
        before = own(kube, ns)
        for state in ("absent", "present"):
            args = {"name": GW, "namespace": ns, "state": state, "revision": testbed.canary_revision, "weight": 0}
            result = ansible.module("gateway_canary", args)
            assert result.get("failed"), result
            assert "Traceback" not in result["_raw"], result["_raw"][-2000:]
            message = result["msg"]
            assert (
                "annotation %s on Deployment/%s/%s is not a state gateway_canary wrote ('[1]'"
                % (
                    L.STATE,
                    ns,
                    GW,
                )
                in message
            ), message
            assert "kubectl annotate deployment -n %s %s %s-" % (ns, GW, L.STATE) in message
            assert own(kube, ns) == before, "a failed run must leave the cluster untouched"
    finally:
        kube.patch("apps/v1", "Deployment", GW, ns, {"metadata": {"annotations": {L.STATE: None}}})
