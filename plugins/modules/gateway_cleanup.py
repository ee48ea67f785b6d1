#!/usr/bin/python
# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: gateway_cleanup
short_description: Remove one Istio gateway and what it owns, and nothing else
version_added: 0.1.0
description:
  - Removes one Istio gateway without touching the control plane, other gateways or the applications that share
    its namespace. It replaces C(istioctl uninstall --purge) followed by C(kubectl delete namespace), which removes
    every Istio object in the cluster and everything else in the namespace.
  - B(What the default mode deletes), in O(namespace) only, through the Kubernetes API (server-side dry-run in check
    mode).
  - The objects M(istio_ops.gateways.istio_gateway) installed for the gateway, by any of its methods, as their
    marks say - istioctl's owner labels naming the gateway's IstioOperator, its Helm release (with the collection's
    labels) and that release's records, or the manifest method's labels - and only under the names Istio's gateway
    charts give them. These are C(<name>) (Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget),
    C(<name>-service-account) (ServiceAccount), C(<name>-sds) (Role, RoleBinding; C(<name>-service-account) for
    Helm) and C(<name>) or C(<name>-<revision>) (NetworkPolicy). No helm or istioctl binary is needed.
  - A gateway installed by hand is refused, naming its owner, unless O(adopt=true). With it, a gateway of a
    hand-written IstioOperator (which may hold other gateways or the control plane) loses the objects with the same
    owner labels and component as its Deployment and the chart's names. One of a hand-made Helm release loses every
    object of that release (its annotations name it) and the release's records. Another gateway of the same
    IstioOperator is kept either way. A gateway with no installer's marks at all is refused even with O(adopt=true).
  - The IstioOperator's name is the only mark istioctl puts on what it applies, so a hand-written IstioOperator that
    bears the name M(istio_ops.gateways.istio_gateway) would give cannot be told from the collection's.
  - The canary Deployment, Service and HorizontalPodAutoscaler made by M(istio_ops.gateways.gateway_canary) (label
    C(gateways.istio-ops.io/canary-of=<name>)).
  - With O(gateway_configs=true), the Istio C(Gateway) resources made for this gateway by
    M(istio_ops.gateways.gateway_config), in any namespace (labels C(gateways.istio-ops.io/gateway=<name>) and
    C(gateways.istio-ops.io/gateway-namespace=<namespace>)).
  - With O(gateway_configs=true), only Gateways that also carry C(app.kubernetes.io/managed-by=istio_ops.gateways)
    are deleted. Every delete carries the uid and resourceVersion of the object as it was read (preconditions), so an
    object replaced or changed in between is not deleted. The task then fails with a conflict, and a rerun decides
    on the object as it is now.
  - B(The namespace) is deleted only when M(istio_ops.gateways.istio_gateway) created it (annotation
    C(gateways.istio-ops.io/created-by-collection)) and nothing else is left in it. What it holds is read through
    discovery, every namespaced kind the API server serves and lists, custom resources and Istio policies included.
    Some objects do not count. These are what is removed, what is being deleted, and what Kubernetes and istiod
    put in every namespace (the C(default) ServiceAccount and its legacy token Secrets, C(kube-root-ca.crt), the
    ConfigMaps istiod labels C(istio.io/config=true) such as C(istio-ca-root-cert)). Events, metrics and the
    Endpoints of a Service do not count either. Nor does an object all of whose owners (ownerReferences) are
    removed, do not count themselves, or are gone. An object owned by something that counts, or by a kind that
    could not be listed, counts.
  - Otherwise the namespace is kept, and RV(namespace.remaining) lists what is left. O(delete_namespace=true)
    deletes it when nothing else is left even though the collection did not create it, and O(force=true) deletes
    it whatever it holds. A namespace that holds a PersistentVolumeClaim or a Secret (data the collection never
    creates) is deleted only with O(force=true). So is one where a kind could not be listed (no permission, an
    aggregated API that is down), since it cannot be told empty.
  - A namespace that holds an istiod, and the Kubernetes system namespaces, are never deleted. Nor is the namespace
    when O(name) matches nothing in it (a typo), whatever O(delete_namespace) and O(force) say. To remove the
    namespace of a gateway that is gone already, delete it by hand.
  - B(What purge deletes), with O(purge=true), is everything C(istioctl uninstall --purge -y) deletes, in the whole
    cluster, after the default mode's removal when O(name) is given. That is every Deployment, DaemonSet, Service,
    ConfigMap, Pod, Secret, ServiceAccount, Role, RoleBinding, PodDisruptionBudget, HorizontalPodAutoscaler,
    EnvoyFilter, webhook configuration, ClusterRole, ClusterRoleBinding, CustomResourceDefinition and
    NetworkAttachmentDefinition labelled C(operator.istio.io/component). This covers the control plane of every
    revision, every gateway istioctl installed, and the Istio CRDs with all Istio configuration (Gateways,
    VirtualServices, ...) stored in them. It runs only with O(confirm_purge) set to the exact sentence documented
    there.
  - Idempotent. A gateway that does not exist, or was already removed, is not an error and reports no change.
    Its namespace is kept then (see above).
