"""Clocks for the emulator: tunnel lifetimes run on one of these, so tests can fast-forward them.

>>> from cdk_secure_tunnel.emulator import TunnelEmulator
>>> clock = ManualClock()
>>> emulator = TunnelEmulator(clock=clock)
>>> tunnel_id = emulator.handle("OpenTunnel", {})["tunnelId"]
>>> _ = clock.advance(hours=12)  # every tunnel opened with the default lifetime is now CLOSED
>>> emulator.tunnel(tunnel_id).status
'CLOSED'
"""

import threading
import time
from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    """Wall-clock time in epoch seconds: what the emulator stamps on tunnels and expires them by."""

    def now(self) -> float: ...


class SystemClock:
    """The real wall clock (the emulator's default)."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that only moves when told to, starting at ``start`` (default: the real time now).

    It starts at the real time rather than at zero so that ``createdAt`` values look like AWS's and code
    under test that compares them with its own clock sees plausible ages.
    """

    def __init__(self, start: float | datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._now = _epoch(start) if start is not None else time.time()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float = 0, *, minutes: float = 0, hours: float = 0) -> float:
        """Move forward by the sum of the arguments; returns the new time. Time never runs backwards."""
        step = seconds + 60 * minutes + 3600 * hours
        if step < 0:
            raise ValueError("ManualClock.advance() cannot move backwards")
        with self._lock:
            self._now += step
            return self._now

    def set(self, when: float | datetime) -> None:
        """Jump to ``when`` (epoch seconds or an aware datetime), which must not be in the clock's past."""
        target = _epoch(when)
        with self._lock:
            if target < self._now:
                raise ValueError("ManualClock.set() cannot move backwards")
            self._now = target


def _epoch(when: float | datetime) -> float:
    return when.timestamp() if isinstance(when, datetime) else float(when)
