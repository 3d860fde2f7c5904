"""The custom resource provider shared by every SecureTunnel in a stack.

One handler per stack keeps the template small and the IAM policy fixed in size: its statements are
scoped by tags that name the stack, not by the ARNs of each tunnel or secret, so a stack with hundreds of
tunnels has the same handler policy as a stack with one.
"""

from typing import cast

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Stack, aws_lambda
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr

from constructs import Construct

from .lambda_code import python_function
from .per_stack import stack_singleton
from .policies import (
    acknowledge,
    allow_key_once,
    find_tunnels_statement,
    notify_things_statement,
    open_tunnels_statement,
    template_tags_statement,
    this_stacks_secrets_statement,
    this_stacks_tunnels_statement,
)

_ACKNOWLEDGMENTS = {
    "AwsSolutions-IAM5[Resource::*]": (
        "OpenTunnel, TagResource and UntagResource have no tunnel resource type in the service "
        "authorization reference, so only '*' matches them; OpenTunnel is restricted to requests that tag "
        "the new tunnel with this stack's id, and tagging to the template's tag keys (never the "
        "cdk-secure-tunnel: keys that say which stack owns a tunnel). ListTunnels has none either: Delete "
        "lists the region's open tunnels to close the ones a lost race left open for the deleted resource."
    ),
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]": (  # noqa: E501
        "The provider framework's own function role is built by aws-cdk-lib with this managed policy; it "
        "only grants writing the function's logs."
    ),
    "AwsSolutions-L1": (
        "The provider framework's Node.js runtime is fixed by aws-cdk-lib; the tunnel handler itself runs "
        "Python 3.14, the newest runtime aws-cdk-lib knows."
    ),
}


class TunnelProvider(Construct):
    """The tunnel handler and its provider framework, created once per stack.

    >>> from aws_cdk import App
    >>> stack = Stack(App(), "Pumps")
    >>> provider = TunnelProvider.of(stack)
    >>> provider is TunnelProvider.of(stack), provider.service_token.startswith("${Token[")
    (True, True)
    """

    CONSTRUCT_ID = "CdkSecureTunnelProvider"

    @classmethod
    def of(cls, scope: Construct) -> "TunnelProvider":
        return stack_singleton(cls, scope, cls.CONSTRUCT_ID)

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.handler_role, self.handler = python_function(
            self,
            "Handler",
            handler="tunnel_lambda.custom_resource.on_event",
            description="cdk-secure-tunnel: IoT secure tunnel custom resource handler",
            role_description="Opens, rotates and closes this stack's IoT secure tunnels",
            # Below the provider framework's own 15 minutes. The handler reads the time left from its
            # context: retries stop 100 s before this, which is kept for closing a tunnel it could not
            # record (tunnel_lambda/aws_clients.py, CLEANUP_RESERVE_S).
            timeout=Duration.minutes(10),
        )
        self._grant_tunneling()
        self._keys: set[kms.IKey] = set()
        self.provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=self.handler,
            log_group=logs.LogGroup(
                self,
                "ProviderLogs",
                retention=logs.RetentionDays.ONE_YEAR,
                removal_policy=RemovalPolicy.DESTROY,
            ),
        )
        self.service_token = self.provider.service_token
        handler_id = Stack.of(self).resolve(
            Stack.of(self).get_logical_id(cast(aws_lambda.CfnFunction, self.handler.node.default_child))
        )
        acknowledge(
            self,
            _ACKNOWLEDGMENTS,
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::<{handler_id}.Arn>:*]",
                reason="The provider framework may invoke any version of the stack's own tunnel handler.",
            ),
        )

    def allow_key(self, key: kms.IKey) -> None:
        """Let the handler write tokens to secrets encrypted with ``key``, and read them back."""
        allow_key_once(self.handler_role, key, self._keys)

    def _grant_tunneling(self) -> None:
        for statement in (
            open_tunnels_statement(),
            this_stacks_tunnels_statement(),
            notify_things_statement(),
            template_tags_statement(),
        ):
            self.handler_role.add_to_policy(statement)
        self.handler_role.add_to_policy(find_tunnels_statement())
        # Every write is a compare-and-set: the new version is written under the handler's own label,
        # then AWSCURRENT is moved to it from the version that was read (tunnel_lambda/token_secrets.py).
        self.handler_role.add_to_policy(
            this_stacks_secrets_statement(
                "WriteThisStacksTokenSecrets",
                ["secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"],
            )
        )
        # Update and Delete read the token secrets: they say which tunnel is current (renewal opens
        # successors) and whether a failed update left a secret naming another tunnel. Granted whether or
        # not a tunnel renews: an update that turns renewal off applies the policy before the handler
        # updates or deletes the tunnels that did renew.
        self.handler_role.add_to_policy(
            this_stacks_secrets_statement("ReadThisStacksTokenSecrets", ["secretsmanager:GetSecretValue"])
        )
