"""A tunnel to a device that is not an IoT thing: its destination token goes to a secret of its own.

Whatever runs the destination local proxy (a bootstrap script, a fleet agent) is granted that secret.
"""

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from cdk_secure_tunnel import SecureTunnel
from tunnel_outputs import add_tunnel_outputs

from constructs import Construct


class TunnelWithoutThingStack(Stack):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(
            scope, construct_id, description="A tunnel whose destination token is kept in a secret"
        )
        device_agent = iam.Role(
            self,
            "DeviceAgent",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="The on-premises agent that starts the destination local proxy",
        )
        tunnel = SecureTunnel(self, "Bastion", services=["SSH", "HTTP"], max_lifetime=Duration.hours(4))
        tunnel.grant_read_destination_token(device_agent)
        add_tunnel_outputs(self, tunnel)
