"""boto3 clients shared by every invocation of a warm Lambda environment.

Endpoints come from boto3's own configuration (``AWS_ENDPOINT_URL_<SERVICE>``), which is how the tests
point the handler at local services without any hook in this code.
"""

from functools import cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_iotsecuretunneling import IoTSecureTunnelingClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

# Adaptive mode retries throttling with backoff and also slows the shared client down to the rate the
# service accepts, so a burst of tunnels in one stack converges instead of retrying in lockstep.
# Ten attempts with botocore's 20 s backoff cap stay far inside the handler's 5 minute timeout.
_RETRYING = Config(
    retries={"mode": "adaptive", "max_attempts": 10},
    connect_timeout=5,
    read_timeout=20,
)


@cache
def tunneling() -> "IoTSecureTunnelingClient":
    return boto3.client("iotsecuretunneling", config=_RETRYING)


@cache
def secrets() -> "SecretsManagerClient":
    return boto3.client("secretsmanager", config=_RETRYING)
