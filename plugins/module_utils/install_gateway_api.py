# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gateway_api install method: a Kubernetes Gateway API Gateway that istiod deploys itself.

Istio's automated deployment: a `gateway.networking.k8s.io/v1` Gateway of an Istio GatewayClass makes the istiod of
the Gateway's revision (its `istio.io/rev` label, else its namespace's, else the default) render a Deployment,
Service and ServiceAccount named `<gateway>-<class>`, plus an HPA and a PDB when the Gateway's parameters ask for
them, and apply them owned by the Gateway (pilot/pkg/config/kube/gatewaycommon/deploymentcontroller.go). Its
parameters are a ConfigMap named by `spec.infrastructure.parametersRef`, whose keys `deployment`, `service`,
`serviceAccount`, `horizontalPodAutoscaler` and `podDisruptionBudget` are strategic merge patches on what istiod
renders.

So this method writes two objects, the Gateway and that ConfigMap, by server-side apply under the collection's
field manager; the options that the other methods render into workload objects (replicas, autoscaling,
pod_disruption_budget, resources, pod_annotations, service annotations) become the ConfigMap's patches, with the
same defaults, so the same options give the same gateway. istiod is the installer: the collection never writes
what it deploys, and waits until the Gateway is Accepted and Programmed and its Deployment has rolled out.
"""

import re

from ansible_collections.istio_ops.gateways.plugins.module_utils import inventory, owners, ownership, validate
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import InputError
from ansible_collections.istio_ops.gateways.plugins.module_utils.gateway_config import secret_problem
from ansible_collections.istio_ops.gateways.plugins.module_utils.install_manifest import (
    CHART_RESOURCES,
    autoscaler_spec,
    autoscaling,
)
from ansible_collections.istio_ops.gateways.plugins.module_utils.install_method import (
    CHART_SERVICE_TYPE,
    InstallMethod,
    budget_spec,
    claim,
    deep_merge,
    rolling_strategy,
)
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import K8sError, rollout_complete

try:
    import yaml
except ImportError:  # pragma: no cover - ansible-core requires PyYAML
    yaml = None

METHOD = "gateway_api"
GATEWAY_API = ownership.GATEWAY_API
DEFAULT_CLASS = "istio"
# The controller of Istio's GatewayClasses (istio, and any class a user makes for it).
ISTIO_CONTROLLER = inventory.ISTIO_GATEWAY_CONTROLLER
SERVICE_TYPE_ANNOTATION = "networking.istio.io/service-type"
NAME_OVERRIDE_ANNOTATION = "gateway.istio.io/name-override"
PROXY_CONTAINER = "istio-proxy"

LISTENER_KEYS = ("name", "port", "protocol", "hostname", "tls", "allowedRoutes")
# The listener protocols Istio's Gateway API implementation serves.
PROTOCOLS = ("HTTP", "HTTPS", "TLS", "TCP")
TLS_MODES = ("Terminate", "Passthrough")
ROUTES_FROM = ("All", "Same", "Selector")
MAX_LISTENERS = 64
MAX_INFRASTRUCTURE_ENTRIES = 8
# The deployed objects the parameters patch, besides the Deployment: {parameters key: kind}.
RENDERED_BY_PATCH = {
    "service": ("v1", "Service"),
    "horizontalPodAutoscaler": ("autoscaling/v2", "HorizontalPodAutoscaler"),
    "podDisruptionBudget": ("policy/v1", "PodDisruptionBudget"),
}
# What istiod renders only when the parameters carry a patch for it: {parameters key: kind}.
STALE_KINDS = {
    "horizontalPodAutoscaler": ("autoscaling/v2", "HorizontalPodAutoscaler"),
    "podDisruptionBudget": ("policy/v1", "PodDisruptionBudget"),
}
_SECTION_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Keys istiod copies from the infrastructure labels onto everything it deploys: none may be the collection's own
# marks (a deployed object would look installed by a method), nor the Gateway API's prefix (istiod drops those).
_RESERVED_LABEL_PREFIXES = ("gateway.networking.k8s.io/",)


def method_marks(name):
    return ownership.method_marks(METHOD, name)


def _joined(name, gateway_class):
    return "%s-%s" % (name, gateway_class)


def deployed_name(params):
    """The name istiod gives the Deployment, Service and ServiceAccount of the gateway `params` describe:
    `<gateway>-<class>`."""
    return _joined(params["name"], params.get("gateway_class") or DEFAULT_CLASS)


def deployed_name_of(gateway):
    """The name istiod gives what it deploys for a live Gateway: its name-override annotation, else
    `<gateway>-<class>`."""
    meta = gateway["metadata"]
    override = (meta.get("annotations") or {}).get(NAME_OVERRIDE_ANNOTATION)
    return override or _joined(meta["name"], (gateway.get("spec") or {}).get("gatewayClassName"))


# -- input checks: every error at once, before anything is written ------------------------------------------
def listener_errors(listeners, namespace):
    if not listeners:
        return [
            "listeners: a Gateway API gateway needs at least one listener, e.g. "
            "[{name: http, port: 80, protocol: HTTP}]"
        ]
    if len(listeners) > MAX_LISTENERS:
        return ["listeners: %d listeners; a Gateway holds at most %d" % (len(listeners), MAX_LISTENERS)]
    errors = []
    seen_names, seen_binds = set(), set()
    for index, listener in enumerate(listeners):
        where = "listeners[%d]" % index
        if not isinstance(listener, dict):
            errors.append("%s: %r is not a dict with name, port and protocol" % (where, listener))
            continue
        unknown = sorted(set(listener) - set(LISTENER_KEYS))
        if unknown:
            errors.append(
                "%s: unknown key(s) %s; a listener takes %s (the Gateway API's names)"
                % (where, ", ".join(unknown), ", ".join(LISTENER_KEYS))
            )
        name = listener.get("name")
        if not isinstance(name, str) or len(name) > 253 or not _SECTION_NAME.match(name):
            errors.append(
                "%s.name: %r is not a listener name; use lower-case letters, digits and '-' (e.g. https)"
                % (where, name)
            )
        elif name in seen_names:
            errors.append("%s.name: %r is used by another listener; listener names must be unique" % (where, name))
        seen_names.add(name)
        port_error = validate.port("%s.port" % where, listener.get("port"))
        if port_error:
            errors.append(port_error)
        protocol = listener.get("protocol")
        if protocol not in PROTOCOLS:
            errors.append("%s.protocol: %r is not one of %s" % (where, protocol, ", ".join(PROTOCOLS)))
        hostname = listener.get("hostname")
        if hostname is not None:
            if protocol == "TCP":
                errors.append("%s.hostname: a TCP listener matches no hostname; drop it" % where)
            elif not isinstance(hostname, str) or len(hostname) > 253 or not _HOSTNAME.match(hostname):
                errors.append(
                    "%s.hostname: %r is not a hostname; use a DNS name, optionally starting with '*.' "
                    "(e.g. *.example.com), without a port or IP" % (where, hostname)
                )
        bind = (listener.get("port"), protocol, hostname)
        if bind in seen_binds:
            errors.append(
                "%s: another listener has port %s, protocol %s and hostname %s too; they would conflict"
                % (where, listener.get("port"), protocol, hostname or "(any)")
            )
        seen_binds.add(bind)
        errors += _tls_errors(where, listener.get("tls"), protocol, namespace)
        errors += _route_errors(where, listener.get("allowedRoutes"))
    return errors


def _tls_errors(where, tls, protocol, namespace):
    if protocol in ("HTTP", "TCP"):
        return ["%s.tls: a %s listener takes no tls; use protocol HTTPS or TLS" % (where, protocol)] if tls else []
    if protocol not in ("HTTPS", "TLS"):
        return []
    if not isinstance(tls, dict):
        return [
            "%s.tls: a %s listener needs tls, e.g. {mode: Terminate, certificateRefs: [{name: my-cert}]} with "
            "Secret my-cert in namespace %r" % (where, protocol, namespace)
        ]
    errors = []
    mode = tls.get("mode", "Terminate")
    if mode not in TLS_MODES:
        errors.append("%s.tls.mode: %r is not one of %s" % (where, mode, ", ".join(TLS_MODES)))
    if protocol == "HTTPS" and mode == "Passthrough":
        errors.append("%s.tls.mode: an HTTPS listener terminates TLS; use protocol TLS for Passthrough" % where)
    refs = tls.get("certificateRefs") or []
    if mode == "Terminate" and not refs:
        errors.append(
            "%s.tls.certificateRefs: mode Terminate needs the Secret with the certificate, e.g. [{name: my-cert}] "
            "(a kubernetes.io/tls Secret in namespace %r)" % (where, namespace)
        )
    if mode == "Passthrough" and refs:
        errors.append("%s.tls.certificateRefs: mode Passthrough uses no certificate; drop them" % where)
    for ref_index, ref in enumerate(refs):
        at = "%s.tls.certificateRefs[%d]" % (where, ref_index)
        if not isinstance(ref, dict) or not ref.get("name"):
            errors.append("%s: %r names no Secret; use {name: my-cert}" % (at, ref))
            continue
        if ref.get("kind", "Secret") != "Secret" or ref.get("group", "") != "":
            errors.append(
                "%s: %s/%s is not a Secret; use a kubernetes.io/tls Secret" % (at, ref.get("group"), ref.get("kind"))
            )
        if ref.get("namespace", namespace) != namespace:
            errors.append(
                "%s.namespace: %r; the gateway's certificates stay in its own namespace %r (the shared topology): "
                "create the Secret there" % (at, ref["namespace"], namespace)
            )
    return errors


def _route_errors(where, routes):
    if routes is None:
        return []
    if not isinstance(routes, dict) or set(routes) - {"namespaces", "kinds"}:
        return [
            "%s.allowedRoutes: %r; it takes namespaces ({from: All|Same|Selector, selector}) and kinds"
            % (where, routes)
        ]
    namespaces = routes.get("namespaces") or {}
    origin = namespaces.get("from", "Same")
    errors = []
    if origin not in ROUTES_FROM:
        errors.append("%s.allowedRoutes.namespaces.from: %r is not one of %s" % (where, origin, ", ".join(ROUTES_FROM)))
    selector = namespaces.get("selector")
    if origin == "Selector":
        if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            errors.append(
                "%s.allowedRoutes.namespaces.selector: from Selector needs a namespace selector, e.g. "
                "{matchLabels: {shared-gateway-access: 'true'}}" % where
            )
        else:
            errors += validate.labels(
                "%s.allowedRoutes.namespaces.selector.matchLabels" % where,
                selector.get("matchLabels"),
                allow_empty=True,
            )
    elif selector:
        errors.append("%s.allowedRoutes.namespaces.selector: used only with from: Selector, not %r" % (where, origin))
    for kind_index, kind in enumerate(routes.get("kinds") or []):
        if not isinstance(kind, dict) or not kind.get("kind"):
            errors.append(
                "%s.allowedRoutes.kinds[%d]: %r names no kind (e.g. {kind: HTTPRoute})" % (where, kind_index, kind)
            )
    return errors


def option_errors(params):
    """Errors of the options that mean something else, or nothing, for a Gateway API gateway."""
    errors = listener_errors(params.get("listeners"), params["namespace"])
    class_error = validate.dns1123_label("gateway_class", params.get("gateway_class") or DEFAULT_CLASS)
    if class_error:
        errors.append(class_error)
    errors += deployed_name_errors("name", params["name"], params.get("gateway_class") or DEFAULT_CLASS)
    if params.get("labels"):
        errors.append(
            "labels: select an istio-API gateway's pods; istiod selects a Gateway API gateway's pods by %s itself. "
            "Use infrastructure.labels to label what istiod deploys" % ownership.GATEWAY_NAME_LABEL
        )
    service = params.get("service") or {}
    if service.get("ports"):
        errors.append(
            "service.ports: a Gateway API gateway's Service ports are its listeners' ports; drop service.ports"
        )
    infrastructure = params.get("infrastructure") or {}
    for key in ("labels", "annotations"):
        mapping = infrastructure.get(key) or {}
        # The Gateway API allows 8; the collection adds istio.io/rev to the labels itself.
        most = MAX_INFRASTRUCTURE_ENTRIES - (1 if key == "labels" else 0)
        if len(mapping) > most:
            errors.append(
                "infrastructure.%s: %d entries; at most %d (the Gateway API allows %d%s)"
                % (
                    key,
                    len(mapping),
                    most,
                    MAX_INFRASTRUCTURE_ENTRIES,
                    ", and the module adds istio.io/rev" if key == "labels" else "",
                )
            )
        reserved = sorted(
            k for k in mapping if k.startswith(_RESERVED_LABEL_PREFIXES) or (key == "labels" and k in _mark_keys())
        )
        if reserved:
            errors.append(
                "infrastructure.%s: %s are the collection's or the Gateway API's own keys, which istiod would copy "
                "onto what it deploys (or drop); use other keys" % (key, ", ".join(reserved))
            )
    errors += validate.labels("infrastructure.labels", infrastructure.get("labels"), allow_empty=True)
    errors += [
        e
        for e in (validate.label_key("infrastructure.annotations", k) for k in infrastructure.get("annotations") or {})
        if e
    ]
    return errors


def deployed_name_errors(option, name, gateway_class):
    """istiod names the Deployment, Service and ServiceAccount `<name>-<class>`: a Service name, 63 at most."""
    deployed = _joined(name, gateway_class)
    if len(deployed) <= 63:
        return []
    return [
        "%s: istiod would name this gateway's Service %r (<name>-<gateway_class>), %d characters, and a Service name "
        "has at most 63; shorten %s or gateway_class" % (option, deployed, len(deployed), option)
    ]


def _mark_keys():
    return set(L.METHOD_MARK_KEYS) | {L.MANAGED_BY, L.CANARY_OF, L.REVISION}


# -- render -------------------------------------------------------------------------------------------------
def render_gateway_api(params):
    """[ConfigMap, Gateway] for module params `params`, with this method's marks."""
    name, namespace, kind = params["name"], params["namespace"], params["kind"]
    marks = method_marks(name)
    infrastructure = params.get("infrastructure") or {}
    # Always set: without them istiod copies the Gateway's own labels (the collection's marks) and annotations
    # onto everything it deploys.
    infra_labels = dict(infrastructure.get("labels") or {})
    # The revision always, `default` too: on the Gateway it picks the istiod (the label wins over a namespace's),
    # and the collection's server-side apply then owns it, so a revision another writer set (gateway_canary's
    # promotion) goes back to what the options say. On what istiod deploys too, as every method's pods carry it
    # (gateway_info, canary and tags read it).
    revision = params.get("revision") or L.DEFAULT_REVISION
    infra_labels[L.REVISION] = revision
    gateway_labels = dict(marks, **{L.REVISION: revision})
    service = params.get("service") or {}
    annotations = {SERVICE_TYPE_ANNOTATION: service.get("type") or CHART_SERVICE_TYPE[kind]}
    spec = {
        "gatewayClassName": params.get("gateway_class") or DEFAULT_CLASS,
        "listeners": [dict(listener) for listener in params["listeners"]],
        "infrastructure": {
            "labels": infra_labels,
            "annotations": dict(infrastructure.get("annotations") or {}),
            "parametersRef": {"group": "", "kind": "ConfigMap", "name": ownership.parameters_name(name)},
        },
    }
    if service.get("load_balancer_ip"):
        spec["addresses"] = [{"type": "IPAddress", "value": service["load_balancer_ip"]}]
    gateway = {
        "apiVersion": GATEWAY_API,
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace, "labels": gateway_labels, "annotations": annotations},
        "spec": spec,
    }
    parameters = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": ownership.parameters_name(name), "namespace": namespace, "labels": dict(marks)},
        "data": {key: _dump(patch) for key, patch in sorted(parameter_patches(params).items())},
    }
    return [parameters, gateway]


