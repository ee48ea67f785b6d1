import hashlib
import re

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils import gateway, install_istioctl, ownership
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import InputError
from tests.unit.plugins.module_utils.render_facets import gateway_params

params = gateway_params  # the shared option set (also the install-method comparisons')


def test_seed_iop_is_rendered_with_unique_owner_name():
    iop = install_istioctl.render_iop(params())
    assert iop["metadata"] == {"name": "istio-ingress.istio-ingressgateway", "namespace": "istio-system"}
    assert iop["spec"]["profile"] == "empty"
    component = iop["spec"]["components"]["ingressGateways"][0]
    assert component == {
        "name": "istio-ingressgateway",
        "namespace": "istio-ingress",
        "enabled": True,
        "label": {"istio": "ingressgateway"},
    }
    assert iop["spec"]["values"] == {
        "global": {
            "istioNamespace": "istio-system",
            "operatorManageWebhooks": True,
            "defaultPodDisruptionBudget": {"enabled": False},
        },
        "gateways": {"istio-ingressgateway": {"injectionTemplate": "gateway"}},
    }
    assert "revision" not in iop["spec"]


def test_egress_defaults_and_chart_values():
    iop = install_istioctl.render_iop(
        params(
            kind="egress",
            name="egress",
            replicas=2,
            autoscaling={"enabled": False, "min": None, "max": None},
            service={
                "type": "ClusterIP",
                "ports": [{"name": "http", "port": 80, "target_port": 8080, "node_port": None, "protocol": "TCP"}],
                "annotations": {"a": "b"},
                "load_balancer_ip": None,
                "external_traffic_policy": "Local",
            },
            revision="1-31",
            pod_annotations={"x": "y"},
        )
    )
    assert iop["spec"]["components"]["egressGateways"][0]["label"] == {"istio": "egressgateway"}
    assert iop["spec"]["revision"] == "1-31"
    values = iop["spec"]["values"]["gateways"]["istio-egressgateway"]
    assert values == {
        "injectionTemplate": "gateway",
        "autoscaleEnabled": False,
        "type": "ClusterIP",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
    }
    # What the egress chart's values lack goes through the component's k8s patches, for both kinds.
    assert iop["spec"]["components"]["egressGateways"][0]["k8s"] == {
        "replicaCount": 2,
        "serviceAnnotations": {"a": "b"},
        "service": {"externalTrafficPolicy": "Local"},
        "podAnnotations": {"x": "y"},
    }


def test_user_values_merge_over_rendered_values():
    iop = install_istioctl.render_iop(
        params(
            values={
                "gateways": {"istio-ingressgateway": {"injectionTemplate": "custom"}},
                "global": {"logging": {"level": "debug"}},
            }
        )
    )
    assert iop["spec"]["values"]["gateways"]["istio-ingressgateway"]["injectionTemplate"] == "custom"
    assert iop["spec"]["values"]["global"] == {
        "istioNamespace": "istio-system",
        "operatorManageWebhooks": True,
        "defaultPodDisruptionBudget": {"enabled": False},
        "logging": {"level": "debug"},
    }


def test_deep_merge_does_not_mutate_inputs():
    base = {"a": {"b": 1}}
    merged = install_istioctl.deep_merge(base, {"a": {"c": 2}})
    assert merged == {"a": {"b": 1, "c": 2}} and base == {"a": {"b": 1}}


