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
  - For a gateway installed by M(istio_ops.gateways.istio_gateway), every object istioctl applied for the
    IstioOperator that module gave this gateway alone, found by istioctl's owner label
    C(install.operator.istio.io/owning-resource=<namespace>-<name>). These are the Deployment, Service,
    ServiceAccount, HorizontalPodAutoscaler, PodDisruptionBudget, Role, RoleBinding and NetworkPolicy.
  - For a gateway installed by hand with C(istioctl install), whose IstioOperator may hold other gateways or the
    control plane, only the objects that carry the same owner labels and component as the gateway Deployment and
    bear the names Istio's gateway chart gives them. These are C(<name>) (Deployment, Service,
    HorizontalPodAutoscaler, PodDisruptionBudget), C(<name>-service-account) (ServiceAccount), C(<name>-sds) (Role,
    RoleBinding) and C(<name>) or C(<name>-<revision>) (NetworkPolicy). Another gateway of the same IstioOperator is
    kept.
  - The canary Deployment, Service and HorizontalPodAutoscaler made by M(istio_ops.gateways.gateway_canary) (label
    C(gateways.istio-ops.io/canary-of=<name>)).
  - With O(gateway_configs=true), the Istio C(Gateway) resources made for this gateway by
    M(istio_ops.gateways.gateway_config), in any namespace (labels C(gateways.istio-ops.io/gateway=<name>) and
    C(gateways.istio-ops.io/gateway-namespace=<namespace>)).
  - B(The namespace) is deleted only when M(istio_ops.gateways.istio_gateway) created it (annotation
    C(gateways.istio-ops.io/created-by-collection)) and nothing else is left in it. Objects Kubernetes and istiod put
    in every namespace (the C(default) ServiceAccount, C(kube-root-ca.crt), the ConfigMaps istiod labels
    C(istio.io/config=true) such as C(istio-ca-root-cert)) and objects owned by a controller do not count.
    Otherwise it is kept, and RV(namespace.remaining) lists what is left. O(delete_namespace=true) deletes it when
    no other workload is left, and O(force=true) deletes it whatever it holds. A namespace that holds an istiod, and
    the Kubernetes system namespaces, are never deleted.
  - B(What purge deletes), with O(purge=true), is everything C(istioctl uninstall --purge -y) deletes, in the whole
    cluster, after the default mode's removal when O(name) is given. That is every Deployment, DaemonSet, Service,
    ConfigMap, Pod, Secret, ServiceAccount, Role, RoleBinding, PodDisruptionBudget, HorizontalPodAutoscaler,
    EnvoyFilter, webhook configuration, ClusterRole, ClusterRoleBinding, CustomResourceDefinition and
    NetworkAttachmentDefinition labelled C(operator.istio.io/component). This covers the control plane of every
    revision, every gateway istioctl installed, and the Istio CRDs with all Istio configuration (Gateways,
    VirtualServices, ...) stored in them. It runs only with O(confirm_purge) set to the exact sentence documented
    there.
  - Idempotent. A gateway that does not exist, or was already removed, is not an error and reports no change.
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
      - Delete the namespace, even when the collection did not create it, as long as no other workload is left
        (Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs, bare Pods, Services).
      - When workloads are left, the namespace is kept with a warning; RV(namespace.reason) names them.
    type: bool
    default: false
  force:
    description:
      - Delete the namespace whatever it still holds, the way C(kubectl delete namespace) does.
      - The Kubernetes system namespaces and a namespace holding an istiod are still kept.
    type: bool
    default: false
  purge:
    description:
      - Run C(istioctl uninstall --purge -y) (with O(binary_path)). See the description for what it removes.
      - Needs O(confirm_purge). The istioctl must not be older (major.minor) than any istiod in the cluster, unless
        O(skip_version_check=true).
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
        - V(collection) (an IstioOperator named after the gateway), V(istioctl) (a hand-written IstioOperator), or
          null when nothing of the gateway was found.
      type: str
      returned: always
    owner: {description: The owner label selector used., type: dict, returned: when the Deployment exists}
  sample: {name: istio-ingressgateway, namespace: istio-ingress, found: true, installed_by: collection,
           owner: {install.operator.istio.io/owning-resource: istio-ingress-istio-ingressgateway,
                   install.operator.istio.io/owning-resource-namespace: istio-system}}
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
           name: shop-api}], reason: "delete_namespace: true, but it still holds other workloads: Deployment shop-api"}
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
