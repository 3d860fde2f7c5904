"""The secure tunneling data plane, offline: WebSocket upgrades on ``/tunnel`` and the relay between a
tunnel's source and destination, as the protocol guides describe the service
(aws-samples/aws-iot-securetunneling-localproxy: V1/V2/V3WebSocketProtocolGuide.md, docs/COMPATIBILITY.md,
docs/MULTIPLEXING.md, docs/SECURITY.md). Any conforming client works against it unmodified.

Usage (``LocalAws`` and the pytest fixtures start it with the control plane):

>>> from cdk_secure_tunnel.emulator import ManualClock, TunnelEmulator
>>> from websockets.sync.client import connect
>>> emulator = TunnelEmulator(clock=ManualClock())
>>> _ = emulator.start()  # control plane and data plane (tls=True for wss://)
>>> plane = emulator.data_plane
>>> plane.url == f"ws://{plane.endpoint}"  # the URL is in CDK_SECURE_TUNNEL_DATA_ENDPOINT; -e takes endpoint
True
>>> plane.ca_file is None  # with TLS: the CA a client trusts
True
>>> tunnel = emulator.handle("OpenTunnel", {"destinationConfig": {"services": ["SSH"]}})
>>> with connect(
...     f"{plane.url}/tunnel?local-proxy-mode=source",
...     subprotocols=["aws.iot.securetunneling-3.0"],
...     additional_headers={"access-token": tunnel["sourceAccessToken"]},
... ) as source:
...     plane.wait_for(lambda: plane.connected(tunnel["tunnelId"], "source"))
True
>>> [(record.type, record.service_ids) for record in plane.log(tunnel["tunnelId"])]
[('SERVICE_IDS', ('SSH',))]
>>> emulator.stop()

Reference local proxy against it: ``AWSIOT_TUNNEL_ACCESS_TOKEN=... localproxy -e 127.0.0.1:PORT -s 5555``
(TLS: start with ``tls=True`` / ``--tls`` and give ``-c`` a directory holding ``ca_file``, rehashed with
``openssl rehash``; or ``-k`` to skip verification).

Faults and inspection, all callable from any thread while it serves:

- ``refuse_handshakes(times=1, status=503)``: the next handshakes get that 5xx (retry with backoff).
- ``drop(tunnel_id, mode)``: cut that side's connection without a close frame, as a network does.
- ``latency``: seconds added to every relayed frame (real time), ``0`` by default.
- ``limit_bandwidth(tunnel_id, bytes_per_second)``: cap a tunnel (both directions together; the service
  caps every tunnel); ``tunnel_id=None`` caps every tunnel, ``bytes_per_second=None`` lifts the cap.
- ``reset_session(tunnel_id)``: SESSION_RESET to both sides (the service's "internal error").
- ``rotation_drops_connections``: see "Decisions" (default False).
- ``log(tunnel_id)``: ``LoggedMessage`` records (origin, type, stream/connection/service id, payload size;
  never payload bytes) of every message from either side or from the service, oldest first.
- ``holds_session(tunnel_id)``: whether the tunnel's streams are still held (not once it has closed or
  expired and its last connection has gone).
- ``connected(tunnel_id, mode)``; ``wait_for(condition, timeout)`` waits (on events, not polling) until
  ``condition()`` holds after a connection change or a logged message.

Handshake refusals (4xx, with a text body saying what is wrong; the ``channel-id`` header is on every
answer): 400 path other than ``/tunnel``, missing or wrong ``local-proxy-mode``, several tokens, a
malformed or repeated ``client-token``, no offered subprotocol among ``aws.iot.securetunneling-3.0``,
``-2.0``, ``-1.0``, mode not the token's; 401 no token; 403 unknown, spent, revoked or closed-tunnel
token, or client token mismatch; 409 client token already bound to another access token; 431 request over
4 KB (request line and headers as parsed; websockets keeps no raw copy). 5xx only when injected. A
refused handshake spends no token. The highest version offered is chosen.

After the handshake, v2 and v3 connections get SERVICE_IDS (the tunnel's services; v1 has no such
message). Messages are relayed in order and unchanged: a frame of whole messages goes on as it came, and
messages that straddle frames are joined into frames of at most 131,076 bytes (the service "may aggregate
data", but a message is never merged or split). A connection is closed (1008 unless noted) when it sends a
text frame
(1003), a frame over 131,076 bytes (1009), a message over 64,512 payload bytes, an undecodable message
or one with unknown fields, type UNKNOWN, SESSION_RESET or SERVICE_IDS, a stream message with stream id 0,
STREAM_START or CONNECTION_START from the destination, an unknown type without ``ignorable``, a service id
not among the tunnel's, stream messages alternating between carrying a service id and not, or a message
naming a service no STREAM_START has named (V2 guide, "Tunneling data streams"; a message without a
service id is a V1 peer's and passes). Valid messages before the offending one are relayed. Pings get
pongs (websockets answers them); the data plane never pings.

Decisions (the guides are silent or only hint; each with its source):

- A peer connecting for the first time: the other side is told nothing. Peers "have no knowledge if the
  other side has disconnected" (V2 guide, "Recovering from a crash"), and no message type announces a
  peer. Messages sent while the other side is away are dropped (``LoggedMessage.delivered_to`` is None).
- A side is connected (DescribeTunnel's CONNECTED, ``connected()``, frames relayed to it) from the end of
  its handshake, before SERVICE_IDS reaches it: once the handshake is acknowledged "we can say the tunnel
  connection is established. After this, the Secure Tunneling service will send back control message
  SERVICE_IDS" (V2 guide, "Step 1"). A client that has read SERVICE_IDS thus finds itself CONNECTED;
  SERVICE_IDS is still the first message it gets.
- A peer disconnecting: nothing is sent to the other side ("If there is a network issue with the
  WebSocket connection, no control message is necessary", V3 guide), and DescribeTunnel shows it
  DISCONNECTED.
- A side reconnecting, or a second connection of a mode replacing the live one (client token reconnect,
  or a rotated token): the older connection is closed (1000), and the other side gets STREAM_RESET for
  every active stream, which the service then forgets. Source: the StreamReset reference, "The proxy
  server may generate StreamReset messages ... The tunnel peer is replaced (likely has reconnected) by a
  new peer bearing a valid access token", and the V2 guide's "upon reconnection, invalidate and reset all
  active streams".
- Rotating a mode's token revokes it for new handshakes; a live connection made with it goes on until
  replaced (the RotateTunnelAccessToken reference: the new token is "for clients to use when
  reconnecting", and the replacement rule above covers the new token's arrival). Tests that want the
  opposite set ``rotation_drops_connections = True``: the old connection is then closed (1008).
- CloseTunnel, and a tunnel's lifetime ending on the emulator's clock (a ``ManualClock`` included), close
  both connections (1000, reason saying which): at once after CloseTunnel, within one watch interval
  (50 ms of real time) after the clock moves; new handshakes get 403, and DescribeTunnel shows both
  sides DISCONNECTED as of the closing time.
- Messages are checked against the v3 schema whatever the negotiated version: the guides make versions
  interoperate by peers ignoring fields they do not know (V2 guide, "Backward compatibility"), so the
  service carries them.

Why asyncio on one thread (beside the control plane's ThreadingHTTPServer): a tunnel is two long-lived
connections copying frames between them, which is what an event loop does best; ``websockets`` is
asyncio-native, with C-accelerated masking, and gives per-connection flow control (``max_queue`` stops
reading a connection whose frames are not consumed; ``send`` waits while a peer's write buffer is over
``write_limit``). A connection's frames go straight to its peer, the reading of that connection waiting
while the peer's write buffer is full; with latency or a bandwidth cap they pass through a bounded queue
and a forwarding task of the connection's own. Either way a slow reader holds back only the side that
writes to it, never other connections or tunnels. Threads would need two per connection and locks around
every peer change for no gain: the relay never blocks on anything but sockets.

Tokens never reach a log: the websockets logger here is capped at WARNING (its DEBUG output would
carry the request headers), refusal messages never quote a token, and ``Upgrade`` leaves it out of its repr.
"""

