# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The "Kubernetes YAML" install method: the collection renders the gateway's objects itself.

Istio documents a gateway as plain objects relying on injection: a Deployment whose pods carry the
injection annotation and `image: auto`, a Service, a ServiceAccount with a Role and RoleBinding for the
gateway's secrets, an HPA and a PDB. render_manifest writes them in the same canonical form the other
methods give for the same options: what `istioctl manifest generate` renders for the gateway's
IstioOperator (names, labels, selectors, ports, Service, resources, HPA, PDB, the pod template), minus the
chart's bookkeeping labels and legacy file-mounted certificate volumes, plus this method's marks.
ManifestMethod applies them by server-side apply under the collection's field manager; no binary.
"""

from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils import ownership
from ansible_collections.istio_ops.gateways.plugins.module_utils.install_method import (
    CHART_SERVICE_TYPE,
    InstallMethod,
    budget_spec,
    claim,
    deep_merge,
    pod_labels,
    rolling_strategy,
    service_ports,
)

METHOD = "manifest"

CHART_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "2000m", "memory": "1024Mi"}}
CHART_AUTOSCALING = {"min": 1, "max": 5, "cpu": 80}
SECRETS_ROLE = "%s-sds"  # the Role and RoleBinding that let the gateway read its TLS secrets
CHART_SERVICE_ACCOUNT = "%s-service-account"
# The pod annotations the charts render with Prometheus merge (the mesh default).
PROMETHEUS_ANNOTATIONS = {
    "prometheus.io/path": "/stats/prometheus",
    "prometheus.io/port": "15020",
    "prometheus.io/scrape": "true",
}
ENVOY_PROMETHEUS_PORT = {"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}
CANONICAL_NAME = "service.istio.io/canonical-name"
CANONICAL_REVISION = "service.istio.io/canonical-revision"
# Safe since Kubernetes 1.22: lets the proxy bind a target port below 1024 without privileges, as Istio's
# gateway chart and its "Kubernetes YAML" instructions do.
UNPRIVILEGED_PORTS_SYSCTL = {"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}

# The write order: the pods' identity and its secret access before the pods; the Deployment before what
# targets it. Pruning goes the other way.
APPLY_ORDER = (
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
)
WRITE_ACTIONS = ("create", "update")


def method_marks(name):
    """The labels that make an object this method's for gateway `name` (the namespace is the object's)."""
    return ownership.method_marks(METHOD, name)


def autoscaling(params):
    """(min, max) when an HPA is wanted (the default), else None."""
    scaling = params.get("autoscaling") or {}
    if not scaling.get("enabled", True):
        return None
    low, high = scaling.get("min"), scaling.get("max")
    return (CHART_AUTOSCALING["min"] if low is None else low, CHART_AUTOSCALING["max"] if high is None else high)


def autoscaler_spec(bounds):
    """The HPA spec every method renders for (min, max) pods, without its target: CPU at the charts' 80%."""
    target = {"type": "Utilization", "averageUtilization": CHART_AUTOSCALING["cpu"]}
    return {
        "minReplicas": bounds[0],
        "maxReplicas": bounds[1],
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": target}}],
    }


