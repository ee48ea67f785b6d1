"""`make bench`: what runs of the collection cost, measured on the local test bed.

Platform teams run these playbooks on every change and on schedules (drift correction), often
against many gateways, so the numbers that matter are wall time per run, how it grows with the
number of gateways, and how hard a converged run leans on the API server. Five measurements:

1. first install of the seed's shared gateway: istio_gateway (one-task ansible-playbook) against the
   seed's manual steps (create the namespace, `istioctl install -y -f <seed IOP>`);
2. a converged re-run: istio_gateway against an `istioctl install -y -f` re-run (what naive automation
   does every time) and against two floors, one-task plays that only read: gateway_info (name and
   namespace) and ansible.builtin.uri GETting the gateway Deployment with the bed's admin certificate;
3. a canary step 10% -> 50% with gateway_canary, until the Service's endpoints show it;
4. N dedicated gateways (N = 1, 5, 20) in one play: install, then a converged re-run of the same play;
5. API requests of a converged re-run (API server counters, and the module's own client exactly) and
   the peak memory of the module process.

The machine has 2 cores and others use the same bed, so every comparison is measured side by side:
each repetition runs all variants of a measurement back to back, in an order rotated per repetition,
and ratios are taken per repetition before their median is. Nothing here is a test: no threshold
fails the run; the targets are reported as met or not.

    .venv/bin/python bench/run.py [--reps 5] [--sizes 1,5,20] [--only first,converged,canary,scale]
"""

import argparse
import collections
import datetime
import functools
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import urllib3
import yaml

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / ".build" / "collections"
LINK = COLLECTIONS / "ansible_collections" / "istio_ops" / "gateways"
if not LINK.exists():  # what `make collection` does, for a bare `python bench/run.py`
    LINK.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(ROOT, LINK)
sys.path[:0] = [str(ROOT), str(COLLECTIONS)]

import ansible.release  # noqa: E402
import kubernetes  # noqa: E402
from kubernetes import client as k8s_client  # noqa: E402
from kubernetes import config as k8s_config  # noqa: E402

from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import GatewayError  # noqa: E402
from ansible_collections.istio_ops.gateways.plugins.module_utils.k8s import KubeClient  # noqa: E402
from tests.integration.ansible_run import AnsibleRunner  # noqa: E402

RESULTS = ROOT / "bench" / "results.json"
PROBE = ROOT / "bench" / "module_probe.py"
GATEWAY = "istio-ingressgateway"
SEED_LABELS = {"istio": "ingressgateway"}
WAIT_TIMEOUT = 300

# The seed's shared gateway (as tests/integration/test_testbed.py documents it). Each repetition moves it
# into a fresh namespace and names the IstioOperator after that namespace: istioctl prunes by owner name
# across the cluster, so a shared name would make each repetition remove the previous one.
SEED_OPERATOR = (ROOT / "tests" / "testbed" / "seed-ingress-iop.yaml").read_text()

READ_VERBS = {"GET", "LIST", "WATCH"}
# What installing a gateway writes (istioctl's objects, the namespace, the revision-tag webhooks a
# default-revision install re-applies). The bed's own background writes (leader-election leases and
# ConfigMaps, events, controllers' status updates) are other resources or subresources.
GATEWAY_RESOURCES = {
    "deployments",
    "services",
    "serviceaccounts",
    "horizontalpodautoscalers",
    "poddisruptionbudgets",
    "roles",
    "rolebindings",
    "networkpolicies",
    "namespaces",
    "mutatingwebhookconfigurations",
    "validatingwebhookconfigurations",
}


class BenchError(Exception):
    pass


# -- statistics -----------------------------------------------------------------------------------------
def summary(samples):
    """Median and spread of a list of numbers (the raw samples are kept for the record)."""
    ordered = sorted(samples)
    out = {
        "n": len(ordered),
        "median": round(statistics.median(ordered), 4),
        "min": round(ordered[0], 4),
        "max": round(ordered[-1], 4),
        "samples": [round(x, 4) for x in samples],
    }
    if len(ordered) >= 2:
        quartiles = statistics.quantiles(ordered, n=4, method="inclusive")
        out["iqr"] = [round(quartiles[0], 4), round(quartiles[2], 4)]
    return out


def ratios(numerators, denominators):
    """Per-repetition ratios: each pair was measured back to back, so machine noise mostly cancels."""
    return summary([a / b for a, b in zip(numerators, denominators)])


def rotated(variants, rep):
    """The variants in an order rotated per repetition, so none always runs first (or after another)."""
    shift = rep % len(variants)
    return variants[shift:] + variants[:shift]


def timed(func, *args, **kwargs):
    started = time.perf_counter()
    value = func(*args, **kwargs)
    return time.perf_counter() - started, value


