"""Reading synthesized templates: the tunnel's properties, dependencies, the functions' policies."""

import re
from collections.abc import Callable, Iterator
from typing import Any

from aws_cdk import App, Stack
from aws_cdk.assertions import Match, Template

_ASSET_HASH = re.compile(r"^[0-9a-f]{64}(\.zip)?$")


def normalize_assets(data: Any, path: Any = None) -> Any:
    """A syrupy matcher: asset hashes change with every handler edit, the template's shape does not."""
    if isinstance(data, str) and _ASSET_HASH.match(data):
        return "<asset-hash>.zip" if data.endswith(".zip") else "<asset-hash>"
    return data


def synth(build: Callable[[Stack], object]) -> Template:
    stack = Stack(App(), "Test")
    build(stack)
    return Template.from_stack(stack)


def tunnel_properties(template: Template) -> dict[str, Any]:
    (resource,) = template.find_resources("Custom::SecureTunnel").values()
    return resource["Properties"]  # type: ignore[no-any-return]


def _references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if set(value) == {"Ref"} and isinstance(value["Ref"], str):
            yield value["Ref"]
        elif set(value) == {"Fn::GetAtt"}:
            yield value["Fn::GetAtt"][0]
        else:
            for item in value.values():
                yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def dependencies(template: Template, logical_id: str) -> set[str]:
    """What CloudFormation creates before ``logical_id``: its DependsOn, Refs and GetAtts, transitively."""
    resources = template.to_json()["Resources"]
    found: set[str] = set()
    pending = [logical_id]
    while pending:
        resource = resources[pending.pop()]
        direct = {*resource.get("DependsOn", ()), *_references(resource.get("Properties", {}))}
        new = {name for name in direct if name in resources} - found
        found |= new
        pending += new
    return found


def handler_statements(template: Template) -> list[dict[str, Any]]:
    policies = template.find_resources(
        "AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": Match.string_like_regexp("HandlerRole")}]}}
    )
    (policy,) = policies.values()
    return policy["Properties"]["PolicyDocument"]["Statement"]  # type: ignore[no-any-return]


def upkeep_statements(template: Template) -> list[dict[str, Any]]:
    policies = template.find_resources(
        "AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": Match.string_like_regexp("UpkeepRole")}]}}
    )
    (policy,) = policies.values()
    return policy["Properties"]["PolicyDocument"]["Statement"]  # type: ignore[no-any-return]
