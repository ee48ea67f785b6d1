#!/usr/bin/python
# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: gateway_config
short_description: Manage an Istio Gateway resource bound to an installed gateway
version_added: 0.1.0
description:
  - Creates, updates or deletes one C(networking.istio.io/v1) C(Gateway) resource, the listeners (ports, hosts, TLS)
    of an Istio gateway installed by M(istio_ops.gateways.istio_gateway) or by other means.
  - The selector comes from the gateway (O(gateway_name) and O(gateway_namespace), the selector of its Deployment) or
    is given (O(selector)). Either way it is checked against the live gateways before anything is written. A
    selector that picks no gateway fails and lists the label sets the gateways in scope use.
  - Istio applies a Gateway to every gateway pod its selector picks, in any namespace, unless istiod runs with
    C(PILOT_SCOPE_GATEWAY_TO_NAMESPACE=true). The module warns when the selector also picks gateways in other
    namespaces, and lists them in RV(matched_gateways).
  - Istio reads a O(servers[].tls.credential_name) Secret from the namespace of the gateway pods, not from the
    namespace of the Gateway resource. The module checks that the Secret is there with a certificate and key (and a
    client CA for V(MUTUAL) and V(OPTIONAL_MUTUAL)), and fails or warns by O(missing_secret).
  - For a shared gateway, hosts may be delegated to application namespaces (C(app-ns/*.example.com)). The
    application teams then bind their VirtualServices there, while TLS stays in the gateway namespace. Delegations
    to namespaces that do not exist yet are reported with a warning.
  - The resource is labelled C(gateways.istio-ops.io/gateway=<gateway name>),
    C(gateways.istio-ops.io/gateway-namespace=<gateway namespace>) and C(app.kubernetes.io/managed-by), so that
    M(istio_ops.gateways.gateway_cleanup) with O(istio_ops.gateways.gateway_cleanup#module:gateway_configs=true)
    removes it with the gateway.
  - B(Only its own Gateways are changed or deleted.) A live Gateway of the same name that lacks these labels
    (another team's, or one made by hand, Helm or kubectl), or whose labels name another gateway, is neither
    updated nor deleted. The task fails, naming the resource and its owner (Helm release,
    C(app.kubernetes.io/managed-by), field managers), unless O(adopt=true).
  - Updates of its own Gateways are server-side applies that take over fields others changed since (force). A new
    Gateway is created without force, so one made meanwhile by someone else fails the task instead of being taken
    over.
  - Idempotent. The desired resource is sent as a server-side apply dry-run and compared with the live one; only a
    difference is written.
  - Fails clearly when the cluster does not serve C(networking.istio.io/v1) (Istio's CRDs missing, or Istio older
    than 1.22).
author:
  - istio_ops maintainers (@istio-ops)
extends_documentation_fragment:
  - istio_ops.gateways.auth
attributes:
  check_mode:
    support: full
    description: Server-side dry-run; reports what would change and writes nothing.
  diff_mode:
    support: full
    description: The resource before and after, without server-owned metadata.
options:
  name:
    description:
      - Name of the Gateway resource.
    type: str
    required: true
  namespace:
    description:
      - Namespace of the Gateway resource. Defaults to O(gateway_namespace). It must exist.
    type: str
  gateway_name:
    description:
      - Name of the gateway Deployment whose selector the Gateway uses, for example C(istio-ingressgateway).
      - Needs O(gateway_namespace).
      - Also names the gateway the resource belongs to (its labels). Without it, the gateway is the single one the
        selector picks in O(namespace), else in scope.
    type: str
  gateway_namespace:
    description:
      - Namespace of the gateway. Where O(gateway_name) is looked up, where an explicit O(selector) must pick a
        gateway, and where O(servers[].tls.credential_name) Secrets must be.
      - Without it, an explicit O(selector) is checked against the gateways of the whole cluster.
    type: str
  selector:
    description:
      - "Labels of the gateway pods the Gateway applies to, for example C({istio: ingressgateway})."
      - Defaults to the selector of the gateway Deployment O(gateway_name). When both are given, the selector must
        pick that gateway's pods.
    type: dict
  servers:
    description:
      - The listeners. Required when O(state=present).
    type: list
    elements: dict
    suboptions:
      port:
        description: The port the gateway listens on.
        type: dict
        required: true
        suboptions:
          number:
            description: Port number, the container port of the gateway (for example C(8080) behind Service port 80,
              or C(80) when the pods may bind it).
            type: int
            required: true
          name:
            description: Port name, unique within the Gateway.
            type: str
            required: true
          protocol:
            description: Protocol of the port.
            type: str
            required: true
            choices: [HTTP, HTTPS, GRPC, GRPC-WEB, HTTP2, MONGO, TCP, TLS]
      hosts:
        description:
          - Hosts the listener serves, as C([namespace/]host). C(*.example.com) or C(*/app.example.com) lets any
            namespace bind VirtualServices, C(./app.example.com) only the Gateway's namespace, and
            C(app-ns/app.example.com) only C(app-ns) (delegation).
        type: list
        elements: str
        required: true
      tls:
        description: TLS settings of the listener.
        type: dict
        suboptions:
          mode:
            description:
              - How the gateway handles TLS. V(SIMPLE), V(MUTUAL) and V(OPTIONAL_MUTUAL) terminate it with the
                certificate of O(servers[].tls.credential_name). V(PASSTHROUGH) and V(AUTO_PASSTHROUGH) forward it by
                SNI. V(ISTIO_MUTUAL) uses the mesh's certificates.
              - Required for V(HTTPS) and V(TLS) ports.
            type: str
            choices: [PASSTHROUGH, SIMPLE, MUTUAL, AUTO_PASSTHROUGH, ISTIO_MUTUAL, OPTIONAL_MUTUAL]
          credential_name:
            description:
              - Name of the Secret with the server certificate (C(tls.crt)/C(tls.key), or C(cert)/C(key)), and for
                client verification C(ca.crt) or a Secret C(<name>-cacert). It must be in the gateway's namespace.
            type: str
          https_redirect:
            description: On an V(HTTP) listener, answer every request with a redirect to HTTPS.
            type: bool
          min_protocol_version:
            description: Lowest TLS version accepted.
            type: str
            choices: [TLS_AUTO, TLSV1_0, TLSV1_1, TLSV1_2, TLSV1_3]
          max_protocol_version:
            description: Highest TLS version accepted.
            type: str
            choices: [TLS_AUTO, TLSV1_0, TLSV1_1, TLSV1_2, TLSV1_3]
          cipher_suites:
            description: Cipher suites accepted (OpenSSL names).
            type: list
            elements: str
          subject_alt_names:
            description: Subject alternative names accepted in client certificates.
            type: list
            elements: str
      name:
        description: Name of the server, shown in Envoy's statistics.
        type: str
      bind:
        description: IP address or Unix socket the listener binds to, instead of all addresses.
        type: str
  missing_secret:
    description:
      - What to do when a O(servers[].tls.credential_name) Secret is missing from the gateway's namespace or unusable.
      - V(fail) writes nothing. V(warn) writes the Gateway and warns; the listener stays down until the Secret is
        right.
    type: str
    choices: [fail, warn]
    default: fail
  state:
    description:
      - V(present) creates or updates the Gateway; V(absent) deletes it (only O(name) and O(namespace) or
        O(gateway_namespace) are needed then).
      - V(absent) deletes only a Gateway this module made (its labels), and with O(gateway_name) or
        O(gateway_namespace) only one made for that gateway; for any other the task fails and deletes nothing,
        unless O(adopt=true). The delete carries the uid and resourceVersion read as preconditions, so a Gateway
        replaced or changed in between is not deleted.
    type: str
    choices: [present, absent]
    default: present
  adopt:
    description:
      - Handle a live Gateway of that name as this module's although its labels do not say this module made it for
        this gateway (see the description), with a warning naming its owner.
      - With O(state=present), it is taken over. The module's labels are added, the fields it sets are applied with
        force (taking them from their field managers), and fields only others set stay.
      - With O(state=absent), it is deleted.
    type: bool
    default: false
seealso:
  - module: istio_ops.gateways.istio_gateway
  - module: istio_ops.gateways.gateway_cleanup
  - module: istio_ops.gateways.gateway_info
  - name: Istio Gateway reference
    description: The fields of C(networking.istio.io/v1) Gateway.
    link: https://istio.io/latest/docs/reference/config/networking/gateway/
"""

EXAMPLES = r"""
- name: HTTPS for the shared ingress gateway, hosts delegated to two application namespaces
  istio_ops.gateways.gateway_config:
    name: public
    gateway_name: istio-ingressgateway
    gateway_namespace: istio-ingress
    servers:
      - port: {number: 443, name: https, protocol: HTTPS}
        hosts:
          - shop/shop.example.com
          - blog/*.blog.example.com
        tls:
          mode: SIMPLE
          credential_name: public-example-com
          min_protocol_version: TLSV1_2
      - port: {number: 80, name: http, protocol: HTTP}
        hosts: ["*/*.example.com"]
        tls:
          https_redirect: true

- name: Plain HTTP on a dedicated gateway, selector given explicitly
  istio_ops.gateways.gateway_config:
    name: shop-http
    namespace: shop
    gateway_namespace: shop
    selector:
      istio: shop-gateway
    servers:
      - port: {number: 8080, name: http, protocol: HTTP}
        hosts: ["./shop.example.com"]

- name: Write the Gateway before the certificate exists (warns instead of failing)
  istio_ops.gateways.gateway_config:
    name: public
    gateway_name: istio-ingressgateway
    gateway_namespace: istio-ingress
    missing_secret: warn
    servers:
      - port: {number: 443, name: https, protocol: HTTPS}
        hosts: ["*.example.com"]
        tls: {mode: SIMPLE, credential_name: wildcard-example-com}

- name: Remove it
  istio_ops.gateways.gateway_config:
    name: public
    namespace: istio-ingress
    state: absent
"""

RETURN = r"""
changed:
  description: Whether the Gateway was (or, in check mode, would be) created, updated or deleted.
  returned: always
  type: bool
operation:
  description:
    - What the run did (or, in check mode, would do) to the resource. V(create), V(update), V(delete) or V(none).
    - Named so as not to clash with the C(action) key Ansible's callbacks add to task results.
  returned: always
  type: str
  sample: create
name:
  description: Name of the Gateway resource.
  returned: always
  type: str
namespace:
  description: Namespace of the Gateway resource.
  returned: always
  type: str
resource:
  description: The Gateway as the API server has it after the run (in check mode, as it would have it), without
    server-owned metadata.
  returned: when state is present
  type: dict
  sample:
    apiVersion: networking.istio.io/v1
    kind: Gateway
    metadata:
      name: public
      namespace: istio-ingress
      labels: {app.kubernetes.io/managed-by: istio_ops.gateways, gateways.istio-ops.io/gateway: istio-ingressgateway,
               gateways.istio-ops.io/gateway-namespace: istio-ingress}
    spec:
      selector: {istio: ingressgateway}
      servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: [shop/shop.example.com],
                 tls: {mode: SIMPLE, credentialName: public-example-com}}]
