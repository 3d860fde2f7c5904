"""The IAM statements and cdk-nag acknowledgments of the stack's two functions (handler and upkeep).

Every statement is scoped by the tag that names the stack, not by the ARNs of tunnels or secrets, so the
policies stay the same size however many tunnels a stack has.

Nothing offline enforces IAM: tests/functional/test_iam_policies.py checks every statement against AWS's
service authorization reference and asks each role's policy what it allows.

>>> statement = open_tunnels_statement()
>>> statement.sid, statement.to_statement_json()["Condition"] == REQUESTS_THIS_STACKS_TAG
('OpenTunnelsTaggedWithThisStack', True)
"""

from collections.abc import Mapping, Sequence
from typing import cast

from aws_cdk import Acknowledgment, Aws, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from tunnel_lambda.contract import OWNER_STACK_TAG, RESERVED_TAG_PREFIXES

from constructs import Construct

from .per_stack import STACK_ID, arn

# IAM conditions: the resource acted on, or the one a request creates, carries this stack's tag.
TAGGED_WITH_THIS_STACK = {"StringEquals": {f"aws:ResourceTag/{OWNER_STACK_TAG}": STACK_ID}}
REQUESTS_THIS_STACKS_TAG = {"StringEquals": {f"aws:RequestTag/{OWNER_STACK_TAG}": STACK_ID}}
# TagResource and UntagResource may name only the template's tag keys, never the handler's own: ownership
# is set by OpenTunnel's tags alone, so no role can adopt a tunnel into a stack (or take one out) by
# retagging. aws:ResourceTag/<key> matches tag keys case-insensitively, hence the second operator for the
# one key IAM conditions read. An Allow limited this way rather than a Deny with ForAnyValue:StringLike:
# both refuse the reserved keys, but only the Allow can fail closed. ForAnyValue is false when the request
# carries no aws:TagKeys, so such a Deny would not apply; ForAllValues is true then, and the Null
# condition refuses the request instead. (The roles hold no other tagging Allow a Deny would need to beat.)
ONLY_TEMPLATE_TAG_KEYS = {
    "ForAllValues:StringNotLike": {"aws:TagKeys": [f"{prefix}*" for prefix in RESERVED_TAG_PREFIXES]},
    "ForAllValues:StringNotEqualsIgnoreCase": {"aws:TagKeys": [OWNER_STACK_TAG]},
    "Null": {"aws:TagKeys": "false"},
}
# Secrets Manager's requests to KMS for the token secrets carry this kms:ViaService.
_SECRETS_MANAGER = f"secretsmanager.{Aws.REGION}.amazonaws.com"

# Findings on wildcards both functions need; each function adds its own.
_SHARED_ACKNOWLEDGMENTS = {
    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:tunnel/*]": (
        "Tunnel ids are chosen by the service when a tunnel opens, so no narrower resource exists; "
        "describing, closing and rotating are restricted to tunnels tagged with this stack's id."
    ),
    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:thing/*]": (
        "A destination rotation names the thing AWS IoT notifies; which things a stack targets is its "
        "template's choice, and the policy must not grow with the number of tunnels."
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


def open_tunnels_statement() -> iam.PolicyStatement:
    """OpenTunnel, only when the request tags the new tunnel with this stack's id.

    On any resource: the service authorization reference lists no resource type for OpenTunnel (only
    ``"*"`` matches), the IoT developer guide names ``tunnel/*`` and the thing's ARN; ``"*"`` satisfies
    both readings, and the tag condition is what limits it. OpenTunnel's tags need no ``iot:TagResource``
    (README, "The IAM policies").
    """
    return iam.PolicyStatement(
        sid="OpenTunnelsTaggedWithThisStack",
        actions=["iot:OpenTunnel"],
        resources=["*"],
        conditions=REQUESTS_THIS_STACKS_TAG,
    )


def this_stacks_tunnels_statement() -> iam.PolicyStatement:
    """Describe, rotate and close only the tunnels tagged with this stack's id: never a tunnel opened by
    hand or by another stack."""
    return iam.PolicyStatement(
        sid="ManageThisStacksTunnels",
        actions=["iot:DescribeTunnel", "iot:CloseTunnel", "iot:RotateTunnelAccessToken"],
        resources=[arn("iot", "tunnel/*")],
        conditions=TAGGED_WITH_THIS_STACK,
    )


def notify_things_statement() -> iam.PolicyStatement:
    """A destination rotation names the thing AWS IoT notifies.

    The IoT developer guide lets a policy name the thing's ARN for RotateTunnelAccessToken; the reference
    does not (tests/support/iam_reference.py, DECISIONS), and under its reading this allow grants
    nothing. Things carry no tags, so no tag condition could hold here: the tunnel itself is authorized by
    ``this_stacks_tunnels_statement``.
    """
    return iam.PolicyStatement(
        sid="NameTheThingsToNotify",
        actions=["iot:RotateTunnelAccessToken"],
        resources=[arn("iot", "thing/*")],
    )


def template_tags_statement() -> iam.PolicyStatement:
    """Tag and untag tunnels with the template's tag keys only (``ONLY_TEMPLATE_TAG_KEYS``).

    On any resource: the reference lists no tunnel resource type for these actions, so only ``"*"``
    matches them.
    """
    return iam.PolicyStatement(
        sid="TagTunnelsWithTheTemplatesTags",
        actions=["iot:TagResource", "iot:UntagResource"],
        resources=["*"],
        conditions=ONLY_TEMPLATE_TAG_KEYS,
    )


def find_tunnels_statement() -> iam.PolicyStatement:
    """ListTunnels, for Delete to close what a lost race left open for the resource it deletes (a renewal,
    or a second tunnel of the request that opened it): ListTunnels shows no tags, so Delete lists and
    describes only the open tunnels with the resource's description.

    On any resource: the reference lists no resource type and no condition key for ListTunnels.
    """
    return iam.PolicyStatement(sid="FindLeftoverTunnels", actions=["iot:ListTunnels"], resources=["*"])


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

    Tunnels of a stack often share a key; one grant serves them all. Exactly these two actions
    (``grant_encrypt_decrypt`` would add ``kms:ReEncrypt*`` and ``kms:GenerateDataKey*``), and only
    through Secrets Manager: the role has no use for the key outside the token secrets. The statement
    goes into the role's policy, where ``key.grant`` puts it for a key of the same account; ``key.grant``
    takes no conditions, and a ``ViaServicePrincipal`` grantee would move it into the key's policy
    instead (impossible for an imported key, a reference cycle for a key in another stack).
    """
    if key not in allowed:
        allowed.add(key)
        # KMS authorizes the key, never an alias: grant on the alias's key (validation refuses an alias
        # whose key CDK does not know).
        target = cast(kms.IKey, getattr(key, "alias_target_key", key))
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[target.key_arn],
                conditions={"StringEquals": {"kms:ViaService": _SECRETS_MANAGER}},
            )
        )
