"""Raw protocol clients for the relay benchmark, each role in a process of its own so that the emulator
(in the benchmark's process) is what is measured: ``python -m benchmarks.relay_clients ROLE URL``.

Tokens come on stdin (a JSON list on one line), never in argv. Roles:

- ``receive``: connect one destination per token, print ``ready``, then count the bytes that arrive
  until all of ``send``'s frames have (counting frame bytes rather than parsing messages keeps this
  client cheap; the tests check what arrives); the last line is ``{"bytes", "seconds"}``: payload
  bytes, from the first frame to the last, over all tunnels.
- ``send``: connect one source per token and send ``BYTES`` per tunnel in full frames (two messages of
  the largest payload each).
- ``handshakes``: connect with each (source) token, 10 at a time, read SERVICE_IDS and close; the last
  line is ``{"count", "seconds"}``.
"""

import asyncio
import json
import os
import sys
import time
from typing import Any

from cdk_secure_tunnel.protocol import MAX_MESSAGE_PAYLOAD, Message, encode
from cdk_secure_tunnel.protocol.handshake import SUBPROTOCOL_V3
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

HANDSHAKE_CONCURRENCY = 10
_OPTIONS: dict[str, Any] = {
    "subprotocols": [Subprotocol(SUBPROTOCOL_V3)],
    "compression": None,
    "max_size": None,
    "ping_interval": None,
    "write_limit": 2**20,
}


async def _connect(url: str, mode: str, token: str) -> ClientConnection:
    connection = await connect(
        f"{url}/tunnel?local-proxy-mode={mode}", additional_headers={"access-token": token}, **_OPTIONS
    )
    await connection.recv()  # SERVICE_IDS
    return connection


def _stream(per_tunnel: int) -> tuple[bytes, bytes, int]:
    """What ``send`` sends on each tunnel: STREAM_START, then a frame of two DATA messages so many times."""
    start = encode(Message(type=Message.STREAM_START, streamId=1, serviceId="SSH", connectionId=1))
    payload = os.urandom(MAX_MESSAGE_PAYLOAD)
    data = encode(Message(type=Message.DATA, streamId=1, serviceId="SSH", connectionId=1, payload=payload))
    return start, data * 2, -(-per_tunnel // (2 * MAX_MESSAGE_PAYLOAD))


async def receive(url: str, tokens: list[str], per_tunnel: int) -> dict[str, float]:
    connections = [await _connect(url, "destination", token) for token in tokens]
    print("ready", flush=True)
    start, frame, frames = _stream(per_tunnel)
    expected = len(start) + frames * len(frame)
    first: list[float] = []

    async def count(connection: ClientConnection) -> None:
        received = 0
        while received < expected:
            received += len(await connection.recv(decode=False))
            if not first:
                first.append(time.perf_counter())

    await asyncio.gather(*(count(connection) for connection in connections))
    seconds = time.perf_counter() - first[0]
    for connection in connections:
        await connection.close()
    return {"bytes": frames * 2 * MAX_MESSAGE_PAYLOAD * len(tokens), "seconds": seconds}


async def send(url: str, tokens: list[str], per_tunnel: int) -> dict[str, float]:
    connections = [await _connect(url, "source", token) for token in tokens]
    start, frame, frames = _stream(per_tunnel)

    async def flood(connection: ClientConnection) -> None:
        await connection.send(start)
        for _ in range(frames):
            await connection.send(frame)
        # Stay connected until the receiver is done: messages for an absent peer would be dropped.
        await connection.wait_closed()

    await asyncio.gather(*(flood(connection) for connection in connections))
    return {"bytes": per_tunnel * len(tokens)}


async def handshakes(url: str, tokens: list[str]) -> dict[str, float]:
    slots = asyncio.Semaphore(HANDSHAKE_CONCURRENCY)

    async def one(token: str) -> None:
        async with slots:
            connection = await _connect(url, "source", token)
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(one(token) for token in tokens))
    return {"count": len(tokens), "seconds": time.perf_counter() - started}


def main(argv: list[str]) -> None:
    role, url = argv[0], argv[1]
    tokens: list[str] = json.loads(sys.stdin.readline())
    if role == "receive":
        result = asyncio.run(receive(url, tokens, int(argv[2])))
    elif role == "send":
        result = asyncio.run(send(url, tokens, int(argv[2])))
    else:
        result = asyncio.run(handshakes(url, tokens))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
