"""What rotate_on_demand, rotate_every and renew put in the template."""

import re
from typing import Any

import pytest
from aws_cdk import Duration, Stack, Token
from aws_cdk.assertions import Template
from cdk_secure_tunnel import SecureTunnel
from support.templates import dependencies, synth, tunnel_properties, upkeep_statements


def rotation_schedules(template: Template) -> list[dict[str, Any]]:
    return list(template.find_resources("AWS::SecretsManager::RotationSchedule").values())


def test_rotation_on_demand_can_be_turned_off() -> None:
    template = synth(lambda stack: SecureTunnel(stack, "Tunnel", thing="pump-7", rotate_on_demand=False))
    template.resource_count_is("AWS::SecretsManager::RotationSchedule", 0)
    template.resource_count_is("AWS::Scheduler::Schedule", 0)
    template.resource_count_is("AWS::Lambda::Function", 2)


@pytest.mark.parametrize("rotate_on_demand", [None, True], ids=["by default", "asked for"])
def test_rotation_on_demand_gives_each_secret_the_rotation_function_without_a_schedule(
    rotate_on_demand: bool | None,
) -> None:
    template = synth(lambda stack: SecureTunnel(stack, "Tunnel", rotate_on_demand=rotate_on_demand))
    schedules = template.find_resources("AWS::SecretsManager::RotationSchedule")
    assert len(schedules) == 2  # source and destination secret
    (tunnel_id,) = template.find_resources("Custom::SecureTunnel")
    for schedule_id, schedule in schedules.items():
        assert "RotationRules" not in schedule["Properties"]
        assert schedule["Properties"]["RotateImmediatelyOnUpdate"] is False
        function_arn = schedule["Properties"]["RotationLambdaARN"]["Fn::GetAtt"]
        assert function_arn[0].startswith("CdkSecureTunnelUpkeepFunction")
        # The first token must exist, and the function hold its rights, before rotation is configured:
        # the schedule names only its tunnel, and the rest follows from the tunnel and the function.
        assert schedule["DependsOn"] == [tunnel_id]
        before = dependencies(template, schedule_id)
        for needed in ("SecretsManagerInvoke", "UpkeepRoleDefaultPolicy", "HandlerRoleDefaultPolicy"):
            assert any(needed in dependency for dependency in before), needed
    template.has_resource_properties(
        "AWS::Lambda::Function", {"Handler": "tunnel_lambda.upkeep.handle", "Timeout": 600}
    )
    template.has_resource_properties(
        "AWS::Lambda::Permission",
        {"Principal": "secretsmanager.amazonaws.com", "SourceAccount": {"Ref": "AWS::AccountId"}},
    )
    template.resource_count_is("AWS::Scheduler::Schedule", 0)


@pytest.mark.parametrize(
    ("every", "expression"),
    [
        (Duration.hours(4), "rate(4 hours)"),
        (Duration.hours(24), "rate(1 day)"),
        (Duration.days(30), "rate(30 days)"),
    ],
)
def test_rotate_every_adds_a_rotation_rule(every: Duration, expression: str) -> None:
    template = synth(lambda stack: SecureTunnel(stack, "Tunnel", thing="pump-7", rotate_every=every))
    (schedule,) = rotation_schedules(template)
    assert schedule["Properties"]["RotationRules"] == {"ScheduleExpression": expression}


@pytest.mark.parametrize(
    ("props", "message"),
    [
        (
            {"rotate_every": Duration.minutes(90)},
            "rotate_every: got '1 hour 30 minutes'; expected whole hours from 4 to 23 or whole days from 1",
        ),
        ({"rotate_every": Duration.hours(3)}, "rotate_every: got '3 hours'; expected whole hours from 4"),
        ({"rotate_every": Duration.hours(36)}, "rotate_every: got '1 day 12 hours'; expected whole hours"),
        ({"rotate_every": Duration.days(1001)}, "rotate_every: got '1001 days'"),
        (
            {"rotate_every": Duration.hours(8), "rotate_on_demand": False},
            "rotate_on_demand: got False with rotate_every='8 hours'",
        ),
        (
            {"renew": True, "max_lifetime": Duration.minutes(10)},
            "max_lifetime: got '10 minutes'; renew=True needs at least 15 minutes",
        ),
    ],
)
def test_bad_values_are_rejected_with_what_is_allowed(props: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        synth(lambda stack: SecureTunnel(stack, "Tunnel", **props))


def test_an_unresolved_interval_passes_through() -> None:
    def build(stack: Stack) -> None:
        SecureTunnel(
            stack, "Tunnel", thing="pump-7", rotate_every=Duration.hours(Token.as_number({"Ref": "H"}))
        )

    (schedule,) = rotation_schedules(synth(build))
    assert "ScheduleExpression" in schedule["Properties"]["RotationRules"]


def test_scheduled_rotation_satisfies_cdk_nags_rotation_rule() -> None:
    # The secret carries no acknowledgment of AwsSolutions-SMG4: the rule itself passes (see
    # test_template_checks.py, whose SshToExistingThing example rotates on a schedule).
    template = synth(
        lambda stack: SecureTunnel(stack, "Tunnel", thing="pump-7", rotate_every=Duration.hours(8))
    )
    (secret_id,) = template.find_resources("AWS::SecretsManager::Secret")
    (schedule,) = rotation_schedules(template)
    assert schedule["Properties"]["SecretId"] == {"Ref": secret_id}


def test_the_upkeep_policy_is_scoped_by_the_stack_tag() -> None:
    template = synth(lambda stack: SecureTunnel(stack, "Tunnel", rotate_on_demand=True, renew=True))
    statements = {
        statement["Sid"]: statement for statement in upkeep_statements(template) if "Sid" in statement
    }
    stack_tag = {"Ref": "AWS::StackId"}
    assert statements["RotateThisStacksTokenSecrets"]["Condition"] == {
        "StringEquals": {"aws:ResourceTag/cdk-secure-tunnel:stack-id": stack_tag}
    }
    assert statements["ManageThisStacksTunnels"]["Condition"] == {
        "StringEquals": {"aws:ResourceTag/cdk-secure-tunnel:stack-id": stack_tag}
    }
    assert statements["OpenTunnelsTaggedWithThisStack"]["Condition"] == {
        "StringEquals": {"aws:RequestTag/cdk-secure-tunnel:stack-id": stack_tag}
    }
    assert tunnel_properties(template)["Renew"] is True
