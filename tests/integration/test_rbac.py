"""docs/rbac/rbac.yml on the test bed: the modules run as its ServiceAccount, and a missing permission is named.

The modules authenticate with host + api_key (a token minted for the ServiceAccount) + ca_cert, with no
kubeconfig in reach, so every request (the modules' own and istioctl's) is made as that identity.
"""

import base64
import copy
import uuid
from pathlib import Path

import pytest
import yaml

from .conftest import snapshot

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RBAC_FILE = ROOT / "docs" / "rbac" / "rbac.yml"
RBAC = yaml.safe_load(RBAC_FILE.read_text())["items"]  # a v1 List, as kubectl apply -f takes it
[SERVICE_ACCOUNT] = [d for d in RBAC if d["kind"] == "ServiceAccount"]
SA_NAME = SERVICE_ACCOUNT["metadata"]["name"]
SA_NAMESPACE = SERVICE_ACCOUNT["metadata"]["namespace"]
WRITE_ROLE = next(d for d in RBAC if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("-write"))
READ_ROLE = next(d for d in RBAC if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("-read"))
LIMITED = SA_NAME + "-limited"
# No kubeconfig anywhere: only the token and the CA given as module options.
NO_KUBECONFIG = {"K8S_AUTH_KUBECONFIG": "", "KUBECONFIG": ""}
LABELS = {"istio": "rbac-gateway"}


def ref(obj):
    meta = obj["metadata"]
    return (obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))


def delete_all(kube, objects):
    """Namespaced objects first, the namespace last; leftovers of an earlier run are removed the same way."""
    for obj in sorted(objects, key=lambda o: o["kind"] == "Namespace"):
        kube.delete(*ref(obj))
    kube.wait_deleted([ref(o) for o in objects if o["kind"] == "Namespace"], 120)


def token_for(kube, name, namespace=SA_NAMESPACE):
    """A bound token for a ServiceAccount (TokenRequest), as `kubectl create token` makes it."""
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}}
    path = "/api/v1/namespaces/%s/serviceaccounts/%s/token" % (namespace, name)
    return kube.request("POST", path, body=body)["status"]["token"]


def bed_connection(kubeconfig, tmp_dir):
    """(server, CA file) of the test bed, from its kubeconfig (certificate-authority-data or a file)."""
    config = yaml.safe_load(Path(kubeconfig).read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])["context"]
    cluster = next(c for c in config["clusters"] if c["name"] == context["cluster"])["cluster"]
    if cluster.get("certificate-authority-data"):
        ca = Path(tmp_dir) / "ca.crt"
        ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    else:
        ca = Path(kubeconfig).parent / cluster["certificate-authority"]
    return cluster["server"], str(ca)


def bind_optional_role(kube, role, namespace):
    """An optional ClusterRole of docs/rbac/rbac.yml bound to the ServiceAccount in one namespace (docs/rbac.md)."""
    kube.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": role, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": SA_NAME, "namespace": SA_NAMESPACE}],
        }
    )


def namespace_snapshot(kube, namespace):
    """snapshot() of one namespace; other namespaces come and go with tests running in parallel on the bed."""
    return {
        key: value
        for key, value in snapshot(kube, [namespace]).items()
        if not key.startswith("Namespace/") or key == "Namespace/" + namespace
    }


def limited_objects(verb, resource):
    """A second ServiceAccount bound to the read role and to a copy of the write role without one verb."""
    role = copy.deepcopy(WRITE_ROLE)
    role["metadata"]["name"] = "%s-without-%s-%s" % (WRITE_ROLE["metadata"]["name"], verb, resource)
    rules = []
    for rule in role["rules"]:
        if resource not in rule["resources"]:
            rules.append(rule)
            continue
        others = [r for r in rule["resources"] if r != resource]
        if others:  # the other resources of the rule keep the verb
            rules.append(dict(rule, resources=others))
        rules.append(dict(rule, resources=[resource], verbs=[v for v in rule["verbs"] if v != verb]))
    role["rules"] = rules
    subject = [{"kind": "ServiceAccount", "name": LIMITED, "namespace": SA_NAMESPACE}]
    account = copy.deepcopy(SERVICE_ACCOUNT)
    account["metadata"]["name"] = LIMITED
    bindings = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "%s-%s" % (LIMITED, r["metadata"]["name"])},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": r["metadata"]["name"]},
            "subjects": subject,
        }
        for r in (READ_ROLE, role)
    ]
    return [account, role] + bindings


