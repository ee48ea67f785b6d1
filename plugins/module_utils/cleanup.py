# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""gateway_cleanup: remove what one gateway owns, and only that; or, when confirmed, istioctl's full purge.

The seed ran `istioctl uninstall --purge` and `kubectl delete ns`: the first removes every Istio
object in the cluster whatever --istioNamespace says, the second deletes whatever else lives in the
namespace. Here the default removes exactly the gateway's objects (found through istioctl's owner
labels), its canary and, on request, its Gateway resources; the namespace goes only when the
collection created it and nothing else is left, or when the caller asks and no workload remains.
"""

from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils import owners, ownership, validate
from ansible_collections.istio_ops.gateways.plugins.module_utils.args import (
    AUTH_ARG_SPEC,
    ISTIOCTL_ARG_SPEC,
    WAIT_ARG_SPEC,
    merge_specs,
)
from ansible_collections.istio_ops.gateways.plugins.module_utils.common import Manager
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import InputError
from ansible_collections.istio_ops.gateways.plugins.module_utils.istioctl import Istioctl, major_minor
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import K8sError, NotFound

# A sentence, not a boolean: `true` slips through templating and copy-paste far too easily.
PURGE_CONFIRMATION = "I understand this removes every Istio component in the cluster"

ARGUMENT_SPEC = merge_specs(
    AUTH_ARG_SPEC,
    WAIT_ARG_SPEC,
    ISTIOCTL_ARG_SPEC,
    dict(
        name=dict(type="str"),
        namespace=dict(type="str"),
        gateway_configs=dict(type="bool", default=False),
        delete_namespace=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
        purge=dict(type="bool", default=False),
        confirm_purge=dict(type="str"),
        adopt=dict(type="bool", default=False),
    ),
)
MODULE_KWARGS = dict(
    required_if=[("purge", False, ("name", "namespace"))],
    required_by={"name": "namespace"},
)

GATEWAY_API = "networking.istio.io/v1"
# Kubernetes refuses to delete some of these and needs all of them; never try.
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

# What `istioctl uninstall --purge` deletes (operator/pkg/uninstall: NamespacedResources and
# AllClusterResources), cluster-wide, selected by the existence of the component label.
PURGE_KINDS = (
    ("apps/v1", "Deployment"),
    ("apps/v1", "DaemonSet"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "Pod"),
    ("v1", "Secret"),
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("policy/v1", "PodDisruptionBudget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("networking.istio.io/v1alpha3", "EnvoyFilter"),
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition"),
)

# What a namespace holds is found by discovery (every namespaced kind the server lists). These groups
# and kinds are left out: views of other objects (metrics) and events say nothing about what lives there.
UNCOUNTED_GROUPS = ("metrics.k8s.io", "custom.metrics.k8s.io", "external.metrics.k8s.io", "events.k8s.io")
UNCOUNTED_KINDS = (("v1", "Event"),)
# Data the collection never creates: a namespace holding any goes only with force.
DATA_KINDS = ("PersistentVolumeClaim", "Secret")
SERVICE_ACCOUNT_NAME = "kubernetes.io/service-account.name"
# Objects Kubernetes and istiod put in every namespace; they say nothing about what lives there.
AUTOMATIC = {
    ("ConfigMap", "kube-root-ca.crt"),
    ("ConfigMap", "istio-ca-root-cert"),
    ("ConfigMap", "istio-ca-crl"),
    ("ServiceAccount", "default"),
}
# istiod's namespace controller labels the ConfigMaps it copies into every namespace (names are configurable).
ISTIOD_DISTRIBUTED = ("istio.io/config", "true")


def check_inputs(params):
    """Every input error at once, before the cluster is touched."""
    errors = []
    if params.get("name"):
        errors.append(validate.service_name("name", params["name"]))
    if params.get("namespace"):
        errors.append(validate.dns1123_label("namespace", params["namespace"]))
    if params["purge"] and params.get("confirm_purge") != PURGE_CONFIRMATION:
        errors.append(
            "confirm_purge: purge: true runs `istioctl uninstall --purge`, which removes every Istio object in the "
            "cluster (the control plane of every revision, every gateway, the webhooks and the CRDs with all Istio "
            "configuration), whatever name and namespace say; to go ahead set confirm_purge: %r, or drop purge to "
            "remove only this gateway" % PURGE_CONFIRMATION
        )
    errors = [e for e in errors if e]
    if errors:
        raise InputError("; ".join(errors))


def foreign_gateway(deployment, name, namespace, adopt):
    """(installed_by, objects selector) of a gateway Deployment the collection did not install; raise unless
    `adopt` and its installer's marks say which objects belong to it.

    A gateway installed by hand with istioctl (a hand-written IstioOperator, which may hold several gateways)
    is selected by its owner labels and component, restricted to the chart's object names for this gateway; one
    installed by hand with Helm, by its release. One with no installer's marks cannot be told apart from the
    objects around it and is refused even with adopt.
    """
    where = "%s/%s" % (namespace, name)
    labels = deployment["metadata"].get("labels") or {}
    if labels.get(L.CANARY_OF):
        raise InputError(
            "name: Deployment %s is the canary of gateway %r; give the stable gateway's name (its canary is removed "
            "with it), or end the canary with gateway_canary" % (where, labels[L.CANARY_OF])
        )
    method = ownership.installed_by(deployment)
    if method is None or method == "manifest":
        raise owners.refuse(
            deployment,
            "no installer's marks say which objects belong to it, so they cannot be told apart from others",
            "remove it with the tool or the files that made it",
        )
    if method == "istioctl" and labels.get(L.OPERATOR_COMPONENT) not in L.KIND_BY_COMPONENT:
        raise InputError(
            "name: Deployment %s is not a gateway (istioctl component %r); this module removes gateways only, and "
            "the control plane only with purge" % (where, labels.get(L.OPERATOR_COMPONENT))
        )
    if not adopt:
        raise owners.refuse(
            deployment,
            "gateway_cleanup removes only gateways the collection installed",
            "remove it with the tool that installed it, or set adopt: true to remove it and what its installer's "
            "marks say belongs to it",
        )
    if method == "istioctl":
        # The component is part of the selector: an IstioOperator's name is the only mark istioctl puts on what
        # it applies, and a hand-written one may hold several gateways.
        owner = {L.OWNING_RESOURCE: labels[L.OWNING_RESOURCE], L.OPERATOR_COMPONENT: labels[L.OPERATOR_COMPONENT]}
        if labels.get(L.OWNING_RESOURCE_NAMESPACE):
            owner[L.OWNING_RESOURCE_NAMESPACE] = labels[L.OWNING_RESOURCE_NAMESPACE]
        return method, owner
    annotations = deployment["metadata"].get("annotations") or {}
    return method, {L.HELM_RELEASE_NAME: annotations[L.HELM_RELEASE_NAME]}


def gateway_targets(kube, name, namespace, gateway_configs=False, adopt=False):
    """(facts, objects): what cleanup removes for one gateway, canary and Gateway resources first."""
    deployment = kube.get("apps/v1", "Deployment", name, namespace)
    facts = {"name": name, "namespace": namespace, "found": deployment is not None, "installed_by": None}
    objects = ownership.gateway_objects(kube, name, namespace)
    if deployment is not None and ownership.owner_of(deployment, name, namespace) is None:
        facts["installed_by"], owner = foreign_gateway(deployment, name, namespace, adopt)
        facts["owner"] = owner
        facts["adopted"] = True
        objects += _foreign_objects(kube, facts["installed_by"], owner, deployment, name, namespace)
    elif any(o["kind"] != "Secret" and not (o["metadata"].get("labels") or {}).get(L.CANARY_OF) for o in objects):
        facts["installed_by"] = "collection"
        if deployment is not None:
            facts["method"] = ownership.owner_of(deployment, name, namespace)
        elif any(ownership.installed_by(o) == "gateway_api" for o in objects):
            facts["found"], facts["method"] = True, "gateway_api"
    if gateway_configs and kube.has_api(GATEWAY_API):
        selector = L.selector_string(
            {L.GATEWAY_OF: name, L.GATEWAY_NAMESPACE_OF: namespace, L.MANAGED_BY: L.MANAGED_BY_VALUE}
        )
        objects = kube.list(GATEWAY_API, "Gateway", label_selector=selector) + objects
    return facts, objects


def _foreign_objects(kube, method, owner, deployment, name, namespace):
    """The objects an adopted foreign gateway's installer marks as its: those of the chart's names for this gateway
    with the same istioctl owner labels and component, or every object (and record) of the same Helm release."""
    revision = (deployment["metadata"].get("labels") or {}).get(L.REVISION)
    names = ownership.object_names(method, name, revision)
    release = {L.HELM_RELEASE_NAME: owner.get(L.HELM_RELEASE_NAME), L.HELM_RELEASE_NAMESPACE: namespace}
    found = []
    for api_version, kind in ownership.OWNED_KINDS:
        if method == "istioctl":
            candidates = kube.list(api_version, kind, namespace, label_selector=L.selector_string(owner))
            found += [o for o in candidates if o["metadata"]["name"] == names.get(kind)]
        else:
            # Helm's annotations name the release of each object exactly (whatever the release named them).
            found += [
                o
                for o in kube.list(api_version, kind, namespace)
                if all((o["metadata"].get("annotations") or {}).get(k) == v for k, v in release.items())
            ]
    if method == "helm":
        found += ownership.helm_records(kube, owner[L.HELM_RELEASE_NAME], namespace)
    return found


def _uid(obj):
    return (obj.get("metadata") or {}).get("uid")


def _group(api_version):
    return (api_version or "").rpartition("/")[0]


def _triple(obj):
    meta = obj["metadata"]
    return (obj["kind"], meta.get("namespace"), meta["name"])


def automatic(obj, removed_accounts=()):
    """Whether Kubernetes or istiod put obj in the namespace by itself (or it goes with a removed object)."""
    meta = obj["metadata"]
    if (obj["kind"], meta["name"]) in AUTOMATIC:
        return True
    if obj["kind"] == "ConfigMap" and (meta.get("labels") or {}).get(ISTIOD_DISTRIBUTED[0]) == ISTIOD_DISTRIBUTED[1]:
        return True
    if obj["kind"] == "Secret" and obj.get("type") == "kubernetes.io/service-account-token":
        # A legacy token of the default ServiceAccount, or of one being removed (the token controller deletes it).
        account = (meta.get("annotations") or {}).get(SERVICE_ACCOUNT_NAME)
        return account == "default" or account in removed_accounts
    return False


def leftovers(objects, removed, listed_kinds=()):
    """Refs of what counts among `objects` (everything the namespace holds), after `removed` goes.

    Not counted: what is removed (`removed`, the objects removed or in check mode to be removed, by uid
    or kind/namespace/name), what is being deleted, what Kubernetes and istiod put in every namespace
    (automatic()), a Service's Endpoints (the Service speaks for them), and objects every owner
    (ownerReference) of which is removed, not counted itself, or gone: of a kind in `listed_kinds` ((group,
    kind) listed in full) yet not among `objects`, so the garbage collector removes the object. An owner
    of a kind that was not listed (cluster-scoped, or not listable) keeps its objects counted.
    """
    removed_uids = {_uid(o) for o in removed if _uid(o)}
    removed_keys = {_triple(o) for o in removed}
    removed_accounts = {o["metadata"]["name"] for o in removed if o["kind"] == "ServiceAccount"}
    by_uid = {_uid(o): o for o in objects if _uid(o)}
    services = {o["metadata"]["name"] for o in objects if o["kind"] == "Service"}
    services |= {o["metadata"]["name"] for o in removed if o["kind"] == "Service"}
    memo = {}

    def counts(obj):
        key = _uid(obj) or id(obj)
        if key not in memo:
            memo[key] = True  # an ownership cycle (Kubernetes never makes one) counts
            memo[key] = own_counts(obj)
        return memo[key]

    def own_counts(obj):
        meta = obj["metadata"]
        if _uid(obj) in removed_uids or _triple(obj) in removed_keys:
            return False
        if meta.get("deletionTimestamp") or automatic(obj, removed_accounts):
            return False
        if obj["kind"] == "Endpoints" and meta["name"] in services:
            return False
        refs = meta.get("ownerReferences") or []
        return not refs or any(owner_counts(ref) for ref in refs)

    def owner_counts(ref):
        if ref.get("uid") in removed_uids:
            return False
        owner = by_uid.get(ref.get("uid"))
        if owner is not None:
            return counts(owner)
        return (_group(ref.get("apiVersion")), ref.get("kind")) not in listed_kinds

    left = [ownership.object_ref(o) for o in objects if counts(o)]
    return sorted(left, key=lambda r: (r["kind"], r["name"]))


def namespace_decision(namespace_obj, left, params, holds_istiod, gateway_missing=False, unlisted=()):
    """(delete?, reason) for the gateway's namespace after removal. Pure, for unit tests.

    `left` is what counts in it (leftovers()), `gateway_missing` that a gateway was named but nothing of it
    was found (a typo deletes nothing; with force, only a namespace the collection created goes), `unlisted`
    the kinds that could not be listed.
    """
    name = params["namespace"]
    created = (namespace_obj["metadata"].get("annotations") or {}).get(L.CREATED_NAMESPACE) == "true"
    if name in SYSTEM_NAMESPACES:
        return False, "%r is a Kubernetes system namespace; it is never deleted" % name
    if holds_istiod:
        return False, "it holds an Istio control plane (istiod); only purge removes that"
    # A typo deletes nothing, not even with force; but a namespace this collection created may still go with
    # force once its gateway is gone (an earlier cleanup may have kept it, e.g. for kinds it could not list).
    if gateway_missing and not (params["force"] and created):
        return False, (
            "nothing of gateway %r was found in it, so nothing was removed and the namespace is kept whatever "
            "delete_namespace says; check name (a typo?); force: true deletes it only if this collection created "
            "it, else delete it by hand if the gateway is gone already" % params["name"]
        )
    if params["force"]:
        return True, "force: true"
    if unlisted:
        return False, (
            "what it holds could not all be listed (%s), so it cannot be told empty; give the identity list on "
            "those, or set force: true to delete it whatever it holds" % "; ".join(unlisted[:10])
        )
    data = [r for r in left if r["kind"] in DATA_KINDS]
    if data:
        return False, (
            "it holds data this collection did not create: %s; set force: true to delete it with the namespace"
            % _names(data)
        )
    if not created and not params["delete_namespace"]:
        return False, (
            "this collection did not create it (no annotation %s); set delete_namespace: true to delete it when "
            "nothing else is left in it" % L.CREATED_NAMESPACE
        )
    why = "delete_namespace: true" if params["delete_namespace"] else "created by this collection"
    if left:
        return False, "%s, but it still holds: %s; set force: true to delete it whatever it holds" % (why, _names(left))
    return True, "%s and nothing else is left in it" % why


def _names(refs):
    shown = ", ".join("%s %s" % (r["kind"], r["name"]) for r in refs[:20])
    return shown + (" and %d more" % (len(refs) - 20) if len(refs) > 20 else "")


def _key(obj):
    meta = obj["metadata"]
    return (obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))


def purge_inventory(kube):
    """{key: object} of what `istioctl uninstall --purge` removes, plus the custom resources of the CRDs it deletes."""
    found = {}
    for api_version, kind in PURGE_KINDS:
        try:
            items = kube.list(api_version, kind, label_selector=L.OPERATOR_COMPONENT)
        except NotFound:  # the API is not served (no Istio CRDs, no Multus): nothing of that kind
            continue
        found.update((_key(o), o) for o in items)
    for crd in [o for o in found.values() if o["kind"] == "CustomResourceDefinition"]:
        spec = crd["spec"]
        stored = [v["name"] for v in spec.get("versions", []) if v.get("storage")] or ["v1"]
        try:
            items = kube.list(spec["group"] + "/" + stored[0], spec["names"]["kind"])
        except NotFound:  # the CRD is already being deleted
            continue
        found.update((_key(o), o) for o in items)
    return found


def istiod_versions(kube):
    """Versions of every istiod in the cluster (istioctl's version label, else the image tag)."""
    versions = []
    for dep in kube.list("apps/v1", "Deployment", label_selector="app=istiod"):
        version = (dep["metadata"].get("labels") or {}).get(L.OPERATOR_VERSION)
        images = [c.get("image", "") for c in dep["spec"]["template"]["spec"].get("containers", [])]
        tags = [i.rsplit(":", 1)[1] for i in images if ":" in i.rsplit("/", 1)[-1]]
        version = version or (tags[0] if tags else None)
        if version:
            versions.append((dep["metadata"]["namespace"], dep["metadata"]["name"], version))
    return versions


def purge_version_problem(istioctl_version, versions):
    """An error when istioctl is older than an istiod: it may not know every kind the newer one installed."""
    mine = major_minor(istioctl_version)
    newer = [v for v in versions if mine and major_minor(v[2]) and major_minor(v[2]) > mine]
    if not newer:
        return None
    return (
        "binary_path: istioctl %s is older than the control plane %s (version %s); purge with the newest istioctl "
        "(binary_path), or set skip_version_check: true" % (istioctl_version, "%s/%s" % newer[0][:2], newer[0][2])
    )


class GatewayCleanupManager(Manager):
    def run(self):
        p = self.params
        check_inputs(p)
        if p.get("confirm_purge") and not p["purge"]:
            self.module.warn("confirm_purge is ignored without purge: true")
        self.result["removed"] = []
        timeout = p["wait_timeout"] if p["wait"] else 0
        istioctl = None
        if p["purge"]:
            istioctl = Istioctl(self.module, self.kube, p.get("binary_path"))
            if not p["skip_version_check"]:
                problem = purge_version_problem(istioctl.version(), istiod_versions(self.kube))
                if problem:
                    raise InputError(problem)
        removed = []  # the objects removed (in check mode, to be removed), as they were read
        if p.get("name"):
            facts, removed = gateway_targets(self.kube, p["name"], p["namespace"], p["gateway_configs"], p["adopt"])
            self.result["gateway"] = facts
            self.result["removed"] += ownership.delete_objects(self.kube, removed, self.check_mode, timeout)
        # A gateway name that matches nothing (a typo) deletes nothing, its namespace included.
        gateway_missing = bool(p.get("name")) and not removed
        if p["purge"]:
            removed = removed + self._purge(istioctl, timeout, {_triple(o) for o in removed})
        if p.get("namespace"):
            self.result["namespace"] = self._namespace(removed, timeout, gateway_missing)
        self.result["changed"] = bool(self.result["removed"]) or self.result.get("namespace", {}).get("deleted", False)
        if self.module._diff:
            lines = ["%s %s/%s" % (r["kind"], r.get("namespace") or "", r["name"]) for r in self.result["removed"]]
            if self.result.get("namespace", {}).get("deleted"):
                lines.append("Namespace %s" % p["namespace"])
            self.result["diff"] = {
                "before_header": "objects removed",
                "after_header": "objects removed",
                "before": "".join(line + "\n" for line in lines),
                "after": "",
            }
        return self.result

    def partial_result(self):
        return {k: v for k, v in self.result.items() if k in ("changed", "removed", "gateway", "namespace", "purge")}

    def _purge(self, istioctl, timeout, already):
        """Run `istioctl uninstall --purge -y` when there is anything to purge; report what went.

        `already` holds (kind, namespace, name) of what the gateway removal took (or, in check mode,
        would take), so that nothing is reported twice. Returns the objects the purge removed (would remove).
        """
        before = {k: o for k, o in purge_inventory(self.kube).items() if (k[1], k[3], k[2]) not in already}
        purge = {"istioctl": {"path": istioctl.path, "version": istioctl.version(), "commands": istioctl.commands}}
        self.result["purge"] = purge
        if self.check_mode:
            # Dry-run deletes prove the permissions; custom resources would go with their CRD.
            custom = _custom_kinds(before)
            went = [k for k in before if _group_kind(k) in custom or self.kube.delete(*k, dry_run=True, read=before[k])]
            purge["remaining"] = []
        else:
            if before:
                istioctl.uninstall(purge=True)

            def check():
                pending = [k for k in purge_inventory(self.kube) if k in before]
                return (not pending, "%d Istio objects still present" % len(pending))

            if before and timeout:
                self.kube.wait("the purge", check, timeout)
            after = purge_inventory(self.kube)
            # Without waiting, an object the API server is deleting counts as removed.
            left = [k for k in before if k in after and not after[k]["metadata"].get("deletionTimestamp")]
            purge["remaining"] = [ownership.object_ref(before[k]) for k in left]
            went = [k for k in before if k not in left]
        self.result["removed"] += [ownership.object_ref(before[k]) for k in went]
        return [before[k] for k in went]

    def _namespace(self, removed, timeout, gateway_missing=False):
        p = self.params
        name = p["namespace"]
        facts = {"name": name, "deleted": False, "created_by_collection": False, "remaining": []}
        namespace = self.kube.get("v1", "Namespace", name)
        if namespace is None:
            facts["reason"] = "it does not exist"
            return facts
        facts["created_by_collection"] = (namespace["metadata"].get("annotations") or {}).get(
            L.CREATED_NAMESPACE
        ) == "true"
        if namespace["metadata"].get("deletionTimestamp"):
            facts["reason"] = "it is already being deleted"
            if not self.check_mode and timeout:
                self.kube.wait_deleted([("v1", "Namespace", name, None)], timeout)
            return facts
        objects, listed, unlisted = self._contents(name)
        left = leftovers(objects, removed, listed)
        istiods = self.kube.list("apps/v1", "Deployment", name, label_selector="app=istiod")
        holds_istiod = any(not d["metadata"].get("deletionTimestamp") for d in istiods)
        delete, reason = namespace_decision(namespace, left, p, holds_istiod, gateway_missing, unlisted)
        facts["reason"] = reason
        facts["remaining"] = left
        if not delete:
            if p["delete_namespace"] or p["force"]:
                self.module.warn("namespace %s was kept: %s" % (name, reason))
            return facts
        facts["deleted"] = self.kube.delete("v1", "Namespace", name, dry_run=self.check_mode, read=namespace)
        if facts["deleted"] and not self.check_mode and timeout:
            self.kube.wait_deleted([("v1", "Namespace", name, None)], timeout)
        return facts

    def _contents(self, namespace):
        """(objects, listed, unlisted): everything the namespace holds, of every namespaced kind discovery finds.

        `listed` holds the (group, kind) listed in full, `unlisted` what could not be listed (refused, failing).
        """
        kinds, failures = self.kube.discover_namespaced_kinds(skip_groups=UNCOUNTED_GROUPS)
        unlisted = ["API %s: %s" % failure for failure in failures]
        objects, listed = [], set()
        for api_version, kind in kinds:
            if (api_version, kind) in UNCOUNTED_KINDS or _group(api_version) in UNCOUNTED_GROUPS:
                continue
            try:
                objects += self.kube.list(api_version, kind, namespace)
            except NotFound:  # its API went away meanwhile (a CRD deleted): it holds nothing
                pass
            except K8sError as exc:
                unlisted.append("%s %s: %s" % (kind, api_version, exc))
                continue
            listed.add((_group(api_version), kind))
        return objects, listed, unlisted


def _group_kind(key):
    return (key[0].rpartition("/")[0], key[1])


def _custom_kinds(inventory_map):
    """(group, kind) defined by the CRDs in a purge inventory: their objects go when the CRD goes."""
    return {
        (o["spec"]["group"], o["spec"]["names"]["kind"])
        for o in inventory_map.values()
        if o["kind"] == "CustomResourceDefinition"
    }