def parameter_patches(params):
    """The ConfigMap's strategic merge patches on what istiod renders: the options the other methods render into
    the workload objects, with their defaults (install_manifest's)."""
    container = {"name": PROXY_CONTAINER, "resources": deep_merge(CHART_RESOURCES, params.get("resources"))}
    template = {"spec": {"containers": [container]}}
    if params.get("pod_annotations"):
        template["metadata"] = {"annotations": dict(params["pod_annotations"])}
    deployment_spec = {"strategy": rolling_strategy(params), "template": template}
    bounds = autoscaling(params)
    if bounds is None and params.get("replicas") is not None:
        deployment_spec["replicas"] = params["replicas"]
    patches = {"deployment": {"spec": deployment_spec}}
    service = params.get("service") or {}
    service_patch = {}
    if service.get("annotations"):
        service_patch["metadata"] = {"annotations": dict(service["annotations"])}
    if service.get("external_traffic_policy"):
        service_patch["spec"] = {"externalTrafficPolicy": service["external_traffic_policy"]}
    if service_patch:
        patches["service"] = service_patch
    # istiod renders an HPA and a PDB only when a patch for them exists.
    if bounds is not None:
        patches["horizontalPodAutoscaler"] = {"spec": autoscaler_spec(bounds)}
    budget = budget_spec(params)
    if budget:
        patches["podDisruptionBudget"] = {"spec": budget}
    return patches


