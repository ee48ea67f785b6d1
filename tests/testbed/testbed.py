"""Local Kubernetes + Istio test bed: build | up | down | env | status.

build   build the pinned binaries into the cache (no-op when cached)
up      start etcd, kube-apiserver, controller-manager, scheduler, kwok with fake
        nodes, install the Istio control planes with istioctl and run istiod
        locally; reuses a bed that is already up and healthy.
        --clusters N: cluster-1 (the primary) to cluster-N, each a bed of its own
down    stop exactly the processes `up` started and remove their state
env     print shell exports (KUBECONFIG, ISTIOCTL, ISTIOCTL_CANARY, KUBECTL, ...)
status  show the recorded processes and whether the bed is healthy
release (the pytest fixture) a test session is done with the cluster

Every command works on the cluster TESTBED_CLUSTER names (default cluster-1, the
primary, in .testbed/; others in .testbed/clusters/<name>/). Without TESTBED_CLUSTER,
`down` and `status` cover every cluster of the bed.
"""

import argparse
import fcntl
import importlib
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

if not __package__:  # run as a script: import the package this file belongs to
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "tests.testbed"
    importlib.import_module(__package__)

from . import build, charts, cluster, fleet, istio, procs, slowapi, stages
from .common import (
    ALL_CLUSTERS,
    CLUSTER,
    LOG_DIR,
    PRIMARY_CLUSTER,
    STATE_DIR,
    fmt_elapsed,
    istioctl_path,
    load_versions,
    log,
    of_cluster,
)


@dataclass
class Testbed:
    """What tests need to talk to the bed."""

    kubeconfig: Path
    istioctl: Path
    istioctl_canary: Path
    canary_revision: str
    default_version: str
    canary_version: str
    bin_dir: Path
    kubectl: Path | None = None
    pod_ready: str = "delayed"  # kwok readiness: "delayed" or "instant" (TESTBED_POD_READY)
    pod_ready_delay: str | None = None  # TESTBED_POD_READY_DELAY of a delayed bed, e.g. "2s-6s"
    kubeconfig_slow: Path | None = None  # the same admin, through toxiproxy
    toxiproxy_api: str | None = None  # http://127.0.0.1:PORT of toxiproxy (None while down)
    api_latency_ms: int | None = None  # default latency of kubeconfig_slow
    helm: Path | None = None
    chart_repo: str | None = None  # http://127.0.0.1:PORT, the Istio charts (None while down)
    default_chart_version: str | None = None  # chart version of the default revision's Istio
    name: str = PRIMARY_CLUSTER  # the cluster (TESTBED_CLUSTER), also its kubeconfig context
    server: str | None = None  # https://127.0.0.1:PORT of its API server (None while down)


def describe(versions=None, name=CLUSTER):
    """Cluster NAME's paths and versions (whether or not it is up)."""
    versions = versions or load_versions()
    bindir = build.bin_dir(versions)
    state = fleet.load_state(name) or {}
    mode, delay = state.get("pod_ready") or stages.settings()[0], state.get("pod_ready_delay")
    return Testbed(
        kubeconfig=of_cluster(cluster.KUBECONFIG, name),
        istioctl=istioctl_path(bindir, versions["ISTIO_VERSION"]),
        istioctl_canary=istioctl_path(bindir, versions["ISTIO_CANARY_VERSION"]),
        canary_revision=versions["ISTIO_CANARY_REVISION"],
        default_version=versions["ISTIO_VERSION"],
        canary_version=versions["ISTIO_CANARY_VERSION"],
        bin_dir=bindir,
        kubectl=bindir / "kubectl",
        pod_ready=mode,
        pod_ready_delay=delay if mode == "delayed" else None,
        kubeconfig_slow=of_cluster(slowapi.KUBECONFIG_SLOW, name),
        toxiproxy_api=state.get("toxiproxy_api"),
        api_latency_ms=state.get("api_latency_ms", slowapi.latency_setting()),
        helm=bindir / "helm",
        chart_repo=state.get("chart_repo"),
        default_chart_version=build.chart_version(versions["ISTIO_VERSION"]),
        name=name,
        server=state.get("server"),
    )


