"""A role's tags select the work they name: `--tags gateway_upgrade` on a documented playbook runs the upgrade
(here in check mode), `--tags preflight` only the checks."""

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
