"""Whether policy statements allow a request: the part of IAM's evaluation logic these policies use.

Enough to ask behavioural questions of a synthesized policy ("may the handler tag a tunnel with this
stack's owner tag?") instead of comparing its JSON. It follows the IAM User Guide ("Condition operators",
"Single-valued vs. multivalued context keys", "Policy evaluation logic"):

- an explicit Deny wins, then any Allow, else the request is denied;
- every operator block of a Condition must hold, and within one every key; a key holds when any of its
  policy values matches;
- a key absent from the request fails a positive operator and satisfies a negated one (``StringNotLike``);
  ``...IfExists`` holds when the key is absent; ``ForAllValues`` holds for an absent or empty key,
  ``ForAnyValue`` fails;
- condition key names (including the tag key in ``aws:ResourceTag/<key>``) are case-insensitive, values
  are not, except with the ``IgnoreCase`` operators.

Operators it does not know raise, so a new policy cannot pass by being misread.
"""

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Context = Mapping[str, str | Sequence[str]]

_OPERATOR = re.compile(r"(?:(ForAllValues|ForAnyValue):)?(\w+?)(IfExists)?")


def _glob(pattern: str, value: str) -> bool:
    """IAM's wildcards: ``*`` any run of characters, ``?`` any one (no character classes)."""
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _matches(operator: str, value: str, policy_values: Sequence[str]) -> bool:
    """The positive form of ``operator``: whether ``value`` matches any of ``policy_values``."""
    if operator in ("StringEquals", "ArnEquals", "Bool"):
        return value in policy_values
    if operator == "StringEqualsIgnoreCase":
        return value.lower() in (item.lower() for item in policy_values)
    if operator in ("StringLike", "ArnLike"):
        return any(_glob(item, value) for item in policy_values)
    raise AssertionError(f"iam_evaluation does not know the operator {operator}")


_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


def _holds(operator_name: str, key: str, policy_values: Sequence[str], context: Mapping[str, Any]) -> bool:
    match = _OPERATOR.fullmatch(operator_name)
    if match is None:
        raise AssertionError(f"iam_evaluation cannot read the operator {operator_name}")
    qualifier, operator, if_exists = match.groups()
    present = key.lower() in context
    if operator == "Null":
        return (not present) == (str(policy_values[0]).lower() == "true")
    raw = context.get(key.lower())
    values = [] if raw is None else [raw] if isinstance(raw, str) else list(raw)
    negated = operator in _NEGATED
    positive = _NEGATED.get(operator, operator)

    def one(value: str) -> bool:
        return _matches(positive, value, policy_values) != negated

    if qualifier == "ForAllValues":
        return all(one(value) for value in values)
    if qualifier == "ForAnyValue":
        return any(one(value) for value in values)
    if not present:
        return bool(if_exists) or negated
    return one(values[0])


def _conditions_hold(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, Any]) -> bool:
    return all(
        _holds(operator, key, values if isinstance(values, list) else [values], context)
        for operator, block in condition.items()
        for key, values in block.items()
    )


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _applies(statement: Mapping[str, Any], action: str, resource: str, context: Mapping[str, Any]) -> bool:
    actions = _as_list(statement.get("Action", []))
    return (
        any(_glob(pattern.lower(), action.lower()) for pattern in actions)
        and any(_glob(pattern, resource) for pattern in _as_list(statement.get("Resource", "*")))
        and _conditions_hold(statement.get("Condition", {}), context)
    )


def allows(
    statements: Iterable[Mapping[str, Any]], action: str, resource: str, context: Context | None = None
) -> bool:
    """Whether ``statements`` allow ``action`` on ``resource`` with the request's ``context``.

    >>> statement = {"Effect": "Allow", "Action": "iot:TagResource", "Resource": "*",
    ...              "Condition": {"ForAllValues:StringNotLike": {"aws:TagKeys": ["owner:*"]}}}
    >>> allows([statement], "iot:TagResource", "arn:t", {"aws:TagKeys": ["team"]})
    True
    >>> allows([statement], "iot:TagResource", "arn:t", {"aws:TagKeys": ["team", "owner:id"]})
    False
    """
    lowered = {key.lower(): value for key, value in (context or {}).items()}
    applicable = [s for s in statements if _applies(s, action, resource, lowered)]
    return any(s["Effect"] == "Allow" for s in applicable) and not any(
        s["Effect"] == "Deny" for s in applicable
    )