def describe_fleet(versions=None):
    """One Testbed per fleet cluster that is up (cluster-1, cluster-2, ...)."""
    versions = versions or load_versions()
    return [describe(versions, name) for name in fleet.members()]


@contextmanager
def locked():
    """Serialise up/down across processes (e.g. pytest-xdist workers)."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def is_up():
    state = procs.load_state()
    return bool(state and state.get("ready") and cluster.healthy(state))


def up(user=None):
    """Bring the bed up, or reuse a healthy one.

    USER (a test session's PID) registers a user of the bed: release() tears a bed
    down only if test sessions started it and all of them are gone (pytest-xdist
    workers share one bed).
    """
    with locked():
        started = not is_up()
        if started:
            _start()
        else:
            log("test bed already up and healthy; reusing it")
            state = procs.load_state()
            warn_settings_differ(state)
            if state.get("toxiproxy_api"):
                slowapi.client(state).reset()
        if user:
            state = procs.load_state()
            state["users"] = [*state.get("users", []), user]
            state["owned_by_tests"] = state.get("owned_by_tests") or started
            procs.save_state(state)
    fleet.write_inventory()


def up_fleet(count, jobs=fleet.DEFAULT_JOBS):
    """cluster-1..COUNT, each started (or reused) by `up` in a process of its own, JOBS at a time."""
    if not ALL_CLUSTERS:
        raise SystemExit(f"--clusters starts cluster-1..N: run it without TESTBED_CLUSTER (now {CLUSTER})")
    build.ensure_built()  # once, not by every cluster at the same time
    start = time.monotonic()
    fleet.start(fleet.names(count), jobs)
    log(f"{count} clusters up in {fmt_elapsed(time.monotonic() - start)}; inventory {fleet.INVENTORY}")


def warn_settings_differ(state):
    """A reused bed keeps the pod readiness it was started with."""
    mode, delay = stages.settings()
    running = state.get("pod_ready"), state.get("pod_ready_delay")
    if mode != running[0] or (mode == "delayed" and delay != running[1]):
        log(
            f"note: the running bed has TESTBED_POD_READY={running[0]} (delay {running[1]}); "
            f"`make testbed-down` first to get {mode}" + (f" ({delay})" if mode == "delayed" else "")
        )


def release(user, keep=False):
    """A test session is done with the bed; stop it if tests started it and nobody uses it."""
    with locked():
        state = procs.load_state()
        if not state:
            return
        users = [u for u in state.get("users", []) if u != user and Path(f"/proc/{u}").exists()]
        if state.get("owned_by_tests") and not users and not keep:
            _down()
            log("test bed down (started by this test run)")
            return
        state["users"] = users
        state["owned_by_tests"] = state.get("owned_by_tests") and not keep
        procs.save_state(state)


def _start():
    if procs.load_state():
        log("found a stale or half-started test bed; cleaning it up first")
        _down()
    versions = load_versions()
    bindir = build.ensure_built(versions)
    start = time.monotonic()
    shutil.rmtree(LOG_DIR, ignore_errors=True)
    state = {"bin_dir": str(bindir), "processes": {}}
    procs.save_state(state)
    try:
        cluster.up(state, bindir, versions["KUBERNETES_VERSION"])
        slowapi.up(state, bindir)
        charts.up(state, bindir)
        istio.up(state, versions, bindir)
    except BaseException:
        log(f"up failed; stopping what it started (logs stay in {LOG_DIR})")
        _down()
        raise
    state["ready"] = True
    procs.save_state(state)
    log(f"test bed up in {fmt_elapsed(time.monotonic() - start)}; KUBECONFIG={cluster.KUBECONFIG}")


def _down():
    """Stop this cluster's processes and remove its state, nothing of another cluster."""
    state = procs.load_state()
    if state:
        procs.stop_all(state)
    # Keep the logs of the last run for post-mortems (`up` clears them), and in the primary's
    # directory the other clusters and the inventory.
    keep = {LOG_DIR.name, "lock", *fleet.SHARED_ENTRIES}
    for entry in STATE_DIR.iterdir() if STATE_DIR.exists() else ():
        if entry.name in keep:
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    fleet.write_inventory()


def down():
    """Stop this cluster; without TESTBED_CLUSTER, every cluster of the bed (the others first)."""
    for name in fleet.recorded() if ALL_CLUSTERS else ():
        if name != CLUSTER:
            fleet.run(name, "down")
    with locked():
        if not procs.load_state():
            log("test bed not running")
            return
        _down()
    log("test bed down")


def env():
    bed = describe()
    print(f"export KUBECONFIG={bed.kubeconfig}")
    print(f"export ISTIOCTL={bed.istioctl}")
    print(f"export ISTIOCTL_CANARY={bed.istioctl_canary}")
    print(f"export TESTBED_CANARY_REVISION={bed.canary_revision}")
    print(f"export KUBECTL={bed.kubectl}")
    print(f"export TESTBED_POD_READY={bed.pod_ready}")
    print(f"export KUBECONFIG_SLOW={bed.kubeconfig_slow}")
    if bed.toxiproxy_api:
        print(f"export TESTBED_TOXIPROXY_API={bed.toxiproxy_api}")
    print(f"export HELM={bed.helm}")
    if bed.chart_repo:
        print(f"export TESTBED_CHART_REPO={bed.chart_repo}")
    if fleet.INVENTORY.exists():
        # Contexts are named after the clusters: `kubectl --context cluster-2` with this KUBECONFIG.
        print(f"export TESTBED_FLEET_KUBECONFIG={':'.join(str(m.kubeconfig) for m in describe_fleet())}")
        print(f"export TESTBED_INVENTORY={fleet.INVENTORY}")


def status():
    """This cluster's processes and health; without TESTBED_CLUSTER, every cluster's."""
    code = _status()
    for name in fleet.recorded() if ALL_CLUSTERS else ():
        if name != CLUSTER:
            code |= fleet.run(name, "status", check=False).returncode
    if ALL_CLUSTERS and fleet.INVENTORY.exists():
        print(f"inventory: {fleet.INVENTORY} ({', '.join(fleet.members())})")
    return code


def _status():
    state = procs.load_state()
    if not state:
        print(f"{CLUSTER}: down")
        return 1
    print(f"{CLUSTER} ({STATE_DIR}):")
    for name, rec in state["processes"].items():
        running = "running" if procs.is_running(rec) else "DEAD"
        print(f"  {name:26} pid {rec['pid']:>7}  {running:7}  RSS {procs.rss_mib(rec):5.0f} MiB")
    healthy = "up" if is_up() else "UNHEALTHY"
    rss = sum(procs.rss_mib(rec) for rec in state["processes"].values())
    print(f"  {healthy}  server {state.get('server')}  RSS {rss:.0f} MiB  binaries {state['bin_dir']}")
    return 0 if healthy == "up" else 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["build", "up", "down", "env", "status", "release"])
    parser.add_argument("--clusters", type=int, default=1, help="up: start cluster-1..N (default 1)")
    parser.add_argument("--jobs", type=int, default=fleet.DEFAULT_JOBS, help="up: clusters started at once")
    parser.add_argument("--user", type=int, help="up, release: PID of the test session using the cluster")
    parser.add_argument("--keep", action="store_true", help="release: leave the cluster up (TESTBED_KEEP=1)")
    args = parser.parse_args(argv)
    if args.clusters < 1 or args.jobs < 1:
        parser.error("--clusters and --jobs take a number from 1")
    command = args.command
    if command == "build":
        print(build.ensure_built())
    elif command == "up" and args.clusters > 1:
        up_fleet(args.clusters, args.jobs)
    elif command == "up":
        up(user=args.user)
    elif command == "release":
        if not args.user:
            parser.error("release needs --user PID")
        release(args.user, keep=args.keep)
    elif command == "down":
        down()
    elif command == "env":
        env()
    else:
        sys.exit(status())


if __name__ == "__main__":
    main()
