"""The tag rollout's pure parts: which webhook injects a pod, what revision injected it, the ready bound."""

import json

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils import inventory, tag_rollout
from ansible_collections.istio_ops.gateways.plugins.module_utils import labels as L

GATEWAY_POD = {L.SIDECAR_INJECT: "true"}


@pytest.mark.parametrize(
    "pod, namespace, expected",
    [
        (dict(GATEWAY_POD), {}, "default"),  # a gateway with no revision label follows the default tag
        (dict(GATEWAY_POD, **{L.REVISION: "prod"}), {}, "prod"),
        (dict(GATEWAY_POD, **{L.REVISION: "prod"}), {L.REVISION: "canary"}, "canary"),  # the namespace's wins
        ({L.REVISION: "prod"}, {L.INJECTION: "enabled"}, "default"),  # istio-injection wins over both
        ({L.REVISION: "prod"}, {L.INJECTION: "disabled"}, None),
        ({}, {L.INJECTION: "enabled"}, "default"),
        ({L.SIDECAR_INJECT: "false", L.REVISION: "prod"}, {L.REVISION: "prod"}, None),
        ({}, {}, None),  # nothing asks for injection
        (None, None, None),
    ],
)
def test_injection_source_follows_istios_webhook_selectors(pod, namespace, expected):
    assert inventory.injection_source(pod, namespace) == expected


def pod(annotations=None, name="p"):
    return {"metadata": {"name": name, "annotations": annotations or {}}}


def test_injected_revision_reads_the_injectors_status():
    status = {"containers": ["istio-proxy"], "revision": "1-31"}
    assert inventory.injected_revision(pod({L.INJECTION_STATUS: json.dumps(status)})) == "1-31"
    assert inventory.injected_revision(pod()) is None
    assert inventory.injected_revision(pod({L.INJECTION_STATUS: "not json"})) is None
    assert inventory.injected_revision(pod({L.INJECTION_STATUS: "[]"})) is None


def deployment(replicas, strategy=None):
    spec = {"replicas": replicas}
    if strategy is not None:
        spec["strategy"] = strategy
    return {"spec": spec}


@pytest.mark.parametrize(
    "dep, min_ready, expected",
    [
        (deployment(4), None, 3),  # Kubernetes' default maxUnavailable 25%
        (deployment(1), None, 1),  # 25 % of 1 rounds down to 0: never below 1
        (deployment(3, {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}), None, 2),
        (deployment(10, {"rollingUpdate": {"maxUnavailable": "50%"}}), None, 5),
        (deployment(3, {"type": "Recreate"}), None, 0),
        (deployment(3), 1, 1),
        (deployment(2), 5, 2),  # never more than the replicas
    ],
)
def test_ready_bound(dep, min_ready, expected):
    assert tag_rollout.ready_bound(dep, min_ready) == expected


def test_selects_needs_every_selector_label():
    assert tag_rollout.selects({"istio": "ingress"}, {"istio": "ingress", "app": "x"})
    assert not tag_rollout.selects({"istio": "ingress", "app": "y"}, {"istio": "ingress", "app": "x"})
    assert not tag_rollout.selects({}, {"istio": "ingress"})  # an empty selector is no selection here
