"""The gateway_upgrade role as users meet it: its tags select the work they name (`--tags gateway_upgrade` on a
documented playbook runs the upgrade, `--tags preflight` only the checks), and an in-place upgrade is not failed by
an old pod that takes its time to go."""

import time

import pytest
from kubernetes.client import CoreV1Api
from kubernetes.config import new_client_from_config

from ansible_collections.istio_ops.gateways.plugins.module_utils import inventory
from tests.testbed import istio

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
    held = sorted(p["metadata"]["name"] for p in kube.list("v1", "Pod", namespace))[0]
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


def test_new_pods_that_crash_stop_an_in_place_upgrade_at_once_and_the_old_ones_serve(
    ansible, kube, testbed, namespace_factory
):
    """The target revision's proxy is broken: its pods crash-loop. The upgrade fails as soon as they do, naming the
    pods and why, long before its timeout; the gateway keeps its ready pods of the old revision (its
    PodDisruptionBudget makes the rollout replace none before a new one is ready); moving it back converges."""
    namespace = namespace_factory("crash")
    settings = dict(SETTINGS, replicas=2)
    installed = ansible.module(
        "istio_gateway", dict(name="crashing-gw", namespace=namespace, method="manifest", **settings)
    )
    assert installed.get("changed") and not installed.get("failed"), installed.get("msg")
    upgrade = {
        "gateway_upgrade_name": "crashing-gw",
        "gateway_upgrade_namespace": namespace,
        "gateway_upgrade_strategy": "in_place",
        "gateway_upgrade_method": "manifest",
        "gateway_upgrade_revision": testbed.canary_revision,
        "gateway_upgrade_gateway": settings,
        "gateway_upgrade_wait_timeout": 240,
    }
    core = CoreV1Api(new_client_from_config(str(testbed.kubeconfig)))
    istio.fail_injected_pods(core, testbed.canary_revision, "crashloop")
    try:
        started = time.monotonic()
        failed = ansible.role("gateway_upgrade", upgrade)
        elapsed = time.monotonic() - started
        assert failed["failed"], failed["_raw"][-3000:]
        assert "rollout of Deployment %s/crashing-gw stopped" % namespace in failed["msg"], failed["msg"]
        assert "CrashLoopBackOff" in failed["msg"] and "crashing-gw-" in failed["msg"], failed["msg"]
        assert elapsed < 120, "waited %.0f s of the 240 s timeout" % elapsed
        serving = [
            p
            for p in kube.list("v1", "Pod", namespace)
            if not p["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
        ]
        assert len(serving) == 2 and {inventory.pod_revision_of(p) for p in serving} == {"default"}, serving
    finally:
        istio.fail_injected_pods(core, testbed.canary_revision, None)
    back = ansible.role("gateway_upgrade", dict(upgrade, gateway_upgrade_revision=""))
    assert not back["failed"], back["msg"]
    info = ansible.module("gateway_info", {"name": "crashing-gw", "namespace": namespace})
    assert list(info["gateways"][0]["pods_by_revision"]) == ["default"], info["gateways"][0]
