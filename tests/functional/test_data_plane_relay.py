"""The data plane after the handshake, spoken by raw protocol clients: relaying in both directions, the
protocol's limits, what a peer is told when the other side comes and goes, connection states in
DescribeTunnel, close, expiry and rotation under live connections, faults, and the traffic log."""

import os
import random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import boto3
import botocore.session
import pytest
from cdk_secure_tunnel.emulator import DataPlane, LocalAws, ManualClock, TunnelEmulator
from cdk_secure_tunnel.protocol import MAX_FRAME_PAYLOAD, MAX_MESSAGE_PAYLOAD, Message, encode
from support.data_plane import (
    ABNORMAL,
    TIMEOUT,
    Peer,
    Tunnel,
    data,
    describe,
    open_tunnel,
    peer,
    raw_message,
    stream_start,
)

CONNECTION_STATUSES = (
    botocore.session.get_session().get_service_model("iotsecuretunneling").shape_for("ConnectionStatus")
)


@pytest.fixture
def plane(tunnel_emulator: TunnelEmulator) -> DataPlane:
    return tunnel_emulator.data_plane


@pytest.fixture
def clock(tunnel_emulator: TunnelEmulator) -> ManualClock:
    assert isinstance(tunnel_emulator.clock, ManualClock)
    return tunnel_emulator.clock


@pytest.fixture
def tunnel(local_aws: LocalAws) -> Tunnel:
    return open_tunnel(services=("SSH", "HTTP"))


@pytest.fixture
def sides(plane: DataPlane, tunnel: Tunnel) -> Iterator[tuple[Peer, Peer]]:
    """Both sides connected, SERVICE_IDS read."""
    with (
        peer(plane.url, "source", tunnel.source_token) as source,
        peer(plane.url, "destination", tunnel.destination_token) as destination,
    ):
        assert source.receive().type == destination.receive().type == Message.SERVICE_IDS
        yield source, destination


def connection_state(tunnel: Tunnel, mode: str) -> dict[str, object]:
    state = describe(tunnel)[f"{mode}ConnectionState"]
    assert state["status"] in CONNECTION_STATUSES.enum
    return dict(state)


# -- relaying ----------------------------------------------------------------------------------------------


def test_bytes_cross_both_ways_whatever_the_frame_boundaries(
    sides: tuple[Peer, Peer], plane: DataPlane, tunnel: Tunnel
) -> None:
    source, destination = sides
    chunks = random.Random(7)  # noqa: S311  (reproducible cut points, not secrets)
    upstream = os.urandom(300_000)
    wire = encode(stream_start(1)) + b"".join(
        encode(data(1, upstream[offset : offset + 20_000])) for offset in range(0, len(upstream), 20_000)
    )
    # Frames cut at arbitrary offsets: messages straddle frames, some frames hold several messages.
    offset = 0
    while offset < len(wire):
        size = chunks.randint(1, 50_000)
        source.send_raw(wire[offset : offset + size])
        offset += size
    assert destination.receive() == stream_start(1)
    assert destination.receive_payload(len(upstream)) == upstream
    downstream = os.urandom(100_000)
    destination.send(*[data(1, downstream[offset : offset + 1000]) for offset in range(0, 100_000, 1000)])
    assert source.receive_payload(len(downstream)) == downstream
    sizes = [record.payload_size for record in plane.log(tunnel.tunnel_id) if record.origin == "source"]
    assert sizes == [0] + [20_000] * 15


def test_messages_keep_their_fields_and_order(sides: tuple[Peer, Peer]) -> None:
    source, destination = sides
    sent = [stream_start(5, "HTTP", 1), data(5, b"GET /", "HTTP", 1), data(5, b"HTTP/1.1", "HTTP", 1)]
    for message in sent:
        source.send(message)
    assert [destination.receive() for _ in sent] == sent


def test_largest_messages_and_frames_pass(sides: tuple[Peer, Peer]) -> None:
    source, destination = sides
    biggest = data(1, b"x" * MAX_MESSAGE_PAYLOAD)
    source.send(stream_start(1))
    frame = encode(biggest) * 2
    assert len(frame) <= MAX_FRAME_PAYLOAD
    source.send_raw(frame)
    assert destination.receive().type == Message.STREAM_START
    assert destination.receive_payload(2 * MAX_MESSAGE_PAYLOAD) == b"x" * (2 * MAX_MESSAGE_PAYLOAD)


