"""Bad input, table-driven, across every module and role: each case fails, its message names the parameter
and the fix, and a snapshot of every object in the namespaces it touches (and the Namespace objects) is the
same before and after.

Istio's CRDs cannot be removed from the shared bed, so "a cluster without them" is an API front (faults.ApiProxy)
that answers 404 for the Istio API groups, as an API server without those CRDs does; gateway_config's
has_api check is what it exercises. istio_gateway and gateway_canary do not read Istio CRDs: on a cluster
without Istio they fail on the missing control plane (the unknown-revision cases).
"""

import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from ansible_collections.istio_ops.gateways.plugins.module_utils.cleanup import PURGE_CONFIRMATION
from tests.testbed import pki

from . import faults
from .common import (
    COUNTS,
    failed_message,
    foreign_objects,
    full_snapshot,
    snapshot_diff,
    uid,
    wait_namespace_settled,
)
from .servers import WebServer

pytestmark = pytest.mark.integration

GW = "gw"
ISTIO_GROUPS = [
    "/apis/networking.istio.io",
    "/apis/security.istio.io",
    "/apis/telemetry.istio.io",
    "/apis/extensions.istio.io",
    "/apis/install.istio.io",
]


@pytest.fixture(scope="module")
def ctx(ansible, kube, testbed, tmp_path_factory):
    """Namespaces and files the cases refer to, made once: an installed gateway (with an HPA) next to another
    team's Deployment, an empty namespace, one labelled istio-injection=disabled, one whose Deployment
    selects the default gateway labels, bad kubeconfigs and istioctls, and an API front without Istio."""
    sfx = uid()
    tmp = tmp_path_factory.mktemp("bad-input")
    c = {
        "sfx": sfx,
        "gw_ns": "rel-bad-gw-" + sfx,
        "bare_ns": "rel-bad-ns-" + sfx,
        "inj_ns": "rel-bad-inj-" + sfx,
        "col_ns": "rel-bad-col-" + sfx,
        "missing_ns": "rel-bad-missing-" + sfx,
        "labels": {"istio": "rel-bad-" + sfx},
        "istioctl": str(testbed.istioctl),
        "istioctl_canary": str(testbed.istioctl_canary),
        "revision": testbed.canary_revision,
    }
    state = json.loads(Path(testbed.kubeconfig).parent.joinpath("state.json").read_text())
    kubeconfig = yaml.safe_load(Path(testbed.kubeconfig).read_text())
    c["server"] = state["server"]
    c["ca"] = kubeconfig["clusters"][0]["cluster"]["certificate-authority"]
    (tmp / "kubeconfig-dir").mkdir()
    c["kubeconfig_dir"] = str(tmp / "kubeconfig-dir")
    (tmp / "garbage").write_text("clusters: [unclosed\n")
    c["kubeconfig_garbage"] = str(tmp / "garbage")
    _connection_mistakes(c, tmp)
    (tmp / "istioctl").write_text("#!/bin/sh\necho not executable\n")
    (tmp / "istioctl").chmod(0o644)
    c["istioctl_noexec"] = str(tmp / "istioctl")
    created = [c["bare_ns"], c["inj_ns"], c["col_ns"]]
    proxy = faults.ApiProxy(hide=ISTIO_GROUPS)
    try:
        installed = ansible.module(
            "istio_gateway",
            {
                "name": GW,
                "namespace": c["gw_ns"],
                "labels": c["labels"],
                "binary_path": c["istioctl"],
                "autoscaling": {"enabled": True, "min": 1, "max": 2},
                "wait_timeout": 180,
            },
        )
        assert installed["changed"] and not installed.get("failed"), installed.get("msg")
        team = foreign_objects(c["gw_ns"], sfx)
        for obj in team[:3]:
            kube.create(obj)
        c["team_app"] = team[0]["metadata"]["name"]
        for name in created:
            kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        kube.patch("v1", "Namespace", c["inj_ns"], None, {"metadata": {"labels": {"istio-injection": "disabled"}}})
        selector = {"istio": "ingressgateway"}
        kube.create(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "team-proxy", "namespace": c["col_ns"]},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": selector},
                    "template": {
                        "metadata": {"labels": selector},
                        "spec": {"containers": [{"name": "p", "image": "x"}]},
                    },
                },
            }
        )
        for name in [c["gw_ns"]] + created:
            wait_namespace_settled(kube, name)
        with proxy, WebServer() as login_page:
            c["no_istio_api"] = proxy.url
            c["login_page"] = login_page.url
            yield c
    finally:
        for name in [c["gw_ns"]] + created:
            kube.delete("v1", "Namespace", name)


@dataclass
class Case:
    id: str
    target: str  # module name, or "role:<role name>"
    args: object  # dict, or callable(ctx) -> dict (module args, or role variables)
    fragments: object  # list, or callable(ctx) -> list
    namespaces: object = ("gw_ns",)  # ctx keys, or literal names
    env: dict = field(default_factory=dict)

    def resolve(self, c):
        args = self.args(c) if callable(self.args) else dict(self.args)
        fragments = self.fragments(c) if callable(self.fragments) else list(self.fragments)
        namespaces = [c.get(n, n) for n in self.namespaces]
        return args, fragments, namespaces


def gw(c, **extra):
    """istio_gateway args for a new gateway in the empty namespace."""
    args = {"name": GW, "namespace": c["bare_ns"], "labels": c["labels"], "binary_path": c["istioctl"]}
    args["wait_timeout"] = 60
    args.update(extra)
    return args


def without_istioctl(args):
    """gw() args for a method that runs no istioctl."""
    return {k: v for k, v in args.items() if k != "binary_path"}


