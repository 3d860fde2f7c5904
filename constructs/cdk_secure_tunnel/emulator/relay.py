"""One tunnel's live side of the data plane: its two peers, the streams between them, the rules every
message from a peer must pass, and the traffic log.

Everything here runs on the data plane's event loop; only ``TrafficLog`` is read from other threads.

>>> session = TunnelSession("t-1", services=("SSH",))
>>> start = Message(type=Message.STREAM_START, streamId=1, serviceId="SSH", connectionId=1)
>>> session.check(start, "destination", PeerState()) is None
False
>>> session.check(start, "source", PeerState()) is None
True
"""

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from ..protocol import MAX_FRAME_PAYLOAD, Message
from ..protocol.handshake import Mode

# Message types that belong to a stream: each needs a non-zero stream id (protocol guides, "Message").
STREAM_TYPES = frozenset(
    {
        Message.DATA,
        Message.STREAM_START,
        Message.STREAM_RESET,
        Message.CONNECTION_START,
        Message.CONNECTION_RESET,
    }
)
# Types only the source may send: they open a stream or a connection, like a TCP SYN.
SOURCE_ONLY_TYPES = frozenset({Message.STREAM_START, Message.CONNECTION_START})
# Known types no client may send, with the reason the service closes a connection that does.
FORBIDDEN_TYPES = {
    Message.UNKNOWN: "message type not set",
    Message.SESSION_RESET: "only the service sends SESSION_RESET",
    Message.SERVICE_IDS: "only the service sends SERVICE_IDS",
}
_TYPE_NAMES = {number: name for name, number in Message.Type.items()}
KNOWN_TYPES = frozenset(_TYPE_NAMES)


def other(mode: Mode) -> Mode:
    return "destination" if mode == "source" else "source"


def type_name(message_type: int) -> str:
    return _TYPE_NAMES.get(message_type) or f"TYPE_{message_type}"


class LoggedMessage(NamedTuple):
    """One message through a tunnel, as the traffic log keeps it: never the payload bytes, only their count.

    ``origin`` is the side that sent it (``source``, ``destination``) or ``service`` for what the data plane
    itself sent (SERVICE_IDS, STREAM_RESET for a replaced peer, SESSION_RESET). ``delivered_to`` is the
    side it was relayed to, or None when the other side was not connected (the message is dropped, as
    the service does: peers learn nothing of each other's connections), judged when it arrived.
    """

    origin: str
    type: str
    stream_id: int = 0
    connection_id: int = 0
    service_id: str = ""
    payload_size: int = 0
    service_ids: tuple[str, ...] = ()
    delivered_to: str | None = None


def logged(origin: str, message: Message, delivered_to: str | None) -> LoggedMessage:
    # Positional: this runs for every relayed message.
    return LoggedMessage(
        origin,
        type_name(message.type),
        message.streamId,
        message.connectionId,
        message.serviceId,
        len(message.payload),
        tuple(message.availableServiceIds) if message.availableServiceIds else (),
        delivered_to,
    )


