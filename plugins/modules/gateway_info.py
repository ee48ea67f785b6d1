#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: gateway_info
short_description: Facts about Istio gateways, their revisions, replicas and endpoints
version_added: 0.1.0
description:
  - Lists the Istio gateways in a namespace or in the whole cluster (every gateway of the cluster when neither
    O(name) nor O(namespace) is given), whether istioctl, this collection or
    another tool installed them. A gateway is a Deployment labelled with istioctl's
    C(operator.istio.io/component) (C(IngressGateways) or C(EgressGateways)), or one whose pods carry the
    annotation C(inject.istio.io/templates=gateway); or a Kubernetes Gateway API Gateway of a GatewayClass whose
    controller is Istio's (C(istio.io/gateway-controller)), described by what istiod deployed for it.
  - For each gateway, its selector labels, revision(s), stable and canary Deployments with replica and ready
    counts, pods by revision, its Services with endpoints by revision (from EndpointSlices, what
    C(kubectl get endpoints) shows during a canary), its HPAs and the IstioOperator that owns it.
  - Also lists the installed control planes (revisions and revision tags with an injection webhook, their
    istiod Deployments and versions), so a play can assert its prerequisites first.
  - Reads only; safe in check mode.
author:
  - istio_ops maintainers (@istio-ops)
extends_documentation_fragment:
  - istio_ops.gateways.auth
attributes:
  check_mode:
    support: full
    description: Reads only.
  diff_mode:
    support: none
    description: Reads only.
options:
  name:
    description:
      - Only the gateway whose Deployment (for a Gateway API gateway, whose Gateway) has this name.
      - Without it, every gateway of O(namespace), or of the cluster.
    type: str
  namespace:
    description:
      - Only gateways in this namespace. Without it, the whole cluster.
    type: str
  istio_namespace:
    description:
      - Namespace of the control plane (istiod), where control-plane versions are read.
    type: str
    default: istio-system
seealso:
  - module: istio_ops.gateways.istio_gateway
  - module: istio_ops.gateways.gateway_canary
"""

EXAMPLES = r"""
- name: All gateways in the cluster
  istio_ops.gateways.gateway_info:
  register: gateways

- name: One line per gateway of the cluster
  ansible.builtin.debug:
    msg: "{{ gateways.gateways | map(attribute='summary') | list }}"

- name: Endpoints by revision of the shared gateway during a canary
  istio_ops.gateways.gateway_info:
    name: istio-ingressgateway
    namespace: istio-ingress
  register: gw

- name: Show them
  ansible.builtin.debug:
    msg: "{{ gw.gateways[0].services[0].endpoints_by_revision }}"
"""

RETURN = r"""
control_planes:
  description: Installed control-plane revisions (and revision tags).
  returned: always
  type: list
  elements: dict
  contains:
    revision: {description: "Revision or tag name (V(default) for the default revision).", type: str, returned: always}
    resolved_revision: {description: The revision a tag points at (else revision)., type: str, returned: always}
    webhooks: {description: Its injection webhook configurations., type: list, returned: always}
    istiod: {description: Its istiod Deployments in istio_namespace., type: list, returned: always}
    version: {description: Its Istio version (from istiod)., type: str, returned: always}
  sample:
    - {revision: default, resolved_revision: default, webhooks: [istio-sidecar-injector], istiod: [istiod],
       version: 1.30.2}
