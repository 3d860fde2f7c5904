"""The emulator's data plane relaying between raw protocol clients on loopback.

The emulator runs in this process, as in tests; the destinations and the sources each run in a process of
their own (``benchmarks/relay_clients.py``), so the figure is the emulator's, not a client's. Measured:
MB/s from the sources to the destinations through 1 tunnel and through 10 tunnels at once (one
connection pair each, 64,512-byte payloads two to a frame), timed at the destinations from the first
payload byte to the last; and handshakes per second (upgrade, SERVICE_IDS, close; 10 at a time).
"""

import json
import subprocess
import sys
from dataclasses import dataclass

from cdk_secure_tunnel.testing import ManualClock, TunnelEmulator

from .measure import ROOT, child_environment, median

MB = 1_000_000
ONE_TUNNEL_BYTES = 1_000 * MB
CONCURRENT_TUNNELS = 10
PER_TUNNEL_BYTES = 100 * MB
HANDSHAKES = 300
GOAL_MB_S = 200.0


@dataclass(frozen=True)
class Relay:
    one_tunnel_mb_s: list[float]
    concurrent_mb_s: list[float]
    handshakes_per_s: list[float]

    @property
    def one_tunnel(self) -> float:
        return median(self.one_tunnel_mb_s)

    @property
    def concurrent(self) -> float:
        return median(self.concurrent_mb_s)

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


def _relay_mb_s(emulator: TunnelEmulator, tunnels: int, per_tunnel: int) -> float:
    opened = _open(emulator, tunnels)
    url = emulator.data_plane.url
    receiver = _clients(
        "receive", url, [tunnel["destinationAccessToken"] for tunnel in opened], str(per_tunnel)
    )
    assert receiver.stdout is not None
    if receiver.stdout.readline().strip() != "ready":
        raise RuntimeError("the relay benchmark's receiver did not connect")
    sender = _clients("send", url, [tunnel["sourceAccessToken"] for tunnel in opened], str(per_tunnel))
    result = _result(receiver)
    # Closing the tunnels ends the senders' connections, and so the senders.
    for tunnel in opened:
        emulator.handle("CloseTunnel", {"tunnelId": tunnel["tunnelId"]})
    _result(sender)
    return result["bytes"] / result["seconds"] / MB


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
            one.append(_relay_mb_s(emulator, 1, ONE_TUNNEL_BYTES))
            concurrent.append(_relay_mb_s(emulator, CONCURRENT_TUNNELS, PER_TUNNEL_BYTES))
            handshakes.append(_handshake_rate(emulator))
            emulator.reset()
    return Relay(one, concurrent, handshakes)
