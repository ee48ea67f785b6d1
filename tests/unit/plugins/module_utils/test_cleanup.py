"""gateway_cleanup's logic on an in-memory cluster: what is removed, what is kept, and when the namespace goes."""

import os

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils import cleanup, owners, ownership
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import InputError
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import Conflict, Forbidden
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
        adopt=False,
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
    assert ownership.object_names("istioctl", "gw", "default") == {
        "Deployment": "gw",
        "Service": "gw",
        "HorizontalPodAutoscaler": "gw",
        "PodDisruptionBudget": "gw",
        "ServiceAccount": "gw-service-account",
        "Role": "gw-sds",
        "RoleBinding": "gw-sds",
        "NetworkPolicy": "gw",
    }
    assert ownership.object_names("istioctl", "gw", "1-31")["NetworkPolicy"] == "gw-1-31"


def test_foreign_gateway_selects_a_hand_made_istioctl_gateway_by_owner_and_component_on_adopt():
    # An IstioOperator named after the gateway alone is not the collection's: it may hold other gateways.
    hand = deployment("gw", NS, owner("gw"))
    assert ownership.owner_of(hand, "gw", NS) is None
    assert ownership.owner_of(deployment("gw", NS, owner(L.iop_name("gw", NS))), "gw", NS) == "istioctl"
    how, selector = cleanup.foreign_gateway(hand, "gw", NS, adopt=True)
    assert how == "istioctl" and selector[L.OPERATOR_COMPONENT] == "IngressGateways"
    with pytest.raises(owners.ForeignObject, match="set adopt: true"):
        cleanup.foreign_gateway(hand, "gw", NS, adopt=False)


@pytest.mark.parametrize(
    "labels, message",
    [
        ({L.CANARY_OF: "gw"}, "is the canary of gateway 'gw'"),
        ({"app": "shop"}, "no installer's marks say which objects belong to it"),
        (owner("installed-state", "istio-system", component="Pilot"), "is not a gateway (istioctl component 'Pilot')"),
    ],
)
def test_foreign_gateway_refuses_what_is_not_a_gateway_of_an_installer(labels, message):
    with pytest.raises((InputError, owners.ForeignObject), match=message.replace("(", r"\(").replace(")", r"\)")):
        cleanup.foreign_gateway(deployment("gw", NS, labels), "gw", NS, adopt=True)


def owned_by(owner_obj, controller=True):
    meta = owner_obj["metadata"]
    return [
        {
            "apiVersion": owner_obj["apiVersion"],
            "kind": owner_obj["kind"],
            "name": meta["name"],
            "uid": meta["uid"],
            "controller": controller,
        }
    ]


def test_leftovers_ignore_automatic_terminating_and_removed_objects():
    objects = automatic("app") + [
        obj("v1", "Pod", "old", "app", deletionTimestamp="2024-01-01T00:00:00Z"),
        obj(
            "v1",
            "Secret",
            "default-token-x",
            "app",
            type="kubernetes.io/service-account-token",
            annotations={cleanup.SERVICE_ACCOUNT_NAME: "default"},
        ),
        obj("v1", "Service", "gw", "app", uid="svc-gw"),
        obj("v1", "Endpoints", "gw", "app"),
        obj("v1", "ConfigMap", "settings", "app"),
        obj("v1", "ConfigMap", "istio-ca-crl", "app"),
        obj("v1", "ConfigMap", "custom-trust-bundle", "app", {"istio.io/config": "true"}),
    ]
    removed = [objects[-5]]
    assert cleanup.leftovers(objects, removed) == [{"kind": "ConfigMap", "namespace": "app", "name": "settings"}]


