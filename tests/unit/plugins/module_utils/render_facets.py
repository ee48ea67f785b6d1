"""The facets by which two renders of one gateway must agree, whatever the install method, and istioctl's
render as the reference (issue #14: the same options give the same objects, apart from ownership marks).

facets(objects) reduces a render to what a user relies on: object names per kind, selectors, pod labels and
annotations, ports, the Service, resources, HPA, PDB, RBAC. What the facets leave out on purpose is listed in
DELIBERATE_DIFFERENCES, so a comparison never hides a difference nobody decided on. COMBINATIONS are the
option combinations every method's render is compared on; helm_render() renders one with the real helm.
"""

import copy
import subprocess
import tempfile

import yaml

from ansible_collections.istio_ops.gateways.plugins.module_utils import install_helm, install_istioctl
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.install_method import effective_budget
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import KubeClient

# Labels that say who rendered or owns an object, not what it is: istioctl's owner labels, the method marks,
# and the chart bookkeeping istioctl's gateway charts stamp (helm.sh/chart, release, app.kubernetes.io/*).
OWNERSHIP_LABELS = frozenset(L.OWNER_LABEL_KEYS) | {L.INSTALLED_BY, L.INSTALLED_FOR, L.MANAGED_BY}
CHART_BOOKKEEPING_LABELS = frozenset({"helm.sh/chart", "release", "heritage", "chart"})
CHART_BOOKKEEPING_PREFIX = "app.kubernetes.io/"
# Helm's release marks (stamp_release_marks): ownership too, on the Service beside the user's annotations.
OWNERSHIP_ANNOTATIONS = frozenset({L.HELM_RELEASE_NAME, L.HELM_RELEASE_NAMESPACE})

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