gateways:
  description: One entry per gateway.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Name of the stable gateway Deployment., type: str, returned: always}
    namespace: {description: Namespace., type: str, returned: always}
    kind: {description: "V(ingress) or V(egress).", type: str, returned: always}
    selector: {description: The Deployment's selector labels., type: dict, returned: always}
    revision: {description: Revision of the stable Deployment., type: str, returned: always}
    revisions: {description: Revisions of all its Deployments (stable and canary)., type: list, returned: always}
    deployments:
      description: Stable and canary Deployments (name, role, revision, replicas, ready_replicas, ...).
      type: list
      returned: always
    pods_by_revision:
      description: Names of the gateway's pods by revision, without the pods being deleted.
      type: dict
      returned: always
      sample: {"1-31": ["istio-ingressgateway-7d9c8-abcde"]}
    terminating_pods:
      description: >-
        The gateway's pods being deleted (draining or held by a finalizer), whatever their revision; they are in
        no list of RV(gateways[].pods_by_revision).
      type: list
      elements: str
      returned: always
      sample: ["istio-ingressgateway-5f6b7-fghij"]
    services:
      description: The gateway's Service (and a canary's own Service) with endpoints_by_revision.
      type: list
      returned: always
    hpa: {description: HPAs that scale the gateway's Deployments., type: list, returned: always}
    method:
      description:
        - "How it was installed (V(istioctl), V(helm), V(manifest), V(gateway_api)), by its marks; null for none."
      type: str
      returned: always
    gateway_api:
      description:
        - For a Kubernetes Gateway API gateway (a Gateway of an Istio GatewayClass, whose Deployment, Service and
          HPA istiod deployed) - its C(gateway_class), C(conditions), C(addresses) and C(listeners) (name,
          attached_routes, conditions). Its O(name) is the Gateway's, its Deployment C(<name>-<class>).
      type: dict
      returned: for Gateway API gateways
    owner:
      description:
        - Who installed it - the owning IstioOperator, its namespace and Istio version, the Helm release and its
          namespace, a description of every owner mark, and whether the collection installed it (managed_by_collection).
      type: dict
      returned: always
    summary:
      description:
        - The facts a report shows, flat - what C(istio_ops.gateways.fleet_report) reads (docs/fleet-report.md).
        - C(api) is V(istio) for a gateway Deployment, V(gateway_api) for a Gateway API Gateway.
        - C(ready) and C(desired) count the pods of all its Deployments, stable and canary (ready replicas and
          spec replicas).
        - C(address) is its stable Service's load balancer address, else its cluster IP; null without a Service
          (or for a headless one).
        - C(method), C(revision) and C(managed_by_collection) are those above and in C(owner).
      type: dict
      returned: always
      contains:
        name: {description: The gateway's name., type: str, returned: always}
        namespace: {description: Its namespace., type: str, returned: always}
        api: {description: "V(istio) or V(gateway_api).", type: str, returned: always}
        method: {description: "Install method by its marks, null for none.", type: str, returned: always}
        revision:
          description:
            - The revision it runs - RV(gateways[].revision), or, when that names a revision tag, the revision the tag
              points at.
          type: str
          returned: always
        follows: {description: "The revision or tag its C(istio.io/rev) label names.", type: str, returned: always}
        ready: {description: Ready pods of all its Deployments., type: int, returned: always}
        desired: {description: Desired pods (spec replicas) of all its Deployments., type: int, returned: always}
        address: {description: Its stable Service's load balancer address else cluster IP., type: str, returned: always}
        managed_by_collection: {description: Whether this collection installed it., type: bool, returned: always}
  sample:
    - name: istio-ingressgateway
      namespace: istio-ingress
      kind: ingress
      selector: {istio: ingressgateway}
      revision: default
      revisions: [1-31, default]
      deployments:
        - {name: istio-ingressgateway, role: stable, revision: default, replicas: 9, ready_replicas: 9}
        - {name: istio-ingressgateway-canary, role: canary, revision: 1-31, replicas: 1, ready_replicas: 1}
      services:
        - name: istio-ingressgateway
          endpoints_by_revision: {default: {ready: 9, not_ready: 0}, 1-31: {ready: 1, not_ready: 0}}
      summary: {name: istio-ingressgateway, namespace: istio-ingress, api: istio, method: istioctl, revision: default,
                follows: default, ready: 10, desired: 10, address: 10.96.0.12, managed_by_collection: true}
"""

from ansible_collections.istio_ops.gateways.plugins.module_utils.common import run_module
from ansible_collections.istio_ops.gateways.plugins.module_utils.info import ARGUMENT_SPEC, GatewayInfoManager


def main():
    run_module(GatewayInfoManager, ARGUMENT_SPEC)


if __name__ == "__main__":
    main()
