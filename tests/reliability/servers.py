"""Small servers on 127.0.0.1 that connection tests point the collection at: a web server that is not an API
server (and records who called it), and an HTTP CONNECT proxy that can require credentials."""

import base64
import http.server
import select
import socket
import socketserver
import threading


class _Threaded(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server:
    """Start on enter (a free port on 127.0.0.1), stop on exit."""

    handler = None

    def __enter__(self):
        self.httpd = _Threaded(("127.0.0.1", 0), self.handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port


class WebServer(_Server):
    """Answers every request with one fixed page; `requests` records (method, path, Authorization header)."""

    def __init__(self, status=200, body=b"<html><body>Please log in</body></html>", content_type="text/html"):
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                server.requests.append((self.command, self.path, self.headers.get("Authorization")))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

        self.handler = Handler


class ConnectProxy(_Server):
    """An HTTP CONNECT proxy; with `credentials` ("user:password") it answers 407 to a tunnel without them.

    `tunnels` records {"target", "authorized"} of every CONNECT, refused ones included.
    """

    def __init__(self, credentials=None):
        self.tunnels = []
        self.lock = threading.Lock()
        expected = "Basic " + base64.b64encode(credentials.encode()).decode() if credentials else None
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_CONNECT(self):
                authorized = expected is None or self.headers.get("Proxy-Authorization") == expected
                with proxy.lock:
                    proxy.tunnels.append({"target": self.path, "authorized": authorized})
                if not authorized:
                    self.send_response(407)
                    self.send_header("Proxy-Authenticate", 'Basic realm="test"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                host, _sep, port = self.path.rpartition(":")
                try:
                    upstream = socket.create_connection((host, int(port)), timeout=10)
                except OSError:
                    self.send_response(502)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200, "Connection established")
                self.end_headers()
                self.close_connection = True
                _pipe(self.connection, upstream)

        self.handler = Handler

    def authorized(self):
        with self.lock:
            return [t for t in self.tunnels if t["authorized"]]

    def refused(self):
        with self.lock:
            return [t for t in self.tunnels if not t["authorized"]]


def _pipe(client, upstream, idle=30):
    """Copy bytes both ways until one side closes (or nothing moves for `idle` seconds)."""
    sockets = [client, upstream]
    try:
        while True:
            readable, _w, _x = select.select(sockets, [], [], idle)
            if not readable:
                return
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                (upstream if sock is client else client).sendall(data)
    except OSError:
        return
    finally:
        upstream.close()