def test_owner_labels_match_istioctl():
    iop = install_istioctl.render_iop(params(revision="1-31"))
    objs = install_istioctl.stamp_owner_labels(
        [{"metadata": {"name": "x", "labels": {"app": "a"}}}], iop, "1.30.0", "ingress"
    )
    assert objs[0]["metadata"]["labels"] == {
        "app": "a",
        L.OPERATOR_MANAGED: "Reconcile",
        L.OPERATOR_VERSION: "1.30.0",
        L.OWNING_RESOURCE: "istio-ingress.istio-ingressgateway",
        L.OWNING_RESOURCE_NAMESPACE: "istio-system",
        L.REVISION: "1-31",
        L.OPERATOR_COMPONENT: "IngressGateways",
    }


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (dict(name="Istio_GW"), "name: 'Istio_GW' is not a valid gateway name"),
        (dict(name="1gw"), "name: '1gw'"),
        (dict(namespace="-bad"), "namespace: '-bad'"),
        (dict(revision="1.31"), "revision: '1.31'"),
        (dict(revision="default"), "revision: use no revision"),
        (dict(labels={"bad key!": "x"}), "label key 'bad key!'"),
        (dict(labels={"istio": "-x"}), "value '-x' of label 'istio'"),
        (dict(replicas=-1), "replicas: -1"),
        (dict(autoscaling={"enabled": True, "min": 3, "max": 2}), "autoscaling.max: 2 is below"),
        (
            dict(service={"ports": [{"name": "p", "port": 70000, "target_port": None, "node_port": None}]}),
            "service.ports[0].port: 70000",
        ),
        (
            dict(pod_disruption_budget={"min_available": 1, "max_unavailable": None}),
            "pod_disruption_budget: a budget needs at least 2 pods, but autoscaling.min is 1; raise autoscaling.min",
        ),
        (
            dict(autoscaling={"enabled": False}, replicas=1, pod_disruption_budget={"max_unavailable": 1}),
            "but replicas is 1; raise replicas to 2",
        ),
        (
            dict(autoscaling={"min": 2}, pod_disruption_budget={"max_unavailable": "half"}),
            "pod_disruption_budget.max_unavailable: 'half' is neither a count",
        ),
        (
            dict(kind="egress", autoscaling={"enabled": False}, replicas=3, pod_disruption_budget={"min_available": 2}),
            "istioctl's egress gateway chart renders no PodDisruptionBudget for a fixed replica count",
        ),
        (dict(helm={"values": {"x": 1}}), "helm: set for method istioctl; drop it, or set method: helm"),
        (dict(method="helm", values={"global": {}}), "values: IstioOperator settings apply to method istioctl only"),
        (dict(method="manifest", k8s={"nodeSelector": {}}), "k8s: IstioOperator settings apply to method istioctl"),
        (dict(method="manifest", binary_path="/bin/istioctl"), "binary_path: names istioctl, which method manifest"),
    ],
)
def test_bad_inputs_name_parameter_value_and_fix(overrides, fragment):
    with pytest.raises(InputError) as err:
        gateway.check_inputs(params(**overrides))
    assert fragment in err.value.message


def test_every_error_is_reported_at_once():
    with pytest.raises(InputError) as err:
        gateway.check_inputs(params(name="BAD", namespace="BAD"))
    assert "name:" in err.value.message and "namespace:" in err.value.message


def deployment(name, selector, pod_labels, canary_of=None):
    meta = {"name": name, "labels": {L.CANARY_OF: canary_of} if canary_of else {}}
    return {
        "metadata": meta,
        "spec": {"selector": {"matchLabels": selector}, "template": {"metadata": {"labels": pod_labels}}},
    }


def test_collisions_ignore_self_and_own_canary_but_catch_others():
    sel = {"istio": "ingressgateway"}
    deps = [
        deployment("gw", sel, sel),
        deployment("gw-canary", sel, sel, canary_of="gw"),
        deployment("other-gw", sel, dict(sel, app="other")),
        deployment("broad", {"istio": "ingressgateway"}, {"istio": "x"}),
        deployment("unrelated", {"app": "web"}, {"app": "web"}),
    ]
    assert gateway.colliding_workloads(deps, "gw", sel, sel) == ["other-gw", "broad"]


def test_iop_names_are_unique_per_namespace_and_valid_label_values():
    assert L.iop_name("gw", "team-a") != L.iop_name("gw", "team-b")
    long_name = L.iop_name("g" * 63, "n" * 63)
    assert len(long_name) <= 63 and long_name[-1].isalnum()
    assert long_name != L.iop_name("g" * 63, "n" * 62 + "x")


# -- IstioOperator names (issue 12, item 1) ---------------------------------------------------------------
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def valid_iop_name(name):
    return len(name) <= 63 and LABEL_VALUE.match(name) and SUBDOMAIN.match(name)


def test_iop_names_of_dash_joined_pairs_differ():
    # The legacy scheme gave both "payments-api-gw": installing one pruned the other.
    assert L.legacy_iop_name("gw", "payments-api") == L.legacy_iop_name("api-gw", "payments")
    assert L.iop_name("gw", "payments-api") == "payments-api.gw"
    assert L.iop_name("api-gw", "payments") == "payments.api-gw"


def test_legacy_name_is_the_old_scheme():
    assert L.legacy_iop_name("istio-ingressgateway", "istio-ingress") == "istio-ingress-istio-ingressgateway"
    long_name = L.legacy_iop_name("g" * 40, "n" * 40)
    digest = hashlib.sha256(("n" * 40 + "-" + "g" * 40).encode()).hexdigest()[:8]
    assert long_name == ("n" * 40 + "-" + "g" * 40)[:54] + "-" + digest
    assert L.owner_names("gw", "ns") == ("ns.gw", "ns-gw")


