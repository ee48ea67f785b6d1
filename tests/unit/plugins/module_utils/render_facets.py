"""The facets by which two renders of one gateway must agree, whatever the install method, and istioctl's
render as the reference (issue #14: the same options give the same objects, apart from ownership marks).

facets(objects) reduces a render to what a user relies on: object names per kind, selectors, pod labels and
annotations, ports, the Service, resources, HPA, PDB, RBAC. What the facets leave out on purpose is listed in
DELIBERATE_DIFFERENCES, so a comparison never hides a difference nobody decided on.
"""

import copy
import subprocess

import yaml

from ansible_collections.istio_ops.gateways.plugins.module_utils import install_istioctl
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.install_method import effective_budget

# Labels that say who rendered or owns an object, not what it is: istioctl's owner labels, the method marks,
# and the chart bookkeeping istioctl's gateway charts stamp (helm.sh/chart, release, app.kubernetes.io/*).
OWNERSHIP_LABELS = frozenset(L.OWNER_LABEL_KEYS) | {L.INSTALLED_BY, L.INSTALLED_FOR, L.MANAGED_BY}
CHART_BOOKKEEPING_LABELS = frozenset({"helm.sh/chart", "release", "heritage", "chart"})
CHART_BOOKKEEPING_PREFIX = "app.kubernetes.io/"

# What the manifest method renders differently from istioctl, on purpose (the facets skip these).
DELIBERATE_DIFFERENCES = {
    "chart bookkeeping labels": "helm.sh/chart, release, app.kubernetes.io/* (name, instance, part-of, version, "
    "managed-by=Helm) name istioctl's internal chart, not the gateway",
    "istioctl owner labels": "install.operator.istio.io/owning-resource and operator.istio.io/* name an "
    "IstioOperator; each method carries its own marks",
    "legacy certificate volumes": "istioctl mounts the optional Secrets istio-<kind>gateway-certs and -ca-certs at "
    "/etc/istio/<kind>gateway-certs; gateways read TLS secrets by SDS (the -sds Role), as Istio's Kubernetes "
    "YAML method does",
    "affinity": "istioctl renders nodeAffinity with two null fields: nothing",
    "pod sysctls": "net.ipv4.ip_unprivileged_port_start=0, as Istio's gateway chart and Kubernetes YAML method "
    "set it, so a target port below 1024 binds without privileges",
    "replicas with an HPA": "istioctl applies k8s.replicaCount even with the HPA enabled; the manifest leaves "
    "spec.replicas to the autoscaler (as both charts do), so a run never resets its scale",
}


def _without_ownership(labels):
    return {
        k: v
        for k, v in (labels or {}).items()
        if k not in OWNERSHIP_LABELS
        and k not in CHART_BOOKKEEPING_LABELS
        and not k.startswith(CHART_BOOKKEEPING_PREFIX)
    }


def _service_port(port):
    # The API server defaults protocol to TCP and targetPort to port: renders that differ only there agree.
    facet = {"name": port.get("name"), "port": port["port"], "protocol": port.get("protocol") or "TCP"}
    facet["targetPort"] = port.get("targetPort") or port["port"]
    if port.get("nodePort"):
        facet["nodePort"] = port["nodePort"]
    return facet


def by_kind(objects):
    """{kind: [object]} of a render."""
    grouped = {}
    for obj in objects:
        grouped.setdefault(obj["kind"], []).append(obj)
    return grouped


