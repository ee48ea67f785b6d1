#!/usr/bin/python
# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: gateway_canary
short_description: Canary upgrade of an Istio gateway onto another control-plane revision
version_added: 0.1.0
description:
  - Runs Istio's canary upgrade of a gateway. A copy of the gateway Deployment (the I(canary)) is injected by
    another control-plane revision (label C(istio.io/rev)) and shares the gateway's selector labels, so the
    gateway's Service sends traffic to pods of both revisions.
  - Istio's traffic shifting cannot split this traffic, because it comes from outside the mesh. The split
    follows the replica counts of the two Deployments (O(mode=replicas)). With O(mode=external), each version
    gets its own Service and an external load balancer or DNS shifts traffic between their addresses.
  - Works on a gateway installed by M(istio_ops.gateways.istio_gateway), by C(istioctl), or any other gateway
    Deployment found by O(name) and O(namespace).
  - The canary is copied from the live gateway Deployment (pod template, C(inject.istio.io/templates),
    C(image auto), service account, resources, security context). Only its name, its C(istio.io/rev) label
    (Deployment and pod template), the label C(gateways.istio-ops.io/canary-of) and its replica count differ.
    istioctl's owner labels are not copied, so C(istioctl install) never prunes or claims the canary. It is
    written by server-side apply with the field manager C(istio_ops.gateways).
  - Everything the canary changes on objects it does not own (the gateway Deployment's replica count and role
    label, its HPA's bounds, its Service's selector) is recorded in the annotation
    C(gateways.istio-ops.io/state) of that object, in the same request as the change. Promotion and rollback
    restore it exactly, and a run interrupted half-way converges when run again.
  - O(state=present) creates or updates the canary with the requested split. Scale-ups happen first and are
    waited for, then scale-downs, so the number of serving pods never drops.
  - O(state=promoted) moves the gateway itself to the canary's revision. The canary is first scaled to carry
    the whole gateway and waited for; then the gateway Deployment's C(istio.io/rev) labels are changed, a rolling
    update that the Deployment controller runs under the Deployment's own strategy. Once it is complete the
    canary is deleted. No pod is ever deleted or evicted directly, so nothing bypasses a PodDisruptionBudget,
    and the gateway's pods of the old revision are replaced while the canary serves the full replica count.
  - O(state=absent) rolls back. The gateway Deployment gets its replica count (and HPA) back and is waited for,
    then the canary is deleted.
  - Everything is validated before anything is written; a failed check leaves the cluster unchanged.
  - For a Kubernetes Gateway API gateway (O(name) names a Gateway, as M(istio_ops.gateways.istio_gateway) with
    C(method=gateway_api) installs it), the canary is the external traffic shifting variant. Its pods are selected
    by their own Gateway's name, so the canary is a second Gateway named O(canary_name) - the same class,
    listeners and parameters, labelled with O(revision) - which istiod deploys with its own Service and address
    (RV(services)). O(state=present) applies it and waits until it is Programmed and its Deployment serves on the
    revision; the gateway itself is not touched. O(state=promoted) moves the gateway's own Gateway to the revision
    (istiod re-renders it while the canary serves), waits for that, then removes the canary Gateway and waits for
    the garbage collector. O(state=absent) removes the canary Gateway. O(weight), O(total_replicas),
    O(stable_replicas) and O(canary_replicas) are refused for it, and O(mode) and O(manage_hpa) do not apply.
author:
  - istio_ops maintainers (@istio-ops)
extends_documentation_fragment:
  - istio_ops.gateways.auth
  - istio_ops.gateways.wait
attributes:
  check_mode:
    support: full
    description: Every write is a server-side dry-run; nothing is waited for.
  diff_mode:
    support: full
    description: Before and after of each object that changes (or is deleted), without server-owned noise.