class TrafficLog:
    """Per-tunnel message records, appended on the loop and read by tests; waiters wake on every change."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self._records: dict[str, list[LoggedMessage]] = {}

    def add(self, tunnel_id: str, records: list[LoggedMessage]) -> None:
        with self.changed:
            self._records.setdefault(tunnel_id, []).extend(records)
            self.changed.notify_all()

    def records(self, tunnel_id: str) -> list[LoggedMessage]:
        with self.changed:
            return list(self._records.get(tunnel_id, ()))

    def clear(self) -> None:
        with self.changed:
            self._records.clear()
            self.changed.notify_all()


@dataclass
class PeerState:
    """What the rules remember about one connection: whether its stream messages carry service ids."""

    uses_service_ids: bool | None = None


class TunnelSession:
    """The streams of one tunnel as the service sees them, and the rules for what its peers send."""

    def __init__(self, tunnel_id: str, services: tuple[str, ...]) -> None:
        self.tunnel_id = tunnel_id
        self.services = services
        # Service id ("" for a V1 stream) -> the stream id the source started last and nobody reset.
        self.active_streams: dict[str, int] = {}
        # Service ids a stream was ever started for: later messages may name only these (V2 guide).
        self.started_services: set[str] = set()
        # Modes that have connected before: the next connection of one replaces or reconnects that peer.
        self.seen_modes: set[Mode] = set()

    def check(self, message: Message, mode: Mode, peer: PeerState) -> str | None:
        """Why the service closes a connection that sent ``message``, or None when it is relayed."""
        kind = message.type
        if kind not in KNOWN_TYPES:
            # An unknown type is carried to the peer only when the sender says it may be ignored.
            return None if message.ignorable else f"unknown message type {kind} without ignorable"
        if kind not in STREAM_TYPES:
            return FORBIDDEN_TYPES.get(kind)
        if message.streamId == 0:
            return f"{type_name(kind)} with stream id 0"
        if kind in SOURCE_ONLY_TYPES and mode == "destination":
            return f"a destination may not send {type_name(kind)}"
        return self._service_id_violation(message, peer)

    def _service_id_violation(self, message: Message, peer: PeerState) -> str | None:
        service_id = message.serviceId
        if service_id and service_id not in self.services:
            known = ", ".join(self.services) or "none"
            return f"service id {service_id!r} is not one of the tunnel's ({known})"
        uses_service_ids = bool(service_id)
        if peer.uses_service_ids is None:
            peer.uses_service_ids = uses_service_ids
        elif peer.uses_service_ids != uses_service_ids:
            return "stream messages alternate between having a service id and not"
        # A message without a service id is a V1 peer's, which names no service (V2 guide, "Backward
        # compatibility"): only messages that name one must name a started one.
        if service_id and message.type != Message.STREAM_START and service_id not in self.started_services:
            return f"{type_name(message.type)} for service {service_id!r} before any STREAM_START for it"
        return None

    def track(self, message: Message) -> None:
        """Follow the streams a relayed message starts or ends."""
        if message.type == Message.STREAM_START:
            self.active_streams[message.serviceId] = message.streamId
            self.started_services.add(message.serviceId)
        elif (
            message.type == Message.STREAM_RESET
            and self.active_streams.get(message.serviceId) == message.streamId
        ):
            del self.active_streams[message.serviceId]

    def end_streams(self) -> list[Message]:
        """STREAM_RESET for every active stream, which end: what the remaining peer is told when the other
        side is replaced or reconnects."""
        resets = [
            Message(type=Message.STREAM_RESET, streamId=stream_id, serviceId=service_id)
            for service_id, stream_id in self.active_streams.items()
        ]
        self.active_streams.clear()
        return resets


def frames(raw: bytes, ends: list[int]) -> Iterator[bytes]:
    """``raw`` (whole messages ending at ``ends``) cut at message ends into frames the protocol allows."""
    if len(raw) <= MAX_FRAME_PAYLOAD:
        yield raw
        return
    start = previous = 0
    for end in ends:
        if end - start > MAX_FRAME_PAYLOAD:
            yield raw[start:previous]
            start = previous
        previous = end
    yield raw[start:]


@dataclass
class Bandwidth:
    """A per-tunnel cap in bytes per second shared by both directions, with a tenth of a second of burst.

    A chunk larger than what is available goes out at once and the debt is waited off, so frames larger
    than a second's worth still pass (slowly).
    """

    per_second: float
    _available: float = field(init=False)
    _stamp: float = field(init=False)

    def __post_init__(self) -> None:
        if self.per_second <= 0:
            raise ValueError("bytes_per_second must be positive")
        self._available = self.per_second / 10
        self._stamp = time.monotonic()

    async def take(self, size: int) -> None:
        now = time.monotonic()
        self._available = min(self.per_second / 10, self._available + (now - self._stamp) * self.per_second)
        self._stamp = now
        self._available -= size
        if self._available < 0:
            await asyncio.sleep(-self._available / self.per_second)