selector:
  description: The selector used.
  returned: when state is present
  type: dict
  sample: {istio: ingressgateway}
gateway:
  description: The gateway the resource belongs to (its labels name it).
  returned: when state is present
  type: dict
  sample: {name: istio-ingressgateway, namespace: istio-ingress}
matched_gateways:
  description: Every gateway Deployment in the cluster whose pods the selector picks, with its live pod count.
  returned: when state is present
  type: list
  elements: dict
  contains:
    name: {description: Deployment name., type: str, returned: always}
    namespace: {description: Deployment namespace., type: str, returned: always}
    role: {description: V(stable) or V(canary)., type: str, returned: always}
    pods: {description: Live pods of that Deployment the selector picks., type: int, returned: always}
secrets:
  description: The credentialName Secrets checked in the gateway's namespace.
  returned: when state is present
  type: list
  elements: dict
  contains:
    name: {description: Secret name., type: str, returned: always}
    namespace: {description: Namespace looked in (the gateway's)., type: str, returned: always}
    found: {description: Whether the Secret exists., type: bool, returned: always}
    problem: {description: Why it cannot serve the listener; null when it can., type: str, returned: always}
delegated_hosts:
  description: Hosts delegated to application namespaces, by namespace.
  returned: when state is present
  type: dict
  sample: {shop: [shop.example.com], blog: ["*.blog.example.com"]}
adopted:
  description: Whether a Gateway the module did not make was taken over or deleted because of O(adopt=true).
  returned: when adopt took over or deleted a Gateway
  type: bool
  sample: true
diff:
  description: Before and after of the resource, in diff mode.
  returned: when diff mode is on
  type: dict
timings:
  description: Seconds spent in total.
  returned: always
  type: dict
"""

from ansible_collections.istio_ops.gateways.plugins.module_utils.common import run_module
from ansible_collections.istio_ops.gateways.plugins.module_utils.gateway_config import (
    ARGUMENT_SPEC,
    MODULE_KWARGS,
    GatewayConfigManager,
)


def main():
    run_module(GatewayConfigManager, ARGUMENT_SPEC, **MODULE_KWARGS)


if __name__ == "__main__":
    main()
