"""boto3 clients shared by every invocation of a warm Lambda environment.

Endpoints come from boto3's own configuration (``AWS_ENDPOINT_URL_<SERVICE>``), which is how the tests
point the handler at local services without any hook in this code.
"""

import logging
import random
import time
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
# A call thus lasts about 2 minutes at most, and the handler's 10 minute timeout (TunnelProvider) covers
# four such calls: an Update that looks the tunnel up, opens a replacement, fails to write its tokens and
# closes it again. The handler always answers CloudFormation rather than being cut off.
# Both services answer ThrottlingException; the others are the same meaning in other AWS protocols.
_THROTTLING_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException"})
_THROTTLING_CAP_S = 2.0
_THROTTLING_BUDGET_S = 90.0
_DEADLINE = "tunnel_lambda_retry_deadline"

_Client = TypeVar("_Client", bound="BaseClient")


def _retry_throttling(
    response: tuple[Any, Any] | None,
    attempts: int,
    request_dict: dict[str, Any],
    **_: Any,
) -> float | None:
    """botocore's ``needs-retry`` answer for throttling: a delay to retry after, or None to let
    botocore's own retries decide (they give up on a throttled call, whose attempts are long spent).
    """
    # The context lives as long as the call, through all its attempts.
    deadline = request_dict["context"].setdefault(_DEADLINE, time.monotonic() + _THROTTLING_BUDGET_S)
    if response is None or response[1].get("Error", {}).get("Code") not in _THROTTLING_CODES:
        return None
    # The exponent stops growing once the cap is reached, however many attempts a long budget allows.
    delay = random.random() * min(_THROTTLING_CAP_S, 2.0 ** min(attempts - 1, 8))  # noqa: S311 (jitter)
    return delay if time.monotonic() + delay < deadline else None


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
