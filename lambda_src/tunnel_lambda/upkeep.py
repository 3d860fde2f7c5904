"""The stack's upkeep function: Secrets Manager rotations and scheduled renewals share one Lambda.

Secrets Manager invokes it with ``{"Step", "SecretId", "ClientRequestToken"}`` (see ``rotation``);
the EventBridge Scheduler schedule with ``{"stackId", "renewWithinMinutes"}`` (see ``renewal``).

>>> handle({"Step": "createSecret", "SecretId": arn, "ClientRequestToken": version})  # doctest: +SKIP
"""

from collections.abc import Mapping
from typing import Any

from . import renewal, rotation


def handle(event: Mapping[str, Any], _context: object = None) -> list[str] | None:
    if "Step" in event:
        rotation.on_rotation(event)
        return None
    return renewal.on_schedule(event)