def test_leftovers_follow_owners():
    gw = obj("apps/v1", "Deployment", "gw", "app", uid="dep-gw")
    gw_rs = obj("apps/v1", "ReplicaSet", "gw-1", "app", uid="rs-gw", ownerReferences=owned_by(gw))
    gw_pod = obj("v1", "Pod", "gw-1-a", "app", ownerReferences=owned_by(gw_rs))
    # A pod whose ReplicaSet the garbage collector took already: its owner's kind was listed, the owner is gone.
    orphan = obj("v1", "Pod", "gw-0-b", "app", ownerReferences=[dict(owned_by(gw_rs)[0], uid="rs-gone")])
    app = obj("apps/v1", "Deployment", "web", "app", uid="dep-web")
    app_rs = obj("apps/v1", "ReplicaSet", "web-1", "app", uid="rs-web", ownerReferences=owned_by(app))
    app_pod = obj("v1", "Pod", "web-1-a", "app", ownerReferences=owned_by(app_rs))
    # A workload of a custom resource (an Argo Rollout): the old code skipped anything with a controller.
    rollout = obj("argoproj.io/v1alpha1", "Rollout", "shop", "app", uid="ro-shop")
    ro_rs = obj("apps/v1", "ReplicaSet", "shop-1", "app", uid="rs-shop", ownerReferences=owned_by(rollout))
    unlisted = obj("v1", "Pod", "db-0", "app", ownerReferences=[dict(owned_by(rollout)[0], kind="Database", uid="x")])
    token = obj(
        "v1",
        "Secret",
        "gw-token",
        "app",
        type="kubernetes.io/service-account-token",
        annotations={cleanup.SERVICE_ACCOUNT_NAME: "gw-service-account"},
    )
    account = obj("v1", "ServiceAccount", "gw-service-account", "app")
    everything = [gw_rs, gw_pod, orphan, app, app_rs, app_pod, ro_rs, unlisted, token]
    listed = {("apps", "Deployment"), ("apps", "ReplicaSet"), ("", "Pod")}  # Rollouts could not be listed
    left = cleanup.leftovers(everything, [gw, account], listed)
    assert [(r["kind"], r["name"]) for r in left] == [
        ("Deployment", "web"),
        ("Pod", "db-0"),
        ("Pod", "web-1-a"),
        ("ReplicaSet", "shop-1"),
        ("ReplicaSet", "web-1"),
    ]
    # Listed, the Rollout counts, and its ReplicaSet because it does; listed but gone, neither does.
    listed.add(("argoproj.io", "Rollout"))
    names = [(r["kind"], r["name"]) for r in cleanup.leftovers(everything + [rollout], [gw], listed)]
    assert ("Rollout", "shop") in names and ("ReplicaSet", "shop-1") in names
    assert ("ReplicaSet", "shop-1") not in [(r["kind"], r["name"]) for r in cleanup.leftovers(everything, [gw], listed)]


def decide(created=False, left=(), istiod=False, missing=False, unlisted=(), **flags):
    refs_ = [{"kind": kind, "namespace": "ns", "name": name} for kind, name in left]
    return cleanup.namespace_decision(
        namespace("ns", created), refs_, params(namespace="ns", **flags), istiod, missing, list(unlisted)
    )


