#!/usr/bin/python
# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: istio_gateway
short_description: Install, reconcile, upgrade in place, migrate or remove one Istio gateway
version_added: 0.1.0
description:
  - Installs one Istio ingress or egress gateway apart from the control plane, by any of the methods Istio
    documents (O(method)), each giving the same objects for the same options - C(istioctl install -f) of an
    IstioOperator with profile C(empty) (V(istioctl), the default), the C(istio/gateway) Helm chart (V(helm)), or plain
    Kubernetes objects the module renders itself and applies by server-side apply (V(manifest), no binary needed).
  - O(method=gateway_api) installs a Kubernetes Gateway API gateway instead - a C(gateway.networking.k8s.io/v1)
    Gateway of an Istio GatewayClass (O(gateway_class)) with the listeners O(listeners), and its parameters ConfigMap
    C(<name>-gateway-params). istiod deploys it (Deployment, Service and ServiceAccount C(<name>-<gateway_class>),
    HPA and PDB from the ConfigMap, all owned by the Gateway); the module writes only the Gateway and the ConfigMap,
    and waits until the Gateway is C(Accepted) and C(Programmed) and its Deployment has rolled out. O(replicas),
    O(autoscaling), O(pod_disruption_budget), O(resources), O(pod_annotations), O(service.type),
    O(service.annotations), O(service.load_balancer_ip) and O(service.external_traffic_policy) mean what they mean
    for the other methods, with the same defaults. A gateway cannot move between this method and the others (they
    are different objects); remove it first.
  - Running it with another O(method) for an installed gateway migrates it. The objects both methods render (the
    Service among them, so its uid, cluster IP, node ports and load balancer stay) are moved to the new method by a
    metadata patch, the new method applies, and what only the old method made goes once the rollout is done. No
    IstioOperator owner label stays behind, and a Helm release of the gateway goes with the move away from Helm.
  - Each gateway gets its own IstioOperator named C(<namespace>.<name>) (or, when longer than 63 characters,
    truncated prefixes and a hash of it), a name no other gateway can have, so installing one gateway never prunes
    another. The module refuses to install when a Deployment in another namespace already carries that owner name.
  - A gateway installed by collection version 0.1.0 (IstioOperator C(<namespace>-<name>)) is migrated on its next run.
    Its objects that the chart renders are relabelled to the new owner name by a metadata-only patch before
    C(istioctl install) runs, so its pods do not restart. Check mode reports the migration without writing it.
  - An object of a name the chart renders that istioctl did not apply for this gateway (for example a Helm release's
    Deployment or Service, or a gateway of a hand-written IstioOperator) makes the module fail and name the object and
    its owner, unless O(adopt=true).
  - Idempotent without trusting istioctl. The module renders the objects with
    C(istioctl manifest generate --cluster-specific), dry-runs each as a server-side apply with istioctl's
    field manager, and compares the answer with the live object. C(istioctl install) runs only when something
    differs or is missing. A converged run writes nothing.
  - Changing O(revision) moves the gateway to another control-plane revision (label C(istio.io/rev)), which
    rolls its pods; O(restart=true) rolls them in place. Both wait for the rollout.
  - With O(method=helm), idempotence does not trust helm either. C(helm template) renders the chart, each object is
    compared with the live one by a server-side dry run, and C(helm upgrade --install) runs only when something
    differs or the release is missing or not C(deployed), so a converged run writes no new release record.
  - Before writing anything it checks the name and labels, that the control plane of the revision exists,
    that istioctl matches its version, that the namespace does not carry C(istio-injection=disabled), and that
    the labels do not collide with another workload's selector in the namespace.
  - O(state=absent) deletes the objects istioctl applied for this gateway's IstioOperator, and its canary;
    nothing else. The namespace is kept. See M(istio_ops.gateways.gateway_cleanup) for more control.
author:
  - istio_ops maintainers (@istio-ops)
extends_documentation_fragment:
  - istio_ops.gateways.auth
  - istio_ops.gateways.wait
  - istio_ops.gateways.istioctl
