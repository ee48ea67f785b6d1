"""Faults injected on the shared test bed, with the bed's own process records and starters.

* `restart_process` / `restart_apiserver`: SIGTERM one recorded bed process (procs.stop_all on a
  one-entry state) and start it again with the argv, environment and working directory it ran with
  (procs.start, which records the new PID and start time in .testbed/state.json), then wait until it
  is ready. The bed lock (testbed.locked) is held meanwhile, so that a concurrent `testbed up` (the
  pytest fixture of another session) waits instead of finding the bed unhealthy and rebuilding it.
* `istiod_stopped(revision)`: the istiod process of a revision is stopped for the body of a `with`
  and started again after it, on the same ports, so the cluster network (clusternet.py) reaches it again.
* `istioctl_killer`: a binary_path wrapper that runs the real istioctl and SIGKILLs `install` after
  N seconds; `istioctl_recorder`: one that records the mode and existence of every file istioctl is
  given (--kubeconfig, -f), for the temporary-file checks.
* `ApiProxy`: a plain-HTTP front of the API server on 127.0.0.1 that authenticates upstream as the
  bed's admin and can hide API groups (a cluster without Istio's CRDs) or answer chosen requests with
  an error (a 409 Conflict), as a real API server would.
"""

import http.client
import http.server
import json
import os
import re
import signal
import ssl
import stat
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from tests.testbed import cluster, procs
from tests.testbed import testbed as bed


# -- bed processes ---------------------------------------------------------------
def _process_image(pid):
    """argv, environment and working directory of a running process, from /proc."""
    proc = Path("/proc/%d" % pid)
    argv = [a.decode() for a in proc.joinpath("cmdline").read_bytes().split(b"\0") if a]
    env = {}
    for entry in proc.joinpath("environ").read_bytes().split(b"\0"):
        key, sep, value = entry.decode(errors="replace").partition("=")
        if sep:
            env[key] = value
    return argv, env, os.readlink(proc / "cwd")


def restart_process(name, ready, down_seconds=0.0, grace=5, timeout=120):
    """Stop the bed process `name` (SIGTERM, SIGKILL after `grace` seconds) and start it again as it was;
    return the seconds it was away. `ready(state)` tells when it serves again. Runs under the bed lock.
    """
    with bed.locked():
        state = procs.load_state()
        record = state["processes"][name]
        if not procs.is_running(record):
            raise RuntimeError("bed process %s is not running; run `testbed up` first" % name)
        argv, env, cwd = _process_image(record["pid"])
        started = time.monotonic()
        procs.stop_all({"processes": {name: record}}, timeout=grace)
        time.sleep(down_seconds)
        procs.start(state, name, argv, env=env, cwd=cwd)
        procs.wait_for("%s ready again" % name, lambda: ready(state), state, timeout=timeout)
        return round(time.monotonic() - started, 1)


def restart_apiserver(down_seconds=0.0):
    """A rolling restart of the API server, as in an upgrade: SIGTERM, start, /readyz."""
    return restart_process("kube-apiserver", lambda state: cluster.apiserver_ready(state["server"]), down_seconds)


def istiod_process(revision):
    return "istiod" if revision == "default" else "istiod-" + revision


def _istiod_ready(revision):
    def ready(state):
        port = state["istiod"][revision]["http_port"]
        return procs.http_get("http://127.0.0.1:%d/ready" % port)[0] == 200

    return ready


@contextmanager
def istiod_stopped(revision):
    """The istiod process of `revision` is down (its injection webhook, failurePolicy Fail, refuses pods)
    for the body of the `with`; it is started again afterwards, whatever happened."""
    name = istiod_process(revision)
    with bed.locked():
        state = procs.load_state()
        record = state["processes"][name]
        argv, env, cwd = _process_image(record["pid"])
        procs.stop_all({"processes": {name: record}})
        try:
            yield
        finally:
            procs.start(state, name, argv, env=env, cwd=cwd)
            procs.wait_for("%s ready again" % name, lambda: _istiod_ready(revision)(state), state, timeout=120)


def bed_healthy():
    return bed.is_up()


# -- istioctl wrappers -----------------------------------------------------------------
def istioctl_killer(directory, real, after_seconds):
    """A binary_path that runs the real istioctl, but SIGKILLs `istioctl install` after `after_seconds`."""
    path = Path(directory) / "istioctl-killed"
    path.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = install ]; then exec timeout -s KILL %s %s "$@"; fi\n'
        'exec %s "$@"\n' % (after_seconds, real, real)
    )
    path.chmod(0o755)
    return str(path)