@pytest.mark.parametrize(
    "case, expected",
    [
        ({"created": True}, (True, "created by this collection and nothing else is left in it")),
        ({"created": True, "left": [("ConfigMap", "x")]}, (False, "created by this collection, but it still holds")),
        ({}, (False, "this collection did not create it")),
        ({"delete_namespace": True}, (True, "delete_namespace: true and nothing else is left in it")),
        # ConfigMaps, custom resources and Istio policies block delete_namespace too (not only workloads).
        ({"left": [("ConfigMap", "x")], "delete_namespace": True}, (False, "still holds: ConfigMap x")),
        ({"left": [("AuthorizationPolicy", "x")], "delete_namespace": True}, (False, "AuthorizationPolicy x")),
        ({"left": [("Deployment", "x")], "force": True}, (True, "force: true")),
        (
            {"left": [("PersistentVolumeClaim", "data"), ("Secret", "db")], "delete_namespace": True},
            (False, "it holds data this collection did not create: PersistentVolumeClaim data, Secret db"),
        ),
        ({"created": True, "left": [("Secret", "db")]}, (False, "set force: true to delete it with the namespace")),
        ({"left": [("PersistentVolumeClaim", "data")], "force": True}, (True, "force: true")),
        (
            {"unlisted": ["Lease coordination.k8s.io/v1: forbidden"], "created": True},
            (False, "could not all be listed"),
        ),
        ({"unlisted": ["x"], "force": True}, (True, "force: true")),
        ({"created": True, "force": True, "istiod": True}, (False, "holds an Istio control plane")),
        # A gateway name that matches nothing (a typo) deletes nothing, not even with force.
        ({"created": True, "missing": True}, (False, "nothing of gateway 'istio-ingressgateway' was found")),
        ({"missing": True, "force": True, "delete_namespace": True}, (False, "check name (a typo?)")),
        # ...except a namespace this collection created, with force: an earlier run may have kept it.
        ({"created": True, "missing": True, "force": True}, (True, "force: true")),
    ],
)
def test_namespace_decision(case, expected):
    delete, reason = decide(**case)
    assert delete is expected[0]
    assert expected[1] in reason, reason


