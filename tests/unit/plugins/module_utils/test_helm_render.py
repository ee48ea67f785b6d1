"""The helm method's render (the real helm, Istio's packaged `gateway` chart, install_helm.chart_values) against
the real `istioctl manifest generate` for the same options, facet by facet (render_facets.py).

Where the chart cannot render istioctl's form, HELM_DIFFERENCES says why; as_istioctl_renders() first checks
that helm renders exactly that documented form, then turns it into istioctl's, so the comparison that follows
still fails on any other difference.
"""

import copy

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils import install_helm
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from tests.unit.plugins.module_utils.render_facets import (
    COMBINATIONS,
    HELM_DIFFERENCES,
    by_kind,
    facets,
    gateway_params,
    helm_render,
    helm_tools,
    istioctl_binary,
    istioctl_render,
    with_effective_budget,
)

ISTIOCTL = istioctl_binary()
HELM = helm_tools()
needs_both = pytest.mark.skipif(
    ISTIOCTL is None or HELM is None,
    reason="the bed's istioctl, helm or packaged gateway chart is not built (make testbed-build)",
)
DATAPLANE_MODE = "istio.io/dataplane-mode"
CANONICAL_NAME = "service.istio.io/canonical-name"
CANONICAL_REVISION = "service.istio.io/canonical-revision"
ENVOY_METRICS_PORT = {"containerPort": 15090, "protocol": "TCP", "name": "http-envoy-prom"}
UNPRIVILEGED_POD_ENV = [{"name": "ISTIO_META_UNPRIVILEGED_POD", "value": "true"}]
RUN_AS_PROXY = {"runAsUser": 1337, "runAsGroup": 1337, "runAsNonRoot": True}


def _rbac_names(name):
    return name + "-service-account", name + "-sds"  # the chart's, istioctl's


def _gateway_labels(ours):
    return ours["service"]["selector"]  # compared with istioctl's as it is


def rbac_names(ours, objects, params):
    chart, istioctl = _rbac_names(params["name"])
    for kind in ("Role", "RoleBinding"):
        assert ours["names"][kind] == [chart]
        ours["names"][kind] = [istioctl]
        ours["object_labels"]["%s/%s" % (kind, istioctl)] = ours["object_labels"].pop("%s/%s" % (kind, chart))
    assert ours["rbac"]["roleRef"]["name"] == chart
    ours["rbac"]["roleRef"]["name"] = istioctl


def dataplane_mode_label(ours, objects, params):
    for labels in list(ours["object_labels"].values()) + [ours["deployment"]["pod_labels"]]:
        assert labels.pop(DATAPLANE_MODE) == "none"


def rbac_labels(ours, objects, params):
    # The labels the chart gives every object, as on the ServiceAccount (compared with istioctl's as they are).
    chart_labels = ours["object_labels"]["ServiceAccount/%s" % _rbac_names(params["name"])[0]]
    for kind in ("Role", "RoleBinding"):
        key = "%s/%s" % (kind, _rbac_names(params["name"])[1])
        assert chart_labels and ours["object_labels"][key] == chart_labels
        ours["object_labels"][key] = {}


def revision_label(ours, objects, params):
    for labels in ours["object_labels"].values():
        assert L.REVISION not in labels
        labels[L.REVISION] = params.get("revision") or L.DEFAULT_REVISION


def selectors(ours, objects, params):
    gateway_labels = _gateway_labels(ours)
    chart_selector = {"matchLabels": {k: gateway_labels[k] for k in install_helm.CHART_SELECTOR_KEYS}}
    for facet in ("deployment", "pdb"):
        if facet in ours:
            assert ours[facet]["selector"] == chart_selector, facet
            ours[facet]["selector"] = {"matchLabels": dict(gateway_labels)}


def canonical_labels(ours, objects, params):
    (deployment,) = by_kind(objects)["Deployment"]
    assert deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == params["name"]
    pod_labels = ours["deployment"]["pod_labels"]
    assert not {CANONICAL_NAME, CANONICAL_REVISION} & set(pod_labels)
    pod_labels.update({CANONICAL_NAME: params["name"], CANONICAL_REVISION: params.get("revision") or "latest"})


