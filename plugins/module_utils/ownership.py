# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a gateway owns, whatever installed it; and the one removal routine.

The one definition, used by istio_gateway (plan, prune, state=absent) and gateway_cleanup. An object is a
gateway's when the marks of the method that applied it say so: istioctl's owner labels naming the gateway's
IstioOperator (current or legacy name), a Helm release named after the gateway plus the collection's
INSTALLED_* labels, or the manifest method's labels. Canary objects carry CANARY_OF and are the canary's.
"""

from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import NotFound

# The kinds a gateway owns, in delete order: config and scaling first, the Deployment last, so that a run cut
# short is retried with the Deployment (and the marks on it) still there to say what belongs to the gateway.
OWNED_KINDS = (
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("v1", "Service"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("v1", "ServiceAccount"),
    ("apps/v1", "Deployment"),
)
# A Gateway API gateway is a Gateway and its parameters ConfigMap (method gateway_api); istiod's deployment
# controller makes the Deployment, Service, ServiceAccount, HPA and PDB, owned by the Gateway (ownerReferences),
# and the garbage collector removes them with it. In delete order: the Gateway first, so that istiod never
# re-renders it without its parameters.
GATEWAY_API = "gateway.networking.k8s.io/v1"
GATEWAY_API_KINDS = ((GATEWAY_API, "Gateway"), ("v1", "ConfigMap"))
DEPLOYED_KINDS = (
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("apps/v1", "Deployment"),
)
MANAGED_SELECTOR = "%s=%s" % (L.MANAGED_BY, L.MANAGED_BY_VALUE)
# The label istiod's deployment controller puts on everything it deploys for a Gateway.
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
# Kinds gateway_canary creates for a canary.
CANARY_KINDS = (("apps/v1", "Deployment"), ("v1", "Service"), ("autoscaling/v2", "HorizontalPodAutoscaler"))
HELM_RECORD = ("v1", "Secret")
# gateway_config's Gateway resources go first, the Helm release records after everything they describe.
# A Gateway API gateway's ConfigMap right after its Gateway.
DELETE_ORDER = ("Gateway", "ConfigMap") + tuple(kind for _api, kind in OWNED_KINDS) + ("Secret",)

METHODS = ("istioctl", "helm", "manifest", "gateway_api")
# The methods that install a gateway as workload objects named after it (the istio API's gateways).
WORKLOAD_METHODS = METHODS[:3]
# The methods whose marks are the collection's labels alone (no installer stamps anything of its own).
LABELLED_METHODS = ("manifest", "gateway_api")


def kinds_of(method):
    """The table of kinds `method` owns for a gateway, in delete order."""
    return GATEWAY_API_KINDS if method == "gateway_api" else OWNED_KINDS


def parameters_name(name):
    """The parameters ConfigMap of Gateway API gateway `name` (a fixed suffix keeps the name injective)."""
    return name + "-gateway-params"


def object_names(method, name, revision):
    """{kind: name} of what `method` applies for gateway `name` (Istio's gateway charts name them so)."""
    if method == "gateway_api":
        return {"Gateway": name, "ConfigMap": parameters_name(name)}
    names = dict.fromkeys(("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"), name)
    account = name + "-service-account"
    # Istio's Helm chart names the Role and RoleBinding after the ServiceAccount; its istioctl chart, "-sds".
    role = account if method == "helm" else name + "-sds"
    names.update(
        {
            "ServiceAccount": account,
            "Role": role,
            "RoleBinding": role,
            "NetworkPolicy": name if revision in (None, "", L.DEFAULT_REVISION) else "%s-%s" % (name, revision),
        }
    )
    return names


def installed_by(obj):
    """The method whose marks obj carries, for whichever gateway: istioctl | helm | manifest | None."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(L.OWNING_RESOURCE):
        return "istioctl"
    if (meta.get("annotations") or {}).get(L.HELM_RELEASE_NAME):
        return "helm"
    if labels.get(L.INSTALLED_BY) in LABELLED_METHODS and labels.get(L.MANAGED_BY) == L.MANAGED_BY_VALUE:
        return labels[L.INSTALLED_BY]
    return None


def owner_of(obj, name, namespace):
    """The method by which the collection installed obj for gateway namespace/name, or None when it did not."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(L.CANARY_OF) or meta.get("namespace") != namespace:
        return None
    method = installed_by(obj)
    if method == "istioctl":
        # An IstioOperator of the collection's name (current or legacy `ns-gw`) may also have been written by
        # hand and hold other gateways: under it, only the chart's objects of this gateway count.
        ours = labels[L.OWNING_RESOURCE] in L.owner_names(name, namespace)
        gateway = labels.get(L.OPERATOR_COMPONENT) in L.KIND_BY_COMPONENT
        return method if ours and gateway and _named_for(obj, method, name) else None
    if method is None:
        return None
    marked = all(labels.get(key) == value for key, value in method_marks(method, name).items())
    if method == "helm":
        annotations = meta.get("annotations") or {}
        marked = marked and (annotations.get(L.HELM_RELEASE_NAME), annotations.get(L.HELM_RELEASE_NAMESPACE)) == (
            name,
            namespace,
        )
    return method if marked and _named_for(obj, method, name) else None


def method_marks(method, name):
    """The collection's labels on what the helm, manifest or gateway_api method installs for gateway `name` (the
    namespace is the object's): the one definition, rendered by the methods and read by owner_of."""
    marks = {L.INSTALLED_BY: method, L.INSTALLED_FOR: name}
    if method in LABELLED_METHODS:
        marks[L.MANAGED_BY] = L.MANAGED_BY_VALUE  # Helm's own managed-by=Helm stays on the helm method's
    return marks


def _named_for(obj, method, name):
    revision = (obj["metadata"].get("labels") or {}).get(L.REVISION)
    if obj.get("apiVersion") and (obj["apiVersion"], obj["kind"]) not in kinds_of(method):
        return False  # an istio-API Gateway (gateway_config's) is no Gateway API gateway's, and the other way round
    return obj["metadata"]["name"] == object_names(method, name, revision).get(obj["kind"])


def owned_objects(kube, name, namespace, kinds=OWNED_KINDS):
    """The live objects the collection installed for gateway namespace/name, by any method of the kinds table
    (one LIST per kind); none of a kind the API server does not serve (the Gateway API CRDs missing)."""
    found = []
    for api_version, kind in kinds:
        try:
            items = kube.list(api_version, kind, namespace)
        except NotFound:
            if api_version == GATEWAY_API:
                continue
            raise
        found += [o for o in items if owner_of(o, name, namespace)]
    return found


def deployed_objects(kube, gateway):
    """What istiod deployed for a live Gateway API Gateway: objects labelled with its name and owned by its uid."""
    meta = gateway["metadata"]
    selector = "%s=%s" % (GATEWAY_NAME_LABEL, meta["name"])
    found = []
    for api_version, kind in DEPLOYED_KINDS:
        found += [
            o
            for o in kube.list(api_version, kind, meta["namespace"], label_selector=selector)
            if any(ref.get("uid") == meta.get("uid") for ref in o["metadata"].get("ownerReferences") or [])
        ]
    return found


def canary_objects(kube, name, namespace):
    """Objects gateway_canary made for this gateway (Deployment, Service, HPA; a Gateway API gateway's canary
    Gateway)."""
    selector = "%s=%s" % (L.CANARY_OF, name)
    found = []
    for api_version, kind in CANARY_KINDS:
        found += kube.list(api_version, kind, namespace, label_selector=selector)
    try:
        # gateway_canary's own: a Gateway carrying canary-of alone (made by hand) is not the collection's.
        found += kube.list(GATEWAY_API, "Gateway", namespace, label_selector=selector + "," + MANAGED_SELECTOR)
    except NotFound:  # no Gateway API CRDs
        pass
    return found


def helm_records(kube, release, namespace):
    """The release record Secrets of Helm release namespace/release."""
    selector = L.selector_string({L.HELM_RECORD_OWNER[0]: L.HELM_RECORD_OWNER[1], L.HELM_RECORD_NAME: release})
    return kube.list(HELM_RECORD[0], HELM_RECORD[1], namespace, label_selector=selector)


def release_records(kube, name, namespace, owned):
    """The records of the gateway's Helm release when the release is the collection's: some of the gateway's
    objects `owned` are Helm's, or none is left and the records carry the collection's labels (an interrupted
    removal). One LIST, made only then."""
    if owned and not any(owner_of(o, name, namespace) == "helm" for o in owned):
        return []
    return [r for r in helm_records(kube, name, namespace) if owned or _record_is_ours(r, name)]


def gateway_objects(kube, name, namespace):
    """Everything the collection installed for one gateway: its objects by any method, its canary, the records
    of its Helm release (release_records), and a Gateway API gateway of the same name."""
    owned = owned_objects(kube, name, namespace)
    records = release_records(kube, name, namespace, owned)
    return (
        canary_objects(kube, name, namespace)
        + owned
        + records
        + owned_objects(kube, name, namespace, GATEWAY_API_KINDS)
    )


def _record_is_ours(record, name):
    labels = record["metadata"].get("labels") or {}
    return labels.get(L.INSTALLED_BY) == "helm" and labels.get(L.INSTALLED_FOR) == name


def object_ref(obj):
    """{kind, namespace, name} of an object, as module results list them."""
    meta = obj["metadata"]
    return {"kind": obj["kind"], "namespace": meta.get("namespace"), "name": meta["name"]}


def delete_objects(kube, objects, check_mode=False, wait_timeout=0):
    """The one removal routine: delete objects (server-side dry-run in check mode); return the refs deleted.

    An object that is already being deleted (deletionTimestamp set) is awaited but not reported again,
    so a rerun after `wait: false` reports no change. Each delete carries the uid and resourceVersion of
    the object as it was read for the decision (preconditions): one replaced or changed since is not
    deleted, and the run fails with Conflict. With a wait, a Gateway API Gateway's removal waits for what istiod
    deployed for it too.
    """
    removed = []
    awaited = []
    seen = set()
    rank = {kind: index for index, kind in enumerate(DELETE_ORDER)}
    for obj in sorted(objects, key=lambda o: rank.get(o["kind"], -1)):
        meta = obj["metadata"]
        key = (obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        if key in seen:
            continue
        seen.add(key)
        if meta.get("deletionTimestamp"):
            awaited.append(key)
        elif kube.delete(key[0], key[1], key[2], key[3], dry_run=check_mode, read=obj):
            removed.append(object_ref(obj))
            awaited.append(key)
    if not check_mode and wait_timeout:
        kube.wait_deleted(awaited, wait_timeout)
        gateways = [o for o in objects if (o["apiVersion"], o["kind"]) == GATEWAY_API_KINDS[0]]
        _wait_undeployed(kube, gateways, wait_timeout)
    return removed


def remove_gateway(kube, name, namespace, check_mode=False, wait_timeout=0):
    """Delete what the collection installed for this gateway, by any method, and its canary; return refs."""
    return delete_objects(kube, gateway_objects(kube, name, namespace), check_mode, wait_timeout)


def _wait_undeployed(kube, gateways, timeout):
    """Wait until the garbage collector has removed what istiod deployed for the (deleted) Gateways."""
    for gateway in gateways:
        meta = gateway["metadata"]

        def check(gateway=gateway):
            left = deployed_objects(kube, gateway)
            return (not left, "still present: " + ", ".join("%s %s" % (o["kind"], o["metadata"]["name"]) for o in left))

        where = "%s/%s" % (meta["namespace"], meta["name"])
        kube.wait("the garbage collector to remove what istiod deployed for Gateway %s" % where, check, timeout)