def istioctl_recorder(directory, real):
    """A binary_path that logs, in `<directory>/files.log`, `run <subcommand>` and `argv <arguments>` for each
    call and, for each file istioctl is handed (--kubeconfig, -f), its path, octal mode and owner, the mode of its
    directory and whether it disables TLS verification; then runs the real istioctl.
    Returns (binary_path, log path)."""
    log = Path(directory) / "files.log"
    path = Path(directory) / "istioctl-recorder"
    path.write_text(
        "#!/bin/sh\n"
        'echo "run $1" >> %s\n'
        'echo "argv $*" >> %s\n'
        'prev=""\n'
        'for arg in "$@"; do\n'
        '  if [ "$prev" = --kubeconfig ] || [ "$prev" = -f ]; then\n'
        '    insecure=no; grep -q insecure-skip-tls-verify "$arg" && insecure=yes\n'
        '    echo "$prev $arg $(stat -c %%a:%%U "$arg") $(stat -c %%a "$(dirname "$arg")") insecure=$insecure"'
        " >> %s\n"
        "  fi\n"
        '  prev="$arg"\n'
        "done\n"
        'exec %s "$@"\n' % (log, log, log, real)
    )
    path.chmod(0o755)
    return str(path), log


def recorded_files(log):
    """[(option, path, mode, owner, directory mode, insecure)] from an istioctl_recorder log."""
    rows = []
    if not Path(log).exists():
        return rows
    for line in Path(log).read_text().splitlines():
        if line.startswith(("run ", "argv ")):
            continue
        option, path, mode_owner, dir_mode, insecure = line.split(" ")
        mode, owner = mode_owner.split(":")
        rows.append((option, path, mode, owner, dir_mode, insecure == "insecure=yes"))
    return rows


def file_mode(path):
    return oct(stat.S_IMODE(os.stat(path).st_mode))


# -- a front of the API server that can hide groups or inject errors ---------------------------------
class ApiProxy:
    """Plain HTTP on 127.0.0.1, forwarded to the bed's API server as its admin (client certificate).

    hide: path prefixes answered 404 as the API server does for a group it does not serve.
    fail: [{"method": "PATCH", "path": regex, "status": 409, "times": n, "dry_run": False}] answered with
    a Kubernetes Status of that code, `times` times each, before forwarding resumes; a rule may add
    "headers" (Retry-After, say) and replace the Status by a raw "body" of another "content_type".
    `served` lists (method, path, status) of every request answered, `stamps` the monotonic time of each.
    """

    def __init__(self, hide=(), fail=()):
        state = procs.load_state()
        upstream = urlsplit(state["server"])
        pki = cluster.PKI_DIR
        self.context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self.context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        self.upstream = (upstream.hostname, upstream.port)
        self.hide = tuple(hide)
        self.fail = [dict(rule, left=rule.get("times", 1)) for rule in fail]
        self.served = []
        self.stamps = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _any(self):
                proxy.handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.server.shutdown()
        self.server.server_close()

    def _injected(self, method, path):
        with self.lock:
            for rule in self.fail:
                dry_run = "dryRun=" in path
                if (
                    rule["left"] > 0
                    and rule["method"] == method
                    and re.search(rule["path"], path)
                    and dry_run == rule.get("dry_run", False)
                ):
                    rule["left"] -= 1
                    return rule
        return None

    def handle(self, request):
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else None
        path = request.path
        rule = self._injected(request.command, path)
        if any(urlsplit(path).path.startswith(prefix) for prefix in self.hide):
            status, payload = 404, _status(404, "NotFound", "the server could not find the requested resource")
            self._answer(request, status, payload, "application/json")
        elif rule is not None:
            message = rule.get(
                "message",
                "Operation cannot be fulfilled: the object has been modified; please apply your changes to the "
                "latest version and try again",
            )
            status = rule["status"]
            payload = rule.get("body") or _status(status, rule.get("reason", "Conflict"), message)
            self._answer(request, status, payload, rule.get("content_type", "application/json"), rule.get("headers"))
        else:
            headers = {
                k: v
                for k, v in request.headers.items()
                if k.lower() not in ("host", "connection", "authorization", "proxy-connection", "keep-alive")
            }
            conn = http.client.HTTPSConnection(*self.upstream, context=self.context, timeout=120)
            try:
                conn.request(request.command, path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                status = response.status
                content_type = response.getheader("Content-Type", "application/json")
            finally:
                conn.close()
            self._answer(request, status, payload, content_type)
        with self.lock:
            self.served.append((request.command, path, status))
            self.stamps.append(time.monotonic())

    @staticmethod
    def _answer(request, status, payload, content_type, headers=None):
        request.send_response(status)
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(payload)


def _status(code, reason, message):
    return json.dumps(
        {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code}
    ).encode()


def wait_until(what, check, timeout=60, interval=0.2):
    """Poll check() until truthy; return its value or raise naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


def kill_pid(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def recorded_runs(log):
    """Subcommands an istioctl_recorder ran, in order."""
    if not Path(log).exists():
        return []
    return [line[4:] for line in Path(log).read_text().splitlines() if line.startswith("run ")]


class Background:
    """Run fn(*args) in a thread; result() joins and returns its value (or raises its exception)."""

    def __init__(self, fn, *args, **kwargs):
        self._value = self._error = None
        self._thread = threading.Thread(target=self._run, args=(fn, args, kwargs), daemon=True)
        self._thread.start()

    def _run(self, fn, args, kwargs):
        try:
            self._value = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 -- handed to the caller
            self._error = exc

    def done(self):
        return not self._thread.is_alive()

    def result(self, timeout=900):
        self._thread.join(timeout)
        if self._error is not None:
            raise self._error
        return self._value
