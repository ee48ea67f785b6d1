"""playbooks/fleet_upgrade.yml on three clusters of the bed (testbed_fleet): the canary cluster first, a failing
cluster rolled back and the rollout stopped there, the clusters after it untouched, and the report saying so; then
as AWX runs it, with --limit and job slicing."""

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import ansible_runner
import pytest
import yaml
from kubernetes import client, config

from tests.testbed import fleet, istio

from .ansible_run import ROOT, AnsibleRunner
from .test_awx_runner import COLLECTIONS, INHERITED, scan

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


def install_gateways(runner, hosts, namespace):
    """The gateway (method manifest, 2 replicas) on each cluster of HOSTS, by one play over the bed's inventory with
    each host's own `kubeconfig`."""
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
        install_gateways(runner, hosts, namespace)
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
        # its new pods crash-loop: the rollout stops at once, naming them (not at fleet_upgrade_wait_timeout)
        assert "CrashLoopBackOff" in rows["cluster-2"]["error"] and not rows["cluster-1"]["error"], rows["cluster-2"]
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


# The playbook as AWX runs it over a fleet inventory: ansible-runner with a private data dir, the inventory as AWX
# writes it (hosts by name, each cluster's credentials inline in its host vars), AWX's job variables, `--limit`, and
# job slicing (each slice a job of its own over every Nth host, run at the same time). The canary cluster is upgraded
# and verified before any other whichever way the job is cut; a job that cannot see the canary, or sees it
# unverified, writes nothing; and no cluster's credential reaches what ansible-runner records.

CANARY = "cluster-1"


def inline_kubeconfig(path):
    """The bed's kubeconfig with its client certificate and key embedded, as an AWX host var would hold it."""
    kubeconfig = yaml.safe_load(Path(path).read_text())
    base = Path(path).parent
    for entry in kubeconfig["users"]:
        user = entry["user"]
        for key in ("client-certificate", "client-key"):
            if key in user:
                user[key + "-data"] = base64.b64encode((base / user.pop(key)).read_bytes()).decode()
    for entry in kubeconfig["clusters"]:
        cluster = entry["cluster"]
        if "certificate-authority" in cluster:
            ca = base / cluster.pop("certificate-authority")
            cluster["certificate-authority-data"] = base64.b64encode(ca.read_bytes()).decode()
    return kubeconfig


class FleetJobs:
    """AWX jobs of the fleet playbook: each its own private data dir, inventory and artifacts, scanned for every
    cluster's client key afterwards."""

    def __init__(self, base, beds):
        self.base = Path(base)
        self.hostvars = {}
        self.secrets = {}
        for bed in beds:
            kubeconfig = inline_kubeconfig(bed.kubeconfig)
            self.hostvars[bed.name] = {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "kubeconfig": kubeconfig,
            }
            key = kubeconfig["users"][0]["user"]["client-key-data"]
            self.secrets[bed.name + " client key"] = key[40:100]  # a piece of it: no line wrap can hide it

    def prepare(self, hosts, extravars, limit=None):
        """The private data dir of one job over HOSTS (in the order AWX writes them: by name)."""
        ident = "fleet-" + uuid.uuid4().hex[:6]
        pdd = self.base / ident
        home, tmp = self.base / (ident + "-home"), self.base / (ident + "-tmp")
        for path in (pdd / "env", pdd / "inventory", home, tmp):
            path.mkdir(parents=True)
        shutil.copytree(ROOT / "playbooks", pdd / "project")
        inventory = {
            "all": {"children": ["fleet"]},
            "fleet": {"hosts": sorted(hosts)},
            "_meta": {"hostvars": {name: self.hostvars[name] for name in hosts}},
        }
        # AWX's inventory file: a script printing the inventory (awx/main/tasks/jobs.py write_inventory_file).
        script = pdd / "inventory" / "hosts"
        script.write_text("#! %s\nprint(%r)\n" % (sys.executable, json.dumps(inventory)))
        script.chmod(0o700)
        meta = {"awx_job_id": 4711, "tower_job_id": 4711, "awx_job_template_name": "Fleet gateway upgrade"}
        extravars = dict(meta, fleet_upgrade_report_dir=str(pdd / "report"), **extravars)
        (pdd / "env" / "extravars").write_text(json.dumps(extravars))
        envvars = {
            "KUBECONFIG": str(home / "no-such-kubeconfig"),
            "HOME": str(home),
            "TMPDIR": str(tmp),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_REMOTE_TMP": str(home / ".ansible" / "tmp"),
            "ANSIBLE_LOCAL_TEMP": str(home / ".ansible" / "local"),
        }
        (pdd / "env" / "envvars").write_text(json.dumps(envvars))
        return {"private_data_dir": str(pdd), "playbook": "fleet_upgrade.yml", "ident": ident, "limit": limit}

    def run(self, *jobs):
        """Run the prepared JOBS at the same time (AWX starts a sliced job's slices together); their runners."""
        saved = {name: os.environ.pop(name) for name in INHERITED if name in os.environ}
        try:
            started = [ansible_runner.run_async(quiet=True, **job) for job in jobs]
            for thread, _runner in started:
                thread.join(900)
        finally:
            os.environ.update(saved)
        runners = [runner for _thread, runner in started]
        for job in jobs:
            pdd = Path(job["private_data_dir"])
            found, _count = scan(
                pdd, pdd.parent / (job["ident"] + "-home"), pdd.parent / (job["ident"] + "-tmp"), self.secrets
            )
            # AWX writes the inventory, host vars and all, into the private data dir itself.
            found = [entry for entry in found if not entry[0].endswith("/inventory/hosts")]
            assert not found, "secrets in what job %s left: %s" % (job["ident"], found)
        return runners


