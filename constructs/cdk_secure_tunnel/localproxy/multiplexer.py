"""Streams and connections over one tunnel connection: which local socket each message belongs to.

Each service has at most one active stream; a V3 stream carries several simultaneous TCP connections,
told apart by connection id (V3 guide, "Step 2"). The first local connection of a service opens its
stream (STREAM_START, connection 1), later ones join it (CONNECTION_START, the next id). Messages for a
stream that is not the service's active one are stale and dropped. V2 peers know no connection ids (one
connection per service) and V1 peers no service ids either (one service); a destination answers each
stream in the form its STREAM_START came in.

A ``Multiplexer`` lives as long as one WebSocket connection: when that drops, every stream is void
(V2 guide, "Reconnecting") and the next connection starts afresh. Stream ids come from a counter that
outlives it, so they do not repeat within the proxy's life.

>>> import itertools
>>> from cdk_secure_tunnel.protocol import MessageReader
>>> sent = []
>>> async def send(wire):
...     sent.extend(MessageReader().feed(wire))
>>> mux = Multiplexer("destination", {"SSH": Target(None, 1)}, 3, send, itertools.count(1))
>>> asyncio.run(mux.handle(Message(type=Message.DATA, streamId=7, serviceId="SSH", connectionId=1)))
>>> [(Message.Type.Name(m.type), m.streamId, m.connectionId) for m in sent]  # no stream 7 here: reset it
[('CONNECTION_RESET', 7, 1)]
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field

from ..protocol import MAX_MESSAGE_PAYLOAD, Message, ProtocolError, encode, payload_encoder
from ..protocol.handshake import Mode
from .settings import Target

logger = logging.getLogger(__name__)

# Puts encoded messages (length prefix and protobuf) on the tunnel.
Send = Callable[[bytes], Awaitable[None]]
# A local socket's write buffer may grow to this before delivering more waits for it to drain. Waiting
# holds up every stream of the tunnel (the protocol has no per-stream flow control), so it is generous.
_HIGH_WATER = 4 * 1024 * 1024
_DEFAULT_DESTINATION_HOST = "localhost"
# A destination that does not answer within this is reported closed (its pending bytes are dropped).
_CONNECT_TIMEOUT = 10.0
# Answers to messages for streams this side does not know are sent once per stream and connection.
_MAX_ANSWERED = 1024

DATA = Message.DATA
STREAM_START = Message.STREAM_START
STREAM_RESET = Message.STREAM_RESET
SESSION_RESET = Message.SESSION_RESET
SERVICE_IDS = Message.SERVICE_IDS
CONNECTION_START = Message.CONNECTION_START
CONNECTION_RESET = Message.CONNECTION_RESET
_KNOWN_TYPES = frozenset(Message.Type.values()) - {Message.UNKNOWN}


@dataclass(eq=False)
class LocalConnection:
    """One local TCP connection carried by a stream."""

    service: str
    stream_id: int
    connection_id: int
    writer: asyncio.StreamWriter | None = None
    # Data that arrived while a destination was still connecting.
    pending: list[bytes] = field(default_factory=list)
    closed: bool = False


@dataclass(eq=False)
class Stream:
    """A service's active stream: its id, the message form its peer speaks, and its connections."""

    stream_id: int
    # 3: service and connection ids; 2: service id only; 1: neither.
    form: int
    connections: dict[int, LocalConnection] = field(default_factory=dict)
    next_connection_id: int = 1


