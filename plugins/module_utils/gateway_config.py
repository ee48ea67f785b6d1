# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""gateway_config: one networking.istio.io/v1 Gateway resource bound to an installed gateway.

A Gateway resource whose selector picks no gateway pod is accepted by the API server and silently
does nothing, so the selector is checked against the live gateways before anything is written.
A credentialName whose Secret is not in the gateway's namespace makes the listener fail at
runtime, so that is checked too. `changed` comes from a server-side apply dry-run compared with
the live object.
"""

import json
import re

from ansible_collections.istio_ops.gateways.plugins.module_utils import inventory, owners, validate
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.args import AUTH_ARG_SPEC, merge_specs
from ansible_collections.istio_ops.gateways.plugins.module_utils.common import Manager
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import GatewayError, InputError
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import Conflict, object_diff, strip_noise

API_VERSION = "networking.istio.io/v1"
PROTOCOLS = ["HTTP", "HTTPS", "GRPC", "GRPC-WEB", "HTTP2", "MONGO", "TCP", "TLS"]
TLS_MODES = ["PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"]
TLS_VERSIONS = ["TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"]
# Modes in which the gateway terminates TLS with its own certificate (credentialName).
TERMINATING = ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL")
CLIENT_CA_MODES = ("MUTUAL", "OPTIONAL_MUTUAL")

TLS_OPTIONS = dict(
    mode=dict(type="str", choices=TLS_MODES),
    credential_name=dict(type="str"),
    https_redirect=dict(type="bool"),
    min_protocol_version=dict(type="str", choices=TLS_VERSIONS),
    max_protocol_version=dict(type="str", choices=TLS_VERSIONS),
    cipher_suites=dict(type="list", elements="str"),
    subject_alt_names=dict(type="list", elements="str"),
)
SERVER_OPTIONS = dict(
    port=dict(
        type="dict",
        required=True,
        options=dict(
            number=dict(type="int", required=True),
            name=dict(type="str", required=True),
            protocol=dict(type="str", required=True, choices=PROTOCOLS),
        ),
    ),
    hosts=dict(type="list", elements="str", required=True),
    tls=dict(type="dict", options=TLS_OPTIONS),
    name=dict(type="str"),
    bind=dict(type="str"),
)
ARGUMENT_SPEC = merge_specs(
    AUTH_ARG_SPEC,
    dict(
        name=dict(type="str", required=True),
        namespace=dict(type="str"),
        gateway_name=dict(type="str"),
        gateway_namespace=dict(type="str"),
        selector=dict(type="dict"),
        servers=dict(type="list", elements="dict", options=SERVER_OPTIONS),
        missing_secret=dict(type="str", default="fail", choices=["fail", "warn"]),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        adopt=dict(type="bool", default=False),
    ),
)
MODULE_KWARGS = dict(
    required_if=[("state", "present", ("servers",))],
    required_by={"gateway_name": "gateway_namespace"},
)

# host = [namespace/]dnsName, where namespace is `*`, `.` or a name, and dnsName may start with `*.` or be `*`.
_HOST = re.compile(r"^(\*|\*\.)?([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_TLS_KEYS = {"credential_name": "credentialName", "https_redirect": "httpsRedirect"}


def check_inputs(params):
    """Every input error at once, before the cluster is touched."""
    errors = [resource_name_error("name", params["name"])]
    for key in ("namespace", "gateway_namespace"):
        if params.get(key):
            errors.append(validate.dns1123_label(key, params[key]))
    if params.get("gateway_name"):
        errors.append(validate.service_name("gateway_name", params["gateway_name"]))
    if not (params.get("namespace") or params.get("gateway_namespace")):
        errors.append("namespace: give the namespace of the Gateway resource, or gateway_namespace to default to it")
    if params["state"] == "present":
        if not (params.get("gateway_name") or params.get("selector")):
            errors.append(
                "selector: give gateway_name and gateway_namespace to take the selector from an installed gateway, "
                "or selector (e.g. {istio: ingressgateway})"
            )
        if params.get("selector") is not None:
            errors += validate.labels("selector", params["selector"])
        for index, server in enumerate(params.get("servers") or []):
            errors += server_errors("servers[%d]" % index, server)
        if params.get("servers") == []:
            errors.append("servers: give at least one server (port and hosts)")
    errors = [e for e in errors if e]
    if errors:
        raise InputError("; ".join(errors))


def resource_name_error(param, value):
    """Gateway names are DNS-1123 subdomains (dots allowed, unlike namespaces)."""
    if not value or len(value) > 253 or not _SUBDOMAIN.match(value):
        return (
            "%s: %r is not a valid resource name; use lower-case letters, digits, '-' and '.', starting and ending "
            "with a letter or digit (e.g. public-https)" % (param, value)
        )
    return None


def server_errors(where, server):
    errors = [validate.port(where + ".port.number", server["port"]["number"])]
    if not server["hosts"]:
        errors.append("%s.hosts: give at least one host, e.g. '*.example.com' or 'app-ns/app.example.com'" % where)
    for host in server["hosts"]:
        errors.append(host_error(where + ".hosts", host))
    tls = server.get("tls") or {}
    protocol = server["port"]["protocol"]
    if protocol in ("HTTPS", "TLS") and not tls.get("mode"):
        errors.append("%s.tls.mode: a %s port needs a TLS mode (e.g. SIMPLE with credential_name)" % (where, protocol))
    if tls.get("mode") in TERMINATING and not tls.get("credential_name"):
        errors.append(
            "%s.tls.credential_name: mode %s terminates TLS at the gateway and needs the name of a Secret with the "
            "certificate in the gateway's namespace" % (where, tls["mode"])
        )
    if tls.get("credential_name") and tls.get("mode") not in TERMINATING:
        errors.append(
            "%s.tls.credential_name: only modes %s use a certificate; mode %s does not"
            % (where, "/".join(TERMINATING), tls.get("mode") or "PASSTHROUGH")
        )
    return errors


def host_error(param, host):
    namespace, sep, dns_name = host.rpartition("/")
    if sep and namespace not in ("*", ".") and validate.dns1123_label(param, namespace):
        return "%s: %r has an invalid namespace part %r; use '*', '.' or a namespace name" % (param, host, namespace)
    if not dns_name or not _HOST.match(dns_name):
        return "%s: %r is not a host; use [namespace/]name, e.g. '*.example.com' or 'app-ns/app.example.com'" % (
            param,
            host,
        )
    return None


def delegations(servers):
    """{namespace: [hosts]} of the hosts delegated to application namespaces (`app-ns/*.example.com`)."""
    found = {}
    for server in servers or []:
        for host in server["hosts"]:
            namespace, sep, dns_name = host.rpartition("/")
            if sep and namespace not in ("*", ".") and dns_name not in found.get(namespace, []):
                found.setdefault(namespace, []).append(dns_name)
    return found


def render_server(server):
    port = server["port"]
    rendered = {
        "port": {"number": port["number"], "name": port["name"], "protocol": port["protocol"]},
        "hosts": list(server["hosts"]),
    }
    if server.get("tls"):
        tls = {}
        for key, value in server["tls"].items():
            if value is not None:
                tls[_TLS_KEYS.get(key) or _camel(key)] = value
        rendered["tls"] = tls
    for key in ("name", "bind"):
        if server.get(key):
            rendered[key] = server[key]
    return rendered


def _camel(snake):
    head, *rest = snake.split("_")
    return head + "".join(word.capitalize() for word in rest)


def render_gateway(name, namespace, selector, servers, owner):
    """The Gateway resource, labelled with the gateway it belongs to (for gateway_cleanup)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Gateway",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                L.GATEWAY_OF: owner["name"],
                L.GATEWAY_NAMESPACE_OF: owner["namespace"],
                L.MANAGED_BY: L.MANAGED_BY_VALUE,
            },
        },
        "spec": {"selector": dict(selector), "servers": [render_server(s) for s in servers]},
    }


