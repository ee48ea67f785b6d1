"""The gateway_api method's pure parts: listener checks, the options it refuses, and its render (a Gateway and a
parameters ConfigMap whose patches carry the same settings the manifest method renders into workload objects)."""

import pytest
import yaml

from ansible_collections.istio_ops.gateways.plugins.module_utils import gateway, install_gateway_api, ownership
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import InputError
from ansible_collections.istio_ops.gateways.plugins.module_utils.install_manifest import render_manifest
from tests.unit.plugins.module_utils.render_facets import NO_HPA, gateway_params, service

HTTP = {"name": "http", "port": 80, "protocol": "HTTP"}
HTTPS = {
    "name": "https",
    "port": 443,
    "protocol": "HTTPS",
    "hostname": "*.example.com",
    "tls": {"mode": "Terminate", "certificateRefs": [{"name": "wildcard"}]},
}


def api_params(**overrides):
    base = dict(
        method="gateway_api",
        name="web",
        namespace="apps",
        listeners=[HTTP],
        gateway_class="istio",
        infrastructure=None,
        missing_secret="fail",
    )
    base.update(overrides)
    return gateway_params(**base)


def errors_of(**overrides):
    with pytest.raises(InputError) as caught:
        gateway.check_inputs(api_params(**overrides))
    return str(caught.value)


def test_valid_listeners_pass():
    gateway.check_inputs(api_params(listeners=[HTTP, HTTPS]))


@pytest.mark.parametrize(
    "listeners, expected",
    [
        ([], "listeners: a Gateway API gateway needs at least one listener"),
        (None, "listeners: a Gateway API gateway needs at least one listener"),
        ([dict(HTTP, name="HTTP")], "listeners[0].name: 'HTTP' is not a listener name"),
        ([HTTP, dict(HTTP, port=8080)], "listeners[1].name: 'http' is used by another listener"),
        ([dict(HTTP, port=0)], "listeners[0].port: 0 is not a port"),
        ([dict(HTTP, protocol="UDP")], "listeners[0].protocol: 'UDP' is not one of HTTP, HTTPS, TLS, TCP"),
        ([dict(HTTP, hostname="a.example.com:80")], "listeners[0].hostname: 'a.example.com:80' is not a hostname"),
        ([dict(HTTP, protocol="TCP", hostname="a.example.com")], "a TCP listener matches no hostname"),
        ([HTTP, dict(HTTP, name="again")], "listeners[1]: another listener has port 80, protocol HTTP"),
        ([dict(HTTP, tls={"mode": "Terminate"})], "listeners[0].tls: a HTTP listener takes no tls"),
        ([dict(HTTPS, tls=None)], "listeners[0].tls: a HTTPS listener needs tls"),
        ([dict(HTTPS, tls={"mode": "Terminate"})], "listeners[0].tls.certificateRefs: mode Terminate needs"),
        ([dict(HTTPS, tls={"mode": "Passthrough"})], "an HTTPS listener terminates TLS; use protocol TLS"),
        ([dict(HTTPS, tls={"mode": "Simple", "certificateRefs": [{"name": "c"}]})], "tls.mode: 'Simple' is not"),
        (
            [dict(HTTPS, tls={"certificateRefs": [{"name": "c", "namespace": "certs"}]})],
            "certificateRefs[0].namespace: 'certs'; the gateway's certificates stay in its own namespace 'apps'",
        ),
        ([dict(HTTPS, tls={"certificateRefs": [{"name": "c", "kind": "ConfigMap"}]})], "is not a Secret"),
        ([dict(HTTP, allowedRoutes={"namespaces": {"from": "Selector"}})], "from Selector needs a namespace selector"),
        ([dict(HTTP, allowedRoutes={"namespaces": {"from": "Others"}})], "namespaces.from: 'Others' is not one of"),
        (
            [dict(HTTP, allowedRoutes={"namespaces": {"from": "All", "selector": {"matchLabels": {"a": "b"}}}})],
            "used only with from: Selector, not 'All'",
        ),
        ([dict(HTTP, backendRefs=[])], "listeners[0]: unknown key(s) backendRefs"),
        (["http"], "listeners[0]: 'http' is not a dict"),
    ],
)
def test_bad_listeners_are_named_with_the_fix(listeners, expected):
    assert expected in errors_of(listeners=listeners)


