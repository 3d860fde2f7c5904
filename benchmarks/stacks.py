"""Stacks of ``count`` tunnels built the three ways (see ``approaches``); importing this starts jsii.

The stack also holds the operator role that will use the tunnels. Only SecureTunnel can give it anything
(read access to each source token); the other two have no token to grant, which is part of what the
comparison shows.
"""

from collections.abc import Callable
from typing import Any

from aws_cdk import App, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iotsecuretunneling as iotsecuretunneling
from aws_cdk import custom_resources as cr
from cdk_secure_tunnel import SecureTunnel

from .approaches import LIFETIME_MINUTES, SERVICES, STACK_NAME, Approach, thing_name


def _secure_tunnels(stack: Stack, operator: iam.Role, count: int) -> None:
    for index in range(count):
        tunnel = SecureTunnel(
            stack,
            f"Tunnel{index}",
            thing=thing_name(index),
            services=SERVICES,
            max_lifetime=Duration.minutes(LIFETIME_MINUTES),
        )
        tunnel.grant_read_source_token(operator)


def _aws_custom_resources(stack: Stack, operator: iam.Role, count: int) -> None:
    # What people write today (see the README's "Why"): openTunnel on create, closeTunnel on delete, and
    # the tokens in the custom resource's response.
    for index in range(count):
        cr.AwsCustomResource(
            stack,
            f"Tunnel{index}",
            on_create=cr.AwsSdkCall(
                service="IoTSecureTunneling",
                action="openTunnel",
                parameters={
                    "destinationConfig": {"thingName": thing_name(index), "services": SERVICES},
                    "timeoutConfig": {"maxLifetimeTimeoutMinutes": LIFETIME_MINUTES},
                },
                physical_resource_id=cr.PhysicalResourceId.from_response("tunnelId"),
            ),
            on_delete=cr.AwsSdkCall(
                service="IoTSecureTunneling",
                action="closeTunnel",
                parameters={"tunnelId": cr.PhysicalResourceIdReference()},
            ),
            policy=cr.AwsCustomResourcePolicy.from_sdk_calls(
                resources=cr.AwsCustomResourcePolicy.ANY_RESOURCE
            ),
        )


def _cfn_tunnels(stack: Stack, operator: iam.Role, count: int) -> None:
    for index in range(count):
        iotsecuretunneling.CfnTunnel(
            stack,
            f"Tunnel{index}",
            destination_config=iotsecuretunneling.CfnTunnel.DestinationConfigProperty(
                thing_name=thing_name(index), services=SERVICES
            ),
            timeout_config=iotsecuretunneling.CfnTunnel.TimeoutConfigProperty(
                max_lifetime_timeout_minutes=LIFETIME_MINUTES
            ),
        )


_BUILDERS: dict[Approach, Callable[[Stack, iam.Role, int], None]] = {
    Approach.SECURE_TUNNEL: _secure_tunnels,
    Approach.AWS_CUSTOM_RESOURCE: _aws_custom_resources,
    Approach.CFN_TUNNEL: _cfn_tunnels,
}


def build_app(approach: Approach, count: int, outdir: str) -> App:
    app = App(outdir=outdir)
    stack = Stack(app, STACK_NAME)
    operator = iam.Role(stack, "Operator", assumed_by=iam.AccountRootPrincipal())
    _BUILDERS[approach](stack, operator, count)
    return app


def template_of(app: App) -> dict[str, Any]:
    template: dict[str, Any] = app.synth().get_stack_by_name(STACK_NAME).template
    return template