@pytest.fixture(scope="module")
def rbac(kube, testbed, tmp_path_factory):
    """docs/rbac/rbac.yml applied as the bed's admin; its ServiceAccount's connection options."""
    delete_all(kube, RBAC)
    for obj in RBAC:
        kube.apply(obj)
    server, ca = bed_connection(testbed.kubeconfig, tmp_path_factory.mktemp("rbac"))
    yield {"host": server, "ca_cert": ca, "api_key": token_for(kube, SA_NAME)}
    delete_all(kube, RBAC)


@pytest.fixture(scope="module")
def installed(ansible, testbed, rbac, kube):
    """A gateway the ServiceAccount installed in a namespace it created; removed afterwards."""
    namespace = "rbac-%s" % uuid.uuid4().hex[:6]
    args = dict(rbac, name="rbac-gateway", namespace=namespace, labels=LABELS, binary_path=str(testbed.istioctl))
    args["wait_timeout"] = 180
    first = ansible.module("istio_gateway", args, env=NO_KUBECONFIG)
    yield args, first
    kube.delete("v1", "Namespace", namespace)
    kube.wait_deleted([("v1", "Namespace", namespace, None)], 120)


def test_service_account_installs_and_reconciles_a_gateway(ansible, installed):
    args, first = installed
    assert not first.get("failed"), first.get("msg")
    assert first["changed"] and first["namespace_created"]
    assert any(" ".join(c["argv"][1:3]) == "install -y" for c in first["istioctl"]["commands"])
    assert first["deployment"]["ready_replicas"] >= 1

    again = ansible.module("istio_gateway", args, env=NO_KUBECONFIG)
    assert not again.get("failed"), again.get("msg")
    assert again["changed"] is False
    assert {o["action"] for o in again["objects"]} == {"none"}


def test_service_account_reads_gateways(ansible, installed, rbac):
    args, _first = installed
    info = ansible.module("gateway_info", dict(rbac, namespace=args["namespace"]), env=NO_KUBECONFIG)
    assert not info.get("failed"), info.get("msg")
    [gateway] = info["gateways"]
    assert gateway["name"] == "rbac-gateway" and LABELS.items() <= gateway["selector"].items()
    assert gateway["owner"]["managed_by_collection"] is True

    cluster_wide = ansible.module("gateway_info", rbac, env=NO_KUBECONFIG)
    assert not cluster_wide.get("failed"), cluster_wide.get("msg")


@pytest.fixture
def limited(kube, rbac, request):
    """Connection options of a ServiceAccount that lacks one permission of the write role."""
    verb, resource = request.param
    objects = limited_objects(verb, resource)
    delete_all(kube, objects)
    for obj in objects:
        kube.apply(obj)
    yield dict(rbac, api_key=token_for(kube, LIMITED)), verb, resource
    delete_all(kube, objects)


@pytest.mark.parametrize("limited", [("create", "deployments")], indirect=True)
def test_missing_create_permission_is_named(ansible, testbed, limited, namespace_factory):
    """A new gateway needs `create` on Deployments: istioctl's apply is refused, and the message says so."""
    auth, verb, resource = limited
    args = dict(auth, name="rbac-gateway", namespace=namespace_factory("rbac-limited"), labels=LABELS)
    args.update(binary_path=str(testbed.istioctl), wait_timeout=60)
    result = ansible.module("istio_gateway", args, env=NO_KUBECONFIG)
    assert result.get("failed"), "installing without %s on %s must fail" % (verb, resource)
    assert 'cannot %s resource "%s" in API group "apps"' % (verb, resource) in result["msg"], result["msg"]
    assert "system:serviceaccount:%s:%s" % (SA_NAMESPACE, LIMITED) in result["msg"], result["msg"]


