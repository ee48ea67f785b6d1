# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""istio_gateway: one IstioOperator per gateway, applied by istioctl only when the cluster differs.

istioctl always force-applies and always says "installed", so the manager
decides `changed` itself: it renders the objects istioctl would apply
(`istioctl manifest generate --cluster-specific` plus istioctl's owner labels),
dry-runs each as a server-side apply with istioctl's field manager, and compares
the answer with the live object. Only a difference runs `istioctl install`.
"""

import copy
import datetime
import json
import time

from ansible_collections.istio_ops.gateways.plugins.module_utils import control_plane, inventory, owners, validate
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.args import (
    AUTH_ARG_SPEC,
    ISTIOCTL_ARG_SPEC,
    WAIT_ARG_SPEC,
    merge_specs,
)
from ansible_collections.istio_ops.gateways.plugins.module_utils.common import Manager
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import InputError
from ansible_collections.istio_ops.gateways.plugins.module_utils.istioctl import Istioctl
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import Conflict, NotFound, object_diff, strip_noise

try:
    import yaml
except ImportError:  # pragma: no cover - reported by run_module
    yaml = None

DEFAULT_LABELS = {"ingress": {"istio": "ingressgateway"}, "egress": {"istio": "egressgateway"}}
VALUES_KEY = {"ingress": "istio-ingressgateway", "egress": "istio-egressgateway"}
COMPONENT_KEY = {"ingress": "ingressGateways", "egress": "egressGateways"}

SERVICE_OPTIONS = dict(
    type=dict(type="str", choices=["ClusterIP", "NodePort", "LoadBalancer"]),
    ports=dict(
        type="list",
        elements="dict",
        options=dict(
            name=dict(type="str", required=True),
            port=dict(type="int", required=True),
            target_port=dict(type="int"),
            node_port=dict(type="int"),
            protocol=dict(type="str", default="TCP", choices=["TCP", "UDP", "SCTP"]),
        ),
    ),
    annotations=dict(type="dict"),
    load_balancer_ip=dict(type="str"),
    external_traffic_policy=dict(type="str", choices=["Cluster", "Local"]),
)

ARGUMENT_SPEC = merge_specs(
    AUTH_ARG_SPEC,
    WAIT_ARG_SPEC,
    ISTIOCTL_ARG_SPEC,
    dict(
        name=dict(type="str", required=True),
        namespace=dict(type="str", required=True),
        kind=dict(type="str", default="ingress", choices=["ingress", "egress"]),
        labels=dict(type="dict"),
        revision=dict(type="str"),
        injection_template=dict(type="str", default="gateway"),
        replicas=dict(type="int"),
        autoscaling=dict(
            type="dict",
            options=dict(
                enabled=dict(type="bool", default=True),
                min=dict(type="int"),
                max=dict(type="int"),
            ),
        ),
        service=dict(type="dict", options=SERVICE_OPTIONS),
        resources=dict(type="dict"),
        pod_annotations=dict(type="dict"),
        values=dict(type="dict"),
        k8s=dict(type="dict"),
        istio_namespace=dict(type="str", default="istio-system"),
        create_namespace=dict(type="bool", default=True),
        fix_injection_label=dict(type="bool", default=False),
        restart=dict(type="bool", default=False),
        adopt=dict(type="bool", default=False),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    ),
)


# User `values` the module sets itself, to keep a gateway install away from the control plane: (path, fix).
PINNED_VALUES = (
    (
        ("global", "operatorManageWebhooks"),
        "remove it: it stays true so that istioctl never rewrites the cluster's revision-tag webhooks",
    ),
    (("global", "istioNamespace"), "remove it and use the option istio_namespace"),
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
RENDERED_KINDS = frozenset(inventory.OWNED_KINDS)


def pinned_value_errors(params):
    """Errors for user `values` and `k8s` settings that would undo a pin (webhooks, Istio namespace,
    revision, owner, the component's name and namespace)."""
    errors = []
    user_values = params.get("values") or {}
    for path, fix in PINNED_VALUES:
        node = user_values
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            errors.append("values.%s: %r is set by the module; %s" % (".".join(path), node, fix))
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


def check_rendered(objects, namespace):
    """Fail unless istioctl rendered only the gateway chart's kinds, all in the gateway's namespace."""
    problems = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        what = "%s %s/%s" % (obj.get("kind"), meta.get("namespace") or "", meta.get("name"))
        if (obj.get("apiVersion"), obj.get("kind")) not in RENDERED_KINDS:
            problems.append("%s (%s is not a kind of the gateway chart)" % (what, obj.get("apiVersion")))
        elif meta.get("namespace") != namespace:
            problems.append("%s (outside namespace %r)" % (what, namespace))
    if problems:
        raise InputError(
            "values/k8s: istioctl would render %s; a gateway install makes only %s in the gateway's namespace. "
            "Nothing was applied; remove the values or k8s settings that add or move these objects"
            % ("; ".join(problems), ", ".join(sorted({pair[1] for pair in RENDERED_KINDS})))
        )


def deep_merge(base, extra):
    """base updated recursively by extra (dicts merge, everything else replaces); returns a new dict."""
    merged = copy.deepcopy(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def gateway_labels(params):
    return params.get("labels") or DEFAULT_LABELS[params["kind"]]


def check_inputs(params):
    """Every input error at once, before the cluster is touched."""
    errors = [
        e
        for e in (
            validate.service_name("name", params["name"]),
            validate.dns1123_label("namespace", params["namespace"]),
            validate.dns1123_label("revision", params["revision"]) if params.get("revision") else None,
            validate.dns1123_label("istio_namespace", params["istio_namespace"]),
        )
        if e
    ]
    errors += validate.labels("labels", gateway_labels(params))
    if params.get("replicas") is not None and params["replicas"] < 0:
        errors.append("replicas: %r is negative; use 0 or more" % params["replicas"])
    scaling = params.get("autoscaling") or {}
    if scaling.get("enabled", True) and scaling:
        low, high = scaling.get("min"), scaling.get("max")
        if low is not None and low < 1:
            errors.append("autoscaling.min: %r must be at least 1" % low)
        if low is not None and high is not None and high < low:
            errors.append("autoscaling.max: %r is below autoscaling.min %r; raise max or lower min" % (high, low))
    for index, port in enumerate((params.get("service") or {}).get("ports") or []):
        for key in ("port", "target_port", "node_port"):
            if port.get(key) is not None:
                error = validate.port("service.ports[%d].%s" % (index, key), port[key])
                if error:
                    errors.append(error)
    if params.get("revision") == L.DEFAULT_REVISION:
        errors.append("revision: use no revision (omit it) for the default revision, not %r" % L.DEFAULT_REVISION)
    errors += pinned_value_errors(params)
    if errors:
        raise InputError("; ".join(errors))


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
    service = params.get("service") or {}
    if service.get("type"):
        chart["type"] = service["type"]
    if service.get("ports"):
        chart["ports"] = [_chart_port(p) for p in service["ports"]]
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
                "global": {"istioNamespace": params["istio_namespace"], "operatorManageWebhooks": True},
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


def _chart_port(port):
    chart = {"name": port["name"], "port": port["port"], "protocol": port.get("protocol") or "TCP"}
    if port.get("target_port"):
        chart["targetPort"] = port["target_port"]
    if port.get("node_port"):
        chart["nodePort"] = port["node_port"]
    return chart


def stamp_owner_labels(objects, iop, version, kind):
    """Add the labels `istioctl install` adds at apply time (manifest generate leaves them out)."""
    owner = L.owner_labels(
        iop["metadata"]["name"], iop["metadata"]["namespace"], iop["spec"].get("revision"), version, kind
    )
    for obj in objects:
        obj.setdefault("metadata", {}).setdefault("labels", {}).update(owner)
    return objects


def colliding_workloads(deployments, name, selector, pod_labels):
    """Other Deployments whose pods our selector would pick, or whose selector would pick our pods."""
    hits = []
    for dep in deployments:
        meta = dep["metadata"]
        if meta["name"] == name or (meta.get("labels") or {}).get(L.CANARY_OF) == name:
            continue
        theirs = dep["spec"]["template"]["metadata"].get("labels") or {}
        their_selector = dep["spec"].get("selector", {}).get("matchLabels") or {}
        if validate.selector_matches(selector, theirs) or validate.selector_matches(their_selector, pod_labels):
            hits.append(meta["name"])
    return hits


class IstioGatewayManager(Manager):
    def run(self):
        p = self.params
        check_inputs(p)
        self.result.update({"name": p["name"], "namespace": p["namespace"], "kind": p["kind"]})
        if p["state"] == "absent":
            return self._absent()
        return self._present()

    # -- state: present -------------------------------------------------
    def _present(self):
        p = self.params
        timings = self.result.setdefault("timings", {})
        namespace = self._preflight_namespace()
        plane = control_plane.find(self.kube, p.get("revision"), p["istio_namespace"])
        self.result["control_plane"] = plane
        istioctl = Istioctl(self.module, self.kube, p.get("binary_path"))
        self.result["istioctl"] = {
            "path": istioctl.path,
            "version": istioctl.version(),
            "commands": istioctl.commands,
            "cached": istioctl.cached,
        }
        if not p["skip_version_check"]:
            mismatch = control_plane.version_mismatch(istioctl.version(), plane)
            if mismatch:
                raise InputError(mismatch)
        self._preflight_collisions(namespace)

        live_deployment = self.kube.get("apps/v1", "Deployment", p["name"], p["namespace"]) if namespace else None
        iop = render_iop(self._keep_canary_split(live_deployment))
        self.result["iop"] = iop
        self._preflight_owner_name(iop["metadata"]["name"])
        iop_path = istioctl.write_file("iop.yaml", yaml.safe_dump(iop, sort_keys=False))
        started = time.monotonic()
        desired = self._render(istioctl, iop_path, iop)
        timings["render_seconds"] = round(time.monotonic() - started, 3)

        before_revision = _revision_of(live_deployment)
        started = time.monotonic()
        changes, migrations = self._plan(desired, namespace_exists=namespace is not None)
        if istioctl.last_render_cached and any(c["action"] == "prune" for c in changes):
            # Never delete on the strength of a cached render alone: render afresh and plan again.
            desired = self._render(istioctl, iop_path, iop, use_cache=False)
            changes, migrations = self._plan(desired, namespace_exists=namespace is not None)
        timings["plan_seconds"] = round(time.monotonic() - started, 3)
        if self.result.get("adopted"):
            self.module.warn(self._adopting)
        self.result["objects"] = [
            {"kind": c["kind"], "name": c["name"], "namespace": c["namespace"], "action": c["action"]} for c in changes
        ]
        if migrations:
            self.result["migrated"] = [inventory.object_ref(m["live"]) for m in migrations]
        needs_install = any(c["action"] != "none" for c in changes)
        self.result["changed"] = (
            needs_install or bool(migrations) or (namespace is None) or bool(self.result.get("namespace_fixed"))
        )
        if self.module._diff:
            self.result["diff"] = [object_diff(m["live"], m["after"]) for m in migrations] + [
                object_diff(c["live"], c["after"]) for c in changes if c["action"] != "none"
            ]

        if not self.check_mode:
            if namespace is None:
                self._create_namespace()
            # Relabel before istioctl runs, so that it neither prunes nor recreates what it finds. That is the
            # whole migration: istioctl keeps no in-cluster state named after the IstioOperator (no
            # installed-state IstioOperator since the in-cluster operator went), and the chart's pod template
            # carries no IstioOperator name (its owner label is the chart's ownerName, "unknown").
            for migration in migrations:
                self._relabel(migration["live"], dry_run=False)
        if needs_install and not self.check_mode:
            started = time.monotonic()
            istioctl.install(iop_path, p["wait_timeout"])
            timings["install_seconds"] = round(time.monotonic() - started, 3)
            # istioctl prunes only objects stamped with its own version; remove older leftovers too.
            for change in changes:
                if change["action"] == "prune":
                    self.kube.delete(
                        change["api_version"], change["kind"], change["name"], change["namespace"], read=change["live"]
                    )

        if p["restart"]:
            self.result["changed"] = True
            self.result["restarted"] = True
            if not self.check_mode:
                self._restart()

        after_revision = p.get("revision") or L.DEFAULT_REVISION
        self.result["revision"] = {"before": before_revision, "after": after_revision}
        # Converged runs wait too: an earlier run may have timed out (pods refused by a webhook, say), and a
        # run that reports ok must mean a gateway that serves. A ready Deployment costs one GET.
        if not self.check_mode and p["wait"]:
            started = time.monotonic()
            self.kube.wait_rollout(p["name"], p["namespace"], p["wait_timeout"])
            timings["wait_seconds"] = round(time.monotonic() - started, 3)
        self.result.update(inventory.workload_status(self.kube, p["name"], p["namespace"]))
        return self.result

    def _keep_canary_split(self, live_deployment):
        """The parameters to render with: during a canary (gateway_canary's state annotation on the
        Deployment), the live replica count and HPA bounds, so a scheduled reconcile never fights the split."""
        annotations = ((live_deployment or {}).get("metadata", {}).get("annotations")) or {}
        if L.STATE not in annotations:
            return self.params
        adopted = dict(self.params, replicas=live_deployment["spec"].get("replicas"))
        hpa = self.kube.get("autoscaling/v2", "HorizontalPodAutoscaler", self.params["name"], self.params["namespace"])
        if hpa is not None:
            adopted["autoscaling"] = {
                "enabled": True,
                "min": hpa["spec"].get("minReplicas"),
                "max": hpa["spec"]["maxReplicas"],
            }
        self.result["canary_in_progress"] = True
        self.module.warn(
            "a canary of %s/%s is in progress: kept its replica split (%s replicas%s); the options replicas and "
            "autoscaling apply again after gateway_canary promotes or rolls back"
            % (
                self.params["namespace"],
                self.params["name"],
                adopted["replicas"],
                ", HPA pinned" if hpa is not None else "",
            )
        )
        return adopted

    def _preflight_namespace(self):
        """The live namespace (None when missing); fails or fixes istio-injection=disabled."""
        p = self.params
        namespace = self.kube.get("v1", "Namespace", p["namespace"])
        if namespace is None:
            if not p["create_namespace"]:
                raise InputError(
                    "namespace: %r does not exist; create it first or set create_namespace: true" % p["namespace"]
                )
            return None
        if (namespace["metadata"].get("labels") or {}).get(L.INJECTION) == L.INJECTION_DISABLED:
            if not p["fix_injection_label"]:
                raise InputError(
                    "namespace: %r carries %s=%s, so Istio would skip injection and the gateway pods would try to "
                    "pull the placeholder image 'auto' and never start; remove the label or set "
                    "fix_injection_label: true" % (p["namespace"], L.INJECTION, L.INJECTION_DISABLED)
                )
            self.result["namespace_fixed"] = True
            if not self.check_mode:
                self.kube.patch("v1", "Namespace", p["namespace"], None, {"metadata": {"labels": {L.INJECTION: None}}})
        return namespace

    def _preflight_collisions(self, namespace):
        if namespace is None:
            return
        p = self.params
        selector = gateway_labels(p)
        hits = colliding_workloads(
            self.kube.list("apps/v1", "Deployment", p["namespace"]), p["name"], selector, selector
        )
        if hits:
            raise InputError(
                "labels: %s in namespace %r would collide with Deployment(s) %s (one selector matches the other's "
                "pods, so a Service or Gateway would pick both); choose labels unique to this gateway"
                % (json.dumps(selector, sort_keys=True), p["namespace"], ", ".join(sorted(hits)))
            )

    def _render(self, istioctl, iop_path, iop, use_cache=True):
        """What `istioctl install` would apply, with its owner labels; only the chart's kinds, in the namespace."""
        rendered = istioctl.manifest_generate(iop_path, use_cache=use_cache)
        check_rendered(rendered, self.params["namespace"])
        return stamp_owner_labels(rendered, iop, istioctl.version(), self.params["kind"])

    def _plan(self, desired, namespace_exists):
        """(changes, migrations). One change per object: action create | update | prune | none, with the live
        and the planned object; one migration per object of the gateway still owned under its legacy
        IstioOperator name (labels.legacy_iop_name) that the render names, with the relabelled object.

        One LIST per owned kind (by istioctl's owner label, current or legacy name) yields the live objects
        to compare, to migrate and to prune; only a desired object missing from it (not installed yet, or
        not this gateway's) is read by name, and refused unless it may be adopted. Nothing is written:
        relabelling is a server-side dry run here, so that check mode reports it and the comparison
        sees the object as it will be.
        """
        p = self.params
        current_name = L.iop_name(p["name"], p["namespace"])
        owned = inventory.owned_objects(self.kube, p["name"], p["namespace"]) if namespace_exists else []
        wanted = {(o["kind"], o["metadata"]["name"]) for o in desired}
        live_by_key = {}
        migrations = []
        for obj in owned:
            key = (obj["kind"], obj["metadata"]["name"])
            if obj["metadata"]["labels"][L.OWNING_RESOURCE] != current_name and key in wanted:
                relabelled = self._relabel(obj, dry_run=True)
                migrations.append({"live": obj, "after": relabelled})
                live_by_key[key] = relabelled
            else:
                live_by_key[key] = obj
        changes = []
        foreign = []
        for obj in desired:
            meta = obj["metadata"]
            live = live_by_key.get((obj["kind"], meta["name"]))
            if live is None and namespace_exists:
                live = self.kube.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
                if live is not None:
                    foreign.append(live)
            if live is None:
                after, action = obj, "create"
            else:
                after = self.kube.apply(obj, field_manager=L.ISTIOCTL_FIELD_MANAGER, dry_run=True)
                action = "none" if strip_noise(after) == strip_noise(live) else "update"
            changes.append(_change(obj, action, live, after))
        self._check_foreign(foreign, current_name)
        for obj in owned:
            if (obj["kind"], obj["metadata"]["name"]) not in wanted:
                changes.append(_change(obj, "prune", obj, None))
        return changes, migrations

    def _check_foreign(self, foreign, current_name):
        """Objects in the way that istioctl did not apply for this gateway: refused, or adopted on request."""
        if not foreign:
            return
        if not self.params["adopt"]:
            # The Deployment first (what a user recognises), then the rest in the chart's order.
            ordered = sorted(foreign, key=lambda o: o["kind"] != "Deployment")
            first, others = ordered[0], ordered[1:]
            error = owners.refuse(
                first,
                "it has a name istio_gateway would install, and istioctl would force-apply over it",
                "remove it, give the gateway another name or namespace, or set adopt: true to take it over "
                "(it is then owned by this gateway's IstioOperator %s)" % current_name,
            )
            if others:
                error.message += "; the same holds for " + "; ".join(
                    "%s %s (%s)" % (o["kind"], o["metadata"]["name"], owners.describe_owner(o)) for o in others
                )
                error.args = (error.message,)
            raise error
        self.result["adopted"] = [inventory.object_ref(obj) for obj in foreign]
        self._adopting = "adopt: taking over %s (%s); from now on they are owned by IstioOperator %s" % (
            ", ".join("%s %s" % (obj["kind"], obj["metadata"]["name"]) for obj in foreign),
            "; ".join(sorted({owners.describe_owner(obj) for obj in foreign})),
            current_name,
        )

    def _relabel(self, obj, dry_run):
        """Move an object from the legacy owner name to the current one: a metadata-only merge patch, guarded
        by the resourceVersion read, so the pod template (and the pods) stay as they are."""
        meta = obj["metadata"]
        patch = {
            "metadata": {
                "labels": {L.OWNING_RESOURCE: L.iop_name(self.params["name"], self.params["namespace"])},
                "resourceVersion": meta["resourceVersion"],
            }
        }
        return self.kube.patch(obj["apiVersion"], obj["kind"], meta["name"], meta["namespace"], patch, dry_run=dry_run)

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

    def _create_namespace(self):
        ns = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": self.params["namespace"],
                "annotations": {L.CREATED_NAMESPACE: "true"},
            },
        }
        try:
            self.kube.create(ns)
        except Conflict:
            # Created meanwhile by a concurrent run (an AWX double launch): it exists now, which is what we need.
            return
        self.result["namespace_created"] = True

    def _restart(self):
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        patch = {"spec": {"template": {"metadata": {"annotations": {L.RESTARTED_AT: now}}}}}
        try:
            self.kube.patch("apps/v1", "Deployment", self.params["name"], self.params["namespace"], patch)
        except NotFound:
            raise InputError(
                "restart: Deployment %s/%s does not exist yet" % (self.params["namespace"], self.params["name"])
            )

    # -- state: absent ---------------------------------------------------
    def _absent(self):
        removed = inventory.remove_owned(
            self.kube,
            self.params["name"],
            self.params["namespace"],
            check_mode=self.check_mode,
            wait_timeout=self.params["wait_timeout"] if self.params["wait"] else 0,
        )
        self.result["removed"] = removed
        self.result["changed"] = bool(removed)
        return self.result


def _change(obj, action, live, after):
    # The diff (two YAML dumps per object) is made only in diff mode, for what changes: dumping every
    # object of every converged run cost more than all of its API requests together.
    meta = obj["metadata"]
    return {
        "api_version": obj["apiVersion"],
        "kind": obj["kind"],
        "name": meta["name"],
        "namespace": meta.get("namespace"),
        "action": action,
        "live": live,
        "after": after,
    }


def _revision_of(deployment):
    if not deployment:
        return None
    return (deployment["metadata"].get("labels") or {}).get(L.REVISION, L.DEFAULT_REVISION)