# What the helm method renders differently from istioctl because Istio's `gateway` chart cannot render
# istioctl's form (test_helm_render normalises each, after checking helm renders exactly this).
HELM_DIFFERENCES = {
    "Role and RoleBinding names": "the chart names them after the ServiceAccount, <name>-service-account; "
    "istioctl's are <name>-sds",
    "RBAC object labels": "the chart puts the gateway's labels on every object, its Role and RoleBinding too; "
    "istioctl's carry only istio.io/rev",
    "no istio.io/rev on object metadata": "the chart labels only the pods with a revision (and none without); "
    "istioctl stamps istio.io/rev (default without one) on every object",
    "chart label istio.io/dataplane-mode=none": "the chart's default `labels` value, on every object and pod: "
    "keeps ambient mode off the gateway, which istioctl's gateways never join either",
    "Deployment and PDB selectors": "the chart selects on app and istio only (gateway.selectorLabels); its "
    "Service selector takes the other labels through selectorLabels and equals istioctl's",
    "canonical service labels": "the chart sets no service.istio.io/canonical-*; the injector derives the "
    "name from app.kubernetes.io/name=<name> (istioctl's canonical name) and the revision from "
    "app.kubernetes.io/version, the chart's appVersion (istioctl's: the revision, else latest)",
    "replicas with an HPA": DELIBERATE_DIFFERENCES["replicas with an HPA"],
    "container ports": "the chart declares only Envoy's 15090 metrics port; istioctl also lists the Service "
    "target ports, which is informational: a pod receives on its ports whether declared or not",
    "security context": "the chart sets runAsNonRoot on the container and no pod runAsUser/runAsGroup; the "
    "injector's gateway template runs istio-proxy as 1337:1337 either way",
    "unprivileged pod env": "istioctl sets ISTIO_META_UNPRIVILEGED_POD, so istiod skips Gateway listeners on "
    "ports below 1024 (pilot gateway.go); the chart's pods may bind them (sysctl ip_unprivileged_port_start=0)",
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
            "annotations": {
                k: v
                for k, v in (service["metadata"].get("annotations") or {}).items()
                if k not in OWNERSHIP_ANNOTATIONS
            },
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


NO_HPA = {"enabled": False, "min": None, "max": None}


def service(**overrides):
    base = dict(type=None, ports=None, annotations=None, load_balancer_ip=None, external_traffic_policy=None)
    base.update(overrides)
    return base


def port(name, number, target_port=None, node_port=None, protocol="TCP"):
    return dict(name=name, port=number, target_port=target_port, node_port=node_port, protocol=protocol)


# The option combinations on which every method's render is compared with istioctl's, facet by facet.
COMBINATIONS = {
    "default ingress": gateway_params(),
    "egress": gateway_params(kind="egress", name="egress-gw", namespace="istio-egress"),
    "custom labels": gateway_params(labels={"istio": "public", "team": "payments"}),
    "revision": gateway_params(revision="1-31"),
    "nodeport with ports and node ports": gateway_params(
        service=service(
            type="NodePort",
            ports=[
                port("http", 80, target_port=8080, node_port=30080),
                port("https", 443, target_port=8443, node_port=30443),
                port("dns", 53, protocol="UDP"),
            ],
            external_traffic_policy="Local",
        )
    ),
    "annotations and load balancer ip": gateway_params(
        service=service(annotations={"lb.example.com/internal": "true"}, load_balancer_ip="10.0.0.7"),
        pod_annotations={"proxy.istio.io/config": "{}", "prometheus.io/scrape": "false"},
    ),
    "replicas without hpa": gateway_params(replicas=3, autoscaling=NO_HPA),
    "egress replicas without hpa": gateway_params(kind="egress", name="eg", replicas=2, autoscaling=NO_HPA),
    "hpa min max": gateway_params(autoscaling={"enabled": True, "min": 2, "max": 7}),
    "resources": gateway_params(resources={"requests": {"cpu": "250m"}, "limits": {"memory": "2Gi"}}),
    "pdb min_available with hpa": gateway_params(
        autoscaling={"enabled": True, "min": 2, "max": 4}, pod_disruption_budget={"min_available": 1}
    ),
    "pdb max_unavailable with replicas": gateway_params(
        replicas=4, autoscaling=NO_HPA, pod_disruption_budget={"max_unavailable": "50%"}
    ),
    "egress pdb percent with hpa": gateway_params(
        kind="egress",
        name="eg",
        autoscaling={"enabled": True, "min": 3, "max": 6},
        pod_disruption_budget={"min_available": "50%"},
    ),
}


def with_effective_budget(params):
    """params as the manager renders them: the PodDisruptionBudget every method gets (gateway.py)."""
    return dict(params, pod_disruption_budget=effective_budget(params))


# -- istioctl's render, the reference --------------------------------------------------------------------------
def istioctl_binary():
    """The bed's istioctl (the default revision's minor) from the binary cache, or None when it is not built."""
    from tests.testbed import build

    path = build.bin_dir() / ("istio-%s" % build.istio_minor(build.load_versions()["ISTIO_VERSION"])) / "istioctl"
    return str(path) if path.exists() else None


def reference_iop(params):
    """The IstioOperator istio_gateway renders for params, with the PodDisruptionBudget every method gets."""
    return install_istioctl.render_iop(with_effective_budget(params))


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


# -- the helm method's render with the real helm ----------------------------------------------------------------
class HelmModule(object):
    """What the helm runner needs of an AnsibleModule: the binary and a private temporary directory."""

    def __init__(self, binary, tmpdir):
        self.binary = binary
        self.tmpdir = str(tmpdir)

    def get_bin_path(self, name):
        return self.binary


def helm_tools():
    """(helm binary, Istio's packaged gateway chart, control plane version, Kubernetes version) of the bed's
    build cache, or None when either is not built."""
    from tests.testbed import testbed

    bed = testbed.describe()
    chart = bed.bin_dir / "charts" / ("gateway-%s.tgz" % bed.default_chart_version)
    if not (bed.helm.exists() and chart.exists()):
        return None
    return str(bed.helm), str(chart), bed.default_version, testbed.load_versions()["KUBERNETES_VERSION"]


def helm_render(tools, params, workdir):
    """What the helm method renders for params, as the manager calls it: `helm template` of the packaged chart
    with install_helm.chart_values and helm's release marks, the PodDisruptionBudget the manager decides."""
    binary, chart, plane_version, kube_version = tools
    params = dict(params, method="helm", helm={"chart": chart, "binary_path": binary})
    workdir = tempfile.mkdtemp(dir=str(workdir))
    method = install_helm.HelmMethod(
        HelmModule(binary, workdir), KubeClient({"host": "https://127.0.0.1:1"}), params, {}
    )
    method.preflight({"version": plane_version, "revision": "default"})
    method._server_version = lambda: kube_version  # no cluster: the capabilities the bed's API server reports
    return method.render(with_effective_budget(params))