options:
  name:
    description:
      - Name of the gateway Deployment (the I(stable) side), for example C(istio-ingressgateway). Its Service has
        the same name.
    type: str
    required: true
  namespace:
    description:
      - Namespace of the gateway.
    type: str
    required: true
  revision:
    description:
      - Control-plane revision of the canary, for example C(1-31). Its control plane must be installed (an
        injection webhook labelled with it, or a revision tag of that name).
      - Must differ from the gateway's current revision for O(state=present).
      - With O(state=promoted), the revision the gateway moves to; it must be the canary's.
      - Required unless O(state=absent).
    type: str
  canary_name:
    description:
      - Name of the canary Deployment, and of its Service with O(mode=external).
      - Defaults to O(name) followed by C(-canary). Must differ from O(name).
    type: str
  weight:
    description:
      - Percentage of the pods the canary runs, from 0 to 100, out of O(total_replicas).
      - The canary gets round-half-up(O(total_replicas) * O(weight) / 100) pods and the gateway the rest. A weight
        from 1 to 99 keeps at least one pod on each side, so it needs O(total_replicas) of at least 2.
      - Defaults to 0 when neither O(weight) nor O(stable_replicas) and O(canary_replicas) are given.
      - Used with O(state=present) only. Mutually exclusive with O(stable_replicas) and O(canary_replicas).
    type: int
  total_replicas:
    description:
      - Total pods of both sides when the split is given by O(weight).
      - Defaults to the gateway's replica count before the canary began (recorded when the canary starts).
      - With O(state=promoted), the gateway's replica count after promotion (default, again, the count before
        the canary), within the bounds of its HPA if it has one.
    type: int
  stable_replicas:
    description:
      - Explicit replica count of the gateway Deployment during the canary. Requires O(canary_replicas).
    type: int
  canary_replicas:
    description:
      - Explicit replica count of the canary. Requires O(stable_replicas).
    type: int
  mode:
    description:
      - V(replicas) - both Deployments sit behind the gateway Service, which spreads connections over their
        pods, so the split follows the replica counts.
      - V(external) - the canary also gets its own Service named O(canary_name) (same type, ports and
        annotations; its own addresses), returned in RV(services), so that an external load balancer or DNS can
        shift traffic. The pods get the label C(gateways.istio-ops.io/role) (C(stable) or C(canary)) and the
        gateway Service's selector is narrowed to C(role=stable), so the two Services never share pods. Adding
        the label to the gateway's pods is a rolling update, which is always waited for before the selector is
        narrowed. Promotion and rollback restore the selector and remove the label (another rolling update).
      - With O(state=promoted) or O(state=absent) the mode is read from the cluster and this option is ignored.
    type: str
    choices: [replicas, external]
    default: replicas
  manage_hpa:
    description:
      - A HorizontalPodAutoscaler of the gateway would override the split. When true, the gateway's HPA is pinned
        during the canary (C(minReplicas) = C(maxReplicas) = the gateway's replicas, at least 1; an HPA whose
        target has 0 replicas does nothing) and its bounds are restored by promotion or rollback.
      - The canary never gets an HPA; it runs the replica count of the split. After promotion the gateway's own
        HPA scales it again.
      - When false and the gateway has an HPA, O(state=present) fails before writing anything. Promotion and
        rollback always restore an HPA an earlier run pinned.
    type: bool
    default: true
  istio_namespace:
    description:
      - Namespace of the control planes (istiod), used to report the revision's version.
    type: str
    default: istio-system
  adopt:
    description:
      - Run the canary on a gateway the collection did not install (for example one of a hand-written IstioOperator
        or a hand-made Helm release). Without it such a gateway is refused, naming its owner, since the canary
        changes its Deployment, HPA and Service.
    type: bool
    default: false
  state:
    description:
      - V(present) creates or updates the canary and the split.
      - V(promoted) moves the gateway to O(revision) and removes the canary.
      - V(absent) rolls back, removing the canary and restoring the gateway.
    type: str
    choices: [present, promoted, absent]
    default: present
