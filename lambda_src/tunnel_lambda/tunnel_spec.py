"""The tunnel a template asks for, parsed from the custom resource's properties.

CloudFormation hands every scalar property to a custom resource as a string, and properties written by
an older version of the construct can still arrive in Delete and rollback Updates, so parsing is
lenient about types and ignores keys it does not know.

>>> spec = TunnelSpec.from_properties({"Services": ["SSH"], "MaxLifetimeMinutes": "120",
...                                    "SourceTokenSecretArn": "arn:src"})
>>> spec.max_lifetime_minutes, spec.destination_config()
(120, {'services': ['SSH']})
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_LIFETIME_MINUTES = 720

# Tag keys the handler owns on every tunnel: they tie a tunnel to the stack resource that opened it.
OWNER_STACK_TAG = "cdk-secure-tunnel:stack-id"
OWNER_RESOURCE_TAG = "cdk-secure-tunnel:logical-id"
# On a tunnel opened to replace another: lets the Delete of a rolled-back replacement find the tunnel
# CloudFormation keeps, whose tokens the secrets no longer hold.
REPLACES_TAG = "cdk-secure-tunnel:replaces"


@dataclass(frozen=True)
class TunnelSpec:
    services: tuple[str, ...]
    max_lifetime_minutes: int
    source_secret_arn: str
    thing_name: str | None = None
    description: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    destination_secret_arn: str | None = None

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
        )

    def destination_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"services": list(self.services)}
        if self.thing_name:
            config["thingName"] = self.thing_name
        return config

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

    def tags_replacing(self, tunnel_id: str | None) -> dict[str, str]:
        """The tags of a new tunnel, which replaces ``tunnel_id`` if there is one."""
        return {**self.tags(), REPLACES_TAG: tunnel_id} if tunnel_id else self.tags()