author:
  - istio_ops maintainers (@istio-ops)
extends_documentation_fragment:
  - istio_ops.gateways.auth
  - istio_ops.gateways.wait
  - istio_ops.gateways.istioctl
attributes:
  check_mode:
    support: full
    description: Lists exactly what would be removed, proven by server-side dry-run deletes; deletes nothing.
  diff_mode:
    support: full
    description: The before side lists each object removed (kind, namespace, name); the after side is empty.
options:
  name:
    description:
      - Name of the gateway Deployment, for example C(istio-ingressgateway).
      - Required unless O(purge=true).
    type: str
  namespace:
    description:
      - Namespace of the gateway. Required unless O(purge=true).
      - With O(purge=true) and no O(name), the namespace rules above still decide whether this namespace is deleted
        after the purge.
    type: str
  gateway_configs:
    description:
      - Also delete the Istio C(Gateway) resources that M(istio_ops.gateways.gateway_config) made for this gateway.
      - Without it they are kept, so that routes bound to them survive a reinstall of the gateway.
    type: bool
    default: false
  delete_namespace:
    description:
      - Delete the namespace, even when the collection did not create it, as long as nothing else that counts is left
        in it (see the description). Workloads, ConfigMaps, custom resources and Istio configuration all count.
      - When something is left, the namespace is kept with a warning; RV(namespace.reason) names what.
      - A PersistentVolumeClaim or a Secret left in it keeps it too; only O(force=true) deletes those.
    type: bool
    default: false
  force:
    description:
      - Delete the namespace whatever it still holds (PersistentVolumeClaims and Secrets included), the way
        C(kubectl delete namespace) does.
      - The Kubernetes system namespaces and a namespace holding an istiod are still kept, and so is the namespace
        when O(name) matched nothing in it (a typo).
    type: bool
    default: false
  purge:
    description:
      - Run C(istioctl uninstall --purge -y) (with O(binary_path)). See the description for what it removes.
      - Needs O(confirm_purge). The istioctl must not be older (major.minor) than any istiod in the cluster, unless
        O(skip_version_check=true).
    type: bool
    default: false
  adopt:
    description:
      - Remove a gateway the collection did not install (a hand-written IstioOperator, a hand-made Helm release), as
        its installer's marks say. See the description.
    type: bool
    default: false
  confirm_purge:
    description:
      - Confirms O(purge=true). Must be exactly C(I understand this removes every Istio component in the cluster).
      - A sentence rather than a boolean, so that a purge never runs through a stray C(true).
      - Ignored, with a warning, without O(purge=true).
    type: str
notes:
  - Deleting the namespace also deletes everything in it, including objects of kinds this module does not list.
    That is why the namespace rules are strict.
  - The purge leaves the namespaces (for example C(istio-system)) in place, as istioctl does.
seealso:
  - module: istio_ops.gateways.istio_gateway
  - module: istio_ops.gateways.gateway_config
  - module: istio_ops.gateways.gateway_canary
  - name: istioctl uninstall
    description: What C(istioctl uninstall --purge) removes.
    link: https://istio.io/latest/docs/setup/install/istioctl/#uninstall-istio
"""

EXAMPLES = r"""
- name: Remove the shared ingress gateway; istiod and other gateways stay
  istio_ops.gateways.gateway_cleanup:
    name: istio-ingressgateway
    namespace: istio-ingress

- name: Remove a dedicated gateway and its Gateway resources; the application's namespace stays
  istio_ops.gateways.gateway_cleanup:
    name: shop-gateway
    namespace: shop
    gateway_configs: true

- name: Remove a gateway and its namespace when no other workload lives there
  istio_ops.gateways.gateway_cleanup:
    name: istio-egressgateway
    namespace: istio-egress
    delete_namespace: true

