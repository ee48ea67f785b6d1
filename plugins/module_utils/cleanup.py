# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""gateway_cleanup: remove what one gateway owns, and only that; or, when confirmed, istioctl's full purge.

The seed ran `istioctl uninstall --purge` and `kubectl delete ns`: the first removes every Istio
object in the cluster whatever --istioNamespace says, the second deletes whatever else lives in the
namespace. Here the default removes exactly the gateway's objects (found through istioctl's owner
labels), its canary and, on request, its Gateway resources; the namespace goes only when the
collection created it and nothing else is left, or when the caller asks and no workload remains.
"""

from ansible_collections.istio_ops.gateways.plugins.module_utils import inventory, validate
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.args import (
    AUTH_ARG_SPEC,
    ISTIOCTL_ARG_SPEC,
    WAIT_ARG_SPEC,
    merge_specs,
)
from ansible_collections.istio_ops.gateways.plugins.module_utils.common import Manager
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import InputError
from ansible_collections.istio_ops.gateways.plugins.module_utils.istioctl import Istioctl, major_minor
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import NotFound

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

# What a namespace may hold, for deciding whether anything but the gateway is left in it.
WORKLOAD_KINDS = (
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "ReplicaSet"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("v1", "Pod"),
    ("v1", "Service"),
)
OTHER_CONTENT_KINDS = (
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "ServiceAccount"),
    ("v1", "PersistentVolumeClaim"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("networking.k8s.io/v1", "Ingress"),
)
ISTIO_CONTENT_KINDS = (
    (GATEWAY_API, "Gateway"),
    (GATEWAY_API, "VirtualService"),
    (GATEWAY_API, "DestinationRule"),
    (GATEWAY_API, "ServiceEntry"),
    ("security.istio.io/v1", "AuthorizationPolicy"),
)
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


def chart_object_names(name, revision):
    """{kind: name} of what Istio's gateway chart renders for one gateway (manifests/charts/gateways)."""
    names = dict.fromkeys(("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"), name)
    names.update(
        {
            "ServiceAccount": name + "-service-account",
            "Role": name + "-sds",
            "RoleBinding": name + "-sds",
            "NetworkPolicy": name if revision in (None, "", L.DEFAULT_REVISION) else "%s-%s" % (name, revision),
        }
    )
    return names


def ownership(deployment, name, namespace):
    """How the gateway was installed: ("collection" | "istioctl", owner label selector); raise if not ours to remove.

    istio_gateway gives each gateway an IstioOperator of its own (labels.iop_name), so its owner
    labels pick exactly this gateway. A hand-written IstioOperator may hold several gateways (and the
    control plane); then the selector adds the component, and the caller restricts to the chart's
    object names.
    """
    where = "%s/%s" % (namespace, name)
    labels = deployment["metadata"].get("labels") or {}
    if labels.get(L.CANARY_OF):
        raise InputError(
            "name: Deployment %s is the canary of gateway %r; give the stable gateway's name (its canary is removed "
            "with it), or end the canary with gateway_canary" % (where, labels[L.CANARY_OF])
        )
    iop = labels.get(L.OWNING_RESOURCE)
    if not iop:
        raise InputError(
            "name: Deployment %s carries no istioctl owner label (%s), so neither istioctl nor this collection "
            "installed it and its objects cannot be told apart from others; remove it with the tool that "
            "installed it (for example helm uninstall)" % (where, L.OWNING_RESOURCE)
        )
    component = labels.get(L.OPERATOR_COMPONENT)
    if component not in L.KIND_BY_COMPONENT:
        raise InputError(
            "name: Deployment %s is not a gateway (istioctl component %r); this module removes gateways only, and "
            "the control plane only with purge" % (where, component)
        )
    owner = {L.OWNING_RESOURCE: iop}
    iop_namespace = labels.get(L.OWNING_RESOURCE_NAMESPACE)
    if iop_namespace:
        owner[L.OWNING_RESOURCE_NAMESPACE] = iop_namespace
    if iop == L.iop_name(name, namespace):
        return "collection", owner
    owner[L.OPERATOR_COMPONENT] = component
    return "istioctl", owner


def gateway_targets(kube, name, namespace, gateway_configs=False):
    """(facts, objects): what cleanup removes for one gateway, canary and Gateway resources first."""
    deployment = kube.get("apps/v1", "Deployment", name, namespace)
    facts = {"name": name, "namespace": namespace, "found": deployment is not None, "installed_by": None}
    if deployment is None:
        # Leftovers of a collection gateway whose Deployment is already gone (an interrupted run).
        owned = inventory.owned_objects(kube, name, namespace)
        if owned:
            facts["installed_by"] = "collection"
    else:
        facts["installed_by"], owner = ownership(deployment, name, namespace)
        facts["owner"] = owner
        selector = L.selector_string(owner)
        names = chart_object_names(name, (deployment["metadata"].get("labels") or {}).get(L.REVISION))
        owned = []
        for api_version, kind in inventory.OWNED_KINDS:
            for obj in kube.list(api_version, kind, namespace, label_selector=selector):
                if facts["installed_by"] == "collection" or obj["metadata"]["name"] == names.get(kind):
                    owned.append(obj)
    objects = inventory.canary_objects(kube, name, namespace) + owned
    if gateway_configs and kube.has_api(GATEWAY_API):
        selector = L.selector_string({L.GATEWAY_OF: name, L.GATEWAY_NAMESPACE_OF: namespace})
        objects = kube.list(GATEWAY_API, "Gateway", label_selector=selector) + objects
    return facts, objects