attributes:
  check_mode:
    support: full
    description: Reports what would change (by server-side dry-run); touches nothing.
  diff_mode:
    support: full
    description: Before and after of each object that changes, without server-owned noise.
options:
  name:
    description:
      - Name of the gateway Deployment and Service (a DNS-1035 label), for example C(istio-ingressgateway).
    type: str
    required: true
  namespace:
    description:
      - Namespace of the gateway, for example C(istio-ingress), or an application's namespace for a dedicated gateway.
    type: str
    required: true
  kind:
    description:
      - Ingress or egress gateway.
    type: str
    choices: [ingress, egress]
    default: ingress
  labels:
    description:
      - Labels of the gateway pods and selector of its Service; Istio C(Gateway) resources select them.
      - "Defaults to C({istio: ingressgateway}) or C({istio: egressgateway}) by O(kind)."
    type: dict
  revision:
    description:
      - Control-plane revision the gateway is injected by. Omit it for the default revision.
      - Changing it on an installed gateway is an in-place upgrade (rolling restart onto the new revision).
    type: str
  injection_template:
    description:
      - Injection template named in the Deployment's C(inject.istio.io/templates) annotation.
    type: str
    default: gateway
  replicas:
    description:
      - Replica count. Applies when autoscaling is disabled.
    type: int
  autoscaling:
    description:
      - Horizontal pod autoscaler of the gateway. Istio enables one by default (1 to 5 replicas).
    type: dict
    suboptions:
      enabled:
        description: Whether the gateway gets an HPA.
        type: bool
        default: true
      min:
        description: Minimum replicas.
        type: int
      max:
        description: Maximum replicas.
        type: int
  service:
    description:
      - The gateway's Service.
    type: dict
    suboptions:
      type:
        description: Service type (Istio's default is V(LoadBalancer)).
        type: str
        choices: [ClusterIP, NodePort, LoadBalancer]
      ports:
        description: Service ports; they replace Istio's defaults (15021, 80, 443).
        type: list
        elements: dict
        suboptions:
          name:
            description: Port name, for example C(http2).
            type: str
            required: true
          port:
            description: Service port.
            type: int
            required: true
          target_port:
            description: Container port.
            type: int
          node_port:
            description: Node port, for V(NodePort) and V(LoadBalancer) Services.
            type: int
          protocol:
            description: Protocol.
            type: str
            choices: [TCP, UDP, SCTP]
            default: TCP
      annotations:
        description: Service annotations (for example a cloud load balancer's settings).
        type: dict
      load_balancer_ip:
        description: Requested load balancer IP.
        type: str
      external_traffic_policy:
        description: External traffic policy.
        type: str
        choices: [Cluster, Local]
  resources:
    description:
      - Resource requests and limits of the C(istio-proxy) container, as in a Kubernetes pod spec.
    type: dict
  pod_annotations:
    description:
      - Annotations for the gateway pods.
    type: dict
  values:
    description:
      - Extra IstioOperator C(spec.values), merged over what the other options set.
      - Keys the module sets to keep the gateway apart from the control plane are refused, each naming the option to
        use instead - C(global.operatorManageWebhooks), C(global.istioNamespace) (O(istio_namespace)), C(revision)
        (O(revision)), C(ownerName), and C(enabled), C(name), C(namespace) and C(labels) of any C(gateways.<chart>).
      - The module fails before applying anything when istioctl's render holds an object that is not one of the gateway
        chart's kinds (Deployment, Service, ServiceAccount, HorizontalPodAutoscaler, PodDisruptionBudget, Role,
        RoleBinding, NetworkPolicy) or lies outside O(namespace).
    type: dict
  k8s:
    description:
      - Extra IstioOperator component C(k8s) settings (for example C(nodeSelector), C(tolerations), C(overlays)).
      - An overlay patch of C(metadata.namespace) is refused; use O(namespace).
    type: dict
  istio_namespace:
    description:
      - Namespace of the control plane (istiod), used to find its version.
    type: str
    default: istio-system
  create_namespace:
    description:
      - Create O(namespace) when it does not exist. A namespace created this way is marked, so that
        M(istio_ops.gateways.gateway_cleanup) may delete it later.
    type: bool
    default: true
  fix_injection_label:
    description:
      - When O(namespace) carries C(istio-injection=disabled), remove that label instead of failing.
    type: bool
    default: false
  restart:
    description:
      - Roll the gateway's pods (like C(kubectl rollout restart)) so they pick up the newest injected
        configuration. Always reports a change.
    type: bool
    default: false
  adopt:
    description:
      - Take over objects of the same names that another tool made; they are then installed by O(method) for this
        gateway.
      - Without it, such an object (no marks of the collection for this gateway - an istioctl owner label naming its
        IstioOperator, its Helm release with the collection's labels, or the manifest method's labels) makes the module
        fail, naming the object and its current owner (Helm release, C(app.kubernetes.io/managed-by), IstioOperator,
        field managers).
    type: bool
    default: false
  method:
    description:
      - How the gateway is installed. See the module description; changing it migrates an installed gateway.
      - V(helm) and V(manifest) give the same names, labels, selectors, ports, Service, resources, HPA and PDB as
        V(istioctl). Istio's Helm chart names the Role and RoleBinding after the ServiceAccount
        (C(<name>-service-account), not C(<name>-sds)). It puts only the labels C(app) and C(istio) in the Deployment
        selector, so a gateway whose O(labels) hold other keys cannot move between V(helm) and another method (the
        module fails naming the selectors).
    type: str
    choices: [istioctl, helm, manifest, gateway_api]
    default: istioctl
  helm:
    description:
      - The Helm chart and binary for O(method=helm).
    type: dict
    suboptions:
      repository:
        description: Chart repository URL.
        type: str
        default: https://istio-release.storage.googleapis.com/charts
      chart:
        description: Chart name in the repository.
        type: str
        default: gateway
      version:
        description: Chart version. Defaults to the control plane's version.
        type: str
      values:
        description:
          - Extra chart values, merged over what the other options set. Keys the module sets from its options are
            refused, each naming the option to use instead.
        type: dict
      binary_path:
        description: Path of the helm binary. Defaults to C(helm) on the PATH.
        type: path
  pod_disruption_budget:
    description:
      - A PodDisruptionBudget for the gateway pods, on every method. It needs at least 2 pods (O(replicas) or
        O(autoscaling.min)); with one it would block every node drain, so the module refuses it.
      - Without it, a gateway of 2 or more pods gets Istio's default budget (C(minAvailable) 1) on every method.
      - With a budget, the Deployment rolls out with C(maxUnavailable) 0 (and C(maxSurge) 100%), so a restart, an
        upgrade or a migration never has fewer ready pods than replicas.
    type: dict
    suboptions:
      min_available:
        description: Pods that must stay available (a count or a percentage such as C(50%)).
        type: raw
      max_unavailable:
        description: Pods that may be unavailable (a count or a percentage).
        type: raw
  listeners:
    description:
      - The Gateway's listeners for O(method=gateway_api), in the Gateway API's own form (C(name), C(port),
        C(protocol) - V(HTTP), V(HTTPS), V(TLS) or V(TCP) -, C(hostname), C(tls), C(allowedRoutes)). Required for
        that method, refused for the others.
      - Checked before anything is written - unique names, ports, hostnames, TLS for HTTPS and TLS listeners (a
        C(Terminate) listener's C(certificateRefs) must name Secrets in the gateway's namespace, which must exist
        and hold C(tls.crt) and C(tls.key); see O(missing_secret)), and C(allowedRoutes) (C(namespaces.from) V(All),
        V(Same) or V(Selector) with a C(selector), the shared topology's delegation of routes to application
        namespaces).
    type: list
    elements: dict
  gateway_class:
    description:
      - The GatewayClass of the Gateway (O(method=gateway_api)). It must exist and be Istio's
        (controller C(istio.io/gateway-controller)).
    type: str
    default: istio
  infrastructure:
    description:
      - Labels and annotations istiod puts on everything it deploys for the Gateway (C(spec.infrastructure)),
        O(method=gateway_api) only. At most 8 of each; the collection's own label keys are refused.
    type: dict
    suboptions:
      labels:
        description: Labels.
        type: dict
      annotations:
        description: Annotations.
        type: dict
  missing_secret:
    description:
      - What to do when a listener's certificate Secret is missing or holds no C(tls.crt)/C(tls.key)
        (O(method=gateway_api)). V(fail) before anything is written; V(warn) writes the Gateway anyway (a
        certificate cert-manager creates later), and that listener stays down until the Secret is right.
    type: str
    choices: [fail, warn]
    default: fail
  state:
    description:
      - V(present) installs or reconciles the gateway; V(absent) removes what it owns.
    type: str
    choices: [present, absent]
    default: present
notes:
  - During a canary of this gateway (M(istio_ops.gateways.gateway_canary) has split its replicas), the module keeps
    the live replica count and HPA bounds instead of O(replicas) and O(autoscaling), and warns, so a scheduled
    reconcile never fights the split. They apply again after promotion or rollback.
  - Istio's gateway charts render a PodDisruptionBudget only for 2 or more pods. When the canary leaves the stable
    side fewer, a run of methods V(istioctl) and V(helm) during the canary removes the budget (with a warning), and
    the first run after promotion or rollback restores it. Method V(manifest) keeps it throughout.
  - C(istioctl install) waits for the gateway to be ready (up to O(wait_timeout)) whatever O(wait) says;
    O(wait) controls the module's own rollout wait.
  - With O(wait=true) a run that changes nothing waits for the rollout too, so a gateway whose earlier run timed out
    (for example while an injection webhook refused its pods) is not reported converged until its pods are ready.
seealso:
  - module: istio_ops.gateways.gateway_info
  - module: istio_ops.gateways.gateway_canary
  - module: istio_ops.gateways.gateway_cleanup
"""

EXAMPLES = r"""
- name: Install the shared ingress gateway of Istio's guide
  istio_ops.gateways.istio_gateway:
    name: istio-ingressgateway
    namespace: istio-ingress
    labels:
      istio: ingressgateway

- name: An egress gateway with a fixed replica count
  istio_ops.gateways.istio_gateway:
    name: istio-egressgateway
    namespace: istio-egress
    kind: egress
    replicas: 2
    autoscaling:
      enabled: false

- name: In-place upgrade onto the control plane of revision 1-31
  istio_ops.gateways.istio_gateway:
    name: istio-ingressgateway
    namespace: istio-ingress
    revision: 1-31
    binary_path: /opt/istio-1.31/bin/istioctl

- name: The same gateway from Istio's Helm chart, with a disruption budget
  istio_ops.gateways.istio_gateway:
    name: istio-ingressgateway
    namespace: istio-ingress
    method: helm
    helm:
      version: 1.30.0
    autoscaling:
      min: 2
      max: 5
    pod_disruption_budget:
      max_unavailable: 1

- name: Plain Kubernetes objects, no istioctl or helm on the controller
  istio_ops.gateways.istio_gateway:
    name: istio-ingressgateway
    namespace: istio-ingress
    method: manifest

- name: A Gateway API gateway that istiod deploys, its routes delegated to labelled application namespaces
  istio_ops.gateways.istio_gateway:
    name: shared-gateway
    namespace: istio-ingress
    method: gateway_api
    listeners:
      - name: https
        port: 443
        protocol: HTTPS
        hostname: "*.example.com"
        tls:
          mode: Terminate
          certificateRefs:
            - name: wildcard-example-com
        allowedRoutes:
          namespaces:
            from: Selector
            selector:
              matchLabels:
                shared-gateway-access: "true"
    autoscaling:
      min: 2
      max: 5

- name: Roll the gateway pods to pick up new injected configuration
  istio_ops.gateways.istio_gateway:
    name: istio-ingressgateway
    namespace: istio-ingress
    restart: true
"""

RETURN = r"""
changed:
  description: Whether anything was (or, in check mode, would be) written.
  returned: always
  type: bool
method:
  description: The install method of the run (O(method)).
  returned: always
  type: str
iop:
  description: The IstioOperator the module rendered and applied.
  returned: when state is present and method is istioctl
  type: dict
objects:
  description: Each object the method renders for the gateway (and each it owns but no longer renders), and what the
    run does to it.
  returned: when state is present
  type: list
  elements: dict
  contains:
    kind: {description: Object kind., type: str, returned: always}
    name: {description: Object name., type: str, returned: always}
    namespace: {description: Object namespace., type: str, returned: always}
    action: {description: "One of V(create), V(update), V(prune) or V(none).", type: str, returned: always}
revision:
  description: The gateway's revision before and after the run (C(default) for the default revision).
  returned: when state is present
  type: dict
  sample: {before: default, after: 1-31}
deployment:
  description: The gateway Deployment after the run.
  returned: when state is present
  type: dict
  sample: {name: istio-ingressgateway, revision: default, replicas: 1, ready_replicas: 1,
           available_replicas: 1, updated_replicas: 1}
service:
  description: The gateway Service after the run (type, cluster IP, load balancer addresses, ports).
  returned: when state is present
  type: dict
control_plane:
  description: The control plane found for the revision (webhooks, istiod Deployments, version).
  returned: when state is present
  type: dict
istioctl:
  description:
    - The istioctl used, its version, the commands run (argument lists, exit codes, seconds), and C(cached), what
      the istioctl output cache answered instead of running istioctl.
    - The cache keeps C(istioctl version) and C(istioctl manifest generate) output under
      C(~/.cache/istio-ops-gateways) (or E(ISTIO_OPS_GATEWAYS_CACHE); V(off) disables it), keyed by the istioctl
      binary, the IstioOperator and the API server's version.
    - A cache directory or entry that is not owned by the user running the module, or that group or others may write
      to, is not used (with a warning). A run that would delete an object renders afresh first, so a cached render
      alone never decides a deletion.
  returned: when state is present and method is istioctl
  type: dict
helm:
  description: The helm used, its version, the chart, and the commands run (argument lists, exit codes, seconds).
  returned: when state is present and method is helm
  type: dict
manifest:
  description: The field manager of the manifest method's server-side applies.
  returned: when state is present and method is manifest
  type: dict
gateway_api:
  description:
    - For O(method=gateway_api) - the field manager, what was applied, the GatewayClass, the name istiod deploys
      under (C(deployed_as)), and each certificate Secret checked (C(secrets)).
  returned: when state is present and method is gateway_api
  type: dict
pending:
  description: Why the method applies although every object matches (for example a Helm release that is missing).
  returned: when there is a reason
  type: list
  elements: str
migrated:
  description:
    - Objects moved to O(method) from another method, or from the IstioOperator name of collection version 0.1.0
      (kind, namespace, name, C(from) and C(to) methods); in check mode, those that would be.
  returned: when objects are migrated
  type: list
  elements: dict
adopted:
  description: Objects another tool made that the run takes over because O(adopt=true) (kind, namespace, name).
  returned: when there were any
  type: list
  elements: dict
restarted:
  description: Whether a rolling restart was requested.
  returned: when restart is true
  type: bool
canary_in_progress:
  description: Whether a canary of the gateway was in progress, so the live replica split was kept.
  returned: when it was
  type: bool
namespace_created:
  description: Whether the module created the namespace.
  returned: when it did
  type: bool
removed:
  description: Objects deleted by state absent (kind, namespace, name).
  returned: when state is absent
  type: list
  elements: dict
timings:
  description: Seconds spent rendering, planning, installing, waiting, and in total.
  returned: always
  type: dict
"""

from ansible_collections.istio_ops.gateways.plugins.module_utils.common import run_module
from ansible_collections.istio_ops.gateways.plugins.module_utils.gateway import ARGUMENT_SPEC, IstioGatewayManager


def main():
    run_module(IstioGatewayManager, ARGUMENT_SPEC)


if __name__ == "__main__":
    main()