def test_multiple_services_share_the_tunnel(sides: tuple[Peer, Peer]) -> None:
    source, destination = sides
    source.send(
        stream_start(1, "SSH"), stream_start(1, "HTTP"), data(1, b"ssh", "SSH"), data(1, b"http", "HTTP")
    )
    received = [destination.receive() for _ in range(4)]
    assert [(message.serviceId, message.payload) for message in received[2:]] == [
        ("SSH", b"ssh"),
        ("HTTP", b"http"),
    ]
    destination.send(data(1, b"to http", "HTTP"), data(1, b"to ssh", "SSH"))
    assert [source.receive().serviceId for _ in range(2)] == ["HTTP", "SSH"]


def test_v3_connections_multiplex_one_stream(sides: tuple[Peer, Peer]) -> None:
    source, destination = sides
    source.send(
        stream_start(3, "HTTP", 1),
        Message(type=Message.CONNECTION_START, streamId=3, serviceId="HTTP", connectionId=2),
        data(3, b"one", "HTTP", 1),
        data(3, b"two", "HTTP", 2),
        Message(type=Message.CONNECTION_RESET, streamId=3, serviceId="HTTP", connectionId=1),
    )
    received = [destination.receive() for _ in range(5)]
    assert [message.type for message in received] == [
        Message.STREAM_START,
        Message.CONNECTION_START,
        Message.DATA,
        Message.DATA,
        Message.CONNECTION_RESET,
    ]
    assert [message.connectionId for message in received] == [1, 2, 1, 2, 1]
    destination.send(data(3, b"reply two", "HTTP", 2))
    assert source.receive().connectionId == 2


def test_an_ignorable_unknown_type_is_relayed(sides: tuple[Peer, Peer]) -> None:
    source, destination = sides
    source.send(Message(type=42, ignorable=True))  # type: ignore[arg-type]
    assert destination.receive().type == 42


def test_messages_for_an_absent_peer_are_dropped(plane: DataPlane, tunnel: Tunnel) -> None:
    with peer(plane.url, "source", tunnel.source_token) as source:
        source.receive()
        source.send(stream_start(1), data(1, b"nobody listens"))
        assert plane.wait_for(lambda: len(plane.log(tunnel.tunnel_id)) == 3)
        with peer(plane.url, "destination", tunnel.destination_token) as destination:
            assert destination.receive().type == Message.SERVICE_IDS
            source.send(data(1, b"now"))
            assert destination.receive().payload == b"now"
    relayed = [record.delivered_to for record in plane.log(tunnel.tunnel_id) if record.origin == "source"]
    assert relayed == [None, None, "destination"]


def test_pings_get_pongs(sides: tuple[Peer, Peer]) -> None:
    source, _ = sides
    assert source.connection.ping(b"latency").wait(TIMEOUT)


# -- limits: each closes the offending connection ---------------------------------------------------------


def unknown_field(message: Message) -> bytes:
    # Field 15, varint 1: a field the schema does not have.
    return raw_message(message.SerializeToString() + bytes([15 << 3, 1]))


@pytest.mark.parametrize(
    ("frame", "closed"),
    [
        ("text", (1003, "Text frames are not allowed: send binary frames")),
        (b"x" * (MAX_FRAME_PAYLOAD + 1), (1009, "")),
        (raw_message(data(1, b"x" * (MAX_MESSAGE_PAYLOAD + 1)).SerializeToString()), (1008, "exceeds 64512")),
        (unknown_field(data(1, b"x")), (1008, "message has unknown fields")),
        (raw_message(b"\xff\xff\xff"), (1008, "undecodable message")),
        (encode(Message(type=Message.DATA, serviceId="SSH", payload=b"x")), (1008, "DATA with stream id 0")),
        (encode(Message(type=Message.UNKNOWN, streamId=1)), (1008, "message type not set")),
        (encode(Message(type=Message.SESSION_RESET)), (1008, "only the service sends SESSION_RESET")),
        (encode(Message(type=Message.SERVICE_IDS)), (1008, "only the service sends SERVICE_IDS")),
        (encode(Message(type=42)), (1008, "unknown message type 42 without ignorable")),  # type: ignore[arg-type]
        (encode(stream_start(1, "FTP")), (1008, "service id 'FTP' is not one of the tunnel's (SSH, HTTP)")),
        (encode(data(1, b"early")), (1008, "DATA for service 'SSH' before any STREAM_START for it")),
        (
            encode(stream_start(1)) + encode(data(1, b"x", "")),
            (1008, "alternate between having a service id"),
        ),
    ],
    ids=[
        "text frame",
        "frame too big",
        "payload too big",
        "unknown field",
        "undecodable",
        "stream id 0",
        "type unknown",
        "session reset",
        "service ids",
        "unknown type",
        "foreign service",
        "data before stream start",
        "alternating service ids",
    ],
)
def test_a_violation_closes_the_connection(
    sides: tuple[Peer, Peer], plane: DataPlane, tunnel: Tunnel, frame: bytes | str, closed: tuple[int, str]
) -> None:
    source, destination = sides
    source.send_raw(frame)
    code, reason = source.closed()
    assert code == closed[0]
    assert closed[1] in reason
    assert plane.wait_for(lambda: not plane.connected(tunnel.tunnel_id, "source"))
    assert destination.connection.ping().wait(TIMEOUT), "the other side stays connected"


