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

MAX_LIFETIME_MINUTES = 720

# The construct keeps templates from using this prefix: tag keys with it are the handler's own.
HANDLER_TAG_PREFIX = "cdk-secure-tunnel:"
# Tag keys the handler owns on every tunnel: they tie a tunnel to the stack resource that opened it.
OWNER_STACK_TAG = f"{HANDLER_TAG_PREFIX}stack-id"
OWNER_RESOURCE_TAG = f"{HANDLER_TAG_PREFIX}logical-id"
# On a tunnel opened to replace another: lets the Delete of a rolled-back replacement find the tunnel
# CloudFormation keeps, whose tokens the secrets no longer hold.
REPLACES_TAG = f"{HANDLER_TAG_PREFIX}replaces"
# On a tunnel opened by renewal: the resource's physical id (its first tunnel). Update and Delete act on
# the tunnel the source secret names only when it carries this link.
RENEWS_TAG = f"{HANDLER_TAG_PREFIX}renews"
# On a tunnel opened by a custom resource request: its RequestId. A request delivered twice (the provider
# framework's invocation retried) finds the tunnel the first delivery opened instead of opening another.
REQUEST_TAG = f"{HANDLER_TAG_PREFIX}request-id"
# On every tunnel: the SHA-256 of the resource's binding nonce, which only its token secrets hold (the
# ``bindingNonce`` field). Rotation and renewal act on a tunnel only for a secret that holds the nonce, so a
# secret someone else tagged with this stack's id cannot have this stack's tunnel rotated into it. Set at
# OpenTunnel only: tags with the handler's prefix cannot be changed later (see the README's security notes).
BINDING_TAG = f"{HANDLER_TAG_PREFIX}binding"
# Where the token documents keep the nonce.
BINDING_FIELD = "bindingNonce"


class Destination(Protocol):
    """Where a tunnel leads: a ``TunnelSpec`` (what the template asks) or a described ``Tunnel``."""

    @property
    def services(self) -> tuple[str, ...]: ...

    @property
    def thing_name(self) -> str | None: ...


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

    A tunnel opened before binding existed carries no binding tag and its secrets no nonce: it is accepted
    until it ends (12 hours at most), as the only way to keep renewing what an older version deployed.

    >>> is_bound(binding_tags("n"), "n"), is_bound(binding_tags("n"), "m"), is_bound({}, None)
    (True, False, True)
    """
    expected = binding_tags(nonce).get(BINDING_TAG)
    actual = tags.get(BINDING_TAG)
    if expected is None or actual is None:
        return expected is None and actual is None
    return hmac.compare_digest(expected, actual)


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
            services=tuple(properties.get("Services") or ("SSH",)),
            max_lifetime_minutes=int(properties.get("MaxLifetimeMinutes") or MAX_LIFETIME_MINUTES),
            source_secret_arn=str(properties["SourceTokenSecretArn"]),
            thing_name=properties.get("ThingName") or None,
            description=properties.get("Description") or None,
            tags={str(tag["Key"]): str(tag["Value"]) for tag in properties.get("Tags") or ()},
            destination_secret_arn=properties.get("DestinationTokenSecretArn") or None,
            renew=str(properties.get("Renew", "")).lower() == "true",
        )

    def to_properties(self) -> dict[str, Any]:
        """The properties ``from_properties`` reads back into this spec, as CloudFormation would pass them."""
        properties: dict[str, Any] = {
            "Services": list(self.services),
            "MaxLifetimeMinutes": str(self.max_lifetime_minutes),
            "SourceTokenSecretArn": self.source_secret_arn,
            "Tags": [{"Key": key, "Value": value} for key, value in self.tags.items()],
            "Renew": str(self.renew).lower(),
        }
        optional = {
            "ThingName": self.thing_name,
            "Description": self.description,
            "DestinationTokenSecretArn": self.destination_secret_arn,
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