def test_system_namespaces_are_never_deleted():
    delete, reason = cleanup.namespace_decision(
        namespace("kube-system"), [], params(namespace="kube-system", force=True), False
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
        {L.GATEWAY_OF: "istio-ingressgateway", L.GATEWAY_NAMESPACE_OF: NS, L.MANAGED_BY: L.MANAGED_BY_VALUE},
    )
    # Another team's Gateway that copied the labels but not the managed-by mark: not the collection's.
    lookalike = obj(
        "networking.istio.io/v1",
        "Gateway",
        "team",
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
            lookalike,
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
    assert kube.has("networking.istio.io/v1", "Gateway", "team", "shop")
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
    with pytest.raises(owners.ForeignObject, match="set adopt: true"):
        run(monkeypatch, kube, name="gw-a")
    result, _m = run(monkeypatch, kube, name="gw-a", adopt=True)
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
    before = dict(kube.objects)
    check, module = run(monkeypatch, kube, check_mode=True, name="gw", namespace="shop", delete_namespace=True)
    assert check["changed"] and not check["namespace"]["deleted"]
    assert "Deployment shop-api" in check["namespace"]["reason"] and module.warnings
    assert "ConfigMap shop-settings" in check["namespace"]["reason"], "a ConfigMap blocks delete_namespace too"
    assert kube.objects == before
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


# -- safety: hand-written IstioOperators, typos, data, discovery, preconditions ----------------------------


def test_hand_written_operator_with_the_collections_name_loses_only_the_named_gateway(monkeypatch):
    """A hand-written IstioOperator that happens to bear the collection's name for gw-a, holding gw-a and gw-b."""
    labels = owner(L.iop_name("gw-a", NS))
    kube = FakeKube([namespace(NS)] + chart_objects("gw-a", NS, labels) + chart_objects("gw-b", NS, labels))
    result, _m = run(monkeypatch, kube, name="gw-a")
    assert result["gateway"]["installed_by"] == "collection"
    assert {r["name"] for r in result["removed"]} == {"gw-a", "gw-a-service-account", "gw-a-sds"}
    assert sorted(k[3] for k in kube.objects if k[1] != "Namespace") == sorted(
        o["metadata"]["name"] for o in chart_objects("gw-b", NS, labels)
    ), "gw-b keeps every object"


def test_leftovers_of_a_removed_deployment_are_limited_to_the_gateways_chart_objects(monkeypatch):
    labels = owner(L.iop_name("gw-a", NS))
    kube = FakeKube([namespace(NS)] + chart_objects("gw-a", NS, labels)[1:] + chart_objects("gw-b", NS, labels))
    result, _m = run(monkeypatch, kube, name="gw-a")
    assert result["gateway"] == {"name": "gw-a", "namespace": NS, "found": False, "installed_by": "collection"}
    assert all(r["name"].startswith("gw-a") for r in result["removed"]) and len(result["removed"]) == 7
    assert kube.has("apps/v1", "Deployment", "gw-b", NS) and kube.has("v1", "Service", "gw-b", NS)


@pytest.mark.parametrize("flags", [{}, {"delete_namespace": True}, {"force": True, "delete_namespace": True}])
def test_a_gateway_name_that_matches_nothing_deletes_nothing_namespace_included(monkeypatch, flags):
    kube = FakeKube([namespace("gw-ns")] + automatic("gw-ns"))
    result, module = run(monkeypatch, kube, name="istio-ingressgatewya", namespace="gw-ns", **flags)
    assert not result["changed"] and result["removed"] == [] and not kube.writes
    assert not result["namespace"]["deleted"] and "a typo?" in result["namespace"]["reason"]
    assert kube.has("v1", "Namespace", "gw-ns")
    assert bool(module.warnings) == bool(flags)


def app_namespace(*extra):
    return FakeKube(
        [namespace("app")] + automatic("app") + chart_objects("gw", "app", owner(L.iop_name("gw", "app"))) + list(extra)
    )


@pytest.mark.parametrize(
    "item",
    [
        obj("v1", "PersistentVolumeClaim", "data", "app"),
        obj("v1", "Secret", "db-password", "app"),
        obj("v1", "Secret", "ci-token", "app", type="kubernetes.io/service-account-token"),
    ],
    ids=["pvc", "secret", "token-of-another-account"],
)
def test_data_blocks_delete_namespace_unless_force(monkeypatch, item):
    kube = app_namespace(item)
    result, module = run(monkeypatch, kube, name="gw", namespace="app", delete_namespace=True)
    assert result["changed"] and not result["namespace"]["deleted"]
    assert (
        "it holds data this collection did not create: %s %s" % (item["kind"], item["metadata"]["name"])
        in (result["namespace"]["reason"])
    )
    assert module.warnings and kube.has("v1", item["kind"], item["metadata"]["name"], "app")
    kube = app_namespace(item)
    forced, _m = run(monkeypatch, kube, name="gw", namespace="app", delete_namespace=True, force=True)
    assert forced["namespace"]["deleted"] and not kube.has("v1", "Namespace", "app")


def test_custom_resources_found_by_discovery_block_the_namespace(monkeypatch):
    policy = obj("security.istio.io/v1", "AuthorizationPolicy", "deny-all", "app")
    database = obj("example.com/v1", "Database", "orders", "app", uid="db-orders")
    # Its pod has a controller (the custom resource): the old code skipped anything with one.
    pod = obj("v1", "Pod", "orders-0", "app", ownerReferences=owned_by(database))
    kube = app_namespace(policy, database, pod)
    kube.apis |= {"security.istio.io/v1"}
    result, _m = run(monkeypatch, kube, check_mode=True, name="gw", namespace="app", delete_namespace=True)
    assert not result["namespace"]["deleted"]
    assert [(r["kind"], r["name"]) for r in result["namespace"]["remaining"]] == [
        ("AuthorizationPolicy", "deny-all"),
        ("Database", "orders"),
        ("Pod", "orders-0"),
    ]


def test_the_removed_gateways_own_pods_and_endpoints_do_not_count(monkeypatch):
    kube = FakeKube(
        [namespace("gw-ns", created=True)]
        + automatic("gw-ns")
        + chart_objects("gw", "gw-ns", owner(L.iop_name("gw", "gw-ns")))
    )
    dep = kube.get("apps/v1", "Deployment", "gw", "gw-ns")
    svc = kube.get("v1", "Service", "gw", "gw-ns")
    rs = kube.add(obj("apps/v1", "ReplicaSet", "gw-1", "gw-ns", ownerReferences=owned_by(dep)))
    kube.add(obj("v1", "Pod", "gw-1-a", "gw-ns", ownerReferences=owned_by(rs)))
    kube.add(obj("discovery.k8s.io/v1", "EndpointSlice", "gw-x", "gw-ns", ownerReferences=owned_by(svc)))
    kube.add(obj("v1", "Endpoints", "gw", "gw-ns"))
    kube.add(obj("v1", "Event", "gw.1", "gw-ns"))
    check, _m = run(monkeypatch, kube, check_mode=True, name="gw", namespace="gw-ns")
    assert check["namespace"]["deleted"] and check["namespace"]["remaining"] == []


def test_a_kind_that_cannot_be_listed_keeps_the_namespace(monkeypatch):
    kube = FakeKube(
        [namespace("gw-ns", created=True)]
        + automatic("gw-ns")
        + chart_objects("gw", "gw-ns", owner(L.iop_name("gw", "gw-ns")))
    )
    kube.unlistable[("v1", "Secret")] = Forbidden("secrets is forbidden (HTTP 403)", status=403)
    kube.discovery_failures.append(("example.com/v1", "GET /apis/example.com/v1: service unavailable (HTTP 503)"))
    result, _m = run(monkeypatch, kube, name="gw", namespace="gw-ns")
    assert result["changed"] and not result["namespace"]["deleted"] and kube.has("v1", "Namespace", "gw-ns")
    reason = result["namespace"]["reason"]
    assert "could not all be listed" in reason and "Secret v1: secrets is forbidden" in reason
    assert "API example.com/v1: GET /apis/example.com/v1: service unavailable" in reason


def test_an_object_recreated_between_listing_and_delete_is_not_deleted(monkeypatch):
    kube = FakeKube([namespace("gw-ns")] + chart_objects("gw", "gw-ns", owner(L.iop_name("gw", "gw-ns"))))
    team = obj("v1", "Service", "gw", "gw-ns", {"team": "payments"})

    def recreate(key):
        if key[1] == "Service" and kube.objects[key]["metadata"].get("labels", {}).get("team") is None:
            del kube.objects[key]
            kube.add(team)  # same name, new uid: not what was read

    kube.before_delete = recreate
    with pytest.raises(Conflict, match="precondition"):
        run(monkeypatch, kube, name="gw", namespace="gw-ns")
    assert kube.get("v1", "Service", "gw", "gw-ns")["metadata"]["labels"] == {"team": "payments"}
    assert ("delete", "Service", "gw-ns", "gw") not in kube.writes
    assert kube.has("apps/v1", "Deployment", "gw", "gw-ns"), "the Deployment, deleted last, is still there to rerun"


def test_a_namespace_recreated_before_its_delete_is_not_deleted(monkeypatch):
    kube = FakeKube(
        [namespace("gw-ns", created=True)]
        + automatic("gw-ns")
        + chart_objects("gw", "gw-ns", owner(L.iop_name("gw", "gw-ns")))
    )

    def recreate(key):
        if key[1] == "Namespace":
            del kube.objects[key]
            kube.add(namespace("gw-ns"))

    kube.before_delete = recreate
    with pytest.raises(Conflict, match="precondition"):
        run(monkeypatch, kube, name="gw", namespace="gw-ns")
    assert kube.has("v1", "Namespace", "gw-ns")


def test_legacy_owner_name_counts_only_the_named_gateways_chart_objects():
    """A hand-written IstioOperator called like the old scheme (edge-public) holding two gateways: under that
    name only gateway public's chart objects are public's (istio_gateway would otherwise prune `internal`)."""
    legacy = L.legacy_iop_name("public", "edge")
    kube = FakeKube(chart_objects("public", "edge", owner(legacy)) + chart_objects("internal", "edge", owner(legacy)))
    found = {(o["kind"], o["metadata"]["name"]) for o in ownership.owned_objects(kube, "public", "edge")}
    assert found == {(o["kind"], o["metadata"]["name"]) for o in chart_objects("public", "edge", {})}
    assert not any(name.startswith("internal") for _kind, name in found)
