"""``python -m benchmarks.proxy_target``: the service behind the tunnel in the proxy benchmark.

Prints its port, then serves each connection by its first byte: ``B`` + an 8-byte length reads that many
bytes and answers ``ok`` (bulk), ``E`` echoes everything back (round trips).
"""

import asyncio
import struct
import sys

_CHUNK = 1 << 18


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        kind = await reader.readexactly(1)
        if kind == b"B":
            (remaining,) = struct.unpack(">Q", await reader.readexactly(8))
            while remaining:
                data = await reader.read(min(remaining, _CHUNK))
                if not data:
                    return
                remaining -= len(data)
            writer.write(b"ok")
            await writer.drain()
            await reader.read()  # until the client closes
        else:
            while data := await reader.read(_CHUNK):
                writer.write(data)
                await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main() -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
