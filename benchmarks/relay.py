"""The emulator's data plane relaying between raw protocol clients on loopback.

The emulator runs in this process, as in tests; the destinations and the sources each run in a process of
their own (``benchmarks/relay_clients.py``), so the figure is the emulator's, not a client's. Measured:
MB/s from the sources to the destinations through 1 tunnel and through 10 tunnels at once (one
connection pair each, 64,512-byte payloads two to a frame), timed at the destinations from the first
payload byte to the last; the CPU time the emulator's process spent per 100 MB over the same run (what
the wall-clock rate hides on a shared machine: the clients compete for the same cores); and handshakes
per second (upgrade, SERVICE_IDS, close; 10 at a time).
"""

import json
import subprocess
import sys
import time
from dataclasses import dataclass

from cdk_secure_tunnel.emulator import ManualClock, TunnelEmulator

from .measure import ROOT, child_environment, median

MB = 1_000_000
ONE_TUNNEL_BYTES = 1_000 * MB
CONCURRENT_TUNNELS = 10
PER_TUNNEL_BYTES = 100 * MB
HANDSHAKES = 300
GOAL_MB_S = 200.0


@dataclass(frozen=True)
class Run:
    """One relay run: wall-clock MB/s at the destinations, and the emulator's CPU seconds per 100 MB."""

    mb_s: float
    cpu_s_per_100_mb: float


@dataclass(frozen=True)
class Relay:
    one_tunnel_runs: list[Run]
    concurrent_runs: list[Run]
    handshakes_per_s: list[float]

    @property
    def one_tunnel(self) -> float:
        return median([run.mb_s for run in self.one_tunnel_runs])

    @property
    def one_tunnel_cpu(self) -> float:
        return median([run.cpu_s_per_100_mb for run in self.one_tunnel_runs])

    @property
    def concurrent(self) -> float:
        return median([run.mb_s for run in self.concurrent_runs])

    @property
    def concurrent_cpu(self) -> float:
        return median([run.cpu_s_per_100_mb for run in self.concurrent_runs])

    @property
    def handshake_rate(self) -> float:
        return median(self.handshakes_per_s)


def _open(emulator: TunnelEmulator, count: int) -> list[dict[str, str]]:
    config = {"destinationConfig": {"services": ["SSH"]}}
    return [emulator.handle("OpenTunnel", config) for _ in range(count)]


def _clients(role: str, url: str, tokens: list[str], *arguments: str) -> "subprocess.Popen[str]":
    """A client process for ``role``, its tokens already sent on its stdin."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.relay_clients", role, url, *arguments],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_environment(),
        cwd=ROOT,
    )
    assert process.stdin is not None
    process.stdin.write(json.dumps(tokens) + "\n")
    process.stdin.close()
    return process


def _result(process: "subprocess.Popen[str]") -> dict[str, float]:
    assert process.stdout is not None
    lines = process.stdout.read().strip().splitlines()
    if process.wait() != 0 or not lines:
        raise RuntimeError(f"a relay benchmark client failed ({process.args!r})")
    result: dict[str, float] = json.loads(lines[-1])
    return result


def _relay(emulator: TunnelEmulator, tunnels: int, per_tunnel: int) -> Run:
    opened = _open(emulator, tunnels)
    cpu_before = time.process_time()
    url = emulator.data_plane.url
    receiver = _clients(
        "receive", url, [tunnel["destinationAccessToken"] for tunnel in opened], str(per_tunnel)
    )
    assert receiver.stdout is not None
    if receiver.stdout.readline().strip() != "ready":
        raise RuntimeError("the relay benchmark's receiver did not connect")
    sender = _clients("send", url, [tunnel["sourceAccessToken"] for tunnel in opened], str(per_tunnel))
    result = _result(receiver)
    cpu_s = time.process_time() - cpu_before
    # Closing the tunnels ends the senders' connections, and so the senders.
    for tunnel in opened:
        emulator.handle("CloseTunnel", {"tunnelId": tunnel["tunnelId"]})
    _result(sender)
    return Run(result["bytes"] / result["seconds"] / MB, cpu_s / (result["bytes"] / (100 * MB)))


def _handshake_rate(emulator: TunnelEmulator) -> float:
    opened = _open(emulator, HANDSHAKES)
    result = _result(
        _clients("handshakes", emulator.data_plane.url, [t["sourceAccessToken"] for t in opened])
    )
    return result["count"] / result["seconds"]


def measure(rounds: int) -> Relay:
    one, concurrent, handshakes = [], [], []
    emulator = TunnelEmulator(clock=ManualClock(), max_open_tunnels=None)
    with emulator:
        for _ in range(rounds):
            one.append(_relay(emulator, 1, ONE_TUNNEL_BYTES))
            concurrent.append(_relay(emulator, CONCURRENT_TUNNELS, PER_TUNNEL_BYTES))
            handshakes.append(_handshake_rate(emulator))
            emulator.reset()
    return Relay(one, concurrent, handshakes)