def leftovers(objects, removed_keys):
    """Refs of what a namespace still holds besides what was removed and what is automatic.

    Objects with a controller (ReplicaSets, Pods, tokens) are left out: their owner speaks for them,
    whether it stays or was removed. So is anything already being deleted.
    """
    left = []
    for obj in objects:
        meta = obj["metadata"]
        if (obj["kind"], meta.get("namespace"), meta["name"]) in removed_keys:
            continue
        if (obj["kind"], meta["name"]) in AUTOMATIC:
            continue
        if (
            obj["kind"] == "ConfigMap"
            and (meta.get("labels") or {}).get(ISTIOD_DISTRIBUTED[0]) == ISTIOD_DISTRIBUTED[1]
        ):
            continue
        if meta.get("deletionTimestamp") or any(o.get("controller") for o in meta.get("ownerReferences") or []):
            continue
        if obj.get("type") == "kubernetes.io/service-account-token":
            continue
        left.append(inventory.object_ref(obj))
    return left


def namespace_decision(namespace_obj, left, workloads, params, holds_istiod):
    """(delete?, reason) for the gateway's namespace after removal. Pure, for unit tests."""
    name = params["namespace"]
    created = (namespace_obj["metadata"].get("annotations") or {}).get(L.CREATED_NAMESPACE) == "true"
    if name in SYSTEM_NAMESPACES:
        return False, "%r is a Kubernetes system namespace; it is never deleted" % name
    if holds_istiod:
        return False, "it holds an Istio control plane (istiod); only purge removes that"
    if params["force"]:
        return True, "force: true"
    if params["delete_namespace"]:
        if workloads:
            return False, "delete_namespace: true, but it still holds other workloads: %s" % _names(workloads)
        return True, "delete_namespace: true and no other workload is left"
    if not created:
        return False, (
            "this collection did not create it (no annotation %s); set delete_namespace: true to delete it when "
            "no other workload is left" % L.CREATED_NAMESPACE
        )
    if left:
        return False, "created by this collection, but it still holds: %s" % _names(left)
    return True, "created by this collection and nothing else is left in it"


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
    def __init__(self, module):
        super(GatewayCleanupManager, self).__init__(module)
        self._served_apis = {}

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
        removed_keys = set()
        if p.get("name"):
            facts, objects = gateway_targets(self.kube, p["name"], p["namespace"], p["gateway_configs"])
            self.result["gateway"] = facts
            removed = inventory.delete_objects(self.kube, objects, self.check_mode, timeout)
            self.result["removed"] += removed
            removed_keys = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects}
        if p["purge"]:
            removed_keys |= self._purge(istioctl, timeout, removed_keys)
        if p.get("namespace"):
            self.result["namespace"] = self._namespace(removed_keys, timeout)
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
        would take), so that nothing is reported twice. Returns the same triples for the purge.
        """
        before = {k: o for k, o in purge_inventory(self.kube).items() if (k[1], k[3], k[2]) not in already}
        purge = {"istioctl": {"path": istioctl.path, "version": istioctl.version(), "commands": istioctl.commands}}
        self.result["purge"] = purge
        if self.check_mode:
            # Dry-run deletes prove the permissions; custom resources would go with their CRD.
            custom = _custom_kinds(before)
            went = [k for k in before if _group_kind(k) in custom or self.kube.delete(*k, dry_run=True)]
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
            purge["remaining"] = [inventory.object_ref(before[k]) for k in left]
            went = [k for k in before if k not in left]
        self.result["removed"] += [inventory.object_ref(before[k]) for k in went]
        return {(k[1], k[3], k[2]) for k in went}

    def _namespace(self, removed_keys, timeout):
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
        workloads = leftovers(self._list(name, WORKLOAD_KINDS), removed_keys)
        others = self._list(name, OTHER_CONTENT_KINDS)
        for api_version, kind in ISTIO_CONTENT_KINDS:
            if self._served(api_version):
                others += self._list(name, [(api_version, kind)])
        left = workloads + leftovers(others, removed_keys)
        istiods = self.kube.list("apps/v1", "Deployment", name, label_selector="app=istiod")
        holds_istiod = any(not d["metadata"].get("deletionTimestamp") for d in istiods)
        delete, reason = namespace_decision(namespace, left, workloads, p, holds_istiod)
        facts["reason"] = reason
        facts["remaining"] = left
        if not delete:
            if p["delete_namespace"] and not p["force"]:
                self.module.warn("namespace %s was kept: %s" % (name, reason))
            return facts
        facts["deleted"] = self.kube.delete("v1", "Namespace", name, dry_run=self.check_mode)
        if facts["deleted"] and not self.check_mode and timeout:
            self.kube.wait_deleted([("v1", "Namespace", name, None)], timeout)
        return facts

    def _list(self, namespace, kinds):
        found = []
        for api_version, kind in kinds:
            try:
                found += self.kube.list(api_version, kind, namespace)
            except NotFound:  # a kind this cluster does not serve holds nothing
                continue
        return found

    def _served(self, api_version):
        if api_version not in self._served_apis:
            self._served_apis[api_version] = self.kube.has_api(api_version)
        return self._served_apis[api_version]


def _group_kind(key):
    return (key[0].rpartition("/")[0], key[1])


def _custom_kinds(inventory_map):
    """(group, kind) defined by the CRDs in a purge inventory: their objects go when the CRD goes."""
    return {
        (o["spec"]["group"], o["spec"]["names"]["kind"])
        for o in inventory_map.values()
        if o["kind"] == "CustomResourceDefinition"
    }