def _dump(patch):
    return yaml.safe_dump(patch, default_flow_style=False, sort_keys=True)


_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_SUFFIX = {
    None: 1,
    "m": 0.001,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def _quantity(value):
    match = _QUANTITY.match(value) if isinstance(value, str) else None
    return float(match.group(1)) * _SUFFIX[match.group(2)] if match else None


def reflects(live, patch):
    """Whether a live object holds what a strategic merge patch sets: maps recursively, lists of named maps by
    name (containers), other values equal; resource quantities by value (the API server writes 2000m as 2)."""
    if isinstance(patch, dict):
        return isinstance(live, dict) and all(reflects(live.get(key), value) for key, value in patch.items())
    if isinstance(patch, list) and patch and all(isinstance(item, dict) and "name" in item for item in patch):
        by_name = {item.get("name"): item for item in live or [] if isinstance(item, dict)}
        return all(reflects(by_name.get(item["name"]), item) for item in patch)
    if live == patch:
        return True
    left, right = _quantity(live), _quantity(patch)
    return left is not None and right is not None and abs(left - right) <= 1e-9 * max(abs(left), abs(right), 1)


def conditions(gateway):
    """{type: status} of a Gateway's conditions that describe its current generation."""
    meta, status = gateway.get("metadata") or {}, gateway.get("status") or {}
    generation = meta.get("generation")
    return {
        c["type"]: c.get("status")
        for c in status.get("conditions") or []
        if generation is None or c.get("observedGeneration") in (None, generation)
    }


def condition_detail(gateway):
    found = [
        "%s=%s (%s)" % (c["type"], c.get("status"), c.get("message") or c.get("reason") or "")
        for c in (gateway or {}).get("status", {}).get("conditions") or []
    ]
    return "; ".join(found) or "no status yet (is an istiod of the Gateway's revision running?)"


# -- the method ---------------------------------------------------------------------------------------------
class GatewayApiMethod(InstallMethod):
    """A Gateway and its parameters ConfigMap, written by server-side apply; istiod deploys the rest."""

    name = METHOD
    field_manager = L.FIELD_MANAGER
    injected = False  # istiod renders the whole proxy: no injection, no pod selector of the collection's

    def __init__(self, module, kube, params, result):
        super(GatewayApiMethod, self).__init__(module, kube, params, result)
        self.applied = []
        self.secrets = []
        self.patches = None

    def workload_name(self):
        return deployed_name(self.params)

    def preflight(self, plane):
        p = self.params
        if not self.kube.has_api(GATEWAY_API):
            raise InputError(
                "method: gateway_api needs the Gateway API CRDs (%s), which this cluster does not serve; install "
                "them (kubectl apply --server-side -f standard-install.yaml of the Gateway API release Istio "
                "names), then restart istiod so that it creates its GatewayClasses" % GATEWAY_API
            )
        class_name = p.get("gateway_class") or DEFAULT_CLASS
        gateway_class = self.kube.get(GATEWAY_API, "GatewayClass", class_name)
        if gateway_class is None:
            raise InputError(
                "gateway_class: GatewayClass %r does not exist; istiod creates 'istio' when it starts with the "
                "Gateway API CRDs installed, so use it, or create a GatewayClass %r with controllerName %s"
                % (class_name, class_name, ISTIO_CONTROLLER)
            )
        controller = gateway_class.get("spec", {}).get("controllerName")
        if controller != ISTIO_CONTROLLER:
            raise InputError(
                "gateway_class: GatewayClass %r is controlled by %r, not Istio (%s), so no istiod would deploy the "
                "gateway; use an Istio class such as 'istio'" % (class_name, controller, ISTIO_CONTROLLER)
            )
        self._check_secrets()

    def _check_secrets(self):
        p = self.params
        problems = []
        for index, listener in enumerate(p["listeners"]):
            for ref_index, ref in enumerate((listener.get("tls") or {}).get("certificateRefs") or []):
                secret = self.kube.get("v1", "Secret", ref["name"], p["namespace"])
                problem = secret_problem(secret, ref["name"], None, None)
                self.secrets.append(
                    {"name": ref["name"], "namespace": p["namespace"], "found": secret is not None, "problem": problem}
                )
                if problem:
                    problems.append(
                        "listeners[%d].tls.certificateRefs[%d]: %s in namespace %r"
                        % (index, ref_index, problem, p["namespace"])
                    )
        if not problems:
            return
        if p.get("missing_secret") == "warn":
            for problem in problems:
                self.module.warn(problem + "; the listener stays down until the Secret is right")
            return
        raise InputError(
            "; ".join(problems)
            + "; create it there (kubectl create -n %s secret tls NAME --cert=... --key=...), or set "
            "missing_secret: warn to write the Gateway anyway" % p["namespace"]
        )

    def check_collisions(self):
        """Refuse what istiod would write over or what would share the gateway's name: the objects istiod deploys
        under `<gateway>-<class>` when they are not this Gateway's, another Gateway whose deployed objects have
        that name too (names joined from two strings can meet: a-b + istio, a + b-istio), and an istio-API
        gateway of the same name that the collection installed."""
        p = self.params
        name, namespace = p["name"], p["namespace"]
        ours = self.kube.get(GATEWAY_API, "Gateway", name, namespace)
        if ours is not None and self.owns(ours):
            live_class = ours["spec"].get("gatewayClassName")
            if live_class != p["gateway_class"]:
                # istiod never deletes what it rendered, and what it rendered under the old class stays owned by
                # the live Gateway: it would keep serving beside the new objects.
                raise InputError(
                    "gateway_class: %s/%s is installed with class %r; changing it in place would leave istiod's %s-%s "
                    "objects running beside the new ones. Remove the gateway first (state: absent), or install the "
                    "new class under another name" % (namespace, name, live_class, name, live_class)
                )
            # Installed already under the same name and class: nothing new is named (one GET on converged runs).
            return
        existing = self.kube.get("apps/v1", "Deployment", name, namespace)
        if existing is not None and ownership.owner_of(existing, name, namespace) in ownership.WORKLOAD_METHODS:
            raise InputError(
                "method: gateway %s/%s is installed by method %s; a Gateway API gateway is another set of objects, "
                "so it cannot take this one over: remove it first (istio_gateway state: absent), or give the Gateway "
                "API gateway another name" % (namespace, name, ownership.owner_of(existing, name, namespace))
            )
        target = deployed_name(p)
        # Another Gateway that istiod deploys under the same name first: it is the cause, its objects the symptom.
        for other in self.kube.list(GATEWAY_API, "Gateway", namespace):
            meta = other["metadata"]
            if meta["name"] != name and deployed_name_of(other) == target:
                raise InputError(
                    "name: istiod deploys Gateway %s/%s (%s) as %s, the name it would give this gateway's Deployment, "
                    "Service and ServiceAccount (<name>-<gateway_class>); give this gateway another name or "
                    "gateway_class" % (namespace, meta["name"], owners.describe_owner(other), target)
                )
        ours_uid = (ours or {}).get("metadata", {}).get("uid")
        for api_version, kind in ownership.DEPLOYED_KINDS:
            live = self.kube.get(api_version, kind, target, namespace)
            if live is None:
                continue
            refs = live["metadata"].get("ownerReferences") or []
            if not (ours_uid and any(r.get("kind") == "Gateway" and r.get("uid") == ours_uid for r in refs)):
                raise owners.refuse(
                    live,
                    "istiod deploys Gateway %s's %s under this name (%s-<gateway_class>) and would write over it"
                    % (name, kind, name),
                    "remove it, or give the gateway another name or gateway_class",
                )

    def render(self, params, fresh=False):
        # What the wait checks the deployed objects against: this render's patches (the manager renders with the
        # effective disruption budget and a canary's split, not the raw options).
        self.patches = parameter_patches(params)
        return render_gateway_api(params)

    def stale(self, desired):
        """The HPA or PDB istiod deployed for this Gateway that the parameters no longer ask for: istiod only
        applies what it renders and never deletes (deploymentcontroller.go), so a switched-off autoscaler would
        keep scaling the Deployment. One GET per kind not rendered."""
        (parameters,) = [o for o in desired if o["kind"] == "ConfigMap"]
        gateway = None
        found = []
        for key, (api_version, kind) in STALE_KINDS.items():
            if key in parameters["data"]:
                continue
            live = self.kube.get(api_version, kind, deployed_name(self.params), self.params["namespace"])
            if live is None:
                continue
            if gateway is None:
                gateway = self.kube.get(GATEWAY_API, "Gateway", self.params["name"], self.params["namespace"]) or {}
            uid = gateway.get("metadata", {}).get("uid")
            # Only what istiod made for the collection's own Gateway: owned by its uid, carrying istiod's mark.
            refs = live["metadata"].get("ownerReferences") or []
            if uid and self.owns(gateway) and any(r.get("uid") == uid for r in refs):
                found.append(live)
        return found

    def owns(self, obj):
        return ownership.owner_of(obj, self.params["name"], self.params["namespace"]) == METHOD

    def apply(self, desired, changes):
        """The ConfigMap first (istiod reads it when the Gateway changes), then the Gateway."""
        action = {(c["kind"], c["name"]): c["action"] for c in changes}
        for obj in desired:
            if action.get((obj["kind"], obj["metadata"]["name"])) in ("create", "update"):
                self.kube.apply(obj, field_manager=self.field_manager)
                self.applied.append("%s/%s" % (obj["kind"], obj["metadata"]["name"]))

    def claim_patch(self, obj):
        """This method's marks on an adopted Gateway or ConfigMap (made by hand), its fields made the collection's."""
        return claim(obj, method_marks(self.params["name"]), helm_annotations=None, field_manager=self.field_manager)

    def wait(self, timeout):
        """Until the Gateway serves what this run rendered (wait_serving)."""
        p = self.params
        return wait_serving(
            self.kube,
            p["name"],
            p["namespace"],
            p.get("revision") or L.DEFAULT_REVISION,
            self.patches,
            timeout,
            parameters_written=any(obj.startswith("ConfigMap/") for obj in self.applied),
            deployed=deployed_name(p),
        )

    def describe(self):
        facts = {
            "field_manager": self.field_manager,
            "applied": list(self.applied),
            "gateway_class": self.params.get("gateway_class") or DEFAULT_CLASS,
            "deployed_as": deployed_name(self.params),
        }
        if self.secrets:
            facts["secrets"] = list(self.secrets)
        return facts


def live_patches(kube, gateway):
    """The patches of a live Gateway's parameters ConfigMap ({} without one)."""
    ref = ((gateway.get("spec") or {}).get("infrastructure") or {}).get("parametersRef") or {}
    if ref.get("kind") != "ConfigMap":
        return {}
    parameters = kube.get("v1", "ConfigMap", ref["name"], gateway["metadata"]["namespace"]) or {}
    return {key: yaml.safe_load(text) for key, text in (parameters.get("data") or {}).items()}


def wait_serving(kube, name, namespace, revision, patches, timeout, parameters_written, deployed):
    """Until Gateway namespace/name's current generation is Accepted and Programmed, istiod has rendered what was
    asked for (`revision`, the parameters' `patches`) into Deployment `deployed`, and it has rolled out; return it.

    Neither a ConfigMap change nor a label change (the revision) bumps the Gateway's generation, so its conditions
    cannot say that istiod has re-rendered: the deployed objects are read until they reflect the patches. The
    Deployment is read on every run (one GET, shared with the rollout check); the Service, HPA and PDB only when
    the parameters were written (`parameters_written`).
    """
    where = "%s/%s" % (namespace, name)

    def programmed():
        gateway = kube.get(GATEWAY_API, "Gateway", name, namespace)
        if gateway is None:
            return (False, "the Gateway does not exist")
        state = conditions(gateway)
        return (state.get("Accepted") == "True" and state.get("Programmed") == "True", condition_detail(gateway))

    try:
        kube.wait("Gateway %s to be Accepted and Programmed by istiod" % where, programmed, timeout)
    except K8sError as exc:
        raise K8sError("%s (istiod of revision %s)" % (exc, revision))

    def rendered_and_rolled_out():
        deployment = kube.get("apps/v1", "Deployment", deployed, namespace)
        if deployment is None:
            return (False, "istiod has not deployed it yet")
        live_revision = inventory.revision_of(deployment)
        if live_revision != revision:
            return (
                False,
                "on revision %s; the istiod of revision %s has not taken it over yet" % (live_revision, revision),
            )
        if not reflects(deployment, patches.get("deployment") or {}):
            return (False, "istiod has not rendered the parameters into it yet")
        return rollout_complete(deployment)

    kube.wait(
        "Deployment %s/%s, which istiod renders, to roll out" % (namespace, deployed), rendered_and_rolled_out, timeout
    )
    if parameters_written:
        for key, (api_version, kind) in RENDERED_BY_PATCH.items():
            if key in patches:
                _wait_reflected(kube, api_version, kind, deployed, namespace, patches[key], timeout)
    return kube.get("apps/v1", "Deployment", deployed, namespace)


def _wait_reflected(kube, api_version, kind, name, namespace, patch, timeout):
    def check():
        live = kube.get(api_version, kind, name, namespace)
        if live is None:
            return (False, "istiod has not deployed it yet")
        return (reflects(live, patch), "istiod has not rendered the parameters into it yet")

    kube.wait("%s %s/%s to reflect the parameters" % (kind, namespace, name), check, timeout)