def test_every_listener_error_is_reported_at_once():
    message = errors_of(listeners=[dict(HTTP, port=0), dict(HTTPS, tls=None)])
    assert "listeners[0].port" in message and "listeners[1].tls" in message


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (dict(labels={"istio": "web"}), "labels: select an istio-API gateway's pods"),
        (dict(service=service(ports=[{"name": "http", "port": 80}])), "service.ports: a Gateway API gateway's"),
        (dict(infrastructure={"labels": {L.INSTALLED_BY: "manifest"}}), "infrastructure.labels: %s" % L.INSTALLED_BY),
        (dict(infrastructure={"labels": {"gateway.networking.k8s.io/x": "y"}}), "the Gateway API's own keys"),
        (dict(infrastructure={"annotations": {"k%d" % i: "v" for i in range(9)}}), "9 entries; at most 8"),
        (dict(infrastructure={"labels": {"team": "a b"}}), "infrastructure.labels: value 'a b'"),
        (dict(gateway_class="Istio"), "gateway_class: 'Istio' is not a valid name"),
        (dict(values={"gateways": {}}), "values: IstioOperator settings apply to method istioctl only"),
        (dict(binary_path="/usr/bin/istioctl"), "binary_path: names istioctl, which method gateway_api does not run"),
    ],
)
def test_options_that_mean_nothing_for_a_gateway_api_gateway_are_refused(overrides, expected):
    assert expected in errors_of(**overrides)


@pytest.mark.parametrize("method", ["istioctl", "helm", "manifest"])
def test_gateway_api_options_are_refused_for_the_other_methods(method):
    params = gateway_params(method=method, listeners=[HTTP], infrastructure={"labels": {"a": "b"}}, gateway_class="x")
    with pytest.raises(InputError) as caught:
        gateway.check_inputs(params)
    message = str(caught.value)
    for option in ("listeners", "infrastructure", "gateway_class"):
        assert "%s: applies to method gateway_api only, not %s" % (option, method) in message


def test_the_gateway_carries_the_marks_the_listeners_and_its_parameters_ref():
    parameters, gateway_obj = install_gateway_api.render_gateway_api(
        api_params(revision="1-31", listeners=[HTTP, HTTPS])
    )
    assert (gateway_obj["apiVersion"], gateway_obj["kind"]) == ownership.GATEWAY_API_KINDS[0]
    meta = gateway_obj["metadata"]
    assert meta["labels"] == dict(ownership.method_marks("gateway_api", "web"), **{L.REVISION: "1-31"})
    assert meta["annotations"] == {install_gateway_api.SERVICE_TYPE_ANNOTATION: "LoadBalancer"}
    spec = gateway_obj["spec"]
    assert spec["gatewayClassName"] == "istio" and spec["listeners"] == [HTTP, HTTPS]
    # Set even when empty, so that istiod never copies the collection's marks onto what it deploys.
    assert spec["infrastructure"] == {
        "labels": {L.REVISION: "1-31"},
        "annotations": {},
        "parametersRef": {"group": "", "kind": "ConfigMap", "name": "web-gateway-params"},
    }
    assert parameters["metadata"] == {
        "name": "web-gateway-params",
        "namespace": "apps",
        "labels": ownership.method_marks("gateway_api", "web"),
    }
    assert ownership.owner_of(gateway_obj, "web", "apps") == "gateway_api"
    assert ownership.owner_of(parameters, "web", "apps") == "gateway_api"
    assert ownership.owner_of(gateway_obj, "web2", "apps") is None


