"""The custom resource provider shared by every SecureTunnel in a stack.

One handler per stack keeps the template small and the IAM policy fixed in size: its statements are
scoped by tags that name the stack, not by the ARNs of each tunnel or secret, so a stack with hundreds of
tunnels has the same handler policy as a stack with one.
"""

from collections.abc import Callable
from typing import Any, TypeVar, cast
from weakref import WeakKeyDictionary

from aws_cdk import Acknowledgment, Aws, Duration, RemovalPolicy, Stack, Validations, aws_lambda
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr

from constructs import Construct

from .lambda_code import python_function
from .validation import RESERVED_TAG_PREFIXES

# The tag that ties tunnels and token secrets to their stack (see lambda_src/tunnel_lambda/tunnel_spec.py).
STACK_TAG = f"{RESERVED_TAG_PREFIXES[1]}stack-id"
# Pseudo parameters are the same tokens in every stack: read from aws-cdk-lib once, not at every use.
STACK_ID = Aws.STACK_ID
# IAM conditions: the resource acted on, or the one a request creates, carries this stack's tag.
TAGGED_WITH_THIS_STACK = {"StringEquals": {f"aws:ResourceTag/{STACK_TAG}": STACK_ID}}
REQUESTS_THIS_STACKS_TAG = {"StringEquals": {f"aws:RequestTag/{STACK_TAG}": STACK_ID}}
_PARTITION, _REGION, _ACCOUNT_ID = Aws.PARTITION, Aws.REGION, Aws.ACCOUNT_ID

_Shared = TypeVar("_Shared", bound=Construct)
_T = TypeVar("_T")

# What every tunnel of a stack shares, looked up once per stack: each call into aws-cdk-lib is a round
# trip to its Node.js process, and those round trips are most of a Python app's synth time. jsii hands
# back the same Python object for the same construct, so the stack is a key.
_PER_STACK: "WeakKeyDictionary[Stack, dict[str, Any]]" = WeakKeyDictionary()


def stack_of(scope: Construct) -> Stack:
    """``Stack.of(scope)``, without a round trip when ``scope`` is the stack itself."""
    return scope if isinstance(scope, Stack) else Stack.of(scope)


def per_stack(stack: Stack, key: str, make: Callable[[], _T]) -> _T:
    """``make()``, called once per stack and ``key``."""
    shared = _PER_STACK.setdefault(stack, {})
    if key not in shared:
        shared[key] = make()
    return cast(_T, shared[key])


def stack_singleton(cls: type[_Shared], scope: Construct, construct_id: str) -> _Shared:
    """The stack's one ``cls`` construct under ``construct_id``, created on first use.

    The id is a contract: CloudFormation refuses a new ServiceToken for an existing custom resource.
    """
    stack = stack_of(scope)

    def find_or_create() -> _Shared:
        existing = stack.node.try_find_child(construct_id)
        return existing if isinstance(existing, cls) else cls(stack, construct_id)

    return per_stack(stack, construct_id, find_or_create)


def allow_key_once(role: iam.IRole, key: kms.IKey, allowed: set[kms.IKey]) -> None:
    """Let ``role`` read and write secrets encrypted with ``key`` (``allowed``: the keys it already may).

    Tunnels of a stack often share a key; one grant serves them all. Exactly these two actions:
    ``grant_encrypt_decrypt`` would add ``kms:ReEncrypt*`` and ``kms:GenerateDataKey*``.
    """
    if key not in allowed:
        allowed.add(key)
        key.grant(role, "kms:Decrypt", "kms:GenerateDataKey")


def arn(service: str, resource: str) -> str:
    """An ARN in this stack's partition, region and account."""
    return f"arn:{_PARTITION}:{service}:{_REGION}:{_ACCOUNT_ID}:{resource}"