# -- the bed ------------------------------------------------------------------------------------------
class Bed:
    """The running test bed: connection, istioctl binaries, and the clients the bench measures with."""

    def __init__(self):
        testbed = [sys.executable, "-m", "tests.testbed.testbed"]
        subprocess.run(testbed + ["up"], cwd=ROOT, check=True)
        out = subprocess.run(testbed + ["env"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
        env = dict(shlex.split(line[len("export ") :])[0].split("=", 1) for line in out.splitlines() if line)
        self.kubeconfig = env["KUBECONFIG"]
        self.istioctl = env["ISTIOCTL"]
        self.canary_revision = env["TESTBED_CANARY_REVISION"]
        self.kube = KubeClient({"kubeconfig": self.kubeconfig})
        # The admin identity's files (the loader writes embedded data to temp files, the bed uses paths).
        cfg = k8s_client.Configuration()
        k8s_config.load_kube_config(config_file=self.kubeconfig, client_configuration=cfg)
        self.server, self.ca, self.cert, self.key = cfg.host, cfg.ssl_ca_cert, cfg.cert_file, cfg.key_file
        self.http = urllib3.PoolManager(ca_certs=self.ca, cert_file=self.cert, key_file=self.key)
        self.ansible = AnsibleRunner(self.kubeconfig)
        self.faults = []  # repetitions run again, and why

    def retry(self, what, func):
        """func(attempt), and once more if it fails.

        Others' fault-injection tests restart this bed's API server and istiods at any time. A repetition
        they break is run again (func gets attempt 1, to use fresh namespaces) and noted in the results;
        a second failure is a real one.
        """
        try:
            return func(0)
        except (BenchError, GatewayError, urllib3.exceptions.HTTPError, OSError) as exc:
            self.faults.append("%s: %s" % (what, str(exc)[-600:]))
            print("!! %s failed; running it again: ...%s" % (what, str(exc)[-400:]), flush=True)
            time.sleep(10)
            return func(1)

    # -- API server counters ------------------------------------------------------------------------
    def counters(self):
        """apiserver_request_total summed by (verb, resource, subresource, dry_run)."""
        response = self.http.request("GET", self.server + "/metrics", timeout=30)
        counts = collections.Counter()
        for line in response.data.decode().splitlines():
            if not line.startswith("apiserver_request_total{"):
                continue
            labels, value = line[len("apiserver_request_total{") :].rsplit("} ", 1)
            lab = dict(re.findall(r'(\w+)="([^"]*)"', labels))
            if lab.get("subresource") == "/metrics":
                continue  # the bench's own scrape
            counts[(lab["verb"], lab["resource"], lab["subresource"], lab["dry_run"])] += float(value)
        return counts

    # -- namespaces -----------------------------------------------------------------------------------
    def create_namespace(self, name, exist_ok=False):
        if exist_ok and self.kube.get("v1", "Namespace", name) is not None:
            return
        self.kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def delete_namespaces(self, names, timeout=300):
        """Delete and wait until gone, so the next measurement does not share the cores with teardown."""
        for name in names:
            self.kube.delete("v1", "Namespace", name)
        deadline = time.monotonic() + timeout
        left = list(names)
        while left and time.monotonic() < deadline:
            left = [n for n in left if self.kube.get("v1", "Namespace", n) is not None]
            if left:
                time.sleep(1)
        if left:
            print("warning: namespaces still terminating after %ss: %s" % (timeout, ", ".join(left)))

    def leftovers(self):
        """Namespaces an interrupted bench run left behind (bench-<run id>-...)."""
        pattern = re.compile(r"^bench-[0-9a-f]{4}-")
        return [
            n["metadata"]["name"] for n in self.kube.list("v1", "Namespace") if pattern.match(n["metadata"]["name"])
        ]

    # -- what the bench runs --------------------------------------------------------------------------
    def play(self, tasks, extra_vars=None, collections=None):
        """Run a play of `tasks` through ansible-playbook; (seconds, [each task's registered result]).

        `collections`: a collections root holding another copy of the collection to run instead.
        """
        play = [{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]
        env = {"ANSIBLE_COLLECTIONS_PATH": collections} if collections else None
        seconds, (rc, parsed, raw) = timed(self.ansible.playbook, yaml.safe_dump(play), extra_vars=extra_vars, env=env)
        if parsed is None:
            raise BenchError("ansible-playbook produced no JSON (rc=%s):\n%s" % (rc, raw[-3000:]))
        results = [task["hosts"]["localhost"] for task in parsed["tasks"]]
        for result in results:
            if result.get("failed"):
                # A loop's own msg only says that some item failed; the items say what.
                items = [i.get("msg") for i in result.get("results", []) if i.get("failed")]
                raise BenchError(("task failed: %s %s" % (result.get("msg"), items))[:3000])
        return seconds, results

    def gateway_task(self, namespace, **extra):
        args = {
            "name": GATEWAY,
            "namespace": namespace,
            "labels": SEED_LABELS,
            "binary_path": self.istioctl,
            "wait_timeout": WAIT_TIMEOUT,
        }
        args.update(extra)
        return {"name": "gateway", "istio_ops.gateways.istio_gateway": args, "register": "result"}

    def istioctl_install(self, iop_path):
        proc = subprocess.run(
            [self.istioctl, "install", "-y", "-f", str(iop_path), "--kubeconfig", self.kubeconfig],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise BenchError("istioctl install failed: %s" % (proc.stdout + proc.stderr)[-3000:])

    def probe(self, module, args, cprofile=None, collections=None, env=None):
        """Run a module directly (bench/module_probe.py, a fresh process); (seconds, result, report)."""
        with tempfile.TemporaryDirectory(prefix="istio-ops-bench-") as tmp:
            report_path = Path(tmp) / "report.json"
            argv = [sys.executable, str(PROBE), module, json.dumps(args), "--report", str(report_path)]
            if cprofile:
                argv += ["--cprofile", cprofile]
            if collections:
                argv += ["--collections", collections]
            env = dict(os.environ, K8S_AUTH_KUBECONFIG=self.kubeconfig, **(env or {}))
            seconds, proc = timed(subprocess.run, argv, capture_output=True, text=True, env=env, check=False)
            lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
            if not lines or not report_path.exists():
                raise BenchError("module probe failed: %s" % (proc.stdout + proc.stderr)[-3000:])
            result = json.loads(lines[-1])
            if result.get("failed"):
                raise BenchError("module probe: %s" % result.get("msg"))
            return seconds, result, json.loads(report_path.read_text())


def seed_operator(namespace, directory):
    """The seed IstioOperator moved into `namespace`, written to a file; its path."""
    operator = yaml.safe_load(SEED_OPERATOR)
    operator["metadata"]["name"] = namespace
    operator["spec"]["components"]["ingressGateways"][0]["namespace"] = namespace
    path = Path(directory) / ("%s.yaml" % namespace)
    path.write_text(yaml.safe_dump(operator))
    return path


def istioctl_subcommands(result):
    return [" ".join(c["argv"][1:3]) for c in result["istioctl"]["commands"]]


def request_delta(before, after):
    """Requests counted between two scrapes; None when a counter went back (the API server restarted)."""
    if any(after.get(key, 0) < count for key, count in before.items()):
        return None
    return {key: after[key] - before.get(key, 0) for key in after if after[key] - before.get(key, 0) > 0}


def classify(delta):
    """Request counts of one window: total, reads, dry-run writes, writes (and those to gateway kinds)."""
    out = collections.Counter()
    for (verb, resource, subresource, dry_run), count in delta.items():
        out["total"] += count
        if verb in READ_VERBS:
            out["reads"] += count
        elif dry_run:
            out["dry_run"] += count
        elif verb == "CONNECT":
            out["connect"] += count  # istioctl's port-forwards to istiod
        else:
            out["writes"] += count
            if resource in GATEWAY_RESOURCES and not subresource:
                out["gateway_writes"] += count
    return {k: int(v) for k, v in out.items()}


def cellwise_min(deltas):
    """Per (verb, resource, subresource, dry_run), the fewest requests any repetition saw.

    Other users of the bed only ever add requests to a window, so the minimum over repetitions is the
    closest bound on what the measured command itself sent.
    """
    deltas = [d for d in deltas if d is not None]
    keys = set().union(*deltas) if deltas else set()
    return {key: min(d.get(key, 0) for d in deltas) for key in keys if min(d.get(key, 0) for d in deltas) > 0}


def cells_text(delta):
    return {
        "%s %s%s%s" % (v, r or "-", "/" + s if s else "", " (dry-run)" if d else ""): int(c)
        for (v, r, s, d), c in sorted(delta.items())
    }


# -- 1. first install ----------------------------------------------------------------------------------
def bench_first_install(bed, run_id, reps, tmp):
    samples = {"module": [], "manual": []}
    module_own = []
    namespaces = []

    def one(variant, rep, attempt):
        ns = "bench-%s-first-%s-%d%s" % (run_id, variant, rep, "r" * attempt)
        namespaces.append(ns)
        own = None
        if variant == "module":
            seconds, [result] = bed.play([bed.gateway_task(ns)])
            if not result["changed"] or "install -y" not in istioctl_subcommands(result):
                raise BenchError("first install did not install: %s" % result.get("objects"))
            own = result["timings"]["total_seconds"]
        else:
            iop = seed_operator(ns, tmp)
            started = time.perf_counter()
            bed.create_namespace(ns)  # `kubectl create namespace`, as one in-process POST
            bed.istioctl_install(iop)  # waits for readiness, like the module's install
            seconds = time.perf_counter() - started
        dep = bed.kube.get("apps/v1", "Deployment", GATEWAY, ns)
        if not dep or not dep.get("status", {}).get("readyReplicas"):
            raise BenchError("first install (%s): no ready gateway in %s" % (variant, ns))
        return seconds, own

    try:
        for rep in range(reps):
            for variant in rotated(["module", "manual"], rep):
                what = "first install, %s, repetition %d" % (variant, rep)
                seconds, own = bed.retry(what, functools.partial(one, variant, rep))
                samples[variant].append(seconds)
                if own is not None:
                    module_own.append(own)
    finally:
        bed.delete_namespaces(namespaces)
    return {
        "module": summary(samples["module"]),
        "module_own": summary(module_own),
        "manual": summary(samples["manual"]),
        "ratio_module_to_manual": ratios(samples["module"], samples["manual"]),
    }


# -- 2 and 5. converged re-run, its API requests and memory -----------------------------------------------
def bench_converged(bed, run_id, reps, tmp, cprofile=None, baseline=None):
    """Every variant once per repetition, rotated; `baseline` adds the same module from another copy."""
    ns_module = "bench-%s-conv-m" % run_id
    ns_seed = "bench-%s-conv-s" % run_id
    iop = seed_operator(ns_seed, tmp)
    deployment_path = "/apis/apps/v1/namespaces/%s/deployments/%s" % (ns_module, GATEWAY)
    gateway_args = bed.gateway_task(ns_module)["istio_ops.gateways.istio_gateway"]

    def check_converged(result):
        actions = {o["action"] for o in result["objects"]}
        if result["changed"] or actions != {"none"} or "install -y" in istioctl_subcommands(result):
            raise BenchError("the converged run was not converged: %s" % result.get("objects"))

    def module(collections=None):
        seconds, [result] = bed.play([bed.gateway_task(ns_module)], collections=collections)
        check_converged(result)
        return seconds, {"own": result["timings"]["total_seconds"]}

    def probe(collections=None, env=None):
        seconds, result, report = bed.probe("istio_gateway", gateway_args, collections=collections, env=env)
        check_converged(result)
        return seconds, {"own": result["timings"]["total_seconds"], "report": report, "result": result}

    def istioctl():
        return timed(bed.istioctl_install, iop)[0], {}

    def floor_info():
        task = {"istio_ops.gateways.gateway_info": {"name": GATEWAY, "namespace": ns_module}, "register": "result"}
        seconds, [result] = bed.play([task])
        if len(result["gateways"]) != 1:
            raise BenchError("gateway_info found %s gateways" % len(result["gateways"]))
        return seconds, {}

    def floor_uri():
        task = {
            "ansible.builtin.uri": {
                "url": bed.server + deployment_path,
                "client_cert": bed.cert,
                "client_key": bed.key,
                "ca_path": bed.ca,
            },
            "register": "result",
        }
        seconds, [result] = bed.play([task])
        if result.get("status") != 200:
            raise BenchError("uri floor: HTTP %s" % result.get("status"))
        return seconds, {}

    variants = {
        "module": module,
        "istioctl": istioctl,
        "floor_info": floor_info,
        "floor_uri": floor_uri,
        "probe": probe,
        # The same direct run without the istioctl output cache: what the cache alone saves.
        "probe_nocache": lambda: probe(env={"ISTIO_OPS_GATEWAYS_CACHE": "off"}),
        "idle": None,
    }
    if baseline:
        variants["module_baseline"] = lambda: module(collections=baseline)
        variants["probe_baseline"] = lambda: probe(collections=baseline)
    seconds = {name: [] for name in variants}
    infos = {name: [] for name in variants}
    deltas = {name: [] for name in variants}
    try:
        # Setup (not timed): one gateway installed by the module, one by the seed's manual steps.
        def setup(attempt):
            bed.play([bed.gateway_task(ns_module)])
            bed.create_namespace(ns_seed, exist_ok=attempt > 0)
            bed.istioctl_install(iop)

        bed.retry("converged re-run setup", setup)
        for name, func in variants.items():  # warm-up: page cache, and the state a scheduled run finds
            if func:
                bed.retry("converged re-run warm-up, %s" % name, lambda attempt, func=func: func())
        for rep in range(reps):
            for name in rotated(list(variants), rep):
                faults = len(bed.faults)
                before = bed.counters()
                if name == "idle":
                    # A window as long as this repetition's module run, with nothing run: the bed's
                    # background traffic (leader elections, other users) to compare request counts with.
                    elapsed, info = (seconds["module"][-1] if seconds["module"] else 1.5), {}
                    time.sleep(elapsed)
                else:
                    what = "converged re-run, %s, repetition %d" % (name, rep)
                    elapsed, info = bed.retry(what, lambda attempt, name=name: variants[name]())
                delta = request_delta(before, bed.counters())
                deltas[name].append(delta if len(bed.faults) == faults else None)  # a retried window is not one run
                seconds[name].append(elapsed)
                infos[name].append(info)
        if cprofile:
            bed.probe("istio_gateway", gateway_args, cprofile=cprofile)
    finally:
        bed.delete_namespaces([ns_module, ns_seed])

    out = {
        "seconds": {name: summary(values) for name, values in seconds.items() if name != "idle"},
        "module_own": {
            name: summary([i["own"] for i in infos[name]]) for name in infos if infos[name] and "own" in infos[name][0]
        },
        "ratios": {
            "istioctl_to_module": ratios(seconds["istioctl"], seconds["module"]),
            "module_to_floor_info": ratios(seconds["module"], seconds["floor_info"]),
            "module_to_floor_uri": ratios(seconds["module"], seconds["floor_uri"]),
            "probe_to_istioctl": ratios(seconds["probe"], seconds["istioctl"]),
            "probe_nocache_to_probe": ratios(seconds["probe_nocache"], seconds["probe"]),
        },
        "requests": {},
        "client_requests": {},
        "memory_mib": {},
    }
    if baseline:
        out["baseline"] = baseline
        out["ratios"]["baseline_to_module"] = ratios(seconds["module_baseline"], seconds["module"])
        out["ratios"]["probe_baseline_to_probe"] = ratios(seconds["probe_baseline"], seconds["probe"])
    for name in variants:
        floor = cellwise_min(deltas[name])
        out["requests"][name] = {
            "min_of_reps": classify(floor),
            "cells_min_of_reps": cells_text(floor),
            "per_rep": [classify(d) if d is not None else None for d in deltas[name]],
        }
    for name in [n for n in variants if n.startswith("probe")]:
        reports = [i["report"] for i in infos[name]]
        sent = reports[-1]["requests"]
        out["client_requests"][name] = {
            "total": [len(r["requests"]) for r in reports],
            "writes": [sum(q["method"] != "GET" and not q["dry_run"] for q in r["requests"]) for r in reports],
            "reads": sum(q["method"] == "GET" for q in sent),
            "dry_run": sum(q["dry_run"] for q in sent),
            "istioctl_commands": istioctl_subcommands(infos[name][-1]["result"]),
            "requests": ["%s %s%s" % (q["method"], q["path"], " (dry-run)" if q["dry_run"] else "") for q in sent],
        }
        out["memory_mib"][name] = {
            "module_process": summary([r["maxrss_mib"] for r in reports]),
            "children": summary([r["children_maxrss_mib"] for r in reports]),
        }
    return out


# -- 3. canary step ------------------------------------------------------------------------------------
def bench_canary(bed, run_id, reps):
    to10, to50, own50 = [], [], []
    namespaces = []

    def step(namespace, weight):
        args = {
            "name": GATEWAY,
            "namespace": namespace,
            "revision": bed.canary_revision,
            "weight": weight,
            "wait_timeout": WAIT_TIMEOUT,
        }
        return bed.play([{"istio_ops.gateways.gateway_canary": args, "register": "result"}])

    def one(rep, attempt):
        ns = "bench-%s-canary-%d%s" % (run_id, rep, "r" * attempt)
        namespaces.append(ns)  # deleted at the end, with its canary (not timed)
        # Ten pods, so 10% is one canary pod and 50% five.
        bed.play([bed.gateway_task(ns, replicas=10, autoscaling={"enabled": False})])
        seconds10, _result = step(ns, 10)
        seconds50, [result] = step(ns, 50)
        # wait: true returns only once the Service's endpoints show the split; check that it says so.
        # Pods the stable side gave up linger as not-ready endpoints for a moment; count the ready ones.
        eps = {rev: e["ready"] for rev, e in result["endpoints_by_revision"].items() if e["ready"]}
        expected = {"default": 5, bed.canary_revision: 5}
        if result["split"]["ready"] != {"stable": 5, "canary": 5} or eps != expected:
            raise BenchError("canary 50%%: endpoints %s, split %s" % (eps, result["split"]))
        return seconds10, seconds50, result["timings"]["total_seconds"]

    try:
        for rep in range(reps):
            seconds10, seconds50, own = bed.retry("canary, repetition %d" % rep, functools.partial(one, rep))
            to10.append(seconds10)
            to50.append(seconds50)
            own50.append(own)
    finally:
        bed.delete_namespaces(namespaces)
    return {
        "to_10": summary(to10),
        "to_50": summary(to50),
        "to_50_module_own": summary(own50),
        "verified": "each 50%% result: split.ready {stable: 5, canary: 5}, Service endpoints default 5 / %s 5"
        % bed.canary_revision,
    }


# -- 4. N dedicated gateways in one play -----------------------------------------------------------------
def bench_scale(bed, run_id, reps, sizes, baseline=None):
    """N gateways in one play, installed then re-run converged; `baseline` runs each N with that copy too."""
    task = {
        "name": "dedicated gateways",
        "istio_ops.gateways.istio_gateway": {
            "name": "{{ item }}-gateway",
            "namespace": "{{ item }}",
            "labels": {"istio": "{{ item }}-gateway"},
            "binary_path": bed.istioctl,
            "replicas": 1,
            "autoscaling": {"enabled": False},
            "wait_timeout": WAIT_TIMEOUT,
        },
        "loop": "{{ bench_namespaces }}",
        "register": "result",
    }
    copies = {"current": None, "baseline": baseline} if baseline else {"current": None}
    runs = [(n, copy) for n in sizes for copy in copies]
    install, rerun, own, rerun_own = ({run: [] for run in runs} for kind in ("install", "rerun", "own", "rerun_own"))

    def one(n, copy, rep, attempt):
        namespaces = ["bench-%s-n%d%s-%d%s-%d" % (run_id, n, copy[0], rep, "r" * attempt, k) for k in range(n)]
        extra = {"bench_namespaces": namespaces}
        try:
            installed, [result] = bed.play([task], extra_vars=extra, collections=copies[copy])
            items = result["results"]
            if len(items) != n or not all(i["changed"] and i["deployment"]["ready_replicas"] == 1 for i in items):
                raise BenchError("N=%d: not every gateway was installed and ready" % n)
            installed_own = statistics.mean(i["timings"]["total_seconds"] for i in items)
            again, [result] = bed.play([task], extra_vars=extra, collections=copies[copy])
            if any(i["changed"] for i in result["results"]):
                raise BenchError("N=%d: the re-run changed something" % n)
            again_own = statistics.mean(i["timings"]["total_seconds"] for i in result["results"])
        finally:
            bed.delete_namespaces(namespaces)
        return installed, installed_own, again, again_own

    for rep in range(reps):
        for n, copy in rotated(runs, rep):
            what = "N=%d (%s), repetition %d" % (n, copy, rep)
            seconds, seconds_own, again, again_own = bed.retry(what, functools.partial(one, n, copy, rep))
            install[(n, copy)].append(seconds)
            own[(n, copy)].append(seconds_own)
            rerun[(n, copy)].append(again)
            rerun_own[(n, copy)].append(again_own)
    out = {"sizes": list(sizes)}
    for copy in copies:
        by_n = out["by_n" if copy == "current" else "by_n_baseline"] = {}
        for n in sizes:
            by_n[str(n)] = {
                "install": summary(install[(n, copy)]),
                "install_per_gateway": summary([s / n for s in install[(n, copy)]]),
                "module_own_per_gateway": summary(own[(n, copy)]),
                "rerun": summary(rerun[(n, copy)]),
                "rerun_per_gateway": summary([s / n for s in rerun[(n, copy)]]),
                "rerun_module_own_per_gateway": summary(rerun_own[(n, copy)]),
            }
    if 5 in sizes and 20 in sizes:
        cur = "current"
        out["growth_20_to_5"] = ratios([s / 20 for s in install[(20, cur)]], [s / 5 for s in install[(5, cur)]])
        out["rerun_growth_20_to_5"] = ratios([s / 20 for s in rerun[(20, cur)]], [s / 5 for s in rerun[(5, cur)]])
    if baseline:
        out["rerun_baseline_to_current"] = {
            str(n): ratios(rerun[(n, "baseline")], rerun[(n, "current")]) for n in sizes
        }
    return out


# -- context -------------------------------------------------------------------------------------------
def machine():
    info = {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu_model"] = re.search(r"model name\s*:\s*(.*)", cpuinfo).group(1).strip()
        meminfo = Path("/proc/meminfo").read_text()
        info["memory_gib"] = round(int(re.search(r"MemTotal:\s*(\d+)", meminfo).group(1)) / 1024.0 / 1024.0, 1)
    except (OSError, AttributeError):
        pass
    return info


def versions(bed):
    argv = [bed.istioctl, "version", "--remote=false", "-o", "json"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    server = bed.kube.server_version()
    return {
        "ansible_core": ansible.release.__version__,
        "kubernetes_client": kubernetes.__version__,
        "istioctl": json.loads(out.stdout)["clientVersion"]["version"],
        "kubernetes_server": server["gitVersion"],
        "pyyaml": yaml.__version__,
    }


def load():
    return [round(x, 2) for x in os.getloadavg()]


# -- report --------------------------------------------------------------------------------------------
def fmt_s(s):
    return "%.2f s (%.2f-%.2f)" % (s["median"], s["min"], s["max"])


def fmt_x(s):
    return "%.2fx (%.2f-%.2f)" % (s["median"], s["min"], s["max"])


def targets(results):
    """The issue's targets, each with the measured value and whether it is met (a report, never a failure)."""
    out = []
    conv = results["scenarios"].get("converged")
    if conv:
        r = conv["ratios"]
        speedup = r["istioctl_to_module"]["median"]
        out.append(
            (
                "converged re-run >= 10x faster than an `istioctl install` re-run",
                "istioctl / module",
                speedup,
                speedup >= 10,
            )
        )
        for floor, label in (("floor_info", "gateway_info"), ("floor_uri", "uri GET")):
            ratio = r["module_to_" + floor]["median"]
            out.append(("converged re-run within 2x of the floor (%s)" % label, "module / floor", ratio, ratio <= 2))
        server_writes = conv["requests"]["module"]["min_of_reps"].get("gateway_writes", 0)
        client_writes = max(conv["client_requests"]["probe"]["writes"])
        out.append(
            (
                "converged re-run makes zero write requests",
                "writes: client exact / server",
                "%d / %d" % (client_writes, server_writes),
                client_writes == 0 and server_writes == 0,
            )
        )
    scale = results["scenarios"].get("scale")
    if scale and "growth_20_to_5" in scale:
        growth = scale["growth_20_to_5"]["median"]
        out.append(
            ("cost per gateway at N=20 <= 1.2x the cost at N=5", "per gateway N=20 / N=5", growth, growth <= 1.2)
        )
    return [{"target": t, "measure": m, "value": v, "met": bool(ok)} for t, m, v, ok in out]


def table(results):
    """The results as Markdown (the README's Benchmark section shows this)."""
    sc = results["scenarios"]
    rows = []
    if "first" in sc:
        f = sc["first"]
        rows += [
            ("1 first install", "istio_gateway, one-task ansible-playbook", fmt_s(f["module"])),
            ("", "  of which the module itself (timings.total_seconds)", fmt_s(f["module_own"])),
            ("", "seed's manual steps: create namespace + `istioctl install -y -f`", fmt_s(f["manual"])),
            ("", "ratio module / manual, per repetition", fmt_x(f["ratio_module_to_manual"])),
        ]
    if "converged" in sc:
        c = sc["converged"]
        s, r, own = c["seconds"], c["ratios"], c["module_own"]
        rows += [
            ("2 converged re-run", "istio_gateway, one-task ansible-playbook", fmt_s(s["module"])),
            ("", "  of which the module itself (timings.total_seconds)", fmt_s(own["module"])),
            ("", "istio_gateway run directly (no ansible-playbook): process wall", fmt_s(s["probe"])),
            ("", "  the same without the istioctl output cache", fmt_s(s["probe_nocache"])),
            ("", "`istioctl install -y -f` re-run (naive automation)", fmt_s(s["istioctl"])),
            ("", "floor: gateway_info (name, namespace), one-task play", fmt_s(s["floor_info"])),
            ("", "floor: ansible.builtin.uri GET of the Deployment, one-task play", fmt_s(s["floor_uri"])),
            ("", "ratio istioctl re-run / istio_gateway (target >= 10)", fmt_x(r["istioctl_to_module"])),
            ("", "ratio istio_gateway / gateway_info floor (target <= 2)", fmt_x(r["module_to_floor_info"])),
            ("", "ratio istio_gateway / uri floor (target <= 2)", fmt_x(r["module_to_floor_uri"])),
            ("", "ratio istio_gateway run directly / istioctl re-run", fmt_x(r["probe_to_istioctl"])),
        ]
        if "baseline_to_module" in r:
            rows += [
                ("", "before the fixes (baseline copy): istio_gateway, one-task play", fmt_s(s["module_baseline"])),
                ("", "  of which the module itself", fmt_s(own["module_baseline"])),
                ("", "  run directly: process wall", fmt_s(s["probe_baseline"])),
                ("", "ratio before / after, one-task play", fmt_x(r["baseline_to_module"])),
                ("", "ratio before / after, run directly", fmt_x(r["probe_baseline_to_probe"])),
            ]
    if "canary" in sc:
        k = sc["canary"]
        rows += [
            ("3 canary", "gateway_canary 0% -> 10% (10 pods), until the endpoints show it", fmt_s(k["to_10"])),
            ("", "gateway_canary 10% -> 50%, until the endpoints show 5 + 5", fmt_s(k["to_50"])),
            ("", "  of which the module itself", fmt_s(k["to_50_module_own"])),
        ]
    if "scale" in sc:
        g = sc["scale"]
        for n in g["sizes"]:
            b = g["by_n"][str(n)]
            rows += [
                ("4 N=%d gateways, one play" % n, "install: total", fmt_s(b["install"])),
                ("", "install: per gateway", fmt_s(b["install_per_gateway"])),
                ("", "  module itself, per gateway", fmt_s(b["module_own_per_gateway"])),
                ("", "converged re-run: total", fmt_s(b["rerun"])),
                ("", "converged re-run: per gateway", fmt_s(b["rerun_per_gateway"])),
                ("", "  module itself, per gateway", fmt_s(b["rerun_module_own_per_gateway"])),
            ]
            if "by_n_baseline" in g:
                before = g["by_n_baseline"][str(n)]
                rows += [
                    ("", "before the fixes: converged re-run per gateway", fmt_s(before["rerun_per_gateway"])),
                    ("", "  module itself, per gateway", fmt_s(before["rerun_module_own_per_gateway"])),
                    ("", "ratio before / after, converged re-run", fmt_x(g["rerun_baseline_to_current"][str(n)])),
                ]
        if "growth_20_to_5" in g:
            rows += [
                ("4 growth", "per gateway N=20 / N=5, install (target <= 1.2)", fmt_x(g["growth_20_to_5"])),
                ("", "per gateway N=20 / N=5, converged re-run", fmt_x(g["rerun_growth_20_to_5"])),
            ]
    lines = ["| measurement | what | median (min-max) of %d |" % results["reps"], "| --- | --- | --- |"]
    lines += ["| %s | %s | %s |" % row for row in rows]
    if "converged" in sc:
        lines += ["", *requests_table(sc["converged"])]
    if results.get("repetitions_run_again"):
        lines += [
            "",
            "Run again after a failure (others' fault-injection tests share the bed): %s."
            % "; ".join(f.split(":")[0] for f in results["repetitions_run_again"]),
        ]
    for key, error in sorted(results.get("errors", {}).items()):
        lines += ["", "**%s was not measured**: %s" % (key, error)]
    lines += ["", "| target | measure | value | met |", "| --- | --- | --- | --- |"]
    for t in results["targets"]:
        value = ("%.2f" % t["value"]) if isinstance(t["value"], float) else t["value"]
        lines.append("| %s | %s | %s | %s |" % (t["target"], t["measure"], value, "yes" if t["met"] else "**no**"))
    m, v = results["machine"], results["versions"]
    lines += [
        "",
        "Measured %s on %s cores (%s), %s GiB, load average %s at start and %s at end; ansible-core %s, kubernetes "
        "client %s, istioctl %s, Kubernetes %s."
        % (
            results["generated"],
            m.get("cores"),
            m.get("cpu_model", "?"),
            m.get("memory_gib", "?"),
            results["load"]["start"][0],
            results["load"]["end"][0],
            v["ansible_core"],
            v["kubernetes_client"],
            v["istioctl"],
            v["kubernetes_server"],
        ),
    ]
    return "\n".join(lines)


def requests_table(conv):
    """API requests and memory of the converged re-run."""
    lines = [
        "| converged re-run | API requests | reads | dry-run writes | writes (to gateway kinds) | peak RSS |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    server = [
        ("module", "istio_gateway, one-task play (API server counters)"),
        ("module_baseline", "  before the fixes (API server counters)"),
        ("istioctl", "`istioctl install -y -f` re-run (API server counters)"),
        ("floor_info", "gateway_info floor (API server counters)"),
        ("idle", "nothing run, a window as long (the bed's background)"),
    ]
    for key, label in server:
        if key in conv["requests"]:
            m = conv["requests"][key]["min_of_reps"]
            lines.append(
                "| %s | %d | %d | %d | %d (%d) | |"
                % (
                    label,
                    m.get("total", 0),
                    m.get("reads", 0),
                    m.get("dry_run", 0),
                    m.get("writes", 0),
                    m.get("gateway_writes", 0),
                )
            )
    client = [
        ("probe", "istio_gateway's own client, exact"),
        ("probe_baseline", "  before the fixes"),
        ("probe_nocache", "  without the istioctl output cache"),
    ]
    for key, label in client:
        if key in conv["client_requests"]:
            c, mem = conv["client_requests"][key], conv["memory_mib"][key]
            ran = ", ".join(c["istioctl_commands"]) or "nothing"
            lines.append(
                "| %s; istioctl ran: %s | %d | %d | %d | %d | %.0f MiB (istioctl %.0f MiB) |"
                % (
                    label,
                    ran,
                    max(c["total"]),
                    c["reads"],
                    c["dry_run"],
                    max(c["writes"]),
                    mem["module_process"]["median"],
                    mem["children"]["max"],
                )
            )
    lines += [
        "",
        "Server counts are the fewest seen per verb and resource over the repetitions (others share the "
        "bed); client counts are exact.",
    ]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--reps", type=int, default=5, help="repetitions of every measurement (default 5)")
    parser.add_argument("--sizes", default="1,5,20", help="gateway counts of the scale measurement")
    parser.add_argument("--scale-reps", type=int, help="repetitions of the scale measurement (default: --reps)")
    parser.add_argument("--only", default="first,converged,canary,scale", help="measurements to run")
    parser.add_argument("--out", default=str(RESULTS), help="results file (default bench/results.json)")
    parser.add_argument("--cprofile", help="also write a cProfile of one converged istio_gateway run here")
    parser.add_argument(
        "--baseline",
        help="a collections root with another copy of the collection (DIR/ansible_collections/istio_ops/gateways, "
        "e.g. `git archive` of an older commit) to measure side by side in the converged re-run",
    )
    opts = parser.parse_args(argv)
    only = opts.only.split(",")
    sizes = [int(n) for n in opts.sizes.split(",")]
    baseline = str(Path(opts.baseline).resolve()) if opts.baseline else None
    if baseline and not (Path(baseline) / "ansible_collections" / "istio_ops" / "gateways").is_dir():
        parser.error("--baseline: no ansible_collections/istio_ops/gateways under %s" % baseline)

    bed = Bed()
    leftovers = bed.leftovers()
    if leftovers:
        print(">> removing namespaces an interrupted bench left: %s" % ", ".join(leftovers))
        bed.delete_namespaces(leftovers)
    run_id = uuid.uuid4().hex[:4]
    results = {
        "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "argv": sys.argv[1:] if argv is None else argv,
        "reps": opts.reps,
        "machine": machine(),
        "versions": versions(bed),
        "load": {"start": load()},
        "scenarios": {},
    }
    with tempfile.TemporaryDirectory(prefix="istio-ops-bench-") as tmp:
        steps = [
            ("first", "first install", lambda: bench_first_install(bed, run_id, opts.reps, tmp)),
            (
                "converged",
                "converged re-run",
                lambda: bench_converged(bed, run_id, opts.reps, tmp, opts.cprofile, baseline),
            ),
            ("canary", "canary step", lambda: bench_canary(bed, run_id, opts.reps)),
            ("scale", "N gateways", lambda: bench_scale(bed, run_id, opts.scale_reps or opts.reps, sizes, baseline)),
        ]
        for key, title, func in steps:
            if key not in only:
                continue
            print(">> %s (%d repetitions; load average %s)" % (title, opts.reps, load()), flush=True)
            try:
                seconds, results["scenarios"][key] = timed(func)
            except BenchError as exc:  # a run that did not do what it should: report it, keep the others
                print("!! %s: %s" % (title, exc), flush=True)
                results["scenarios"][key] = {"error": str(exc)}
                continue
            results["scenarios"][key]["bench_seconds"] = round(seconds, 1)
    results["load"]["end"] = load()
    failed = {key: value["error"] for key, value in results["scenarios"].items() if "error" in value}
    for key in failed:
        del results["scenarios"][key]
    results["errors"] = failed
    results["repetitions_run_again"] = bed.faults
    results["targets"] = targets(results)
    results["table"] = table(results)
    Path(opts.out).write_text(json.dumps(results, indent=2) + "\n")
    print(results["table"])
    print("\n>> written to %s" % opts.out)
    if failed:
        sys.exit("failed: %s" % ", ".join(sorted(failed)))


if __name__ == "__main__":
    main()
