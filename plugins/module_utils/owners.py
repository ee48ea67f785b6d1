# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who owns an object, in words a user can act on; and the one refusal to touch a foreign object.

The collection changes or deletes an object only when its own marks (or istioctl's owner labels of
its own IstioOperator) say it made it. Anything else is refused with the object and its current owner
named, unless the caller opted in to adoption (the module's `adopt` option).
"""

from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import GatewayError

# Field managers that are the API server's or a controller's, not an installer's.
_BACKGROUND_MANAGERS = ("kube-controller-manager", "kube-scheduler", "kubelet", "kube-apiserver")


class ForeignObject(GatewayError):
    """An object in the way that the collection did not make."""


def describe_owner(obj):
    """What says who made `obj`: Helm release, managed-by label, istioctl owner, field managers."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    clues = []
    if annotations.get(L.HELM_RELEASE_NAME):
        clues.append(
            "Helm release %s/%s"
            % (
                annotations.get(L.HELM_RELEASE_NAMESPACE) or meta.get("namespace") or "",
                annotations[L.HELM_RELEASE_NAME],
            )
        )
    # Istio's charts stamp managed-by=Helm on what istioctl renders too: there the owner label says more.
    if labels.get(L.MANAGED_BY) and not labels.get(L.OWNING_RESOURCE):
        clues.append("%s=%s" % (L.MANAGED_BY, labels[L.MANAGED_BY]))
    if labels.get(L.OWNING_RESOURCE):
        clues.append("IstioOperator %s (istioctl owner label)" % labels[L.OWNING_RESOURCE])
    managers = sorted(
        {
            entry.get("manager")
            for entry in meta.get("managedFields") or []
            if entry.get("manager") and entry.get("manager") not in _BACKGROUND_MANAGERS
        }
    )
    if managers:
        clues.append("field managers " + ", ".join(managers))
    return "; ".join(clues) or "no owner marks (made by hand?)"


def refuse(obj, why, fix):
    """The ForeignObject error for `obj`: which object, who owns it, why that stops us, and the way out."""
    meta = obj.get("metadata") or {}
    where = "%s/%s" % (meta["namespace"], meta["name"]) if meta.get("namespace") else meta.get("name")
    return ForeignObject(
        "%s %s is not this collection's (%s): %s; %s" % (obj.get("kind"), where, describe_owner(obj), why, fix)
    )
