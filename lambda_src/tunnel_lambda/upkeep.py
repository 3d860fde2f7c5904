"""The stack's upkeep function: Secrets Manager rotations and scheduled renewals share one Lambda.

Secrets Manager invokes it with ``{"Step", "SecretId", "ClientRequestToken"}`` (see ``rotation``);
the EventBridge Scheduler schedule with ``{"stackId", "renewWithinMinutes", "intervalMinutes",
"scheduledTime"}`` (see ``renewal``).

>>> aws = getfixture("local_aws")  # in a test: local AWS, with boto3's environment set
>>> stack_id = "arn:aws:cloudformation:us-east-1:123456789012:stack/Pumps/1"
>>> handle({"stackId": stack_id, "renewWithinMinutes": "60"})
[]
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