def test_a_destination_may_not_start_streams(sides: tuple[Peer, Peer]) -> None:
    source, destination = sides
    destination.send(stream_start(1))
    assert destination.closed() == (1008, "a destination may not send STREAM_START")
    assert source.connection.ping().wait(TIMEOUT)


def test_valid_messages_before_a_violation_are_relayed(sides: tuple[Peer, Peer]) -> None:
    source, destination = sides
    source.send(stream_start(1), data(1, b"before"), Message(type=Message.SESSION_RESET))
    assert source.closed()[0] == 1008
    assert destination.receive().type == Message.STREAM_START
    assert destination.receive().payload == b"before"


# -- what a peer is told, connection states ------------------------------------------------------------------


def test_connection_states_follow_the_connections(
    plane: DataPlane, tunnel: Tunnel, clock: ManualClock
) -> None:
    created = describe(tunnel)["createdAt"]
    assert connection_state(tunnel, "source") == {"status": "DISCONNECTED", "lastUpdatedAt": created}
    clock.advance(minutes=5)
    with peer(plane.url, "source", tunnel.source_token) as source:
        source.receive()
        state = connection_state(tunnel, "source")
        assert state["status"] == "CONNECTED"
        assert state["lastUpdatedAt"].timestamp() == pytest.approx(clock.now())  # type: ignore[attr-defined]
        assert connection_state(tunnel, "destination")["status"] == "DISCONNECTED"
        clock.advance(minutes=5)
    assert plane.wait_for(lambda: not plane.connected(tunnel.tunnel_id, "source"))
    state = connection_state(tunnel, "source")
    assert state["status"] == "DISCONNECTED"
    assert state["lastUpdatedAt"].timestamp() == pytest.approx(clock.now())  # type: ignore[attr-defined]


def test_a_peer_is_told_nothing_when_the_other_connects_or_leaves(plane: DataPlane, tunnel: Tunnel) -> None:
    with peer(plane.url, "source", tunnel.source_token) as source:
        source.receive()
        with peer(plane.url, "destination", tunnel.destination_token) as destination:
            destination.receive()
        assert plane.wait_for(lambda: not plane.connected(tunnel.tunnel_id, "destination"))
        source.send(stream_start(1))
        assert plane.wait_for(lambda: len(plane.log(tunnel.tunnel_id)) == 3)
    to_source = [record.type for record in plane.log(tunnel.tunnel_id) if record.delivered_to == "source"]
    assert to_source == ["SERVICE_IDS"]


def test_a_reconnecting_side_resets_the_others_streams(plane: DataPlane, tunnel: Tunnel) -> None:
    mine = str(uuid.uuid4())
    with peer(plane.url, "destination", tunnel.destination_token) as destination:
        destination.receive()
        with peer(plane.url, "source", tunnel.source_token, client_token=mine) as source:
            source.receive()
            source.send(
                stream_start(4, "SSH"),
                stream_start(9, "HTTP"),
                Message(type=Message.STREAM_RESET, streamId=9, serviceId="HTTP"),
            )
            for _ in range(3):
                destination.receive()
        assert plane.wait_for(lambda: not plane.connected(tunnel.tunnel_id, "source"))
        # The source's network comes back: same token, same client token.
        with peer(plane.url, "source", tunnel.source_token, client_token=mine) as source:
            assert source.receive().type == Message.SERVICE_IDS
            reset = destination.receive()
            assert (reset.type, reset.streamId, reset.serviceId) == (Message.STREAM_RESET, 4, "SSH")
            assert [record.origin for record in plane.log(tunnel.tunnel_id)][-1] == "service"


