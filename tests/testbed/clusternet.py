"""The cluster network as the API server sees it: a tiny kube-proxy for the bed's local processes.

On a real cluster the API server calls a webhook (or an aggregated API) named by `clientConfig.service` at the
Service's ClusterIP, and kube-proxy forwards the connection to a pod. On the bed the pods are kwok's and run
nothing; what really serves (each revision's istiod) runs as a process on 127.0.0.1. kube-apiserver is therefore
started with an egress selector that sends its `cluster` traffic as HTTP CONNECT over a unix socket to this proxy,
which resolves the target as kube-proxy would: ClusterIP:port -> Service -> targetPort -> the local process
standing in for the pods the Service selects. Webhooks keep the `service:` form istioctl writes, so a revision tag
(`istioctl tag set`), a re-applied webhook or a new revision is reached with no rewriting.

The local endpoints are a JSON file the bed writes (`publish`), read on every connection:
  [{"name": ..., "namespace": ..., "labels": {pod labels}, "ports": {"15017": 40123, "https-webhook": 40123}}]
"""

import argparse
import asyncio
import json
import os
import ssl
import sys
import urllib.request
from pathlib import Path

import yaml

from . import procs
from .common import REPO_ROOT, STATE_DIR

CONNECT_TIMEOUT = 10
HEADER_TIMEOUT = 30
LIST_TIMEOUT = 5  # well inside a webhook's 10 s budget
SOCKET = STATE_DIR / "cluster-network.sock"
ENDPOINTS = STATE_DIR / "cluster-network.json"
EGRESS_CONFIG = STATE_DIR / "egress-selector.yaml"
UNIX_PATH_MAX = 107


def up(state, server, ca, cert, key):
    """Start the proxy and write the egress selector configuration kube-apiserver is to be started with."""
    if len(str(SOCKET)) > UNIX_PATH_MAX:
        raise SystemExit(f"{SOCKET}: over {UNIX_PATH_MAX} characters, too long for a unix socket; use a shorter path")
    SOCKET.unlink(missing_ok=True)
    connection = {"proxyProtocol": "HTTPConnect", "transport": {"uds": {"udsName": str(SOCKET)}}}
    egress = {
        "apiVersion": "apiserver.k8s.io/v1beta1",
        "kind": "EgressSelectorConfiguration",
        "egressSelections": [{"name": "cluster", "connection": connection}],
    }
    EGRESS_CONFIG.write_text(yaml.safe_dump(egress))
    argv = [sys.executable, "-m", "tests.testbed.clusternet", f"--socket={SOCKET}", f"--server={server}"]
    argv += [f"--ca={ca}", f"--cert={cert}", f"--key={key}", f"--endpoints={ENDPOINTS}"]
    procs.start(state, "cluster-network", argv, cwd=REPO_ROOT)
    procs.wait_for("cluster network proxy socket", SOCKET.exists, state)
    return EGRESS_CONFIG


def publish(path, name, namespace, labels, ports):
    """Record (or replace) the local process NAME as an endpoint for pods with LABELS in NAMESPACE.

    PORTS maps a container port (number or name, as a Service's targetPort gives it) to a 127.0.0.1 port.
    """
    path = Path(path)
    endpoints = [e for e in read_endpoints(path) if e["name"] != name]
    ports = {str(k): v for k, v in ports.items()}
    endpoints.append({"name": name, "namespace": namespace, "labels": labels, "ports": ports})
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(endpoints, indent=2))
    os.replace(tmp, path)


def read_endpoints(path):
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else []


class ClusterNetwork:
    def __init__(self, server, ca, cert, key, endpoints):
        self.server = server
        self.endpoints = endpoints
        tls = ssl.create_default_context(cafile=ca)
        tls.load_cert_chain(cert, key)
        # Never through a proxy of the environment: the API server is on loopback.
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=tls)
        )

    def services(self):
        # resourceVersion=0: the API server's watch cache, not a quorum read of etcd for every tunnel.
        url = f"{self.server}/api/v1/services?resourceVersion=0"
        with self.opener.open(url, timeout=LIST_TIMEOUT) as answer:
            return json.load(answer)["items"]

    def resolve(self, host, port):
        """(127.0.0.1 port, description) for a connection to HOST:PORT, or raise LookupError saying why not."""
        service = next((s for s in self.services() if host in s["spec"].get("clusterIPs", [])), None)
        if service is None:
            raise LookupError(f"no Service has the ClusterIP {host}")
        meta, spec = service["metadata"], service["spec"]
        ident = f"{meta['namespace']}/{meta['name']}"
        service_port = next((p for p in spec.get("ports", []) if p["port"] == port), None)
        if service_port is None:
            raise LookupError(f"Service {ident} has no port {port}")
        target = str(service_port.get("targetPort", port))
        selector = spec.get("selector") or {}
        for endpoint in read_endpoints(self.endpoints):
            labels = endpoint["labels"]
            if (
                selector
                and endpoint["namespace"] == meta["namespace"]
                and all(labels.get(k) == v for k, v in selector.items())
                and target in endpoint["ports"]
            ):
                local = endpoint["ports"][target]
                return local, f"{ident}:{port} -> {endpoint['name']}:{target} (127.0.0.1:{local})"
        raise LookupError(f"no local process serves Service {ident} (selector {selector}, targetPort {target})")

    async def handle(self, reader, writer):
        upstream_writer = None
        try:
            request = await asyncio.wait_for(self.read_request(reader), HEADER_TIMEOUT)
            if len(request) < 2 or request[0] != "CONNECT":
                await self.answer(writer, "405 only CONNECT is served here")
                return
            host, port = request[1].rpartition(":")[::2]
            try:
                local, how = await asyncio.to_thread(self.resolve, host.strip("[]"), int(port))
                upstream_reader, upstream_writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", local), CONNECT_TIMEOUT
                )
            except Exception as exc:  # noqa: BLE001 -- whatever it is, the API server gets it as the 502's reason
                print(f"CONNECT {request[1]}: refused: {exc}", flush=True)
                await self.answer(writer, f"502 {exc}")
                return
            print(f"CONNECT {request[1]}: {how}", flush=True)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
        except (OSError, asyncio.TimeoutError):
            pass  # the client went away, or never sent its request
        finally:
            for side in (upstream_writer, writer):
                if side is not None:
                    side.close()

    @staticmethod
    async def read_request(reader):
        request = (await reader.readline()).decode("latin-1").split()
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass  # headers: nothing in them matters here
        return request

    @staticmethod
    async def answer(writer, status):
        writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n".encode("latin-1", "replace"))
        await writer.drain()


async def pipe(reader, writer):
    """Copy until EOF, then pass the EOF on (half-close); the caller closes both sides when both are done."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        pass


async def serve(args):
    network = ClusterNetwork(args.server, args.ca, args.cert, args.key, args.endpoints)
    server = await asyncio.start_unix_server(network.handle, path=args.socket)
    os.chmod(args.socket, 0o600)
    print(f"serving CONNECT on {args.socket} for {args.server}", flush=True)
    async with server:
        await server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True)
    parser.add_argument("--server", required=True, help="the API server, to look Services up")
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--endpoints", required=True, help="JSON file of local endpoints (see publish)")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
