"""The manifest method's render against the real `istioctl manifest generate` for the same options, facet by
facet (render_facets.py), and the method's own marks, order and patches."""

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils import install_manifest
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from tests.unit.plugins.module_utils.render_facets import (
    COMBINATIONS,
    DELIBERATE_DIFFERENCES,
    NO_HPA,
    by_kind,
    facets,
    gateway_params,
    istioctl_binary,
    istioctl_render,
    with_effective_budget,
)

ISTIOCTL = istioctl_binary()
needs_istioctl = pytest.mark.skipif(
    ISTIOCTL is None, reason="the bed's istioctl is not built (make testbed-build): no reference render"
)

params = gateway_params


@needs_istioctl
@pytest.mark.parametrize("case", sorted(COMBINATIONS))
def test_render_matches_istioctl_facet_by_facet(case, tmp_path):
    options = with_effective_budget(COMBINATIONS[case])
    ours = facets(install_manifest.render_manifest(options))
    reference = facets(istioctl_render(ISTIOCTL, options, tmp_path))
    # Facet by facet, so a failure names the facet rather than dumping two whole renders.
    assert sorted(ours) == sorted(reference)
    for facet in sorted(reference):
        assert ours[facet] == reference[facet], facet


@needs_istioctl
def test_replicas_with_hpa_is_a_deliberate_difference(tmp_path):
    """istioctl applies k8s.replicaCount beside the HPA; the manifest leaves the count to the autoscaler."""
    options = params(replicas=3)
    ours = facets(install_manifest.render_manifest(options))
    reference = facets(istioctl_render(ISTIOCTL, options, tmp_path))
    assert "replicas with an HPA" in DELIBERATE_DIFFERENCES
    assert (ours["deployment"]["replicas"], reference["deployment"]["replicas"]) == (None, 3)
    assert ours["hpa"] == reference["hpa"]
    ours["deployment"]["replicas"] = 3
    assert ours == reference