@pytest.mark.parametrize(
    "gateway, namespace",
    [("g", "n"), ("g" * 63, "n" * 63), ("g" * 10, "n" * 60), ("g" * 60, "n" * 10), ("a" + "-b" * 31, "c-" * 30 + "d")],
)
def test_iop_names_are_valid_label_values_and_object_names(gateway, namespace):
    name = L.iop_name(gateway, namespace)
    assert valid_iop_name(name), name
    expected_dots = 1 if len(namespace) + len(gateway) + 1 <= 63 else 2
    assert name.count(".") == expected_dots
    assert "." not in L.legacy_iop_name(gateway, namespace)


def test_iop_names_are_injective_over_short_and_long_pairs():
    parts = ["a", "a-b", "b", "ab", "x" * 30, "x" * 31, "x" * 62, "y" * 62, "x" * 63, "y" * 63, "p-" * 20 + "q"]
    namespaces = parts + [p + "1" for p in parts] + ["1" + p for p in parts]
    gateways = parts + [p + "z" for p in parts]
    names = {}
    for namespace in namespaces:
        for gw in gateways:
            if len(namespace) > 63 or len(gw) > 63:
                continue
            name = L.iop_name(gw, namespace)
            assert valid_iop_name(name), name
            assert names.setdefault(name, (namespace, gw)) == (namespace, gw), name
    # A long name keeps 16 hex digits of the full "<namespace>.<gateway>".
    long_name = L.iop_name("g" * 63, "n" * 63)
    assert long_name.endswith("." + hashlib.sha256(("n" * 63 + "." + "g" * 63).encode()).hexdigest()[:16])


# -- values that would undo the pins (issue 12, item 6) ---------------------------------------------------
@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (dict(values={"global": {"operatorManageWebhooks": False}}), "values.global.operatorManageWebhooks: False"),
        (dict(values={"global": {"istioNamespace": "other"}}), "use the option istio_namespace"),
        (
            dict(values={"revision": "1-31"}),
            "values.revision: '1-31' is set by the module; remove it and use the option",
        ),
        (dict(values={"ownerName": "x"}), "values.ownerName"),
        (
            dict(values={"gateways": {"istio-egressgateway": {"enabled": True}}}),
            "values.gateways.istio-egressgateway.enabled: True",
        ),
        (dict(values={"gateways": {"istio-ingressgateway": {"namespace": "x"}}}), "use the option namespace"),
        (dict(values={"gateways": {"istio-ingressgateway": {"name": "x"}}}), "use the option name"),
        (dict(values={"gateways": {"istio-ingressgateway": {"labels": {"a": "b"}}}}), "use the option labels"),
        (
            dict(
                k8s={
                    "overlays": [
                        {"kind": "Service", "name": "gw", "patches": [{"path": "metadata.namespace", "value": "x"}]}
                    ]
                }
            ),
            "k8s.overlays[0].patches[0].path: 'metadata.namespace' would move Service gw",
        ),
    ],
)
def test_values_that_undo_safety_pins_are_refused(overrides, fragment):
    with pytest.raises(InputError) as err:
        gateway.check_inputs(params(**overrides))
    assert fragment in err.value.message


def test_harmless_values_and_overlays_pass():
    gateway.check_inputs(
        params(
            values={
                "global": {"logging": {"level": "debug"}},
                "gateways": {"istio-ingressgateway": {"type": "NodePort"}},
            },
            k8s={
                "overlays": [{"kind": "Deployment", "name": "x", "patches": [{"path": "spec.paused", "value": False}]}]
            },
        )
    )


def rendered(kind, name, namespace, api_version=None):
    versions = {k: a for a, k in ownership.OWNED_KINDS}
    return {
        "apiVersion": api_version or versions[kind],
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
    }


def test_render_holding_only_chart_kinds_in_the_namespace_passes():
    gateway.check_rendered([rendered(pair[1], "gw", "ns") for pair in ownership.OWNED_KINDS], "ns", "istioctl")


@pytest.mark.parametrize(
    "obj, fragment",
    [
        (rendered("Deployment", "istio-egressgateway", "istio-system"), "Deployment istio-system/istio-egressgateway"),
        ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ns"}}, "ConfigMap ns/c"),
        (
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"}},
            "ClusterRole",
        ),
        (
            {"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "g", "namespace": "ns"}},
            "Gateway ns/g",
        ),
    ],
)
def test_render_with_other_kinds_or_namespaces_fails_naming_the_object(obj, fragment):
    with pytest.raises(InputError) as err:
        gateway.check_rendered([rendered("Service", "gw", "ns"), obj], "ns", "istioctl")
    assert fragment in err.value.message and "Nothing was applied" in err.value.message
