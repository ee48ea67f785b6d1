# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""istio_gateway: one gateway, installed by the method the user picks, written only when the cluster differs.

The manager is the same for every method (install_method.py): the method renders the objects it would apply,
each is compared with the live one by a server-side dry run under the method's field manager, and the method
applies only when something differs. Objects the gateway owns under another method (or under the legacy
IstioOperator name) that the render names are moved to this method by a metadata patch first (a migration);
those it no longer renders are pruned after the apply.
"""

import json
import time

from ansible_collections.istio_ops.gateways.plugins.module_utils import (
    canary,
    control_plane,
    install_gateway_api,
    install_helm,
    inventory,
    owners,
    ownership,
    validate,
)
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.args import (
    AUTH_ARG_SPEC,
    ISTIOCTL_ARG_SPEC,
    WAIT_ARG_SPEC,
    merge_specs,
)
from ansible_collections.istio_ops.gateways.plugins.module_utils.common import Manager
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import InputError
from ansible_collections.istio_ops.gateways.plugins.module_utils.install_istioctl import pinned_value_errors
from ansible_collections.istio_ops.gateways.plugins.module_utils.install_method import (
    autoscaled,
    effective_budget,
    fewest_pods,
    gateway_labels,
    method_class,
)
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import (
    Conflict,
    Invalid,
    NotFound,
    field_owners,
    object_diff,
    restart_patch,
    strip_noise,
)

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
        method=dict(type="str", default="istioctl", choices=list(ownership.METHODS)),
        helm=dict(
            type="dict",
            apply_defaults=True,
            options=dict(
                repository=dict(type="str", default=install_helm.DEFAULT_REPOSITORY),
                chart=dict(type="str", default=install_helm.DEFAULT_CHART),
                version=dict(type="str"),
                values=dict(type="dict"),
                binary_path=dict(type="path"),
            ),
        ),
        pod_disruption_budget=dict(
            type="dict",
            options=dict(min_available=dict(type="raw"), max_unavailable=dict(type="raw")),
            mutually_exclusive=[("min_available", "max_unavailable")],
            required_one_of=[("min_available", "max_unavailable")],
        ),
        # method gateway_api: the Gateway's listeners (the Gateway API's own list), class and infrastructure.
        listeners=dict(type="list", elements="dict"),
        gateway_class=dict(type="str", default=install_gateway_api.DEFAULT_CLASS),
        infrastructure=dict(type="dict", options=dict(labels=dict(type="dict"), annotations=dict(type="dict"))),
        missing_secret=dict(type="str", default="fail", choices=["fail", "warn"]),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    ),
)


def check_rendered(objects, namespace, method):
    """Fail unless the method rendered only the kinds a gateway owns, all in the gateway's namespace."""
    rendered_kinds = frozenset(ownership.kinds_of(method))
    problems = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        what = "%s %s/%s" % (obj.get("kind"), meta.get("namespace") or "", meta.get("name"))
        if (obj.get("apiVersion"), obj.get("kind")) not in rendered_kinds:
            problems.append("%s (%s is not a kind of the gateway chart)" % (what, obj.get("apiVersion")))
        elif meta.get("namespace") != namespace:
            problems.append("%s (outside namespace %r)" % (what, namespace))
    if problems:
        raise InputError(
            "%s: %s would render %s; a gateway install makes only %s in the gateway's namespace. "
            "Nothing was applied; remove the values or k8s settings that add or move these objects"
            % (
                "helm.values" if method == "helm" else "values/k8s",
                method,
                "; ".join(problems),
                ", ".join(sorted({pair[1] for pair in rendered_kinds})),
            )
        )


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
    errors += pdb_errors(params)
    errors += method_option_errors(params)
    if errors:
        raise InputError("; ".join(errors))


def pdb_errors(params):
    """A PodDisruptionBudget needs more than one pod: with one, it blocks every node drain (kubernetes#93476),
    and Istio's gateway charts leave it out, so the option would silently do nothing."""
    budget = params.get("pod_disruption_budget")
    if not budget:
        return []
    errors = []
    for key in ("min_available", "max_unavailable"):
        value = budget.get(key)
        if value is not None and validate.int_or_percent(value) is None:
            errors.append(
                "pod_disruption_budget.%s: %r is neither a count (0 or more) nor a percentage like '50%%'"
                % (key, value)
            )
    option = "autoscaling.min" if autoscaled(params) else "replicas"
    if fewest_pods(params) < 2:
        errors.append(
            "pod_disruption_budget: a budget needs at least 2 pods, but %s is %s; raise %s to 2 or more, or drop "
            "pod_disruption_budget" % (option, fewest_pods(params), option)
        )
    elif params["method"] == "istioctl" and params["kind"] == "egress" and not autoscaled(params):
        errors.append(
            "pod_disruption_budget: istioctl's egress gateway chart renders no PodDisruptionBudget for a fixed replica "
            "count; enable autoscaling (with autoscaling.min 2 or more), or use method helm or manifest"
        )
    return errors


