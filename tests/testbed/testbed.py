"""Local Kubernetes + Istio test bed: build | up | down | env | status.

build   build the pinned binaries into the cache (no-op when cached)
up      start etcd, kube-apiserver, controller-manager, scheduler, kwok with fake
        nodes, install the Istio control planes with istioctl and run istiod
        locally; reuses a bed that is already up and healthy
down    stop exactly the processes `up` started and remove .testbed/ state
env     print shell exports (KUBECONFIG, ISTIOCTL, ISTIOCTL_CANARY, KUBECTL, ...)
status  show the recorded processes and whether the bed is healthy
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

from . import build, charts, cluster, istio, procs, slowapi, stages
from .common import LOG_DIR, STATE_DIR, fmt_elapsed, istioctl_path, load_versions, log


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


def describe(versions=None):
    """The bed's paths and versions (whether or not it is up)."""
    versions = versions or load_versions()
    bindir = build.bin_dir(versions)
    state = procs.load_state() or {}
    mode, delay = state.get("pod_ready") or stages.settings()[0], state.get("pod_ready_delay")
    return Testbed(
        kubeconfig=cluster.KUBECONFIG,
        istioctl=istioctl_path(bindir, versions["ISTIO_VERSION"]),
        istioctl_canary=istioctl_path(bindir, versions["ISTIO_CANARY_VERSION"]),
        canary_revision=versions["ISTIO_CANARY_REVISION"],
        default_version=versions["ISTIO_VERSION"],
        canary_version=versions["ISTIO_CANARY_VERSION"],
        bin_dir=bindir,
        kubectl=bindir / "kubectl",
        pod_ready=mode,
        pod_ready_delay=delay if mode == "delayed" else None,
        kubeconfig_slow=slowapi.KUBECONFIG_SLOW,
        toxiproxy_api=state.get("toxiproxy_api"),
        api_latency_ms=state.get("api_latency_ms", slowapi.latency_setting()),
        helm=bindir / "helm",
        chart_repo=state.get("chart_repo"),
        default_chart_version=build.chart_version(versions["ISTIO_VERSION"]),
    )


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
    state = procs.load_state()
    if state:
        procs.stop_all(state)
    # Keep the logs of the last run for post-mortems; `up` clears them.
    for entry in STATE_DIR.iterdir() if STATE_DIR.exists() else ():
        if entry.is_dir() and entry.name != "logs":
            shutil.rmtree(entry)
        elif entry.is_file() and entry.name != "lock":
            entry.unlink()


def down():
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


def status():
    state = procs.load_state()
    if not state:
        print("test bed: down")
        return 1
    for name, rec in state["processes"].items():
        print(f"{name:26} pid {rec['pid']:>7}  {'running' if procs.is_running(rec) else 'DEAD'}")
    healthy = is_up()
    print(f"test bed: {'up' if healthy else 'UNHEALTHY'}  server {state.get('server')}  binaries {state['bin_dir']}")
    return 0 if healthy else 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["build", "up", "down", "env", "status"])
    command = parser.parse_args(argv).command
    if command == "build":
        print(build.ensure_built())
    elif command == "up":
        up()
    elif command == "down":
        down()
    elif command == "env":
        env()
    else:
        sys.exit(status())


if __name__ == "__main__":
    main()