notes:
  - The split is by pods, so it is a split of connections only as far as the gateway's Service spreads
    connections evenly over pods (kube-proxy, or the load balancer in front of it with
    C(externalTrafficPolicy=Local)).
  - Steps that keep the gateway's capacity (scale-ups before scale-downs; the stable's role-label rollout before
    the selector narrows; the canary carrying the load before the gateway rolls during promotion; the gateway
    at full strength before the canary is deleted on rollback) are always waited for, up to O(wait_timeout)
    each. O(wait=false) skips only the final waits for rollouts, deletions and endpoints.
  - With O(wait=true), the module waits until the ready endpoints of the Services match the split (ready pods
    per revision equal the replica counts).
  - For a gateway installed by M(istio_ops.gateways.istio_gateway), promotion leaves its IstioOperator naming the
    old revision, and the module warns. Run M(istio_ops.gateways.istio_gateway) with the new O(revision) and the
    istioctl of that revision next; otherwise its next run moves the gateway back to the old revision. During a
    canary, M(istio_ops.gateways.istio_gateway) keeps the split's replica count and HPA bounds.
  - With O(mode=external), point the load balancer or DNS back at the gateway's Service before promoting or
    rolling back, since the canary's Service is deleted.
seealso:
  - module: istio_ops.gateways.istio_gateway
  - module: istio_ops.gateways.gateway_info
  - name: Istio canary upgrade of gateways
    description: Istio's guide to upgrading gateways with revisions.
    link: https://istio.io/latest/docs/setup/upgrade/canary/
"""

EXAMPLES = r"""
- name: Start a canary on revision 1-31 with no pods yet
  istio_ops.gateways.gateway_canary:
    name: istio-ingressgateway
    namespace: istio-ingress
    revision: 1-31
    weight: 0
    total_replicas: 10

- name: Send 10% of the pods to the canary
  istio_ops.gateways.gateway_canary:
    name: istio-ingressgateway
    namespace: istio-ingress
    revision: 1-31
    weight: 10
    total_replicas: 10
  register: canary

- name: Show the ready endpoints per revision
  ansible.builtin.debug:
    var: canary.endpoints_by_revision

- name: Explicit replica counts
  istio_ops.gateways.gateway_canary:
    name: istio-ingressgateway
    namespace: istio-ingress
    revision: 1-31
    stable_replicas: 4
    canary_replicas: 2

- name: Each version behind its own Service, for a load balancer or DNS to shift traffic
  istio_ops.gateways.gateway_canary:
    name: istio-ingressgateway
    namespace: istio-ingress
    revision: 1-31
    weight: 50
    mode: external
  register: canary

- name: Give the load balancer both addresses
  ansible.builtin.debug:
    msg: "stable {{ canary.services.stable.address }}, canary {{ canary.services.canary.address }}"

- name: Promote the canary; the gateway moves to revision 1-31
  istio_ops.gateways.gateway_canary:
    name: istio-ingressgateway
    namespace: istio-ingress
    revision: 1-31
    state: promoted

- name: Make the IstioOperator agree with the promoted revision
  istio_ops.gateways.istio_gateway:
    name: istio-ingressgateway
    namespace: istio-ingress
    revision: 1-31
    binary_path: /opt/istio-1.31/bin/istioctl

- name: Or roll back
  istio_ops.gateways.gateway_canary:
    name: istio-ingressgateway
    namespace: istio-ingress
    state: absent
"""

RETURN = r"""
changed:
  description: Whether anything was (or, in check mode, would be) written.
  returned: always
  type: bool
