"""validation.is_unresolved answers as Token.is_unresolved does, without a round trip to Node.js."""

from typing import Any

import jsii
import pytest
from aws_cdk import Aws, Duration, Fn, IResolvable, IResolveContext, TagManager, TagType, Token
from cdk_secure_tunnel.validation import is_unresolved

NUMBER_TOKEN = Token.as_number({"Ref": "Minutes"})
LIST_TOKEN = Token.as_list({"Ref": "Services"})


@jsii.implements(IResolvable)
class _PythonToken:
    """A token written in Python, as a user's app may pass one."""

    creation_stack: list[str] = []  # noqa: RUF012 (IResolvable's attribute)

    def resolve(self, _context: IResolveContext) -> str:
        return "resolved"

    def to_string(self) -> str:
        return "resolved"


def values() -> list[Any]:
    """Strings, numbers, lists and objects, each kind with and without tokens."""
    return [
        "plain",
        "",
        "Token[",
        "${Token[TOKEN.12]}",
        "${Token[]}",
        f"prefix-{Aws.STACK_ID}-suffix",
        Token.as_string({"Ref": "Thing"}),
        Fn.join("-", ["a", Aws.REGION]),
        str(NUMBER_TOKEN),
        f"Token[ {NUMBER_TOKEN}",
        LIST_TOKEN[0],
        0,
        720,
        1.5,
        -1,
        NUMBER_TOKEN,
        Duration.minutes(NUMBER_TOKEN).to_minutes(),
        True,
        False,
        None,
        [],
        ["SSH"],
        ["SSH", "RDP"],
        LIST_TOKEN,
        [LIST_TOKEN[0], "x"],
        [Aws.STACK_ID],
        [1],
        {},
        {"team": Aws.STACK_ID},
        Token.as_any({"Ref": "Thing"}),
        Fn.get_att("Thing", "Arn"),
        TagManager(TagType.KEY_VALUE, "Custom::X").rendered_tags,
        Duration.minutes(5),
        _PythonToken(),
    ]


@pytest.mark.parametrize("value", values(), ids=repr)
def test_agrees_with_aws_cdk_lib(value: Any) -> None:
    assert is_unresolved(value) is Token.is_unresolved(value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 10**400])
def test_numbers_jsii_cannot_pass_are_no_tokens(value: float) -> None:
    # JSON has no NaN or Infinity: jsii's Node.js process fails on them, so Token cannot be asked.
    assert is_unresolved(value) is False
