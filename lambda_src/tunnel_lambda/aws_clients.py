"""boto3 clients shared by every invocation of a warm Lambda environment.

Endpoints come from boto3's own configuration (``AWS_ENDPOINT_URL_<SERVICE>``), which is how the tests
point the handler at local services without any hook in this code.
"""

import logging
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

# botocore's DEBUG records carry response bodies, and tunneling responses carry tokens.
logging.getLogger("botocore").setLevel(logging.INFO)

if TYPE_CHECKING:
    from mypy_boto3_iotsecuretunneling import IoTSecureTunnelingClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

# Adaptive mode retries throttling with backoff and also slows the shared client down to the rate the
# service accepts, so a burst of tunnels in one stack converges instead of retrying in lockstep.
# Worst case for one call: 8 attempts of at most 5 + 10 s, and 7 backoffs of at most 20 s, about 260 s.
# The handler's 10 minute timeout (TunnelProvider) covers a failed write followed by the close that
# cleans up after it, so the handler always answers rather than being cut off.
_RETRYING = Config(
    retries={"mode": "adaptive", "max_attempts": 8},
    connect_timeout=5,
    read_timeout=10,
)


def _fail_fast_on_quota(response: Any = None, operation: Any = None, **_: Any) -> None:
    """OpenTunnel's LimitExceededException is the account's open-tunnel quota, which backing off does not
    change; botocore counts it as throttling and would retry it for a minute before failing the deploy."""
    if response is None:
        return
    parsed = response[1]
    if parsed.get("Error", {}).get("Code") == "LimitExceededException":
        raise ClientError(parsed, operation.name)


@cache
def tunneling() -> "IoTSecureTunnelingClient":
    client = boto3.client("iotsecuretunneling", config=_RETRYING)
    client.meta.events.register_first("needs-retry.iotsecuretunneling.OpenTunnel", _fail_fast_on_quota)
    return client


@cache
def secrets() -> "SecretsManagerClient":
    return boto3.client("secretsmanager", config=_RETRYING)
