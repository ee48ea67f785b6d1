"""A slow API: toxiproxy in front of the API server, and its toxics at runtime.

`up` starts toxiproxy-server on a free 127.0.0.1 port, creates the proxy
`kube-apiserver` (another free port -> the API server) with a `latency` toxic of
TESTBED_API_LATENCY_MS (default 25) on the downstream (responses), and writes
.testbed/kubeconfig-slow: the admin identity, through the proxy. The API server's
certificate is for 127.0.0.1, so TLS verifies as on the direct kubeconfig.

Tests change the connection through `Toxiproxy(testbed.toxiproxy_api)`:

    proxy.set_latency(200)          # slower (ms added to each response)
    with proxy.cut():               # connections reset, new ones refused
        ...
    proxy.reset()                   # back to the default latency
"""

import json
import os
import urllib.request
from contextlib import contextmanager

from . import procs
from .cluster import PKI_DIR, write_kubeconfig
from .common import STATE_DIR

PROXY = "kube-apiserver"
LATENCY_TOXIC = "latency"
DEFAULT_LATENCY_MS = 25
KUBECONFIG_SLOW = STATE_DIR / "kubeconfig-slow"


def latency_setting(environ=None):
    environ = os.environ if environ is None else environ
    value = environ.get("TESTBED_API_LATENCY_MS") or str(DEFAULT_LATENCY_MS)
    if not value.isdigit():
        raise SystemExit(f"TESTBED_API_LATENCY_MS={value!r}: a whole number of milliseconds")
    return int(value)


class Toxiproxy:
    """Client of toxiproxy's HTTP API (https://github.com/Shopify/toxiproxy#http-api)."""

    def __init__(self, api, proxy=PROXY, default_latency_ms=DEFAULT_LATENCY_MS):
        self.api = api.rstrip("/")
        self.proxy = proxy
        self.default_latency_ms = default_latency_ms

    def request(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.api}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=10) as resp:
            text = resp.read().decode()
        return json.loads(text) if text.strip() else None

    def version(self):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{self.api}/version", timeout=5) as resp:
            return resp.read().decode().strip()

    def create_proxy(self, listen, upstream):
        return self.request("POST", "/proxies", {"name": self.proxy, "listen": listen, "upstream": upstream})

    def info(self):
        return self.request("GET", f"/proxies/{self.proxy}")

    def toxics(self):
        return {t["name"]: t for t in self.request("GET", f"/proxies/{self.proxy}/toxics")}

    def add_toxic(self, name, kind, attributes, stream="downstream", toxicity=1.0):
        """Add a toxic (latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data)."""
        body = {"name": name, "type": kind, "stream": stream, "toxicity": toxicity, "attributes": attributes}
        return self.request("POST", f"/proxies/{self.proxy}/toxics", body)

    def update_toxic(self, name, attributes):
        return self.request("POST", f"/proxies/{self.proxy}/toxics/{name}", {"attributes": attributes})

    def remove_toxic(self, name):
        self.request("DELETE", f"/proxies/{self.proxy}/toxics/{name}")

    def set_latency(self, ms, jitter_ms=0):
        """Delay every response by MS (+-JITTER_MS); 0 removes the latency toxic."""
        present = LATENCY_TOXIC in self.toxics()
        if not ms:
            if present:
                self.remove_toxic(LATENCY_TOXIC)
            return
        attributes = {"latency": ms, "jitter": jitter_ms}
        if present:
            self.update_toxic(LATENCY_TOXIC, attributes)
        else:
            self.add_toxic(LATENCY_TOXIC, "latency", attributes)

    def set_enabled(self, enabled):
        """Disabling closes every open connection and refuses new ones."""
        return self.request("POST", f"/proxies/{self.proxy}", {"enabled": enabled})

    @contextmanager
    def cut(self):
        self.set_enabled(False)
        try:
            yield self
        finally:
            self.set_enabled(True)

    @contextmanager
    def slowed(self, ms, jitter_ms=0):
        self.set_latency(ms, jitter_ms)
        try:
            yield self
        finally:
            self.set_latency(self.default_latency_ms)

    def reset(self):
        """Enabled, no toxics but the default latency."""
        self.set_enabled(True)
        for name in self.toxics():
            self.remove_toxic(name)
        self.set_latency(self.default_latency_ms)


def up(state, bindir):
    """Start toxiproxy in front of state['server']; write KUBECONFIG_SLOW."""
    api_port, listen_port = procs.free_ports(2)
    procs.start(
        state,
        "toxiproxy",
        [str(bindir / "toxiproxy-server"), "-host", "127.0.0.1", "-port", str(api_port)],
        env={"LOG_LEVEL": "warn"},
    )
    state["toxiproxy_api"] = f"http://127.0.0.1:{api_port}"
    state["api_latency_ms"] = latency_setting()
    proxy = client(state)
    procs.wait_for("toxiproxy API", proxy.version, state)
    upstream = state["server"].removeprefix("https://")
    proxy.create_proxy(f"127.0.0.1:{listen_port}", upstream)
    proxy.reset()
    server = f"https://127.0.0.1:{listen_port}"
    write_kubeconfig(KUBECONFIG_SLOW, server, PKI_DIR / "ca.crt", PKI_DIR / "admin.crt", PKI_DIR / "admin.key")
    state["server_slow"] = server
    procs.save_state(state)


def client(state):
    return Toxiproxy(state["toxiproxy_api"], default_latency_ms=state["api_latency_ms"])
