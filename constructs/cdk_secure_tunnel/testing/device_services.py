"""Stand-ins for a device's own services, for carrying bytes through a tunnel end to end: a TCP echo
server where SSH would be, and a web server with one page, both on 127.0.0.1 in daemon threads.

>>> import socket, urllib.request
>>> with serving_device_services(b"<h1>ok</h1>", echo_prefix=b"echo: ") as ports:
...     with socket.create_connection(("127.0.0.1", ports["SSH"]), timeout=10) as connection:
...         connection.sendall(b"hi")
...         connection.recv(1024)
...     urllib.request.urlopen(f"http://127.0.0.1:{ports['HTTP']}/", timeout=10).read()
b'echo: hi'
b'<h1>ok</h1>'
"""

import http.server
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def serving_device_services(page: bytes, echo_prefix: bytes = b"") -> Iterator[dict[str, int]]:
    """Serve the echo and web servers until the block ends; yields their ports as ``{"SSH", "HTTP"}``.

    Each chunk received on SSH comes back behind ``echo_prefix``; every GET on HTTP answers ``page``.
    """

    class Echo(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            while data := self.request.recv(65536):
                self.request.sendall(echo_prefix + data)

    class Web(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass  # a request line per GET would bury the output of the tunnel's own commands

    echo = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Web)
    servers: tuple[socketserver.TCPServer, ...] = (echo, web)
    for server in servers:
        server.daemon_threads = True  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield {"SSH": int(echo.server_address[1]), "HTTP": int(web.server_address[1])}
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
