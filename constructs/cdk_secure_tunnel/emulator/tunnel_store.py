"""The service's state and its eight operations, with AWS IoT Secure Tunneling's semantics.

``TunnelStore`` knows nothing of HTTP, locks or where time comes from: the emulator validates the input
against the model, holds the lock, and passes each call its region and the current time.
"""

import base64
import binascii
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from tunnel_lambda.contract import DEFAULT_LIFETIME_MINUTES, MAX_SERVICES

from .errors import ServiceError, not_found, validation_error

# Closed tunnels stay describable for (at least) three hours, then the service forgets them.
CLOSED_RETENTION_SECONDS = 3 * 3600
# Undocumented; the model's maximum, so a client that never pages sees everything it would on one page.
DEFAULT_PAGE_SIZE = 100
# The documented example token is 600 URL-safe base64 characters (450 random bytes).
_TOKEN_BYTES = 450
# Client modes as the data plane names them (``local-proxy-mode``).
MODES = ("source", "destination")

Params = Mapping[str, Any]
Response = dict[str, Any]


@dataclass(frozen=True)
class RequestContext:
    """What a call knows besides its parameters: the region it was signed for and the time it arrived."""

    region: str
    now: float


@dataclass(frozen=True)
class TunnelView:
    """A read-only snapshot of one tunnel, for tests to inspect what the service holds.

    ``source_token`` and ``destination_token`` are the tokens issued last; they are valid only while the
    tunnel is OPEN. ``revoked_tokens`` holds every token rotation or closing has invalidated.
    ``connections`` maps ``source``/``destination`` to the data plane's state as DescribeTunnel reports it.
    """

    tunnel_id: str
    arn: str
    region: str
    status: str
    description: str | None
    destination_config: Mapping[str, Any] | None
    lifetime_minutes: int
    tags: Mapping[str, str]
    # Left out of repr(): failed assertions, logs and debuggers print it, and CI keeps what they print.
    source_token: str = field(repr=False)
    destination_token: str = field(repr=False)
    revoked_tokens: frozenset[str] = field(repr=False)
    created_at: datetime
    last_updated_at: datetime
    expires_at: datetime
    closed_at: datetime | None
    connections: Mapping[str, "ConnectionState"]

    @property
    def thing_name(self) -> str | None:
        return None if self.destination_config is None else self.destination_config.get("thingName")

    @property
    def services(self) -> tuple[str, ...]:
        return () if self.destination_config is None else tuple(self.destination_config["services"])


@dataclass(frozen=True)
class ConnectionState:
    """One side's data plane connection as DescribeTunnel reports it."""

    connected: bool
    last_updated_at: float

    def describe(self) -> dict[str, Any]:
        return {
            "status": "CONNECTED" if self.connected else "DISCONNECTED",
            "lastUpdatedAt": self.last_updated_at,
        }


