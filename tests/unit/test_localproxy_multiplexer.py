"""Streams and connections: ids, the forms V1/V2/V3 peers speak, stale filtering and resets.

The multiplexer is driven directly: messages in through ``handle``, messages out into a list.
"""

import asyncio
import itertools
from collections.abc import Coroutine
from typing import Any

import pytest
from cdk_secure_tunnel.localproxy.multiplexer import Multiplexer
from cdk_secure_tunnel.localproxy.settings import Target
from cdk_secure_tunnel.protocol import Message, MessageReader, ProtocolError, encode
from support.fake_service import echo_server

T = Message


def kinds(sent: list[Message]) -> list[tuple[str, int, str, int]]:
    return [(T.Type.Name(m.type), m.streamId, m.serviceId, m.connectionId) for m in sent]


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 10))


class Wire:
    """The multiplexer's outgoing messages, with a way to wait for the n-th."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.changed = asyncio.Event()

    async def send(self, wire: bytes) -> None:
        self.sent += MessageReader().feed(wire)
        self.changed.set()

    async def wait_for(self, count: int) -> list[Message]:
        while len(self.sent) < count:
            self.changed.clear()
            await self.changed.wait()
        return self.sent


async def local_pair() -> tuple[asyncio.StreamReader, asyncio.StreamWriter, asyncio.StreamWriter]:
    """A connected socket pair: the (reader, writer) a listener would hand over, and the client's writer
    (its reader is ``client.client_reader``)."""
    accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def on_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put((reader, writer))

    server = await asyncio.start_server(on_accept, "127.0.0.1", 0)
    client_reader, client = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    client.client_reader = client_reader  # type: ignore[attr-defined]
    reader, writer = await accepted.get()
    server.close()
    return reader, writer, client


def test_a_source_starts_a_stream_then_adds_connections_with_the_next_ids() -> None:
    async def scenario() -> None:
        wire = Wire()
        mux = Multiplexer("source", {"SSH": Target(None, 0)}, 3, wire.send, itertools.count(5))
        clients = []
        for _ in range(3):
            reader, writer, client = await local_pair()
            mux.spawn(mux.accept("SSH", reader, writer))
            clients.append(client)
        await wire.wait_for(3)
        assert kinds(wire.sent) == [
            ("STREAM_START", 5, "SSH", 1),
            ("CONNECTION_START", 5, "SSH", 2),
            ("CONNECTION_START", 5, "SSH", 3),
        ]
        clients[1].write(b"second")
        (data,) = (await wire.wait_for(4))[3:]
        assert kinds([data]) == [("DATA", 5, "SSH", 2)]
        assert data.payload == b"second"
        clients[1].close()
        (reset,) = (await wire.wait_for(5))[4:]
        assert kinds([reset]) == [("CONNECTION_RESET", 5, "SSH", 2)]
        mux.close()

    run(scenario())


def test_a_v2_peer_gets_no_connection_ids_and_one_connection_per_service() -> None:
    async def scenario() -> None:
        wire = Wire()
        mux = Multiplexer("source", {"SSH": Target(None, 0)}, 2, wire.send, itertools.count(1))
        reader, writer, first = await local_pair()
        mux.spawn(mux.accept("SSH", reader, writer))
        await wire.wait_for(1)
        reader2, writer2, second = await local_pair()
        await mux.accept("SSH", reader2, writer2)  # refused: closed at once
        assert await second.client_reader.read() == b""  # type: ignore[attr-defined]
        first.close()
        await wire.wait_for(2)
        assert kinds(wire.sent) == [("STREAM_START", 1, "SSH", 0), ("STREAM_RESET", 1, "SSH", 0)]
        mux.close()

    run(scenario())


def test_a_v1_source_names_no_service() -> None:
    async def scenario() -> None:
        wire = Wire()
        mux = Multiplexer("source", {"": Target(None, 0)}, 1, wire.send, itertools.count(1))
        reader, writer, client = await local_pair()
        mux.spawn(mux.accept("", reader, writer))
        client.write(b"x")
        await wire.wait_for(2)
        assert kinds(wire.sent) == [("STREAM_START", 1, "", 0), ("DATA", 1, "", 0)]
        mux.close()

    run(scenario())


def test_a_destination_connects_relays_and_filters_stale_streams() -> None:
    async def scenario() -> None:
        async with echo_server() as port:
            wire = Wire()
            mux = Multiplexer(
                "destination", {"SSH": Target("127.0.0.1", port)}, 3, wire.send, itertools.count()
            )
            await mux.handle(T(type=T.STREAM_START, streamId=9, serviceId="SSH", connectionId=1))
            await mux.handle(T(type=T.DATA, streamId=9, serviceId="SSH", connectionId=1, payload=b"ping"))
            await mux.handle(T(type=T.DATA, streamId=8, serviceId="SSH", connectionId=1, payload=b"stale"))
            (echoed,) = [m for m in await wire.wait_for(2) if m.type == T.DATA]
            assert kinds([echoed]) == [("DATA", 9, "SSH", 1)]
            assert echoed.payload == b"ping"
            # The stale stream's data is answered with its reset, once, so its source stops waiting.
            assert ("CONNECTION_RESET", 8, "SSH", 1) in kinds(wire.sent)
            await mux.handle(T(type=T.DATA, streamId=8, serviceId="SSH", connectionId=1, payload=b"again"))
            assert kinds(wire.sent).count(("CONNECTION_RESET", 8, "SSH", 1)) == 1
            # A second connection on the stream, then its reset from the peer.
            await mux.handle(T(type=T.CONNECTION_START, streamId=9, serviceId="SSH", connectionId=2))
            await mux.handle(T(type=T.DATA, streamId=9, serviceId="SSH", connectionId=2, payload=b"two"))
            await wire.wait_for(len(wire.sent) + 1)
            assert kinds(wire.sent)[-1] == ("DATA", 9, "SSH", 2)
            await mux.handle(T(type=T.CONNECTION_RESET, streamId=9, serviceId="SSH", connectionId=2))
            assert list(mux.streams["SSH"].connections) == [1]
            await mux.handle(T(type=T.STREAM_RESET, streamId=9, serviceId="SSH"))
            assert mux.streams == {}
            mux.close()

    run(scenario())


def test_a_destination_answers_each_stream_in_the_form_it_came_in() -> None:
    async def scenario() -> None:
        async with echo_server() as port:
            wire = Wire()
            mux = Multiplexer(
                "destination", {"SSH": Target("127.0.0.1", port)}, 3, wire.send, itertools.count()
            )
            await mux.handle(T(type=T.STREAM_START, streamId=3))  # a V1 source: no service, no connection
            await mux.handle(T(type=T.DATA, streamId=3, payload=b"v1"))
            await wire.wait_for(1)
            assert kinds(wire.sent) == [("DATA", 3, "", 0)]
            await mux.handle(T(type=T.STREAM_START, streamId=4, serviceId="SSH"))  # V2: no connection ids
            await mux.handle(T(type=T.DATA, streamId=4, serviceId="SSH", payload=b"v2"))
            await wire.wait_for(2)
            assert kinds(wire.sent)[1] == ("DATA", 4, "SSH", 0)
            mux.close()

    run(scenario())


def test_a_refused_destination_connection_is_reset() -> None:
    async def scenario() -> None:
        async with echo_server() as port:
            pass  # closed: nothing listens on the port any more
        wire = Wire()
        mux = Multiplexer("destination", {"SSH": Target("127.0.0.1", port)}, 3, wire.send, itertools.count())
        await mux.handle(T(type=T.STREAM_START, streamId=1, serviceId="SSH", connectionId=1))
        await wire.wait_for(1)
        assert kinds(wire.sent) == [("CONNECTION_RESET", 1, "SSH", 1)]
        mux.close()

    run(scenario())


def test_unknown_types_are_skipped_only_when_ignorable() -> None:
    async def scenario() -> None:
        wire = Wire()
        mux = Multiplexer("source", {"SSH": Target(None, 0)}, 3, wire.send, itertools.count(1))
        await mux.handle(T(type=42, ignorable=True))  # type: ignore[arg-type]
        with pytest.raises(ProtocolError, match="unknown type 42"):
            await mux.handle(T(type=42))  # type: ignore[arg-type]
        assert wire.sent == []

    run(scenario())


def test_messages_are_read_across_any_frame_boundaries() -> None:
    messages = [
        T(type=T.DATA, streamId=1, serviceId="SSH", connectionId=c, payload=bytes([c]) * (c * 1000))
        for c in range(1, 6)
    ]
    wire = b"".join(encode(m) for m in messages)
    for step in (1, 7, 1000, 65536):
        reader = MessageReader()
        got = [m for i in range(0, len(wire), step) for m in reader.feed(wire[i : i + step])]
        assert got == messages
        assert reader.pending == 0


def test_a_bad_message_is_skipped_and_reported_without_losing_the_next() -> None:
    good = encode(T(type=T.DATA, streamId=1, payload=b"ok"))
    oversized = T(type=T.DATA, streamId=1, serviceId="SSH", connectionId=2)
    body = oversized.SerializeToString() + b"\x22\xff\xfb\x03" + b"x" * 65023  # a 65,023-byte payload
    errors: list[ProtocolError] = []
    got = MessageReader().feed(len(body).to_bytes(2, "big") + body + good, errors)
    assert [m.payload for m in got] == [b"ok"]
    assert "exceeds 64512" in str(errors[0])
    assert errors[0].message is not None
    assert errors[0].message.connectionId == 2
