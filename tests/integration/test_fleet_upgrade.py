"""playbooks/fleet_upgrade.yml on three clusters of the bed (testbed_fleet): the canary cluster first, a failing
cluster rolled back and the rollout stopped there, the clusters after it untouched, and the report saying so."""

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from tests.testbed import fleet, istio

from .ansible_run import ROOT, AnsibleRunner

pytestmark = pytest.mark.integration

PLAYBOOK = ROOT / "playbooks" / "fleet_upgrade.yml"
GATEWAY = "fleet-gw"
SETTINGS = {"replicas": 2, "autoscaling": {"enabled": False}, "service": {"type": "ClusterIP"}}


def fleet_playbook(runner, tmp_path, extra_vars, forks=3):
    """ansible-playbook of the fleet playbook over the bed's inventory: (returncode, task results, raw output)."""
    vars_path = tmp_path / "fleet-vars.json"
    vars_path.write_text(json.dumps(extra_vars))
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(fleet.INVENTORY), "-f", str(forks)]
    argv += ["-e", "@" + str(vars_path), str(PLAYBOOK)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=runner.env(), timeout=900, check=False)
    documents = [line for line in proc.stdout.splitlines() if line.startswith('{"tasks"')]
    return proc.returncode, json.loads(documents[-1]) if documents else None, proc.stdout + proc.stderr


def gateway_state(api, namespace):
    """The gateway Deployment's resourceVersion, generation and revision, its Service's resourceVersion, and its pods
    (name: (revision, proxy image, ready, terminating))."""
    deployment = client.AppsV1Api(api).read_namespaced_deployment(GATEWAY, namespace)
    service = client.CoreV1Api(api).read_namespaced_service(GATEWAY, namespace)
    selector = ",".join(f"{k}={v}" for k, v in deployment.spec.selector.match_labels.items())
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector).items
    return {
        "resource_version": deployment.metadata.resource_version,
        "generation": deployment.metadata.generation,
        "revision": (deployment.spec.template.metadata.labels or {}).get("istio.io/rev", "default"),
        "service": service.metadata.resource_version,
        "pods": {
            pod.metadata.name: (
                (pod.metadata.labels or {}).get("istio.io/rev", "default"),
                next((c.image for c in pod.spec.containers if c.name == "istio-proxy"), None),
                any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []),
                pod.metadata.deletion_timestamp is not None,
            )
            for pod in pods
        },
    }


