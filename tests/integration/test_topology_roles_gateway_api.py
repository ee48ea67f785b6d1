"""The topology roles on the Gateway API (issue #15, "Topologies"): shared_gateway and dedicated_gateway with
`<role>_api: gateway_api` on the test bed, whose real istiod deploys the Gateways.

Each role runs four times (check, real, check, real: changed, changed, not, not; the converged runs write nothing,
from the API server's audit log), then the cluster says what the role meant: the Gateways Accepted and Programmed,
istiod's Deployments ready, the listeners' allowedRoutes, no Istio Gateway resource, and HTTPRoutes written as the
teams would (field manager "app-team") attach only where the role delegated them, counted from the listeners'
status. The shared gateway selects its application namespaces by the name label every namespace carries, so the
role never writes into them (the audit log again). Bad combinations of the roles' variables fail in preflight,
naming the role's variable, before anything is written.
"""

import json
import uuid

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils import ownership

from .audit import four_role_runs_writing_nothing_when_converged
from .test_gateway_api import make_namespace, tls_secret

pytestmark = pytest.mark.integration

GATEWAY_API = ownership.GATEWAY_API
ISTIO_API = "networking.istio.io/v1"
SHARED_INSTALL = "Install or reconcile the shared gateway"
SHARED_CONFIG = (
    "Gateway resource with hosts delegated to the application namespaces; TLS stays in the gateway namespace"
)
DEDICATED_INSTALL = "Install or reconcile each application's gateway"
DEDICATED_CONFIG = "Gateway resource of each application, in its own namespace"
# The bed has no load balancer, and istiod programs a Gateway only once its Service has an address.
ON_THE_BED = {"autoscaling": {"enabled": False}, "replicas": 1, "service_type": "ClusterIP", "wait_timeout": 180}


def role_vars(role, **values):
    merged = dict(ON_THE_BED, api="gateway_api")
    merged.update(values)
    return {"%s_%s" % (role, key): value for key, value in merged.items()}


