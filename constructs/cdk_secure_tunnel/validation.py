"""Checks on SecureTunnel's props, run at construction so mistakes surface at synth, not at deploy.

Every check lets unresolved tokens through: their values are only known to CloudFormation. The limits
are the service's own, from botocore's model of IoT Secure Tunneling. Tokens are recognized in Python
(``is_unresolved``): every call into aws-cdk-lib is a round trip to its Node.js process.

>>> check_services(["SSH", "RDP"])
['SSH', 'RDP']
>>> check_services(["SSH", "SSH"])
Traceback (most recent call last):
...
ValueError: services: got ['SSH', 'SSH']; each service may appear only once
"""

import re
import struct
import unicodedata
from collections.abc import Mapping, Sequence

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from tunnel_lambda.contract import (
    MAX_DESCRIPTION_LENGTH,
    MAX_LIFETIME_MINUTES,
    MAX_NAME_LENGTH,
    MAX_SERVICES,
    MAX_TAG_KEY_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    MAX_TAGS,
    MIN_SERVICES,
    NAME_PATTERN,
    OWNER_TAG_COUNT,
    RESERVED_TAG_PREFIXES,
)

# Secrets Manager's rotation rules: rate() in hours or days, at most every 4 hours, at least every 1000 days.
MIN_ROTATION_HOURS = 4
MAX_ROTATION_DAYS = 1000

_NAME = re.compile(NAME_PATTERN)
_NAME_RULE = f"1-{MAX_NAME_LENGTH} characters of a-z, A-Z, 0-9, ':', '_' and '-'"
_TAG_PUNCTUATION = frozenset("_.:/=+-@")

# aws-cdk-lib's token encodings (core/lib/private/encoding.ts): a string token, or a number token written
# into a string; a list token, the only element of its list; and a number token, a double whose top 16
# bits are these.
_STRING_TOKEN = re.compile(r"\$\{Token\[[a-zA-Z0-9:._-]+\]\}|-1\.\d{10,16}e\+289")
_LIST_TOKEN = re.compile(r"#\{Token\[[a-zA-Z0-9:._-]+\]\}")
_NUMBER_TOKEN_BITS = 0xFBFF


def is_unresolved(value: object) -> bool:
    """What ``Token.is_unresolved(value)`` answers, without its round trip to Node.js.

    The same test as aws-cdk-lib's ``unresolved()``, case by case (tests/unit/test_tokens.py holds
    the two side by side):

    >>> is_unresolved("plain"), is_unresolved(["${Token[TOKEN.1]}"]), is_unresolved(-1.8881545897087626e289)
    (False, False, True)
    """
    if isinstance(value, str):
        return "Token[" in value and _STRING_TOKEN.search(value) is not None
    if isinstance(value, bool):  # a JavaScript boolean, never a token
        return False
    if isinstance(value, int | float):
        try:
            double = float(value)
        except OverflowError:  # an int beyond any double, which jsii cannot pass either
            return False
        bits: int = struct.unpack("<Q", struct.pack("<d", double))[0]
        return bits >> 48 == _NUMBER_TOKEN_BITS
    if isinstance(value, list):
        return len(value) == 1 and isinstance(value[0], str) and _LIST_TOKEN.search(value[0]) is not None
    # An IResolvable: any object with a resolve() method.
    return callable(getattr(value, "resolve", None))


def _fail(parameter: str, value: object, allowed: str) -> ValueError:
    return ValueError(f"{parameter}: got {value!r}; {allowed}")


def check_name(parameter: str, value: str) -> str:
    """A thing or service name, as the service's ThingName and Service shapes allow."""
    if not isinstance(value, str) or (
        not is_unresolved(value) and not (len(value) <= MAX_NAME_LENGTH and _NAME.fullmatch(value))
    ):
        raise _fail(parameter, value, f"expected {_NAME_RULE}")
    return value


