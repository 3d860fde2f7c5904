"""Stack outputs an operator wants for a tunnel: its id, the secret's ARN and how to read the token."""

from aws_cdk import CfnOutput, Fn
from cdk_secure_tunnel import SecureTunnel

from constructs import Construct


def add_tunnel_outputs(scope: Construct, tunnel: SecureTunnel) -> None:
    CfnOutput(scope, "TunnelId", value=tunnel.tunnel_id, description="The tunnel CloudFormation opened")
    CfnOutput(scope, "SourceTokenSecretArn", value=tunnel.source_token_secret.secret_arn)
    CfnOutput(
        scope,
        "FetchSourceTokenCommand",
        description="Prints the source access token for the local proxy (rotate the secret for a new one)",
        value=Fn.join(
            "",
            [
                "aws secretsmanager get-secret-value --secret-id ",
                tunnel.source_token_secret.secret_arn,
                " --query SecretString --output text | jq -r .clientAccessToken",
            ],
        ),
    )
    if tunnel.destination_token_secret is not None:
        CfnOutput(scope, "DestinationTokenSecretArn", value=tunnel.destination_token_secret.secret_arn)
