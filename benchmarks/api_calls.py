"""The AWS calls the handler makes for each CloudFormation operation, counted against local AWS.

Updates are counted one kind at a time, each on a tunnel freshly created for it (the Create is not
counted), because what an Update does depends on what changed: services and thing rotate tokens in
place, tags are synced in place, lifetime and description replace the tunnel.
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .handler_env import Call, LocalHandler, handler_calls

TUNNELING = "iotsecuretunneling"
SECRETS = "secretsmanager"

Change = Callable[[dict[str, Any]], None]


def _set(key: str, value: Any) -> Change:
    def change(properties: dict[str, Any]) -> None:
        properties[key] = value

    return change


UPDATES: dict[str, Change] = {
    "services": _set("Services", ["SSH", "HTTP"]),
    "thing": _set("ThingName", "device-relocated"),
    "tags": _set("Tags", [{"Key": "team", "Value": "ops"}]),
    "lifetime": _set("MaxLifetimeMinutes", "360"),
    "description": _set("Description", "Maintenance window for device-0"),
}


@dataclass(frozen=True)
class OperationCalls:
    operation: str
    calls: list[Call]
    # What the operation should make at most (the goal), when there is one.
    expected: list[Call] | None = None

    def count(self, service: str) -> int:
        return sum(1 for called, _ in self.calls if called == service)

    @property
    def summary(self) -> str:
        counted = Counter(operation for _, operation in self.calls)
        return ", ".join(f"{operation} x{n}" if n > 1 else operation for operation, n in counted.items())

    @property
    def meets_expectation(self) -> bool:
        return self.expected is None or Counter(self.calls) == Counter(self.expected)


def _create_expectation(secrets: int) -> list[Call]:
    """One IoT call; per secret a read (its version, and whether an earlier delivery of the same request
    stored a tunnel) and a compare-and-set write (PutSecretValue, then UpdateSecretVersionStage)."""
    per_secret = [
        (SECRETS, "GetSecretValue"),
        (SECRETS, "PutSecretValue"),
        (SECRETS, "UpdateSecretVersionStage"),
    ]
    return [(TUNNELING, "OpenTunnel")] + per_secret * secrets


def measure(local: LocalHandler) -> list[OperationCalls]:
    results: list[OperationCalls] = []
    for label, thing, secrets in (("thing, 1 secret", True, 1), ("no thing, 2 secrets", False, 2)):
        local.reset()
        properties = local.properties(0, thing=thing)
        with handler_calls() as calls:
            local.on_event(local.event("Create", properties))
        results.append(OperationCalls(f"Create ({label})", list(calls), _create_expectation(secrets)))
    for kind, change in UPDATES.items():
        local.reset()
        old = local.properties(0)
        tunnel_id = local.on_event(local.event("Create", old))["PhysicalResourceId"]
        new = dict(old)
        change(new)
        update = local.event("Update", new, PhysicalResourceId=tunnel_id, OldResourceProperties=old)
        with handler_calls() as calls:
            local.on_event(update)
        results.append(OperationCalls(f"Update ({kind})", list(calls)))
    local.reset()
    properties = local.properties(0)
    tunnel_id = local.on_event(local.event("Create", properties))["PhysicalResourceId"]
    with handler_calls() as calls:
        local.on_event(local.event("Delete", properties, PhysicalResourceId=tunnel_id))
    results.append(OperationCalls("Delete", list(calls)))
    return results
