#!/usr/bin/python
# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: revision_tag
short_description: Create, move or remove an Istio revision tag, listing the gateways that follow it
version_added: 0.2.0
description:
  - A revision tag (C(istioctl tag set TAG --revision REV)) is an injection webhook configuration that gives the
    pods labelled C(istio.io/rev=TAG), or in namespaces so labelled, the proxy of revision C(REV). Istio's canary
    upgrade moves a tag from one revision to the next.
  - Before it writes anything the module lists what follows the tag - the gateways of the istio API (their pods move
    when they restart, which this module never does), the Gateway API gateways (istiod re-renders them at once when
    the tag moves, and the module warns and lists them) and the count of sidecar pods.
  - The webhook configurations are what C(istioctl tag generate) of O(binary_path) renders for the revision, applied
    by server-side apply under the field manager C(istio_ops.gateways) with the collection's labels, only when a
    server-side dry run says they differ. A converged run writes nothing.
  - A tag the collection did not make (C(istioctl tag set), or the C(default) tag C(istioctl install) made) is
    refused, naming its owner, unless O(adopt=true).
  - O(state=absent) removes a tag only when nothing follows it, unless O(force=true).
  - With O(wait=true), after a move it waits until istiod has re-rendered each Gateway API gateway that follows the
    tag on the new revision and its Deployment has rolled out.
  - With O(restart=true) it also rolls the istio-API gateways that follow the tag onto its revision - those whose pods
    do not all run it yet, O(batch_size) at a time, each batch verified before the next - its rollout complete and
    every pod injected by the tag's revision, its Services' ready endpoints never below the bound (O(min_ready)), the
    Istio Gateway resources that selected its pods still selecting a ready one. When a gateway fails (and
    O(rollback_on_failure=true)) the tag is put back as it was, every gateway that had moved is restarted onto the
    old revision and verified, and the module fails naming the gateway and why. Followers the collection did not
    install are refused before anything is written, unless O(restart_unmanaged=true). Sidecar workloads are never
    restarted. A converged run (every follower on the revision) restarts nothing.
author:
  - istio_ops maintainers (@istio-ops)
extends_documentation_fragment:
  - istio_ops.gateways.auth
  - istio_ops.gateways.wait
  - istio_ops.gateways.istioctl
attributes:
  check_mode:
    support: full
    description: Server-side dry runs; the result lists the followers and what would be written.
  diff_mode:
    support: full
    description: Before and after of each webhook configuration that changes.
options:
  name:
    description: The tag, for example C(prod-stable), or C(default). It must not be the name of a revision.
    type: str
    required: true
  revision:
    description: The installed revision the tag points at. Required with O(state=present).
    type: str
  istio_namespace:
    description: Namespace of the control planes.
    type: str
    default: istio-system
  adopt:
    description: Take over a tag the collection did not make (its istioctl owner labels are removed).
    type: bool
    default: false
  force:
    description: Remove the tag even though gateways or sidecar pods follow it (they could not be injected then).
    type: bool
    default: false
  restart:
    description:
      - Restart the istio-API gateways that follow the tag onto its revision, verified, rolled back on failure.
      - Waits whatever O(wait) says; O(wait_timeout) is the time each batch has to verify.
    type: bool
    default: false
  batch_size:
    description: How many gateways O(restart=true) restarts at once.
    type: int
    default: 1
  min_ready:
    description:
      - The fewest ready endpoints each gateway's Services may have among its pods while it restarts; below it the
        gateway fails at once.
      - Unset, the Deployment's own promise - replicas minus its rolling update's maxUnavailable (rounded down).
    type: int
  rollback_on_failure:
    description: When a restarted gateway fails, move the tag back and restart every gateway that had moved.
    type: bool
    default: true
  restart_unmanaged:
    description: Let O(restart=true) restart followers the collection did not install (istioctl, Helm, by hand).
    type: bool
    default: false
  state:
    description: V(present) creates or moves the tag; V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
seealso:
  - module: istio_ops.gateways.istio_gateway
  - name: Istio canary upgrades with revision tags
    description: Istio's guide.
    link: https://istio.io/latest/docs/setup/upgrade/canary/#stable-revision-labels
"""

EXAMPLES = r"""
- name: What would move if prod-stable pointed at 1-31
  istio_ops.gateways.revision_tag:
    name: prod-stable
    revision: 1-31
    binary_path: /opt/istio-1.31/bin/istioctl
  check_mode: true
  register: tag

- name: Show them
  ansible.builtin.debug:
    msg: "{{ tag.gateways }} ({{ tag.sidecar_pods }} sidecar pods follow too)"

- name: Move it
  istio_ops.gateways.revision_tag:
    name: prod-stable
    revision: 1-31
    binary_path: /opt/istio-1.31/bin/istioctl

- name: Move it and roll its gateways onto 1-31 one at a time, back to the old revision if one fails
  istio_ops.gateways.revision_tag:
    name: prod-stable
    revision: 1-31
    binary_path: /opt/istio-1.31/bin/istioctl
    restart: true
"""

RETURN = r"""
revision:
  description: The revision the tag pointed at before and points at after the run (null for none).
  returned: always
  type: dict
  sample: {before: 1-30, after: 1-31}
gateways:
  description: The gateways that follow the tag (name, namespace, C(api) - V(istio) or V(gateway_api)).
  returned: always
  type: list
  elements: dict
gateway_api_rerendered:
  description: The Gateway API gateways (namespace/name) that istiod re-renders at once when the tag moves.
  returned: always
  type: list
  elements: str
sidecar_pods:
  description: How many sidecar pods follow the tag (they move when they restart; the module never restarts them).
  returned: always
  type: int
actions:
  description: What the run wrote (or would write), in order.
  returned: always
  type: list
  elements: str
adopted:
  description: The webhook configurations taken over with O(adopt=true).
  returned: when there were any
  type: list
  elements: str
istioctl:
  description: The istioctl used, its version and the commands run.
  returned: when state is present
  type: dict
rollout:
  description:
    - What O(restart=true) did - C(restart_planned) (namespace/name of the gateways behind the revision),
      C(batches), C(verified) (gateway, revision, min_ready seen, bound, seconds), C(failed) (gateway, revision,
      reason; null when none failed) and C(rolled_back) (the gateways restarted back onto the old revision).
    - Also returned when the module fails.
  returned: when restart is true
  type: dict
  sample:
    restart_planned: [istio-ingress/gw-a, istio-ingress/gw-b]
    batches: [[istio-ingress/gw-a], [istio-ingress/gw-b]]
    verified:
      - {gateway: istio-ingress/gw-a, revision: 1-31, min_ready: 2, bound: 2, seconds: 9.4}
    failed: {gateway: istio-ingress/gw-b, revision: 1-31, reason: "ready endpoints fell to 1, below the bound of 2"}
    rolled_back: [istio-ingress/gw-a, istio-ingress/gw-b]
"""

from ansible_collections.istio_ops.gateways.plugins.module_utils.common import run_module
from ansible_collections.istio_ops.gateways.plugins.module_utils.revision_tag import (
    ARGUMENT_SPEC,
    MODULE_KWARGS,
    RevisionTagManager,
)


def main():
    run_module(RevisionTagManager, ARGUMENT_SPEC, **MODULE_KWARGS)


if __name__ == "__main__":
    main()