@pytest.mark.parametrize("limited", [("patch", "deployments")], indirect=True)
def test_missing_patch_permission_is_named_and_changes_nothing(ansible, kube, installed, limited):
    """Reconciling needs `patch` (server-side apply dry-run): the client's 403 names the method, path and verb."""
    args, _first = installed
    auth, verb, resource = limited
    before = namespace_snapshot(kube, args["namespace"])
    result = ansible.module("istio_gateway", dict(args, **auth), env=NO_KUBECONFIG)
    assert result.get("failed"), "reconciling without %s on %s must fail" % (verb, resource)
    path = "/apis/apps/v1/namespaces/%s/deployments/rbac-gateway" % args["namespace"]
    for fragment in (
        "PATCH %s" % path,
        'cannot %s resource "%s"' % (verb, resource),
        "HTTP 403",
        "see docs/rbac.md",
        "system:serviceaccount:%s:%s" % (SA_NAMESPACE, LIMITED),
    ):
        assert fragment in result["msg"], result["msg"]
    assert namespace_snapshot(kube, args["namespace"]) == before, "a refused run must leave the gateway untouched"


def test_manifest_method_needs_only_the_two_roles_and_helm_the_optional_third(ansible, kube, testbed, rbac):
    """method manifest installs with the read and write roles; method helm fails naming the Secret write its
    release record needs, and installs once istio-ops-gateways-helm is bound (docs/rbac.md)."""
    namespace = "rbac-m-%s" % uuid.uuid4().hex[:6]
    base = dict(rbac, namespace=namespace, labels=LABELS, wait_timeout=180)
    try:
        manifest = ansible.module(
            "istio_gateway", dict(base, name="rbac-manifest", method="manifest"), env=NO_KUBECONFIG
        )
        assert manifest["changed"] and not manifest.get("failed"), manifest.get("msg")
        helm = dict(
            base,
            name="rbac-helm",
            labels={"istio": "rbac-helm"},
            method="helm",
            helm={
                "repository": testbed.chart_repo,
                "version": testbed.default_chart_version,
                "binary_path": str(testbed.helm),
            },
        )
        refused = ansible.module("istio_gateway", helm, env=NO_KUBECONFIG)
        assert refused.get("failed"), "helm's release record needs Secret writes the two roles do not grant"
        assert 'cannot create resource "secrets"' in refused["msg"], refused["msg"]
        bind_optional_role(kube, "istio-ops-gateways-helm", namespace)
        installed = ansible.module("istio_gateway", helm, env=NO_KUBECONFIG)
        assert installed["changed"] and not installed.get("failed"), installed.get("msg")
        assert ansible.module("istio_gateway", helm, env=NO_KUBECONFIG)["changed"] is False
    finally:
        kube.delete("v1", "Namespace", namespace)
        kube.wait_deleted([("v1", "Namespace", namespace, None)], 120)


def test_gateway_api_method_needs_the_optional_gateway_api_role(ansible, kube, testbed, rbac):
    """method gateway_api fails naming the Gateway write the two roles do not grant, writes nothing, and installs,
    converges, is read by gateway_info and is removed once istio-ops-gateways-gateway-api is bound (docs/rbac.md)."""
    namespace = "rbac-g-%s" % uuid.uuid4().hex[:6]
    args = dict(
        rbac,
        name="rbac-api",
        namespace=namespace,
        method="gateway_api",
        listeners=[{"name": "http", "port": 80, "protocol": "HTTP"}],
        service={"type": "ClusterIP"},
        replicas=1,
        autoscaling={"enabled": False},
        wait_timeout=180,
    )
    try:
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        refused = ansible.module("istio_gateway", args, env=NO_KUBECONFIG)
        assert refused.get("failed"), "the two roles grant no ConfigMap or Gateway API writes"
        assert 'cannot get resource "configmaps"' in refused["msg"] and "docs/rbac.md" in refused["msg"], refused["msg"]
        assert kube.get("gateway.networking.k8s.io/v1", "Gateway", "rbac-api", namespace) is None
        bind_optional_role(kube, "istio-ops-gateways-gateway-api", namespace)
        installed = ansible.module("istio_gateway", args, env=NO_KUBECONFIG)
        assert installed["changed"] and not installed.get("failed"), installed.get("msg")
        assert ansible.module("istio_gateway", args, env=NO_KUBECONFIG)["changed"] is False
        info = ansible.module("gateway_info", dict(rbac, namespace=namespace), env=NO_KUBECONFIG)
        assert [g["method"] for g in info["gateways"]] == ["gateway_api"], info
        removed = ansible.module("istio_gateway", dict(args, state="absent"), env=NO_KUBECONFIG)
        assert removed["changed"] and not removed.get("failed"), removed.get("msg")
    finally:
        kube.delete("v1", "Namespace", namespace)
        kube.wait_deleted([("v1", "Namespace", namespace, None)], 120)
