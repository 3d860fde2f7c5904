"""Helpers for the rotation and renewal tests: tagged secrets, resources created through the handler, and
Secrets Manager's side of a rotation.

Secrets Manager would invoke the upkeep function itself; here each step is called the way it would be,
with ``{"Step", "SecretId", "ClientRequestToken"}``.
"""

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import boto3
from tunnel_lambda.contract import OWNER_STACK_TAG, RENEW_TAG, ScheduleInput
from tunnel_lambda.custom_resource import on_event
from tunnel_lambda.renewal import on_schedule
from tunnel_lambda.upkeep import handle

from .events import STACK_ID, event

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


def new_secret(renew: bool = False) -> str:
    """A token secret as the construct creates it: the placeholder value and the stack's tags."""
    tags = [{"Key": OWNER_STACK_TAG, "Value": STACK_ID}] + (
        [{"Key": RENEW_TAG, "Value": "true"}] if renew else []
    )
    created = boto3.client("secretsmanager").create_secret(
        Name=f"token-{uuid.uuid4().hex[:8]}", SecretString="placeholder", Tags=tags
    )
    return str(created["ARN"])


def properties(
    *, thing: str | None = "pump-7", destination: bool = False, renew: bool = False
) -> dict[str, Any]:
    props: dict[str, Any] = {
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:framework",
        "Services": ["SSH"],
        "MaxLifetimeMinutes": "60",
        "Description": "cdk-secure-tunnel Test/Tunnel in stack Test",
        "SourceTokenSecretArn": new_secret(renew=renew),
        "Tags": [{"Key": "team", "Value": "ops"}],
    }
    if thing:
        props["ThingName"] = thing
    if destination:
        props["DestinationTokenSecretArn"] = new_secret()
    if renew:
        props["Renew"] = "true"
    return props


def create(props: dict[str, Any]) -> str:
    """Create the resource through the handler; returns its physical id (the first tunnel's id)."""
    return str(on_event(event("Create", props))["PhysicalResourceId"])


def delete(props: dict[str, Any], physical_id: str) -> None:
    on_event(event("Delete", props, PhysicalResourceId=physical_id))


def schedule_event(
    within_minutes: int = 60, interval_minutes: int = 50, scheduled_time: str | None = None
) -> dict[str, str]:
    """The renewal schedule's event as the construct configures it for 60-minute tunnels, with the
    scheduled time Scheduler substitutes (left out when None, as in schedules deployed before it)."""
    schedule = {
        ScheduleInput.STACK_ID: STACK_ID,
        ScheduleInput.RENEW_WITHIN_MINUTES: str(within_minutes),
        ScheduleInput.INTERVAL_MINUTES: str(interval_minutes),
    }
    if scheduled_time is not None:
        schedule[ScheduleInput.SCHEDULED_TIME] = scheduled_time
    return schedule


def scheduler_time(moment: datetime) -> str:
    """A time as Scheduler writes ``<aws.scheduler.scheduled-time>``: whole seconds, UTC, e.g.
    2022-03-22T18:59:43Z."""
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def emulator_now(emulator: Any) -> datetime:
    return datetime.fromtimestamp(emulator.clock.now(), UTC)


def run_schedule(
    emulator: Any, within_minutes: int = 60, interval_minutes: int = 50, scheduled_at: datetime | None = None
) -> list[str]:
    """One run of the renewal schedule, scheduled at ``scheduled_at`` (default: now, on the emulator's
    clock, as a schedule without a flexible time window runs), delivered now."""
    now = emulator_now(emulator)
    event = schedule_event(within_minutes, interval_minutes, scheduler_time(scheduled_at or now))
    return on_schedule(event, now=now)


def rotate(secret_arn: str, steps: tuple[str, ...] = STEPS, version: str | None = None) -> str:
    """Run rotation steps as Secrets Manager would; returns the rotation's version id."""
    version = version or str(uuid.uuid4())
    for step in steps:
        handle({"Step": step, "SecretId": secret_arn, "ClientRequestToken": version})
    return version


def document(secret_arn: str, **version: str) -> dict[str, Any]:
    """The secret's token document: AWSCURRENT's unless ``version`` names another (as a user reads it)."""
    value = boto3.client("secretsmanager").get_secret_value(SecretId=secret_arn, **version)
    return json.loads(value["SecretString"])  # type: ignore[no-any-return]


def stages(secret_arn: str) -> list[str]:
    """Every Secrets Manager staging label (AWS...) on the secret's versions, sorted; the handler's own
    label on the version it last wrote is left out."""
    described = boto3.client("secretsmanager").describe_secret(SecretId=secret_arn)
    labels = (label for labels in described["VersionIdsToStages"].values() for label in labels)
    return sorted(label for label in labels if label.startswith("AWS"))
