"""The stack's upkeep function: Secrets Manager rotations and scheduled renewals share one Lambda.

Secrets Manager invokes it with ``{"Step", "SecretId", "ClientRequestToken"}`` (see ``rotation``);
the EventBridge Scheduler schedule with ``{"stackId", "renewWithinMinutes", "intervalMinutes"}`` (see
``renewal``).

>>> handle({"Step": "createSecret", "SecretId": arn, "ClientRequestToken": version})  # doctest: +SKIP
"""

from collections.abc import Mapping
from typing import Any

from . import aws_clients, renewal, rotation


def handle(event: Mapping[str, Any], context: object = None) -> list[str] | None:
    with aws_clients.invocation(context):
        if "Step" in event:
            rotation.on_rotation(event)
            return None
        return renewal.on_schedule(event)
