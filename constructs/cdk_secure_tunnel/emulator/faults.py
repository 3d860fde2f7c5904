"""Rate limits and injected failures, the service-side trouble a client must cope with.

Neither is thread-safe on its own: the emulator calls them under its lock.
"""

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import ServiceError


class TokenBucket:
    """``per_second`` requests on average with bursts of up to ``burst`` (default: one second's worth).

    It runs on ``monotonic``, real monotonic time by default, not on the emulator's (possibly manual)
    clock: throttling is about how fast a client really calls, which a test's fast-forwarded tunnel
    lifetimes say nothing about. A test that must not depend on how fast the machine is passes a time
    source of its own.
    """

    def __init__(
        self, per_second: float, burst: float | None = None, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        self.per_second = per_second
        self.capacity = max(1.0, per_second if burst is None else burst)
        self._tokens = self.capacity
        self._monotonic = monotonic
        self._refilled_at = monotonic()

    def available(self) -> bool:
        now = self._monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._refilled_at) * self.per_second)
        self._refilled_at = now
        return self._tokens >= 1

    def take(self) -> None:
        self._tokens -= 1


@dataclass
class RateLimits:
    """Token buckets per operation name, and one under ``None`` that every operation shares."""

    buckets: dict[str | None, TokenBucket] = field(default_factory=dict)

    def set(
        self,
        operation: str | None,
        per_second: float | None,
        burst: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_second is None:
            self.buckets.pop(operation, None)
        else:
            self.buckets[operation] = TokenBucket(per_second, burst, monotonic)

    def admit(self, operation: str) -> bool:
        """Whether a call may go ahead; a call counts against a bucket only when every bucket admits it."""
        buckets = [bucket for key in (operation, None) if (bucket := self.buckets.get(key)) is not None]
        if not all([bucket.available() for bucket in buckets]):
            return False
        for bucket in buckets:
            bucket.take()
        return True


@dataclass
class InjectedFailures:
    """Errors queued for the next calls of an operation (or, under ``None``, of any operation)."""

    queued: dict[str | None, deque[ServiceError]] = field(default_factory=dict)
    periodic: dict[str | None, "PeriodicFailure"] = field(default_factory=dict)

    def add_periodic(self, operation: str | None, error: ServiceError, every: int) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        self.periodic[operation] = PeriodicFailure(every, error)

    def add(self, operation: str | None, error: ServiceError, times: int) -> None:
        if times < 0:
            raise ValueError("times must not be negative")
        self.queued.setdefault(operation, deque()).extend([error] * times)

    def next_for(self, operation: str) -> ServiceError | None:
        for key in (operation, None):
            queue = self.queued.get(key)
            if queue:
                return queue.popleft()
        for key in (operation, None):
            if key in self.periodic:
                return self.periodic[key].next_call()
        return None


@dataclass
class PeriodicFailure:
    """Fails the first call and every ``every``-th one after it."""

    every: int
    error: ServiceError
    seen: int = 0

    def next_call(self) -> ServiceError | None:
        self.seen += 1
        return self.error if (self.seen - 1) % self.every == 0 else None
