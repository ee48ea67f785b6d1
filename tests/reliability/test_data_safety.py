"""Data safety: another team's Deployment, ConfigMap, Secret and Istio Gateway in every namespace the collection
touches (the shared gateway's namespace, the application namespaces, istio-system) survive every module and
role, cleanup included, unchanged (compared without server-owned metadata and status after each step)."""

import textwrap

import pytest

from . import faults
from .common import COUNTS, foreign_key, foreign_objects, foreign_state, uid

pytestmark = pytest.mark.integration

SHARED = "shared-gw"


def play(role, **variables):
    return (
        textwrap.dedent(
            """\
            - hosts: localhost
              gather_facts: false
              tasks:
                - name: Role under test
                  ansible.builtin.include_role:
                    name: istio_ops.gateways.%s
            """
            % role
        ),
        variables,
    )


class Guard:
    """The foreign objects and their content; check() compares after a step and counts what was lost."""

    def __init__(self, kube):
        self.kube = kube
        self.objects = []
        self.state = {}

    def seed(self, objects):
        for obj in objects:
            self.kube.create(obj)
        self.objects += objects
        self.state.update(foreign_state(self.kube, objects))

    def check(self, step):
        now = foreign_state(self.kube, self.objects)
        lost = [key for key in self.state if now[key] != self.state[key]]
        COUNTS["foreign_objects_checked"] += len(self.state)
        COUNTS["objects_lost"] += len(lost)
        assert not lost, "%s deleted or changed foreign objects: %s" % (step, lost)

    def remove(self):
        for obj in self.objects:
            self.kube.delete(*foreign_key(obj))


def run_role(ansible, role, **variables):
    text, extra = play(role, **variables)
    rc, parsed, raw = ansible.playbook(text, extra_vars=extra)
    assert rc == 0, raw[-4000:]
    return parsed


def ok(result):
    assert not result.get("failed"), result.get("msg")
    return result


def test_foreign_objects_survive_every_module_and_role(ansible, kube, testbed, namespace_factory):
    sfx = uid()
    gw_ns = namespace_factory("rel-s-gw")  # created by the shared_gateway role
    app_ns = namespace_factory("rel-s-app")  # the team's namespace; a dedicated gateway goes there too
    other_ns = namespace_factory("rel-s-other")  # an application namespace the shared gateway delegates to
    guard = Guard(kube)
    for ns in (app_ns, other_ns):
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    try:
        guard.seed(foreign_objects("istio-system", sfx))
        guard.seed(foreign_objects(app_ns, sfx))
        guard.seed(foreign_objects(other_ns, sfx))
        shared = dict(
            shared_gateway_name=SHARED,
            shared_gateway_namespace=gw_ns,
            shared_gateway_labels={"istio": "rel-s-" + sfx},
            shared_gateway_istioctl_path=str(testbed.istioctl),
            shared_gateway_service_type="ClusterIP",
            shared_gateway_autoscaling={"enabled": False},
            shared_gateway_replicas=2,
            shared_gateway_app_namespaces=[app_ns, other_ns],
            shared_gateway_wait_timeout=120,
        )
        run_role(ansible, "shared_gateway", **shared)
        guard.check("shared_gateway")
        guard.seed(foreign_objects(gw_ns, sfx))  # the gateway namespace exists now
        run_role(ansible, "shared_gateway", **shared)
        guard.check("shared_gateway (re-run)")

        dedicated = dict(
            dedicated_gateway_apps=[{"namespace": app_ns, "name": "app-gw", "service_type": "ClusterIP"}],
            dedicated_gateway_istioctl_path=str(testbed.istioctl),
            dedicated_gateway_autoscaling={"enabled": False},
            dedicated_gateway_replicas=1,
            dedicated_gateway_wait_timeout=120,
        )
        run_role(ansible, "dedicated_gateway", **dedicated)
        guard.check("dedicated_gateway")

        ok(
            ansible.module(
                "gateway_config",
                {
                    "name": "extra-listener",
                    "gateway_name": SHARED,
                    "gateway_namespace": gw_ns,
                    "servers": [{"port": {"number": 8081, "name": "http-alt", "protocol": "HTTP"}, "hosts": ["*"]}],
                },
            )
        )
        guard.check("gateway_config")
        ok(ansible.module("gateway_info", {}))
        guard.check("gateway_info")

        canary = {"name": "app-gw", "namespace": app_ns, "revision": testbed.canary_revision, "wait_timeout": 120}
        ok(ansible.module("gateway_canary", dict(canary, stable_replicas=1, canary_replicas=1, mode="external")))
        guard.check("gateway_canary external")
        ok(ansible.module("gateway_canary", dict(canary, state="absent")))
        guard.check("gateway_canary rollback")

        run_role(
            ansible,
            "gateway_upgrade",
            gateway_upgrade_name=SHARED,
            gateway_upgrade_namespace=gw_ns,
            gateway_upgrade_strategy="canary",
            gateway_upgrade_revision=testbed.canary_revision,
            gateway_upgrade_istioctl_path=str(testbed.istioctl_canary),
            gateway_upgrade_steps=[50, 100],
            gateway_upgrade_gateway={
                "labels": shared["shared_gateway_labels"],
                "replicas": 2,
                "autoscaling": {"enabled": False},
                "service": {"type": "ClusterIP"},
            },
            gateway_upgrade_wait_timeout=120,
        )
        guard.check("gateway_upgrade canary")

        removed = ok(
            ansible.module(
                "istio_gateway",
                {"name": "app-gw", "namespace": app_ns, "state": "absent", "binary_path": str(testbed.istioctl)},
            )
        )
        assert removed["changed"]
        guard.check("istio_gateway absent")
        cleaned = ok(
            ansible.module(
                "gateway_cleanup",
                {"name": "app-gw", "namespace": app_ns, "gateway_configs": True, "delete_namespace": True},
            )
        )
        assert cleaned["namespace"]["deleted"] is False, "the team's namespace still holds its workload"
        guard.check("gateway_cleanup delete_namespace")

        cleanup = run_role(
            ansible,
            "gateway_cleanup",
            gateway_cleanup_name=SHARED,
            gateway_cleanup_namespace=gw_ns,
            gateway_cleanup_wait_timeout=120,
        )
        facts = [t for t in cleanup["tasks"] if t["name"].endswith("Remove the gateway and what it owns")][0]
        result = facts["hosts"]["localhost"]
        assert result["removed"], "the shared gateway was not removed"
        assert result["namespace"]["deleted"] is False and result["namespace"]["created_by_collection"] is True
        guard.check("gateway_cleanup role")
        assert kube.get("v1", "Namespace", gw_ns) is not None, "a namespace holding another team's objects was deleted"
        assert faults.bed_healthy(), "istio-system's control plane was damaged"
    finally:
        guard.remove()
