"""A fake tunneling service for the local proxy's unit tests: the handshake rules and a byte relay.

    async with running_fake_service(services=("SSH",)) as service:  # inside the test's asyncio.run
        ...

It knows only what the proxy's tests need (tokens per mode, subprotocols, SERVICE_IDS, relaying frames,
dropping a connection, misbehaving right after the handshake, closing the tunnel); the emulator's data
plane is tested on its own.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http import HTTPStatus

from cdk_secure_tunnel.protocol import MAX_FRAME_PAYLOAD, Message, encode
from cdk_secure_tunnel.protocol.handshake import ACCESS_TOKEN_HEADER, CLIENT_TOKEN_HEADER, SUBPROTOCOLS
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosedError
from websockets.http11 import Request, Response

# The server side logs request headers (tokens) at DEBUG; the test of our logs must see only ours.
_QUIET = logging.getLogger("tests.fake_service")
_QUIET.setLevel(logging.WARNING)


@dataclass
class FakeService:
    services: list[str]
    tokens: dict[str, str] = field(
        default_factory=lambda: {"src-token": "source", "dst-token": "destination"}
    )
    peers: dict[str, ServerConnection] = field(default_factory=dict)
    handshakes: list[Request] = field(default_factory=list)
    # When each handshake came (time.monotonic()), to tell the waits between attempts.
    handshake_times: list[float] = field(default_factory=list)
    client_tokens: dict[str, str] = field(default_factory=dict)
    fail_with: list[int] = field(default_factory=list)
    # What the next connections get right after the handshake, before SERVICE_IDS, one per connection:
    # "abort" cuts it as a network failure would, "oversized" sends a frame over the protocol's limit.
    sabotage: list[str] = field(default_factory=list)
    connected: dict[str, asyncio.Event] = field(
        default_factory=lambda: {"source": asyncio.Event(), "destination": asyncio.Event()}
    )
    closed: bool = False
    server: Server | None = None
    # Connections that went silent (go_silent): cut when the service stops.
    silenced: list[ServerConnection] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        assert self.server is not None
        host, port = next(iter(self.server.sockets)).getsockname()[:2]
        return f"ws://{host}:{port}"

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.handshakes.append(request)
        self.handshake_times.append(time.monotonic())
        if self.fail_with:
            status = HTTPStatus(self.fail_with.pop(0))
            return connection.respond(status, f"{status.phrase}\n")
        mode = request.path.partition("local-proxy-mode=")[2]
        token = request.headers.get(ACCESS_TOKEN_HEADER, "")
        client_token = request.headers.get(CLIENT_TOKEN_HEADER)
        if self.closed or self.tokens.get(token) != mode:
            return connection.respond(HTTPStatus.FORBIDDEN, "Invalid access token\n")
        if token in self.client_tokens and self.client_tokens[token] != client_token:
            return connection.respond(HTTPStatus.FORBIDDEN, "The access token was previously used\n")
        self.client_tokens[token] = client_token or "<spent>"
        return None

    async def handler(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        mode = connection.request.path.partition("local-proxy-mode=")[2]
        if self.sabotage:
            await self._sabotage(connection, self.sabotage.pop(0))
            return
        old = self.peers.get(mode)
        if old is not None:
            await old.close()
        self.peers[mode] = connection
        if connection.subprotocol != SUBPROTOCOLS[-1]:
            await connection.send(
                encode(Message(type=Message.SERVICE_IDS, availableServiceIds=self.services))
            )
        self.connected[mode].set()
        other = "destination" if mode == "source" else "source"
        with contextlib.suppress(ConnectionClosedError):  # dropped or silenced, as a test wants
            async for frame in connection:
                peer = self.peers.get(other)
                if peer is not None:
                    await peer.send(frame)
        if self.peers.get(mode) is connection:
            del self.peers[mode]
            self.connected[mode].clear()

    @staticmethod
    async def _sabotage(connection: ServerConnection, how: str) -> None:
        if how == "abort":
            connection.transport.abort()
        elif how == "oversized":
            await connection.send(b"\x00" * (MAX_FRAME_PAYLOAD + 1))
            await connection.wait_closed()
        else:
            raise ValueError(f"sabotage: got {how!r}; expected abort or oversized")

    async def drop(self, mode: str) -> None:
        """Cut ``mode``'s connection without a close handshake, as a network failure would."""
        self.peers[mode].transport.abort()
        self.connected[mode].clear()

    def go_silent(self, mode: str) -> None:
        """Stop reading ``mode``'s connection, as a service gone quiet (or a network path gone dead) would:
        nothing it is sent is relayed any more, its pings are never answered, and it closes nothing."""
        connection = self.peers.pop(mode)
        self.connected[mode].clear()
        connection.transport.pause_reading()
        self.silenced.append(connection)

    async def close_tunnel(self) -> None:
        self.closed = True
        for peer in list(self.peers.values()):
            await peer.close(1000, "tunnel closed")


@asynccontextmanager
async def running_fake_service(services: tuple[str, ...] = ("SSH", "HTTP")) -> AsyncIterator[FakeService]:
    service = FakeService(services=list(services))
    async with serve(
        service.handler,
        "127.0.0.1",
        0,
        subprotocols=list(SUBPROTOCOLS),  # type: ignore[arg-type]
        process_request=service.process_request,
        compression=None,
        logger=_QUIET,
    ) as server:
        service.server = server
        try:
            yield service
        finally:
            for connection in service.silenced:
                connection.transport.abort()


@asynccontextmanager
async def echo_server() -> AsyncIterator[int]:
    """A local TCP echo server (its port) standing in for the device's service behind a destination proxy."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]