def failures(runner):
    return [
        "%s: %s" % (e["event_data"].get("task"), e["event_data"].get("res", {}).get("msg"))
        for e in runner.events
        if e["event"] == "runner_on_failed" and not e["event_data"].get("ignore_errors")
    ]


def touched(runner):
    """The hosts a task of the upgrade plays ran a gateway module on (reads or writes)."""
    return {
        e["event_data"]["host"]
        for e in runner.events
        if e["event"] in ("runner_on_ok", "runner_on_failed")
        and e["event_data"].get("play", "").startswith("Fleet gateway upgrade")
        and (e["event_data"].get("resolved_action") or e["event_data"].get("task_action") or "").startswith(
            "istio_ops.gateways."
        )
    }


def report(job):
    return json.loads((Path(job["private_data_dir"]) / "report" / "fleet-report.json").read_text())


def test_limit_and_slices_never_pass_the_canary(testbed_fleet, tmp_path):
    beds = {b.name: b for b in testbed_fleet[:3]}
    assert sorted(beds) == fleet.names(3)
    apis = {name: config.new_client_from_config(str(b.kubeconfig)) for name, b in beds.items()}
    namespace = "fleet-awx-" + uuid.uuid4().hex[:6]
    target = beds[CANARY].canary_revision
    jobs = FleetJobs(tmp_path / "jobs", beds.values())

    def survey(**extra):
        # the job template's variables and survey answers (strings where a survey gives strings)
        answers = {
            "fleet_upgrade_gateways": [
                {"name": GATEWAY, "namespace": namespace, "method": "manifest", "settings": SETTINGS}
            ],
            "fleet_upgrade_revision": target,
            "fleet_upgrade_strategy": "in_place",
            "fleet_upgrade_serial": "1",
            "fleet_upgrade_canary": CANARY,
        }
        answers.update(extra)
        return answers

    def states():
        return {name: gateway_state(api, namespace) for name, api in apis.items()}

    try:
        install_gateways(AnsibleRunner(tmp_path / "no-kubeconfig"), ":".join(beds), namespace)
        before = states()
        assert {s["revision"] for s in before.values()} == {"default"}, before

        # 1. AWX orders hosts its own way: without a named canary the job refuses, before any module runs.
        unnamed = survey()
        del unnamed["fleet_upgrade_canary"]
        job = jobs.prepare(beds, unnamed)
        [runner] = jobs.run(job)
        assert runner.status == "failed"
        assert any("fleet_upgrade_canary is not set" in f for f in failures(runner)), failures(runner)
        assert touched(runner) == set() and states() == before

        # 2. --limit leaves out the canary, which is not upgraded yet: refused after reading it, nothing written.
        job = jobs.prepare(beds, survey(), limit="cluster-2,cluster-3")
        [runner] = jobs.run(job)
        assert runner.status == "failed"
        assert any(f"canary cluster {CANARY} is outside this run" in f for f in failures(runner)), failures(runner)
        assert states() == before

        # 3. Sliced in two, as AWX slices: the hosts by name, every 2nd from 1 and from 2, both slices at once.
        # The slice without the canary refuses; the one with it upgrades the canary, then its other cluster.
        names = sorted(beds)
        slices = [jobs.prepare(names[i::2], survey()) for i in range(2)]
        with_canary, without = jobs.run(*slices)
        assert without.status == "failed"
        assert any("A sliced job" in f for f in failures(without)), failures(without)
        assert touched(without) == set()
        assert with_canary.status == "successful", failures(with_canary)
        now = states()
        assert now["cluster-2"] == before["cluster-2"]
        for name in ("cluster-1", "cluster-3"):
            assert now[name]["revision"] == target, (name, now[name])
            live = [pod for pod in now[name]["pods"].values() if not pod[3]]
            assert len(live) == 2 and all(pod[0] == target and pod[2] for pod in live), (name, now[name])
        # canary first: every event of cluster-3's upgrade comes after the canary's last
        order = [
            e["event_data"]["host"]
            for e in with_canary.events
            if e["event"] == "runner_on_ok" and e["event_data"].get("play", "").startswith("Fleet gateway upgrade")
        ]
        assert order and max(i for i, h in enumerate(order) if h == CANARY) < order.index("cluster-3"), order
        statuses = {row["cluster"]: row["status"] for row in report(slices[0])["clusters"]}
        assert statuses == {"cluster-1": "upgraded", "cluster-3": "upgraded"}, statuses

        # 4. --limit to the rest now that the canary is verified: cluster-2 follows; the report covers the limit.
        job = jobs.prepare(beds, survey(), limit="cluster-2")
        [runner] = jobs.run(job)
        assert runner.status == "successful", failures(runner)
        assert touched(runner) == {"cluster-2"}
        last = states()
        assert last["cluster-2"]["revision"] == target
        assert last["cluster-1"] == now["cluster-1"] and last["cluster-3"] == now["cluster-3"]
        assert {row["cluster"]: row["status"] for row in report(job)["clusters"]} == {"cluster-2": "upgraded"}
    finally:
        for api in apis.values():
            client.CoreV1Api(api).delete_namespace(namespace, _request_timeout=30)
