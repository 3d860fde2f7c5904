"""The IoT Secure Tunneling calls the handler makes, each returning plain data.

Tokens leave these functions only inside ``OpenedTunnel`` and ``rotate`` results, which the caller
writes straight to Secrets Manager; nothing here logs a response.
"""

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from botocore.exceptions import ClientError

from . import aws_clients
from .contract import DEFAULT_LIFETIME_MINUTES
from .tunnel_spec import Destination, TunnelSpec, destination_config, template_tags

if TYPE_CHECKING:
    from mypy_boto3_iotsecuretunneling.type_defs import TunnelTypeDef

ClientMode = Literal["SOURCE", "DESTINATION", "ALL"]
_CLIENT_MODES: dict[frozenset[str], ClientMode] = {
    frozenset({"SOURCE"}): "SOURCE",
    frozenset({"DESTINATION"}): "DESTINATION",
    frozenset({"SOURCE", "DESTINATION"}): "ALL",
}
_TUNNEL_ID = re.compile(r"^[a-zA-Z0-9_\-+=:]{1,128}$")


@dataclass(frozen=True)
class TunnelRef:
    """What a token document says about the tunnel its token opens."""

    tunnel_id: str
    tunnel_arn: str
    expires_at: datetime

    @property
    def region(self) -> str:
        return self.tunnel_arn.split(":")[3]


@dataclass(frozen=True)
class Tunnel(TunnelRef):
    """What the handler needs to know about an existing tunnel."""

    is_open: bool
    description: str | None
    thing_name: str | None
    services: tuple[str, ...]
    max_lifetime_minutes: int
    tags: Mapping[str, str]
    created_at: datetime

    @classmethod
    def from_description(cls, tunnel: "TunnelTypeDef") -> "Tunnel":
        destination = tunnel.get("destinationConfig", {})
        lifetime = tunnel.get("timeoutConfig", {}).get("maxLifetimeTimeoutMinutes", DEFAULT_LIFETIME_MINUTES)
        created_at = tunnel.get("createdAt", datetime.now(UTC))
        return cls(
            tunnel_id=tunnel["tunnelId"],
            tunnel_arn=tunnel["tunnelArn"],
            is_open=tunnel.get("status") == "OPEN",
            description=tunnel.get("description") or None,
            thing_name=destination.get("thingName") or None,
            services=tuple(destination.get("services", ())),
            max_lifetime_minutes=lifetime,
            tags={tag["key"]: tag["value"] for tag in tunnel.get("tags", ())},
            created_at=created_at,
            expires_at=created_at + timedelta(minutes=lifetime),
        )


@dataclass(frozen=True)
class OpenedTunnel(TunnelRef):
    tokens: Mapping[str, str] = field(repr=False)  # client access tokens: never in a traceback


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in tags.items()]


def open_tunnel(spec: TunnelSpec, owner_tags: Mapping[str, str]) -> OpenedTunnel:
    """Open a tunnel for ``spec``, tagged with its owner in the same call so no tunnel is ever unowned."""
    # Taken before the call: the tunnel is created during it, so this never overstates the expiry.
    requested_at = datetime.now(UTC)
    arguments: dict[str, object] = {
        "destinationConfig": destination_config(spec),
        "timeoutConfig": {"maxLifetimeTimeoutMinutes": spec.max_lifetime_minutes},
        "tags": _tag_list({**spec.tags, **owner_tags}),
    }
    if spec.description:
        arguments["description"] = spec.description
    response = aws_clients.tunneling().open_tunnel(**arguments)  # type: ignore[arg-type]
    return OpenedTunnel(
        tunnel_id=response["tunnelId"],
        tunnel_arn=response["tunnelArn"],
        tokens={
            "SOURCE": response["sourceAccessToken"],
            "DESTINATION": response["destinationAccessToken"],
        },
        expires_at=requested_at + timedelta(minutes=spec.max_lifetime_minutes),
    )


