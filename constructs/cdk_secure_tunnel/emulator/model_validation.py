"""Input validation driven by botocore's model of the service, answered the way AWS answers it.

Every constraint comes from the model (required members, lengths, ranges, patterns, enums), so a model
update changes the emulator without code changes. Constraint violations become one ValidationException
listing all of them in AWS's wording; a value of the wrong JSON type becomes a SerializationException,
as AWS's JSON protocol parser rejects it before any constraint is checked.

>>> try:
...     validate("DescribeTunnel", {"tunnelId": "not a tunnel id!"})
... except ServiceError as error:
...     print(error.code, error.message)
ValidationException 1 validation error detected: Value 'not a tunnel id!' at 'tunnelId' failed to
satisfy constraint: Member must satisfy regular expression pattern: ...
"""

import re
import sys
import unicodedata
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, cast

from .errors import ServiceError, validation_error

if TYPE_CHECKING:
    from botocore.model import ListShape, OperationModel, ServiceModel, Shape, StructureShape

SERVICE_NAME = "iotsecuretunneling"

# The model's patterns are Java regular expressions: Unicode property classes such as \p{L} are not in
# Python's re, so they are expanded to explicit code point ranges (or [...] wrapping outside a class).
_PROPERTY = re.compile(r"\\([pP])\{([A-Za-z]{1,2})\}")


@cache
def service_model() -> "ServiceModel":
    """botocore's model of AWS IoT Secure Tunneling, loaded once."""
    # Imported on first use: the pytest plugin loads this package in every test session, and botocore
    # takes a sixth of a second to import.
    import botocore.session  # noqa: PLC0415

    return botocore.session.get_session().get_service_model(SERVICE_NAME)


def operation_model(operation: str) -> "OperationModel":
    return service_model().operation_model(operation)


@cache
def _category_runs() -> tuple[tuple[int, int, str], ...]:
    """(first, last, category) runs over all code points, computed once (a quarter second)."""
    runs: list[tuple[int, int, str]] = []
    start, current = 0, unicodedata.category(chr(0))
    for code_point in range(1, sys.maxunicode + 1):
        category = unicodedata.category(chr(code_point))
        if category != current:
            runs.append((start, code_point - 1, current))
            start, current = code_point, category
    runs.append((start, sys.maxunicode, current))
    return tuple(runs)


@cache
def _category_ranges(category: str) -> str:
    """Code point ranges of a Unicode general category (``L``) or subcategory (``Lu``) as class text."""
    merged: list[list[int]] = []
    for first, last, run_category in _category_runs():
        if not run_category.startswith(category):
            continue
        if merged and merged[-1][1] == first - 1:
            merged[-1][1] = last
        else:
            merged.append([first, last])
    return "".join(f"\\U{first:08x}-\\U{last:08x}" for first, last in merged)


def translate_pattern(pattern: str) -> str:
    """A Java pattern from the model as a Python ``re`` pattern (only ``\\p{..}`` classes differ here).

    >>> bool(re.fullmatch(translate_pattern(r"[\\p{L}\\p{N}]+"), "Zürich٣"))
    True
    >>> bool(re.fullmatch(translate_pattern(r"[^\\p{C}]+"), "zero\\u200bwidth"))
    False
    """
    out: list[str] = []
    in_class = False
    index = 0
    while index < len(pattern):
        match = _PROPERTY.match(pattern, index)
        if match:
            negated, category = match.group(1) == "P", match.group(2)
            ranges = _category_ranges(category)
            if in_class:
                if negated:
                    raise ValueError(f"\\P{{{category}}} inside a class is not supported: {pattern}")
                out.append(ranges)
            else:
                out.append(f"[{'^' if negated else ''}{ranges}]")
            index = match.end()
            continue
        char = pattern[index]
        if char == "\\":
            out.append(pattern[index : index + 2])
            index += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]":
            in_class = False
        out.append(char)
        index += 1
    return "".join(out)


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(translate_pattern(pattern))


