"""The local proxy on loopback through the emulator's data plane, beside raw TCP (issue 12's goals).

Every party is its own process, as on real machines: the emulator (``python -m cdk_secure_tunnel.testing``,
with moto's Secrets Manager), ``cdk-secure-tunnel device`` (destination), ``cdk-secure-tunnel connect``
(source, reading its token from a secret) and the target service (``benchmarks.proxy_target``). This
process drives the clients and reads each proxy's CPU time and peak RSS from /proc.

- bulk: MB/s for one connection and for 10 at once (same total), client to target, raw TCP beside;
- round trip: 64-byte echoes one after another, p50/p99, and what the tunnel adds to raw TCP's p50;
- CPU seconds per 100 MB relayed, per proxy (user + system, during the bulk transfers);
- peak RSS per proxy; time from starting ``connect`` to its listening line.
"""

import asyncio
import json
import os
import shlex
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .measure import ROOT, child_environment

MB = 1_000_000
CLIENT_TOKEN = "benchmark-0000-0000-0000-00000000000"  # noqa: S105  (+ "s" or "d": one per side)
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Effort:
    bulk_mb: int
    round_trips: int
    starts: int


FULL = Effort(bulk_mb=300, round_trips=3000, starts=5)
QUICK = Effort(bulk_mb=60, round_trips=600, starts=2)


@dataclass
class Results:
    bulk_1: float = 0.0  # MB/s through the tunnel, one connection
    bulk_10: float = 0.0
    raw_1: float = 0.0  # MB/s raw TCP
    raw_10: float = 0.0
    rtt_ms: dict[str, tuple[float, float]] = field(default_factory=dict)  # path -> (p50, p99)
    cpu_per_100mb: dict[str, float] = field(default_factory=dict)  # source/destination -> CPU s
    peak_rss_mib: dict[str, float] = field(default_factory=dict)
    start_to_listening_s: list[float] = field(default_factory=list)
    emulator_cpu_per_100mb: float = 0.0
    # The 1-minute load average before and after: the figures depend on what else the cores run.
    load: tuple[float, float] = (0.0, 0.0)
    effort: Effort = QUICK

    @property
    def added_p50_ms(self) -> float:
        return self.rtt_ms["tunnel"][0] - self.rtt_ms["raw TCP"][0]


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _process(arguments: list[str], environment: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        arguments, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment, cwd=ROOT
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_line(process: subprocess.Popen[str], marker: str, stream: str = "stderr") -> str:
    pipe = process.stderr if stream == "stderr" else process.stdout
    assert pipe is not None
    for line in pipe:
        if marker in line:
            return line
    raise RuntimeError(f"{process.args!r} ended before printing {marker!r} (status {process.wait()})")


def _cli(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "cdk_secure_tunnel.cli", *arguments]


async def _bulk(port: int, connections: int, total_mb: int) -> float:
    """MB/s sending ``total_mb`` split over ``connections`` simultaneous connections to the target."""
    each = total_mb * MB // connections
    chunk = b"\x5a" * (1 << 18)

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"B" + struct.pack(">Q", each))
        remaining = each
        while remaining:
            piece = chunk if remaining >= len(chunk) else chunk[:remaining]
            writer.write(piece)
            remaining -= len(piece)
            await writer.drain()
        assert await reader.readexactly(2) == b"ok"
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(connections)))
    return total_mb / (time.perf_counter() - started)


async def _round_trips(port: int, count: int) -> tuple[float, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"E")
    message = b"r" * 64
    times = []
    for index in range(count + 50):
        started = time.perf_counter()
        writer.write(message)
        await reader.readexactly(64)
        if index >= 50:  # warm-up
            times.append((time.perf_counter() - started) * 1000)
    writer.close()
    percentiles = statistics.quantiles(times, n=100)
    return percentiles[49], percentiles[98]


