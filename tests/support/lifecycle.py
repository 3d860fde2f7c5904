"""What the lifecycle and fault tests share: templates to deploy and checks of the end state."""

from collections.abc import Callable
from typing import Any

from aws_cdk import App, Stack
from aws_cdk.assertions import Template
from cdk_secure_tunnel import SecureTunnel
from cdk_secure_tunnel.testing import LocalCloudFormation, TunnelEmulator
from tunnel_lambda.contract import RESOURCE_TYPE


def template_with(**props: Any) -> dict[str, Any]:
    """A stack with one SecureTunnel ``Tunnel``; construct ids stay stable, so logical ids do too."""
    return templates_with(lambda stack: SecureTunnel(stack, "Tunnel", **props))


def templates_with(build: Callable[[Stack], object]) -> dict[str, Any]:
    stack = Stack(App(), "Lifecycle")
    build(stack)
    return dict(Template.from_stack(stack).to_json())


def secret_ids(template: dict[str, Any], tunnel_logical_id: str) -> dict[str, str]:
    """Client mode -> logical id of the secret that holds its token."""
    properties = template["Resources"][tunnel_logical_id]["Properties"]
    return {
        mode: properties[key]["Ref"]
        for mode, key in (("source", "SourceTokenSecretArn"), ("destination", "DestinationTokenSecretArn"))
        if key in properties
    }


def tunnel_ids(template: dict[str, Any]) -> list[str]:
    return [logical_id for logical_id, r in template["Resources"].items() if r["Type"] == RESOURCE_TYPE]


def assert_stack_consistent(
    cloudformation: LocalCloudFormation, template: dict[str, Any], emulator: TunnelEmulator
) -> None:
    """One open tunnel per resource, owned by it, and every secret holding a live token of it."""
    resources = tunnel_ids(template)
    open_ids = sorted(view.tunnel_id for view in emulator.open_tunnels())
    assert open_ids == sorted(cloudformation.physical_id(logical_id) for logical_id in resources)
    for logical_id in resources:
        tunnel = emulator.tunnel(cloudformation.physical_id(logical_id))
        assert tunnel.tags["cdk-secure-tunnel:logical-id"] == logical_id
        assert tunnel.tags["cdk-secure-tunnel:stack-id"] == cloudformation.stack_id
        for mode, secret_id in secret_ids(template, logical_id).items():
            document = cloudformation.token_document(secret_id)
            assert document["tunnelId"] == tunnel.tunnel_id
            assert document["clientMode"] == mode
            assert emulator.is_token_valid(document["clientAccessToken"])