def http_route(namespace, gateway, gateway_namespace, name="web", section=None, **spec):
    parent = {"name": gateway, "namespace": gateway_namespace}
    if section:
        parent["sectionName"] = section
    body = {"parentRefs": [parent], "rules": [{"backendRefs": [{"name": "web", "port": 8080}]}]}
    body.update(spec)
    return {
        "apiVersion": GATEWAY_API,
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def write_route(kube, route, field_manager="app-team"):
    """As the team owning the route's namespace would: the collection never writes routes."""
    kube.apply(route, field_manager=field_manager)


def assert_programmed_and_ready(kube, name, namespace, replicas=1):
    gateway = kube.get(GATEWAY_API, "Gateway", name, namespace)
    state = {c["type"]: c["status"] for c in gateway["status"]["conditions"]}
    assert state["Accepted"] == state["Programmed"] == "True", gateway["status"]
    deployment = kube.get("apps/v1", "Deployment", name + "-istio", namespace)
    assert deployment["status"].get("readyReplicas") == replicas, deployment["status"]
    # The Gateway is the configuration: the role wrote no Istio Gateway resource beside it.
    assert kube.list(ISTIO_API, "Gateway", namespace) == []
    return gateway, deployment


def listeners_of(gateway):
    return {listener["name"]: listener for listener in gateway["spec"]["listeners"]}


def wait_attached(kube, name, namespace, expected):
    """Until the Gateway's listener status counts `expected` ({listener: attached routes})."""

    def counted():
        gateway = kube.get(GATEWAY_API, "Gateway", name, namespace)
        found = {s["name"]: s.get("attachedRoutes") for s in (gateway.get("status") or {}).get("listeners") or []}
        return (found == expected, found)

    kube.wait("the routes of Gateway %s/%s to attach as %s" % (namespace, name, expected), counted, 90)


def wait_route_condition(kube, name, namespace, condition, reason):
    """Until the route's status has `condition` for the reason `reason`, e.g. Accepted for NotAllowedByListeners
    (no listener allows the route's namespace)."""

    def reported():
        parents = (kube.get(GATEWAY_API, "HTTPRoute", name, namespace).get("status") or {}).get("parents") or []
        reasons = {c["reason"] for p in parents for c in p.get("conditions") or [] if c["type"] == condition}
        return (reason in reasons, reasons)

    kube.wait("HTTPRoute %s/%s to say %s: %s" % (namespace, name, condition, reason), reported, 90)


def test_shared_gateway_delegates_routes_to_the_listed_namespaces_without_writing_to_them(
    ansible, kube, audit, namespace_factory
):
    ns, shop, blog, other = (namespace_factory(prefix) for prefix in ("tsg", "shop", "blog", "other"))
    make_namespace(kube, ns)
    tls_secret(kube, ns)
    for app in (shop, blog):
        make_namespace(kube, app)
    # It carries the label the role selects by when no namespaces are listed: listed namespaces win, so the label
    # grants nothing here.
    make_namespace(kube, other, {"shared-gateway-access": "true"})
    variables = role_vars(
        "shared_gateway",
        name="shared",
        namespace=ns,
        hosts=["*.example.com"],
        tls_secret="web-cert",
        app_namespaces=[shop, blog],
    )
    offset = audit.mark()
    check, real, _again, _rerun = four_role_runs_writing_nothing_when_converged(
        ansible, audit, "shared_gateway", variables, [ns, shop, blog, other]
    )
    for namespace in (shop, blog, other):
        assert audit.writes_since(offset, namespace) == [], "the role wrote into application namespace " + namespace
    assert sorted((o["kind"], o["action"]) for o in check["tasks"][SHARED_INSTALL]["objects"]) == [
        ("ConfigMap", "create"),
        ("Gateway", "create"),
    ]
    assert real["tasks"][SHARED_INSTALL]["gateway_api"]["deployed_as"] == "shared-istio"
    assert all(run["tasks"][SHARED_CONFIG].get("skipped") for run in (check, real))

    gateway, _deployment = assert_programmed_and_ready(kube, "shared", ns)
    listeners = listeners_of(gateway)
    assert sorted(listeners) == ["http-wildcard-example-com", "https-wildcard-example-com"]
    # With TLS and the redirect, plain HTTP takes routes of the gateway namespace only (the redirect route).
    assert listeners["http-wildcard-example-com"]["allowedRoutes"]["namespaces"] == {"from": "Same"}
    https = listeners["https-wildcard-example-com"]
    assert https["hostname"] == "*.example.com" and [r["name"] for r in https["tls"]["certificateRefs"]] == ["web-cert"]
    assert https["allowedRoutes"]["namespaces"] == {
        "from": "Selector",
        "selector": {
            "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": [shop, blog]}]
        },
    }
    report = real["tasks"]["Where application teams attach their HTTPRoutes"]["msg"]
    assert report["parent_ref"] == {"name": "shared", "namespace": ns}, report

    for namespace in (shop, blog, other):
        write_route(kube, http_route(namespace, "shared", ns, hostnames=[namespace + ".example.com"]))
    # The platform team's redirect, as docs/topologies.md shows it.
    redirect = http_route(ns, "shared", ns, name="https-redirect", section="http-wildcard-example-com")
    redirect["spec"]["rules"] = [{"filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https"}}]}]
    write_route(kube, redirect, field_manager="platform-team")
    wait_attached(kube, "shared", ns, {"http-wildcard-example-com": 1, "https-wildcard-example-com": 2})
    wait_route_condition(kube, "web", other, "Accepted", "NotAllowedByListeners")

    # docs/topologies.md's ReferenceGrant: a route to a Service in another namespace, allowed by that namespace's team.
    catalog = namespace_factory("catalog")
    make_namespace(kube, catalog)
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "catalog", "namespace": catalog}}
    service["spec"] = {"ports": [{"port": 8080}], "selector": {"app": "catalog"}}
    kube.create(service)
    to_catalog = http_route(shop, "shared", ns, name="catalog", hostnames=["catalog.example.com"])
    to_catalog["spec"]["rules"] = [{"backendRefs": [{"name": "catalog", "namespace": catalog, "port": 8080}]}]
    write_route(kube, to_catalog)
    wait_route_condition(kube, "catalog", shop, "ResolvedRefs", "RefNotPermitted")
    grant = {
        "apiVersion": "gateway.networking.k8s.io/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": {"name": "shop-routes", "namespace": catalog},
        "spec": {
            "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": shop}],
            "to": [{"group": "", "kind": "Service", "name": "catalog"}],
        },
    }
    kube.apply(grant, field_manager="catalog-team")
    wait_route_condition(kube, "catalog", shop, "ResolvedRefs", "ResolvedRefs")
    wait_attached(kube, "shared", ns, {"http-wildcard-example-com": 1, "https-wildcard-example-com": 3})


def test_shared_gateway_selects_labelled_namespaces_or_all_when_none_are_listed(
    ansible, kube, audit, namespace_factory
):
    """Without shared_gateway_app_namespaces the listeners select namespaces by shared_gateway_route_namespace_labels,
    and {} there accepts routes from every namespace; check mode shows it and writes nothing."""
    ns = namespace_factory("tsl")
    make_namespace(kube, ns)
    offset = audit.mark()
    for labels, expected in (
        (None, {"from": "Selector", "selector": {"matchLabels": {"shared-gateway-access": "true"}}}),
        ({}, {"from": "All"}),
    ):
        variables = role_vars("shared_gateway", name="shared", namespace=ns, hosts=["*"])
        if labels is not None:
            variables["shared_gateway_route_namespace_labels"] = labels
        run = ansible.role("shared_gateway", variables, check=True)
        assert run["changed"] and not run["failed"], run["msg"]
        report = run["tasks"]["Where application teams attach their HTTPRoutes"]["msg"]
        assert report["listeners"] == {"http": {"namespaces": expected}}, report
    assert audit.writes_since(offset, ns) == []
    assert kube.get(GATEWAY_API, "Gateway", "shared", ns) is None


