# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one label and annotation vocabulary of the collection.

Istio's own keys come from istioctl (operator/pkg/manifest/name.go and
install.getOwnerLabels); the collection's keys mark what it created, so that
cleanup removes exactly that and nothing else.
"""

import hashlib

# istioctl owner labels, stamped on every object `istioctl install` applies.
OWNING_RESOURCE = "install.operator.istio.io/owning-resource"
OWNING_RESOURCE_NAMESPACE = "install.operator.istio.io/owning-resource-namespace"
OPERATOR_MANAGED = "operator.istio.io/managed"
OPERATOR_MANAGED_VALUE = "Reconcile"
OPERATOR_VERSION = "operator.istio.io/version"
OPERATOR_COMPONENT = "operator.istio.io/component"

# istioctl's ownership marks; a canary copy drops them so istioctl never prunes or claims it.
OWNER_LABEL_KEYS = (OWNING_RESOURCE, OWNING_RESOURCE_NAMESPACE, OPERATOR_MANAGED, OPERATOR_VERSION, OPERATOR_COMPONENT)

# istioctl component names (operator/pkg/component) per gateway kind.
COMPONENT_BY_KIND = {"ingress": "IngressGateways", "egress": "EgressGateways"}
KIND_BY_COMPONENT = {v: k for k, v in COMPONENT_BY_KIND.items()}

# Revision and injection vocabulary.
REVISION = "istio.io/rev"
DEFAULT_REVISION = "default"
INJECTION = "istio-injection"
INJECTION_DISABLED = "disabled"
INJECTION_ENABLED = "enabled"
# Pod annotation the injector writes: JSON whose "revision" names the istiod that injected the pod.
INJECTION_STATUS = "sidecar.istio.io/status"
INJECT_TEMPLATES = "inject.istio.io/templates"
SIDECAR_INJECT = "sidecar.istio.io/inject"
ISTIO_TAG = "istio.io/tag"

# Field manager istioctl uses for server-side apply (operator/pkg/install).
ISTIOCTL_FIELD_MANAGER = "istio-operator"
# Field manager for the collection's own writes.
FIELD_MANAGER = "istio_ops.gateways"
# Field manager that holds a Deployment's replica count while an autoscaler takes it over (gateway.py).
REPLICAS_HANDOVER_MANAGER = "istio_ops.gateways-replicas-handover"

# Pod-template annotation `kubectl rollout restart` sets.
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"

# The collection's own marks.
_PREFIX = "gateways.istio-ops.io/"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "istio_ops.gateways"
CREATED_NAMESPACE = _PREFIX + "created-by-collection"  # annotation on a namespace it created
CANARY_OF = _PREFIX + "canary-of"  # label on canary Deployment/Service/HPA: the stable name
ROLE = _PREFIX + "role"  # label: "stable" or "canary" (external mode pod split)
GATEWAY_OF = _PREFIX + "gateway"  # label on Gateway resources made by gateway_config
# Its companion: gateway names repeat across namespaces (istio-ingressgateway), so cleanup needs both.
GATEWAY_NAMESPACE_OF = _PREFIX + "gateway-namespace"
STATE = _PREFIX + "state"  # annotation: JSON of what a canary changed, restored on promote/rollback
# Marks of the helm and manifest install methods on each object they apply for a gateway (istioctl's owner
# labels name the IstioOperator instead): the method, and the gateway's name (the namespace is the object's).
INSTALLED_BY = _PREFIX + "installed-by"
INSTALLED_FOR = _PREFIX + "installed-for"

# Helm's ownership marks (pkg/action/validate.go): a release adopts an existing object only when they name it.
HELM_RELEASE_NAME = "meta.helm.sh/release-name"
HELM_RELEASE_NAMESPACE = "meta.helm.sh/release-namespace"
HELM_MANAGED_BY_VALUE = "Helm"
# Helm's release records: Secrets sh.helm.release.v1.<release>.v<N> labelled owner=helm, name=<release>.
HELM_RECORD_OWNER = ("owner", "helm")
HELM_RECORD_NAME = "name"
# Every install method's marks on an object's labels; a canary copy drops them so no method prunes or claims it.
METHOD_MARK_KEYS = OWNER_LABEL_KEYS + (INSTALLED_BY, INSTALLED_FOR)


# IstioOperator names: "<namespace>.<gateway>" (one dot) when that fits in a label value; else
# "<namespace prefix>.<gateway prefix>.<hash>" (two dots). Neither part can hold a '.', so the short form
# is injective and never equals a long one; the legacy form (joined by '-') holds no dot at all.
IOP_NAME_MAX = 63
IOP_HASH_LENGTH = 16


def iop_name(gateway, namespace):
    """The IstioOperator name of one gateway: unique in the cluster, a valid label value and object name.

    istioctl prunes by owner name across the cluster (the owner namespace is always the Istio
    namespace), so two gateways' IstioOperators must never share a name. The namespace is a DNS-1123
    label and the gateway name a DNS-1035 label, so neither contains '.': "<namespace>.<gateway>"
    names exactly one gateway. When that exceeds 63 characters, the name is two truncated prefixes and
    16 hex digits of the SHA-256 of the full "<namespace>.<gateway>", joined by two dots, so it can
    never equal a short name (one dot) nor a legacy one (no dot).
    """
    full = "%s.%s" % (namespace, gateway)
    if len(full) <= IOP_NAME_MAX:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:IOP_HASH_LENGTH]
    budget = IOP_NAME_MAX - IOP_HASH_LENGTH - 2  # the prefixes' share, two dots left out
    name_length = min(len(gateway), max(budget - len(namespace), budget // 2))
    # Both prefixes start with a letter or digit (DNS labels), so they stay non-empty without trailing '-'.
    return "%s.%s.%s" % (namespace[: budget - name_length].rstrip("-"), gateway[:name_length].rstrip("-"), digest)


def legacy_iop_name(gateway, namespace):
    """The IstioOperator name collection version 0.1.0 gave a gateway ("<namespace>-<gateway>").

    Not injective (payments-api/gw and payments/api-gw share it); kept only to find and migrate
    gateways installed under it.
    """
    name = "%s-%s" % (namespace, gateway)
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return "%s-%s" % (name[:54].rstrip("-"), digest)


def owner_names(gateway, namespace):
    """The owner names that make a gateway's objects the collection's: the current one, then the legacy one."""
    return (iop_name(gateway, namespace), legacy_iop_name(gateway, namespace))


def owner_labels(iop_name, iop_namespace, revision, version, kind=None):
    """Labels `istioctl install` stamps on each object it applies for an IstioOperator."""
    labels = {
        OPERATOR_MANAGED: OPERATOR_MANAGED_VALUE,
        OPERATOR_VERSION: version,
        OWNING_RESOURCE: iop_name,
        OWNING_RESOURCE_NAMESPACE: iop_namespace,
        REVISION: revision or DEFAULT_REVISION,
    }
    if kind:
        labels[OPERATOR_COMPONENT] = COMPONENT_BY_KIND[kind]
    return labels


def selector_string(labels):
    """A label selector string (k=v,...) in a stable order."""
    return ",".join("%s=%s" % (k, labels[k]) for k in sorted(labels))