def test_the_parameters_carry_the_manifest_methods_settings():
    """The same options, the same HPA, PDB, resources, rollout, replicas and Service settings as method manifest."""
    params = api_params(
        autoscaling={"enabled": True, "min": 2, "max": 7},
        pod_disruption_budget={"min_available": 1, "max_unavailable": None},
        resources={"requests": {"cpu": "250m"}},
        pod_annotations={"team": "edge"},
        service=service(annotations={"lb": "internal"}, external_traffic_policy="Local", type="ClusterIP"),
    )
    parameters, gateway_obj = install_gateway_api.render_gateway_api(params)
    patches = {key: yaml.safe_load(text) for key, text in parameters["data"].items()}
    manifest = {o["kind"]: o for o in render_manifest(dict(params, method="manifest", listeners=None))}
    hpa = dict(manifest["HorizontalPodAutoscaler"]["spec"])
    hpa.pop("scaleTargetRef")
    assert patches["horizontalPodAutoscaler"] == {"spec": hpa}
    assert patches["podDisruptionBudget"]["spec"] == {"minAvailable": 1}
    deployment = manifest["Deployment"]["spec"]
    assert patches["deployment"]["spec"]["strategy"] == deployment["strategy"]
    proxy = patches["deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert proxy == {"name": "istio-proxy", "resources": deployment["template"]["spec"]["containers"][0]["resources"]}
    assert patches["deployment"]["spec"]["template"]["metadata"] == {"annotations": {"team": "edge"}}
    assert "replicas" not in patches["deployment"]["spec"]  # the HPA's
    assert patches["service"] == {
        "metadata": {"annotations": {"lb": "internal"}},
        "spec": {"externalTrafficPolicy": "Local"},
    }
    assert gateway_obj["metadata"]["annotations"][install_gateway_api.SERVICE_TYPE_ANNOTATION] == "ClusterIP"


def test_fixed_replicas_without_a_budget_render_no_hpa_nor_pdb_patch():
    parameters, _gateway = install_gateway_api.render_gateway_api(api_params(replicas=1, autoscaling=NO_HPA))
    assert sorted(parameters["data"]) == ["deployment"]
    assert yaml.safe_load(parameters["data"]["deployment"])["spec"]["replicas"] == 1


def test_an_egress_gateway_defaults_to_a_cluster_ip_service_and_a_load_balancer_ip_is_an_address():
    _parameters, gateway_obj = install_gateway_api.render_gateway_api(
        api_params(kind="egress", service=service(load_balancer_ip="10.0.0.7"))
    )
    assert gateway_obj["metadata"]["annotations"][install_gateway_api.SERVICE_TYPE_ANNOTATION] == "ClusterIP"
    assert gateway_obj["spec"]["addresses"] == [{"type": "IPAddress", "value": "10.0.0.7"}]


def test_the_render_is_stable_text():
    first = install_gateway_api.render_gateway_api(api_params())
    second = install_gateway_api.render_gateway_api(api_params())
    assert first == second and first[0]["data"] == second[0]["data"]


def test_names_built_from_name_and_class_are_checked_not_assumed_injective():
    """`<gateway>-<class>` is istiod's, and two pairs of strings meet in it: the method checks live objects."""
    assert install_gateway_api.deployed_name({"name": "a-b", "gateway_class": "istio"}) == (
        install_gateway_api.deployed_name({"name": "a", "gateway_class": "b-istio"})
    )
    # The collection's own name is injective: a fixed suffix.
    assert ownership.parameters_name("a") != ownership.parameters_name("a-gateway")


def test_conditions_of_an_older_generation_do_not_count():
    gw = {
        "metadata": {"generation": 2},
        "status": {
            "conditions": [
                {"type": "Accepted", "status": "True", "observedGeneration": 2},
                {"type": "Programmed", "status": "True", "observedGeneration": 1},
            ]
        },
    }
    assert install_gateway_api.conditions(gw) == {"Accepted": "True"}


@pytest.mark.parametrize(
    "live, patch, expected",
    [
        ({"spec": {"replicas": 3, "x": 1}}, {"spec": {"replicas": 3}}, True),
        ({"spec": {"replicas": 2}}, {"spec": {"replicas": 3}}, False),
        ({"spec": {}}, {"spec": {"replicas": 3}}, False),
        # Containers by name, quantities by value: the API server stores 2000m as 2 and 1024Mi as 1Gi.
        (
            {
                "containers": [
                    {"name": "other"},
                    {"name": "istio-proxy", "resources": {"limits": {"cpu": "2", "memory": "1Gi"}}},
                ]
            },
            {"containers": [{"name": "istio-proxy", "resources": {"limits": {"cpu": "2000m", "memory": "1024Mi"}}}]},
            True,
        ),
        (
            {"containers": [{"name": "istio-proxy", "resources": {"limits": {"cpu": "1"}}}]},
            {"containers": [{"name": "istio-proxy", "resources": {"limits": {"cpu": "2000m"}}}]},
            False,
        ),
        ({"containers": [{"name": "other"}]}, {"containers": [{"name": "istio-proxy"}]}, False),
        ({"metadata": {"annotations": {"a": "b"}}}, {"metadata": {"annotations": {"a": "c"}}}, False),
        (
            {"strategy": {"rollingUpdate": {"maxSurge": "100%"}}},
            {"strategy": {"rollingUpdate": {"maxSurge": "100%"}}},
            True,
        ),
        ({"value": "100m"}, {"value": "0.1"}, True),
        ({"value": "latest"}, {"value": "stable"}, False),
    ],
)
def test_reflects_reads_a_patch_as_istiod_applies_it(live, patch, expected):
    assert install_gateway_api.reflects(live, patch) is expected


def test_names_istiod_would_make_too_long_are_refused_before_any_write():
    message = errors_of(name="g" * 58)
    assert "name: istiod would name this gateway's Service %r" % ("g" * 58 + "-istio") in message
    assert "64 characters" in message and "shorten name or gateway_class" in message


def test_infrastructure_leaves_room_for_the_revision_label_and_checks_annotation_keys():
    labels = {"k%d" % i: "v" for i in range(8)}
    assert "infrastructure.labels: 8 entries; at most 7" in errors_of(infrastructure={"labels": labels})
    assert "infrastructure.annotations: label key 'bad key'" in errors_of(
        infrastructure={"annotations": {"bad key": "x"}}
    )
