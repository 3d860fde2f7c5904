"""The tunnel a template asks for, parsed from the custom resource's properties.

CloudFormation hands every scalar property to a custom resource as a string, and properties written by
an older version of the construct can still arrive in Delete and rollback Updates, so parsing is
lenient about types and ignores keys it does not know.

>>> spec = TunnelSpec.from_properties({"Services": ["SSH"], "MaxLifetimeMinutes": "120",
...                                    "SourceTokenSecretArn": "arn:src"})
>>> spec.max_lifetime_minutes, destination_config(spec)
(120, {'services': ['SSH']})
"""

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .contract import (
    BINDING_TAG,
    DEFAULT_LIFETIME_MINUTES,
    DEFAULT_SERVICES,
    FIELDS_THAT_REPLACE_THE_TUNNEL,
    FIELDS_THAT_ROTATE_BOTH_TOKENS,
    HANDLER_TAG_PREFIX,
    OWNER_RESOURCE_TAG,
    OWNER_STACK_TAG,
    RENEWS_TAG,
    REPLACES_TAG,
    Property,
)

# Where the token documents keep the resource's binding nonce (see contract.BINDING_TAG).
BINDING_FIELD = "bindingNonce"


class Destination(Protocol):
    """Where a tunnel leads: a ``TunnelSpec`` (what the template asks) or a described ``Tunnel``."""

    @property
    def services(self) -> tuple[str, ...]: ...

    @property
    def thing_name(self) -> str | None: ...


class Configured(Destination, Protocol):
    """A tunnel's whole configuration: a ``TunnelSpec`` or a described ``Tunnel``."""

    @property
    def max_lifetime_minutes(self) -> int: ...

    @property
    def description(self) -> str | None: ...


def changed_fields(spec: "TunnelSpec", tunnel: Configured, fields: tuple[str, ...]) -> list[str]:
    """The ``fields`` in which ``tunnel`` differs from ``spec``.

    >>> from dataclasses import replace
    >>> spec = TunnelSpec(services=("SSH",), max_lifetime_minutes=60, source_secret_arn="arn:src")
    >>> changed_fields(spec, replace(spec, description="new"), FIELDS_THAT_REPLACE_THE_TUNNEL)
    ['description']
    """
    return [name for name in fields if getattr(spec, name) != getattr(tunnel, name)]


def replacing_changes(spec: "TunnelSpec", tunnel: Configured) -> list[str]:
    """What differs that the API cannot change in place: a new tunnel replaces ``tunnel``."""
    return changed_fields(spec, tunnel, FIELDS_THAT_REPLACE_THE_TUNNEL)


def destination_changes(spec: "TunnelSpec", tunnel: Configured) -> list[str]:
    """What differs in the destination: both tokens are rotated with the new destination config."""
    return changed_fields(spec, tunnel, FIELDS_THAT_ROTATE_BOTH_TOKENS)


def destination_config(destination: Destination) -> dict[str, Any]:
    """The API's destinationConfig; AWS IoT notifies the thing whenever a call carries one with a thing."""
    config: dict[str, Any] = {"services": list(destination.services)}
    if destination.thing_name:
        config["thingName"] = destination.thing_name
    return config


def template_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """A tunnel's tags less the handler's own: the tags its template asked for."""
    return {key: value for key, value in tags.items() if not key.startswith(HANDLER_TAG_PREFIX)}


def new_nonce() -> str:
    """A fresh binding nonce for a resource's first tunnel (see ``BINDING_TAG``)."""
    return secrets.token_urlsafe(32)


def binding_tags(nonce: str | None) -> dict[str, str]:
    """The tag that binds a new tunnel to the secrets holding ``nonce``; none for a tunnel without one."""
    return {BINDING_TAG: hashlib.sha256(nonce.encode()).hexdigest()} if nonce else {}


def is_bound(tags: Mapping[str, str], nonce: str | None) -> bool:
    """Whether a tunnel with ``tags`` belongs to the secrets whose documents hold ``nonce``.

    Every tunnel the handler opens carries the binding tag, so a tunnel without one, or a document without
    a nonce, belongs to no secret: a forged secret would drop the nonce to match a tunnel stripped of its tag.

    >>> is_bound(binding_tags("n"), "n"), is_bound(binding_tags("n"), "m")
    (True, False)
    >>> is_bound({}, None), is_bound({}, "n"), is_bound(binding_tags("n"), None)
    (False, False, False)
    """
    expected = binding_tags(nonce).get(BINDING_TAG)
    actual = tags.get(BINDING_TAG)
    return expected is not None and actual is not None and hmac.compare_digest(expected, actual)


