"""The gateway_upgrade role as users meet it: its tags select the work they name (`--tags gateway_upgrade` on a
documented playbook runs the upgrade, `--tags preflight` only the checks), and an in-place upgrade is not failed by
an old pod that takes its time to go."""

import pytest

from .ansible_run import ROOT

pytestmark = pytest.mark.integration

PLAYBOOK = (ROOT / "playbooks" / "upgrade_in_place.yml").read_text()
MOVE = "Move the gateway to the target revision (rolling restart)"
SETTINGS = {"replicas": 1, "autoscaling": {"enabled": False}, "service": {"type": "ClusterIP"}}


def test_tags_select_the_upgrade_not_only_its_preflight(ansible, kube, testbed, namespace_factory):
    namespace = namespace_factory("tags")
    installed = ansible.module(
        "istio_gateway", dict(name="tagged-gw", namespace=namespace, method="manifest", **SETTINGS)
    )
    assert installed.get("changed") and not installed.get("failed"), installed.get("msg")
    before = kube.get("apps/v1", "Deployment", "tagged-gw", namespace)["metadata"]["resourceVersion"]
    upgrade = {
        "gateway_upgrade_name": "tagged-gw",
        "gateway_upgrade_namespace": namespace,
        "gateway_upgrade_method": "manifest",
        "gateway_upgrade_revision": testbed.canary_revision,
        "gateway_upgrade_gateway": SETTINGS,
    }

    def tasks_run(tags):
        rc, parsed, raw = ansible.playbook(PLAYBOOK, extra_vars=upgrade, check=True, args=("--tags", tags))
        assert rc == 0 and parsed is not None, raw[-4000:]
        return {task["name"].split(" : ", 1)[-1]: task["hosts"]["localhost"] for task in parsed["tasks"]}

    selected = tasks_run("gateway_upgrade")
    assert "Check the role's variables" in selected
    assert MOVE in selected, sorted(selected)
    assert selected[MOVE]["changed"], selected[MOVE]  # the revision would change (check mode)

    preflight = tasks_run("preflight")
    assert "Check the role's variables" in preflight and MOVE not in preflight, sorted(preflight)
    # check mode throughout: the gateway is as it was
    assert kube.get("apps/v1", "Deployment", "tagged-gw", namespace)["metadata"]["resourceVersion"] == before


HOLD = "istio-ops.test/hold"


def test_an_old_pod_still_terminating_does_not_fail_the_upgrade(ansible, kube, testbed, namespace_factory):
    """A pod of the old revision that a finalizer (or a long drain) keeps after the rollout is being deleted, not
    serving: the role's check that every pod is on the target leaves it out, and gateway_info lists it apart."""
    namespace = namespace_factory("drain")
    settings = dict(SETTINGS, replicas=2)
    installed = ansible.module(
        "istio_gateway", dict(name="draining-gw", namespace=namespace, method="manifest", **settings)
    )
    assert installed.get("changed") and not installed.get("failed"), installed.get("msg")
    [held, *_] = sorted(p["metadata"]["name"] for p in kube.list("v1", "Pod", namespace))
    kube.patch("v1", "Pod", held, namespace, {"metadata": {"finalizers": [HOLD]}})
    try:
        result = ansible.role(
            "gateway_upgrade",
            {
                "gateway_upgrade_name": "draining-gw",
                "gateway_upgrade_namespace": namespace,
                "gateway_upgrade_strategy": "in_place",
                "gateway_upgrade_method": "manifest",
                "gateway_upgrade_revision": testbed.canary_revision,
                "gateway_upgrade_gateway": settings,
            },
        )
        assert not result["failed"], result["msg"]
        pod = kube.get("v1", "Pod", held, namespace)
        assert pod is not None and pod["metadata"].get("deletionTimestamp"), pod  # still there, being deleted
        info = ansible.module("gateway_info", {"name": "draining-gw", "namespace": namespace})
        [gateway] = info["gateways"]
        assert gateway["terminating_pods"] == [held], gateway
        assert list(gateway["pods_by_revision"]) == [testbed.canary_revision], gateway
        assert len(gateway["pods_by_revision"][testbed.canary_revision]) == 2, gateway
    finally:
        kube.patch("v1", "Pod", held, namespace, {"metadata": {"finalizers": None}})