import asyncio
import contextlib
import itertools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from ..protocol import MAX_FRAME_PAYLOAD, Message, MessageReader, ProtocolError, encode
from ..protocol.handshake import CHANNEL_ID_HEADER, SUBPROTOCOLS, Mode
from .relay import (
    Bandwidth,
    LoggedMessage,
    PeerState,
    TrafficLog,
    TunnelSession,
    frames,
    logged,
    other,
)
from .tls import ServerCredentials
from .upgrade import Refusal, Upgrade, is_websocket_upgrade, parse_upgrade, websockets_accepts

__all__ = ["Authority", "DataPlane", "LoggedMessage", "Refusal"]

# How often live connections are checked against the store (closed, expired, revoked tokens).
WATCH_INTERVAL = 0.05
# Per connection: frames buffered before reading from that client stops, frames queued for its peer,
# and bytes written ahead of a slow reader before the relay waits for it.
MAX_QUEUED_FRAMES = 8
WRITE_LIMIT = 4 * MAX_FRAME_PAYLOAD
# Close codes (RFC 6455): normal end, going away, unsupported data, policy violation.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003
CLOSE_VIOLATION = 1008
# Seconds a closing connection waits for the client's close frame (or TCP close) before cutting it.
CLOSE_TIMEOUT = 2.0
SWITCHING_PROTOCOLS = 101
# A close frame's reason is at most 123 bytes.
_MAX_REASON = 123