def test_a_newer_connection_replaces_the_live_one(plane: DataPlane, tunnel: Tunnel) -> None:
    mine = str(uuid.uuid4())
    with (
        peer(plane.url, "source", tunnel.source_token) as source,
        peer(plane.url, "destination", tunnel.destination_token, client_token=mine) as old,
    ):
        source.receive()
        old.receive()
        source.send(stream_start(2))
        old.receive()
        with peer(plane.url, "destination", tunnel.destination_token, client_token=mine) as new:
            assert new.receive().type == Message.SERVICE_IDS
            assert old.closed() == (1000, "Replaced by a newer connection")
            reset = source.receive()
            assert (reset.type, reset.streamId) == (Message.STREAM_RESET, 2)
            source.send(stream_start(3), data(3, b"to the new one"))
            assert new.receive().streamId == 3
            assert new.receive().payload == b"to the new one"
            assert connection_state(tunnel, "destination")["status"] == "CONNECTED"


# -- close, expiry, rotation under live connections --------------------------------------------------------


def test_closing_the_tunnel_ends_both_connections(
    sides: tuple[Peer, Peer], plane: DataPlane, tunnel: Tunnel
) -> None:
    source, destination = sides
    boto3.client("iotsecuretunneling").close_tunnel(tunnelId=tunnel.tunnel_id)
    assert source.closed() == (1000, "The tunnel was closed")
    assert destination.closed() == (1000, "The tunnel was closed")
    described = describe(tunnel)
    assert described["sourceConnectionState"]["status"] == "DISCONNECTED"
    assert described["destinationConnectionState"]["lastUpdatedAt"] == described["lastUpdatedAt"]


def test_a_closed_tunnels_session_is_let_go(
    sides: tuple[Peer, Peer], plane: DataPlane, tunnel: Tunnel
) -> None:
    source, _ = sides
    source.send(stream_start(1))
    assert plane.holds_session(tunnel.tunnel_id)
    boto3.client("iotsecuretunneling").close_tunnel(tunnelId=tunnel.tunnel_id)
    assert source.closed() == (1000, "The tunnel was closed")
    assert not plane.holds_session(tunnel.tunnel_id)  # let go in the pass that closed the connections
    assert plane.log(tunnel.tunnel_id)  # what a test asserts on stays


def test_a_lifetime_ending_on_the_manual_clock_ends_both_connections(
    plane: DataPlane, local_aws: LocalAws, clock: ManualClock
) -> None:
    tunnel = open_tunnel(timeoutConfig={"maxLifetimeTimeoutMinutes": 60})
    with (
        peer(plane.url, "source", tunnel.source_token) as source,
        peer(plane.url, "destination", tunnel.destination_token) as destination,
    ):
        source.receive()
        destination.receive()
        clock.advance(minutes=59)
        source.send(stream_start(1), data(1, b"still open"))
        destination.receive()
        assert destination.receive().payload == b"still open"
        clock.advance(minutes=1)
        assert source.closed() == (1000, "The tunnel's lifetime ended")
        assert destination.closed() == (1000, "The tunnel's lifetime ended")
    described = describe(tunnel)
    assert described["status"] == "CLOSED"
    assert described["sourceConnectionState"]["status"] == "DISCONNECTED"


def test_rotation_keeps_a_live_connection_by_default(sides: tuple[Peer, Peer], tunnel: Tunnel) -> None:
    source, destination = sides
    boto3.client("iotsecuretunneling").rotate_tunnel_access_token(tunnelId=tunnel.tunnel_id, clientMode="ALL")
    source.send(stream_start(1), data(1, b"after rotation"))
    destination.receive()
    assert destination.receive().payload == b"after rotation"


def test_rotation_drops_a_live_connection_when_a_test_says_so(
    sides: tuple[Peer, Peer], plane: DataPlane, tunnel: Tunnel
) -> None:
    source, destination = sides
    plane.rotation_drops_connections = True
    rotated = boto3.client("iotsecuretunneling").rotate_tunnel_access_token(
        tunnelId=tunnel.tunnel_id, clientMode="SOURCE"
    )
    assert source.closed() == (1008, "The access token was rotated: reconnect with the new token")
    assert connection_state(tunnel, "source")["status"] == "DISCONNECTED"
    assert destination.connection.ping().wait(TIMEOUT)
    with peer(plane.url, "source", rotated["sourceAccessToken"]) as again:
        assert again.receive().type == Message.SERVICE_IDS


# -- faults ------------------------------------------------------------------------------------------------


