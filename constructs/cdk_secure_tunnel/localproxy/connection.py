"""One WebSocket connection to the tunneling service: the handshake, then messages both ways.

The upgrade carries the access token in the ``access-token`` header and, by default, a client token, so
a connection that drops can be made again with the same access token. A 4xx answer raises
``HandshakeRejected`` and a certificate that does not verify ``CertificateUntrusted`` (retrying cannot
help either); network errors and 5xx raise ``Retryable``.

    socket = await TunnelSocket.open(settings)
    await socket.send(Message(type=Message.STREAM_START, streamId=1, serviceId="SSH", connectionId=1))
    errors: list[ProtocolError] = []  # messages that did not decode, skipped
    async for batch in socket.messages(errors):  # the messages each frame completed
        for message in batch:
            ...

(tests/unit/test_localproxy.py runs this example against a fake service.)
"""

import logging
import ssl
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.typing import Subprotocol

from ..protocol import MAX_FRAME_PAYLOAD, Message, MessageReader, ProtocolError, encode
from ..protocol.handshake import (
    ACCESS_TOKEN_HEADER,
    CHANNEL_ID_HEADER,
    CLIENT_TOKEN_HEADER,
    DATA_CA_FILE_VARIABLE,
    MODE_PARAMETER,
    PATH,
    SUBPROTOCOLS,
    VERSIONS,
)
from .errors import CertificateUntrusted, ConfigurationError, HandshakeRejected
from .settings import ProxySettings

logger = logging.getLogger(__name__)
# The websockets library logs the upgrade request's headers, token included, at DEBUG: its logger stays at
# INFO whatever the application's level.
_WIRE_LOGGER = logging.getLogger("cdk_secure_tunnel.localproxy.wire")
_WIRE_LOGGER.setLevel(logging.INFO)
USER_AGENT = "cdk-secure-tunnel-localproxy"
# Frames up to the service's limit are written without waiting; beyond, send() waits for the socket.
_WRITE_LIMIT = 4 * MAX_FRAME_PAYLOAD
_OPEN_TIMEOUT = 10.0
# A close handshake is one round trip, as a ping is: once a pong has not come in time (or the proxy is
# done with the connection) waiting longer for the peer's close only delays the reconnect; websockets
# would wait 10 s.
_CLOSE_TIMEOUT = 2.0
_DETAIL_CHARS = 200


class Retryable(Exception):
    """The connection failed or dropped in a way a later attempt may not: network errors, 5xx, timeouts.

    ``orderly`` when the service closed the connection with a close frame (it does so when the tunnel
    closes): reconnecting then tells whether the tunnel is gone, which is worth no warning by itself.
    """

    def __init__(self, reason: str, *, orderly: bool = False) -> None:
        super().__init__(reason)
        self.orderly = orderly


def subprotocols(version: int) -> list[Subprotocol]:
    """What the handshake offers for a protocol ``version``: that one and the older ones, newest first.

    >>> subprotocols(2)
    ['aws.iot.securetunneling-2.0', 'aws.iot.securetunneling-1.0']
    """
    return [Subprotocol(name) for name in SUBPROTOCOLS if VERSIONS[name] <= version]


