"""boto3 clients shared by every invocation of a warm Lambda environment.

Endpoints come from boto3's own configuration (``AWS_ENDPOINT_URL_<SERVICE>``), which is how the tests
point the handler at local services without any hook in this code.
"""

import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config

# botocore's DEBUG records carry response bodies, and tunneling responses carry tokens.
logging.getLogger("botocore").setLevel(logging.INFO)

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from mypy_boto3_iotsecuretunneling import IoTSecureTunnelingClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

# botocore's legacy retries handle the errors other than throttling (5xx, connection errors and
# timeouts): 5 attempts of at most 5 + 10 s, with backoffs that add up to at most 15 s. Not standard
# mode: its retry quota is shared by all of a client's calls and spent by every throttled retry, so a
# warm handler that just went through a burst would fail a Delete on its first transient 500. Not
# adaptive mode: its rate limiter lives in one client, and each concurrent invocation has its own,
# which never sees what the others send.
_RETRYING = Config(
    retries={"mode": "legacy", "total_max_attempts": 5},
    connect_timeout=5,
    read_timeout=10,
)
# Throttling is retried by _retry_throttling instead, with botocore's throttling backoff (1 s doubling,
# full jitter) capped at 2 s rather than 20. A burst of Creates comes from independent invocations, and
# long backoffs leave the service's rate unused while the last of them sleep: a 100-tunnel burst against
# 10 OpenTunnel/s took twice its 9 s. Throttled calls are retried for up to 90 s after their first
# answer, however many attempts that takes, so a burst of hundreds of tunnels still succeeds.
# A call thus lasts about 2 minutes at most; how many calls an invocation makes is not fixed (a failing
# replacement makes seven, a Delete that sweeps makes more), so a per-call budget alone cannot keep the
# handler inside its timeout. One deadline per invocation does (see ``invocation``).
# Both services answer ThrottlingException; the others are the same meaning in other AWS protocols.
_THROTTLING_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException"})
_THROTTLING_CAP_S = 2.0
_THROTTLING_BUDGET_S = 90.0
_DEADLINE = "tunnel_lambda_retry_deadline"

_Client = TypeVar("_Client", bound="BaseClient")

# The time an invocation keeps for its clean-up: the CloseTunnel of a tunnel it opened and could not
# record. Before, the compensating close was the call that the Lambda timeout cut off (it comes last), and
# a tunnel that no resource knows stayed open: now every retry of the work before it stops at the
# invocation's deadline, which is this long before the Lambda's own, and the clean-up runs in what is left.
CLEANUP_RESERVE_S = 100.0
# Room to raise and answer after the last call, before the runtime stops the process.
_ANSWER_S = 3.0
# Monotonic times: until when work may retry, and until when a clean-up may. None outside an invocation.
_work_until: ContextVar[float | None] = ContextVar("work_until", default=None)
_cleanup_until: ContextVar[float | None] = ContextVar("cleanup_until", default=None)
# HTTP statuses botocore's legacy mode retries (besides throttling and connection errors).
_TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})


class DeadlineExceeded(Exception):
    """The invocation's deadline passed before its work was done (see ``check_deadline``)."""


@contextmanager
def invocation(context: object) -> Iterator[None]:
    """One deadline for everything a Lambda invocation does, from the time its context says is left.

    Without a Lambda context (tests, local runs) only the per-call budgets apply.

    >>> with invocation(None):
    ...     time_left() is None
    True
    """
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        yield
        return
    end = time.monotonic() + remaining() / 1000 - _ANSWER_S
    work = _work_until.set(end - CLEANUP_RESERVE_S)
    cleanup = _cleanup_until.set(end)
    try:
        yield
    finally:
        _work_until.reset(work)
        _cleanup_until.reset(cleanup)


@contextmanager
def cleanup() -> Iterator[None]:
    """Run a compensating action (closing what could not be recorded) in the time kept for it."""
    work = _work_until.set(_cleanup_until.get())
    try:
        yield
    finally:
        _work_until.reset(work)


def time_left() -> float | None:
    """Seconds until the invocation's deadline (None outside an invocation); negative once past it."""
    until = _work_until.get()
    return None if until is None else until - time.monotonic()


def check_deadline(doing: str) -> None:
    """Raise DeadlineExceeded if the invocation's deadline has passed: ``doing`` says what is left undone."""
    left = time_left()
    if left is not None and left <= 0:
        raise DeadlineExceeded(f"No time left in this invocation for {doing}")


def _is_transient(response: tuple[Any, Any] | None, caught_exception: Exception | None) -> bool:
    """Whether a failed attempt is one botocore or we would retry: throttling, a 5xx, a connection error."""
    if caught_exception is not None:
        return True
    if response is None:
        return False
    if response[1].get("Error", {}).get("Code") in _THROTTLING_CODES:
        return True
    return getattr(response[0], "status_code", None) in _TRANSIENT_STATUSES


def _retry_throttling(
    response: tuple[Any, Any] | None,
    attempts: int,
    request_dict: dict[str, Any],
    caught_exception: Exception | None = None,
    **_: Any,
) -> float | bool | None:
    """botocore's ``needs-retry`` answer: a delay to retry a throttled call after; None to let botocore's
    own retries decide (they give up on a throttled call, whose attempts are long spent); False, which
    botocore takes as "do not retry", for any failure once the invocation's deadline has passed.
    """
    # The context lives as long as the call, through all its attempts.
    deadline = request_dict["context"].setdefault(_DEADLINE, time.monotonic() + _THROTTLING_BUDGET_S)
    if not _is_transient(response, caught_exception):
        return None
    work_until = _work_until.get()
    now = time.monotonic()
    if work_until is not None and now >= work_until:
        # The error goes to the caller as it is; the time left belongs to the clean-up.
        return False
    if response is None or response[1].get("Error", {}).get("Code") not in _THROTTLING_CODES:
        return None
    # The exponent stops growing once the cap is reached, however many attempts a long budget allows.
    delay = random.random() * min(_THROTTLING_CAP_S, 2.0 ** min(attempts - 1, 8))  # noqa: S311 (jitter)
    if work_until is not None and now + delay >= work_until:
        return False
    return delay if now + delay < deadline else None


def _with_throttling_retries(client: _Client) -> _Client:
    # The service's own event, where botocore's own retries listen: first there answers first. (The
    # stubs type every handler as returning None; needs-retry's answer is its return value.)
    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register_first(f"needs-retry.{service}", _retry_throttling)  # type: ignore[arg-type]
    return client


@cache
def tunneling() -> "IoTSecureTunnelingClient":
    return _with_throttling_retries(boto3.client("iotsecuretunneling", config=_RETRYING))


@cache
def secrets() -> "SecretsManagerClient":
    return _with_throttling_retries(boto3.client("secretsmanager", config=_RETRYING))