@dataclass
class _Tunnel:
    sequence: int
    tunnel_id: str
    arn: str
    region: str
    description: str | None
    destination_config: dict[str, Any] | None
    lifetime_minutes: int
    tags: dict[str, str]
    # Tokens (and the client tokens bound to them) stay out of repr: tracebacks and pytest's output show it.
    source_token: str = field(repr=False)
    destination_token: str = field(repr=False)
    created_at: float
    last_updated_at: float
    closed_at: float | None = None
    revoked_tokens: set[str] = field(default_factory=set, repr=False)
    # Data plane: the client token each used access token was bound to (None: used without one), and the
    # connection state of each mode.
    token_uses: dict[str, str | None] = field(default_factory=dict, repr=False)
    connections: dict[str, ConnectionState] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    @property
    def expires_at(self) -> float:
        return self.created_at + 60 * self.lifetime_minutes

    def close(self, when: float) -> None:
        self.closed_at = self.last_updated_at = when
        self.revoked_tokens |= {self.source_token, self.destination_token}
        # Closing ends both connections (the data plane drops them when it next looks).
        for mode, state in self.connections.items():
            if state.connected:
                self.connections[mode] = ConnectionState(False, when)

    def token(self, mode: str) -> str:
        return self.source_token if mode == "source" else self.destination_token

    def view(self) -> TunnelView:
        config = self.destination_config
        return TunnelView(
            tunnel_id=self.tunnel_id,
            arn=self.arn,
            region=self.region,
            status="OPEN" if self.is_open else "CLOSED",
            description=self.description,
            destination_config=None if config is None else MappingProxyType(_copy_config(config)),
            lifetime_minutes=self.lifetime_minutes,
            tags=MappingProxyType(dict(self.tags)),
            source_token=self.source_token,
            destination_token=self.destination_token,
            revoked_tokens=frozenset(self.revoked_tokens),
            created_at=_datetime(self.created_at),
            last_updated_at=_datetime(self.last_updated_at),
            expires_at=_datetime(self.expires_at),
            closed_at=None if self.closed_at is None else _datetime(self.closed_at),
            connections=MappingProxyType(dict(self.connections)),
        )


def _datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _copy_config(config: Mapping[str, Any]) -> dict[str, Any]:
    copied = {"thingName": config["thingName"]} if "thingName" in config else {}
    return {**copied, "services": list(config["services"])}


def new_token() -> str:
    return secrets.token_urlsafe(_TOKEN_BYTES)


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _tag_dict(tags: list[Mapping[str, str]]) -> dict[str, str]:
    return {tag["key"]: tag["value"] for tag in tags}


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in tags.items()]


def _destination_config(config: Params | None) -> dict[str, Any] | None:
    """The config as the service keeps it, after the checks the model cannot express."""
    if config is None:
        return None
    services = list(config["services"])
    # The service's quota, applied when the tunnel is created; the error code is the emulator's choice
    # (contract.MAX_SERVICES gives the source and the reasoning).
    if len(services) > MAX_SERVICES:
        raise validation_error(f"A tunnel supports at most {MAX_SERVICES} services, got {len(services)}")
    if len(set(services)) != len(services):
        raise validation_error("Services must be unique within a tunnel")
    return _copy_config(config)


def _encode_page_token(sequence: int) -> str:
    return base64.urlsafe_b64encode(f"before:{sequence}".encode()).decode()


def _decode_page_token(token: str) -> int:
    try:
        prefix, _, sequence = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if prefix != "before":
            raise ValueError(prefix)
        return int(sequence)
    except (ValueError, binascii.Error, UnicodeDecodeError) as error:
        raise validation_error("The nextToken is invalid") from error