def tls_context(settings: ProxySettings) -> ssl.SSLContext:
    """TLS 1.2+ against the system's CAs (and ``capath``'s), host verification on unless told otherwise."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    for name, location in (("capath", settings.capath), ("cafile", settings.cafile)):
        if location:
            try:
                context.load_verify_locations(**{name: location})
            except (OSError, ssl.SSLError) as error:
                raise ConfigurationError(f"{name}: got {location!r}; {error}") from None
    if not settings.verify_host:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _printable(data: bytes) -> str:
    text = data[:_DETAIL_CHARS].decode("utf-8", "replace")
    return "".join(ch if ch.isprintable() else " " for ch in text).strip()


class TunnelSocket:
    """An open connection to the service, speaking protocol ``version`` (what the service chose)."""

    def __init__(self, websocket: ClientConnection, version: int, channel_id: str | None) -> None:
        self.websocket = websocket
        self.version = version
        self.channel_id = channel_id
        self._reader = MessageReader()

    @classmethod
    async def open(cls, settings: ProxySettings, access_token: str | None = None) -> "TunnelSocket":
        """Connect and upgrade; raises ``HandshakeRejected`` (4xx), ``CertificateUntrusted`` (TLS) or
        ``Retryable``."""
        url = f"{settings.endpoint}{PATH}?{MODE_PARAMETER}={settings.mode}"
        headers = {ACCESS_TOKEN_HEADER: access_token or settings.access_token}
        if settings.client_token:
            headers[CLIENT_TOKEN_HEADER] = settings.client_token
        options: dict[str, Any] = {}
        if url.startswith("wss://"):
            options["ssl"] = tls_context(settings)
        try:
            websocket = await connect(
                url,
                additional_headers=headers,
                subprotocols=subprotocols(settings.version),
                compression=None,
                user_agent_header=USER_AGENT,
                open_timeout=_OPEN_TIMEOUT,
                ping_interval=settings.ping_interval,
                ping_timeout=settings.ping_timeout,
                close_timeout=min(settings.ping_timeout, _CLOSE_TIMEOUT),
                max_size=MAX_FRAME_PAYLOAD,
                write_limit=_WRITE_LIMIT,
                logger=_WIRE_LOGGER,
                **options,
            )
        except InvalidStatus as error:
            response = error.response
            status = response.status_code
            channel_id = response.headers.get(CHANNEL_ID_HEADER)
            if 400 <= status < 500:
                raise HandshakeRejected(
                    status, response.reason_phrase, _printable(bytes(response.body or b"")), channel_id
                ) from None
            raise Retryable(f"the service answered HTTP {status} {response.reason_phrase}") from None
        except InvalidURI as error:
            raise ConfigurationError(f"endpoint: got {settings.endpoint!r}; {error}") from None
        except ssl.SSLCertVerificationError as error:
            # Not retried: the same certificate would be met again, forever (retries are unlimited by
            # default), while the cause is a setting or something between us and the service.
            raise CertificateUntrusted(
                f"TLS: the certificate of {settings.endpoint} did not verify ({error.verify_message}); check "
                f"--capath and ${DATA_CA_FILE_VARIABLE} (the CAs trusted besides the system's), the "
                "endpoint (--endpoint, --region) and whether a proxy on the network intercepts TLS"
            ) from None
        except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as error:
            raise Retryable(
                f"cannot connect to {settings.endpoint}: {error or type(error).__name__}"
            ) from None
        chosen = websocket.subprotocol
        if chosen not in VERSIONS:
            await websocket.close()
            raise Retryable(f"the service chose no known subprotocol ({chosen!r})")
        channel_id = websocket.response.headers.get(CHANNEL_ID_HEADER) if websocket.response else None
        return cls(websocket, min(VERSIONS[chosen], settings.version), channel_id)

    async def send(self, message: Message) -> None:
        """Send one message in its own binary frame; raises ``Retryable`` once the connection is gone."""
        await self.send_bytes(encode(message))

    async def send_bytes(self, wire: bytes) -> None:
        """Send encoded messages (``encode``, ``payload_encoder``) in one binary frame."""
        try:
            await self.websocket.send(wire)
        except ConnectionClosed as error:
            raise Retryable(f"the connection to the service closed: {error}") from None

    async def messages(self, errors: list[ProtocolError]) -> AsyncIterator[list[Message]]:
        """Batches of messages as frames complete them; bad messages are skipped into ``errors``.

        Ends by raising ``Retryable`` when the connection closes (the service closes it when the tunnel
        closes; the caller finds out which by reconnecting).
        """
        try:
            async for frame in self.websocket:
                if isinstance(frame, str):
                    # Guides: the service never sends text frames; a client should close on one.
                    await self.websocket.close(1003, "text frames are not part of the protocol")
                    raise Retryable("the service sent a text frame")
                yield self._reader.feed(frame, errors)
        except ConnectionClosed as error:
            raise Retryable(f"the connection to the service closed: {error}") from None
        rcvd = self.websocket.protocol.close_rcvd
        reason = f"code {rcvd.code} {rcvd.reason}".strip() if rcvd else "no close frame"
        raise Retryable(f"the service closed the connection ({reason})", orderly=rcvd is not None)

    async def close(self) -> None:
        await self.websocket.close()