def foreign_problem(live, gateway=None):
    """Why the live Gateway is not this collection's to change or delete, or None when it is.

    It is when it carries the marks render_gateway puts on it and, for each of `gateway` ({name,
    namespace} of the gateway it should belong to; a missing key is not compared), the same value.
    """
    labels = live["metadata"].get("labels") or {}
    marks = (L.MANAGED_BY, L.GATEWAY_OF, L.GATEWAY_NAMESPACE_OF)
    if (
        labels.get(L.MANAGED_BY) != L.MANAGED_BY_VALUE
        or not labels.get(L.GATEWAY_OF)
        or not labels.get(L.GATEWAY_NAMESPACE_OF)
    ):
        return "it lacks the labels gateway_config puts on the Gateways it makes (%s=%s, %s and %s)" % (
            marks[0],
            L.MANAGED_BY_VALUE,
            marks[1],
            marks[2],
        )
    theirs = {"name": labels[L.GATEWAY_OF], "namespace": labels[L.GATEWAY_NAMESPACE_OF]}
    wanted = {k: v for k, v in (gateway or {}).items() if v}
    if any(theirs[k] != v for k, v in wanted.items()):
        return "gateway_config made it for gateway %s/%s (labels %s, %s), not for %s" % (
            theirs["namespace"],
            theirs["name"],
            L.GATEWAY_NAMESPACE_OF,
            L.GATEWAY_OF,
            "/".join(wanted.get(k, "*") for k in ("namespace", "name")),
        )
    return None


