"""shared_gateway derives the gateway's name, namespace and labels from shared_gateway_kind unless they are given
(issue #20, item 10): an egress gateway is not installed as istio-ingress/istio-ingressgateway.

The role's first assert prints the values it would use; an empty host list makes it fail there, before any
module runs.
"""

import pytest

from tests.unit.roles.role_play import run_role

INGRESS = "name istio-ingressgateway, namespace istio-ingress, labels {'istio': 'ingressgateway'}"
EGRESS = "name istio-egressgateway, namespace istio-egress, labels {'istio': 'egressgateway'}"


@pytest.mark.parametrize(
    "variables, expected",
    [
        ({}, INGRESS),
        ({"shared_gateway_kind": "ingress"}, INGRESS),
        ({"shared_gateway_kind": "egress"}, EGRESS),
        # An empty value (an AWX survey's empty answer) is not given either.
        ({"shared_gateway_kind": "egress", "shared_gateway_name": "", "shared_gateway_namespace": ""}, EGRESS),
        (
            {
                "shared_gateway_kind": "egress",
                "shared_gateway_name": "out",
                "shared_gateway_namespace": "edge",
                "shared_gateway_labels": {"istio": "out"},
            },
            "name out, namespace edge, labels {'istio': 'out'}",
        ),
    ],
    ids=["default", "ingress", "egress", "egress-empty", "egress-given"],
)
def test_name_namespace_and_labels_follow_the_kind(tmp_path, variables, expected):
    rc, out = run_role(tmp_path, "shared_gateway", dict(variables, shared_gateway_hosts=[]))
    assert rc != 0 and "shared_gateway: invalid variables (%s, hosts [])" % expected in out, out[-3000:]


def test_empty_labels_given_are_still_refused(tmp_path):
    rc, out = run_role(tmp_path, "shared_gateway", {"shared_gateway_kind": "egress", "shared_gateway_labels": {}})
    assert rc != 0 and "labels {}, hosts" in out, out[-3000:]
