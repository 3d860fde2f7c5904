"""The wall time of a Create through the handler beside the same calls made directly with boto3.

Both run warm (clients created, connections open) against the same local services, alternating, so
what differs is only the handler's own work: parsing the event, building the token documents and its
retry bookkeeping. Local services answer in about a millisecond, far faster than AWS, so this
is the handler's overhead at its most visible.
"""

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3

from .approaches import LIFETIME_MINUTES, SERVICES, thing_name
from .handler_env import STACK_ID, LocalHandler
from .measure import median, paired_ratio, spread, stopwatch

if TYPE_CHECKING:
    from mypy_boto3_iotsecuretunneling import IoTSecureTunnelingClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

WARM_UP = 3


@dataclass(frozen=True)
class CreateLatency:
    handler_s: list[float]
    direct_s: list[float]

    @property
    def handler_median_s(self) -> float:
        return median(self.handler_s)

    @property
    def direct_median_s(self) -> float:
        return median(self.direct_s)

    @property
    def ratio(self) -> float:
        return paired_ratio(self.handler_s, self.direct_s)

    @property
    def spread(self) -> float:
        return max(spread(self.handler_s), spread(self.direct_s))


def _direct_create(
    tunneling: "IoTSecureTunnelingClient", secrets: "SecretsManagerClient", index: int, secret_arn: str
) -> None:
    opened = tunneling.open_tunnel(
        description=f"Tunnel{index}",
        destinationConfig={"thingName": thing_name(index), "services": SERVICES},
        timeoutConfig={"maxLifetimeTimeoutMinutes": LIFETIME_MINUTES},
        tags=[{"key": "cdk-secure-tunnel:stack-id", "value": STACK_ID}],
    )
    document = {"clientAccessToken": opened["sourceAccessToken"], "tunnelId": opened["tunnelId"]}
    secrets.put_secret_value(SecretId=secret_arn, SecretString=json.dumps(document))


def measure(local: LocalHandler, runs: int) -> CreateLatency:
    local.reset()
    session = boto3.session.Session()
    tunneling, secrets = session.client("iotsecuretunneling"), session.client("secretsmanager")
    handler_s: list[float] = []
    direct_s: list[float] = []
    for index in range(WARM_UP + runs):
        # Secrets exist before the tunnel in a deployment too: created outside the timed part.
        event: dict[str, Any] = dict(local.event("Create", local.properties(index), index))
        secret_arn = local.new_secret()
        timed = {}
        # Alternating which goes first keeps any after-effect of one (a reused connection, a collection
        # of garbage) from always landing on the other.
        for name in ("handler", "direct")[:: 1 if index % 2 else -1]:
            with stopwatch() as elapsed:
                if name == "handler":
                    local.on_event(event)
                else:
                    _direct_create(tunneling, secrets, index, secret_arn)
            timed[name] = elapsed()
        if index >= WARM_UP:
            handler_s.append(timed["handler"])
            direct_s.append(timed["direct"])
    return CreateLatency(handler_s, direct_s)