def render_manifest(params):
    """The gateway's objects for module params `params`, in the canonical form, with this method's marks."""
    name, namespace, kind = params["name"], params["namespace"], params["kind"]
    revision = params.get("revision")
    selector = pod_labels(params)
    marks = method_marks(name)
    # istioctl stamps istio.io/rev ("default" without a revision) on every object; canary and inventory read it.
    revision_label = {L.REVISION: revision or L.DEFAULT_REVISION}

    def meta(object_name, with_gateway_labels=True, annotations=None):
        object_labels = dict(selector) if with_gateway_labels else {}
        object_labels.update(revision_label)
        object_labels.update(marks)
        metadata = {"name": object_name, "namespace": namespace, "labels": object_labels}
        if annotations:
            metadata["annotations"] = dict(annotations)
        return metadata

    service_account = CHART_SERVICE_ACCOUNT % name
    secrets_role = SECRETS_ROLE % name
    service = params.get("service") or {}
    ports = service_ports(params)

    objects = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(service_account)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta(secrets_role, with_gateway_labels=False),
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "watch", "list"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta(secrets_role, with_gateway_labels=False),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": secrets_role},
            "subjects": [{"kind": "ServiceAccount", "name": service_account}],
        },
        _deployment(params, meta(name), selector, service_account, ports),
    ]

    service_spec = {"type": service.get("type") or CHART_SERVICE_TYPE[kind], "selector": dict(selector), "ports": ports}
    if service.get("load_balancer_ip"):
        service_spec["loadBalancerIP"] = service["load_balancer_ip"]
    if service.get("external_traffic_policy"):
        service_spec["externalTrafficPolicy"] = service["external_traffic_policy"]
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(name, annotations=service.get("annotations")),
            "spec": service_spec,
        }
    )

    bounds = autoscaling(params)
    if bounds is not None:
        objects.append(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": meta(name),
                "spec": dict(
                    autoscaler_spec(bounds),
                    scaleTargetRef={"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                ),
            }
        )

    budget = budget_spec(params)
    if budget:
        pdb_spec = dict(budget, selector={"matchLabels": dict(selector)})
        objects.append(
            {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(name), "spec": pdb_spec}
        )
    return objects


def _deployment(params, metadata, selector, service_account, ports):
    name, revision = params["name"], params.get("revision")
    pod_labels = dict(selector)
    pod_labels[L.SIDECAR_INJECT] = "true"
    if revision:
        pod_labels[L.REVISION] = revision
    # As the chart derives them; the injector would otherwise derive the same from the app label.
    pod_labels[CANONICAL_NAME] = name
    pod_labels[CANONICAL_REVISION] = (
        selector.get("app.kubernetes.io/version") or selector.get("version") or revision or "latest"
    )
    pod_annotations = dict(PROMETHEUS_ANNOTATIONS)
    pod_annotations[L.SIDECAR_INJECT] = "true"
    pod_annotations[L.INJECT_TEMPLATES] = params["injection_template"]
    pod_annotations.update(params.get("pod_annotations") or {})
    container_ports = [
        {"containerPort": port.get("targetPort") or port["port"], "protocol": port.get("protocol") or "TCP"}
        for port in ports
    ]
    container_ports.append(dict(ENVOY_PROMETHEUS_PORT))
    spec = {
        "selector": {"matchLabels": dict(selector)},
        "strategy": rolling_strategy(params),
        "template": {
            "metadata": {"labels": pod_labels, "annotations": pod_annotations},
            "spec": {
                "serviceAccountName": service_account,
                "securityContext": {
                    "runAsUser": 1337,
                    "runAsGroup": 1337,
                    "runAsNonRoot": True,
                    "sysctls": [dict(UNPRIVILEGED_PORTS_SYSCTL)],
                },
                "containers": [
                    {
                        "name": "istio-proxy",
                        "image": "auto",  # the injector replaces it with the control plane's proxy image
                        "ports": container_ports,
                        "env": [{"name": "ISTIO_META_UNPRIVILEGED_POD", "value": "true"}],
                        "resources": deep_merge(CHART_RESOURCES, params.get("resources")),
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]},
                            "privileged": False,
                            "readOnlyRootFilesystem": True,
                        },
                    }
                ],
            },
        },
    }
    # With an HPA the replica count is the autoscaler's: applying one would reset its scale every run.
    if autoscaling(params) is None and params.get("replicas") is not None:
        spec["replicas"] = params["replicas"]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec}


class ManifestMethod(InstallMethod):
    """Objects rendered by the collection, written by server-side apply under its own field manager."""

    name = METHOD
    field_manager = L.FIELD_MANAGER

    def __init__(self, module, kube, params, result):
        super(ManifestMethod, self).__init__(module, kube, params, result)
        self.applied = []

    def render(self, params, fresh=False):
        return render_manifest(params)

    def owns(self, obj):
        return ownership.owner_of(obj, self.params["name"], self.params["namespace"]) == METHOD

    def apply(self, desired, changes):
        """Apply what the plan creates or updates, in APPLY_ORDER (the manager prunes once the rollout is done)."""
        action = {(c["kind"], c["name"]): c["action"] for c in changes}
        for obj in sorted(desired, key=_write_rank):
            if action.get((obj["kind"], obj["metadata"]["name"])) in WRITE_ACTIONS:
                self.kube.apply(obj, field_manager=self.field_manager)
                self.applied.append("%s/%s" % (obj["kind"], obj["metadata"]["name"]))

    def claim_patch(self, obj):
        """This method's marks in (managed-by replaces Helm's "Helm" too), istioctl's owner labels and Helm's
        release marks out, and the previous method's fields made this method's."""
        object_labels = dict.fromkeys(L.OWNER_LABEL_KEYS)
        object_labels.update(method_marks(self.params["name"]))
        return claim(obj, object_labels, helm_annotations=None, field_manager=self.field_manager)

    def describe(self):
        return {"field_manager": self.field_manager, "applied": list(self.applied)}


def _write_rank(obj_or_change):
    kind = obj_or_change["kind"]
    return APPLY_ORDER.index(kind) if kind in APPLY_ORDER else len(APPLY_ORDER)
