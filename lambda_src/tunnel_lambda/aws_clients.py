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
from botocore.exceptions import ClientError

# botocore's DEBUG records carry response bodies, and tunneling responses carry tokens.
logging.getLogger("botocore").setLevel(logging.INFO)

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from botocore.model import OperationModel
    from mypy_boto3_iotsecuretunneling import IoTSecureTunnelingClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

# botocore's standard retries handle the errors other than throttling: 8 attempts of at most 5 + 10 s,
# with backoffs that add up to about 6 s. Not adaptive mode: its rate limiter lives in one client, and
# each concurrent invocation has its own, which never sees what the others send; it only slowed the
# retries of a freshly throttled call further, to as little as one request per 2 s.
_RETRYING = Config(
    retries={"mode": "standard", "total_max_attempts": 8},
    connect_timeout=5,
    read_timeout=10,
)
# Throttling is retried by _retry_throttling instead: botocore's throttling backoff (1 s doubling, full
# jitter) capped at 2 s rather than 20. A burst of Creates comes from independent invocations, and long
# backoffs leave the service's rate unused while the last of them sleep: a 100-tunnel burst against
# 10 OpenTunnel/s took twice its 9 s. Throttled calls are retried for up to 90 s after their first answer,
# however many attempts that takes, so a burst of hundreds of tunnels still succeeds.
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
    operation: "OperationModel",
    request_dict: dict[str, Any],
    **_: Any,
) -> float | bool | None:
    """botocore's ``needs-retry`` answer: a delay to retry after, False to give up, or None to let
    botocore's standard retries decide.

    Answering before them also keeps botocore's retry quota, which they share across a client's calls,
    from refusing a throttled call its retry.
    """
    # The context lives as long as the call, through all its attempts.
    deadline = request_dict["context"].setdefault(_DEADLINE, time.monotonic() + _THROTTLING_BUDGET_S)
    if response is None:
        return None
    parsed = response[1]
    code = parsed.get("Error", {}).get("Code")
    if code == "LimitExceededException" and operation.name == "OpenTunnel":
        # The account's open-tunnel quota, which backing off does not change: botocore counts it as
        # throttling and would retry it before failing the deploy.
        raise ClientError(parsed, operation.name)
    if code not in _THROTTLING_CODES:
        return None
    delay = random.random() * min(_THROTTLING_CAP_S, 2.0 ** (attempts - 1))  # noqa: S311 (jitter, no secret)
    return delay if time.monotonic() + delay < deadline else False


def _with_throttling_retries(client: _Client) -> _Client:
    # The service's own event, where botocore's standard retries listen: first there answers first. (The
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