class Multiplexer:
    """Routes one tunnel connection's messages to local sockets and local bytes into messages.

    ``services`` maps each service (``""`` for a lone unnamed one) to its target; ``version`` is the
    protocol the connection speaks. ``send`` puts a message on the tunnel.
    """

    def __init__(
        self,
        mode: Mode,
        services: Mapping[str, Target],
        version: int,
        send: Send,
        stream_ids: Iterator[int],
        *,
        on_service_ids: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.mode = mode
        self.services = dict(services)
        self.version = version
        self._send = send
        self._stream_ids = stream_ids
        self._on_service_ids = on_service_ids
        self.streams: dict[str, Stream] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._answered: set[tuple[str, int, int]] = set()
        self._warned_unrouted = False
        self.closed = False

    # -- names on the wire -------------------------------------------------------------------------------

    def _service_of(self, message: Message) -> str | None:
        """The local name of the service a message is for (a V1 message names none: the lone service)."""
        if message.serviceId and self.version > 1:
            return message.serviceId if message.serviceId in self.services else None
        if len(self.services) == 1:
            return next(iter(self.services))
        return None

    def _message(self, kind: int, service: str, stream: Stream, connection_id: int = 0) -> Message:
        message = Message(type=kind, streamId=stream.stream_id)  # type: ignore[arg-type]
        if stream.form > 1 and service:
            message.serviceId = service
        if stream.form > 2 and connection_id:
            message.connectionId = connection_id
        return message

    # -- local side ----------------------------------------------------------------------------------------

    async def accept(self, service: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A source's local client connected to ``service``'s port: start or join its stream, then pump."""
        stream = self.streams.get(service)
        if stream is not None and stream.form < 3:
            logger.warning(
                "%s: refused a second simultaneous connection; the destination speaks V%d, which carries one "
                "connection per service",
                service or "service",
                stream.form,
            )
            writer.close()
            return
        if stream is None:
            stream = self.streams[service] = Stream(next(self._stream_ids), self.version)
            kind = STREAM_START
        else:
            kind = CONNECTION_START
        connection = LocalConnection(service, stream.stream_id, stream.next_connection_id, writer)
        stream.next_connection_id += 1
        stream.connections[connection.connection_id] = connection
        logger.info(
            "%s: connection %d on stream %d", service or "service", connection.connection_id, stream.stream_id
        )
        await self._send(encode(self._message(kind, service, stream, connection.connection_id)))
        await self._pump(connection, reader)

    async def _open_destination(self, service: str, stream: Stream, connection: LocalConnection) -> None:
        target = self.services[service]
        host = target.host or _DEFAULT_DESTINATION_HOST
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, target.port), _CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as error:
            logger.warning(
                "%s: cannot connect to %s:%d: %s",
                service or "service",
                host,
                target.port,
                getattr(error, "strerror", None) or error or "timed out",
            )
            await self._local_closed(connection)
            return
        if connection.closed:
            writer.close()
            return
        connection.writer = writer
        for data in connection.pending:
            writer.write(data)
        connection.pending.clear()
        await self._pump(connection, reader)

    async def _pump(self, connection: LocalConnection, reader: asyncio.StreamReader) -> None:
        """Local bytes into DATA messages until the local side closes (or the tunnel does)."""
        stream = self.streams[connection.service]
        encoded = payload_encoder(self._message(DATA, connection.service, stream, connection.connection_id))
        try:
            while not connection.closed:
                data = await reader.read(MAX_MESSAGE_PAYLOAD)
                if not data or connection.closed:
                    break
                await self._send(encoded(data))
        except (OSError, EOFError):
            pass
        finally:
            await self._local_closed(connection)

    def spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _local_closed(self, connection: LocalConnection) -> None:
        """The local side ended: tell the peer, unless the peer ended it first."""
        if connection.closed:
            return
        stream = self._forget(connection)
        if stream is None or self.closed:
            return
        with contextlib.suppress(Exception):  # the tunnel may be gone; then there is no one to tell
            if stream.form >= 3:
                reset = self._message(CONNECTION_RESET, connection.service, stream, connection.connection_id)
                await self._send(encode(reset))
            else:
                await self._send(encode(self._message(STREAM_RESET, connection.service, stream)))

    def _forget(self, connection: LocalConnection) -> Stream | None:
        """Close a connection and drop it from its stream; a source drops a stream left empty."""
        connection.closed = True
        if connection.writer is not None:
            connection.writer.close()
        stream = self.streams.get(connection.service)
        if stream is None or stream.stream_id != connection.stream_id:
            return None
        stream.connections.pop(connection.connection_id, None)
        if stream.form < 3 or (self.mode == "source" and not stream.connections):
            del self.streams[connection.service]
        return stream

    def _end_stream(self, service: str) -> None:
        stream = self.streams.pop(service, None)
        if stream is not None:
            for connection in list(stream.connections.values()):
                connection.closed = True
                if connection.writer is not None:
                    connection.writer.close()

    def close(self) -> None:
        """The tunnel connection is gone: close every local connection (listeners stay with the proxy)."""
        self.closed = True
        for service in list(self.streams):
            self._end_stream(service)
        for task in list(self._tasks):
            task.cancel()

    # -- tunnel side ---------------------------------------------------------------------------------------

    async def handle(self, message: Message) -> None:
        """Act on one message from the tunnel."""
        kind = message.type
        if kind not in _KNOWN_TYPES:
            if message.ignorable:
                return
            raise ProtocolError(f"message of unknown type {kind} without ignorable set", message)
        if kind == SERVICE_IDS:
            if self._on_service_ids is not None:
                self._on_service_ids(list(message.availableServiceIds))
            return
        if kind == SESSION_RESET:
            logger.info("the service reset the session: closing every connection")
            for name in list(self.streams):
                self._end_stream(name)
            return
        service = self._service_of(message)
        if service is None:
            if not self._warned_unrouted:
                self._warned_unrouted = True
                logger.warning(
                    "dropped messages the peer sent for %s; this side serves %s",
                    repr(message.serviceId) if message.serviceId else "no service (a V1 peer)",
                    ", ".join(self.services) or "nothing",
                )
            return
        await self._stream_message(kind, service, message)

    async def _stream_message(self, kind: int, service: str, message: Message) -> None:
        if kind == DATA:
            await self._data(service, message)
        elif kind == CONNECTION_RESET:
            self._connection_reset(service, message)
        elif kind == STREAM_RESET:
            stream = self.streams.get(service)
            if stream is not None and stream.stream_id == message.streamId:
                logger.info("%s: the peer reset stream %d", service or "service", message.streamId)
                self._end_stream(service)
        elif self.mode == "source":
            # Only a source starts streams and connections (V3 guide, "StreamStart"): an error; end it.
            logger.warning("%s: the peer sent %s to a source", service or "service", Message.Type.Name(kind))
            self._end_stream(service)
        elif kind == STREAM_START:
            self._stream_start(service, message)
        else:
            await self._connection_start(service, message)

    def reset_for(self, error: ProtocolError) -> None:
        """A bad message from the peer: end the connection it names, or every stream if it names none."""
        message = error.message
        service = None if message is None else self._service_of(message)
        if message is None or service is None:
            logger.warning("undecodable message from the peer (%s): resetting every stream", error)
            for name in list(self.streams):
                self.spawn(self._reset_stream(name))
            return
        logger.warning(
            "%s: bad message from the peer (%s): resetting its connection", service or "service", error
        )
        stream = self.streams.get(service)
        connection = stream.connections.get(message.connectionId or 1) if stream else None
        if stream is not None and connection is not None and stream.stream_id == message.streamId:
            self.spawn(self._local_closed(connection))

    async def _reset_stream(self, service: str) -> None:
        stream = self.streams.get(service)
        if stream is None:
            return
        self._end_stream(service)
        with contextlib.suppress(Exception):
            await self._send(encode(self._message(STREAM_RESET, service, stream)))

    async def _data(self, service: str, message: Message) -> None:
        stream = self.streams.get(service)
        connection = None
        if stream is not None and stream.stream_id == message.streamId:
            connection_id = (message.connectionId or 1) if stream.form >= 3 else 1
            connection = stream.connections.get(connection_id)
        if connection is None:
            await self._answer_unknown(service, message)
            return
        writer = connection.writer
        if writer is None:
            connection.pending.append(message.payload)
            return
        writer.write(message.payload)
        transport = writer.transport
        if transport.get_write_buffer_size() > _HIGH_WATER:
            try:
                await writer.drain()
            except OSError:
                await self._local_closed(connection)

    async def _answer_unknown(self, service: str, message: Message) -> None:
        """A destination tells the peer about data for a stream it does not have (it reconnected, or the
        connection failed), so the source's client is not left waiting; once per stream and connection.
        A source owns its streams: it only drops such data (stale, per the guides)."""
        if self.mode != "destination":
            return
        key = (service, message.streamId, message.connectionId)
        if key in self._answered or len(self._answered) >= _MAX_ANSWERED:
            return
        self._answered.add(key)
        form = 3 if message.connectionId else (2 if message.serviceId else 1)
        stream = Stream(message.streamId, min(form, self.version))
        kind = CONNECTION_RESET if stream.form >= 3 else STREAM_RESET
        with contextlib.suppress(Exception):
            await self._send(encode(self._message(kind, service, stream, message.connectionId)))

    def _connection_reset(self, service: str, message: Message) -> None:
        stream = self.streams.get(service)
        if stream is None or stream.stream_id != message.streamId:
            return
        connection = stream.connections.get(message.connectionId or 1)
        if connection is not None:
            logger.info("%s: the peer closed connection %d", service or "service", connection.connection_id)
            self._forget(connection)

    def _stream_start(self, service: str, message: Message) -> None:
        """A destination starts a new stream for the service, replacing the one it had (V2 guide)."""
        self._end_stream(service)
        form = 3 if message.connectionId else 2
        if not message.serviceId or self.version == 1:
            form = 1
        stream = self.streams[service] = Stream(message.streamId, min(form, self.version))
        logger.info("%s: stream %d started", service or "service", message.streamId)
        self._open(service, stream, message.connectionId or 1)

    async def _connection_start(self, service: str, message: Message) -> None:
        stream = self.streams.get(service)
        connection_id = message.connectionId or 1
        if stream is None or stream.stream_id != message.streamId or stream.form < 3:
            await self._answer_unknown(service, message)
            return
        if connection_id in stream.connections:
            # V3 guide, "ConnectionStart": an id already in use is an error, answered with its reset.
            self._forget(stream.connections[connection_id])
            with contextlib.suppress(Exception):
                await self._send(encode(self._message(CONNECTION_RESET, service, stream, connection_id)))
            return
        self._open(service, stream, connection_id)

    def _open(self, service: str, stream: Stream, connection_id: int) -> None:
        connection = LocalConnection(service, stream.stream_id, connection_id)
        stream.connections[connection_id] = connection
        self.spawn(self._open_destination(service, stream, connection))


__all__ = ["LocalConnection", "Multiplexer", "Stream"]
