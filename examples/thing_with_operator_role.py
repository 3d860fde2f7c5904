"""A thing created in the same stack, SSH and its web UI through one tunnel, and an operator role that may
connect (``grant_connect``): ``cdk-secure-tunnel connect --stack ThingWithOperatorRole --tunnel Maintenance``.
"""

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from cdk_secure_tunnel import SecureTunnel
from tunnel_outputs import add_tunnel_outputs

from constructs import Construct


class ThingWithOperatorRoleStack(Stack):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id, description="A new thing, a tunnel to it and an operator role")
        thing = iot.CfnThing(self, "Gateway", thing_name="gateway-12")
        operator = iam.Role(
            self,
            "Operator",
            assumed_by=iam.AccountRootPrincipal(),
            description="Operators who connect to gateway-12 through its secure tunnel",
        )
        tunnel = SecureTunnel(self, "Maintenance", thing=thing, services=["SSH", "HTTP"])
        tunnel.grant_connect(operator)
        add_tunnel_outputs(self, tunnel)
        CfnOutput(self, "OperatorRoleArn", value=operator.role_arn)