def check_services(services: Sequence[str]) -> list[str]:
    """1 to 3 distinct service names; a plain string is refused, where ``list()`` would split it.

    >>> check_services("VNC")
    Traceback (most recent call last):
    ...
    ValueError: services: got 'VNC'; expected a list of 1 to 3 service names, e.g. ['VNC'], not a string
    """
    if isinstance(services, str | bytes | bytearray):
        # bytes are a sequence of ints: b"SSH" would be the services 83, 83 and 72.
        text = services if isinstance(services, str) else bytes(services).decode("ascii", "replace")
        kind = "a string" if isinstance(services, str) else "bytes"
        raise _fail(
            "services",
            services,
            f"expected a list of 1 to {MAX_SERVICES} service names, e.g. [{text!r}], not {kind}",
        )
    if not isinstance(services, Sequence):
        raise _fail("services", services, f"expected a list of 1 to {MAX_SERVICES} service names")
    if is_unresolved(services):
        return list(services)
    if not MIN_SERVICES <= len(services) <= MAX_SERVICES:
        raise _fail("services", list(services), f"a tunnel carries {MIN_SERVICES} to {MAX_SERVICES} services")
    for service in services:
        check_name("services", service)
    resolved = [service for service in services if not is_unresolved(service)]
    if len(set(resolved)) != len(resolved):
        raise _fail("services", list(services), "each service may appear only once")
    return list(services)


def _check_duration(parameter: str, value: object, example: str) -> None:
    """A bare number has no unit: ``Duration`` says which one (design guidelines: time is a Duration)."""
    if not isinstance(value, Duration):
        raise _fail(parameter, value, f"expected a Duration, e.g. {example}")


def check_max_lifetime(max_lifetime: Duration) -> float:
    """The lifetime in whole minutes (the API's unit), or a number token for an unresolved Duration."""
    _check_duration("max_lifetime", max_lifetime, "Duration.minutes(60) or Duration.hours(2)")
    # A Duration made from a token in minutes converts to that token; in any other unit, CDK refuses.
    minutes = max_lifetime.to_minutes(integral=False)
    if is_unresolved(minutes):
        return minutes
    if minutes != int(minutes) or not 1 <= minutes <= MAX_LIFETIME_MINUTES:
        raise _fail(
            "max_lifetime",
            max_lifetime.to_human_string(),
            f"expected whole minutes from 1 to {MAX_LIFETIME_MINUTES} (12 hours)",
        )
    return int(minutes)


def _has_control_characters(text: str) -> bool:
    return any(unicodedata.category(character).startswith("C") for character in text)


def check_description(description: str) -> str:
    if not isinstance(description, str):
        raise _fail(
            "description", description, f"expected a string of 1 to {MAX_DESCRIPTION_LENGTH} characters"
        )
    if is_unresolved(description):
        return description
    if not 1 <= len(description) <= MAX_DESCRIPTION_LENGTH or _has_control_characters(description):
        shown = description if len(description) <= 80 else description[:77] + "..."
        raise _fail(
            "description",
            shown,
            f"expected 1 to {MAX_DESCRIPTION_LENGTH} characters without control characters",
        )
    return description


def _is_tag_text(text: str) -> bool:
    """The service's tag pattern ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*``, which Python's re cannot spell."""
    return all(
        character in _TAG_PUNCTUATION or unicodedata.category(character)[0] in "LZN" for character in text
    )


def check_tags(tags: Mapping[str, str], parameter: str = "tags") -> dict[str, str]:
    if not isinstance(tags, Mapping) and not is_unresolved(tags):
        raise _fail(parameter, tags, "expected a mapping of tag keys to values, e.g. {'team': 'ops'}")
    if is_unresolved(tags):
        return dict(tags)
    limit = MAX_TAGS - OWNER_TAG_COUNT
    if len(tags) > limit:
        raise _fail(parameter, f"{len(tags)} tags", f"a tunnel takes at most {limit} tags of yours")
    for key, value in tags.items():
        if is_unresolved(key):
            continue
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_TAG_KEY_LENGTH or not _is_tag_text(key):
            raise _fail(
                f"{parameter} key",
                key,
                f"expected 1-{MAX_TAG_KEY_LENGTH} letters, digits, spaces or _ . : / = + - @",
            )
        if key.lower().startswith(RESERVED_TAG_PREFIXES):
            raise _fail(
                f"{parameter} key",
                key,
                f"keys starting with {' or '.join(RESERVED_TAG_PREFIXES)} are reserved",
            )
        if is_unresolved(value):
            continue
        if not isinstance(value, str) or len(value) > MAX_TAG_VALUE_LENGTH or not _is_tag_text(value):
            raise _fail(
                f"{parameter} value of {key!r}",
                value,
                f"expected {'' if isinstance(value, str) else 'a string of '}"
                f"0-{MAX_TAG_VALUE_LENGTH} letters, digits, spaces or _ . : / = + - @",
            )
    return dict(tags)