def validate(operation: str, params: Any) -> None:
    """Raise ServiceError unless ``params`` is a valid input for ``operation``.

    Patterns must match the whole value, as AWS's Java validators do.
    """
    shape = operation_model(operation).input_shape
    if not isinstance(params, dict):
        raise ServiceError("SerializationException", "Start of structure or map expected")
    if shape is None:
        return
    problems: list[str] = []
    _check_structure(shape, params, "", problems)
    if problems:
        count = len(problems)
        raise validation_error(
            f"{count} validation error{'s' if count > 1 else ''} detected: {'; '.join(problems)}"
        )


def _render(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, list):
        return "[" + ", ".join(str(item) for item in value) + "]"
    return str(value)


def _check_structure(
    shape: "StructureShape", value: Mapping[str, Any], path: str, problems: list[str]
) -> None:
    for name, member in shape.members.items():
        member_path = f"{path}.{name}" if path else name
        if value.get(name) is not None:
            _check(member, value[name], member_path, problems)
        elif name in shape.required_members:
            problems.append(_failed(None, member_path, "Member must not be null"))


def _check(shape: "Shape", value: Any, path: str, problems: list[str]) -> None:
    kind = shape.type_name
    expected = _JSON_TYPES.get(kind, (object, "a value"))
    # bool is an int in Python but a distinct type in JSON.
    wrong_type = not isinstance(value, expected[0]) or (isinstance(value, bool) and kind != "boolean")
    if wrong_type:
        raise ServiceError("SerializationException", f"Expected {expected[1]} at '{path}'")
    if kind in ("list", "string", "integer", "long"):
        _check_bounds(shape, value, path, problems)
    if kind == "structure":
        _check_structure(cast("StructureShape", shape), value, path, problems)
    elif kind == "list":
        for position, item in enumerate(value, start=1):
            item_path = f"{path}.{position}.member"
            if item is None:
                problems.append(_failed(None, item_path, "Member must not be null"))
            else:
                _check(cast("ListShape", shape).member, item, item_path, problems)
    elif kind == "string":
        enum = shape.metadata.get("enum")
        if enum and value not in enum:
            problems.append(_failed(value, path, f"Member must satisfy enum value set: [{', '.join(enum)}]"))
        pattern = shape.metadata.get("pattern")
        if pattern and not _compiled(pattern).fullmatch(value):
            problems.append(
                _failed(value, path, f"Member must satisfy regular expression pattern: {pattern}")
            )


_JSON_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "structure": (dict, "a structure"),
    "list": (list, "a list"),
    "string": (str, "a string"),
    "integer": (int, "an integer"),
    "long": (int, "an integer"),
    "boolean": (bool, "a boolean"),
}


def _check_bounds(shape: "Shape", value: Any, path: str, problems: list[str]) -> None:
    """The model's min and max, on a length (strings, lists) or a value (numbers)."""
    numeric = shape.type_name in ("integer", "long")
    measured, what = (value, "value") if numeric else (len(value), "length")
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and measured < low:
        problems.append(_failed(value, path, f"Member must have {what} greater than or equal to {low}"))
    if high is not None and measured > high:
        problems.append(_failed(value, path, f"Member must have {what} less than or equal to {high}"))


def _failed(value: Any, path: str, constraint: str) -> str:
    return f"Value {_render(value)} at '{path}' failed to satisfy constraint: {constraint}"


def without_sensitive(operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` without members the model marks sensitive (tokens), for the emulator's call log."""
    shape = operation_model(operation).input_shape
    return _strip(shape, dict(params)) if shape is not None else dict(params)


def _strip(shape: "Shape", value: Any) -> Any:
    if shape.type_name == "structure" and isinstance(value, dict):
        members = cast("StructureShape", shape).members
        return {
            name: _strip(members[name], item) if name in members else item
            for name, item in value.items()
            if not (name in members and members[name].metadata.get("sensitive"))
        }
    if shape.type_name == "list" and isinstance(value, list):
        return [_strip(cast("ListShape", shape).member, item) for item in value]
    return value
