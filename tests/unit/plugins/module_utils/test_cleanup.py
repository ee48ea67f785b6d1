"""gateway_cleanup's logic on an in-memory cluster: what is removed, what is kept, and when the namespace goes."""

import os

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils import cleanup
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import InputError
from tests.unit.plugins.module_utils.fake_cluster import FakeKube, deployment, manager, obj

NS = "istio-ingress"


def owner(iop, iop_ns="istio-system", component="IngressGateways", rev="default"):
    return {
        L.OWNING_RESOURCE: iop,
        L.OWNING_RESOURCE_NAMESPACE: iop_ns,
        L.OPERATOR_COMPONENT: component,
        L.OPERATOR_MANAGED: "Reconcile",
        L.REVISION: rev,
    }


def chart_objects(name, namespace, labels, rev="default"):
    """What Istio's gateway chart renders for one gateway, labelled as istioctl labels it."""
    policy = name if rev == "default" else "%s-%s" % (name, rev)
    return [
        deployment(name, namespace, labels, pod_labels={"istio": name}),
        obj("v1", "Service", name, namespace, labels),
        obj("v1", "ServiceAccount", name + "-service-account", namespace, labels),
        obj("autoscaling/v2", "HorizontalPodAutoscaler", name, namespace, labels),
        obj("policy/v1", "PodDisruptionBudget", name, namespace, labels),
        obj("rbac.authorization.k8s.io/v1", "Role", name + "-sds", namespace, labels),
        obj("rbac.authorization.k8s.io/v1", "RoleBinding", name + "-sds", namespace, labels),
        obj("networking.k8s.io/v1", "NetworkPolicy", policy, namespace, labels),
    ]


def namespace(name, created=False):
    annotations = {L.CREATED_NAMESPACE: "true"} if created else {}
    return obj("v1", "Namespace", name, annotations=annotations)


def automatic(ns):
    return [
        obj("v1", "ConfigMap", "kube-root-ca.crt", ns),
        obj("v1", "ConfigMap", "istio-ca-root-cert", ns),
        obj("v1", "ServiceAccount", "default", ns),
    ]


def params(**overrides):
    base = dict(
        name="istio-ingressgateway",
        namespace=NS,
        gateway_configs=False,
        delete_namespace=False,
        force=False,
        purge=False,
        confirm_purge=None,
        wait=True,
        wait_timeout=30,
        binary_path=None,
        skip_version_check=False,
    )
    base.update(overrides)
    return base


def run(monkeypatch, kube, check_mode=False, **overrides):
    mgr = manager(monkeypatch, cleanup.GatewayCleanupManager, kube, params(**overrides), check_mode=check_mode)
    return mgr.run(), mgr.module


def refs(result):
    return sorted((r["kind"], r["namespace"], r["name"]) for r in result["removed"])


# -- pure parts -----------------------------------------------------------


def test_purge_needs_the_exact_sentence():
    for given in (None, "yes", "true", True, cleanup.PURGE_CONFIRMATION.lower()):
        with pytest.raises(InputError, match="confirm_purge: purge: true runs `istioctl uninstall --purge`"):
            cleanup.check_inputs(params(purge=True, confirm_purge=given))
    cleanup.check_inputs(params(purge=True, confirm_purge=cleanup.PURGE_CONFIRMATION))


def test_chart_names_follow_the_gateway_chart():
    assert cleanup.chart_object_names("gw", "default") == {
        "Deployment": "gw",
        "Service": "gw",
        "HorizontalPodAutoscaler": "gw",
        "PodDisruptionBudget": "gw",
        "ServiceAccount": "gw-service-account",
        "Role": "gw-sds",
        "RoleBinding": "gw-sds",
        "NetworkPolicy": "gw",
    }
    assert cleanup.chart_object_names("gw", "1-31")["NetworkPolicy"] == "gw-1-31"


def test_ownership_tells_collection_from_hand_installed():
    mine = deployment("gw", NS, owner(L.iop_name("gw", NS)))
    assert cleanup.ownership(mine, "gw", NS) == (
        "collection",
        {L.OWNING_RESOURCE: NS + "-gw", L.OWNING_RESOURCE_NAMESPACE: "istio-system"},
    )
    # An IstioOperator named after the gateway alone is not the collection's: it may hold other gateways.
    hand = deployment("gw", NS, owner("gw"))
    how, selector = cleanup.ownership(hand, "gw", NS)
    assert how == "istioctl" and selector[L.OPERATOR_COMPONENT] == "IngressGateways"