- name: Preview a full purge (check mode lists every object it would remove)
  istio_ops.gateways.gateway_cleanup:
    purge: true
    confirm_purge: I understand this removes every Istio component in the cluster
    binary_path: /opt/istio-1.30/bin/istioctl
  check_mode: true
  register: purge_preview

- name: Tear down all of Istio, as the seed's cleanup did
  istio_ops.gateways.gateway_cleanup:
    name: istio-ingressgateway
    namespace: istio-ingress
    purge: true
    confirm_purge: I understand this removes every Istio component in the cluster
    binary_path: /opt/istio-1.30/bin/istioctl
    force: true
"""

RETURN = r"""
changed:
  description: Whether anything was (or, in check mode, would be) deleted.
  returned: always
  type: bool
removed:
  description:
    - Everything deleted (or, in check mode, that would be), the gateway's objects first, then what the purge removed.
      The namespace is reported under RV(namespace).
  returned: always
  type: list
  elements: dict
  contains:
    kind: {description: Object kind., type: str, returned: always, sample: Deployment}
    namespace: {description: Object namespace; null for cluster-scoped objects., type: str, returned: always}
    name: {description: Object name., type: str, returned: always, sample: istio-ingressgateway}
  sample:
    - {kind: HorizontalPodAutoscaler, namespace: istio-ingress, name: istio-ingressgateway}
    - {kind: Service, namespace: istio-ingress, name: istio-ingressgateway}
    - {kind: Deployment, namespace: istio-ingress, name: istio-ingressgateway}
gateway:
  description: What was found of the gateway.
  returned: when name is given
  type: dict
  contains:
    name: {description: Gateway name., type: str, returned: always}
    namespace: {description: Gateway namespace., type: str, returned: always}
    found: {description: Whether its Deployment existed., type: bool, returned: always}
    installed_by:
      description:
        - V(collection) (M(istio_ops.gateways.istio_gateway) installed it), V(istioctl) or V(helm) (installed by hand
          that way, removed with O(adopt=true)), or null when nothing of the gateway was found. Either way only the
          gateway's chart objects are removed.
      type: str
      returned: always
    method:
      description: "The collection's install method of the gateway."
      type: str
      returned: when installed_by is collection and the Deployment exists
    adopted:
      description: Whether a gateway installed by hand was removed on O(adopt=true).
      type: bool
      returned: when it was
    owner: {description: "The owner label selector (or Helm release) used.", type: dict, returned: when adopted}
  sample: {name: istio-ingressgateway, namespace: istio-ingress, found: true, installed_by: collection,
           owner: {install.operator.istio.io/owning-resource: istio-ingress.istio-ingressgateway,
                   install.operator.istio.io/owning-resource-namespace: istio-system,
                   operator.istio.io/component: IngressGateways}}
namespace:
  description: What happened to the namespace, and why.
  returned: when namespace is given
  type: dict
  contains:
    name: {description: Namespace name., type: str, returned: always}
    deleted: {description: Whether it was (or would be) deleted., type: bool, returned: always}
    created_by_collection: {description: Whether istio_gateway created it., type: bool, returned: always}
    reason: {description: Why it was deleted or kept., type: str, returned: always}
    remaining:
      description: What it still holds besides what was removed (kind, namespace, name).
      type: list
      elements: dict
      returned: always
  sample: {name: shop, deleted: false, created_by_collection: false, remaining: [{kind: Deployment, namespace: shop,
           name: shop-api}], reason: "delete_namespace: true, but it still holds: Deployment shop-api; set force: true
           to delete it whatever it holds"}
purge:
  description: The purge run.
  returned: when purge is true
  type: dict
  contains:
    istioctl:
      description: The istioctl used, its version and the commands run (argument lists, exit codes, seconds).
      type: dict
      returned: always
    remaining:
      description: Objects the purge should have removed that are still there after it (kind, namespace, name).
      type: list
      elements: dict
      returned: always
timings:
  description: Seconds spent in total.
  returned: always
  type: dict
"""

from ansible_collections.istio_ops.gateways.plugins.module_utils.cleanup import (
    ARGUMENT_SPEC,
    MODULE_KWARGS,
    GatewayCleanupManager,
)
from ansible_collections.istio_ops.gateways.plugins.module_utils.common import run_module


def main():
    run_module(GatewayCleanupManager, ARGUMENT_SPEC, **MODULE_KWARGS)


if __name__ == "__main__":
    main()
