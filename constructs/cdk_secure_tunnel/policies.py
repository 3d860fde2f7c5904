"""The IAM statements and cdk-nag acknowledgments of the stack's two functions (handler and upkeep).

Every statement is scoped by the tag that names the stack, not by the ARNs of tunnels or secrets, so the
policies stay the same size however many tunnels a stack has.

>>> statement = open_tunnels_statement(["iot:OpenTunnel"])
>>> statement.sid, statement.to_statement_json()["Condition"] == REQUESTS_THIS_STACKS_TAG
('OpenTunnelsTaggedWithThisStack', True)
"""

from collections.abc import Mapping, Sequence

from aws_cdk import Acknowledgment, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from tunnel_lambda.contract import OWNER_STACK_TAG

from constructs import Construct

from .per_stack import STACK_ID, arn

# IAM conditions: the resource acted on, or the one a request creates, carries this stack's tag.
TAGGED_WITH_THIS_STACK = {"StringEquals": {f"aws:ResourceTag/{OWNER_STACK_TAG}": STACK_ID}}
REQUESTS_THIS_STACKS_TAG = {"StringEquals": {f"aws:RequestTag/{OWNER_STACK_TAG}": STACK_ID}}

# Findings on wildcards both functions need; each function adds its own.
_SHARED_ACKNOWLEDGMENTS = {
    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:tunnel/*]": (
        "Tunnel ids are chosen by the service when a tunnel opens, so no narrower resource exists; "
        "OpenTunnel is restricted to requests that tag the tunnel with this stack's id."
    ),
    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:thing/*]": (
        "Opening and rotating name the destination thing; which things a stack targets is its template's "
        "choice, and the policy must not grow with the number of tunnels."
    ),
    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:*]": (  # noqa: E501
        "Access is limited by condition to secrets tagged with this stack's id, which keeps the policy one "
        "statement however many tunnels the stack has."
    ),
}


def acknowledge(scope: Construct, own: Mapping[str, str], *more: Acknowledgment) -> None:
    """Acknowledge, with reasons, the shared findings plus ``own`` (rule id -> reason) and ``more``."""
    reasons = {**_SHARED_ACKNOWLEDGMENTS, **own}
    Validations.of(scope).acknowledge(
        *(Acknowledgment(id=rule, reason=reason) for rule, reason in reasons.items()), *more
    )


def open_tunnels_statement(actions: Sequence[str]) -> iam.PolicyStatement:
    """Open (and tag) tunnels, only when the request tags the new tunnel with this stack's id."""
    return iam.PolicyStatement(
        sid="OpenTunnelsTaggedWithThisStack",
        actions=list(actions),
        resources=[arn("iot", "tunnel/*"), arn("iot", "thing/*")],
        conditions=REQUESTS_THIS_STACKS_TAG,
    )


def rotate_tokens_statement() -> iam.PolicyStatement:
    return iam.PolicyStatement(
        sid="RotateTunnelTokens",
        actions=["iot:RotateTunnelAccessToken"],
        # A destination rotation names the thing that AWS IoT notifies.
        resources=[arn("iot", "tunnel/*"), arn("iot", "thing/*")],
    )


def this_stacks_secrets_statement(sid: str, actions: Sequence[str]) -> iam.PolicyStatement:
    """``actions`` on the secrets tagged with this stack's id: the token secrets of its tunnels."""
    return iam.PolicyStatement(
        sid=sid,
        actions=list(actions),
        resources=[arn("secretsmanager", "secret:*")],
        conditions=TAGGED_WITH_THIS_STACK,
    )


def allow_key_once(role: iam.IRole, key: kms.IKey, allowed: set[kms.IKey]) -> None:
    """Let ``role`` read and write secrets encrypted with ``key`` (``allowed``: the keys it already may).

    Tunnels of a stack often share a key; one grant serves them all. Exactly these two actions:
    ``grant_encrypt_decrypt`` would add ``kms:ReEncrypt*`` and ``kms:GenerateDataKey*``.
    """
    if key not in allowed:
        allowed.add(key)
        key.grant(role, "kms:Decrypt", "kms:GenerateDataKey")