def replicas_with_hpa(ours, objects, params):
    if "hpa" in ours and params.get("replicas") is not None:
        assert ours["deployment"]["replicas"] is None
        ours["deployment"]["replicas"] = params["replicas"]


def container_ports(ours, objects, params):
    deployment = ours["deployment"]
    assert deployment["container_ports"] == [ENVOY_METRICS_PORT]
    target_ports = [{"containerPort": p["targetPort"], "protocol": p["protocol"]} for p in ours["service"]["ports"]]
    deployment["container_ports"] = target_ports + [ENVOY_METRICS_PORT]


def security_context(ours, objects, params):
    deployment = ours["deployment"]
    assert deployment["pod_security"] == {}
    assert deployment["container_security"].pop("runAsNonRoot") is True
    deployment["pod_security"] = dict(RUN_AS_PROXY)


def unprivileged_env(ours, objects, params):
    assert ours["deployment"]["env"] is None
    ours["deployment"]["env"] = copy.deepcopy(UNPRIVILEGED_POD_ENV)


# One step per HELM_DIFFERENCES entry, in this order (the labels are compared once the RBAC names are istioctl's).
NORMALISE = {
    "Role and RoleBinding names": rbac_names,
    "chart label istio.io/dataplane-mode=none": dataplane_mode_label,
    "RBAC object labels": rbac_labels,
    "no istio.io/rev on object metadata": revision_label,
    "Deployment and PDB selectors": selectors,
    "canonical service labels": canonical_labels,
    "replicas with an HPA": replicas_with_hpa,
    "container ports": container_ports,
    "security context": security_context,
    "unprivileged pod env": unprivileged_env,
}


def as_istioctl_renders(objects, params):
    """The facets of helm's render `objects` (for params) with each HELM_DIFFERENCES entry in istioctl's form;
    each step first asserts that helm renders exactly the documented form."""
    ours = facets(objects)
    for difference, step in NORMALISE.items():
        try:
            step(ours, objects, params)
        except AssertionError as error:
            raise AssertionError("helm renders other than HELM_DIFFERENCES[%r] says: %s" % (difference, error))
    return ours


def assert_same_facets(ours, reference):
    # Facet by facet, so a failure names the facet rather than dumping two whole renders.
    assert sorted(ours) == sorted(reference)
    for facet in sorted(reference):
        if isinstance(reference[facet], dict):
            for key in sorted(set(ours[facet]) | set(reference[facet])):
                assert ours[facet].get(key) == reference[facet].get(key), "%s: %s" % (facet, key)
        assert ours[facet] == reference[facet], facet


@needs_both
@pytest.mark.parametrize("case", sorted(COMBINATIONS))
def test_render_matches_istioctl_facet_by_facet(case, tmp_path):
    options = COMBINATIONS[case]
    ours = as_istioctl_renders(helm_render(HELM, options, tmp_path), with_effective_budget(options))
    reference = facets(istioctl_render(ISTIOCTL, with_effective_budget(options), tmp_path))
    assert_same_facets(ours, reference)


@needs_both
def test_replicas_with_hpa_is_a_deliberate_difference(tmp_path):
    """istioctl applies k8s.replicaCount beside the HPA; the chart renders spec.replicas only without one."""
    options = gateway_params(replicas=3)
    objects = helm_render(HELM, options, tmp_path)
    (deployment,) = by_kind(objects)["Deployment"]
    assert "replicas" not in deployment["spec"]
    reference = facets(istioctl_render(ISTIOCTL, options, tmp_path))
    assert reference["deployment"]["replicas"] == 3
    assert_same_facets(as_istioctl_renders(objects, with_effective_budget(options)), reference)


def test_every_helm_difference_is_normalised():
    assert sorted(NORMALISE) == sorted(HELM_DIFFERENCES)


def test_a_strategy_of_helm_values_replaces_istioctls():
    """Recreate takes no rollingUpdate: the API server would refuse the two merged."""
    values = install_helm.chart_values(gateway_params(helm={"values": {"strategy": {"type": "Recreate"}}}))
    assert values["strategy"] == {"type": "Recreate"}