def method_option_errors(params):
    """Options that belong to another method than the one chosen, and the istioctl method's pinned values."""
    method = params["method"]
    if method == "gateway_api":
        errors = install_gateway_api.option_errors(params)
    else:
        errors = [
            "%s: applies to method gateway_api only, not %s; drop it, or set method: gateway_api" % (key, method)
            for key in ("listeners", "infrastructure")
            if params.get(key)
        ]
        if params.get("gateway_class", install_gateway_api.DEFAULT_CLASS) != install_gateway_api.DEFAULT_CLASS:
            errors.append("gateway_class: applies to method gateway_api only, not %s; drop it" % method)
    if method == "istioctl":
        errors += pinned_value_errors(params)
        helm = params.get("helm") or {}
        if helm.get("values") or helm.get("version") or helm.get("binary_path"):
            errors.append("helm: set for method istioctl; drop it, or set method: helm")
        return errors
    for key in ("values", "k8s"):
        if params.get(key):
            errors.append(
                "%s: IstioOperator settings apply to method istioctl only, not %s; %s"
                % (key, method, "use helm.values" if method == "helm" else "use the module's options")
            )
    if method == "helm":
        errors += install_helm.pinned_value_errors((params.get("helm") or {}).get("values") or {})
    if params.get("binary_path"):
        errors.append(
            "binary_path: names istioctl, which method %s does not run; %s"
            % (method, "use helm.binary_path" if method == "helm" else "drop it")
        )
    return errors


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
        self.result.update({"name": p["name"], "namespace": p["namespace"], "kind": p["kind"], "method": p["method"]})
        if p["state"] == "absent":
            return self._absent()
        return self._present()

    # -- state: present -------------------------------------------------
    def _present(self):
        p = self.params
        timings = self.result.setdefault("timings", {})
        method = method_class(p["method"])(self.module, self.kube, p, self.result)
        namespace = self._preflight_namespace(method)
        plane = control_plane.find(self.kube, p.get("revision"), p["istio_namespace"])
        self.result["control_plane"] = plane
        method.preflight(plane)
        self.result[method.name] = method.describe()
        workload = method.workload_name()
        live_deployment = self.kube.get("apps/v1", "Deployment", workload, p["namespace"]) if namespace else None
        self._preflight_collisions(namespace, method, live_deployment)
        render_params = dict(self._keep_canary_split(live_deployment), pod_disruption_budget=effective_budget(p))
        started = time.monotonic()
        desired = self._render(method, render_params)
        timings["render_seconds"] = round(time.monotonic() - started, 3)

        before_revision = _revision_of(live_deployment)
        started = time.monotonic()
        changes, migrations = self._plan(method, desired, namespace_exists=namespace is not None)
        if method.rendered_from_cache and any(c["action"] == "prune" for c in changes):
            # Never delete on the strength of a cached render alone: render afresh and plan again.
            desired = self._render(method, render_params, fresh=True)
            changes, migrations = self._plan(method, desired, namespace_exists=namespace is not None)
        timings["plan_seconds"] = round(time.monotonic() - started, 3)
        if self.result.get("canary_in_progress") and any(
            c["kind"] == "PodDisruptionBudget" and c["action"] == "prune" for c in changes
        ):
            self.module.warn(
                "Istio's gateway chart (method %s) renders no PodDisruptionBudget for the stable side's %s pod(s) "
                "during the canary, so it goes now; it comes back on the first run after gateway_canary promotes or "
                "rolls back (method manifest keeps it throughout)" % (method.name, render_params.get("replicas"))
            )
        if self.result.get("adopted"):
            self.module.warn(self._adopting)
        self.result["objects"] = [
            {"kind": c["kind"], "name": c["name"], "namespace": c["namespace"], "action": c["action"]} for c in changes
        ]
        if migrations:
            self.result["migrated"] = [
                dict(ownership.object_ref(m["live"]), **{"from": m["from"], "to": p["method"]}) for m in migrations
            ]
        pending = method.pending() if namespace is not None else []
        if pending:
            self.result["pending"] = pending
        needs_apply = bool(pending) or any(c["action"] in ("create", "update") for c in changes)
        prunes = [c for c in changes if c["action"] == "prune"]
        self.result["changed"] = (
            needs_apply
            or bool(prunes)
            or bool(migrations)
            or (namespace is None)
            or bool(self.result.get("namespace_fixed"))
        )
        if self.module._diff:
            self.result["diff"] = [object_diff(m["live"], m["after"]) for m in migrations] + [
                object_diff(c["live"], c["after"]) for c in changes if c["action"] != "none"
            ]

        if not self.check_mode:
            if namespace is None:
                self._create_namespace()
            # Move what the gateway owns under another method (or the legacy IstioOperator name) to this one
            # before the method applies, so that it neither refuses, prunes nor recreates what it finds.
            for migration in migrations:
                self._claim(method, migration["live"], dry_run=False)
        if needs_apply and not self.check_mode:
            started = time.monotonic()
            self._hand_replicas_over(live_deployment)
            method.apply(desired, changes)
            timings["install_seconds"] = round(time.monotonic() - started, 3)
        if prunes:
            # What the gateway owns and this method no longer renders: the previous method's leftovers, objects
            # an option switched off, or what an older istioctl applied (istioctl prunes only its own version's).
            # After the apply, so that a migration serves from the new objects before the old ones go.
            if p["wait"] and not self.check_mode:
                method.wait(p["wait_timeout"])
            ownership.delete_objects(self.kube, [c["live"] for c in prunes], check_mode=self.check_mode)
        self.result[method.name] = method.describe()

        if p["restart"]:
            self.result["changed"] = True
            self.result["restarted"] = True
            if not self.check_mode:
                self._restart(workload)

        after_revision = p.get("revision") or L.DEFAULT_REVISION
        self.result["revision"] = {"before": before_revision, "after": after_revision}
        # Converged runs wait too: an earlier run may have timed out (pods refused by a webhook, say), and a
        # run that reports ok must mean a gateway that serves. A ready Deployment costs one GET.
        if not self.check_mode and p["wait"]:
            started = time.monotonic()
            method.wait(p["wait_timeout"])
            timings["wait_seconds"] = round(time.monotonic() - started, 3)
        self.result.update(inventory.workload_status(self.kube, workload, p["namespace"]))
        return self.result

    def _keep_canary_split(self, live_deployment):
        """The parameters to render with: during a canary, the live replica count and HPA bounds (gateway_canary
        says what they are), so a scheduled reconcile never fights the split."""
        split = canary.live_split(self.kube, live_deployment)
        if split is None:
            return self.params
        adopted = dict(self.params, replicas=split["replicas"])
        if split.get("autoscaling"):
            adopted["autoscaling"] = split["autoscaling"]
        self.result["canary_in_progress"] = True
        self.module.warn(
            "a canary of %s/%s is in progress: kept its replica split (%s replicas%s); the options replicas and "
            "autoscaling apply again after gateway_canary promotes or rolls back"
            % (
                self.params["namespace"],
                self.params["name"],
                adopted["replicas"],
                ", HPA pinned" if split.get("autoscaling") else "",
            )
        )
        return adopted

    def _preflight_namespace(self, method):
        """The live namespace (None when missing); fails or fixes istio-injection=disabled for injected gateways."""
        p = self.params
        namespace = self.kube.get("v1", "Namespace", p["namespace"])
        if namespace is None:
            if not p["create_namespace"]:
                raise InputError(
                    "namespace: %r does not exist; create it first or set create_namespace: true" % p["namespace"]
                )
            return None
        if namespace["metadata"].get("deletionTimestamp"):
            raise InputError(
                "namespace: %r is being deleted (since %s) and takes no new objects; wait until it is gone, or find "
                "what holds it (kubectl get namespace %s -o yaml shows its conditions), then run again"
                % (p["namespace"], namespace["metadata"]["deletionTimestamp"], p["namespace"])
            )
        if method.injected and (namespace["metadata"].get("labels") or {}).get(L.INJECTION) == L.INJECTION_DISABLED:
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

    def _preflight_collisions(self, namespace, method, live_deployment):
        if namespace is None:
            return
        p = self.params
        method.check_collisions()
        if not method.injected:
            return
        if live_deployment is None:
            # A first install: not under the name of a Gateway API gateway the collection installed.
            gateway = self.kube.get(ownership.GATEWAY_API, "Gateway", p["name"], p["namespace"])
            if gateway is not None and ownership.owner_of(gateway, p["name"], p["namespace"]) == "gateway_api":
                raise InputError(
                    "method: gateway %s/%s is installed by method gateway_api (a Gateway API Gateway); method %s "
                    "installs another set of objects, so it cannot take this one over: remove it first "
                    "(istio_gateway state: absent), or give this gateway another name"
                    % (p["namespace"], p["name"], p["method"])
                )
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

    def _render(self, method, params, fresh=False):
        """What the method would apply, with its marks: only the owned kinds, in the gateway's namespace."""
        rendered = method.render(params, fresh=fresh)
        check_rendered(rendered, self.params["namespace"], method.name)
        return rendered

    def _plan(self, method, desired, namespace_exists):
        """(changes, migrations). One change per object: action create | update | prune | none, with the live
        and the planned object; one migration per object the gateway owns under another method (or the
        legacy IstioOperator name) that the render names, with the object as the claim leaves it.

        One LIST per owned kind yields the live objects the gateway owns by any method (ownership.py); only a
        desired object missing from it (not installed yet, or not this gateway's) is read by name, and refused
        unless it may be adopted. Nothing is written: claims are server-side dry runs here, so that check mode
        reports them and the comparison sees the object as it will be.
        """
        p = self.params
        kinds = ownership.kinds_of(method.name)
        owned = ownership.owned_objects(self.kube, p["name"], p["namespace"], kinds) if namespace_exists else []
        wanted = {(o["kind"], o["metadata"]["name"]) for o in desired}
        live_by_key = {}
        migrations = []
        for obj in owned:
            key = (obj["kind"], obj["metadata"]["name"])
            if key in wanted and not method.owns(obj):
                claimed = self._claim(method, obj, dry_run=True)
                migrations.append({"live": obj, "after": claimed, "from": ownership.installed_by(obj)})
                live_by_key[key] = claimed
            else:
                live_by_key[key] = obj
        foreign = []
        adopted_records = []
        for obj in desired:
            meta = obj["metadata"]
            key = (obj["kind"], meta["name"])
            if key not in live_by_key and namespace_exists:
                live = self.kube.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
                if live is not None:
                    foreign.append(live)
        # Refused before any dry run, so that the message names the owner, not a symptom of the clash.
        self._check_foreign(foreign, method)
        for release in sorted(
            {(o["metadata"].get("annotations") or {}).get(L.HELM_RELEASE_NAME) for o in foreign} - {None}
        ):
            if (method.name, release) != ("helm", p["name"]):
                # An adopted Helm release that this gateway's does not continue: its records go, so that no
                # `helm uninstall` deletes what the gateway now owns.
                adopted_records += ownership.helm_records(self.kube, release, p["namespace"])
        for live in foreign:
            # Adopted: claimed like a migration, so that a method that checks ownership itself (Helm) takes it.
            claimed = self._claim(method, live, dry_run=True)
            migrations.append({"live": live, "after": claimed, "from": ownership.installed_by(live) or "hand"})
            live_by_key[(live["kind"], live["metadata"]["name"])] = claimed
        changes = []
        for obj in desired:
            live = live_by_key.get((obj["kind"], obj["metadata"]["name"]))
            if live is None:
                after, action = obj, "create"
            else:
                after = self._dry_run(method, obj, live)
                action = "none" if strip_noise(after) == strip_noise(live) else "update"
            changes.append(_change(obj, action, live, after))
        for obj in owned:
            if (obj["kind"], obj["metadata"]["name"]) not in wanted:
                changes.append(_change(obj, "prune", obj, None))
        if namespace_exists:
            changes += [_change(obj, "prune", obj, None) for obj in method.stale(desired)]
        if namespace_exists and method.name in ("istioctl", "manifest"):
            # A release of the gateway's own that another method now replaces: its records go with it.
            records = ownership.release_records(self.kube, p["name"], p["namespace"], owned) if owned else []
            changes += [_change(r, "prune", r, None) for r in records]
        changes += [_change(r, "prune", r, None) for r in adopted_records]
        return changes, migrations

    def _dry_run(self, method, obj, live):
        try:
            return method.dry_run(obj)
        except Invalid as exc:
            if obj["kind"] == "Deployment" and "selector" in str(exc):
                raise InputError(
                    "method: %s would give Deployment %s/%s the selector %s, but it has %s and a selector cannot "
                    "change; keep method %s, or give the gateway labels both methods select the same way (%s)"
                    % (
                        method.name,
                        obj["metadata"]["namespace"],
                        obj["metadata"]["name"],
                        json.dumps(obj["spec"]["selector"].get("matchLabels"), sort_keys=True),
                        json.dumps((live["spec"].get("selector") or {}).get("matchLabels"), sort_keys=True),
                        ownership.installed_by(live),
                        exc,
                    )
                )
            raise

    def _check_foreign(self, foreign, method):
        """Objects in the way that the collection did not install for this gateway: refused, or adopted on request."""
        if not foreign:
            return
        if not self.params["adopt"]:
            # The Deployment first (what a user recognises), then the rest in the chart's order.
            ordered = sorted(foreign, key=lambda o: o["kind"] != "Deployment")
            first, others = ordered[0], ordered[1:]
            error = owners.refuse(
                first,
                "it has a name istio_gateway would install, and %s would write over it" % method.name,
                "remove it, give the gateway another name or namespace, or set adopt: true to take it over "
                "(it is then installed by method %s for this gateway)" % method.name,
            )
            if others:
                error.message += "; the same holds for " + "; ".join(
                    "%s %s (%s)" % (o["kind"], o["metadata"]["name"], owners.describe_owner(o)) for o in others
                )
                error.args = (error.message,)
            raise error
        self.result["adopted"] = [ownership.object_ref(obj) for obj in foreign]
        self._adopting = "adopt: taking over %s (%s); from now on method %s installs them for this gateway" % (
            ", ".join("%s %s" % (obj["kind"], obj["metadata"]["name"]) for obj in foreign),
            "; ".join(sorted({owners.describe_owner(obj) for obj in foreign})),
            method.name,
        )

    def _claim(self, method, obj, dry_run, attempts=3):
        """Move an object the gateway owns to `method`: a metadata-only merge patch guarded by the resourceVersion
        read, so the pod template (and the pods) stay as they are until the method applies.

        A controller's status update (an HPA's, a Deployment's) bumps the resourceVersion between the plan and
        the claim: then the object is read again and claimed anew, as long as it is the same object (uid) and
        what made it claimable holds (the gateway still owns it, or it was adopted); anything else fails.
        """
        meta = obj["metadata"]
        for attempt in range(attempts):
            try:
                return self.kube.patch(
                    obj["apiVersion"],
                    obj["kind"],
                    meta["name"],
                    meta["namespace"],
                    method.claim_patch(obj),
                    dry_run=dry_run,
                )
            except Conflict:
                fresh = self.kube.get(obj["apiVersion"], obj["kind"], meta["name"], meta["namespace"])
                still_ours = fresh is not None and fresh["metadata"].get("uid") == meta.get("uid")
                owner = ownership.owner_of(fresh, self.params["name"], self.params["namespace"]) if still_ours else None
                if not still_ours or (owner is None and not self.params["adopt"]) or attempt == attempts - 1:
                    raise
                obj, meta = fresh, fresh["metadata"]

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

    def _hand_replicas_over(self, live_deployment):
        """From fixed replicas to an autoscaler: an apply that no longer sets spec.replicas would reset the
        Deployment to 1 pod until the HPA scales it back. The count first goes to a field manager of its own (the
        ownership transfer Kubernetes documents for server-side apply), so it stays until the HPA changes it."""
        if live_deployment is None or not autoscaled(self.params) or "replicas" not in live_deployment["spec"]:
            return
        meta = live_deployment["metadata"]
        if self.kube.get("autoscaling/v2", "HorizontalPodAutoscaler", meta["name"], meta["namespace"]) is not None:
            return  # an HPA scales it already
        if field_owners(live_deployment, ("spec", "replicas")) == [L.REPLICAS_HANDOVER_MANAGER]:
            return
        self.kube.apply(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                "spec": {"replicas": live_deployment["spec"]["replicas"]},
            },
            field_manager=L.REPLICAS_HANDOVER_MANAGER,
        )

    def _restart(self, workload):
        try:
            self.kube.patch("apps/v1", "Deployment", workload, self.params["namespace"], restart_patch())
        except NotFound:
            raise InputError("restart: Deployment %s/%s does not exist yet" % (self.params["namespace"], workload))

    # -- state: absent ---------------------------------------------------
    def _absent(self):
        removed = ownership.remove_gateway(
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
    return inventory.revision_of(deployment)