HTTP_LISTENER = {"name": "http", "port": 80, "protocol": "HTTP"}


def gateway_api(c, **extra):
    """istio_gateway args for a new Gateway API gateway in the empty namespace."""
    args = without_istioctl(gw(c, method="gateway_api", listeners=[HTTP_LISTENER], service={"type": "ClusterIP"}))
    args.pop("labels")
    args.update(extra)
    return args


def canary(c, **extra):
    args = {"name": GW, "namespace": c["gw_ns"], "revision": c["revision"], "wait_timeout": 60}
    args.update(extra)
    return {k: v for k, v in args.items() if v is not None}


def config(c, **extra):
    args = {
        "name": "rel-public",
        "gateway_name": GW,
        "gateway_namespace": c["gw_ns"],
        "servers": [{"port": {"number": 8080, "name": "http", "protocol": "HTTP"}, "hosts": ["*.example.com"]}],
    }
    args.update(extra)
    return {k: v for k, v in args.items() if v is not None}


def https(**tls):
    server = {"port": {"number": 8443, "name": "https", "protocol": "HTTPS"}, "hosts": ["*.example.com"]}
    if tls:
        server["tls"] = tls
    return [server]


def by_host(c, **extra):
    """Connection by host and token only (no kubeconfig anywhere)."""
    args = {"host": c["server"], "api_key": "rel-not-a-token-" + c["sfx"], "ca_cert": c["ca"]}
    args.update(extra)
    return {k: v for k, v in args.items() if v is not None}


NO_KUBECONFIG = {"K8S_AUTH_KUBECONFIG": ""}
BARE = ("bare_ns",)