def test_drop_cuts_one_side_without_a_close_frame(
    sides: tuple[Peer, Peer], plane: DataPlane, tunnel: Tunnel
) -> None:
    source, destination = sides
    assert plane.drop(tunnel.tunnel_id, "destination")
    assert destination.closed() == (ABNORMAL, "")
    assert connection_state(tunnel, "destination")["status"] == "DISCONNECTED"
    assert source.connection.ping().wait(TIMEOUT)
    assert not plane.drop(tunnel.tunnel_id, "destination")


def test_latency_delays_every_relayed_frame(sides: tuple[Peer, Peer], plane: DataPlane) -> None:
    source, destination = sides
    plane.latency = 0.3
    started = time.monotonic()
    source.send(stream_start(1))
    destination.receive()
    assert time.monotonic() - started >= 0.3


def test_a_bandwidth_cap_slows_the_tunnel(sides: tuple[Peer, Peer], plane: DataPlane, tunnel: Tunnel) -> None:
    source, destination = sides
    plane.limit_bandwidth(tunnel.tunnel_id, bytes_per_second=200_000)
    payload = os.urandom(250_000)
    started = time.monotonic()
    source.send(stream_start(1))
    for offset in range(0, len(payload), 10_000):
        source.send(data(1, payload[offset : offset + 10_000]))
    destination.receive()
    assert destination.receive_payload(len(payload)) == payload
    # A tenth of a second's burst, then 200 kB/s: at least (250 kB - 20 kB) / 200 kB/s.
    assert time.monotonic() - started >= 1.1
    plane.limit_bandwidth(tunnel.tunnel_id, bytes_per_second=None)


def test_a_session_reset_reaches_both_sides(
    sides: tuple[Peer, Peer], plane: DataPlane, tunnel: Tunnel
) -> None:
    source, destination = sides
    plane.reset_session(tunnel.tunnel_id)
    assert source.receive().type == destination.receive().type == Message.SESSION_RESET


def test_the_log_records_types_ids_and_sizes_never_payloads(
    sides: tuple[Peer, Peer], plane: DataPlane, tunnel: Tunnel
) -> None:
    source, destination = sides
    secret = b"password: hunter2"
    source.send(stream_start(1, "SSH", 1), data(1, secret, "SSH", 1))
    destination.receive()
    destination.receive()
    records = plane.log(tunnel.tunnel_id)
    assert [(record.origin, record.type) for record in records] == [
        ("service", "SERVICE_IDS"),
        ("service", "SERVICE_IDS"),
        ("source", "STREAM_START"),
        ("source", "DATA"),
    ]
    last = records[-1]
    assert (last.stream_id, last.connection_id, last.service_id, last.payload_size) == (
        1,
        1,
        "SSH",
        len(secret),
    )
    assert "hunter2" not in repr(records)


def test_a_slow_reader_stalls_only_its_own_tunnel(
    sides: tuple[Peer, Peer], plane: DataPlane, tunnel: Tunnel
) -> None:
    source, never_reads = sides
    source.send(stream_start(1))
    chunk = data(1, b"x" * MAX_MESSAGE_PAYLOAD)
    sent = threading.Event()

    def flood() -> None:
        # 64 MB toward a destination that reads nothing: the relay's buffers and the sockets' fill up.
        for _ in range(1000):
            try:
                source.send(chunk)
            except Exception:  # the test drops the connection under it
                return
        sent.set()

    flooding = threading.Thread(target=flood, daemon=True)
    flooding.start()
    assert plane.wait_for(lambda: len(plane.log(tunnel.tunnel_id)) > 40)
    other = open_tunnel(services=("SSH",))
    with ExitStack() as stack:
        other_source = stack.enter_context(peer(plane.url, "source", other.source_token))
        other_destination = stack.enter_context(peer(plane.url, "destination", other.destination_token))
        other_source.receive()
        other_destination.receive()
        other_source.send(stream_start(1), data(1, b"unhindered"))
        other_destination.receive()
        assert other_destination.receive(timeout=TIMEOUT).payload == b"unhindered"
    assert not sent.is_set(), "the flood was not held back by the slow reader"
    # Cut both sides: a polite close would queue behind the data the destination has not read.
    plane.drop(tunnel.tunnel_id, "source")
    plane.drop(tunnel.tunnel_id, "destination")
    flooding.join(TIMEOUT)
    # The destination reads what it holds and then sees the cut (else its close waits for a close frame).
    assert never_reads.closed() == (ABNORMAL, "")