@pytest.mark.parametrize(
    "labels, message",
    [
        ({L.CANARY_OF: "gw"}, "is the canary of gateway 'gw'"),
        ({"app": "shop"}, "carries no istioctl owner label"),
        (owner("installed-state", "istio-system", component="Pilot"), "is not a gateway (istioctl component 'Pilot')"),
    ],
)
def test_ownership_refuses_what_is_not_a_gateway_of_istioctl(labels, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cleanup.ownership(deployment("gw", NS, labels), "gw", NS)


def test_leftovers_ignore_automatic_owned_terminating_and_removed_objects():
    objects = automatic("app") + [
        obj("apps/v1", "ReplicaSet", "web-1", "app", ownerReferences=[{"controller": True, "name": "web"}]),
        obj("v1", "Pod", "old", "app", deletionTimestamp="2024-01-01T00:00:00Z"),
        obj("v1", "Secret", "tok", "app", type="kubernetes.io/service-account-token"),
        obj("v1", "Service", "gw", "app"),
        obj("v1", "ConfigMap", "settings", "app"),
        obj("v1", "ConfigMap", "istio-ca-crl", "app"),
        obj("v1", "ConfigMap", "custom-trust-bundle", "app", {"istio.io/config": "true"}),
    ]
    assert cleanup.leftovers(objects, {("Service", "app", "gw")}) == [
        {"kind": "ConfigMap", "namespace": "app", "name": "settings"}
    ]


@pytest.mark.parametrize(
    "created, left, workloads, flags, istiod, expected",
    [
        (True, [], [], {}, False, (True, "created by this collection and nothing else is left in it")),
        (True, ["x"], [], {}, False, (False, "created by this collection, but it still holds")),
        (False, [], [], {}, False, (False, "this collection did not create it")),
        (False, ["x"], [], {"delete_namespace": True}, False, (True, "no other workload is left")),
        (False, ["x"], ["x"], {"delete_namespace": True}, False, (False, "still holds other workloads")),
        (False, ["x"], ["x"], {"force": True}, False, (True, "force: true")),
        (True, [], [], {"force": True}, True, (False, "holds an Istio control plane")),
    ],
)
def test_namespace_decision(created, left, workloads, flags, istiod, expected):
    refs_ = [{"kind": "Deployment", "namespace": "ns", "name": n} for n in left]
    work = [{"kind": "Deployment", "namespace": "ns", "name": n} for n in workloads]
    delete, reason = cleanup.namespace_decision(
        namespace("ns", created), refs_, work, params(namespace="ns", **flags), istiod
    )
    assert delete is expected[0]
    assert expected[1] in reason


def test_system_namespaces_are_never_deleted():
    delete, reason = cleanup.namespace_decision(
        namespace("kube-system"), [], [], params(namespace="kube-system", force=True), False
    )
    assert not delete and "system namespace" in reason


def test_purge_refuses_an_istioctl_older_than_a_control_plane():
    versions = [("istio-system", "istiod", "1.30.1"), ("istio-system", "istiod-1-31", "1.31.0")]
    assert "older than the control plane istio-system/istiod-1-31" in cleanup.purge_version_problem("1.30.2", versions)
    assert cleanup.purge_version_problem("1.31.0", versions) is None


# -- the manager on a fake cluster ------------------------------------------


def shared_bed():
    """istiod, the shared gateway and a second gateway in one namespace, a canary, a Gateway resource."""
    istiod = deployment("istiod", "istio-system", owner("installed-state", "istio-system", "Pilot"), {"app": "istiod"})
    istiod["metadata"]["labels"]["app"] = "istiod"
    canary = deployment("istio-ingressgateway-canary", NS, {L.CANARY_OF: "istio-ingressgateway"})
    gw_config = obj(
        "networking.istio.io/v1",
        "Gateway",
        "public",
        "shop",
        {L.GATEWAY_OF: "istio-ingressgateway", L.GATEWAY_NAMESPACE_OF: NS},
    )
    other_ns_config = obj(
        "networking.istio.io/v1",
        "Gateway",
        "public",
        "blog",
        {L.GATEWAY_OF: "istio-ingressgateway", L.GATEWAY_NAMESPACE_OF: "x"},
    )
    return FakeKube(
        [
            namespace(NS, created=True),
            namespace("istio-system"),
            namespace("shop"),
            istiod,
            canary,
            gw_config,
            other_ns_config,
        ]
        + automatic(NS)
        + chart_objects("istio-ingressgateway", NS, owner(L.iop_name("istio-ingressgateway", NS)))
        + chart_objects("second", NS, owner(L.iop_name("second", NS)))
    )


def test_shared_gateway_is_removed_alone_and_idempotently(monkeypatch):
    kube = shared_bed()
    before = dict(kube.objects)
    check, _m = run(monkeypatch, kube, check_mode=True, gateway_configs=True)
    assert kube.objects == before and not kube.writes
    assert check["changed"]
    result, _m = run(monkeypatch, kube, gateway_configs=True)
    assert refs(result) == refs(check)
    assert ("Gateway", "shop", "public") in refs(result)
    assert ("Deployment", NS, "istio-ingressgateway-canary") in refs(result)
    assert ("NetworkPolicy", NS, "istio-ingressgateway") in refs(result)
    assert result["gateway"]["installed_by"] == "collection"
    # istiod, the second gateway and the Gateway of another gateway namespace stay.
    assert kube.has("apps/v1", "Deployment", "istiod", "istio-system")
    assert kube.has("apps/v1", "Deployment", "second", NS)
    assert kube.has("networking.istio.io/v1", "Gateway", "public", "blog")
    ns = result["namespace"]
    assert not ns["deleted"] and ns["created_by_collection"]
    assert {"kind": "Deployment", "namespace": NS, "name": "second"} in ns["remaining"]
    assert kube.writes[-1] == ("delete", "Deployment", NS, "istio-ingressgateway"), "the Deployment goes last"
    again, _m = run(monkeypatch, kube, gateway_configs=True)
    assert not again["changed"] and again["removed"] == [] and not again["gateway"]["found"]


def test_hand_made_iop_with_two_gateways_loses_only_one(monkeypatch):
    labels = owner("installed-state", "istio-system", rev="1-31")
    kube = FakeKube(
        [namespace(NS)] + chart_objects("gw-a", NS, labels, rev="1-31") + chart_objects("gw-b", NS, labels, rev="1-31")
    )
    result, _m = run(monkeypatch, kube, name="gw-a")
    assert result["gateway"]["installed_by"] == "istioctl"
    assert {r["name"] for r in result["removed"]} == {"gw-a", "gw-a-service-account", "gw-a-sds", "gw-a-1-31"}
    assert len(result["removed"]) == 8
    assert all(k[3].startswith("gw-b") for k in kube.objects if k[1] != "Namespace")
    assert not result["namespace"]["deleted"] and "did not create it" in result["namespace"]["reason"]


def test_collection_namespace_left_empty_is_deleted(monkeypatch):
    kube = FakeKube(
        [namespace("gw-ns", created=True)]
        + automatic("gw-ns")
        + chart_objects("gw", "gw-ns", owner(L.iop_name("gw", "gw-ns")))
    )
    check, _m = run(monkeypatch, kube, check_mode=True, name="gw", namespace="gw-ns")
    assert check["namespace"]["deleted"] and not kube.writes
    result, _m = run(monkeypatch, kube, name="gw", namespace="gw-ns")
    assert result["changed"] and result["namespace"]["deleted"]
    assert not kube.has("v1", "Namespace", "gw-ns")
    again, _m = run(monkeypatch, kube, name="gw", namespace="gw-ns")
    assert not again["changed"] and again["namespace"]["reason"] == "it does not exist"


def test_application_namespace_and_its_workloads_are_kept(monkeypatch):
    kube = FakeKube(
        [namespace("shop"), deployment("shop-api", "shop"), obj("v1", "ConfigMap", "shop-settings", "shop")]
        + automatic("shop")
        + chart_objects("gw", "shop", owner(L.iop_name("gw", "shop")))
    )
    result, module = run(monkeypatch, kube, name="gw", namespace="shop", delete_namespace=True)
    assert result["changed"] and not result["namespace"]["deleted"]
    assert "shop-api" in result["namespace"]["reason"] and module.warnings
    assert kube.has("apps/v1", "Deployment", "shop-api", "shop") and kube.has(
        "v1", "ConfigMap", "shop-settings", "shop"
    )
    forced, _m = run(monkeypatch, kube, name="gw", namespace="shop", force=True)
    assert forced["changed"] and forced["namespace"]["deleted"] and not kube.has("v1", "Namespace", "shop")


def test_missing_gateway_is_no_change(monkeypatch):
    kube = FakeKube([namespace("empty")])
    result, _m = run(monkeypatch, kube, name="nothing", namespace="empty")
    assert result == {
        "changed": False,
        "removed": [],
        "gateway": {"name": "nothing", "namespace": "empty", "found": False, "installed_by": None},
        "namespace": {
            "name": "empty",
            "deleted": False,
            "created_by_collection": False,
            "remaining": [],
            "reason": result["namespace"]["reason"],
        },
    }


def purge_bed():
    crd = obj(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "gateways.networking.istio.io",
        labels={L.OPERATOR_COMPONENT: "Base"},
        spec={
            "group": "networking.istio.io",
            "names": {"kind": "Gateway"},
            "versions": [{"name": "v1", "storage": True}],
        },
    )
    istiod = deployment(
        "istiod", "istio-system", {L.OPERATOR_COMPONENT: "Pilot", L.OPERATOR_VERSION: "1.30.0", "app": "istiod"}
    )
    hook = obj(
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
        "istio-sidecar-injector",
        labels={L.OPERATOR_COMPONENT: "Pilot"},
    )
    app = deployment("shop-api", "shop")
    config = obj("networking.istio.io/v1", "Gateway", "public", "shop")
    return FakeKube([crd, istiod, hook, app, config, namespace("istio-system"), namespace("shop")])


def test_purge_in_check_mode_lists_everything_and_writes_nothing(monkeypatch, tmp_path):
    binary = tmp_path / "istioctl"
    binary.write_text("#!/bin/sh\n")
    os.chmod(str(binary), 0o755)
    kube = purge_bed()
    kube.params = {"kubeconfig": str(tmp_path / "kubeconfig")}
    before = dict(kube.objects)
    result, module = run(
        monkeypatch,
        kube,
        check_mode=True,
        name=None,
        namespace=None,
        purge=True,
        confirm_purge=cleanup.PURGE_CONFIRMATION,
        binary_path=str(binary),
    )
    assert kube.objects == before and not kube.writes
    assert not any("uninstall" in argv for argv in module.commands)
    kube.add(namespace("gw-ns", created=True))
    for item in chart_objects("gw", "gw-ns", owner(L.iop_name("gw", "gw-ns"))):
        kube.add(item)
    both, _m = run(
        monkeypatch,
        kube,
        check_mode=True,
        name="gw",
        namespace="gw-ns",
        purge=True,
        confirm_purge=cleanup.PURGE_CONFIRMATION,
        binary_path=str(binary),
    )
    listed = refs(both)
    assert len(listed) == len(set(listed)) == 4 + 8, "the gateway's objects are listed once, not again by the purge"
    assert both["namespace"]["deleted"]
    assert refs(result) == [
        ("CustomResourceDefinition", None, "gateways.networking.istio.io"),
        ("Deployment", "istio-system", "istiod"),
        ("Gateway", "shop", "public"),
        ("MutatingWebhookConfiguration", None, "istio-sidecar-injector"),
    ]
    assert result["changed"] and result["purge"]["remaining"] == []


def test_real_purge_runs_istioctl_and_reports_what_went(monkeypatch, tmp_path):
    binary = tmp_path / "istioctl"
    binary.write_text("#!/bin/sh\n")
    os.chmod(str(binary), 0o755)
    kube = purge_bed()
    kube.params = {"kubeconfig": str(tmp_path / "kubeconfig")}
    args = dict(
        name=None, namespace=None, purge=True, confirm_purge=cleanup.PURGE_CONFIRMATION, binary_path=str(binary)
    )
    mgr = manager(monkeypatch, cleanup.GatewayCleanupManager, kube, params(**args))

    def uninstall(argv, environ_update=None):
        mgr.module.commands.append(argv)
        if "uninstall" in argv:  # what istioctl does: delete everything labelled with a component
            for key in [
                k for k, o in kube.objects.items() if L.OPERATOR_COMPONENT in (o["metadata"].get("labels") or {})
            ]:
                del kube.objects[key]
            kube.objects.pop(("networking.istio.io/v1", "Gateway", "shop", "public"))
            return 0, "", ""
        return 0, '{"clientVersion": {"version": "1.30.0"}}', ""

    mgr.module.run_command = uninstall
    result = mgr.run()
    assert [a for a in mgr.module.commands[-1] if a in ("uninstall", "-y", "--purge")] == ["uninstall", "-y", "--purge"]
    assert len(result["removed"]) == 4 and result["purge"]["remaining"] == []
    assert kube.has("apps/v1", "Deployment", "shop-api", "shop")
    mgr = manager(monkeypatch, cleanup.GatewayCleanupManager, kube, params(**args))
    again = mgr.run()
    assert not again["changed"] and not any("uninstall" in argv for argv in mgr.module.commands)
