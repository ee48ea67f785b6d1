"""Start, track and stop the bed's background processes, and the state file.

Every process is recorded in its cluster's state.json (.testbed/state.json for the primary)
with its PID and kernel start time, so `down` signals exactly the processes `up` started and
never a recycled PID.
"""

import fcntl
import json
import os
import random
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from .common import LOG_DIR, STATE_DIR, fmt_elapsed, log

STATE_FILE = STATE_DIR / "state.json"


def load_state(path=STATE_FILE):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:  # down, or being stopped by another process right now
        return None


def save_state(state):
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = STATE_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, STATE_FILE)


# Ports handed out recently, machine-wide (not under XDG_CACHE_HOME, which a cold build may move):
# every checkout's beds (a CI clone, worktrees) share the host's ports, and a port is free only
# until the process it was picked for binds it.
PORTS_FILE = Path(tempfile.gettempdir()) / f"istio-ops-testbed-ports-{os.getuid()}.json"
PORT_HOLD_SECONDS = 600
# Below the kernel's ephemeral range, so the outgoing connections of everything on the machine
# cannot take a port between the pick and the bind.
PORT_RANGE = (20000, 30000)  # NodePorts start at 30000


def free_ports(count, rng=random):
    """COUNT distinct ports free on 127.0.0.1 and not handed to any bed in the last 10 minutes."""
    PORTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(PORTS_FILE.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        now = time.time()
        try:
            held = {int(p): t for p, t in json.loads(PORTS_FILE.read_text()).items() if now - t < PORT_HOLD_SECONDS}
        except (OSError, ValueError):
            held = {}
        picked = []
        for port in rng.sample(range(*PORT_RANGE), PORT_RANGE[1] - PORT_RANGE[0]):
            if len(picked) == count:
                break
            if port not in held and _bindable(port):
                picked.append(port)
        if len(picked) < count:
            raise SystemExit(f"only {len(picked)} of {count} ports free in {PORT_RANGE[0]}-{PORT_RANGE[1] - 1}")
        held.update(dict.fromkeys(picked, now))
        tmp = PORTS_FILE.with_suffix(".tmp")
        tmp.write_text(json.dumps(held))
        os.replace(tmp, PORTS_FILE)
        return picked


def _bindable(port):
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _start_time(pid):
    """Kernel start time of a live (non-zombie) process, None otherwise."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def is_running(record):
    return _start_time(record["pid"]) == record["start"]


def start(state, name, argv, env=None, cwd=None):
    """Start a detached process logging to .testbed/logs/NAME.log and record it in state."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    logfile = LOG_DIR / f"{name}.log"
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=dict(os.environ, **(env or {})),
            start_new_session=True,
        )  # survive the caller's Ctrl-C / exit
    state["processes"][name] = {"pid": proc.pid, "start": _start_time(proc.pid), "log": str(logfile)}
    save_state(state)
    log(f"started {name} (pid {proc.pid}, log {logfile})")


def rss_mib(record):
    """Resident memory of a recorded process (0 when it is gone), from /proc."""
    if not is_running(record):
        return 0
    try:
        status = Path(f"/proc/{record['pid']}/status").read_text()
    except OSError:
        return 0
    kib = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return kib / 1024


def stop_all(state, timeout=15):
    """Stop every recorded process still running, newest first, each before the next.

    Clients go before the API server and the API server before etcd: an API server
    whose etcd is already gone spends ~10 s retrying before it exits.
    """
    for name, rec in reversed(list(state.get("processes", {}).items())):
        if not is_running(rec):
            continue
        log(f"stopping {name} (pid {rec['pid']})")
        os.kill(rec["pid"], signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while is_running(rec) and time.monotonic() < deadline:
            _reap(rec["pid"])
            time.sleep(0.05)
        if is_running(rec):
            log(f"{name} ignored SIGTERM for {timeout}s; killing it")
            os.kill(rec["pid"], signal.SIGKILL)
        _reap(rec["pid"])


def _reap(pid):
    """Collect the exit status when the process is our own child (pytest runs `up` in-process)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def log_tail(record, lines=30):
    try:
        with open(record["log"], errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return ""


def wait_for(what, check, state, timeout=120, interval=0.5):
    """Poll check() until it returns truthy; fail early if a bed process died."""
    log(f"waiting for {what}")
    start = time.monotonic()
    while True:
        try:
            result = check()
        except Exception as exc:  # noqa: BLE001 -- not up yet; keep the reason for the timeout
            result, reason = None, exc
        else:
            reason = None
        if result:
            log(f"{what}: ok after {fmt_elapsed(time.monotonic() - start)}")
            return result
        for name, rec in state["processes"].items():
            if not is_running(rec):
                raise RuntimeError(
                    f"{name} exited while waiting for {what}; last lines of {rec['log']}:\n{log_tail(rec)}"
                )
        if time.monotonic() - start > timeout:
            raise TimeoutError(
                f"timed out after {timeout}s waiting for {what}" + (f" (last error: {reason})" if reason else "")
            )
        time.sleep(interval)


def http_get(url, ca=None, cert=None, key=None, timeout=5):
    """GET a bed endpoint; never through a proxy, since everything listens on 127.0.0.1."""
    handlers = [urllib.request.ProxyHandler({})]
    if ca:
        context = ssl.create_default_context(cafile=str(ca))
        if cert:
            context.load_cert_chain(str(cert), str(key))
        handlers.append(urllib.request.HTTPSHandler(context=context))
    with urllib.request.build_opener(*handlers).open(url, timeout=timeout) as resp:
        return resp.status, resp.read().decode()
