"""The bed's cluster network: how a ClusterIP connection finds its local process (pure logic, real sockets)."""

import asyncio
import socket

import pytest

from tests.testbed import clusternet

ISTIOD = {
    "metadata": {"namespace": "istio-system", "name": "istiod-1-31"},
    "spec": {
        "clusterIPs": ["10.96.0.20"],
        "selector": {"app": "istiod", "istio.io/rev": "1-31"},
        "ports": [{"port": 443, "targetPort": 15017}, {"port": 15014, "targetPort": "http-monitoring"}],
    },
}
POD_LABELS = {"app": "istiod", "istio.io/rev": "1-31", "istio": "istiod"}


@pytest.fixture
def network(tmp_path, monkeypatch):
    endpoints = tmp_path / "endpoints.json"
    clusternet.publish(
        endpoints, "istiod-1-31-local", "istio-system", POD_LABELS, {15017: 4001, "http-monitoring": 4002}
    )
    network = clusternet.ClusterNetwork.__new__(clusternet.ClusterNetwork)
    network.endpoints = endpoints
    monkeypatch.setattr(network, "services", lambda: [ISTIOD], raising=False)
    return network


def test_a_service_port_resolves_to_the_local_process_by_selector_and_target_port(network):
    assert network.resolve("10.96.0.20", 443)[0] == 4001
    assert network.resolve("10.96.0.20", 15014)[0] == 4002  # a named targetPort


@pytest.mark.parametrize(
    "host, port, why",
    [
        ("10.96.0.99", 443, "no Service has the ClusterIP 10.96.0.99"),
        ("10.96.0.20", 8080, "Service istio-system/istiod-1-31 has no port 8080"),
    ],
)
def test_an_unknown_address_says_why(network, host, port, why):
    with pytest.raises(LookupError, match=why):
        network.resolve(host, port)


def test_a_service_whose_pods_no_local_process_stands_for_is_refused(network):
    clusternet.publish(network.endpoints, "istiod-1-31-local", "istio-system", {"app": "istiod"}, {15017: 4001})
    with pytest.raises(LookupError, match="no local process serves Service istio-system/istiod-1-31"):
        network.resolve("10.96.0.20", 443)


def test_publish_replaces_an_endpoint_of_the_same_name(tmp_path):
    endpoints = tmp_path / "endpoints.json"
    clusternet.publish(endpoints, "a", "ns", {}, {1: 2})
    clusternet.publish(endpoints, "a", "ns", {}, {1: 3})
    clusternet.publish(endpoints, "b", "ns", {}, {1: 4})
    assert [(e["name"], e["ports"]) for e in clusternet.read_endpoints(endpoints)] == [("a", {"1": 3}), ("b", {"1": 4})]


async def tunnel_to(network, tmp_path, upstream_handler):
    """The proxy on a unix socket in TMP_PATH, forwarding the istiod Service to a server running UPSTREAM_HANDLER."""
    upstream = await asyncio.start_server(upstream_handler, "127.0.0.1", 0)
    port = upstream.sockets[0].getsockname()[1]
    clusternet.publish(network.endpoints, "istiod-1-31-local", "istio-system", POD_LABELS, {15017: port})
    path = str(tmp_path / "s.sock")
    proxy = await asyncio.start_unix_server(network.handle, path=path)
    return path, proxy, upstream


def test_connect_tunnels_to_the_local_process_and_a_refusal_names_the_reason(network, tmp_path):
    async def scenario():
        async def echo(reader, writer):
            writer.write(b"echo:" + await reader.readline())
            await writer.drain()
            writer.close()

        path, proxy, upstream = await tunnel_to(network, tmp_path, echo)

        async def connect(target):
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            status = await reader.readline()
            while await reader.readline() not in (b"\r\n", b""):
                pass
            return status, reader, writer

        status, reader, writer = await connect("10.96.0.20:443")
        writer.write(b"hello\n")
        tunneled = await reader.readline()
        writer.close()
        refused = (await connect("10.96.0.99:443"))[0]
        proxy.close()
        upstream.close()
        return status, tunneled, refused

    status, tunneled, refused = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert status.startswith(b"HTTP/1.1 200")
    assert tunneled == b"echo:hello\n"
    assert refused == b"HTTP/1.1 502 no Service has the ClusterIP 10.96.0.99\r\n"


def test_the_socket_path_limit_is_the_kernels(tmp_path):
    """up() refuses a checkout whose socket path the kernel would refuse, and only such a one."""
    longest = str(tmp_path / "s")
    longest += "x" * (clusternet.UNIX_PATH_MAX - len(longest))
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(longest)
    with socket.socket(socket.AF_UNIX) as sock, pytest.raises(OSError):
        sock.bind(longest + "x")


def test_a_half_closed_tunnel_still_carries_the_answer(network, tmp_path):
    """The client sends its request and EOF; the answer that comes after must still reach it."""

    async def scenario():
        async def reply_after_eof(reader, writer):
            request = await reader.read()  # until the client's EOF
            await asyncio.sleep(0.2)
            writer.write(b"answer to " + request)
            await writer.drain()
            writer.close()

        path, proxy, upstream = await tunnel_to(network, tmp_path, reply_after_eof)
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b"CONNECT 10.96.0.20:443 HTTP/1.1\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        await reader.readline()
        writer.write(b"ping")
        writer.write_eof()
        answer = await reader.read()
        proxy.close()
        upstream.close()
        return answer

    assert asyncio.run(asyncio.wait_for(scenario(), 20)) == b"answer to ping"
