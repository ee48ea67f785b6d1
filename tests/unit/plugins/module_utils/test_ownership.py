"""What a gateway owns, whatever installed it: the marks of each method, and what stands in the way."""

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils import install_method, ownership
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from tests.unit.plugins.module_utils.fake_cluster import FakeKube, obj

NS = "payments"


def helm_marked(kind, name, release="gw", release_ns=NS, installed_for="gw", namespace=NS):
    labels = {L.MANAGED_BY: L.HELM_MANAGED_BY_VALUE, L.INSTALLED_BY: "helm", L.INSTALLED_FOR: installed_for}
    annotations = {L.HELM_RELEASE_NAME: release, L.HELM_RELEASE_NAMESPACE: release_ns}
    return obj("v1" if kind == "Service" else "apps/v1", kind, name, namespace, labels, annotations=annotations)


def manifest_marked(kind, name, installed_for="gw", namespace=NS):
    labels = {L.MANAGED_BY: L.MANAGED_BY_VALUE, L.INSTALLED_BY: "manifest", L.INSTALLED_FOR: installed_for}
    return obj("v1" if kind == "Service" else "apps/v1", kind, name, namespace, labels)


def istioctl_marked(kind, name, owner, namespace=NS):
    labels = L.owner_labels(owner, "istio-system", None, "1.30.0", "ingress")
    return obj("v1" if kind == "Service" else "apps/v1", kind, name, namespace, labels)


@pytest.mark.parametrize(
    "item, method",
    [
        (istioctl_marked("Deployment", "gw", L.iop_name("gw", NS)), "istioctl"),
        (istioctl_marked("Deployment", "gw", L.legacy_iop_name("gw", NS)), "istioctl"),
        (helm_marked("Deployment", "gw"), "helm"),
        (manifest_marked("Service", "gw"), "manifest"),
    ],
)
def test_each_method_s_marks_make_the_object_the_gateways(item, method):
    assert ownership.owner_of(item, "gw", NS) == method
    assert ownership.installed_by(item) == method


@pytest.mark.parametrize(
    "item, why",
    [
        (istioctl_marked("Deployment", "gw", "hand-written"), "another IstioOperator"),
        (helm_marked("Deployment", "gw", release="edge"), "another Helm release of the same objects"),
        (helm_marked("Deployment", "gw", release_ns="other"), "a release of another namespace"),
        (helm_marked("Deployment", "gw", installed_for="gw2"), "the collection's label names another gateway"),
        (manifest_marked("Deployment", "gw", installed_for="other"), "the manifest marks of another gateway"),
        (manifest_marked("Deployment", "gw-other"), "a name the gateway's charts do not give"),
        (obj("apps/v1", "Deployment", "gw", NS, {"app": "gw"}), "no marks at all (made by hand)"),
        (obj("apps/v1", "Deployment", "gw", NS, {L.INSTALLED_FOR: "gw", L.INSTALLED_BY: "manifest"}), "no managed-by"),
    ],
)
def test_foreign_objects_of_the_same_name_or_labels_are_not_the_gateways(item, why):
    assert ownership.owner_of(item, "gw", NS) is None, why


def test_a_hand_made_helm_release_of_the_gateways_name_is_not_the_collections():
    # `helm install gw istio/gateway` by hand: Helm's marks, none of the collection's.
    hand = helm_marked("Deployment", "gw")
    del hand["metadata"]["labels"][L.INSTALLED_BY]
    del hand["metadata"]["labels"][L.INSTALLED_FOR]
    assert ownership.installed_by(hand) == "helm" and ownership.owner_of(hand, "gw", NS) is None


def test_canary_copies_carry_no_method_marks_and_are_never_owned():
    canary = manifest_marked("Deployment", "gw")
    canary["metadata"]["labels"][L.CANARY_OF] = "gw"
    assert ownership.owner_of(canary, "gw", NS) is None
    assert {L.INSTALLED_BY, L.INSTALLED_FOR} <= set(L.METHOD_MARK_KEYS)


