# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""gateway_canary: a canary copy of a gateway Deployment on another revision, its split, promotion, rollback.

Traffic into a gateway comes from outside the mesh, so Istio cannot shift it: the
split follows the pods. In `replicas` mode both Deployments share the selector
labels and the gateway Service picks pods of both revisions; in `external` mode
each side gets its own Service and a load balancer or DNS shifts traffic.

Everything the canary changes on objects it does not own (the stable Deployment's
replicas and role label, its HPA's bounds, its Service's selector) is recorded in
a labels.STATE annotation on that object, written in the same request as the
change, so promote and rollback restore it exactly and an interrupted run
converges: every step recomputes its target from the live objects.
"""

import copy
import json

from ansible_collections.istio_ops.gateways.plugins.module_utils import (
    canary_gateway_api,
    control_plane,
    inventory,
    owners,
    ownership,
    validate,
)
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.args import AUTH_ARG_SPEC, WAIT_ARG_SPEC, merge_specs
from ansible_collections.istio_ops.gateways.plugins.module_utils.common import Manager
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import InputError
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import object_diff, ref, strip_noise

ARGUMENT_SPEC = merge_specs(
    AUTH_ARG_SPEC,
    WAIT_ARG_SPEC,
    dict(
        name=dict(type="str", required=True),
        namespace=dict(type="str", required=True),
        revision=dict(type="str"),
        canary_name=dict(type="str"),
        weight=dict(type="int"),
        total_replicas=dict(type="int"),
        stable_replicas=dict(type="int"),
        canary_replicas=dict(type="int"),
        mode=dict(type="str", default="replicas", choices=["replicas", "external"]),
        manage_hpa=dict(type="bool", default=True),
        adopt=dict(type="bool", default=False),
        istio_namespace=dict(type="str", default="istio-system"),
        state=dict(type="str", default="present", choices=["present", "promoted", "absent"]),
    ),
)
MODULE_KWARGS = dict(
    mutually_exclusive=[(a, b) for a in ("weight", "total_replicas") for b in ("stable_replicas", "canary_replicas")],
    required_together=[("stable_replicas", "canary_replicas")],
    required_if=[("state", "present", ("revision",)), ("state", "promoted", ("revision",))],
)

DEPLOYMENT = ("apps/v1", "Deployment")
SERVICE = ("v1", "Service")
HPA = ("autoscaling/v2", "HorizontalPodAutoscaler")


# -- pure helpers ------------------------------------------------------------
def check_inputs(params):
    """Every input error found without the cluster, at once."""
    p = params
    canary_name = p.get("canary_name") or p["name"] + "-canary"
    errors = [
        e
        for e in (
            validate.service_name("name", p["name"]),
            validate.dns1123_label("namespace", p["namespace"]),
            validate.service_name("canary_name", canary_name),
            validate.dns1123_label("revision", p["revision"]) if p.get("revision") else None,
            validate.dns1123_label("istio_namespace", p["istio_namespace"]),
        )
        if e
    ]
    if canary_name == p["name"]:
        errors.append("canary_name: %r is the stable gateway's own name; give the canary another name" % canary_name)
    weight = p.get("weight")
    if weight is not None and not 0 <= weight <= 100:
        errors.append("weight: %r is out of range; use a percentage from 0 to 100" % weight)
    if p.get("total_replicas") is not None and p["total_replicas"] < 1:
        errors.append("total_replicas: %r must be at least 1" % p["total_replicas"])
    for key in ("stable_replicas", "canary_replicas"):
        if p.get(key) is not None and p[key] < 0:
            errors.append("%s: %r is negative; use 0 or more" % (key, p[key]))
    if p.get("stable_replicas") == 0 and p.get("canary_replicas") == 0:
        errors.append("stable_replicas, canary_replicas: both are 0, which leaves the gateway without pods")
    if errors:
        raise InputError("; ".join(errors))
    return canary_name


def split_replicas(weight, total):
    """(stable, canary) pods for `weight` percent of `total` pods.

    canary = round-half-up(total * weight / 100), in integers so 0.5 never rounds to even;
    a weight from 1 to 99 keeps at least one pod on each side, so it needs total >= 2.
    """
    if not 0 <= weight <= 100:
        raise InputError("weight: %r is out of range; use a percentage from 0 to 100" % weight)
    if 0 < weight < 100 and total < 2:
        raise InputError(
            "weight: %s%% needs a pod on each side, so at least 2 replicas in all, but total_replicas is %s; "
            "raise total_replicas (or use weight 0 or 100)" % (weight, total)
        )
    canary = (total * weight * 2 + 100) // 200
    if 0 < weight < 100:
        canary = min(max(canary, 1), total - 1)
    return total - canary, canary


def plan_split(params, original):
    """{stable, canary, total, weight} from the parameters; `original` is the stable count before the canary."""
    if params.get("stable_replicas") is not None:
        stable, canary = params["stable_replicas"], params["canary_replicas"]
        total = stable + canary
        return {"stable": stable, "canary": canary, "total": total, "weight": (canary * 200 + total) // (2 * total)}
    weight = params.get("weight") or 0
    total = params.get("total_replicas") or original or 1
    stable, canary = split_replicas(weight, total)
    return {"stable": stable, "canary": canary, "total": total, "weight": weight}


def _count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _string_map(value):
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


# What gateway_canary records on each kind it changes: {key: (required, check, what it holds)}.
STATE_SHAPES = {
    "Deployment": {
        "replicas": (True, _count, "the stable replica count before the canary"),
        "canary": (False, lambda v: isinstance(v, str), "the canary Deployment's name"),
    },
    "HorizontalPodAutoscaler": {
        "minReplicas": (True, lambda v: v is None or _count(v), "the HPA's minReplicas before the canary"),
        "maxReplicas": (True, _count, "the HPA's maxReplicas before the canary"),
    },
    "Service": {"selector": (True, _string_map, "the Service's selector before the canary (labels)")},
}


def state_shape_problem(kind, state):
    """Why `state` is not what gateway_canary records on a `kind`, or None."""
    shape = STATE_SHAPES.get(kind)
    if shape is None:
        return None if isinstance(state, dict) else "it is not a JSON object"
    if not isinstance(state, dict):
        return "it is not a JSON object"
    problems = [
        "missing key %r" % key for key, (required, _c, _w) in sorted(shape.items()) if required and key not in state
    ]
    problems += ["unknown key %r" % key for key in sorted(state) if key not in shape]
    problems += [
        "%r is not %s" % (key, shape[key][2]) for key in sorted(state) if key in shape and not shape[key][1](state[key])
    ]
    return ", ".join(problems) or None


def _state_fix(obj):
    kind = obj.get("kind") or "object"
    meta = obj.get("metadata") or {}
    shape = STATE_SHAPES.get(kind) or {}
    expected = ", ".join("%s: %s" % (key, what) for key, (_r, _c, what) in sorted(shape.items()))
    return (
        "gateway_canary records {%s} there; restore the value it wrote, or set back by hand what it recorded and "
        "remove the annotation (kubectl annotate %s -n %s %s %s-), then roll the canary back with gateway_canary "
        "state: absent" % (expected, kind.lower(), meta.get("namespace"), meta.get("name"), L.STATE)
    )


def read_state(obj):
    """The canary state recorded on an object (labels.STATE annotation), or None.

    The one reader of that annotation: anything but what gateway_canary writes there (a JSON object with
    the keys of STATE_SHAPES for the object's kind) fails naming the object, the annotation and the fix.
    """
    text = ((obj or {}).get("metadata", {}).get("annotations") or {}).get(L.STATE)
    if not text:
        return None
    try:
        state = json.loads(text)
    except ValueError:
        raise InputError("annotation %s on %s is not JSON (%r); %s" % (L.STATE, ref(obj), text, _state_fix(obj)))
    problem = state_shape_problem(obj.get("kind"), state)
    if problem:
        raise InputError(
            "annotation %s on %s is not a state gateway_canary wrote (%r: %s); %s"
            % (L.STATE, ref(obj), text, problem, _state_fix(obj))
        )
    return state


def live_split(kube, stable):
    """During a canary of the gateway whose live Deployment is `stable`: {"replicas": the stable's live count,
    "autoscaling": its HPA's live bounds or None}; None when no canary is in progress. For istio_gateway, so
    that a reconcile renders the split instead of fighting it; the state annotation is read here only."""
    if stable is None or read_state(stable) is None:
        return None
    meta = stable["metadata"]
    hpa = kube.get(*HPA, name=meta["name"], namespace=meta["namespace"])
    bounds = None
    if hpa is not None:
        bounds = {"enabled": True, "min": hpa["spec"].get("minReplicas"), "max": hpa["spec"]["maxReplicas"]}
    return {"replicas": stable["spec"].get("replicas"), "autoscaling": bounds}


def state_patch(state, spec):
    """A merge patch of `spec` that records `state` in the STATE annotation (None removes it)."""
    return {"metadata": {"annotations": {L.STATE: json.dumps(state, sort_keys=True) if state else None}}, "spec": spec}


def apply_merge_patch(target, patch):
    """RFC 7386 merge patch applied locally: tells whether a patch would change anything.

    Maps left empty are dropped, as the API server omits them (an emptied `annotations`).
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        merged = None if value is None else apply_merge_patch(result.get(key), value)
        if merged is None or merged == {}:
            result.pop(key, None)
        else:
            result[key] = merged
    return result


def canary_deployment(stable, canary_name, revision, replicas, role=None):
    """The canary: the live stable Deployment with another name, revision, replicas and the canary mark.

    the install methods' marks are dropped so that no method prunes or claims the copy;
    server-owned fields are dropped by building the object from metadata essentials and spec.
    """
    meta = stable["metadata"]
    spec = copy.deepcopy(stable["spec"])
    spec["replicas"] = replicas
    spec.pop("paused", None)
    selector = spec.get("selector", {}).get("matchLabels") or {}
    template_meta = spec["template"].setdefault("metadata", {})
    template_meta.pop("creationTimestamp", None)
    pod_labels = {
        k: v for k, v in (template_meta.get("labels") or {}).items() if k not in L.METHOD_MARK_KEYS or k in selector
    }
    pod_labels[L.REVISION] = revision
    pod_labels.pop(L.ROLE, None)
    if role:
        pod_labels[L.ROLE] = role
    template_meta["labels"] = pod_labels
    if L.REVISION in (template_meta.get("annotations") or {}):
        template_meta["annotations"][L.REVISION] = revision
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in L.METHOD_MARK_KEYS}
    labels.update({L.REVISION: revision, L.CANARY_OF: meta["name"]})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": canary_name, "namespace": meta["namespace"], "labels": labels},
        "spec": spec,
    }