gateway_api:
  description:
    - True when the gateway is a Gateway API gateway. RV(stable) and RV(canary) then describe the Deployments istiod
      deployed for the two Gateways, with C(gateway) (the Gateway's name) and C(gateway_revision).
  returned: for Gateway API gateways
  type: bool
state:
  description: The requested state.
  returned: always
  type: str
  sample: present
mode:
  description: The requested mode.
  returned: always
  type: str
  sample: replicas
stable:
  description: The gateway Deployment after the run (in check mode, as the server's dry-run would leave it).
  returned: always
  type: dict
  sample: {name: istio-ingressgateway, revision: default, replicas: 9, ready_replicas: 9,
           available_replicas: 9, updated_replicas: 9}
canary:
  description:
    - The canary Deployment after the run. When there is none, its name with O(revision) null and 0 replicas.
  returned: always
  type: dict
  sample: {name: istio-ingressgateway-canary, revision: 1-31, replicas: 1, ready_replicas: 1,
           available_replicas: 1, updated_replicas: 1, exists: true}
  contains:
    exists:
      description: Whether the canary Deployment exists.
      type: bool
      returned: always
split:
  description:
    - The replica split the run set, and what serves now.
    - C(ready) counts the ready endpoints of the gateway's revision and of the canary's revision (in the gateway
      Service, or with O(mode=external) in each side's own Service); C(effective_weight) is the canary's share
      of them in percent (null when none is ready).
  returned: always
  type: dict
  sample: {stable: 9, canary: 1, total: 10, weight: 10, ready: {stable: 9, canary: 1}, effective_weight: 10.0}
endpoints_by_revision:
  description:
    - Endpoints of the gateway Service by revision, from its EndpointSlices (what C(kubectl get endpoints)
      shows), with the ready and not ready counts and pod names.
  returned: always
  type: dict
  sample: {"default": {ready: 9, not_ready: 0, pods: [istio-ingressgateway-6d9f-abcde]},
           "1-31": {ready: 1, not_ready: 0, pods: [istio-ingressgateway-canary-7c4b-fghij]}}
hpa:
  description:
    - What the run did about autoscaling. C(stable) describes the gateway's HPA (null when it has none);
      C(canary) is always null, as the canary never gets an HPA.
  returned: always
  type: dict
  sample: {stable: {name: istio-ingressgateway, target: istio-ingressgateway, min_replicas: 9, max_replicas: 9,
           current_replicas: 9, original: {min_replicas: 1, max_replicas: 5}, pinned: true, action: pinned},
           canary: null}
  contains:
    stable:
      description:
        - The gateway's HPA after the run; C(original) holds the bounds recorded when it was pinned, C(pinned)
          whether it is pinned now, and C(action) what this run did (V(pinned), V(restored) or V(none)).
      type: dict
      returned: always
    canary:
      description: Always null.
      type: dict
      returned: always
services:
  description:
    - The gateway Service (C(stable)) and, with O(mode=external), the canary's Service (C(canary), else null).
    - Each with its type, cluster IP, load balancer addresses, C(address) (the first load balancer address, else
      the cluster IP), selector, ports and endpoints by revision.
  returned: always
  type: dict
  sample: {stable: {name: istio-ingressgateway, type: LoadBalancer, address: 10.96.0.12, cluster_ip: 10.96.0.12,
           load_balancer: [], selector: {app: istio-ingressgateway, istio: ingressgateway}, ports: [],
           endpoints_by_revision: {}}, canary: null}
control_plane:
  description: The control plane found for O(revision) (webhooks, istiod Deployments, version).
  returned: unless state is absent
  type: dict
actions:
  description: What the run did (or would do), in order, one line per write.
  returned: always
  type: list
  elements: str
  sample: ["apply canary Deployment Deployment/istio-ingress/istio-ingressgateway-canary",
           "update stable Deployment Deployment/istio-ingress/istio-ingressgateway"]
diff:
  description: Before and after of each object written or deleted, in order.
  returned: in diff mode
  type: list
  elements: dict
timings:
  description: Seconds the run took.
  returned: always
  type: dict
"""

from ansible_collections.istio_ops.gateways.plugins.module_utils.canary import (
    ARGUMENT_SPEC,
    MODULE_KWARGS,
    GatewayCanaryManager,
)
from ansible_collections.istio_ops.gateways.plugins.module_utils.common import run_module


def main():
    run_module(GatewayCanaryManager, ARGUMENT_SPEC, **MODULE_KWARGS)


if __name__ == "__main__":
    main()