def check_rotate_every(rotate_every: Duration) -> str:
    """Secrets Manager's rotation rule for the interval: a ``rate()`` in whole hours or whole days.

    >>> check_rotate_every(Duration.hours(8)), check_rotate_every(Duration.days(30))
    ('rate(8 hours)', 'rate(30 days)')
    """
    _check_duration("rotate_every", rotate_every, "Duration.hours(8) or Duration.days(30)")
    if rotate_every.is_unresolved():
        try:
            return f"rate({rotate_every.to_hours()} hours)"
        # A token Duration converts only to the unit it was made in.
        except Exception:
            return f"rate({rotate_every.to_days()} days)"
    hours = rotate_every.to_hours(integral=False)
    if hours == int(hours) and MIN_ROTATION_HOURS <= hours < 24:
        return f"rate({int(hours)} hours)"
    days = hours / 24
    if days == int(days) and 1 <= days <= MAX_ROTATION_DAYS:
        return "rate(1 day)" if days == 1 else f"rate({int(days)} days)"
    raise _fail(
        "rotate_every",
        rotate_every.to_human_string(),
        f"expected whole hours from {MIN_ROTATION_HOURS} to 23 or whole days from 1 to {MAX_ROTATION_DAYS} "
        "(Secrets Manager rotates at most every 4 hours)",
    )


def check_renewed_lifetime(lifetime_minutes: float, minimum: int) -> None:
    """Renewal opens the next tunnel some minutes before the current one ends, so lifetimes need room."""
    if not is_unresolved(lifetime_minutes) and lifetime_minutes < minimum:
        raise _fail(
            "max_lifetime",
            f"{lifetime_minutes:g} minutes",
            f"renew=True needs at least {minimum} minutes, to open the next tunnel before this one ends",
        )


def check_flag(parameter: str, value: object) -> bool | None:
    """``True``, ``False`` or unset: a string such as ``"false"`` would otherwise count as true."""
    if value is not None and not isinstance(value, bool):
        raise _fail(parameter, value, "expected True or False")
    return value


def check_destination_token_kept(store_destination_token: bool | None, thing_name: str | None) -> None:
    """Without a thing, the destination token's only way to a device is its secret: it must be kept.

    AWS IoT notifies a thing's device of its token on OpenTunnel; with no thing, the handler writes the
    token to the destination secret or drops it, and a dropped token leaves the tunnel's device end
    unusable for as long as the tunnel lives.
    """
    if store_destination_token is False and thing_name is None:
        raise ValueError(
            "store_destination_token: got False without a thing; the destination token then reaches no "
            "device (only a thing's device gets it from AWS IoT): leave it unset or pass a thing"
        )


def check_encryption_key(key: kms.IKey) -> kms.IKey:
    """A key whose grants reach it: not an alias imported by name alone.

    ``kms.Alias.from_alias_name`` gives an alias whose target key is unknown to CDK, and CDK drops every
    grant made through it: the handler could not encrypt the token secrets (every Create would fail at
    deploy), and ``grant_read_source_token`` would not let anyone decrypt them. Granting through the
    ``kms:ResourceAliases`` condition key instead would allow whichever key in the account the alias
    names at the time, so whoever may retarget the alias would choose the key, and the grants CDK makes
    through the secrets would still be empty. The key itself is always at hand: its ARN, or
    ``kms.Alias.from_alias_attributes(..., alias_target_key=key)`` to keep using the alias's name.
    """
    if not hasattr(key, "key_arn"):
        raise _fail(
            "encryption_key", key, "expected a kms.IKey, e.g. kms.Key(...) or kms.Key.from_key_arn(...)"
        )
    alias_name = getattr(key, "alias_name", None)
    if alias_name is not None:
        try:
            key.alias_target_key  # type: ignore[attr-defined]  # noqa: B018  (raises for an alias imported by name)
        except RuntimeError:
            raise ValueError(
                f"encryption_key: got the alias {alias_name!r} imported by name (kms.Alias.from_alias_name); "
                "grants through it reach no key, so the handler could not write the token secrets: pass "
                "the key (kms.Key.from_key_arn(...)) or "
                "kms.Alias.from_alias_attributes(..., alias_target_key=key)"
            ) from None
    return key