def stable_present_patch(stable, canary_name, original, replicas, role=None):
    """Merge patch of the stable Deployment during a canary: its share of pods, its role label, the state."""
    state = dict(read_state(stable) or {}, canary=canary_name, replicas=original)
    return state_patch(state, {"replicas": replicas, "template": {"metadata": {"labels": {L.ROLE: role}}}})


def stable_promote_patch(stable, revision, replicas):
    """Merge patch moving the stable Deployment to `revision` (a rolling restart) and ending the canary state."""
    template_meta = {"labels": {L.REVISION: revision, L.ROLE: None}}
    if L.REVISION in (stable["spec"]["template"].get("metadata", {}).get("annotations") or {}):
        template_meta["annotations"] = {L.REVISION: revision}
    patch = state_patch(None, {"replicas": replicas, "template": {"metadata": template_meta}})
    patch["metadata"]["labels"] = {L.REVISION: revision}
    return patch


def hpa_pin_patch(hpa, replicas):
    """Pin an HPA to min = max = replicas (at least 1: an HPA whose target has 0 replicas stands still)."""
    spec = hpa.get("spec", {})
    state = read_state(hpa) or {"minReplicas": spec.get("minReplicas", 1), "maxReplicas": spec.get("maxReplicas")}
    return state_patch(state, {"minReplicas": max(replicas, 1), "maxReplicas": max(replicas, 1)})