def test_a_failing_cluster_is_rolled_back_and_stops_the_rollout(testbed_fleet, tmp_path):
    started = time.monotonic()
    beds = testbed_fleet[:3]
    assert [b.name for b in beds] == fleet.names(3)
    hosts = ":".join(b.name for b in beds)  # a larger fleet that is up stays out of it
    apis = [config.new_client_from_config(str(b.kubeconfig)) for b in beds]
    namespace = "fleet-" + uuid.uuid4().hex[:6]
    # The environment's kubeconfig leads nowhere: every host must reach its cluster with its own `kubeconfig`.
    runner = AnsibleRunner(tmp_path / "no-kubeconfig")
    gateway = {"name": GATEWAY, "namespace": namespace, "method": "manifest", "settings": SETTINGS}
    timings = {}
    try:
        install = [
            {
                "hosts": hosts,
                "gather_facts": False,
                "tasks": [
                    {
                        "istio_ops.gateways.istio_gateway": {
                            "name": GATEWAY,
                            "namespace": namespace,
                            "method": "manifest",
                            "kubeconfig": "{{ kubeconfig }}",
                            **SETTINGS,
                        }
                    }
                ],
            }
        ]
        rc, _parsed, raw = runner.playbook(yaml.safe_dump(install), inventory=fleet.INVENTORY)
        assert rc == 0, raw[-4000:]
        timings["install"] = time.monotonic() - started
        # Drift on cluster-3: a label of the Service the collection renders, changed by hand. The report must show
        # it, and the rollout (which never reaches cluster-3) must leave it.
        drifted = [{"op": "replace", "path": "/metadata/labels/app", "value": "changed-by-hand"}]
        client.CoreV1Api(apis[2]).patch_namespaced_service(GATEWAY, namespace, drifted)
        before = [gateway_state(api, namespace) for api in apis]
        for bed, state in zip(beds, before):
            assert state["revision"] == "default" and len(state["pods"]) == 2, (bed.name, state)
            assert all(ready for _rev, _image, ready, _gone in state["pods"].values()), (bed.name, state)

        second = client.CoreV1Api(apis[1])
        istio.fail_injected_pods(second, beds[1].canary_revision, "crashloop")
        try:
            mark = time.monotonic()
            rc, parsed, raw = fleet_playbook(
                runner,
                tmp_path,
                {
                    "fleet_upgrade_hosts": hosts,
                    "fleet_upgrade_serial": 1,
                    "fleet_upgrade_gateways": [gateway],
                    "fleet_upgrade_revision": beds[0].canary_revision,
                    "fleet_upgrade_strategy": "in_place",
                    # cluster-2's new pods crash-loop: its upgrade fails when this runs out.
                    "fleet_upgrade_wait_timeout": 25,
                    "fleet_upgrade_report_dir": str(tmp_path / "report"),
                },
            )
            timings["fleet run"] = time.monotonic() - mark
        finally:
            istio.fail_injected_pods(second, beds[1].canary_revision, None)
        assert rc != 0, raw[-4000:]
        assert parsed is not None, raw[-4000:]
        after = [gateway_state(api, namespace) for api in apis]

        # cluster-1, the canary cluster: both pods on 1-31, injected by its istiod, ready.
        first = after[0]
        assert first["revision"] == beds[0].canary_revision, first
        live = {name: pod for name, pod in first["pods"].items() if not pod[3]}
        assert len(live) == 2, first
        assert {pod[:3] for pod in live.values()} == {
            (beds[0].canary_revision, f"docker.io/istio/proxyv2:{beds[0].canary_version}", True)
        }, first
        # cluster-2: back on the default revision, its pods ready; the crash-looping 1-31 pods are gone.
        rolled = after[1]
        assert rolled["revision"] == "default", rolled
        live = {name: pod for name, pod in rolled["pods"].items() if not pod[3]}
        assert {pod[:3] for pod in live.values()} == {
            ("default", f"docker.io/istio/proxyv2:{beds[1].default_version}", True)
        } and len(live) == 2, rolled
        assert rolled["generation"] > before[1]["generation"]  # it was upgraded, then rolled back
        # cluster-3, never reached: not one write to its gateway.
        assert after[2] == before[2]

        report = json.loads((tmp_path / "report" / "fleet-report.json").read_text())
        statuses = {row["cluster"]: row["status"] for row in report["clusters"]}
        assert statuses == {"cluster-1": "upgraded", "cluster-2": "rolled_back", "cluster-3": "untouched"}, statuses
        rows = {row["cluster"]: row for row in report["rows"]}
        assert {name: (r["cluster_status"], r["revision_before"], r["revision_after"]) for name, r in rows.items()} == {
            "cluster-1": ("upgraded", "default", beds[0].canary_revision),
            "cluster-2": ("rolled_back", "default", "default"),
            "cluster-3": ("untouched", "default", "default"),
        }, report["rows"]
        assert all(r["gateway"] == GATEWAY and r["namespace"] == namespace for r in rows.values()), report["rows"]
        drift = {name: (r["drift"], r["drift_details"]) for name, r in rows.items()}
        assert drift == {
            "cluster-1": (False, []),
            "cluster-2": (False, []),
            "cluster-3": (True, [f"update Service {GATEWAY}"]),
        }, drift
        assert "timed out" in rows["cluster-2"]["error"] and not rows["cluster-1"]["error"], rows["cluster-2"]
        html = (tmp_path / "report" / "fleet-report.html").read_text()
        assert all(name in html for name in fleet.names(3))
        # The table is in the play output, and the run ends failed naming the rolled-back cluster.
        [shown] = [t for t in parsed["tasks"] if t["name"] == "Show the fleet report"]
        assert "rolled_back" in "\n".join(next(iter(shown["hosts"].values()))["msg"])
        [failed] = [t for t in parsed["tasks"] if t["name"] == "Fail the run when a cluster failed or was rolled back"]
        assert "cluster-2 rolled_back" in next(iter(failed["hosts"].values()))["msg"]
    finally:
        for api in apis:
            client.CoreV1Api(api).delete_namespace(namespace, _request_timeout=30)
        timings["total"] = time.monotonic() - started
        print("fleet test timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