def stale_fields(live, desired):
    """A merge patch (RFC 7386) removing from the map `live` the keys `desired` lacks, recursively in maps."""
    patch = {}
    for key, value in live.items():
        if key not in desired:
            patch[key] = None
        elif isinstance(value, dict) and isinstance(desired[key], dict):
            inner = stale_fields(value, desired[key])
            if inner:
                patch[key] = inner
    return patch


def _without(live, patch):
    """`live` with the removals of a stale_fields() patch made locally (what the server would return)."""
    kept = {}
    for key, value in live.items():
        if key in patch and patch[key] is None:
            continue
        kept[key] = _without(value, patch[key]) if key in patch else value
    return kept


def _pod_labels(dep):
    return dep["spec"]["template"]["metadata"].get("labels") or {}


def _match_labels(dep):
    return dep["spec"].get("selector", {}).get("matchLabels") or {}


def _describe(dep):
    meta = dep["metadata"]
    return "%s (%s/%s)" % (json.dumps(_match_labels(dep), sort_keys=True), meta["namespace"], meta["name"])


def resolve(gateways, params):
    """(selector, owner Deployment, [matched Deployments]) from find_gateways output; raise when nothing fits.

    `gateways` is [(stable, [canaries])] for the whole cluster. Istio applies a Gateway to every pod
    its selector picks in any namespace, so matches are reported cluster-wide.
    """
    scope = params.get("gateway_namespace")
    where = "in namespace %r" % scope if scope else "in the cluster"
    in_scope = [(s, c) for s, c in gateways if not scope or s["metadata"]["namespace"] == scope]
    owner = None
    if params.get("gateway_name"):
        owner = next((s for s, _c in in_scope if s["metadata"]["name"] == params["gateway_name"]), None)
        if owner is None:
            raise InputError(
                "gateway_name: no gateway Deployment %r %s; gateways there: %s"
                % (params["gateway_name"], where, ", ".join(_describe(s) for s, _c in in_scope[:20]) or "none")
            )
    selector = params.get("selector") or _match_labels(owner)
    if owner is not None and not validate.selector_matches(selector, _pod_labels(owner)):
        raise InputError(
            "selector: %s does not select the pods of gateway %s/%s, whose own selector is %s; drop selector to "
            "use the gateway's"
            % (
                json.dumps(selector, sort_keys=True),
                owner["metadata"]["namespace"],
                owner["metadata"]["name"],
                json.dumps(_match_labels(owner), sort_keys=True),
            )
        )
    picked = [(s, c) for s, c in gateways if validate.selector_matches(selector, _pod_labels(s))]
    picked_in_scope = [(s, c) for s, c in picked if not scope or s["metadata"]["namespace"] == scope]
    if not picked_in_scope:
        raise InputError(
            "selector: %s selects no gateway pods %s, so the Gateway would do nothing; gateways there select: %s"
            % (
                json.dumps(selector, sort_keys=True),
                where,
                ", ".join(_describe(s) for s, _c in in_scope[:20]) or "none",
            )
        )
    if owner is None:
        target_ns = params.get("namespace") or scope
        local = [s for s, _c in picked_in_scope if s["metadata"]["namespace"] == target_ns]
        candidates = local or [s for s, _c in picked_in_scope]
        if len(candidates) > 1:
            raise InputError(
                "gateway_name: selector %s picks several gateways (%s); give gateway_name and gateway_namespace to "
                "say which one this Gateway belongs to"
                % (json.dumps(selector, sort_keys=True), ", ".join(_describe(s) for s in candidates[:20]))
            )
        owner = candidates[0]
    matched = []
    # The owner first, then the others by namespace: the order warnings and results show them in.
    for stable, canaries in sorted(picked, key=lambda p: (p[0] is not owner, p[0]["metadata"]["namespace"])):
        matched += [stable] + [c for c in canaries if validate.selector_matches(selector, _pod_labels(c))]
    return selector, owner, matched


