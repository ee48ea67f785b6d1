# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The istioctl install method: one IstioOperator per gateway, applied by `istioctl install`.

istioctl always force-applies and always says "installed", so the plan decides `changed` itself: this method
renders what istioctl would apply (`istioctl manifest generate --cluster-specific` plus the owner labels
istioctl adds at apply time), and the manager compares each object with the live one by a server-side dry
run under istioctl's field manager. Only a difference runs `istioctl install`.
"""

from ansible_collections.istio_ops.gateways.plugins.module_utils import control_plane, owners, ownership
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import InputError
from ansible_collections.istio_ops.gateways.plugins.module_utils.install_method import (
    InstallMethod,
    budget_spec,
    claim,
    deep_merge,
    gateway_labels,
    pinned_path_errors,
    rolling_strategy,
    service_port,
)
from ansible_collections.istio_ops.gateways.plugins.module_utils.istioctl import Istioctl

try:
    import yaml
except ImportError:  # pragma: no cover - reported by run_module
    yaml = None

VALUES_KEY = {"ingress": "istio-ingressgateway", "egress": "istio-egressgateway"}
COMPONENT_KEY = {"ingress": "ingressGateways", "egress": "egressGateways"}

# User `values` the module sets itself, to keep a gateway install away from the control plane: (path, fix).
PINNED_VALUES = (
    (
        ("global", "operatorManageWebhooks"),
        "remove it: it stays true so that istioctl never rewrites the cluster's revision-tag webhooks",
    ),
    (("global", "istioNamespace"), "remove it and use the option istio_namespace"),
    (("global", "defaultPodDisruptionBudget"), "remove it and use the option pod_disruption_budget"),
    (("revision",), "remove it and use the option revision"),
    (("ownerName",), "remove it: istioctl's owner labels name this gateway's IstioOperator"),
)
# Keys of a gateway chart's values (values.gateways.<chart>) that istioctl sets from the component, or that
# enable another gateway (rendered into the Istio namespace): the option to use instead.
PINNED_CHART_VALUES = {
    "enabled": "the module enables exactly one gateway; use the options name and kind",
    "name": "use the option name",
    "namespace": "use the option namespace",
    "labels": "use the option labels",
}


def pinned_value_errors(params):
    """Errors for user `values` and `k8s` settings that would undo a pin (webhooks, Istio namespace,
    revision, owner, the component's name and namespace)."""
    user_values = params.get("values") or {}
    errors = pinned_path_errors(user_values, PINNED_VALUES, "values")
    charts = user_values.get("gateways")
    for chart, chart_values in sorted(charts.items() if isinstance(charts, dict) else []):
        for key in sorted(set(chart_values if isinstance(chart_values, dict) else ()) & set(PINNED_CHART_VALUES)):
            errors.append(
                "values.gateways.%s.%s: %r is set by the module; %s"
                % (chart, key, chart_values[key], PINNED_CHART_VALUES[key])
            )
    overlays = (params.get("k8s") or {}).get("overlays") or []
    for index, overlay in enumerate(overlays if isinstance(overlays, list) else []):
        patches = overlay.get("patches") if isinstance(overlay, dict) else None
        for number, patch in enumerate(patches if isinstance(patches, list) else []):
            path = str((patch or {}).get("path") or "") if isinstance(patch, dict) else ""
            if path.strip(".").split(".")[:2] == ["metadata", "namespace"]:
                errors.append(
                    "k8s.overlays[%d].patches[%d].path: %r would move %s %s out of the gateway's namespace; "
                    "remove the patch and use the option namespace"
                    % (index, number, path, overlay.get("kind"), overlay.get("name"))
                )
    return errors


def render_iop(params):
    """The IstioOperator for one gateway. Its name (see labels.iop_name) makes istioctl's owner
    labels unique, so installing one gateway never prunes another.

    Chart values set what both gateway charts know (ingress and egress values differ: egress has
    no replicaCount or loadBalancerIP); the component's k8s settings, which istioctl applies as
    patches to the rendered objects, set the rest the same way for both kinds.
    """
    kind = params["kind"]
    chart = {"injectionTemplate": params["injection_template"]}
    k8s = {}
    scaling = params.get("autoscaling")
    if scaling is not None:
        chart["autoscaleEnabled"] = scaling["enabled"]
        if scaling.get("min") is not None:
            chart["autoscaleMin"] = scaling["min"]
        if scaling.get("max") is not None:
            chart["autoscaleMax"] = scaling["max"]
    if params.get("replicas") is not None:
        k8s["replicaCount"] = params["replicas"]
        if kind == "ingress":
            chart["replicaCount"] = params["replicas"]  # what the chart's PodDisruptionBudget condition reads
    budget = budget_spec(params)
    if budget:
        k8s["podDisruptionBudget"] = budget
        chart["rollingMaxUnavailable"] = rolling_strategy(params)["rollingUpdate"]["maxUnavailable"]
    service = params.get("service") or {}
    if service.get("type"):
        chart["type"] = service["type"]
    if service.get("ports"):
        chart["ports"] = [service_port(p) for p in service["ports"]]
    if service.get("annotations"):
        k8s["serviceAnnotations"] = service["annotations"]
    service_spec = {}
    if service.get("load_balancer_ip"):
        service_spec["loadBalancerIP"] = service["load_balancer_ip"]
    if service.get("external_traffic_policy"):
        service_spec["externalTrafficPolicy"] = service["external_traffic_policy"]
    if service_spec:
        k8s["service"] = service_spec
    if params.get("resources"):
        k8s["resources"] = params["resources"]
    if params.get("pod_annotations"):
        k8s["podAnnotations"] = params["pod_annotations"]
    k8s = deep_merge(k8s, params.get("k8s"))
    component = {
        "name": params["name"],
        "namespace": params["namespace"],
        "enabled": True,
        "label": gateway_labels(params),
    }
    if k8s:
        component["k8s"] = k8s
    spec = {
        "profile": "empty",
        "components": {COMPONENT_KEY[kind]: [component]},
        "values": deep_merge(
            {
                # operatorManageWebhooks: without it, a default-revision install rewrites the cluster's
                # `default` revision tag webhooks (istioctl's WebhooksToDeploy); a gateway must not.
                "global": {
                    "istioNamespace": params["istio_namespace"],
                    "operatorManageWebhooks": True,
                    "defaultPodDisruptionBudget": {"enabled": bool(budget)},
                },
                "gateways": {VALUES_KEY[kind]: chart},
            },
            params.get("values"),
        ),
    }
    if params.get("revision"):
        spec["revision"] = params["revision"]
    return {
        "apiVersion": "install.istio.io/v1alpha1",
        "kind": "IstioOperator",
        # istioctl overwrites metadata.namespace with the Istio namespace; say so up front.
        "metadata": {"name": L.iop_name(params["name"], params["namespace"]), "namespace": params["istio_namespace"]},
        "spec": spec,
    }


def stamp_owner_labels(objects, iop, version, kind):
    """Add the labels `istioctl install` adds at apply time (manifest generate leaves them out)."""
    owner = L.owner_labels(
        iop["metadata"]["name"], iop["metadata"]["namespace"], iop["spec"].get("revision"), version, kind
    )
    for obj in objects:
        obj.setdefault("metadata", {}).setdefault("labels", {}).update(owner)
    return objects


class IstioctlMethod(InstallMethod):
    name = "istioctl"
    field_manager = L.ISTIOCTL_FIELD_MANAGER
    binary = Istioctl

    def __init__(self, module, kube, params, result):
        super(IstioctlMethod, self).__init__(module, kube, params, result)
        self.istioctl = None
        self.iop = None
        self.iop_path = None

    def preflight(self, plane):
        p = self.params
        self.istioctl = self.binary(self.module, self.kube, p.get("binary_path"))
        if not p["skip_version_check"]:
            mismatch = control_plane.version_mismatch(self.istioctl.version(), plane)
            if mismatch:
                raise InputError(mismatch)
        self._preflight_owner_name(L.iop_name(p["name"], p["namespace"]))

    def render(self, params, fresh=False):
        """What `istioctl install` would apply, with its owner labels. fresh: never from the output cache."""
        self.iop = render_iop(params)
        self.result["iop"] = self.iop
        self.iop_path = self.istioctl.write_file("iop.yaml", yaml.safe_dump(self.iop, sort_keys=False))
        rendered = self.istioctl.manifest_generate(self.iop_path, use_cache=not fresh)
        self.rendered_from_cache = self.istioctl.last_render_cached
        return stamp_owner_labels(rendered, self.iop, self.istioctl.version(), params["kind"])

    def owns(self, obj):
        labels = obj["metadata"].get("labels") or {}
        return ownership.owner_of(obj, self.params["name"], self.params["namespace"]) == self.name and labels.get(
            L.OWNING_RESOURCE
        ) == L.iop_name(self.params["name"], self.params["namespace"])

    def apply(self, desired, changes):
        self.istioctl.install(self.iop_path, self.params["wait_timeout"])

    def claim_patch(self, obj):
        """istioctl's owner labels of this gateway's IstioOperator, other methods' marks and fields moved to
        istioctl's field manager. Metadata only: istioctl keeps no in-cluster state named after the IstioOperator,
        and the chart's pod template carries no IstioOperator name, so a legacy-name migration restarts no pods."""
        p = self.params
        owner = L.owner_labels(
            L.iop_name(p["name"], p["namespace"]),
            p["istio_namespace"],
            p.get("revision"),
            self.istioctl.version(),
            p["kind"],
        )
        marks = dict(owner, **{L.INSTALLED_BY: None, L.INSTALLED_FOR: None})
        return claim(obj, marks, helm_annotations=None, field_manager=self.field_manager)

    def describe(self):
        return {
            "path": self.istioctl.path,
            "version": self.istioctl.version(),
            "commands": self.istioctl.commands,
            "cached": self.istioctl.cached,
        }

    def _preflight_owner_name(self, iop_name):
        """Fail when another namespace's Deployment already carries this gateway's owner name: istioctl prunes
        by owner name across the cluster, so installing would delete that gateway."""
        p = self.params
        selector = "%s=%s" % (L.OWNING_RESOURCE, iop_name)
        elsewhere = [
            d
            for d in self.kube.list("apps/v1", "Deployment", label_selector=selector)
            if d["metadata"]["namespace"] != p["namespace"]
        ]
        if elsewhere:
            raise InputError(
                "name: the IstioOperator name %r of gateway %s/%s already owns Deployment(s) %s (%s), so installing "
                "would let istioctl prune them; remove or rename the IstioOperator that installed them, or "
                "install this gateway under another name or namespace"
                % (
                    iop_name,
                    p["namespace"],
                    p["name"],
                    ", ".join(sorted("%s/%s" % (d["metadata"]["namespace"], d["metadata"]["name"]) for d in elsewhere)),
                    "; ".join(sorted({owners.describe_owner(d) for d in elsewhere})),
                )
            )