Ending = Literal["closed", "expired", "revoked"]
_ENDINGS: dict[str, tuple[int, str]] = {
    "closed": (CLOSE_NORMAL, "The tunnel was closed"),
    "expired": (CLOSE_NORMAL, "The tunnel's lifetime ended"),
    "revoked": (CLOSE_VIOLATION, "The access token was rotated: reconnect with the new token"),
}

_T = TypeVar("_T")
_LOG = logging.getLogger(__name__)
# websockets logs request headers, access tokens included, at DEBUG, and every connection at INFO: this
# child logger passes on only its warnings and errors.
_WEBSOCKETS_LOG = logging.getLogger(f"{__name__}.websockets")
_WEBSOCKETS_LOG.setLevel(logging.WARNING)


class Authority(Protocol):
    """What the data plane asks the control plane's store (``TunnelEmulator`` implements it)."""

    def admit_connection(
        self, token: str, mode: Mode, client_token: str | None
    ) -> tuple[str, tuple[str, ...]]:
        """Spend ``token`` for a handshake: its tunnel id and services, or ``Refusal``."""
        ...

    def connection_ending(self, tunnel_id: str, mode: Mode, token: str, revoke_live: bool) -> Ending | None:
        """Why a live connection must end now (tunnel closed or expired, token revoked), or None."""
        ...

    def set_connected(self, tunnel_id: str, mode: Mode, connected: bool) -> None:
        """Record a side's connection state for DescribeTunnel."""
        ...


@dataclass(frozen=True)
class _Admission:
    upgrade: Upgrade
    tunnel_id: str
    services: tuple[str, ...]


@dataclass(eq=False)
class _Peer:
    """One live WebSocket connection to a tunnel."""

    connection: ServerConnection
    mode: Mode
    token: str = field(repr=False)  # the client access token: never in a traceback
    version: int
    outbox: "asyncio.Queue[tuple[float, bytes] | None]" = field(
        default_factory=lambda: asyncio.Queue(MAX_QUEUED_FRAMES)
    )
    reader: MessageReader = field(default_factory=MessageReader)
    state: PeerState = field(default_factory=PeerState)
    # Frames put in ``outbox`` and not yet delivered: while any are, later frames queue behind them.
    queued: int = 0


class _Session(TunnelSession):
    """A tunnel's streams and rules, with its live connections and bandwidth cap."""

    def __init__(self, tunnel_id: str, services: tuple[str, ...], bandwidth: float | None) -> None:
        super().__init__(tunnel_id, services)
        self.peers: dict[Mode, _Peer] = {}
        self.bandwidth = None if bandwidth is None else Bandwidth(bandwidth)


