"""Stack outputs an operator wants for a tunnel: its id, the token secret's ARN and how to connect."""

from aws_cdk import CfnOutput
from cdk_secure_tunnel import SecureTunnel

from constructs import Construct


def add_tunnel_outputs(scope: Construct, tunnel: SecureTunnel) -> None:
    CfnOutput(scope, "TunnelId", value=tunnel.tunnel_id, description="The tunnel CloudFormation opened")
    CfnOutput(scope, "SourceTokenSecretArn", value=tunnel.source_token_secret.secret_arn)
    CfnOutput(
        scope,
        "ConnectCommand",
        description="Connects to the device (rotates the secret once if its token was spent)",
        value=tunnel.connect_command(),
    )
    CfnOutput(
        scope,
        "LocalProxyCommand",
        description="The same with the reference local proxy; a token connects once: rotate the secret",
        value=tunnel.localproxy_command(),
    )
    if tunnel.destination_token_secret is not None:
        CfnOutput(scope, "DestinationTokenSecretArn", value=tunnel.destination_token_secret.secret_arn)