def _is_not_found(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ResourceNotFoundException"


def describe(tunnel_id: str) -> Tunnel | None:
    """The tunnel, or None when the service no longer knows it (closed tunnels vanish after hours)."""
    if not _TUNNEL_ID.match(tunnel_id):
        return None
    try:
        response = aws_clients.tunneling().describe_tunnel(tunnelId=tunnel_id)
    except ClientError as error:
        if _is_not_found(error):
            return None
        raise
    return Tunnel.from_description(response["tunnel"])


def close(tunnel_id: str) -> None:
    """Close a tunnel; one that is already closed, gone or was never opened needs nothing more."""
    if not _TUNNEL_ID.match(tunnel_id):
        return
    try:
        aws_clients.tunneling().close_tunnel(tunnelId=tunnel_id)
    except ClientError as error:
        if not _is_not_found(error):
            raise


@dataclass(frozen=True)
class Summary:
    """An open tunnel as ListTunnels shows it: no tags, so whose it is takes a DescribeTunnel."""

    tunnel_id: str
    description: str | None


def open_tunnels(since: datetime) -> Iterator[Summary]:
    """Every open tunnel of the account in this region created after ``since``, newest first.

    ListTunnels has no botocore paginator: pages are followed through nextToken, and no further than the
    first tunnel created before ``since`` (the list is newest first, closed tunnels included).
    """
    client = aws_clients.tunneling()
    arguments: dict[str, object] = {"maxResults": 100}
    while True:
        response = client.list_tunnels(**arguments)  # type: ignore[arg-type]
        for summary in response.get("tunnelSummaries", ()):
            if summary.get("createdAt", since) < since:
                return
            if summary.get("status") == "OPEN":
                yield Summary(summary["tunnelId"], summary.get("description") or None)
        if not response.get("nextToken"):
            return
        arguments["nextToken"] = response["nextToken"]


def client_mode(modes: Iterable[str]) -> ClientMode:
    """The one rotation that renews the tokens of ``modes``: SOURCE, DESTINATION or both."""
    return _CLIENT_MODES[frozenset(modes)]


def rotate(tunnel_id: str, mode: ClientMode, destination: Destination) -> dict[str, str]:
    """New tokens for ``mode``, keyed SOURCE/DESTINATION; the old ones of that mode stop working.

    Destination rotations resend the destination config, which makes AWS IoT deliver the new token to
    the thing again.
    """
    client = aws_clients.tunneling()
    if mode == "SOURCE":
        response = client.rotate_tunnel_access_token(tunnelId=tunnel_id, clientMode=mode)
    else:
        response = client.rotate_tunnel_access_token(
            tunnelId=tunnel_id,
            clientMode=mode,
            destinationConfig=destination_config(destination),  # type: ignore[arg-type]
        )
    tokens = {}
    if "sourceAccessToken" in response:
        tokens["SOURCE"] = response["sourceAccessToken"]
    if "destinationAccessToken" in response:
        tokens["DESTINATION"] = response["destinationAccessToken"]
    return tokens


def sync_tags(tunnel: Tunnel, desired: Mapping[str, str]) -> None:
    """Make the tunnel's template tags equal ``desired``: one call for what to set, one for what to drop.

    The handler's own tags (owner, replaces, renews) are set by OpenTunnel for the tunnel's whole life and
    never touched here: the IAM policy refuses TagResource and UntagResource on them, so that no role can
    adopt a tunnel into a stack, or take one out of it, by retagging.
    """
    current, wanted = template_tags(tunnel.tags), template_tags(desired)
    stale = sorted(set(current) - set(wanted))
    changed = {key: value for key, value in wanted.items() if current.get(key) != value}
    client = aws_clients.tunneling()
    if stale:
        client.untag_resource(resourceArn=tunnel.tunnel_arn, tagKeys=stale)
    if changed:
        client.tag_resource(resourceArn=tunnel.tunnel_arn, tags=_tag_list(changed))  # type: ignore[arg-type]
