"""Raw protocol clients for the data plane tests: the websockets client and frames built with
``cdk_secure_tunnel.protocol``, never the project's local proxy, so a bug cannot hide on both sides.

Nothing here sleeps to wait for a state: receives wait on the socket with a timeout, and emulator state
is awaited with ``DataPlane.wait_for``.
"""

import struct
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from cdk_secure_tunnel.protocol import Message, MessageReader, encode
from cdk_secure_tunnel.protocol.handshake import SUBPROTOCOL_V3
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

TIMEOUT = 10.0
# The close code a client sees when the connection ends without a close frame.
ABNORMAL = 1006


@dataclass(frozen=True)
class Tunnel:
    tunnel_id: str
    source_token: str
    destination_token: str

    def token(self, mode: str) -> str:
        return self.source_token if mode == "source" else self.destination_token


def open_tunnel(services: Sequence[str] = ("SSH",), **params: Any) -> Tunnel:
    client = boto3.client("iotsecuretunneling")
    opened = client.open_tunnel(
        destinationConfig={"thingName": "pump-7", "services": list(services)}, **params
    )
    return Tunnel(opened["tunnelId"], opened["sourceAccessToken"], opened["destinationAccessToken"])


def describe(tunnel: Tunnel) -> dict[str, Any]:
    described: dict[str, Any] = boto3.client("iotsecuretunneling").describe_tunnel(tunnelId=tunnel.tunnel_id)
    return described["tunnel"]


def data(stream_id: int, payload: bytes, service_id: str = "SSH", connection_id: int = 1) -> Message:
    return Message(
        type=Message.DATA,
        streamId=stream_id,
        serviceId=service_id,
        connectionId=connection_id,
        payload=payload,
    )


def stream_start(stream_id: int, service_id: str = "SSH", connection_id: int = 1) -> Message:
    return Message(
        type=Message.STREAM_START, streamId=stream_id, serviceId=service_id, connectionId=connection_id
    )


def raw_message(body: bytes) -> bytes:
    """A length-prefixed message body, however invalid: for what ``encode`` refuses to build."""
    return struct.pack(">H", len(body)) + body


class Peer:
    """One side's WebSocket connection, reading messages across frame boundaries."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self._reader = MessageReader()
        self._pending: deque[Message] = deque()

    @property
    def subprotocol(self) -> str | None:
        return self.connection.subprotocol

    @property
    def headers(self) -> Mapping[str, str]:
        assert self.connection.response is not None
        return self.connection.response.headers

    def send(self, *messages: Message) -> None:
        """All ``messages`` in one frame."""
        self.connection.send(b"".join(encode(message) for message in messages))

    def send_raw(self, frame: bytes | str) -> None:
        self.connection.send(frame)

    def receive(self, timeout: float = TIMEOUT) -> Message:
        while not self._pending:
            frame = self.connection.recv(timeout=timeout)
            assert isinstance(frame, bytes), "the service sends binary frames only"
            self._pending.extend(self._reader.feed(frame))
        return self._pending.popleft()

    def receive_payload(self, size: int, timeout: float = TIMEOUT) -> bytes:
        """``size`` payload bytes from successive DATA messages."""
        received = bytearray()
        while len(received) < size:
            message = self.receive(timeout)
            assert message.type == Message.DATA, message
            received += message.payload
        return bytes(received)

    def closed(self, timeout: float = TIMEOUT) -> tuple[int, str]:
        """Wait for the service to end the connection: its close code and reason (1006: no close frame)."""
        try:
            while True:
                self.connection.recv(timeout=timeout)
        except ConnectionClosed as closed:
            if closed.rcvd is None:
                return ABNORMAL, ""
            return closed.rcvd.code, closed.rcvd.reason


def upgrade_headers(
    token: str | None, client_token: str | None = None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    headers = {} if token is None else {"access-token": token}
    if client_token is not None:
        headers["client-token"] = client_token
    return headers | dict(extra or {})


@contextmanager
def peer(
    url: str,
    mode: str,
    token: str | None,
    *,
    subprotocols: Sequence[str] = (SUBPROTOCOL_V3,),
    client_token: str | None = None,
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    path: str | None = None,
    **options: Any,
) -> Iterator[Peer]:
    """A connected side; v2 and v3 peers have already received SERVICE_IDS (see ``Peer.service_ids``)."""
    extra: list[tuple[str, str]] = list(upgrade_headers(token, client_token).items())
    extra += list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
    with connect(
        f"{url}{path or f'/tunnel?local-proxy-mode={mode}'}",
        subprotocols=list(subprotocols),  # type: ignore[arg-type]
        additional_headers=extra,
        compression=None,
        max_size=None,
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
        **options,
    ) as connection:
        yield Peer(connection)


def refusal(url: str, mode: str, token: str | None, **kwargs: Any) -> tuple[int, str, Mapping[str, str]]:
    """The status, body and headers of a refused handshake (fails if it is accepted)."""
    try:
        with peer(url, mode, token, **kwargs):
            pass
    except InvalidStatus as refused:
        return refused.response.status_code, refused.response.body.decode(), refused.response.headers
    raise AssertionError("the handshake was accepted")