@dataclass(frozen=True)
class TunnelSpec:
    services: tuple[str, ...]
    max_lifetime_minutes: int
    source_secret_arn: str
    thing_name: str | None = None
    description: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    destination_secret_arn: str | None = None
    renew: bool = False

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any]) -> "TunnelSpec":
        return cls(
            services=tuple(properties.get(Property.SERVICES) or DEFAULT_SERVICES),
            max_lifetime_minutes=int(
                properties.get(Property.MAX_LIFETIME_MINUTES) or DEFAULT_LIFETIME_MINUTES
            ),
            source_secret_arn=str(properties[Property.SOURCE_TOKEN_SECRET_ARN]),
            thing_name=properties.get(Property.THING_NAME) or None,
            description=properties.get(Property.DESCRIPTION) or None,
            tags={str(tag["Key"]): str(tag["Value"]) for tag in properties.get(Property.TAGS) or ()},
            destination_secret_arn=properties.get(Property.DESTINATION_TOKEN_SECRET_ARN) or None,
            renew=str(properties.get(Property.RENEW, "")).lower() == "true",
        )

    def to_properties(self) -> dict[str, Any]:
        """The properties ``from_properties`` reads back into this spec, as CloudFormation would pass them."""
        properties: dict[str, Any] = {
            Property.SERVICES: list(self.services),
            Property.MAX_LIFETIME_MINUTES: str(self.max_lifetime_minutes),
            Property.SOURCE_TOKEN_SECRET_ARN: self.source_secret_arn,
            Property.TAGS: [{"Key": key, "Value": value} for key, value in self.tags.items()],
            Property.RENEW: str(self.renew).lower(),
        }
        optional = {
            Property.THING_NAME: self.thing_name,
            Property.DESCRIPTION: self.description,
            Property.DESTINATION_TOKEN_SECRET_ARN: self.destination_secret_arn,
        }
        return properties | {key: value for key, value in optional.items() if value}

    def secret_arns(self) -> dict[str, str]:
        """The secret each client mode's token goes to, keyed by the API's client mode."""
        arns = {"SOURCE": self.source_secret_arn}
        if self.destination_secret_arn:
            arns["DESTINATION"] = self.destination_secret_arn
        return arns


@dataclass(frozen=True)
class Owner:
    """The stack resource that owns a tunnel, as carried in the tunnel's tags."""

    stack_id: str
    logical_id: str

    @classmethod
    def of_event(cls, event: Mapping[str, Any]) -> "Owner":
        return cls(stack_id=str(event["StackId"]), logical_id=str(event["LogicalResourceId"]))

    def tags(self) -> dict[str, str]:
        return {OWNER_STACK_TAG: self.stack_id, OWNER_RESOURCE_TAG: self.logical_id}

    def owns(self, tags: Mapping[str, str]) -> bool:
        """Whether a tunnel with these tags was opened for this resource."""
        return self.tags().items() <= tags.items()

    def tags_replacing(self, tunnel_id: str) -> dict[str, str]:
        """The tags of a new tunnel that replaces ``tunnel_id``."""
        return {**self.tags(), REPLACES_TAG: tunnel_id}

    def tags_renewing(self, resource_tunnel_id: str) -> dict[str, str]:
        """The tags of a tunnel opened by renewal, linked to the resource's first tunnel."""
        return {**self.tags(), RENEWS_TAG: resource_tunnel_id}


@dataclass(frozen=True)
class Renewal:
    """What renewal needs to open a resource's next tunnel, kept beside the tokens in the secrets.

    The secrets are the one durable place that outlives every tunnel (closed tunnels vanish from the
    service after hours), so each token document carries this record while ``renew`` is on.

    >>> spec = TunnelSpec(services=("SSH",), max_lifetime_minutes=60, source_secret_arn="arn:src")
    >>> record = Renewal(spec, Owner("stack", "Tunnel"), resource_tunnel_id="t-1").to_json()
    >>> Renewal.from_json(record) == Renewal(spec, Owner("stack", "Tunnel"), "t-1")
    True
    """

    spec: TunnelSpec
    owner: Owner
    resource_tunnel_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "resourceTunnelId": self.resource_tunnel_id,
            "stackId": self.owner.stack_id,
            "logicalResourceId": self.owner.logical_id,
            "properties": self.spec.to_properties(),
        }

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> "Renewal":
        return cls(
            spec=TunnelSpec.from_properties(record["properties"]),
            owner=Owner(stack_id=str(record["stackId"]), logical_id=str(record["logicalResourceId"])),
            resource_tunnel_id=str(record["resourceTunnelId"]),
        )