def test_dedicated_gateways_accept_only_their_own_namespaces_routes(ansible, kube, audit, namespace_factory):
    web, api = namespace_factory("web"), namespace_factory("api")
    make_namespace(kube, web)
    tls_secret(kube, web, "web-cert")
    make_namespace(kube, api)
    apps = [
        {
            "namespace": web,
            "name": "web",
            "hosts": ["web.example.com"],
            "tls_secret": "web-cert",
            "infrastructure": {"labels": {"team": "web"}},
        },
        {"namespace": api, "service_type": "NodePort"},
    ]
    variables = role_vars("dedicated_gateway", apps=apps)
    check, real, _again, _rerun = four_role_runs_writing_nothing_when_converged(
        ansible, audit, "dedicated_gateway", variables, [web, api]
    )
    for step in check["tasks"][DEDICATED_INSTALL]["results"]:
        assert sorted((o["kind"], o["action"]) for o in step["objects"]) == [
            ("ConfigMap", "create"),
            ("Gateway", "create"),
        ]
    assert [r["gateway_api"]["deployed_as"] for r in real["tasks"][DEDICATED_INSTALL]["results"]] == [
        "web-istio",
        api + "-gateway-istio",  # the default name, <namespace>-gateway
    ]
    assert all(run["tasks"][DEDICATED_CONFIG].get("skipped") for run in (check, real))

    web_gateway, web_deployment = assert_programmed_and_ready(kube, "web", web)
    api_gateway = assert_programmed_and_ready(kube, api + "-gateway", api)[0]
    assert web_deployment["metadata"]["labels"]["team"] == "web"
    assert kube.get("v1", "Service", "web-istio", web)["spec"]["type"] == "ClusterIP"
    assert kube.get("v1", "Service", api + "-gateway-istio", api)["spec"]["type"] == "NodePort"
    web_listeners, api_listeners = listeners_of(web_gateway), listeners_of(api_gateway)
    assert sorted(web_listeners) == ["http-web-example-com", "https-web-example-com"]
    assert [r["name"] for r in web_listeners["https-web-example-com"]["tls"]["certificateRefs"]] == ["web-cert"]
    assert sorted(api_listeners) == ["http"] and "hostname" not in api_listeners["http"]
    for listener in list(web_listeners.values()) + list(api_listeners.values()):
        assert listener["allowedRoutes"]["namespaces"] == {"from": "Same"}, listener

    write_route(kube, http_route(web, "web", web, hostnames=["web.example.com"]))
    write_route(kube, http_route(api, api + "-gateway", api))
    # Another team's route to the web team's gateway: its namespace is not the gateway's.
    write_route(kube, http_route(api, "web", web, name="to-web", hostnames=["web.example.com"]))
    wait_attached(kube, "web", web, {"http-web-example-com": 1, "https-web-example-com": 1})
    wait_attached(kube, api + "-gateway", api, {"http": 1})
    wait_route_condition(kube, "to-web", api, "Accepted", "NotAllowedByListeners")


@pytest.mark.parametrize(
    "role, values, fragment",
    [
        ("shared_gateway", {"api": "envoy"}, "shared_gateway_api"),
        ("shared_gateway", {"method": "helm"}, "shared_gateway_method (helm), shared_gateway_helm and"),
        ("shared_gateway", {"hosts": ["shop.example.com:8080"]}, "shared_gateway_hosts ['shop.example.com:8080']"),
        ("shared_gateway", {"hosts": ["*.a.com", "wildcard.a.com"]}, "distinct listener names"),
        (
            "shared_gateway",
            {"api": "istio", "infrastructure": {"labels": {"team": "edge"}}},
            "shared_gateway_infrastructure apply to shared_gateway_api gateway_api only",
        ),
        (
            "dedicated_gateway",
            {"apps": [{"namespace": "NAMESPACE", "labels": {"istio": "x"}}]},
            "the labels of dedicated_gateway_apps entries (NAMESPACE)",
        ),
        (
            "dedicated_gateway",
            {"api": "istio", "apps": [{"namespace": "NAMESPACE", "infrastructure": {"labels": {"team": "x"}}}]},
            "infrastructure of dedicated_gateway_apps entries (NAMESPACE)",
        ),
        (
            "dedicated_gateway",
            {"apps": [{"namespace": "NAMESPACE", "hosts": ["Shop.example.com"]}]},
            "dedicated_gateway_apps entry of namespace NAMESPACE",
        ),
    ],
)
def test_combinations_without_a_meaning_fail_in_preflight_naming_the_variable(ansible, kube, role, values, fragment):
    namespace = "never-%s" % uuid.uuid4().hex[:6]
    values = json.loads(json.dumps(values).replace("NAMESPACE", namespace))
    if role == "shared_gateway":
        values.setdefault("namespace", namespace)
    variables = role_vars(role, **values)
    result = ansible.role(role, variables)
    assert result["failed"], result["_raw"][-2000:]
    assert fragment.replace("NAMESPACE", namespace) in result["msg"], result["msg"]
    install = SHARED_INSTALL if role == "shared_gateway" else DEDICATED_INSTALL
    assert install not in result["tasks"], "the role went past its preflight"
    assert kube.get("v1", "Namespace", namespace) is None