class TunnelStore:
    """Every tunnel of one account, across regions (each call sees only its own region's tunnels)."""

    def __init__(self, account: str, max_open_tunnels: int | None = None) -> None:
        self.account = account
        self.max_open_tunnels = max_open_tunnels
        self._tunnels: dict[str, _Tunnel] = {}
        self._notifications: dict[str, list[dict[str, Any]]] = {}
        self._sequence = 0

    # -- what the emulator reads ---------------------------------------------------------------------------

    def views(self) -> list[TunnelView]:
        """Every tunnel the service still knows, newest first."""
        return [tunnel.view() for tunnel in self._newest_first()]

    def view(self, tunnel_id: str) -> TunnelView:
        return self._tunnels[tunnel_id].view()

    def notifications(self, thing_name: str) -> list[dict[str, Any]]:
        return [
            {**message, "services": list(message["services"])}
            for message in self._notifications.get(thing_name, [])
        ]

    def is_token_valid(self, token: str) -> bool:
        return any(
            tunnel.is_open and token in (tunnel.source_token, tunnel.destination_token)
            for tunnel in self._tunnels.values()
        )

    def expire(self, now: float) -> None:
        """Close tunnels whose lifetime has ended and forget those closed for longer than the retention."""
        for tunnel in list(self._tunnels.values()):
            if tunnel.is_open and now >= tunnel.expires_at:
                tunnel.close(tunnel.expires_at)
            if tunnel.closed_at is not None and now >= tunnel.closed_at + CLOSED_RETENTION_SECONDS:
                del self._tunnels[tunnel.tunnel_id]

    # -- what the data plane asks ----------------------------------------------------------------------------

    def admit(self, token: str, mode: str, client_token: str | None) -> tuple[str, tuple[str, ...]]:
        """The tunnel id and services a data plane handshake with ``token`` joins, spending the token.

        Raises ServiceError (with the HTTP status to answer) when the service refuses the handshake.
        """
        tunnel, token_mode = self._token_owner(token)
        if not tunnel.is_open:
            raise ServiceError("TunnelClosed", f"Tunnel {tunnel.tunnel_id} is closed", 403)
        if token_mode is None:
            raise ServiceError(
                "RevokedAccessToken",
                "Invalid access token: it was revoked by RotateTunnelAccessToken; use the newest token",
                403,
            )
        if token_mode != mode:
            raise ServiceError(
                "ModeMismatch",
                f"The access token is a {token_mode} token: connect with local-proxy-mode={token_mode}",
                400,
            )
        used = token in tunnel.token_uses
        bound = tunnel.token_uses.get(token)
        if client_token is None:
            if used:
                raise ServiceError(
                    "UsedAccessToken",
                    "Invalid access token: The access token was previously used and cannot be used again "
                    "(rotate it, or connect with the client token it was first used with)",
                    403,
                )
        elif used and bound != client_token:
            raise ServiceError(
                "ClientTokenMismatch",
                "Client token mismatch: the access token was first used with another client token or none",
                403,
            )
        elif not used and self._client_token_taken(client_token):
            raise ServiceError(
                "ClientTokenInUse", "The client token is already bound to another access token", 409
            )
        tunnel.token_uses[token] = client_token
        return tunnel.tunnel_id, tuple((tunnel.destination_config or {}).get("services", ()))

    def connection_ending(self, tunnel_id: str, mode: str, token: str, revoke_live: bool) -> str | None:
        """Why a live connection must end: ``closed``, ``expired``, ``revoked`` (if ``revoke_live``)."""
        tunnel = self._tunnels.get(tunnel_id)
        if tunnel is None or tunnel.closed_at is not None:
            return "expired" if tunnel is not None and tunnel.closed_at == tunnel.expires_at else "closed"
        return "revoked" if revoke_live and tunnel.token(mode) != token else None

    def set_connected(self, tunnel_id: str, mode: str, connected: bool, now: float) -> None:
        """Record a connection's start or end for DescribeTunnel (a closed tunnel's stay DISCONNECTED)."""
        tunnel = self._tunnels.get(tunnel_id)
        if tunnel is not None and tunnel.is_open:
            tunnel.connections[mode] = ConnectionState(connected, now)

    def handler(self, operation: str) -> Callable[[Params, RequestContext], Response]:
        """The method implementing a model operation name such as ``OpenTunnel``."""
        return {
            "OpenTunnel": self.open_tunnel,
            "CloseTunnel": self.close_tunnel,
            "DescribeTunnel": self.describe_tunnel,
            "ListTunnels": self.list_tunnels,
            "RotateTunnelAccessToken": self.rotate_tunnel_access_token,
            "TagResource": self.tag_resource,
            "UntagResource": self.untag_resource,
            "ListTagsForResource": self.list_tags_for_resource,
        }[operation]

    # -- operations ------------------------------------------------------------------------------------------

    def open_tunnel(self, params: Params, context: RequestContext) -> Response:
        destination_config = _destination_config(params.get("destinationConfig"))
        open_count = sum(tunnel.is_open for tunnel in self._tunnels.values())
        if self.max_open_tunnels is not None and open_count >= self.max_open_tunnels:
            raise ServiceError(
                "LimitExceededException",
                f"The maximum number of open tunnels ({self.max_open_tunnels}) has been reached",
            )
        self._sequence += 1
        tunnel_id = str(uuid.uuid4())
        tunnel = _Tunnel(
            sequence=self._sequence,
            tunnel_id=tunnel_id,
            arn=f"arn:{partition(context.region)}:iot:{context.region}:{self.account}:tunnel/{tunnel_id}",
            region=context.region,
            description=params.get("description"),
            destination_config=destination_config,
            lifetime_minutes=(params.get("timeoutConfig") or {}).get("maxLifetimeTimeoutMinutes")
            or DEFAULT_LIFETIME_MINUTES,
            tags=_tag_dict(params.get("tags") or []),
            source_token=new_token(),
            destination_token=new_token(),
            created_at=context.now,
            last_updated_at=context.now,
            connections={mode: ConnectionState(False, context.now) for mode in MODES},
        )
        self._tunnels[tunnel_id] = tunnel
        self._notify(tunnel, context)
        return {
            "tunnelId": tunnel_id,
            "tunnelArn": tunnel.arn,
            "sourceAccessToken": tunnel.source_token,
            "destinationAccessToken": tunnel.destination_token,
        }

    def close_tunnel(self, params: Params, context: RequestContext) -> Response:
        tunnel = self._find(params["tunnelId"], context)
        if tunnel.is_open:
            tunnel.close(context.now)
        if params.get("delete"):
            del self._tunnels[tunnel.tunnel_id]
        return {}

    def describe_tunnel(self, params: Params, context: RequestContext) -> Response:
        tunnel = self._find(params["tunnelId"], context)
        described: dict[str, Any] = {
            "tunnelId": tunnel.tunnel_id,
            "tunnelArn": tunnel.arn,
            "status": "OPEN" if tunnel.is_open else "CLOSED",
            "sourceConnectionState": tunnel.connections["source"].describe(),
            "destinationConnectionState": tunnel.connections["destination"].describe(),
            "timeoutConfig": {"maxLifetimeTimeoutMinutes": tunnel.lifetime_minutes},
            "createdAt": tunnel.created_at,
            "lastUpdatedAt": tunnel.last_updated_at,
        }
        if tunnel.description is not None:
            described["description"] = tunnel.description
        if tunnel.destination_config is not None:
            described["destinationConfig"] = _copy_config(tunnel.destination_config)
        if tunnel.tags:
            described["tags"] = _tag_list(tunnel.tags)
        return {"tunnel": described}

    def list_tunnels(self, params: Params, context: RequestContext) -> Response:
        token = params.get("nextToken")
        before = None if token is None else _decode_page_token(token)
        thing_name = params.get("thingName")
        matching = [
            tunnel
            for tunnel in self._newest_first()
            if tunnel.region == context.region
            and (before is None or tunnel.sequence < before)
            and (thing_name is None or (tunnel.destination_config or {}).get("thingName") == thing_name)
        ]
        page = matching[: params.get("maxResults") or DEFAULT_PAGE_SIZE]
        response: Response = {"tunnelSummaries": [self._summary(tunnel) for tunnel in page]}
        if len(page) < len(matching):
            response["nextToken"] = _encode_page_token(page[-1].sequence)
        return response

    def rotate_tunnel_access_token(self, params: Params, context: RequestContext) -> Response:
        mode = params["clientMode"]
        if mode == "SOURCE" and params.get("destinationConfig") is not None:
            raise validation_error("destinationConfig cannot be used with clientMode SOURCE")
        destination_config = _destination_config(params.get("destinationConfig"))
        tunnel = self._find(params["tunnelId"], context)
        if not tunnel.is_open:
            # Undocumented: a closed tunnel has no tokens left to rotate, answered with the one error the
            # model declares for this operation.
            raise not_found(f"Tunnel {tunnel.tunnel_id} is closed")
        response: Response = {"tunnelArn": tunnel.arn}
        if mode in ("SOURCE", "ALL"):
            tunnel.revoked_tokens.add(tunnel.source_token)
            tunnel.source_token = response["sourceAccessToken"] = new_token()
        if mode in ("DESTINATION", "ALL"):
            tunnel.revoked_tokens.add(tunnel.destination_token)
            tunnel.destination_token = response["destinationAccessToken"] = new_token()
        tunnel.last_updated_at = context.now
        if destination_config is not None:
            tunnel.destination_config = destination_config
            self._notify(tunnel, context)
        return response

    def tag_resource(self, params: Params, context: RequestContext) -> Response:
        tunnel = self._find_arn(params["resourceArn"], context)
        tunnel.tags.update(_tag_dict(params["tags"]))
        return {}

    def untag_resource(self, params: Params, context: RequestContext) -> Response:
        tunnel = self._find_arn(params["resourceArn"], context)
        for key in params["tagKeys"]:
            tunnel.tags.pop(key, None)
        return {}

    def list_tags_for_resource(self, params: Params, context: RequestContext) -> Response:
        tunnel = self._find_arn(params["resourceArn"], context)
        return {"tags": _tag_list(tunnel.tags)}

    # -- helpers ---------------------------------------------------------------------------------------------

    def _newest_first(self) -> list[_Tunnel]:
        return sorted(self._tunnels.values(), key=lambda tunnel: tunnel.sequence, reverse=True)

    def _token_owner(self, token: str) -> tuple[_Tunnel, str | None]:
        """The tunnel that issued ``token`` and its mode (None once revoked); ServiceError if none did."""
        for tunnel in self._tunnels.values():
            for mode in MODES:
                if tunnel.token(mode) == token:
                    return tunnel, mode if tunnel.is_open else None
            if token in tunnel.revoked_tokens:
                return tunnel, None
        raise ServiceError("InvalidAccessToken", "Invalid access token: no tunnel has issued it", 403)

    def _client_token_taken(self, client_token: str) -> bool:
        """Whether a current token of an open tunnel is bound to ``client_token`` (unique per account)."""
        return any(
            tunnel.token_uses.get(tunnel.token(mode)) == client_token
            for tunnel in self._tunnels.values()
            if tunnel.is_open
            for mode in MODES
        )

    def _find(self, tunnel_id: str, context: RequestContext) -> _Tunnel:
        tunnel = self._tunnels.get(tunnel_id)
        if tunnel is None or tunnel.region != context.region:
            raise not_found(f"Tunnel {tunnel_id} not found")
        return tunnel

    def _find_arn(self, arn: str, context: RequestContext) -> _Tunnel:
        tunnel = self._tunnels.get(arn.rpartition("/")[2])
        if tunnel is None or tunnel.arn != arn or tunnel.region != context.region:
            raise not_found(f"Resource {arn} not found")
        return tunnel

    def _summary(self, tunnel: _Tunnel) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "tunnelId": tunnel.tunnel_id,
            "tunnelArn": tunnel.arn,
            "status": "OPEN" if tunnel.is_open else "CLOSED",
            "createdAt": tunnel.created_at,
            "lastUpdatedAt": tunnel.last_updated_at,
        }
        if tunnel.description is not None:
            summary["description"] = tunnel.description
        return summary

    def _notify(self, tunnel: _Tunnel, context: RequestContext) -> None:
        """Record what AWS IoT publishes on ``$aws/things/<thing>/tunnels/notify`` for the device."""
        config = tunnel.destination_config
        if config is None or "thingName" not in config:
            return
        self._notifications.setdefault(config["thingName"], []).append(
            {
                "clientAccessToken": tunnel.destination_token,
                "clientMode": "destination",
                "region": context.region,
                "services": list(config["services"]),
            }
        )