def test_two_gateways_whose_names_and_namespaces_join_alike_own_nothing_of_each_other():
    # payments-api/gw and payments/api-gw: one legacy IstioOperator name, distinct everything else.
    a = manifest_marked("Deployment", "gw", installed_for="gw", namespace="payments-api")
    b = manifest_marked("Deployment", "api-gw", installed_for="api-gw", namespace="payments")
    assert ownership.owner_of(a, "api-gw", "payments") is None
    assert ownership.owner_of(b, "gw", "payments-api") is None
    assert L.iop_name("gw", "payments-api") != L.iop_name("api-gw", "payments")


def test_helm_names_its_role_after_the_service_account():
    assert ownership.object_names("helm", "gw", None)["Role"] == "gw-service-account"
    assert ownership.object_names("manifest", "gw", None)["Role"] == "gw-sds"
    assert ownership.object_names("istioctl", "gw", "1-31")["NetworkPolicy"] == "gw-1-31"


def test_gateway_objects_take_the_release_records_only_of_the_collections_release():
    record = obj("v1", "Secret", "sh.helm.release.v1.gw.v1", NS, {"owner": "helm", "name": "gw"})
    mine = helm_marked("Deployment", "gw")
    kube = FakeKube([obj("v1", "Namespace", NS), mine, record])
    assert {o["kind"] for o in ownership.gateway_objects(kube, "gw", NS)} == {"Deployment", "Secret"}
    # The objects are gone (an interrupted removal): only a record labelled by the collection counts.
    kube = FakeKube([obj("v1", "Namespace", NS), record])
    assert ownership.gateway_objects(kube, "gw", NS) == []
    record["metadata"]["labels"].update({L.INSTALLED_BY: "helm", L.INSTALLED_FOR: "gw"})
    kube = FakeKube([obj("v1", "Namespace", NS), record])
    assert [o["kind"] for o in ownership.gateway_objects(kube, "gw", NS)] == ["Secret"]


def test_the_delete_order_puts_the_deployment_after_its_objects_and_records_last():
    order = ownership.DELETE_ORDER
    assert order[:2] == ("Gateway", "ConfigMap") and order[-1] == "Secret" and order[-2] == "Deployment"
    assert set(order[2:-1]) == {kind for _api, kind in ownership.OWNED_KINDS}


def test_claim_moves_marks_and_leaves_other_labels_and_annotations_alone():
    live = istioctl_marked("Deployment", "gw", L.iop_name("gw", NS))
    live["metadata"]["resourceVersion"] = "9"
    live["metadata"]["annotations"] = {"team": "edge"}
    patch = install_method.claim(
        live,
        {L.OWNING_RESOURCE: None, L.INSTALLED_BY: "manifest"},
        helm_annotations=None,
    )
    assert patch == {
        "metadata": {
            "labels": {L.OWNING_RESOURCE: None, L.INSTALLED_BY: "manifest"},
            "resourceVersion": "9",
        }
    }


@pytest.mark.parametrize(
    "options, budget",
    [
        ({}, None),
        ({"autoscaling": {"enabled": True, "min": 2, "max": 5}}, {"min_available": 1, "max_unavailable": None}),
        ({"autoscaling": {"enabled": False}, "replicas": 3}, {"min_available": 1, "max_unavailable": None}),
        ({"autoscaling": {"enabled": False}, "replicas": 3, "kind": "egress"}, None),
        ({"pod_disruption_budget": {"max_unavailable": "50%"}}, {"max_unavailable": "50%"}),
    ],
)
def test_every_method_gets_istios_default_budget_unless_the_option_says_otherwise(options, budget):
    params = dict({"kind": "ingress", "replicas": None, "autoscaling": None, "pod_disruption_budget": None}, **options)
    assert install_method.effective_budget(params) == budget