_ACKNOWLEDGMENTS = {
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]": (  # noqa: E501
        "The provider framework's own function role is built by aws-cdk-lib with this managed policy; it "
        "only grants writing the function's logs."
    ),
    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:tunnel/*]": (
        "Tunnel ids are chosen by the service when a tunnel opens, so no narrower resource exists; "
        "OpenTunnel is further restricted to requests that tag the tunnel with this stack's id."
    ),
    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:thing/*]": (
        "OpenTunnel names the destination thing; which things a stack targets is its template's choice, "
        "and the policy must not grow with the number of tunnels."
    ),
    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:*]": (  # noqa: E501
        "Writes are limited by condition to secrets tagged with this stack's id, which keeps the policy one "
        "statement however many tunnels the stack has."
    ),
    "AwsSolutions-IAM5[Resource::*]": (
        "iot:ListTunnels has no resource-level permissions; Delete lists the region's tunnels to close the "
        "ones a lost race left open for the deleted resource, and describes only those with its description."
    ),
    "AwsSolutions-L1": (
        "The provider framework's Node.js runtime is fixed by aws-cdk-lib; the tunnel handler itself runs "
        "Python 3.14, the newest runtime aws-cdk-lib knows."
    ),
}


class TunnelProvider(Construct):
    """The tunnel handler and its provider framework, created once per stack.

    >>> provider = TunnelProvider.of(scope)  # doctest: +SKIP
    >>> provider.service_token  # doctest: +SKIP
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
        Validations.of(self).acknowledge(
            *(Acknowledgment(id=rule, reason=reason) for rule, reason in _ACKNOWLEDGMENTS.items()),
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::<{handler_id}.Arn>:*]",
                reason="The provider framework may invoke any version of the stack's own tunnel handler.",
            ),
        )

    def allow_key(self, key: kms.IKey) -> None:
        """Let the handler write tokens to secrets encrypted with ``key``, and read them back."""
        allow_key_once(self.handler_role, key, self._keys)

    def _grant_tunneling(self) -> None:
        self.handler_role.add_to_policy(
            iam.PolicyStatement(
                sid="OpenTunnelsTaggedWithThisStack",
                actions=["iot:OpenTunnel"],
                resources=[arn("iot", "tunnel/*"), arn("iot", "thing/*")],
                conditions=REQUESTS_THIS_STACKS_TAG,
            )
        )
        self.handler_role.add_to_policy(
            iam.PolicyStatement(
                sid="ManageTunnels",
                actions=[
                    "iot:DescribeTunnel",
                    "iot:CloseTunnel",
                    "iot:TagResource",
                    "iot:UntagResource",
                ],
                resources=[arn("iot", "tunnel/*")],
            )
        )
        self.handler_role.add_to_policy(
            iam.PolicyStatement(
                sid="RotateTunnelTokens",
                actions=["iot:RotateTunnelAccessToken"],
                # A destination rotation names the thing that AWS IoT notifies.
                resources=[arn("iot", "tunnel/*"), arn("iot", "thing/*")],
            )
        )
        # Delete closes what a lost race left open for the resource it deletes (a renewal or a second
        # delivery of a Create): ListTunnels finds it, as it shows no tags, by its description.
        self.handler_role.add_to_policy(
            iam.PolicyStatement(sid="FindLeftoverTunnels", actions=["iot:ListTunnels"], resources=["*"])
        )
        # Every write is a compare-and-set: the new version is written under the handler's own label,
        # then AWSCURRENT is moved to it from the version that was read (tunnel_lambda/token_secrets.py).
        self.handler_role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteThisStacksTokenSecrets",
                actions=["secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"],
                resources=[arn("secretsmanager", "secret:*")],
                conditions=TAGGED_WITH_THIS_STACK,
            )
        )
        # Update and Delete read the token secrets: they say which tunnel is current (renewal opens
        # successors) and whether a failed update left a secret naming another tunnel. Granted whether or
        # not a tunnel renews: an update that turns renewal off applies the policy before the handler
        # updates or deletes the tunnels that did renew.
        self.handler_role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadThisStacksTokenSecrets",
                actions=["secretsmanager:GetSecretValue"],
                resources=[arn("secretsmanager", "secret:*")],
                conditions=TAGGED_WITH_THIS_STACK,
            )
        )
