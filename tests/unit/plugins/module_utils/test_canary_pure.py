"""gateway_canary's pure parts: the split, the canary copy, and the patches that record and restore state."""

import json

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils import canary
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import InputError

SELECTOR = {"app": "istio-ingressgateway", "istio": "ingressgateway"}
OWNER = L.owner_labels("istio-ingressgateway", "istio-ingress", None, "1.30.0", "ingress")


def params(**overrides):
    base = dict(
        name="istio-ingressgateway",
        namespace="istio-ingress",
        revision="1-31",
        canary_name=None,
        weight=None,
        total_replicas=None,
        stable_replicas=None,
        canary_replicas=None,
        mode="replicas",
        manage_hpa=True,
        istio_namespace="istio-system",
        state="present",
    )
    base.update(overrides)
    return base


def stable_deployment(replicas=10, annotations=None):
    """A gateway Deployment as istioctl installs it (owner labels on the object and the pod template)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "istio-ingressgateway",
            "namespace": "istio-ingress",
            "uid": "1234",
            "resourceVersion": "99",
            "generation": 4,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "managedFields": [{"manager": "istio-operator"}],
            "labels": dict(SELECTOR, **OWNER),
            "annotations": dict({"deployment.kubernetes.io/revision": "3"}, **(annotations or {})),
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(SELECTOR)},
            "strategy": {"rollingUpdate": {"maxSurge": "100%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {
                    "creationTimestamp": None,
                    "labels": dict(
                        SELECTOR,
                        **{
                            "service.istio.io/canonical-revision": "latest",
                            L.REVISION: "default",
                            L.OWNING_RESOURCE: "istio-ingressgateway",
                            L.OPERATOR_COMPONENT: "IngressGateways",
                            L.SIDECAR_INJECT: "true",
                        },
                    ),
                    "annotations": {L.INJECT_TEMPLATES: "gateway", "prometheus.io/scrape": "true"},
                },
                "spec": {
                    "serviceAccountName": "istio-ingressgateway-service-account",
                    "securityContext": {"runAsNonRoot": True},
                    "containers": [{"name": "istio-proxy", "image": "auto", "resources": {"limits": {"cpu": "2"}}}],
                },
            },
        },
        "status": {"replicas": replicas, "readyReplicas": replicas},
    }


# -- the split -------------------------------------------------------------------
@pytest.mark.parametrize(
    "weight, total, expected",
    [
        (0, 10, (10, 0)),
        (10, 10, (9, 1)),
        (50, 10, (5, 5)),
        (100, 10, (0, 10)),
        (25, 10, (7, 3)),  # 2.5 rounds half up to 3, not to even
        (15, 10, (8, 2)),  # 1.5 -> 2
        (14, 10, (9, 1)),  # 1.4 -> 1
        (1, 10, (9, 1)),  # 0.1 -> 0, but a non-zero weight keeps a canary pod
        (99, 10, (1, 9)),  # 9.9 -> 10, but a weight below 100 keeps a stable pod
        (50, 2, (1, 1)),
        (50, 3, (1, 2)),  # 1.5 -> 2
        (0, 1, (1, 0)),
        (100, 1, (0, 1)),
    ],
)
def test_weight_to_replicas_rounds_half_up_and_keeps_both_sides(weight, total, expected):
    stable, canary_n = canary.split_replicas(weight, total)
    assert (stable, canary_n) == expected
    assert stable + canary_n == total


def test_a_partial_weight_needs_two_pods():
    with pytest.raises(InputError, match=r"weight: 10% needs a pod on each side.*total_replicas is 1"):
        canary.split_replicas(10, 1)


@pytest.mark.parametrize("weight", [-1, 101])
def test_weight_out_of_range(weight):
    with pytest.raises(InputError, match="weight: %s is out of range" % weight):
        canary.split_replicas(weight, 10)


def test_plan_split_defaults():
    assert canary.plan_split(params(), 4) == {"stable": 4, "canary": 0, "total": 4, "weight": 0}
    assert canary.plan_split(params(weight=50), 4)["canary"] == 2
    assert canary.plan_split(params(weight=10, total_replicas=10), 4) == {
        "stable": 9,
        "canary": 1,
        "total": 10,
        "weight": 10,
    }
    explicit = canary.plan_split(params(stable_replicas=3, canary_replicas=1), 10)
    assert explicit == {"stable": 3, "canary": 1, "total": 4, "weight": 25}


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"weight": 120}, "weight: 120 is out of range"),
        ({"canary_name": "istio-ingressgateway"}, "canary_name: 'istio-ingressgateway' is the stable gateway's"),
        ({"total_replicas": 0}, "total_replicas: 0 must be at least 1"),
        ({"stable_replicas": -1, "canary_replicas": 1}, "stable_replicas: -1 is negative"),
        ({"stable_replicas": 0, "canary_replicas": 0}, "stable_replicas, canary_replicas: both are 0"),
        ({"name": "Bad_Name"}, "name: 'Bad_Name' is not a valid gateway name"),
        ({"revision": "1.31"}, "revision: '1.31' is not a valid name"),
    ],
)
def test_check_inputs_names_the_parameter(overrides, message):
    with pytest.raises(InputError) as info:
        canary.check_inputs(params(**overrides))
    assert message in info.value.message


def test_check_inputs_defaults_the_canary_name():
    assert canary.check_inputs(params()) == "istio-ingressgateway-canary"
    assert canary.check_inputs(params(canary_name="gw-next")) == "gw-next"


# -- the canary copy -------------------------------------------------------------
def test_canary_copy_differs_only_in_name_revision_mark_and_replicas():
    stable = stable_deployment()
    copy = canary.canary_deployment(stable, "istio-ingressgateway-canary", "1-31", 1)
    meta = copy["metadata"]
    assert meta == {
        "name": "istio-ingressgateway-canary",
        "namespace": "istio-ingress",
        "labels": dict(SELECTOR, **{L.REVISION: "1-31", L.CANARY_OF: "istio-ingressgateway"}),
    }
    assert "status" not in copy
    spec = copy["spec"]
    assert spec["replicas"] == 1
    assert spec["selector"] == stable["spec"]["selector"]
    assert spec["strategy"] == stable["spec"]["strategy"]
    assert spec["template"]["spec"] == stable["spec"]["template"]["spec"]
    template = spec["template"]["metadata"]
    assert "creationTimestamp" not in template
    assert template["annotations"] == stable["spec"]["template"]["metadata"]["annotations"]
    assert template["labels"] == dict(
        SELECTOR,
        **{"service.istio.io/canonical-revision": "latest", L.REVISION: "1-31", L.SIDECAR_INJECT: "true"},
    )
    for key in L.OWNER_LABEL_KEYS:
        assert key not in meta["labels"] and key not in template["labels"]
    assert stable["spec"]["template"]["metadata"]["labels"][L.REVISION] == "default", "the stable is not modified"


def test_canary_copy_keeps_owner_labels_its_selector_needs_and_sets_the_role():
    stable = stable_deployment()
    stable["spec"]["selector"]["matchLabels"][L.OPERATOR_COMPONENT] = "IngressGateways"
    stable["spec"]["template"]["metadata"]["labels"][L.ROLE] = "stable"
    copy = canary.canary_deployment(stable, "c", "1-31", 2, role="canary")
    labels = copy["spec"]["template"]["metadata"]["labels"]
    assert labels[L.OPERATOR_COMPONENT] == "IngressGateways"
    assert labels[L.ROLE] == "canary"
    assert L.ROLE not in canary.canary_deployment(stable, "c", "1-31", 2)["spec"]["template"]["metadata"]["labels"]


# -- patches that record and restore --------------------------------------------
def test_merge_patch_locally():
    obj = {"a": {"b": 1, "c": 2}, "d": [1]}
    assert canary.apply_merge_patch(obj, {"a": {"b": None, "e": 3}, "d": [2]}) == {"a": {"c": 2, "e": 3}, "d": [2]}
    assert canary.apply_merge_patch(obj, {"a": {"x": None}}) == obj
    assert obj == {"a": {"b": 1, "c": 2}, "d": [1]}


def test_stable_patch_records_the_original_count_once():
    stable = stable_deployment(replicas=10)
    patch = canary.stable_present_patch(stable, "gw-canary", 10, 9)
    after = canary.apply_merge_patch(stable, patch)
    assert after["spec"]["replicas"] == 9
    assert canary.read_state(after) == {"canary": "gw-canary", "replicas": 10}
    assert L.ROLE not in after["spec"]["template"]["metadata"]["labels"]
    # A later step keeps the recorded original, and converges (the patch changes nothing more).
    again = canary.apply_merge_patch(after, canary.stable_present_patch(after, "gw-canary", 10, 9))
    assert again == after
    external = canary.apply_merge_patch(after, canary.stable_present_patch(after, "gw-canary", 10, 5, "stable"))
    assert external["spec"]["template"]["metadata"]["labels"][L.ROLE] == "stable"


def test_promote_patch_moves_revision_and_clears_state():
    stable = stable_deployment(replicas=5, annotations={L.STATE: json.dumps({"replicas": 10})})
    stable["spec"]["template"]["metadata"]["labels"][L.ROLE] = "stable"
    stable["spec"]["template"]["metadata"]["annotations"][L.REVISION] = "default"
    after = canary.apply_merge_patch(stable, canary.stable_promote_patch(stable, "1-31", 10))
    assert after["metadata"]["labels"][L.REVISION] == "1-31"
    template = after["spec"]["template"]["metadata"]
    assert template["labels"][L.REVISION] == "1-31" and L.ROLE not in template["labels"]
    assert template["annotations"][L.REVISION] == "1-31"
    assert after["spec"]["replicas"] == 10
    assert canary.read_state(after) is None
    assert after["metadata"]["labels"][L.OWNING_RESOURCE] == "istio-ingressgateway"


def hpa(min_replicas=1, max_replicas=5, state=None):
    meta = {"name": "istio-ingressgateway", "namespace": "istio-ingress"}
    if state:
        meta["annotations"] = {L.STATE: json.dumps(state)}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta,
        "spec": {
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "istio-ingressgateway"},
        },
    }


def test_hpa_pin_and_restore_round_trip():
    original = hpa()
    pinned = canary.apply_merge_patch(original, canary.hpa_pin_patch(original, 9))
    assert (pinned["spec"]["minReplicas"], pinned["spec"]["maxReplicas"]) == (9, 9)
    assert canary.read_state(pinned) == {"minReplicas": 1, "maxReplicas": 5}
    repinned = canary.apply_merge_patch(pinned, canary.hpa_pin_patch(pinned, 5))
    assert canary.read_state(repinned) == {"minReplicas": 1, "maxReplicas": 5}, "the original is kept"
    # Zero stable replicas pins at 1: an HPA whose target has 0 replicas does not scale it.
    assert canary.hpa_pin_patch(original, 0)["spec"] == {"minReplicas": 1, "maxReplicas": 1}
    restored = canary.apply_merge_patch(repinned, canary.hpa_restore_patch(repinned))
    assert restored == original
    assert canary.hpa_restore_patch(original) is None


def service(selector=None, state=None):
    meta = {"name": "istio-ingressgateway", "namespace": "istio-ingress", "labels": dict(SELECTOR, **OWNER)}
    meta["annotations"] = {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}
    if state:
        meta["annotations"][L.STATE] = json.dumps(state)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": "LoadBalancer",
            "clusterIP": "10.96.0.10",
            "externalTrafficPolicy": "Local",
            "selector": dict(selector or SELECTOR),
            "ports": [
                {"name": "status-port", "port": 15021, "targetPort": 15021, "protocol": "TCP", "nodePort": 31000},
                {"name": "http2", "port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 31001},
            ],
        },
    }


def test_service_narrow_and_restore_round_trip():
    original = service()
    narrowed = canary.apply_merge_patch(original, canary.service_narrow_patch(original))
    assert narrowed["spec"]["selector"] == dict(SELECTOR, **{L.ROLE: "stable"})
    assert canary.read_state(narrowed) == {"selector": SELECTOR}
    assert canary.apply_merge_patch(narrowed, canary.service_narrow_patch(narrowed)) == narrowed
    restored = canary.apply_merge_patch(narrowed, canary.service_restore_patch(narrowed))
    assert restored == original
    assert canary.service_restore_patch(original) is None


def test_canary_service_copies_ports_without_allocated_fields():
    narrowed = service(selector=dict(SELECTOR, **{L.ROLE: "stable"}), state={"selector": SELECTOR})
    svc = canary.canary_service(narrowed, "istio-ingressgateway-canary", "istio-ingressgateway")
    assert svc["metadata"]["name"] == "istio-ingressgateway-canary"
    assert svc["metadata"]["labels"][L.CANARY_OF] == "istio-ingressgateway"
    assert not set(L.OWNER_LABEL_KEYS) & set(svc["metadata"]["labels"])
    assert svc["metadata"]["annotations"] == {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}
    assert svc["spec"]["selector"] == dict(SELECTOR, **{L.ROLE: "canary"})
    assert svc["spec"]["type"] == "LoadBalancer" and svc["spec"]["externalTrafficPolicy"] == "Local"
    assert svc["spec"]["ports"] == [
        {"name": "status-port", "port": 15021, "targetPort": 15021, "protocol": "TCP"},
        {"name": "http2", "port": 80, "targetPort": 8080, "protocol": "TCP"},
    ]
    assert "clusterIP" not in svc["spec"]


def test_state_annotation_that_is_not_json_fails_clearly():
    broken = stable_deployment(annotations={L.STATE: "{oops"})
    with pytest.raises(
        InputError, match="gateways.istio-ops.io/state on Deployment/istio-ingress/istio-ingressgateway"
    ):
        canary.read_state(broken)


@pytest.mark.parametrize(
    "make, text, problem",
    [
        (stable_deployment, "5", "it is not a JSON object"),
        (stable_deployment, "[1]", "it is not a JSON object"),
        (stable_deployment, '"ten"', "it is not a JSON object"),
        (stable_deployment, "null", "it is not a JSON object"),
        (stable_deployment, '{"x": 1}', "missing key 'replicas', unknown key 'x'"),
        (stable_deployment, '{"replicas": "10"}', "'replicas' is not the stable replica count"),
        (stable_deployment, '{"replicas": true}', "'replicas' is not the stable replica count"),
        (stable_deployment, '{"replicas": -1}', "'replicas' is not the stable replica count"),
        (stable_deployment, '{"replicas": 2, "canary": 7}', "'canary' is not the canary Deployment's name"),
        (hpa, "5", "it is not a JSON object"),
        (hpa, '{"minReplicas": 1}', "missing key 'maxReplicas'"),
        (hpa, '{"minReplicas": 1, "maxReplicas": null}', "'maxReplicas' is not the HPA's maxReplicas"),
        (service, "[1]", "it is not a JSON object"),
        (service, '{"x": 1}', "missing key 'selector', unknown key 'x'"),
        (service, '{"selector": ["app"]}', "'selector' is not the Service's selector"),
        (service, '{"selector": {"app": 1}}', "'selector' is not the Service's selector"),
    ],
)
def test_state_annotation_of_the_wrong_shape_fails_clearly(make, text, problem):
    obj = make()
    obj["metadata"].setdefault("annotations", {})[L.STATE] = text
    with pytest.raises(InputError) as err:
        canary.read_state(obj)
    message = err.value.message
    assert "annotation gateways.istio-ops.io/state on %s/istio-ingress/istio-ingressgateway" % obj["kind"] in message
    assert problem in message, message
    assert (
        "kubectl annotate %s -n istio-ingress istio-ingressgateway gateways.istio-ops.io/state-" % (obj["kind"].lower())
        in message
    )
    assert "gateway_canary state: absent" in message


def test_states_gateway_canary_writes_are_read_back():
    assert canary.read_state(stable_deployment(annotations={L.STATE: '{"replicas": 0}'})) == {"replicas": 0}
    assert canary.read_state(hpa(state={"minReplicas": None, "maxReplicas": 3})) == {
        "minReplicas": None,
        "maxReplicas": 3,
    }
    assert canary.read_state(service(state={"selector": {}})) == {"selector": {}}
    assert canary.read_state(stable_deployment()) is None


def test_endpoints_match_counts_ready_per_revision():
    seen = {"default": {"ready": 9, "not_ready": 1}, "1-31": {"ready": 1, "not_ready": 0}}
    assert canary.endpoints_match(seen, {"default": 9, "1-31": 1})
    assert not canary.endpoints_match(seen, {"default": 10})
    assert canary.endpoints_match({"default": {"ready": 0, "not_ready": 2}}, {"1-31": 0})