def hpa_restore_patch(hpa):
    state = read_state(hpa)
    if state is None:
        return None
    return state_patch(None, {"minReplicas": state["minReplicas"], "maxReplicas": state["maxReplicas"]})


def service_narrow_patch(svc):
    """The stable Service selects only stable pods (external mode); the original selector is recorded."""
    state = read_state(svc) or {"selector": svc["spec"].get("selector") or {}}
    return state_patch(state, {"selector": {L.ROLE: "stable"}})


def service_restore_patch(svc):
    state = read_state(svc)
    if state is None:
        return None
    current = svc["spec"].get("selector") or {}
    selector = {k: None for k in current if k not in state["selector"]}
    selector.update(state["selector"])
    return state_patch(None, {"selector": selector})


def canary_service(svc, canary_name, stable_name):
    """The canary's own Service (external mode): the stable Service's type, ports and annotations, canary pods.

    Cluster IPs, node ports and load balancer IPs are left to the server: they cannot be shared.
    """
    state = read_state(svc)
    selector = dict(state["selector"] if state else svc["spec"].get("selector") or {})
    selector[L.ROLE] = "canary"
    spec = svc["spec"]
    ports = []
    for port in spec.get("ports", []):
        ports.append({k: port[k] for k in ("name", "port", "targetPort", "protocol", "appProtocol") if k in port})
    meta = svc["metadata"]
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in L.METHOD_MARK_KEYS}
    labels[L.CANARY_OF] = stable_name
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if k not in (L.STATE, "kubectl.kubernetes.io/last-applied-configuration")
    }
    out_spec = {"type": spec.get("type", "ClusterIP"), "selector": selector, "ports": ports}
    if spec.get("type") in ("NodePort", "LoadBalancer") and spec.get("externalTrafficPolicy"):
        out_spec["externalTrafficPolicy"] = spec["externalTrafficPolicy"]
    metadata = {"name": canary_name, "namespace": meta["namespace"], "labels": labels}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": out_spec}


