"""What renew=True puts in the template: one schedule per stack, and a stack of 150 tunnels still fits."""

import json
from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk.assertions import Template
from cdk_secure_tunnel import SecureTunnel
from support.templates import handler_statements, synth, upkeep_statements


def schedule_of(template: Template) -> dict[str, Any]:
    (schedule,) = template.find_resources("AWS::Scheduler::Schedule").values()
    return schedule["Properties"]  # type: ignore[no-any-return]


def schedule_input(schedule: dict[str, Any]) -> dict[str, Any]:
    joined = "".join(
        part if isinstance(part, str) else "STACK" for part in schedule["Target"]["Input"]["Fn::Join"][1]
    )
    return json.loads(joined)  # type: ignore[no-any-return]


def renew_within(schedule: dict[str, Any]) -> int:
    return int(schedule_input(schedule)["renewWithinMinutes"])


def test_one_schedule_runs_as_often_as_the_shortest_renewed_lifetime_needs() -> None:
    def build(stack: Stack) -> None:
        SecureTunnel(stack, "Long", thing="pump-7", renew=True)
        SecureTunnel(stack, "Short", thing="pump-8", renew=True, max_lifetime=Duration.minutes(30))
        SecureTunnel(stack, "NotRenewed", thing="pump-9", max_lifetime=Duration.minutes(15))

    schedule = schedule_of(synth(build))
    # 30-minute tunnels: a run every 20 minutes renews what ends within 30, so each is renewed in time.
    assert schedule["ScheduleExpression"] == "rate(20 minutes)"
    assert renew_within(schedule) == 30
    assert schedule_input(schedule)["intervalMinutes"] == 20
    # Scheduler substitutes the run's scheduled time, which retries keep: see renewal.is_due.
    assert schedule_input(schedule)["scheduledTime"] == "<aws.scheduler.scheduled-time>"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}


def test_the_schedule_is_deleted_before_every_renewing_tunnel() -> None:
    def build(stack: Stack) -> None:
        for name in ("One", "Two"):
            SecureTunnel(stack, name, thing="pump-7", renew=True)
        SecureTunnel(stack, "NotRenewed", thing="pump-9")

    template = synth(build).to_json()
    (schedule,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::Scheduler::Schedule"]
    tunnels = {
        name: resource["Properties"].get("Renew")
        for name, resource in template["Resources"].items()
        if resource["Type"] == "Custom::SecureTunnel"
    }
    # CloudFormation deletes what depends on a resource first: no renewal starts during a destroy.
    renewing = sorted(name for name, renew in tunnels.items() if renew)
    assert len(renewing) == 2
    assert sorted(set(schedule["DependsOn"]) & set(tunnels)) == renewing


def test_long_lifetimes_are_still_checked_every_hour() -> None:
    schedule = schedule_of(synth(lambda stack: SecureTunnel(stack, "Tunnel", thing="pump-7", renew=True)))
    assert schedule["ScheduleExpression"] == "rate(60 minutes)"
    assert renew_within(schedule) == 70


def test_renewal_tags_the_source_secret_and_lets_the_handler_find_the_current_tunnel() -> None:
    template = synth(lambda stack: SecureTunnel(stack, "Tunnel", renew=True))
    secrets = template.find_resources("AWS::SecretsManager::Secret")
    renew_tags = {
        name: {tag["Key"]: tag["Value"] for tag in secret["Properties"]["Tags"]}.get(
            "cdk-secure-tunnel:renew"
        )
        for name, secret in secrets.items()
    }
    assert sorted(renew_tags.items(), key=lambda item: item[0]) == [
        (next(name for name in secrets if "Destination" in name), None),
        (next(name for name in secrets if "Source" in name), "true"),
    ]
    sids = {statement.get("Sid") for statement in handler_statements(template)}
    assert "ReadThisStacksTokenSecrets" in sids


def test_150_renewed_and_rotated_tunnels_fit_one_stack_with_fixed_size_policies() -> None:
    def tunnels(count: int) -> Template:
        def build(stack: Stack) -> None:
            for index in range(count):
                SecureTunnel(
                    stack,
                    f"Tunnel{index}",
                    thing=f"device-{index}",
                    rotate_every=Duration.hours(8),
                    renew=True,
                )

        return synth(build)

    one, many = tunnels(1), tunnels(150)
    many.resource_count_is("AWS::Scheduler::Schedule", 1)
    many.resource_count_is("AWS::SecretsManager::RotationSchedule", 150)
    many.resource_count_is("AWS::Lambda::Function", 3)  # handler, provider framework, upkeep
    assert upkeep_statements(many) == upkeep_statements(one)
    assert handler_statements(many) == handler_statements(one)
    # Three resources per tunnel (custom resource, secret, rotation schedule) and a fixed set per stack.
    assert len(many.to_json()["Resources"]) - len(one.to_json()["Resources"]) == 149 * 3
    assert len(many.to_json()["Resources"]) <= 500  # CloudFormation's limit per stack