class DataPlane:
    """Serves the data plane for ``authority``'s tunnels from an event loop in a background thread."""

    def __init__(self, authority: Authority) -> None:
        self._authority = authority
        self.latency = 0.0
        self.rotation_drops_connections = False
        self._log = TrafficLog()
        self._live: set[tuple[str, Mode]] = set()
        self._refusals: deque[Refusal] = deque()
        self._refusals_lock = threading.Lock()
        self._bandwidth_limits: dict[str | None, float] = {}
        # Loop-only state.
        self._sessions: dict[str, _Session] = {}
        self._admissions: dict[ServerConnection, _Admission] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Server | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._credentials: ServerCredentials | None = None
        self._address: tuple[str, int] | None = None

    # -- serving ---------------------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0, *, tls: bool = False) -> str:
        """Serve on ``host:port`` (0: any free port), ``wss://`` with a generated certificate when ``tls``;
        returns ``url``."""
        if self._loop is not None:
            raise RuntimeError(f"The data plane already serves on {self.url}")
        if tls:
            self._credentials = ServerCredentials.generate(sorted({host, "127.0.0.1", "localhost"}))
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="tunnel-data-plane", daemon=True)
        self._thread.start()
        self._loop = loop
        try:
            asyncio.run_coroutine_threadsafe(self._open(host, port), loop).result(timeout=30)
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self) -> None:
        """Stop serving, closing every connection (1001). Safe to call when not started."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            asyncio.run_coroutine_threadsafe(self._close(), loop).result(timeout=30)
            loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        self._loop = self._thread = self._server = None
        self._address = None
        with self._log.changed:
            self._live.clear()
        if self._credentials is not None:
            self._credentials.remove()
            self._credentials = None

    @property
    def endpoint(self) -> str:
        """``host:port``, what the reference proxy's ``-e`` takes."""
        if self._address is None:
            raise RuntimeError("The data plane is not started")
        host, port = self._address
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        """``ws://host:port`` (``wss://`` with TLS): what ``CDK_SECURE_TUNNEL_DATA_ENDPOINT`` holds."""
        return f"{'wss' if self.tls else 'ws'}://{self.endpoint}"

    @property
    def tls(self) -> bool:
        return self._credentials is not None

    @property
    def ca_file(self) -> str | None:
        """With TLS, the PEM file of the CA that signed the data plane's certificate; else None."""
        return None if self._credentials is None else self._credentials.ca_file

    # -- faults and inspection -------------------------------------------------------------------------------

    def refuse_handshakes(self, times: int = 1, status: int = 503, message: str | None = None) -> None:
        """Answer the next ``times`` handshakes with ``status`` (5xx: clients retry with backoff)."""
        if times < 0:
            raise ValueError("times must not be negative")
        if not 500 <= status <= 599:
            raise ValueError(f"status must be a 5xx (the service's 4xx come from real causes), got {status}")
        refusal = Refusal(status, message or f"Injected failure {status}: retry with backoff")
        with self._refusals_lock:
            self._refusals.extend([refusal] * times)

    def drop(self, tunnel_id: str, mode: Mode) -> bool:
        """Cut ``mode``'s connection to the tunnel without a close frame; False if it had none."""
        return self._call(lambda: self._drop(tunnel_id, mode))

    def limit_bandwidth(self, tunnel_id: str | None, bytes_per_second: float | None) -> None:
        """Cap ``tunnel_id`` (None: each tunnel) at ``bytes_per_second`` both ways together; None lifts it."""
        if bytes_per_second is not None and bytes_per_second <= 0:
            raise ValueError("bytes_per_second must be positive")
        self._call(lambda: self._limit_bandwidth(tunnel_id, bytes_per_second))

    def reset_session(self, tunnel_id: str) -> None:
        """Send SESSION_RESET to both sides of the tunnel, ending every stream."""
        self._call(lambda: self._spawn(self._reset_session(tunnel_id)))

    def log(self, tunnel_id: str) -> list[LoggedMessage]:
        """Every message of the tunnel so far, oldest first (payload sizes, never payload bytes)."""
        return self._log.records(tunnel_id)

    def holds_session(self, tunnel_id: str) -> bool:
        """Whether the tunnel's session (its streams and live connections) is held; a closed or expired
        tunnel's goes with its last connection, so a long-running emulator does not grow with them."""
        # Read from this thread, not the loop's: a dict lookup is atomic, and ``wait_for`` conditions call
        # it while holding the lock the loop takes to log.
        return tunnel_id in self._sessions

    def connected(self, tunnel_id: str, mode: Mode) -> bool:
        """Whether ``mode`` has a live connection to the tunnel."""
        with self._log.changed:
            return (tunnel_id, mode) in self._live

    def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait until ``condition()`` is true, re-checking after every connection change and logged
        message; returns its last value (False after ``timeout`` seconds)."""
        with self._log.changed:
            return self._log.changed.wait_for(condition, timeout)

    def refresh(self) -> None:
        """Check live connections against the store now (the control plane calls it after CloseTunnel and
        RotateTunnelAccessToken; the watch does it every 50 ms anyway)."""
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(self._watch_once)

    def reset(self) -> None:
        """Close every connection (1001) and forget sessions, logs, faults and settings."""
        self.latency = 0.0
        self.rotation_drops_connections = False
        with self._refusals_lock:
            self._refusals.clear()
        if self._loop is not None:
            self._call(self._reset)
        self._bandwidth_limits.clear()
        self._log.clear()

    # -- the loop's side -------------------------------------------------------------------------------------

    def _call(self, function: Callable[[], _T]) -> _T:
        """Run ``function`` on the loop and return its result."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("The data plane is not started")

        async def call() -> _T:
            return function()

        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=30)

    async def _open(self, host: str, port: int) -> None:
        self._server = await serve(
            self._serve,
            host,
            port,
            ssl=None if self._credentials is None else self._credentials.server_context(),
            subprotocols=[Subprotocol(name) for name in SUBPROTOCOLS],
            select_subprotocol=self._select_subprotocol,
            process_request=self._process_request,
            process_response=self._process_response,
            compression=None,
            ping_interval=None,
            close_timeout=CLOSE_TIMEOUT,
            max_size=MAX_FRAME_PAYLOAD,
            max_queue=MAX_QUEUED_FRAMES,
            write_limit=WRITE_LIMIT,
            logger=_WEBSOCKETS_LOG,
        )
        address = self._server.sockets[0].getsockname()
        self._address = (address[0], address[1])
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self._sessions.clear()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)

    # Handshake ----------------------------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if not is_websocket_upgrade(request.headers):
            return None  # websockets answers what is not a WebSocket upgrade
        with self._refusals_lock:
            injected = self._refusals.popleft() if self._refusals else None
        if injected is not None:
            return connection.respond(injected.status, injected.message + "\n")
        try:
            upgrade = parse_upgrade(request.path, request.headers)
            if not websockets_accepts(request):
                return None  # a malformed upgrade: websockets answers it, before the token is spent
            tunnel_id, services = self._authority.admit_connection(
                upgrade.token, upgrade.mode, upgrade.client_token
            )
        except Refusal as refusal:
            _LOG.info("Refused a data plane handshake: %s", refusal)
            return connection.respond(refusal.status, refusal.message + "\n")
        self._admissions[connection] = _Admission(upgrade, tunnel_id, services)
        return None

    def _select_subprotocol(
        self, connection: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        admission = self._admissions.get(connection)
        return None if admission is None else Subprotocol(admission.upgrade.subprotocol)

    def _process_response(self, connection: ServerConnection, request: Request, response: Response) -> None:
        response.headers[CHANNEL_ID_HEADER] = _channel_id()
        if response.status_code != SWITCHING_PROTOCOLS:
            # websockets itself refused what passed the checks here (a malformed WebSocket request).
            self._admissions.pop(connection, None)

    # Connections --------------------------------------------------------------------------------------------

    async def _serve(self, connection: ServerConnection) -> None:
        admission = self._admissions.pop(connection, None)
        if admission is None:
            return
        upgrade = admission.upgrade
        session = self._sessions.get(admission.tunnel_id)
        if session is None:
            limit = self._bandwidth_limit(admission.tunnel_id)
            session = _Session(admission.tunnel_id, admission.services, limit)
            self._sessions[admission.tunnel_id] = session
        session.services = admission.services
        peer = _Peer(connection, upgrade.mode, upgrade.token, upgrade.version)
        # The peer joins before its client can read SERVICE_IDS (see "Decisions"), with the message's
        # record already logged. SERVICE_IDS still reaches it first: nothing else runs on the loop until
        # ``send`` has written it (websockets writes a message before it can yield to the loop).
        greeting = Message(type=Message.SERVICE_IDS, availableServiceIds=session.services)
        if peer.version >= 2:
            self._log.add(session.tunnel_id, [logged("service", greeting, peer.mode)])
        self._join(session, peer)
        if peer.version >= 2:
            await self._write(peer, greeting)
        forwarder = asyncio.get_running_loop().create_task(self._forward(session, peer))
        try:
            await self._receive(session, peer)
        except ConnectionClosed:
            pass
        finally:
            try:
                peer.outbox.put_nowait(None)
            except asyncio.QueueFull:
                forwarder.cancel()
            if session.peers.get(peer.mode) is peer:
                self._leave(session, peer)

    def _join(self, session: _Session, peer: _Peer) -> None:
        """Make ``peer`` its mode's live connection, replacing any older one (see the module's decisions)."""
        previous = session.peers.get(peer.mode)
        session.peers[peer.mode] = peer
        self._set_live(session.tunnel_id, peer.mode, True)
        if peer.mode in session.seen_modes:
            remaining = session.peers.get(other(peer.mode))
            for reset in session.end_streams():
                if remaining is not None:
                    self._spawn(self._send(session, remaining, reset))
        session.seen_modes.add(peer.mode)
        if previous is not None:
            self._spawn(_close(previous.connection, CLOSE_NORMAL, "Replaced by a newer connection"))

    def _leave(self, session: _Session, peer: _Peer) -> None:
        del session.peers[peer.mode]
        self._set_live(session.tunnel_id, peer.mode, False)

    def _set_live(self, tunnel_id: str, mode: Mode, live: bool) -> None:
        self._authority.set_connected(tunnel_id, mode, live)
        with self._log.changed:
            if live:
                self._live.add((tunnel_id, mode))
            else:
                self._live.discard((tunnel_id, mode))
            self._log.changed.notify_all()

    async def _receive(self, session: _Session, peer: _Peer) -> None:
        """Check and queue everything ``peer`` sends, closing it at the first violation."""
        connection = peer.connection
        async for data in connection:
            if isinstance(data, str):
                await _close(connection, CLOSE_UNSUPPORTED, "Text frames are not allowed: send binary frames")
                return
            try:
                messages, raw, ends = peer.reader.feed_wire(data)
            except ProtocolError as error:
                await _close(connection, CLOSE_VIOLATION, str(error))
                return
            violation: str | None = None
            receiver: Mode | None = other(peer.mode) if other(peer.mode) in session.peers else None
            records: list[LoggedMessage] = []
            for index, message in enumerate(messages):
                violation = session.check(message, peer.mode, peer.state)
                if violation is not None:
                    # What came before the offending message was valid and is relayed, in order.
                    kept = ends[index - 1] if index else 0
                    raw, ends = raw[:kept], ends[:index]
                    break
                session.track(message)
                records.append(logged(peer.mode, message, receiver))
            if records:
                self._log.add(session.tunnel_id, records)
            if raw:
                arrived = time.monotonic()
                for frame in frames(raw, ends):
                    if peer.queued or self.latency > 0 or session.bandwidth is not None:
                        peer.queued += 1
                        await peer.outbox.put((arrived, frame))
                    else:
                        # No fault to apply and nothing queued ahead: straight to the other side.
                        await self._deliver(session, peer, frame)
            if violation is not None:
                await _close(connection, CLOSE_VIOLATION, violation)
                return

    async def _forward(self, session: _Session, peer: _Peer) -> None:
        """Deliver ``peer``'s queued frames to the other side, after the latency and bandwidth faults."""
        while (item := await peer.outbox.get()) is not None:
            arrived, frame = item
            delay = arrived + self.latency - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if session.bandwidth is not None:
                await session.bandwidth.take(len(frame))
            await self._deliver(session, peer, frame)
            peer.queued -= 1

    @staticmethod
    async def _deliver(session: _Session, peer: _Peer, frame: bytes) -> None:
        """Send ``peer``'s frame to the other side if it is connected (else it is dropped)."""
        receiver = session.peers.get(other(peer.mode))
        if receiver is not None:
            with contextlib.suppress(ConnectionClosed):
                await receiver.connection.send(frame)

    async def _send(self, session: _Session, peer: _Peer, message: Message) -> None:
        """Send a message of the service's own to ``peer``."""
        self._log.add(session.tunnel_id, [logged("service", message, peer.mode)])
        await self._write(peer, message)

    @staticmethod
    async def _write(peer: _Peer, message: Message) -> None:
        with contextlib.suppress(ConnectionClosed):
            await peer.connection.send(encode(message))

    # The watch and the faults -------------------------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            self._watch_once()

    def _watch_once(self) -> None:
        """End connections whose tunnel closed or expired, or whose token was revoked (when that drops)."""
        for session in list(self._sessions.values()):
            for peer in list(session.peers.values()):
                ending = self._authority.connection_ending(
                    session.tunnel_id, peer.mode, peer.token, self.rotation_drops_connections
                )
                if ending is not None:
                    code, reason = _ENDINGS[ending]
                    self._leave(session, peer)
                    self._spawn(_close(peer.connection, code, reason))
            # A closed or expired tunnel admits no connection again, so its streams are of no more use
            # (the token is not asked about: without revoke_live only the tunnel's state counts).
            ending = self._authority.connection_ending(session.tunnel_id, "source", "", revoke_live=False)
            if not session.peers and ending is not None:
                del self._sessions[session.tunnel_id]

    def _drop(self, tunnel_id: str, mode: Mode) -> bool:
        session = self._sessions.get(tunnel_id)
        peer = None if session is None else session.peers.get(mode)
        if session is None or peer is None:
            return False
        self._leave(session, peer)
        peer.connection.transport.abort()
        return True

    def _limit_bandwidth(self, tunnel_id: str | None, bytes_per_second: float | None) -> None:
        if bytes_per_second is None:
            self._bandwidth_limits.pop(tunnel_id, None)
        else:
            self._bandwidth_limits[tunnel_id] = bytes_per_second
        for session in self._sessions.values():
            if tunnel_id is None or session.tunnel_id == tunnel_id:
                limit = self._bandwidth_limit(session.tunnel_id)
                session.bandwidth = None if limit is None else Bandwidth(limit)

    def _bandwidth_limit(self, tunnel_id: str) -> float | None:
        return self._bandwidth_limits.get(tunnel_id, self._bandwidth_limits.get(None))

    async def _reset_session(self, tunnel_id: str) -> None:
        session = self._sessions.get(tunnel_id)
        if session is None:
            return
        session.active_streams.clear()
        for peer in list(session.peers.values()):
            await self._send(session, peer, Message(type=Message.SESSION_RESET))

    def _reset(self) -> None:
        for session in self._sessions.values():
            for peer in list(session.peers.values()):
                self._leave(session, peer)
                self._spawn(_close(peer.connection, CLOSE_GOING_AWAY, "The emulator was reset"))
        self._sessions.clear()


# Tasks started and not awaited: held here so they are not garbage collected while they run.
_TASKS: set["asyncio.Task[None]"] = set()
_CHANNEL_COUNTER = itertools.count(1)


def _channel_id() -> str:
    """A unique id for one answer, shaped like the service's ``channel-id`` header."""
    return f"{uuid.uuid4().hex[:16]}-{next(_CHANNEL_COUNTER):08x}"


async def _close(connection: ServerConnection, code: int, reason: str) -> None:
    encoded = reason.encode()[:_MAX_REASON].decode(errors="ignore")
    with contextlib.suppress(ConnectionClosed):
        await connection.close(code, encoded)