def secret_problem(secret, name, mode, ca_secret):
    """Why a credentialName Secret cannot serve, or None."""
    if secret is None:
        return "Secret %r does not exist" % name
    data = secret.get("data") or {}
    if not ({"tls.crt", "tls.key"} <= set(data) or {"cert", "key"} <= set(data)):
        return "Secret %r has neither tls.crt/tls.key nor cert/key" % name
    if mode in CLIENT_CA_MODES and "ca.crt" not in data and "cacert" not in data and ca_secret is None:
        return "Secret %r has no client CA for mode %s (key ca.crt, or a Secret %r)" % (name, mode, name + "-cacert")
    return None


class GatewayConfigManager(Manager):
    def run(self):
        p = self.params
        check_inputs(p)
        if not self.kube.has_api(API_VERSION):
            raise GatewayError(
                "the cluster does not serve %s: Istio's CRDs are not installed (or Istio is older than 1.22); install "
                "Istio (istioctl install, or the base chart) before configuring gateways" % API_VERSION
            )
        namespace = p.get("namespace") or p["gateway_namespace"]
        self.result.update({"name": p["name"], "namespace": namespace})
        live = self.kube.get(API_VERSION, "Gateway", p["name"], namespace)
        if p["state"] == "absent":
            return self._absent(live, namespace)
        return self._present(live, namespace)

    def _present(self, live, namespace):
        p = self.params
        if self.kube.get("v1", "Namespace", namespace) is None:
            raise InputError("namespace: %r does not exist; create it first (or install the gateway there)" % namespace)
        selector, owner, matched = resolve(inventory.find_gateways(self.kube), p)
        owner_ref = {"name": owner["metadata"]["name"], "namespace": owner["metadata"]["namespace"]}
        self.result.update({"selector": selector, "gateway": owner_ref})
        self.result["matched_gateways"] = [self._matched(d, selector) for d in matched]
        others = [d for d in matched if d["metadata"]["namespace"] != owner_ref["namespace"]]
        if others:
            self.module.warn(
                "selector %s also selects gateways in other namespaces (%s); Istio applies this Gateway to them too "
                "unless istiod runs with PILOT_SCOPE_GATEWAY_TO_NAMESPACE=true"
                % (json.dumps(selector, sort_keys=True), ", ".join(_describe(d) for d in others[:10]))
            )
        self._check_secrets(owner_ref["namespace"])
        self._check_delegations()
        if live is not None:
            self._claim(
                live,
                owner_ref,
                "choose another name, or set adopt: true to take it over (its labels then say this collection made "
                "it, for gateway %s/%s, and gateway_cleanup with gateway_configs: true deletes it with that gateway)"
                % (owner_ref["namespace"], owner_ref["name"]),
            )

        desired = render_gateway(p["name"], namespace, selector, p["servers"], owner_ref)
        # Force only over an object that is ours (or adopted): a create that meets an object made
        # meanwhile by someone else must surface the conflict, not take their fields.
        force = live is not None
        after = self._adopted(self._apply(desired, dry_run=True, force=force), desired, dry_run=True)
        if live is None:
            action = "create"
        else:
            action = "none" if strip_noise(after) == strip_noise(live) else "update"
        if action != "none" and not self.check_mode:
            after = self._adopted(self._apply(desired, force=force), desired)
        self.result.update({"operation": action, "changed": action != "none", "resource": strip_noise(after)})
        if self.module._diff:
            self.result["diff"] = object_diff(live, after if action != "none" else live)
        return self.result

    def _claim(self, live, gateway, fix):
        """Refuse a live Gateway that is not this collection's (for `gateway`), unless adopt: true."""
        problem = foreign_problem(live, gateway)
        if problem is None:
            return
        if not self.params["adopt"]:
            raise owners.refuse(live, problem, fix)
        self.result["adopted"] = True
        self.module.warn(
            "adopt: true: Gateway %s/%s is handled as this collection's although %s (%s)"
            % (live["metadata"]["namespace"], live["metadata"]["name"], problem, owners.describe_owner(live))
        )

    def _adopted(self, after, desired, dry_run=False):
        """After a forced apply over an adopted Gateway, remove the spec fields only its former owners set.

        Server-side apply leaves them (a selector key of theirs would make the Gateway select no pod).
        """
        stale = stale_fields(after.get("spec") or {}, desired["spec"]) if self.result.get("adopted") else {}
        if not stale:
            return after
        if dry_run:
            return dict(after, spec=_without(after["spec"], stale))
        meta = desired["metadata"]
        return self.kube.patch(API_VERSION, "Gateway", meta["name"], meta["namespace"], {"spec": stale})

    def _apply(self, desired, dry_run=False, force=True):
        try:
            return self.kube.apply(desired, dry_run=dry_run, force=force)
        except Conflict as exc:
            meta = desired["metadata"]
            live = self.kube.get(API_VERSION, "Gateway", meta["name"], meta["namespace"]) or desired
            raise owners.refuse(
                live,
                "it was created by someone else while this run wrote it (%s)" % exc,
                "run again to decide on it as it is now",
            )

    def _absent(self, live, namespace):
        p = self.params
        self.result["operation"] = "none"
        if live is not None:
            self._claim(
                live,
                {"name": p.get("gateway_name"), "namespace": p.get("gateway_namespace")},
                "delete it with the tool that made it, or set adopt: true to delete it anyway",
            )
            deleted = self.kube.delete(API_VERSION, "Gateway", p["name"], namespace, dry_run=self.check_mode, read=live)
            self.result.update({"changed": deleted, "operation": "delete" if deleted else "none"})
        if self.module._diff:
            self.result["diff"] = object_diff(live, None)
        return self.result

    def _matched(self, dep, selector):
        meta = dep["metadata"]
        pods = self.kube.list("v1", "Pod", meta["namespace"], label_selector=L.selector_string(selector))
        return {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "role": "canary" if (meta.get("labels") or {}).get(L.CANARY_OF) else "stable",
            "pods": len(
                [o for o in pods if validate.selector_matches(_match_labels(dep), o["metadata"].get("labels") or {})]
            ),
        }

    def _check_secrets(self, gateway_namespace):
        """Istio reads credentialName from the gateway pods' namespace, whatever the Gateway's namespace."""
        problems = []
        self.result["secrets"] = []
        for index, server in enumerate(self.params["servers"]):
            tls = server.get("tls") or {}
            name = tls.get("credential_name")
            if not name or "://" in name:  # sds:// and kubernetes-gateway:// references are not plain Secrets
                continue
            secret = self.kube.get("v1", "Secret", name, gateway_namespace)
            ca_secret = None
            if tls.get("mode") in CLIENT_CA_MODES:
                ca_secret = self.kube.get("v1", "Secret", name + "-cacert", gateway_namespace)
            problem = secret_problem(secret, name, tls.get("mode"), ca_secret)
            self.result["secrets"].append(
                {"name": name, "namespace": gateway_namespace, "found": secret is not None, "problem": problem}
            )
            if problem:
                problems.append(
                    "servers[%d].tls.credential_name: %s in namespace %r" % (index, problem, gateway_namespace)
                )
        if not problems:
            return
        hint = (
            "; create it there (kubectl create -n %s secret tls NAME --cert=... --key=...), or set missing_secret: "
            "warn to write the Gateway anyway" % gateway_namespace
        )
        if self.params["missing_secret"] == "fail":
            raise InputError("; ".join(problems) + hint)
        for problem in problems:
            self.module.warn(problem + "; the listener stays down until the Secret is right")

    def _check_delegations(self):
        delegated = delegations(self.params["servers"])
        self.result["delegated_hosts"] = delegated
        for namespace in sorted(delegated):
            if self.kube.get("v1", "Namespace", namespace) is None:
                self.module.warn(
                    "hosts %s are delegated to namespace %r, which does not exist yet; no VirtualService can bind "
                    "them until it does" % (", ".join(delegated[namespace]), namespace)
                )