CASES = [
    # -- istio_gateway ---------------------------------------------------------------------------------
    Case(
        "gw-name-invalid",
        "istio_gateway",
        lambda c: gw(c, name="Istio_GW"),
        ["name: 'Istio_GW' is not a valid gateway name", "e.g. istio-ingressgateway"],
        BARE,
    ),
    Case(
        "gw-name-too-long", "istio_gateway", lambda c: gw(c, name="g" * 64), ["name: '" + "g" * 64, "at most 63"], BARE
    ),
    Case(
        "gw-name-digit-first",
        "istio_gateway",
        lambda c: gw(c, name="1gw"),
        ["name: '1gw'", "starting with a letter"],
        BARE,
    ),
    Case(
        "gw-namespace-invalid",
        "istio_gateway",
        lambda c: gw(c, namespace="Team_NS"),
        ["namespace: 'Team_NS' is not a valid name"],
        BARE,
    ),
    Case(
        "gw-label-key",
        "istio_gateway",
        lambda c: gw(c, labels={"bad key!": "x"}),
        ["labels: label key 'bad key!' is invalid"],
        BARE,
    ),
    Case(
        "gw-label-value",
        "istio_gateway",
        lambda c: gw(c, labels={"istio": "bad value"}),
        ["labels: value 'bad value' of label 'istio' is invalid"],
        BARE,
    ),
    Case(
        "gw-revision-invalid",
        "istio_gateway",
        lambda c: gw(c, revision="1.31"),
        ["revision: '1.31' is not a valid name"],
        BARE,
    ),
    Case(
        "gw-method-invalid",
        "istio_gateway",
        lambda c: gw(c, method="kustomize"),
        ["method must be one of: istioctl, helm, manifest, gateway_api, got: kustomize"],
        BARE,
    ),
    Case(
        "gw-pdb-one-pod",
        "istio_gateway",
        lambda c: gw(c, pod_disruption_budget={"min_available": 1}),
        ["pod_disruption_budget: a budget needs at least 2 pods, but autoscaling.min is 1", "raise autoscaling.min"],
        BARE,
    ),
    Case(
        "gw-pdb-bad-bound",
        "istio_gateway",
        lambda c: gw(c, autoscaling={"min": 2}, pod_disruption_budget={"max_unavailable": "half"}),
        ["pod_disruption_budget.max_unavailable: 'half' is neither a count", "'50%'"],
        BARE,
    ),
    Case(
        "gw-pdb-both-bounds",
        "istio_gateway",
        lambda c: gw(c, autoscaling={"min": 2}, pod_disruption_budget={"min_available": 1, "max_unavailable": 1}),
        ["mutually exclusive: min_available|max_unavailable", "pod_disruption_budget"],
        BARE,
    ),
    Case(
        "gw-helm-options-for-istioctl",
        "istio_gateway",
        lambda c: gw(c, helm={"version": "1.30.0"}),
        ["helm: set for method istioctl; drop it, or set method: helm"],
        BARE,
    ),
    Case(
        "gw-helm-pinned-value",
        "istio_gateway",
        lambda c: without_istioctl(gw(c, method="helm", helm={"values": {"serviceAccount": {"name": "sa"}}})),
        ["helm.values.serviceAccount.name: 'sa' is set by the module", "<name>-service-account"],
        BARE,
    ),
    Case(
        "gw-helm-binary-missing",
        "istio_gateway",
        lambda c: without_istioctl(gw(c, method="helm", helm={"binary_path": "/nonexistent/helm"})),
        ["helm.binary_path: '/nonexistent/helm' is not an executable file", "Helm 3"],
        BARE,
    ),
    Case(
        "gw-manifest-with-iop-values",
        "istio_gateway",
        lambda c: without_istioctl(gw(c, method="manifest", values={"global": {"hub": "x"}})),
        ["values: IstioOperator settings apply to method istioctl only, not manifest", "use the module's options"],
        BARE,
    ),
    Case(
        "gw-manifest-with-istioctl-path",
        "istio_gateway",
        lambda c: gw(c, method="manifest"),
        ["binary_path: names istioctl, which method manifest does not run; drop it"],
        BARE,
    ),
    Case(
        "gw-api-duplicate-listener",
        "istio_gateway",
        lambda c: gateway_api(c, listeners=[HTTP_LISTENER, dict(HTTP_LISTENER, port=8080)]),
        ["listeners[1].name: 'http' is used by another listener; listener names must be unique"],
        BARE,
    ),
    Case(
        "gw-api-https-without-certificate",
        "istio_gateway",
        lambda c: gateway_api(c, listeners=[{"name": "https", "port": 443, "protocol": "HTTPS", "tls": {}}]),
        ["listeners[0].tls.certificateRefs: mode Terminate needs the Secret with the certificate"],
        BARE,
    ),
    Case(
        "gw-api-certificate-missing",
        "istio_gateway",
        lambda c: gateway_api(
            c,
            listeners=[
                {"name": "https", "port": 443, "protocol": "HTTPS", "tls": {"certificateRefs": [{"name": "nope"}]}}
            ],
        ),
        ["listeners[0].tls.certificateRefs[0]: Secret 'nope' does not exist", "missing_secret: warn"],
        BARE,
    ),
    Case(
        "gw-api-certificate-elsewhere",
        "istio_gateway",
        lambda c: gateway_api(
            c,
            listeners=[
                {
                    "name": "https",
                    "port": 443,
                    "protocol": "HTTPS",
                    "tls": {"certificateRefs": [{"name": "cert", "namespace": "istio-system"}]},
                }
            ],
        ),
        ["certificateRefs[0].namespace: 'istio-system'; the gateway's certificates stay in its own namespace"],
        BARE,
    ),
    Case(
        "gw-api-selector-labels",
        "istio_gateway",
        lambda c: dict(gateway_api(c), labels={"istio": "x"}),
        ["labels: select an istio-API gateway's pods", "infrastructure.labels"],
        BARE,
    ),
    Case(
        "gw-api-class-missing",
        "istio_gateway",
        lambda c: gateway_api(c, gateway_class="nope"),
        ["gateway_class: GatewayClass 'nope' does not exist"],
        BARE,
    ),
    Case(
        "gw-listeners-for-istioctl",
        "istio_gateway",
        lambda c: gw(c, listeners=[HTTP_LISTENER]),
        ["listeners: applies to method gateway_api only, not istioctl"],
        BARE,
    ),
    Case(
        "tag-name-is-a-revision",
        "revision_tag",
        lambda c: {"name": c["revision"], "revision": "default", "binary_path": c["istioctl"]},
        ["is a revision, not a tag; give the tag another name"],
        BARE,
    ),
    Case(
        "tag-revision-missing",
        "revision_tag",
        lambda c: {"name": "t-bad", "revision": "9-99", "binary_path": c["istioctl"]},
        ["revision: no control plane of revision '9-99'", "installed revisions"],
        BARE,
    ),
    Case(
        "tag-made-by-istioctl",
        "revision_tag",
        lambda c: {"name": "default", "revision": "default", "binary_path": c["istioctl"]},
        ["MutatingWebhookConfiguration istio-revision-tag-default is not this collection's", "adopt: true"],
        BARE,
    ),
    Case(
        "tag-batch-size-zero",
        "revision_tag",
        lambda c: {"name": "t-bad", "revision": "default", "restart": True, "batch_size": 0},
        ["batch_size: 0; restart at least 1 gateway at a time"],
        BARE,
    ),
    Case(
        "tag-min-ready-negative",
        "revision_tag",
        lambda c: {"name": "t-bad", "revision": "default", "restart": True, "min_ready": -2},
        ["min_ready: -2; give 0 or more ready endpoints"],
        BARE,
    ),
    Case(
        "tag-restart-absent",
        "revision_tag",
        lambda c: {"name": "t-bad", "state": "absent", "restart": True},
        ["restart: true with state: absent"],
        BARE,
    ),
    Case(
        "gw-revision-default",
        "istio_gateway",
        lambda c: gw(c, revision="default"),
        ["revision: use no revision (omit it)"],
        BARE,
    ),
    Case(
        "gw-revision-unknown",
        "istio_gateway",
        lambda c: gw(c, revision="9-99"),
        [
            "revision: no Istio control plane serves revision '9-99'",
            "installed revisions: ",
            "istioctl install --revision 9-99",
        ],
        BARE,
    ),
    Case(
        "gw-replicas-negative",
        "istio_gateway",
        lambda c: gw(c, replicas=-1),
        ["replicas: -1 is negative", "use 0 or more"],
        BARE,
    ),
    Case("gw-replicas-not-int", "istio_gateway", lambda c: gw(c, replicas="two"), ["replicas", "int"], BARE),
    Case(
        "gw-hpa-min-0",
        "istio_gateway",
        lambda c: gw(c, autoscaling={"min": 0}),
        ["autoscaling.min: 0 must be at least 1"],
        BARE,
    ),
    Case(
        "gw-hpa-max-below-min",
        "istio_gateway",
        lambda c: gw(c, autoscaling={"min": 3, "max": 1}),
        ["autoscaling.max: 1 is below autoscaling.min 3", "raise max or lower min"],
        BARE,
    ),
    Case(
        "gw-port-range",
        "istio_gateway",
        lambda c: gw(c, service={"ports": [{"name": "http", "port": 70000}]}),
        ["service.ports[0].port: 70000 is not a port", "1 to 65535"],
        BARE,
    ),
    Case(
        "gw-target-port-0",
        "istio_gateway",
        lambda c: gw(c, service={"ports": [{"name": "http", "port": 80, "target_port": 0}]}),
        ["service.ports[0].target_port: 0 is not a port"],
        BARE,
    ),
    Case(
        "gw-service-type",
        "istio_gateway",
        lambda c: gw(c, service={"type": "Ingress"}),
        ["type", "ClusterIP, NodePort, LoadBalancer", "Ingress"],
        BARE,
    ),
    Case("gw-kind", "istio_gateway", lambda c: gw(c, kind="sidecar"), ["kind", "ingress, egress", "sidecar"], BARE),
    Case(
        "gw-istio-namespace",
        "istio_gateway",
        lambda c: gw(c, istio_namespace="Istio System"),
        ["istio_namespace: 'Istio System' is not a valid name"],
        BARE,
    ),
    Case(
        "gw-kubeconfig-missing",
        "istio_gateway",
        lambda c: gw(c, kubeconfig="/nonexistent/kubeconfig"),
        ["kubeconfig: cannot read '/nonexistent/kubeconfig'", "K8S_AUTH_KUBECONFIG"],
        BARE,
    ),
    Case(
        "gw-kubeconfig-directory",
        "istio_gateway",
        lambda c: gw(c, kubeconfig=c["kubeconfig_dir"]),
        lambda c: ["kubeconfig: %r is a directory, not a kubeconfig file" % c["kubeconfig_dir"]],
        BARE,
    ),
    Case(
        "gw-kubeconfig-garbage",
        "istio_gateway",
        lambda c: gw(c, kubeconfig=c["kubeconfig_garbage"]),
        lambda c: ["kubeconfig: %r is not YAML" % c["kubeconfig_garbage"], "give a kubeconfig file"],
        BARE,
    ),
    Case(
        "gw-context-unknown",
        "istio_gateway",
        lambda c: gw(c, context="prod-eu"),
        ["context: 'prod-eu' is not a context of", "give one of: "],
        BARE,
    ),
    Case(
        "gw-host-unreachable",
        "istio_gateway",
        lambda c: gw(c, **by_host(c, host="https://127.0.0.1:9")),
        ["cannot reach the Kubernetes API server at https://127.0.0.1:9: connection refused", "check host and port"],
        BARE,
        NO_KUBECONFIG,
    ),
    Case(
        "gw-token-invalid",
        "istio_gateway",
        lambda c: gw(c, **by_host(c)),
        ["HTTP 401", "the credentials were rejected: check api_key"],
        BARE,
        NO_KUBECONFIG,
    ),
    Case(
        "gw-ca-unreadable",
        "istio_gateway",
        lambda c: gw(c, **by_host(c, ca_cert="/nonexistent/ca.crt")),
        ["ca_cert: '/nonexistent/ca.crt' does not exist; give the path of a PEM certificate file"],
        BARE,
        NO_KUBECONFIG,
    ),
    Case(
        "gw-ca-untrusted",
        "istio_gateway",
        lambda c: gw(c, **by_host(c, ca_cert=None)),
        ["TLS verification of the API server", "CERTIFICATE_VERIFY_FAILED", "ca_cert", "validate_certs: false"],
        BARE,
        NO_KUBECONFIG,
    ),
    Case(
        "gw-istioctl-missing",
        "istio_gateway",
        lambda c: gw(c, binary_path="/nonexistent/istioctl"),
        ["binary_path: '/nonexistent/istioctl' is not an executable file"],
        BARE,
    ),
    Case(
        "gw-istioctl-not-executable",
        "istio_gateway",
        lambda c: gw(c, binary_path=c["istioctl_noexec"]),
        ["binary_path:", "is not an executable file"],
        BARE,
    ),
    Case(
        "gw-istioctl-not-on-path",
        "istio_gateway",
        lambda c: gw(c, binary_path=None),
        ["binary_path: istioctl was not found on PATH", "set binary_path"],
        BARE,
        {"PATH": "/usr/bin:/bin"},
    ),
    Case(
        "gw-istioctl-version",
        "istio_gateway",
        lambda c: gw(c, binary_path=c["istioctl_canary"]),
        [
            "binary_path: istioctl 1.31",
            "does not match the control plane of revision 'default'",
            "skip_version_check: true",
        ],
        BARE,
    ),
    Case(
        "gw-injection-disabled",
        "istio_gateway",
        lambda c: gw(c, namespace=c["inj_ns"]),
        ["namespace:", "istio-injection=disabled", "fix_injection_label: true"],
        ("inj_ns",),
    ),
    Case(
        "gw-selector-collision",
        "istio_gateway",
        lambda c: gw(c, namespace=c["col_ns"], labels={"istio": "ingressgateway"}),
        ["labels:", "collide with Deployment(s) team-proxy", "choose labels unique"],
        ("col_ns",),
    ),
    Case(
        "gw-namespace-missing",
        "istio_gateway",
        lambda c: gw(c, namespace=c["missing_ns"], create_namespace=False),
        lambda c: ["namespace: '%s' does not exist" % c["missing_ns"], "create_namespace: true"],
        ("missing_ns",),
    ),
    # -- gateway_canary ------------------------------------------------------------------------------------
    Case(
        "canary-weight-101",
        "gateway_canary",
        lambda c: canary(c, weight=101),
        ["weight: 101 is out of range", "0 to 100"],
    ),
    Case("canary-weight-negative", "gateway_canary", lambda c: canary(c, weight=-5), ["weight: -5 is out of range"]),
    Case(
        "canary-weight-and-replicas",
        "gateway_canary",
        lambda c: canary(c, weight=10, stable_replicas=1, canary_replicas=1),
        ["mutually exclusive", "weight|stable_replicas"],
    ),
    Case(
        "canary-replicas-half",
        "gateway_canary",
        lambda c: canary(c, stable_replicas=2),
        ["required together", "stable_replicas", "canary_replicas"],
    ),
    Case(
        "canary-name-is-stable",
        "gateway_canary",
        lambda c: canary(c, canary_name=GW),
        ["canary_name: 'gw' is the stable gateway's own name", "give the canary another name"],
    ),
    Case(
        "canary-name-invalid",
        "gateway_canary",
        lambda c: canary(c, canary_name="Canary!"),
        ["canary_name: 'Canary!' is not a valid gateway name"],
    ),
    Case(
        "canary-revision-missing",
        "gateway_canary",
        lambda c: canary(c, revision=None),
        ["state is present but all of the following are missing: revision"],
    ),
    Case(
        "canary-revision-same",
        "gateway_canary",
        lambda c: canary(c, revision="default"),
        ["revision: the stable gateway 'gw' already runs revision 'default'", "needs another revision"],
    ),
    Case(
        "canary-revision-unknown",
        "gateway_canary",
        lambda c: canary(c, revision="9-99"),
        ["revision: no Istio control plane serves revision '9-99'"],
    ),
    Case(
        "canary-gateway-missing",
        "gateway_canary",
        lambda c: canary(c, name="nope"),
        ["name: no gateway Deployment 'nope'", "install it first"],
    ),
    Case(
        "canary-total-too-small",
        "gateway_canary",
        lambda c: canary(c, weight=50, total_replicas=1),
        ["weight: 50% needs a pod on each side", "raise total_replicas"],
    ),
    Case(
        "canary-total-0",
        "gateway_canary",
        lambda c: canary(c, total_replicas=0),
        ["total_replicas: 0 must be at least 1"],
    ),
    Case(
        "canary-both-0",
        "gateway_canary",
        lambda c: canary(c, stable_replicas=0, canary_replicas=0),
        ["stable_replicas, canary_replicas: both are 0"],
    ),
    Case(
        "canary-replicas-negative",
        "gateway_canary",
        lambda c: canary(c, stable_replicas=2, canary_replicas=-1),
        ["canary_replicas: -1 is negative"],
    ),
    Case(
        "canary-promote-without-canary",
        "gateway_canary",
        lambda c: canary(c, state="promoted"),
        ["state: promoted needs the canary Deployment 'gw-canary'", "state: present first"],
    ),
    Case(
        "canary-hpa-unmanaged",
        "gateway_canary",
        lambda c: canary(c, weight=50, total_replicas=2, manage_hpa=False),
        ["manage_hpa: HPA 'gw' scales 'gw'", "set manage_hpa: true"],
    ),
    Case(
        "canary-name-foreign",
        "gateway_canary",
        lambda c: canary(c, canary_name=c["team_app"]),
        lambda c: [
            "canary_name: a Deployment '%s' exists" % c["team_app"],
            "not a canary of 'gw'",
            "choose another canary_name",
        ],
    ),
    Case(
        "canary-of-foreign-app",
        "gateway_canary",
        lambda c: canary(c, name=c["team_app"]),
        lambda c: ["name: Deployment '%s'" % c["team_app"], "is not an Istio gateway"],
    ),
    # -- gateway_cleanup --------------------------------------------------------------------------------------
    Case(
        "cleanup-purge-unconfirmed",
        "gateway_cleanup",
        {"purge": True},
        ["confirm_purge:", "removes every Istio object in the cluster", PURGE_CONFIRMATION],
        ("gw_ns", "istio-system"),
    ),
    Case(
        "cleanup-purge-wrong-sentence",
        "gateway_cleanup",
        lambda c: {"purge": True, "confirm_purge": "yes", "name": GW, "namespace": c["gw_ns"]},
        ["confirm_purge:", PURGE_CONFIRMATION],
        ("gw_ns", "istio-system"),
    ),
    Case("cleanup-name-without-namespace", "gateway_cleanup", {"name": GW}, ["name", "namespace"]),
    Case(
        "cleanup-nothing-named",
        "gateway_cleanup",
        {},
        ["purge is False but all of the following are missing: name, namespace"],
    ),
    Case(
        "cleanup-name-invalid",
        "gateway_cleanup",
        lambda c: {"name": "GW!", "namespace": c["gw_ns"]},
        ["name: 'GW!' is not a valid gateway name"],
    ),
    Case(
        "cleanup-foreign-deployment",
        "gateway_cleanup",
        lambda c: {"name": c["team_app"], "namespace": c["gw_ns"]},
        ["no installer's marks say which objects belong to it", "remove it with the tool or the files that made it"],
    ),
    Case(
        "cleanup-istiod",
        "gateway_cleanup",
        {"name": "istiod", "namespace": "istio-system"},
        ["name: Deployment istio-system/istiod is not a gateway", "the control plane only with purge"],
        ("istio-system",),
    ),
    # -- gateway_config ---------------------------------------------------------------------------------------------
    Case(
        "config-name-invalid",
        "gateway_config",
        lambda c: config(c, name="Public_GW"),
        ["name: 'Public_GW' is not a valid resource name"],
    ),
    Case(
        "config-servers-missing",
        "gateway_config",
        lambda c: config(c, servers=None),
        ["state is present but all of the following are missing: servers"],
    ),
    Case(
        "config-selector-nothing",
        "gateway_config",
        lambda c: config(c, gateway_name=None, selector={"istio": "nobody"}),
        ['selector: {"istio": "nobody"} selects no gateway pods', "gateways there select:"],
    ),
    Case(
        "config-selector-empty",
        "gateway_config",
        lambda c: config(c, gateway_name=None, selector={}),
        ["selector: must hold at least one label"],
    ),
    Case(
        "config-gateway-missing",
        "gateway_config",
        lambda c: config(c, gateway_name="nope"),
        ["gateway_name: no gateway Deployment 'nope'", "gateways there:"],
    ),
    Case(
        "config-gateway-is-foreign-app",
        "gateway_config",
        lambda c: config(c, gateway_name=c["team_app"]),
        lambda c: ["gateway_name: no gateway Deployment '%s'" % c["team_app"]],
    ),
    Case(
        "config-gateway-name-alone",
        "gateway_config",
        lambda c: config(c, gateway_namespace=None, namespace=c["gw_ns"]),
        ["gateway_name", "gateway_namespace"],
    ),
    Case(
        "config-https-no-mode",
        "gateway_config",
        lambda c: config(c, servers=https()),
        ["servers[0].tls.mode: a HTTPS port needs a TLS mode"],
    ),
    Case(
        "config-simple-no-cert",
        "gateway_config",
        lambda c: config(c, servers=https(mode="SIMPLE")),
        ["servers[0].tls.credential_name: mode SIMPLE", "needs the name of a Secret"],
    ),
    Case(
        "config-secret-missing",
        "gateway_config",
        lambda c: config(c, servers=https(mode="SIMPLE", credential_name="nope-cert")),
        ["servers[0].tls.credential_name: Secret 'nope-cert' does not exist", "missing_secret: warn"],
    ),
    Case(
        "config-host-invalid",
        "gateway_config",
        lambda c: config(
            c, servers=[{"port": {"number": 8080, "name": "http", "protocol": "HTTP"}, "hosts": ["Bad Host"]}]
        ),
        ["servers[0].hosts: 'Bad Host' is not a host"],
    ),
    Case(
        "config-port-0",
        "gateway_config",
        lambda c: config(c, servers=[{"port": {"number": 0, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]),
        ["servers[0].port.number: 0 is not a port"],
    ),
    Case(
        "config-protocol",
        "gateway_config",
        lambda c: config(c, servers=[{"port": {"number": 80, "name": "q", "protocol": "QUIC"}, "hosts": ["*"]}]),
        ["protocol", "QUIC", "HTTPS"],
    ),
    Case(
        "config-namespace-missing",
        "gateway_config",
        lambda c: config(c, namespace=c["missing_ns"]),
        lambda c: ["namespace: '%s' does not exist" % c["missing_ns"]],
        ("gw_ns", "missing_ns"),
    ),
    Case(
        "config-no-istio-crds",
        "gateway_config",
        lambda c: config(c, host=c["no_istio_api"]),
        ["does not serve networking.istio.io/v1", "Istio's CRDs are not installed", "install Istio"],
        ("gw_ns",),
        NO_KUBECONFIG,
    ),
    # -- gateway_info --------------------------------------------------------------------------------------------------
    Case(
        "info-name-invalid", "gateway_info", {"name": "Bad_Name"}, ["name: 'Bad_Name' is not a valid gateway name"], ()
    ),
    Case(
        "info-namespace-invalid",
        "gateway_info",
        {"namespace": "Bad NS"},
        ["namespace: 'Bad NS' is not a valid name"],
        (),
    ),
    Case("info-token-invalid", "gateway_info", by_host, ["HTTP 401", "check api_key"], (), NO_KUBECONFIG),
    Case(
        "info-ca-untrusted",
        "gateway_info",
        lambda c: by_host(c, ca_cert=None, validate_certs=True),
        ["TLS verification", "validate_certs: false"],
        (),
        NO_KUBECONFIG,
    ),
    # -- roles, through include_role -----------------------------------------------------------------------------------
    Case(
        "role-shared-name",
        "role:shared_gateway",
        lambda c: {"shared_gateway_name": "Bad_Name", "shared_gateway_namespace": c["bare_ns"]},
        ["shared_gateway: invalid variables (name Bad_Name", "names must be DNS labels"],
        BARE,
    ),
    Case(
        "role-shared-service-type",
        "role:shared_gateway",
        lambda c: {"shared_gateway_service_type": "Ingress", "shared_gateway_namespace": c["bare_ns"]},
        ["shared_gateway_service_type", "ClusterIP, NodePort, LoadBalancer"],
        BARE,
    ),
    Case(
        "role-shared-kind",
        "role:shared_gateway",
        lambda c: {"shared_gateway_kind": "sidecar", "shared_gateway_namespace": c["bare_ns"]},
        ["shared_gateway_kind", "ingress, egress"],
        BARE,
    ),
    Case(
        "role-shared-labels-empty",
        "role:shared_gateway",
        lambda c: {"shared_gateway_labels": {}, "shared_gateway_namespace": c["bare_ns"]},
        ["shared_gateway: invalid variables", "labels {}", "labels and hosts non-empty"],
        BARE,
    ),
    Case(
        "role-shared-revision",
        "role:shared_gateway",
        lambda c: {"shared_gateway_revision": "9-99", "shared_gateway_namespace": c["bare_ns"]},
        ["shared_gateway: no Istio control plane serves revision '9-99'", "set shared_gateway_revision"],
        BARE,
    ),
    Case(
        "role-shared-istioctl",
        "role:shared_gateway",
        lambda c: {
            "shared_gateway_istioctl_path": "/nonexistent/istioctl",
            "shared_gateway_namespace": c["bare_ns"],
            "shared_gateway_labels": c["labels"],
        },
        ["binary_path: '/nonexistent/istioctl' is not an executable file"],
        BARE,
    ),
    Case(
        "role-dedicated-no-apps",
        "role:dedicated_gateway",
        {},
        ["dedicated_gateway_apps must list at least one application"],
        (),
    ),
    Case(
        "role-dedicated-duplicate",
        "role:dedicated_gateway",
        lambda c: {"dedicated_gateway_apps": [{"namespace": c["bare_ns"]}, {"namespace": c["bare_ns"]}]},
        ["each namespace once"],
        BARE,
    ),
    Case(
        "role-dedicated-no-namespace",
        "role:dedicated_gateway",
        {"dedicated_gateway_apps": [{"name": "shop-gateway"}]},
        ["each with a namespace"],
        (),
    ),
    Case(
        "role-dedicated-service-type",
        "role:dedicated_gateway",
        lambda c: {
            "dedicated_gateway_apps": [{"namespace": c["bare_ns"]}],
            "dedicated_gateway_service_type": "Ingress",
        },
        ["dedicated_gateway_service_type", "ClusterIP, NodePort, LoadBalancer"],
        BARE,
    ),
    Case(
        "role-dedicated-app-typo",
        "role:dedicated_gateway",
        lambda c: {"dedicated_gateway_apps": [{"namespace": c["bare_ns"], "tls-secret": "shop-cert"}]},
        ["dedicated_gateway_apps.tls-secret", "Supported parameters include", "tls_secret"],
        BARE,
    ),
    Case(
        "role-upgrade-strategy",
        "role:gateway_upgrade",
        lambda c: {
            "gateway_upgrade_strategy": "big_bang",
            "gateway_upgrade_namespace": c["gw_ns"],
            "gateway_upgrade_name": GW,
        },
        ["gateway_upgrade_strategy", "in_place, canary, external"],
    ),
    Case(
        "role-upgrade-tag-missing",
        "role:gateway_upgrade",
        lambda c: {"gateway_upgrade_strategy": "tag", "gateway_upgrade_revision": c["revision"]},
        ["gateway_upgrade: strategy tag", "tag needs gateway_upgrade_tag"],
    ),
    Case(
        "role-upgrade-steps-order",
        "role:gateway_upgrade",
        lambda c: {
            "gateway_upgrade_strategy": "canary",
            "gateway_upgrade_revision": c["revision"],
            "gateway_upgrade_steps": [50, 10, 100],
            "gateway_upgrade_namespace": c["gw_ns"],
            "gateway_upgrade_name": GW,
        },
        ["gateway_upgrade: strategy canary with steps [50, 10, 100]", "steps must rise from 1 to 100"],
    ),
    Case(
        "role-upgrade-steps-range",
        "role:gateway_upgrade",
        lambda c: {
            "gateway_upgrade_strategy": "canary",
            "gateway_upgrade_revision": c["revision"],
            "gateway_upgrade_steps": [0, 150],
            "gateway_upgrade_namespace": c["gw_ns"],
            "gateway_upgrade_name": GW,
        },
        ["steps must rise from 1 to 100"],
    ),
    Case(
        "role-upgrade-no-revision",
        "role:gateway_upgrade",
        lambda c: {
            "gateway_upgrade_strategy": "canary",
            "gateway_upgrade_namespace": c["gw_ns"],
            "gateway_upgrade_name": GW,
        },
        ["canary/external/tag need gateway_upgrade_revision"],
    ),
    Case(
        "role-upgrade-gateway-missing",
        "role:gateway_upgrade",
        lambda c: {
            "gateway_upgrade_strategy": "canary",
            "gateway_upgrade_revision": c["revision"],
            "gateway_upgrade_namespace": c["gw_ns"],
            "gateway_upgrade_name": "nope",
        },
        lambda c: [
            "gateway_upgrade: no gateway Deployment %s/nope" % c["gw_ns"],
            "set gateway_upgrade_name and gateway_upgrade_namespace",
        ],
    ),
    Case(
        "role-upgrade-gateway-typo",
        "role:gateway_upgrade",
        lambda c: {
            "gateway_upgrade_namespace": c["gw_ns"],
            "gateway_upgrade_name": GW,
            "gateway_upgrade_gateway": {"labels": c["labels"], "replica": 2},
        },
        ["gateway_upgrade_gateway.replica", "Supported parameters include", "replicas"],
    ),
    Case(
        "role-cleanup-name",
        "role:gateway_cleanup",
        lambda c: {"gateway_cleanup_name": "Bad_Name", "gateway_cleanup_namespace": c["gw_ns"]},
        ["gateway_cleanup: gateway_cleanup_name 'Bad_Name'", "must be DNS labels"],
    ),
    Case(
        "role-cleanup-timeout-type",
        "role:gateway_cleanup",
        lambda c: {
            "gateway_cleanup_wait_timeout": "soon",
            "gateway_cleanup_namespace": c["gw_ns"],
            "gateway_cleanup_name": GW,
        },
        ["gateway_cleanup_wait_timeout", "int"],
    ),
    # No defaults: included without variables, the role must not fall back to Istio's standard gateway.
    Case(
        "role-cleanup-no-vars",
        "role:gateway_cleanup",
        {},
        ["missing required arguments: gateway_cleanup_name, gateway_cleanup_namespace"],
        ("istio-ingress", "gw_ns"),
    ),
    Case(
        "role-cleanup-foreign",
        "role:gateway_cleanup",
        lambda c: {"gateway_cleanup_name": c["team_app"], "gateway_cleanup_namespace": c["gw_ns"]},
        ["no installer's marks say which objects belong to it"],
    ),
]


def _connection_mistakes(c, tmp):
    """Files for ordinary connection mistakes: CA files that hold no certificate, client certificates and keys
    that are not PEM or do not match, YAML that is no kubeconfig."""
    (tmp / "empty.crt").write_text("")
    (tmp / "not-pem.crt").write_text("this is not a certificate\n")
    (tmp / "not-a-kubeconfig.yaml").write_text("foo: bar\n")
    one, other = pki.CA(tmp, "rel-ca-one"), pki.CA(tmp, "rel-ca-other")
    c["client_cert"], _key = (str(p) for p in one.issue("rel-client", "rel-client"))
    c["other_key"] = str(other.issue("rel-other", "rel-other")[1])
    c.update(
        ca_empty=str(tmp / "empty.crt"),
        ca_not_pem=str(tmp / "not-pem.crt"),
        not_a_kubeconfig=str(tmp / "not-a-kubeconfig.yaml"),
    )


CONNECTION_CASES = [
    Case(
        "info-ca-empty",
        "gateway_info",
        lambda c: by_host(c, ca_cert=c["ca_empty"]),
        lambda c: ["ca_cert: %r holds no PEM certificate (it is empty)" % c["ca_empty"]],
        (),
        NO_KUBECONFIG,
    ),
    Case(
        "info-ca-not-pem",
        "gateway_info",
        lambda c: by_host(c, ca_cert=c["ca_not_pem"]),
        lambda c: ["ca_cert: %r holds no PEM certificate;" % c["ca_not_pem"]],
        (),
        NO_KUBECONFIG,
    ),
    Case(
        "info-ca-directory",
        "gateway_info",
        lambda c: by_host(c, ca_cert=c["kubeconfig_dir"]),
        lambda c: ["ca_cert: %r is a directory, not a PEM file" % c["kubeconfig_dir"]],
        (),
        NO_KUBECONFIG,
    ),
    Case(
        "info-client-cert-not-pem",
        "gateway_info",
        lambda c: by_host(c, api_key=None, client_cert=c["ca_not_pem"], client_key=c["other_key"]),
        lambda c: ["client_cert: %r holds no PEM certificate" % c["ca_not_pem"]],
        (),
        NO_KUBECONFIG,
    ),
    Case(
        "info-client-key-not-pem",
        "gateway_info",
        lambda c: by_host(c, api_key=None, client_cert=c["client_cert"], client_key=c["ca_not_pem"]),
        lambda c: ["client_key: %r holds no PEM private key" % c["ca_not_pem"]],
        (),
        NO_KUBECONFIG,
    ),
    Case(
        "info-client-key-mismatch",
        "gateway_info",
        lambda c: by_host(c, api_key=None, client_cert=c["client_cert"], client_key=c["other_key"]),
        lambda c: ["client_cert/client_key: the key %r does not match the certificate" % c["other_key"]],
        (),
        NO_KUBECONFIG,
    ),
    Case(
        "info-client-cert-without-key",
        "gateway_info",
        lambda c: by_host(c, api_key=None, client_cert=c["client_cert"]),
        ["client_cert: given without client_key"],
        (),
        NO_KUBECONFIG,
    ),
    Case(
        "info-host-no-scheme",
        "gateway_info",
        lambda c: by_host(c, host=c["server"].split("://", 1)[1]),
        lambda c: ["host: %r has no http(s) scheme" % c["server"].split("://", 1)[1], repr(c["server"])],
        (),
        NO_KUBECONFIG,
    ),
    Case(
        "info-not-a-kubeconfig",
        "gateway_info",
        lambda c: {"kubeconfig": c["not_a_kubeconfig"]},
        lambda c: ["kubeconfig: %r is not a kubeconfig" % c["not_a_kubeconfig"], "`clusters` and `contexts`"],
        (),
    ),
    Case(
        "info-host-login-page",
        "gateway_info",
        lambda c: {"host": c["login_page"], "api_key": "rel-token"},
        lambda c: ["at %s answered with content that is not JSON (Content-Type text/html" % c["login_page"]],
        (),
        NO_KUBECONFIG,
    ),
    # The same mistakes through istioctl's module: the connection is checked before istioctl runs.
    Case(
        "gw-ca-empty",
        "istio_gateway",
        lambda c: gw(c, **by_host(c, ca_cert=c["ca_empty"])),
        lambda c: ["ca_cert: %r holds no PEM certificate (it is empty)" % c["ca_empty"]],
        BARE,
        NO_KUBECONFIG,
    ),
    Case(
        "gw-host-no-scheme",
        "istio_gateway",
        lambda c: gw(c, **by_host(c, host=c["server"].split("://", 1)[1])),
        ["has no http(s) scheme"],
        BARE,
        NO_KUBECONFIG,
    ),
]
CASES += CONNECTION_CASES


def role_play(role):
    return textwrap.dedent(
        """\
        - hosts: localhost
          gather_facts: false
          tasks:
            - name: Role under test
              ansible.builtin.include_role:
                name: istio_ops.gateways.%s
        """
        % role
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_fails_clearly_and_changes_nothing(ansible, kube, ctx, case):
    args, fragments, namespaces = case.resolve(ctx)
    COUNTS["inputs_tried"] += 1
    before = full_snapshot(kube, namespaces)
    if case.target.startswith("role:"):
        _rc, parsed, raw = ansible.playbook(role_play(case.target[5:]), extra_vars=args, env=case.env)
        assert parsed is not None, raw[-3000:]
        message = failed_message(parsed)
    else:
        result = ansible.module(case.target, args, env=case.env)
        raw = result["_raw"]
        message = failed_message(result)
    assert message, "the run did not fail:\n%s" % raw[-3000:]
    missing = [f for f in fragments if f not in message]
    assert not missing, "message lacks %s:\n%s" % (missing, message)
    after = full_snapshot(kube, namespaces)
    assert after == before, "a failed run changed the cluster: %s" % snapshot_diff(before, after)
    COUNTS["inputs_rejected_cleanly"] += 1
