"""Snapshots of the synthesized templates: every example stack and each option set.

Asset hashes are normalized, so editing the handler changes no snapshot; anything else that changes a
template shows up here as a diff to review (`pytest --snapshot-update` only after reading it).
"""

from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk import App, Duration, Stack, Tags
from aws_cdk import aws_iot as iot
from aws_cdk import aws_kms as kms
from cdk_secure_tunnel import SecureTunnel
from support.templates import normalize_assets
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension


@pytest.fixture
def snapshot_json(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize(
    "stack_name", ["SshToExistingThing", "ThingWithOperatorRole", "ServicesWithKmsKey", "TunnelWithoutThing"]
)
def test_example_stack(
    stack_name: str, example_templates: dict[str, dict[str, Any]], snapshot_json: SnapshotAssertion
) -> None:
    assert example_templates[stack_name] == snapshot_json(matcher=normalize_assets)


def _cfn_thing(stack: Stack) -> None:
    SecureTunnel(stack, "Tunnel", thing=iot.CfnThing(stack, "Thing", thing_name="gateway-12"))


def _everything(stack: Stack) -> None:
    SecureTunnel(
        stack,
        "Tunnel",
        thing="pump-7",
        services=["SSH", "RDP", "HTTP"],
        max_lifetime=Duration.minutes(90),
        description="Vendor support",
        tags={"team": "ops"},
        encryption_key=kms.Key(stack, "Key", enable_key_rotation=True),
        store_destination_token=True,
    )
    Tags.of(stack).add("environment", "dev")


OPTION_SETS: dict[str, Callable[[Stack], object]] = {
    "defaults": lambda stack: SecureTunnel(stack, "Tunnel"),
    "thing_name": lambda stack: SecureTunnel(stack, "Tunnel", thing="pump-7"),
    "cfn_thing": _cfn_thing,
    "every_option": _everything,
    "two_tunnels_share_one_handler": lambda stack: [SecureTunnel(stack, f"Tunnel{i}") for i in range(2)],
    "rotation_and_renewal": lambda stack: SecureTunnel(
        stack,
        "Tunnel",
        thing="pump-7",
        max_lifetime=Duration.hours(2),
        rotate_every=Duration.hours(8),
        renew=True,
    ),
}


@pytest.fixture(scope="module")
def option_templates() -> dict[str, dict[str, Any]]:
    app = App()
    for name, build in OPTION_SETS.items():
        build(Stack(app, name.replace("_", "-")))
    return {stack.stack_name.replace("-", "_"): stack.template for stack in app.synth().stacks}


@pytest.mark.parametrize("option_set", OPTION_SETS)
def test_option_set(
    option_set: str, option_templates: dict[str, dict[str, Any]], snapshot_json: SnapshotAssertion
) -> None:
    assert option_templates[option_set] == snapshot_json(matcher=normalize_assets)