def facets(objects):
    """The facets of one gateway's render (a list of objects): a dict that two equivalent renders share."""
    grouped = by_kind(objects)
    result = {
        "names": {kind: sorted(o["metadata"]["name"] for o in objs) for kind, objs in grouped.items()},
        "namespaces": sorted({o["metadata"].get("namespace") for o in objects}),
        "object_labels": {
            "%s/%s" % (o["kind"], o["metadata"]["name"]): _without_ownership(o["metadata"].get("labels"))
            for o in objects
        },
    }
    for deployment in grouped.get("Deployment", []):
        spec = deployment["spec"]
        template = spec["template"]
        pod_spec = template["spec"]
        (container,) = [c for c in pod_spec["containers"] if c["name"] == "istio-proxy"]
        pod_security = dict(pod_spec.get("securityContext") or {})
        pod_security.pop("sysctls", None)
        result["deployment"] = {
            "selector": spec["selector"],
            "replicas": spec.get("replicas"),
            "strategy": spec.get("strategy"),
            "pod_labels": _without_ownership(template["metadata"].get("labels")),
            "pod_annotations": template["metadata"].get("annotations") or {},
            "service_account": pod_spec.get("serviceAccountName"),
            "pod_security": pod_security,
            "containers": [c["name"] for c in pod_spec["containers"]],
            "image": container["image"],
            "container_ports": container.get("ports"),
            "container_security": container.get("securityContext"),
            "env": container.get("env"),
            "resources": container.get("resources"),
        }
    for service in grouped.get("Service", []):
        spec = service["spec"]
        result["service"] = {
            "type": spec.get("type") or "ClusterIP",
            "selector": spec.get("selector"),
            "ports": [_service_port(p) for p in spec.get("ports") or []],
            "annotations": service["metadata"].get("annotations") or {},
            "loadBalancerIP": spec.get("loadBalancerIP"),
            "externalTrafficPolicy": spec.get("externalTrafficPolicy"),
        }
    for hpa in grouped.get("HorizontalPodAutoscaler", []):
        result["hpa"] = {k: hpa["spec"].get(k) for k in ("minReplicas", "maxReplicas", "scaleTargetRef", "metrics")}
    for pdb in grouped.get("PodDisruptionBudget", []):
        result["pdb"] = {k: pdb["spec"].get(k) for k in ("minAvailable", "maxUnavailable", "selector")}
    for role in grouped.get("Role", []):
        result.setdefault("rbac", {})["rules"] = role["rules"]
    for binding in grouped.get("RoleBinding", []):
        result.setdefault("rbac", {}).update(
            roleRef=binding["roleRef"], subjects=[(s["kind"], s["name"]) for s in binding["subjects"]]
        )
    return result


def gateway_params(**overrides):
    """istio_gateway's params for one gateway (the design contract's keys), defaults unset, with overrides."""
    base = dict(
        name="istio-ingressgateway",
        namespace="istio-ingress",
        kind="ingress",
        labels=None,
        revision=None,
        injection_template="gateway",
        replicas=None,
        autoscaling=None,
        service=None,
        resources=None,
        pod_annotations=None,
        pod_disruption_budget=None,
        values=None,
        k8s=None,
        istio_namespace="istio-system",
        method="istioctl",
        helm=None,
        binary_path=None,
    )
    base.update(overrides)
    return base


# -- istioctl's render, the reference --------------------------------------------------------------------------
def istioctl_binary():
    """The bed's istioctl (the default revision's minor) from the binary cache, or None when it is not built."""
    from tests.testbed import build

    path = build.bin_dir() / ("istio-%s" % build.istio_minor(build.load_versions()["ISTIO_VERSION"])) / "istioctl"
    return str(path) if path.exists() else None


def reference_iop(params):
    """The IstioOperator istio_gateway renders for params, with the PodDisruptionBudget every method gets."""
    return install_istioctl.render_iop(dict(params, pod_disruption_budget=effective_budget(params)))


def istioctl_render(binary, params, workdir):
    """The objects `istioctl manifest generate -f` renders for params (no cluster needed)."""
    iop_path = workdir / "iop.yaml"
    iop_path.write_text(yaml.safe_dump(reference_iop(copy.deepcopy(params))))
    out = subprocess.run(
        [binary, "manifest", "generate", "-f", str(iop_path)], capture_output=True, text=True, timeout=60, check=False
    )
    if out.returncode:
        raise AssertionError("istioctl manifest generate failed (%s): %s" % (out.returncode, out.stderr))
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]