@needs_istioctl
def test_deliberate_differences_are_what_istioctl_renders_beside_the_facets(tmp_path):
    """The differences the facets skip are real in istioctl's render and absent from ours: the list is honest."""
    ours = by_kind(install_manifest.render_manifest(params()))["Deployment"][0]
    reference = by_kind(istioctl_render(ISTIOCTL, params(), tmp_path))["Deployment"][0]
    assert [v["name"] for v in reference["spec"]["template"]["spec"]["volumes"]] == [
        "ingressgateway-certs",
        "ingressgateway-ca-certs",
    ]
    assert "volumes" not in ours["spec"]["template"]["spec"]
    assert "affinity" in reference["spec"]["template"]["spec"] and "affinity" not in ours["spec"]["template"]["spec"]
    assert reference["metadata"]["labels"]["helm.sh/chart"].startswith("istio-ingress")
    assert ours["spec"]["template"]["spec"]["securityContext"]["sysctls"] == [
        {"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}
    ]
    assert "sysctls" not in reference["spec"]["template"]["spec"]["securityContext"]


def test_every_object_carries_the_method_marks_in_the_gateway_namespace():
    objects = install_manifest.render_manifest(params(pod_disruption_budget={"min_available": 1}, replicas=2))
    assert sorted(o["kind"] for o in objects) == sorted(install_manifest.APPLY_ORDER)
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert obj["metadata"]["namespace"] == "istio-ingress"
        assert labels[L.MANAGED_BY] == L.MANAGED_BY_VALUE
        assert labels[L.INSTALLED_BY] == "manifest"
        assert labels[L.INSTALLED_FOR] == "istio-ingressgateway"
        assert not set(labels) & set(L.OWNER_LABEL_KEYS)
    # The pods carry no ownership: a migration between methods never rolls them for a mark.
    deployment = by_kind(objects)["Deployment"][0]
    assert not {L.INSTALLED_BY, L.INSTALLED_FOR, L.MANAGED_BY} & set(
        deployment["spec"]["template"]["metadata"]["labels"]
    )


def test_injection_marks_of_the_kubernetes_yaml_method():
    deployment = by_kind(install_manifest.render_manifest(params(revision="1-31", injection_template="custom")))[
        "Deployment"
    ][0]
    template = deployment["spec"]["template"]
    assert template["metadata"]["annotations"][L.INJECT_TEMPLATES] == "custom"
    assert template["metadata"]["annotations"][L.SIDECAR_INJECT] == "true"
    assert template["metadata"]["labels"][L.REVISION] == "1-31"
    assert template["spec"]["containers"][0]["image"] == "auto"
    assert deployment["metadata"]["labels"][L.REVISION] == "1-31"
    default = by_kind(install_manifest.render_manifest(params()))["Deployment"][0]
    assert L.REVISION not in default["spec"]["template"]["metadata"]["labels"]
    assert default["metadata"]["labels"][L.REVISION] == L.DEFAULT_REVISION


def test_pdb_bounds_as_the_api_takes_them():
    for given, expected in ((2, 2), ("2", 2), ("50%", "50%")):
        options = params(replicas=3, autoscaling=NO_HPA, pod_disruption_budget={"min_available": given})
        (pdb,) = by_kind(install_manifest.render_manifest(options))["PodDisruptionBudget"]
        assert pdb["spec"]["minAvailable"] == expected
        assert "maxUnavailable" not in pdb["spec"]
    assert "PodDisruptionBudget" not in by_kind(install_manifest.render_manifest(params()))


class RecordingKube(object):
    def __init__(self):
        self.calls = []

    def apply(self, obj, field_manager=None, dry_run=False):
        self.calls.append(("apply", obj["kind"], obj["metadata"]["name"], field_manager, dry_run))
        return obj

    def delete(self, api_version, kind, name, namespace=None, read=None):
        self.calls.append(("delete", kind, name, read["metadata"]["resourceVersion"]))
        return True


def change(obj, action):
    meta = obj["metadata"]
    return {
        "api_version": obj["apiVersion"],
        "kind": obj["kind"],
        "name": meta["name"],
        "namespace": meta["namespace"],
        "action": action,
        "live": dict(obj, metadata=dict(meta, resourceVersion="7")),
        "after": obj,
    }


def test_apply_writes_only_what_changes_in_order():
    options = params(replicas=2, autoscaling=NO_HPA, pod_disruption_budget={"max_unavailable": 1})
    desired = install_manifest.render_manifest(options)
    kinds = by_kind(desired)
    # Reversed on purpose: the method orders the writes itself.
    actions = {"PodDisruptionBudget": "create", "Deployment": "update", "RoleBinding": "create", "Service": "none"}
    changes = [change(o, actions.get(o["kind"], "none")) for o in reversed(desired)]
    stale_hpa = install_manifest.render_manifest(params())[-1]
    assert stale_hpa["kind"] == "HorizontalPodAutoscaler"
    changes.append(change(stale_hpa, "prune"))
    kube = RecordingKube()
    method = install_manifest.ManifestMethod(None, kube, options, {})
    method.apply(list(reversed(desired)), changes)
    assert kube.calls == [
        ("apply", "RoleBinding", "istio-ingressgateway-sds", L.FIELD_MANAGER, False),
        ("apply", "Deployment", "istio-ingressgateway", L.FIELD_MANAGER, False),
        ("apply", "PodDisruptionBudget", "istio-ingressgateway", L.FIELD_MANAGER, False),
    ]
    assert "HorizontalPodAutoscaler" not in kinds
    assert method.describe() == {
        "field_manager": L.FIELD_MANAGER,
        "applied": [
            "RoleBinding/istio-ingressgateway-sds",
            "Deployment/istio-ingressgateway",
            "PodDisruptionBudget/istio-ingressgateway",
        ],
    }


def test_owns_by_marks_name_and_namespace():
    method = install_manifest.ManifestMethod(None, None, params(), {})
    (service_obj,) = by_kind(install_manifest.render_manifest(params()))["Service"]
    assert method.owns(service_obj)
    other_gateway = install_manifest.render_manifest(params(name="other"))[0]
    assert not method.owns(other_gateway)
    elsewhere = dict(service_obj, metadata=dict(service_obj["metadata"], namespace="elsewhere"))
    assert not method.owns(elsewhere)
    helm_marked = dict(
        service_obj,
        metadata=dict(
            service_obj["metadata"], labels=dict(service_obj["metadata"]["labels"], **{L.INSTALLED_BY: "helm"})
        ),
    )
    assert not method.owns(helm_marked)


def test_claim_patch_moves_ownership_to_the_method():
    method = install_manifest.ManifestMethod(None, None, params(), {})
    owner = L.owner_labels("istio-ingress.istio-ingressgateway", "istio-system", None, "1.30.0", "ingress")
    helm = {L.HELM_RELEASE_NAME: "istio-ingressgateway", L.HELM_RELEASE_NAMESPACE: "istio-ingress"}
    live = {
        "metadata": {
            "name": "istio-ingressgateway",
            "namespace": "istio-ingress",
            "resourceVersion": "42",
            "labels": dict(owner, team="edge"),
            "annotations": dict(helm, keep="me"),
        }
    }
    patch = method.claim_patch(live)
    assert patch["metadata"]["resourceVersion"] == "42"
    labels = patch["metadata"]["labels"]
    assert {k: labels[k] for k in L.OWNER_LABEL_KEYS} == dict.fromkeys(L.OWNER_LABEL_KEYS)
    assert labels[L.MANAGED_BY] == L.MANAGED_BY_VALUE  # replaces Helm's managed-by=Helm
    assert labels[L.INSTALLED_BY] == "manifest" and labels[L.INSTALLED_FOR] == "istio-ingressgateway"
    assert "team" not in labels, "other labels are left alone"
    assert patch["metadata"]["annotations"] == {L.HELM_RELEASE_NAME: None, L.HELM_RELEASE_NAMESPACE: None}
    assert set(patch) == {"metadata"}


def test_claim_patch_transfers_the_previous_methods_fields_to_the_field_manager():
    """Server-side apply removes only fields its manager owned: the old method's entries become ours, so the
    first apply drops what the old method set and this one does not render (on the bed: the chart labels)."""
    entry = {"apiVersion": "v1", "fieldsType": "FieldsV1", "time": "t"}
    live = {
        "metadata": {
            "resourceVersion": "5",
            "managedFields": [
                dict(entry, manager=L.ISTIOCTL_FIELD_MANAGER, operation="Apply", fieldsV1={"f:spec": {"f:a": {}}}),
                dict(entry, manager="helm", operation="Update", fieldsV1={"f:spec": {"f:b": {}}}),
                dict(entry, manager="kube-controller-manager", operation="Update", fieldsV1={"f:status": {}}),
                dict(entry, manager=L.FIELD_MANAGER, operation="Apply", fieldsV1={"f:metadata": {"f:labels": {}}}),
            ],
        }
    }
    patch = install_manifest.ManifestMethod(None, None, params(), {}).claim_patch(live)
    managed = patch["metadata"]["managedFields"]
    assert [(m["manager"], m["operation"]) for m in managed] == [
        ("kube-controller-manager", "Update"),
        (L.FIELD_MANAGER, "Apply"),
    ]
    assert managed[1]["fieldsV1"] == {"f:spec": {"f:a": {}, "f:b": {}}, "f:metadata": {"f:labels": {}}}