def endpoints_match(actual, expected):
    """Whether ready endpoints per revision equal `expected` ({revision: count}; absent = 0)."""
    revisions = set(actual) | set(expected)
    return all((actual.get(r) or {}).get("ready", 0) == expected.get(r, 0) for r in revisions)


# -- the manager ---------------------------------------------------------------
class GatewayCanaryManager(Manager):
    def run(self):
        p = self.params
        self.canary_name = check_inputs(p)
        self.ns = p["namespace"]
        self.diffs = []
        self.actions = []
        self.hpa_action = "none"
        self.deleted = []
        stable = self.kube.get(*DEPLOYMENT, name=p["name"], namespace=self.ns)
        if stable is None:
            gateway = self.kube.get(ownership.GATEWAY_API, "Gateway", p["name"], self.ns)
            if gateway is not None:
                return canary_gateway_api.GatewayApiCanary(self, gateway).run()
        self._load(stable)
        self._preflight()
        {"present": self._present, "promoted": self._promote, "absent": self._rollback}[p["state"]]()
        return self._report()

    # -- reading and checking, before any write ------------------------------
    def _load(self, stable):
        p = self.params
        self.stable = stable
        if self.stable is None:
            raise InputError(
                "name: no gateway Deployment %r in namespace %r; install it first (istio_ops.gateways.istio_gateway) "
                "or give the name and namespace of an existing gateway" % (p["name"], self.ns)
            )
        self.service = self.kube.get(*SERVICE, name=p["name"], namespace=self.ns)
        self.canary = self.kube.get(*DEPLOYMENT, name=self.canary_name, namespace=self.ns)
        self.canary_svc = self.kube.get(*SERVICE, name=self.canary_name, namespace=self.ns)
        target = {"kind": "Deployment", "name": p["name"]}
        self.hpas = [
            h
            for h in self.kube.list(*HPA, namespace=self.ns)
            if {k: h["spec"]["scaleTargetRef"].get(k) for k in target} == target
        ]
        self.hpa = self.hpas[0] if self.hpas else None
        self.stable_revision = inventory.revision_of(self.stable)
        self.live_canary_revision = inventory.revision_of(self.canary) if self.canary else None

    def _preflight(self):
        p = self.params
        for obj in (self.stable, self.hpa, self.service):
            read_state(obj)  # every recorded state is checked before the first write: a bad one stops the run here
        errors = []
        mark = "%s=%s" % (L.CANARY_OF, p["name"])
        owner = (self.stable["metadata"].get("labels") or {}).get(L.CANARY_OF)
        if owner:
            errors.append("name: %r is the canary of gateway %r; name the stable gateway" % (p["name"], owner))
        elif (self.stable["metadata"].get("labels") or {}).get(ownership.GATEWAY_NAME_LABEL):
            errors.append(
                "name: Deployment %r in %r is what istiod deployed for Gateway API Gateway %r; istiod owns it, so "
                "give the Gateway's name"
                % (p["name"], self.ns, self.stable["metadata"]["labels"][ownership.GATEWAY_NAME_LABEL])
            )
        elif not inventory.is_gateway(self.stable):
            # Never split, annotate or copy another team's workload because of a wrong name.
            errors.append(
                "name: Deployment %r in %r is not an Istio gateway (no istioctl gateway component label, no pod "
                "annotation %s=gateway); give the name of a gateway Deployment"
                % (p["name"], self.ns, L.INJECT_TEMPLATES)
            )
        elif ownership.owner_of(self.stable, p["name"], self.ns) is None and not p["adopt"]:
            raise owners.refuse(
                self.stable,
                "gateway_canary changes a gateway's Deployment, HPA and Service, and the collection did not install "
                "this one",
                "install it with istio_ops.gateways.istio_gateway (adopt: true takes it over), or set adopt: true "
                "to run the canary on it as it is",
            )
        for kind, obj in (("Deployment", self.canary), ("Service", self.canary_svc)):
            if obj is not None and (obj["metadata"].get("labels") or {}).get(L.CANARY_OF) != p["name"]:
                errors.append(
                    "canary_name: a %s %r exists in %r that is not a canary of %r (no label %s); choose another "
                    "canary_name" % (kind, self.canary_name, self.ns, p["name"], mark)
                )
        others = [
            d["metadata"]["name"]
            for d in self.kube.list(*DEPLOYMENT, namespace=self.ns, label_selector=mark)
            if d["metadata"]["name"] != self.canary_name
        ]
        if others:
            errors.append(
                "canary_name: gateway %r already has canary %s; promote or roll it back first, or set canary_name "
                "to it" % (p["name"], ", ".join(sorted(others)))
            )
        if len(self.hpas) > 1:
            errors.append(
                "name: HPAs %s all scale Deployment %r; keep one"
                % (", ".join(sorted(h["metadata"]["name"] for h in self.hpas)), p["name"])
            )
        if p["state"] != "absent":
            self.result["control_plane"] = control_plane.find(self.kube, p["revision"], p["istio_namespace"])
        if p["state"] == "present":
            errors += self._preflight_present()
        elif p["state"] == "promoted":
            errors += self._preflight_promote()
        if errors:
            raise InputError("; ".join(errors))

    def _preflight_present(self):
        p = self.params
        errors = []
        if p["revision"] == self.stable_revision:
            errors.append(
                "revision: the stable gateway %r already runs revision %r; a canary needs another revision"
                % (p["name"], p["revision"])
            )
        if L.REVISION in (self.stable["spec"].get("selector", {}).get("matchLabels") or {}):
            errors.append(
                "name: the selector of %r includes %s, so pods of another revision cannot share its Service; "
                "upgrade it in place with istio_ops.gateways.istio_gateway instead" % (p["name"], L.REVISION)
            )
        if p["mode"] == "external" and self.service is None:
            errors.append(
                "mode: external needs the gateway Service %r in %r to copy and narrow, and there is none"
                % (p["name"], self.ns)
            )
        if self.hpa is not None and not p["manage_hpa"]:
            errors.append(
                "manage_hpa: HPA %r scales %r and would override the replica split; set manage_hpa: true to pin it "
                "during the canary, or remove the HPA (autoscaling.enabled: false in istio_gateway)"
                % (self.hpa["metadata"]["name"], p["name"])
            )
        try:
            self.split = plan_split(p, self._original_replicas())
        except InputError as exc:
            errors.append(exc.message)
        return errors

    def _preflight_promote(self):
        p = self.params
        if self.canary is None:
            if self.stable_revision == p["revision"]:
                return []  # promoted already; later steps only finish what an interrupted run left
            return [
                "state: promoted needs the canary Deployment %r of %r, and there is none (the stable runs revision "
                "%r); create it with state: present first" % (self.canary_name, p["name"], self.stable_revision)
            ]
        if inventory.revision_of(self.canary) != p["revision"]:
            return [
                "revision: the canary %r runs revision %r, not %r; promote it with revision: %s"
                % (
                    self.canary_name,
                    inventory.revision_of(self.canary),
                    p["revision"],
                    inventory.revision_of(self.canary),
                )
            ]
        return []

    def _original_replicas(self):
        """The stable replica count before the canary began (recorded), else the live one."""
        state = read_state(self.stable) or {}
        return state.get("replicas", self.stable["spec"].get("replicas", 1))

    # -- state: present ---------------------------------------------------------
    def _present(self):
        p = self.params
        external = p["mode"] == "external"
        role = "stable" if external else None
        stable_n, canary_n = self.split["stable"], self.split["canary"]
        canary_now = self.canary["spec"].get("replicas", 0) if self.canary else 0
        original = self._original_replicas()
        if not external:
            # Widen the stable Service before the pods lose their role labels, so none drops out.
            self._restore_service()
            self._delete(self.canary_svc, "delete canary Service")
            self.canary_svc = None
        # 1. The stable side grows now but shrinks only once the canary serves; in external mode its pods
        # are labelled and its Service narrowed before any canary pod exists, so that address never
        # reaches the canary.
        current = self.stable["spec"].get("replicas") or 0
        first = max(stable_n, current)
        if stable_n > current or (self.stable["spec"]["template"]["metadata"].get("labels") or {}).get(L.ROLE) != role:
            self._update_stable(stable_present_patch(self.stable, self.canary_name, original, first, role), first)
        if external or canary_n < canary_now:
            self._wait_rollout(p["name"], always=True)
        if external:
            self.service = self._patch(self.service, service_narrow_patch(self.service), "narrow stable Service")
        # 2. The canary, ready before the stable gives up pods.
        desired = canary_deployment(
            self.stable, self.canary_name, p["revision"], canary_n, "canary" if external else None
        )
        self.canary = self._apply(desired, self.canary, "apply canary Deployment")
        if external:
            svc = canary_service(self.service, self.canary_name, p["name"])
            self.canary_svc = self._apply(svc, self.canary_svc, "apply canary Service")
        if stable_n < first:
            self._wait_rollout(self.canary_name, always=True)
        # 3. The stable side's share.
        self._update_stable(stable_present_patch(self.stable, self.canary_name, original, stable_n, role), stable_n)
        if p["wait"]:
            self._wait_rollout(self.canary_name)
            self._wait_rollout(p["name"])
            rev, name = p["revision"], p["name"]
            expected = {name: {self.stable_revision: stable_n}, self.canary_name: {rev: canary_n}}
            self._wait_endpoints(expected if external else {name: {self.stable_revision: stable_n, rev: canary_n}})

    def _update_stable(self, patch, replicas):
        """Pin the HPA to `replicas` first (it would otherwise scale back), then patch the stable."""
        if self.hpa is not None:
            before = self.hpa
            self.hpa = self._patch(self.hpa, hpa_pin_patch(self.hpa, replicas), "pin stable HPA")
            if self.hpa is not before:
                self.hpa_action = "pinned"
        self.stable = self._patch(self.stable, patch, "update stable Deployment")

    # -- state: promoted ----------------------------------------------------------
    def _promote(self):
        p = self.params
        final = p.get("total_replicas") or self._original_replicas()
        hpa_state = read_state(self.hpa) if self.hpa is not None else None
        if hpa_state:
            # The restored HPA would clamp the count anyway; clamping here keeps the waits truthful.
            final = min(max(final, hpa_state["minReplicas"] or 1), hpa_state["maxReplicas"])
        if self.canary is not None:
            # The canary carries the whole load before the stable rolls, so capacity never drops.
            size = max(self.canary["spec"].get("replicas", 0), final)
            self.canary = self._patch(self.canary, {"spec": {"replicas": size}}, "scale canary to carry the gateway")
            self._wait_rollout(self.canary_name, always=True)
        self._restore_service()
        self._restore_hpa()
        self.stable = self._patch(
            self.stable, stable_promote_patch(self.stable, p["revision"], final), "move stable to the new revision"
        )
        if self.canary is not None:
            self._wait_rollout(p["name"], always=True)
        self._delete(self.canary, "delete canary Deployment")
        self._delete(self.canary_svc, "delete canary Service")
        self.split = {"stable": final, "canary": 0, "total": final, "weight": 0}
        if p["wait"]:
            self._wait_rollout(p["name"])
            self._wait_gone()
            self._wait_endpoints({p["name"]: {p["revision"]: final}})
        if self.result["changed"] and (self.stable["metadata"].get("labels") or {}).get(L.OWNING_RESOURCE):
            self.module.warn(
                "gateway %s/%s now runs revision %s, but the IstioOperator it was installed with still names the "
                "old one: run istio_ops.gateways.istio_gateway with revision: %s and the istioctl of that revision "
                "(binary_path), otherwise its next run moves the gateway back"
                % (self.ns, p["name"], p["revision"], p["revision"])
            )

    # -- state: absent (rollback) -------------------------------------------------
    def _rollback(self):
        p = self.params
        state = read_state(self.stable)
        self._restore_hpa()
        if state is not None:
            patch = state_patch(None, {"replicas": state["replicas"]})
            self.stable = self._patch(self.stable, patch, "restore stable replicas")
        final = self.stable["spec"].get("replicas", 1)
        if self.canary is not None:
            # The stable side is back at full strength before the canary goes.
            self._wait_rollout(p["name"], always=True)
        self._delete(self.canary, "delete canary Deployment")
        self._delete(self.canary_svc, "delete canary Service")
        self._restore_service()
        # External mode labelled the stable pods; removing the label is a rolling restart.
        self.stable = self._patch(
            self.stable, {"spec": {"template": {"metadata": {"labels": {L.ROLE: None}}}}}, "remove stable role label"
        )
        self.split = {"stable": final, "canary": 0, "total": final, "weight": 0}
        if p["wait"]:
            self._wait_rollout(p["name"])
            self._wait_gone()
            self._wait_endpoints({p["name"]: {self.stable_revision: final}})

    # -- restoring what a canary changed ----------------------------------------
    def _restore_hpa(self):
        if self.hpa is not None:
            before = self.hpa
            self.hpa = self._patch(self.hpa, hpa_restore_patch(self.hpa), "restore stable HPA")
            if self.hpa is not before:
                self.hpa_action = "restored"

    def _restore_service(self):
        if self.service is not None:
            self.service = self._patch(self.service, service_restore_patch(self.service), "restore stable Service")

    # -- writes: each records its diff; check mode dry-runs on the server ------------
    def _patch(self, obj, patch, action):
        if obj is None or not patch or apply_merge_patch(obj, patch) == obj:
            return obj
        api_version, kind = obj["apiVersion"], obj["kind"]
        after = self.kube.patch(api_version, kind, obj["metadata"]["name"], self.ns, patch, dry_run=self.check_mode)
        after.setdefault("apiVersion", api_version)
        after.setdefault("kind", kind)
        self._record(obj, after, action)
        return after

    def _apply(self, desired, live, action):
        if live is None:
            after = self.kube.apply(desired, dry_run=self.check_mode)
        else:
            after = self.kube.apply(desired, dry_run=True)
            if strip_noise(after) == strip_noise(live):
                return live
            if not self.check_mode:
                after = self.kube.apply(desired)
        self._record(live, after, action)
        return after

    def _delete(self, obj, action):
        if obj is None:
            return
        meta = obj["metadata"]
        if self.kube.delete(obj["apiVersion"], obj["kind"], meta["name"], self.ns, dry_run=self.check_mode):
            self._record(obj, None, action)
            self.deleted.append((obj["apiVersion"], obj["kind"], meta["name"], self.ns))

    def _record(self, before, after, action):
        self.result["changed"] = True
        self.actions.append("%s %s" % (action, ref(before or after)))
        if self.module._diff:
            self.diffs.append(object_diff(before, after))

    # -- waiting -----------------------------------------------------------------
    def _wait_rollout(self, name, always=False):
        """Wait for a rollout. Steps that keep capacity up wait whatever `wait` says (`always`)."""
        if self.check_mode or not (always or self.params["wait"]):
            return
        if self.kube.get(*DEPLOYMENT, name=name, namespace=self.ns) is not None:
            self.kube.wait_rollout(name, self.ns, self.params["wait_timeout"])

    def _wait_gone(self):
        if not self.check_mode and self.deleted:
            self.kube.wait_deleted(self.deleted, self.params["wait_timeout"])

    def _wait_endpoints(self, expected):
        if self.check_mode:
            return

        def check():
            seen = {svc: inventory.endpoints_by_revision(self.kube, svc, self.ns) for svc in sorted(expected)}
            done = all(endpoints_match(seen[svc], expected[svc]) for svc in expected)
            ready = {svc: {rev: e["ready"] for rev, e in eps.items()} for svc, eps in seen.items()}
            return done, "ready endpoints by revision %s, expected %s" % (ready, expected)

        self.kube.wait("endpoints of Service(s) %s" % ", ".join(sorted(expected)), check, self.params["wait_timeout"])

    # -- result --------------------------------------------------------------------
    def _report(self):
        p = self.params
        if not self.check_mode:
            self.stable = self.kube.get(*DEPLOYMENT, name=p["name"], namespace=self.ns)
            self.canary = self.kube.get(*DEPLOYMENT, name=self.canary_name, namespace=self.ns)
            self.service = self.kube.get(*SERVICE, name=p["name"], namespace=self.ns)
            self.canary_svc = self.kube.get(*SERVICE, name=self.canary_name, namespace=self.ns)
            self.hpa = self.kube.get(*HPA, name=self.hpa["metadata"]["name"], namespace=self.ns) if self.hpa else None
        elif p["state"] != "present":
            self.canary = self.canary_svc = None  # deleted, on the server's dry-run word
        stable = inventory.deployment_summary(self.stable)
        counts = ("replicas", "ready_replicas", "available_replicas", "updated_replicas")
        canary = inventory.deployment_summary(self.canary) or dict(
            dict.fromkeys(counts, 0), name=self.canary_name, revision=None
        )
        canary["exists"] = self.canary is not None
        services = {
            "stable": inventory.service_report(self.kube, self.service),
            "canary": inventory.service_report(self.kube, self.canary_svc),
        }
        stable_eps = (services["stable"] or {}).get("endpoints_by_revision") or {}
        canary_eps = services["canary"]["endpoints_by_revision"] if services["canary"] else stable_eps
        # Check mode reports the planned objects but the live endpoints, which carry the live revisions.
        revisions = (stable["revision"], canary["revision"] if canary["exists"] else None)
        if self.check_mode:
            revisions = (self.stable_revision, self.live_canary_revision)
        ready_stable = (stable_eps.get(revisions[0]) or {}).get("ready", 0)
        ready_canary = (canary_eps.get(revisions[1]) or {}).get("ready", 0) if revisions[1] else 0
        split = dict(self.split)
        split["ready"] = {"stable": ready_stable, "canary": ready_canary}
        split["effective_weight"] = (
            round(100.0 * ready_canary / (ready_stable + ready_canary), 1) if ready_stable + ready_canary else None
        )
        hpa = inventory.hpa_summary(self.hpa) if self.hpa is not None else None
        if hpa is not None:
            state = read_state(self.hpa) or {}
            original = {"min_replicas": state.get("minReplicas"), "max_replicas": state.get("maxReplicas")}
            hpa.update(original=original if state else None, pinned=bool(state), action=self.hpa_action)
        self.result.update(
            {
                "state": p["state"],
                "mode": p["mode"],
                "stable": stable,
                "canary": canary,
                "split": split,
                "endpoints_by_revision": stable_eps,
                "hpa": {"stable": hpa, "canary": None},
                "services": services,
                "actions": self.actions,
            }
        )
        if self.module._diff:
            self.result["diff"] = self.diffs
        return self.result