def measure(effort: Effort) -> Results:
    import boto3  # noqa: PLC0415  (only this benchmark needs it)

    results = Results(effort=effort)
    load_before = os.getloadavg()[0]
    base = child_environment({"PYTHONUNBUFFERED": "1"})
    with _process([sys.executable, "-m", "cdk_secure_tunnel.testing"], base) as emulator:
        assert emulator.stdout is not None
        variables: dict[str, str] = {}
        # The server prints shell lines (`unset ...`, `export NAME=value`) for `eval "$(...)"`.
        for line in emulator.stdout:
            if not line.startswith("export "):
                continue
            name, _, value = shlex.split(line)[1].partition("=")
            variables[name] = value
            if {"CDK_SECURE_TUNNEL_DATA_ENDPOINT", "AWS_SECRET_ACCESS_KEY"} <= variables.keys():
                break
        environment = base | variables
        os.environ.update(variables)
        tunnels = boto3.client("iotsecuretunneling", region_name="us-east-1")
        opened = tunnels.open_tunnel(destinationConfig={"thingName": "bench", "services": ["BENCH"]})
        document = {
            "clientAccessToken": opened["sourceAccessToken"],
            "clientMode": "source",
            "region": "us-east-1",
            "services": ["BENCH"],
            "tunnelId": opened["tunnelId"],
        }
        secret = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="bench-source", SecretString=json.dumps(document)
        )["ARN"]
        with _process([sys.executable, "-m", "benchmarks.proxy_target"], environment) as target:
            assert target.stdout is not None
            target_port = int(target.stdout.readline())
            device_environment = environment | {
                "AWSIOT_TUNNEL_ACCESS_TOKEN": opened["destinationAccessToken"]
            }
            device = _cli("device", "-d", f"BENCH={target_port}", "--client-token", CLIENT_TOKEN + "d")
            with _process(device, device_environment) as destination:
                _wait_for_line(destination, "connected; forwarding")
                listen_port = _free_port()
                connect = _cli(
                    "connect",
                    "--secret",
                    secret,
                    "-s",
                    f"BENCH={listen_port}",
                    "--client-token",
                    CLIENT_TOKEN + "s",
                )
                for attempt in range(effort.starts):
                    started = time.perf_counter()
                    with _process(connect, environment) as source:
                        _wait_for_line(source, "listening:")
                        results.start_to_listening_s.append(time.perf_counter() - started)
                        if attempt == effort.starts - 1:
                            pids = {
                                "source": source.pid,
                                "destination": destination.pid,
                                "emulator": emulator.pid,
                            }
                            _measure_traffic(results, effort, (listen_port, target_port), pids)
    results.load = (load_before, os.getloadavg()[0])
    return results


def _measure_traffic(results: Results, effort: Effort, ports: tuple[int, int], pids: dict[str, int]) -> None:
    """Through the tunnel (``ports[0]``, the source's) and raw to the target (``ports[1]``)."""
    listen_port, target_port = ports
    asyncio.run(_bulk(listen_port, 1, 5))  # warm-up
    before = {side: _cpu_seconds(pid) for side, pid in pids.items()}
    results.bulk_1 = asyncio.run(_bulk(listen_port, 1, effort.bulk_mb))
    results.bulk_10 = asyncio.run(_bulk(listen_port, 10, effort.bulk_mb))
    used = {side: _cpu_seconds(pid) - before[side] for side, pid in pids.items()}
    per_100mb = {side: seconds * 100 / (2 * effort.bulk_mb) for side, seconds in used.items()}
    results.emulator_cpu_per_100mb = per_100mb.pop("emulator")
    results.cpu_per_100mb = per_100mb
    results.raw_1 = asyncio.run(_bulk(target_port, 1, effort.bulk_mb))
    results.raw_10 = asyncio.run(_bulk(target_port, 10, effort.bulk_mb))
    results.rtt_ms["raw TCP"] = asyncio.run(_round_trips(target_port, effort.round_trips))
    results.rtt_ms["tunnel"] = asyncio.run(_round_trips(listen_port, effort.round_trips))
    results.peak_rss_mib = {side: _peak_rss_mib(pids[side]) for side in ("source", "destination")}


def main() -> None:
    effort = QUICK if "--quick" in sys.argv else FULL
    results = measure(effort)
    print(json.dumps(results.__dict__ | {"effort": effort.__dict__}, indent=2, default=str))


if __name__ == "__main__":
    main()
