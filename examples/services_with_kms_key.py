"""Three services through one tunnel, with the token secrets encrypted by a customer managed key."""

from aws_cdk import Duration, RemovalPolicy, Stack, Tags
from aws_cdk import aws_kms as kms
from cdk_secure_tunnel import SecureTunnel
from tunnel_outputs import add_tunnel_outputs

from constructs import Construct


class ServicesWithKmsKeyStack(Stack):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(
            scope, construct_id, description="SSH, RDP and HTTP through one tunnel, secrets under a CMK"
        )
        key = kms.Key(
            self,
            "TokenKey",
            description="Encrypts secure tunnel access tokens",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        tunnel = SecureTunnel(
            self,
            "Support",
            thing="kiosk-3",
            services=["SSH", "RDP", "HTTP"],
            max_lifetime=Duration.hours(8),
            description="Vendor support session for kiosk-3",
            tags={"cost-center": "field-ops"},
            encryption_key=key,
        )
        Tags.of(self).add("environment", "production")
        add_tunnel_outputs(self, tunnel)
