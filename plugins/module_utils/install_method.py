# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one interface of an install method, and the one place that picks the implementation.

Istio documents three ways to deploy a gateway with the same result: an IstioOperator with `istioctl install`,
the `istio/gateway` Helm chart, and plain Kubernetes YAML relying on injection. istio_gateway coordinates;
each method (install_istioctl, install_helm, install_manifest) says what it would apply, how the API server
would store it, how it writes it, and which marks say an object is its own for one gateway.

The plan (istio_gateway's manager) is the same for every method: render, compare each object with the live
one by a server-side dry run under the method's field manager, apply only when something differs, prune
what the method owns for the gateway and no longer renders.
"""

import copy

from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils import validate

# The gateway's own labels when the option `labels` is not set (what a Gateway resource selects).
DEFAULT_LABELS = {"ingress": {"istio": "ingressgateway"}, "egress": {"istio": "egressgateway"}}

# What istioctl's gateway charts (manifests/charts/gateways/istio-{ingress,egress}) give every gateway of a kind,
# and so every method: pod labels and selectors (the option `labels` updates them), the Service type and ports.
CHART_LABELS = {
    "ingress": {"app": "istio-ingressgateway", "istio": "ingressgateway"},
    "egress": {"app": "istio-egressgateway", "istio": "egressgateway"},
}
_HTTP_PORTS = [
    {"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 8080},
    {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443},
]
CHART_PORTS = {
    "ingress": [{"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021}] + _HTTP_PORTS,
    "egress": _HTTP_PORTS,
}
CHART_SERVICE_TYPE = {"ingress": "LoadBalancer", "egress": "ClusterIP"}


def gateway_labels(params):
    return params.get("labels") or DEFAULT_LABELS[params["kind"]]


def pod_labels(params):
    """The gateway's pod labels and selector on every method: the chart's labels updated by the option `labels`,
    as istioctl merges the component label into them."""
    return dict(CHART_LABELS[params["kind"]], **(params.get("labels") or {}))


def service_port(port):
    """A Service port of the option service.ports, as the charts take it (only what the user gave)."""
    chart = {"name": port["name"], "port": port["port"], "protocol": port.get("protocol") or "TCP"}
    if port.get("target_port"):
        chart["targetPort"] = port["target_port"]
    if port.get("node_port"):
        chart["nodePort"] = port["node_port"]
    return chart


def service_ports(params):
    ports = (params.get("service") or {}).get("ports")
    return [service_port(p) for p in ports] if ports else copy.deepcopy(CHART_PORTS[params["kind"]])


def pinned_path_errors(values, pins, option):
    """Errors for the keys of user `values` (given as option `option`) that `pins` ((path, fix) pairs) say the
    module sets itself: each names the option path, the value found and the fix."""
    errors = []
    for path, fix in pins:
        node = values
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            errors.append("%s.%s: %r is set by the module; %s" % (option, ".".join(path), node, fix))
    return errors


def deep_merge(base, extra):
    """base updated recursively by extra (dicts merge, everything else replaces); returns a new dict."""
    merged = copy.deepcopy(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def autoscaled(params):
    return (params.get("autoscaling") or {}).get("enabled", True)


def fewest_pods(params):
    """The fewest pods the gateway runs: the HPA's minimum, or the fixed replica count (1 when unset)."""
    if autoscaled(params):
        return (params.get("autoscaling") or {}).get("min") or 1
    return 1 if params.get("replicas") is None else params["replicas"]


def effective_budget(params):
    """The pod_disruption_budget every method renders: the option, else Istio's default (the istioctl charts'):
    minAvailable 1 for a gateway of 2 or more pods; none for fewer, nor for a fixed-size egress gateway (its chart
    has no replica count to test). Decided on the user's options, before a canary split changes the counts."""
    if params.get("pod_disruption_budget"):
        return params["pod_disruption_budget"]
    if fewest_pods(params) > 1 and (autoscaled(params) or params["kind"] == "ingress"):
        return {"min_available": 1, "max_unavailable": None}
    return None


def budget_spec(params):
    """The PodDisruptionBudget spec fields of params' pod_disruption_budget ({} without one)."""
    budget = params.get("pod_disruption_budget") or {}
    if budget.get("min_available") is not None:
        return {"minAvailable": validate.int_or_percent(budget["min_available"])}
    if budget.get("max_unavailable") is not None:
        return {"maxUnavailable": validate.int_or_percent(budget["max_unavailable"])}
    return {}


def rolling_strategy(params):
    """The Deployment's rollout on every method: istioctl's charts' (surge 100%, 25% unavailable), and with a
    PodDisruptionBudget no pod unavailable at all, so that a restart, an upgrade or a migration never takes more
    pods away than the budget allows (the budget binds evictions, not rollouts)."""
    return {"rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0 if budget_spec(params) else "25%"}}


class InstallMethod(object):
    """One install method for one gateway (module params `params`)."""

    name = None  # the value of istio_gateway's `method` option
    field_manager = None  # whose server-side apply the dry run compares as
    rendered_from_cache = False  # whether the last render came from a cache (a prune then renders afresh)
    # Whether the gateway's pods get their proxy by injection, selected by the option `labels` (the istio API's
    # gateways); a Gateway API gateway's pods are istiod's own render.
    injected = True
    # The runner (binary.Binary) of the executable the method runs, None for none: the one place that says what an
    # execution environment must carry for the method (tests/packaging/test_execution_environment.py checks it).
    binary = None

    def __init__(self, module, kube, params, result):
        self.module = module
        self.kube = kube
        self.params = params
        self.result = result  # the module result: a method reports its binary and commands under its name

    def preflight(self, plane):
        """Check what the method needs (binary, version against the control plane `plane`); raise InputError."""

    def render(self, params, fresh=False):
        """The objects the method would apply for `params` (the canary's split may replace replicas), each
        carrying the method's ownership marks, only the owned kinds (ownership.OWNED_KINDS), all in the
        gateway's namespace. fresh: not from a cache."""
        raise NotImplementedError

    def owns(self, obj):
        """Whether the method's marks say obj is this gateway's (ownership.owner_of decides for all methods)."""
        raise NotImplementedError

    def dry_run(self, obj):
        """obj as the API server would store it once the method applies it (a server-side dry run)."""
        return self.kube.apply(obj, field_manager=self.field_manager, dry_run=True)

    def pending(self):
        """Reasons to apply although every object matches (a Helm release that is missing or failed): [str]."""
        return []

    def apply(self, desired, changes):
        """Write: make the cluster hold `desired`. `changes` is the plan (ownership.change dicts)."""
        raise NotImplementedError

    def claim_patch(self, obj):
        """A metadata merge patch that makes a live object this method's (migration, adoption)."""
        raise NotImplementedError

    def describe(self):
        """What the result reports about the method (binary path, version, commands)."""
        return {}

    def check_collisions(self):
        """Refuse what stands in the way of the gateway's objects beyond their own names (the manager checks the
        names the render gives, and for injected gateways the pod selector): raise InputError or ForeignObject."""

    def stale(self, desired):
        """Live objects that belong to the gateway beyond the owned kinds and that `desired` no longer asks for (the
        plan prunes them after the rollout)."""
        return []

    def workload_name(self):
        """The Deployment that serves the gateway."""
        return self.params["name"]

    def wait(self, timeout):
        """Wait until the gateway serves what was applied; return its Deployment."""
        return self.kube.wait_rollout(self.workload_name(), self.params["namespace"], timeout)


# The field managers of the install methods: istioctl's server-side apply, Helm 3's updates, the manifest's apply.
METHOD_FIELD_MANAGERS = (L.ISTIOCTL_FIELD_MANAGER, "helm", L.FIELD_MANAGER)


def _union(left, right):
    merged = dict(left)
    for key, value in right.items():
        merged[key] = _union(merged[key], value) if isinstance(merged.get(key), dict) else value
    return merged


def transferred_fields(managed_fields, field_manager):
    """managedFields with every install method's entries made field_manager's Apply: server-side apply then
    removes what the old method set and this one no longer renders (fields another manager owns would stay)."""
    kept, taken = [], {}
    for entry in managed_fields:
        manager, operation = entry.get("manager"), entry.get("operation")
        # The collection's own Update entries (claim patches, restarts, canary splits) stay what they are.
        if manager not in METHOD_FIELD_MANAGERS or (manager == L.FIELD_MANAGER and operation != "Apply"):
            kept.append(entry)
            continue
        version = entry.get("apiVersion")
        base = taken.setdefault(
            version,
            {"manager": field_manager, "operation": "Apply", "apiVersion": version, "fieldsType": "FieldsV1"},
        )
        base["fieldsV1"] = _union(base.get("fieldsV1") or {}, entry.get("fieldsV1") or {})
        base["time"] = entry.get("time")
    return kept + list(taken.values())


def claim(obj, labels, helm_annotations, field_manager=None):
    """The metadata merge patch that moves obj to another method: `labels` set (None removes a key), Helm's
    release annotations set to `helm_annotations` (None removes them), and with a field_manager every method's
    fields made its Apply (transferred_fields); guarded by the resourceVersion read, so a change since the
    decision is never claimed blindly."""
    meta = obj["metadata"]
    live_labels = meta.get("labels") or {}
    live_annotations = meta.get("annotations") or {}
    wanted = helm_annotations or {L.HELM_RELEASE_NAME: None, L.HELM_RELEASE_NAMESPACE: None}
    patch = {"labels": {k: v for k, v in labels.items() if v is not None or k in live_labels}}
    annotations = {k: v for k, v in wanted.items() if v is not None or k in live_annotations}
    if annotations:
        patch["annotations"] = annotations
    if field_manager and meta.get("managedFields"):
        patch["managedFields"] = transferred_fields(meta["managedFields"], field_manager)
    patch["resourceVersion"] = meta["resourceVersion"]
    return {"metadata": patch}


def method_class(name):
    """The implementation of method `name`: the one place that maps the option to a class. Each is imported only
    when chosen (a run loads one), by an import statement Ansible's module packer can see; and here, because each
    implementation imports this module for the base class."""
    if name == "istioctl":
        from ansible_collections.istio_ops.gateways.plugins.module_utils import install_istioctl

        return install_istioctl.IstioctlMethod
    if name == "helm":
        from ansible_collections.istio_ops.gateways.plugins.module_utils import install_helm

        return install_helm.HelmMethod
    if name == "manifest":
        from ansible_collections.istio_ops.gateways.plugins.module_utils import install_manifest

        return install_manifest.ManifestMethod
    if name == "gateway_api":
        from ansible_collections.istio_ops.gateways.plugins.module_utils import install_gateway_api

        return install_gateway_api.GatewayApiMethod
    raise KeyError(name)
