"""100 tunnels created at once against an OpenTunnel limited to 10 requests per second.

CloudFormation sends the Creates of independent resources together; threads here call the handler's
``on_event`` with them, all released at once. Three setups of the handler's boto3 clients:

- ``shared``: the threads share the handler's cached clients, fresh as in a new Lambda environment,
  and so one connection pool;
- ``per invocation``: each thread has clients of its own, as each concurrent Lambda invocation runs in an
  execution environment of its own, where no client knows what the others send (what Lambda does);
- ``shared, warm``: shared clients that have just made fast unthrottled calls (the Creates of
  ``WARM_UP_CREATES`` tunnels), which is how clients look in a long-lived process.

Only OpenTunnel is limited (the only tunneling call a Create makes), by the emulator's token bucket:
``per_second`` on average after an initial burst of ``per_second`` calls. The ideal time is the limit's
own, ``(tunnels - burst) / per_second``: every call admitted the moment the bucket allows it.
"""

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from unittest import mock

from .handler_env import LocalHandler
from .measure import median, stopwatch

TUNNELS = 100
PER_SECOND = 10.0
WARM_UP_CREATES = 20
# Well past what a Create may take here; a thread still running then is reported as a failure.
JOIN_TIMEOUT_S = 300.0

Clients = dict[str, Any]


class Setup(StrEnum):
    SHARED = "shared clients"
    PER_INVOCATION = "a client per invocation"
    SHARED_WARM = "shared clients, warm"


@dataclass(frozen=True)
class Burst:
    setup: Setup
    tunnels: int
    per_second: float
    total_s: float
    create_s: list[float]
    attempts: list[int]
    # The error of each failed Create, by type: ClientError(ThrottlingException), ConnectionClosedError...
    failures: list[str]
    open_tunnels: int

    @property
    def ideal_s(self) -> float:
        return (self.tunnels - self.per_second) / self.per_second

    @property
    def ratio(self) -> float:
        return self.total_s / self.ideal_s

    @property
    def throttled(self) -> int:
        return sum(self.attempts) - self.tunnels

    @property
    def problems(self) -> int:
        """Failed Creates, plus open tunnels that no successful Create accounts for (leaked) or that one
        does not have (lost): zero when every Create opened exactly one tunnel.
        """
        succeeded = self.tunnels - len(self.failures)
        return len(self.failures) + abs(self.open_tunnels - succeeded)


class _Attempts(threading.local):
    count = 0


def _failure(error: Exception) -> str:
    code = (getattr(error, "response", None) or {}).get("Error", {}).get("Code")
    return f"{type(error).__name__}({code})" if code else type(error).__name__


@contextmanager
def _clients_of_each_thread(clients_of: Callable[[], Clients]) -> Iterator[None]:
    """Makes the handler's ``aws_clients.tunneling()``/``secrets()`` answer the calling thread's own."""
    from tunnel_lambda import aws_clients  # noqa: PLC0415

    def tunneling() -> Any:
        return clients_of()["iotsecuretunneling"]

    def secrets() -> Any:
        return clients_of()["secretsmanager"]

    with (
        mock.patch.object(aws_clients, "tunneling", tunneling),
        mock.patch.object(aws_clients, "secrets", secrets),
    ):
        yield


def _clients(local: LocalHandler, setup: Setup, tunnels: int) -> list[Clients]:
    from tunnel_lambda import aws_clients  # noqa: PLC0415

    aws_clients.tunneling.cache_clear()
    aws_clients.secrets.cache_clear()
    if setup is Setup.PER_INVOCATION:
        # Made by the handler's own functions without their cache, one after another: creating clients
        # from one botocore session concurrently is not safe, and a cold start is not what this measures.
        return [
            {
                "iotsecuretunneling": aws_clients.tunneling.__wrapped__(),
                "secretsmanager": aws_clients.secrets.__wrapped__(),
            }
            for _ in range(tunnels)
        ]
    if setup is Setup.SHARED_WARM:
        for index in range(WARM_UP_CREATES):
            local.on_event(local.event("Create", local.properties(index), index))
    return [{"iotsecuretunneling": aws_clients.tunneling(), "secretsmanager": aws_clients.secrets()}]


def run(local: LocalHandler, setup: Setup, tunnels: int = TUNNELS, per_second: float = PER_SECOND) -> Burst:
    local.reset()
    own_clients = _clients(local, setup, tunnels)
    # Opened by the warm-up: the burst's own tunnels are counted on top of them.
    already_open = len(local.emulator.open_tunnels())
    events = [local.event("Create", local.properties(index), index) for index in range(tunnels)]
    attempts = _Attempts()

    def count_attempt(**_: Any) -> None:
        attempts.count += 1

    for clients in own_clients:
        clients["iotsecuretunneling"].meta.events.register("before-send.*.OpenTunnel", count_attempt)
    thread_clients = threading.local()
    create_s = [0.0] * tunnels
    attempts_of = [0] * tunnels
    failures: list[str] = []
    start = threading.Barrier(tunnels + 1)

    def create(index: int) -> None:
        thread_clients.clients = own_clients[index % len(own_clients)]
        start.wait()
        with stopwatch() as elapsed:
            try:
                local.on_event(events[index])
            except Exception as error:  # every failure is a result to report
                failures.append(_failure(error))
        create_s[index] = elapsed()
        attempts_of[index] = attempts.count

    threads = [threading.Thread(target=create, args=(index,), daemon=True) for index in range(tunnels)]
    # botocore's pool keeps 10 connections per client; 100 threads on one client overflow it, which
    # urllib3 reports (harmlessly) as a warning per call.
    pool_log = logging.getLogger("urllib3.connectionpool")
    level = pool_log.level
    pool_log.setLevel(logging.ERROR)
    local.emulator.limit_rate("OpenTunnel", per_second=per_second)
    try:
        with _clients_of_each_thread(lambda: thread_clients.clients):
            for thread in threads:
                thread.start()
            start.wait()
            with stopwatch() as total:
                for thread in threads:
                    thread.join(JOIN_TIMEOUT_S)
    finally:
        pool_log.setLevel(level)
        local.emulator.limit_rate("OpenTunnel", per_second=None)
    failures += ["still running" for thread in threads if thread.is_alive()]
    return Burst(
        setup=setup,
        tunnels=tunnels,
        per_second=per_second,
        total_s=total(),
        create_s=create_s,
        attempts=attempts_of,
        failures=failures,
        open_tunnels=len(local.emulator.open_tunnels()) - already_open,
    )


@dataclass(frozen=True)
class BurstRuns:
    setup: Setup
    runs: list[Burst]

    @property
    def typical(self) -> Burst:
        """The run with the median total time (the slower middle one of an even count)."""
        return sorted(self.runs, key=lambda burst: burst.total_s)[len(self.runs) // 2]

    @property
    def worst_ratio(self) -> float:
        return max(burst.ratio for burst in self.runs)

    @property
    def problems(self) -> int:
        return sum(burst.problems for burst in self.runs)

    @property
    def failure_kinds(self) -> Counter[str]:
        return Counter(failure for burst in self.runs for failure in burst.failures)

    @property
    def median_throttled(self) -> float:
        return median([float(burst.throttled) for burst in self.runs])


def measure(local: LocalHandler, rounds: int) -> list[BurstRuns]:
    results = {setup: BurstRuns(setup, []) for setup in Setup}
    for _ in range(rounds):
        for setup in Setup:
            results[setup].runs.append(run(local, setup))
    return list(results.values())
