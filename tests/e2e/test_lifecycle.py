"""Each stack's custom resources driven as CloudFormation would, checking local AWS after every step."""

from datetime import UTC, datetime
from typing import Any

import pytest
from aws_cdk import Duration
from cdk_secure_tunnel.testing import DeploymentFailed, LocalCloudFormation, TunnelEmulator
from support.lifecycle import assert_stack_consistent, secret_ids, template_with, tunnel_ids
from tunnel_lambda.renewal import on_schedule


@pytest.mark.parametrize(
    "stack_name", ["SshToExistingThing", "ThingWithOperatorRole", "ServicesWithKmsKey", "TunnelWithoutThing"]
)
def test_example_stack_create_and_delete(
    stack_name: str,
    example_templates: dict[str, dict[str, Any]],
    local_aws: Any,
    tunnel_emulator: TunnelEmulator,
) -> None:
    template = example_templates[stack_name]
    cloudformation = LocalCloudFormation(stack_name)
    cloudformation.deploy(template)
    assert_stack_consistent(cloudformation, template, tunnel_emulator)

    cloudformation.destroy()
    assert tunnel_emulator.open_tunnels() == []


BASE = {"thing": "pump-7", "services": ["SSH"], "tags": {"team": "ops"}}
UPDATES = {
    "services": ({"services": ["SSH", "HTTP"]}, False),
    "thing": ({"thing": "pump-8"}, False),
    "tags": ({"tags": {"team": "ops", "cost-center": "42"}}, False),
    "rotation into a new destination secret": ({"store_destination_token": True}, False),
    "lifetime": ({"max_lifetime": Duration.hours(1)}, True),
    "description": ({"description": "Vendor support"}, True),
}


@pytest.mark.parametrize("kind", UPDATES)
def test_update(kind: str, local_aws: Any, tunnel_emulator: TunnelEmulator) -> None:
    change, replaces = UPDATES[kind]
    before, after = template_with(**BASE), template_with(**{**BASE, **change})
    (tunnel,) = tunnel_ids(before)
    cloudformation = LocalCloudFormation()
    cloudformation.deploy(before)
    first_id = cloudformation.physical_id(tunnel)
    old_token = cloudformation.token_document(secret_ids(before, tunnel)["source"])["clientAccessToken"]

    cloudformation.deploy(after)

    assert (cloudformation.physical_id(tunnel) != first_id) is replaces
    assert_stack_consistent(cloudformation, after, tunnel_emulator)
    if replaces:
        assert tunnel_emulator.tunnel(first_id).status == "CLOSED"
    new_token = cloudformation.token_document(secret_ids(after, tunnel)["source"])["clientAccessToken"]
    assert (new_token != old_token) is (kind not in {"tags", "rotation into a new destination secret"})
    cloudformation.destroy()
    assert tunnel_emulator.open_tunnels() == []


def test_rollback_update_restores_every_resource(local_aws: Any, tunnel_emulator: TunnelEmulator) -> None:
    """Two tunnels change; the second fails, so the first (replaced) and the second (in place) roll back."""
    from cdk_secure_tunnel import SecureTunnel  # noqa: PLC0415
    from support.lifecycle import templates_with  # noqa: PLC0415

    def stack(lifetime: Duration, services: list[str]) -> dict[str, Any]:
        return templates_with(
            lambda s: [
                SecureTunnel(s, "First", thing="pump-1", max_lifetime=lifetime),
                SecureTunnel(s, "Second", thing="pump-2", services=services),
            ]
        )

    before, after = stack(Duration.hours(2), ["SSH"]), stack(Duration.hours(1), ["RDP"])
    handler = LocalCloudFormation().handler

    def failing_second_update(event: Any, context: Any) -> Any:
        if event["RequestType"] == "Update" and event["ResourceProperties"].get("Services") == ["RDP"]:
            raise RuntimeError("the device rejected RDP")
        return handler(event, context)

    cloudformation = LocalCloudFormation(handler=failing_second_update)
    cloudformation.deploy(before)
    ids_before = {logical_id: cloudformation.physical_id(logical_id) for logical_id in tunnel_ids(before)}

    with pytest.raises(DeploymentFailed, match="the device rejected RDP"):
        cloudformation.deploy(after)

    assert {
        logical_id: cloudformation.physical_id(logical_id) for logical_id in tunnel_ids(before)
    } == ids_before
    assert_stack_consistent(cloudformation, before, tunnel_emulator)
    assert [view.services for view in tunnel_emulator.open_tunnels() if view.thing_name == "pump-2"] == [
        ("SSH",)
    ]


def test_removing_a_tunnel_from_the_template_closes_it(
    local_aws: Any, tunnel_emulator: TunnelEmulator
) -> None:
    cloudformation = LocalCloudFormation()
    cloudformation.deploy(template_with(**BASE))
    cloudformation.deploy({"Resources": {}})
    assert tunnel_emulator.open_tunnels() == []
    assert len(tunnel_emulator.tunnels()) == 1


def test_turning_renew_off_after_a_renewal_leaves_no_tunnel_behind(
    local_aws: Any, tunnel_emulator: TunnelEmulator
) -> None:
    renewing = {**BASE, "max_lifetime": Duration.hours(1), "renew": True}
    cloudformation = LocalCloudFormation()
    cloudformation.deploy(template_with(**renewing))
    (tunnel,) = tunnel_ids(template_with(**renewing))
    first_id = cloudformation.physical_id(tunnel)
    tunnel_emulator.clock.advance(minutes=50)
    now = datetime.fromtimestamp(tunnel_emulator.clock.now(), UTC)
    (renewed_id,) = on_schedule({"stackId": cloudformation.stack_id, "renewWithinMinutes": "60"}, now=now)

    not_renewing = {**renewing, "renew": False}
    cloudformation.deploy(template_with(**not_renewing))
    cloudformation.deploy(template_with(**{**not_renewing, "tags": {"team": "support"}}))

    assert cloudformation.physical_id(tunnel) == first_id
    assert [view.tunnel_id for view in tunnel_emulator.open_tunnels()] == [renewed_id]
    cloudformation.destroy()
    assert tunnel_emulator.open_tunnels() == []
