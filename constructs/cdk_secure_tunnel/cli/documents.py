"""Where a client access token comes from: a token secret's document or AWS IoT's notify payload.

Both are JSON with the same field names (the handler writes the secret's in the notify payload's words):

>>> payload = '''{"clientAccessToken": "t", "clientMode": "destination", "region": "eu-west-1",
...               "services": ["SSH"]}'''
>>> document = TokenDocument.parse(payload, origin="the notify payload")
>>> document.mode, document.region, document.services
('destination', 'eu-west-1', ('SSH',))
>>> "token=" in repr(document)  # the token stays out of reprs, logs and tracebacks
False
"""

import json
from dataclasses import dataclass, field
from typing import Any

from ..localproxy.errors import ConfigurationError


@dataclass(frozen=True)
class TokenDocument:
    """A token and what is needed to connect with it. ``repr`` leaves the token out."""

    token: str = field(repr=False)
    mode: str
    region: str | None
    services: tuple[str, ...]
    tunnel_id: str | None = None
    thing_name: str | None = None
    expires_at: str | None = None

    @classmethod
    def parse(cls, text: str, *, origin: str) -> "TokenDocument":
        """Parse ``text``; errors name ``origin`` (never the content, which holds a token)."""
        try:
            document: Any = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigurationError(f"{origin}: not JSON ({error.msg} at line {error.lineno})") from None
        if not isinstance(document, dict) or not isinstance(document.get("clientAccessToken"), str):
            raise ConfigurationError(
                f"{origin}: expected a JSON object with clientAccessToken, clientMode, region and services "
                "(what AWS IoT publishes on $aws/things/<thing>/tunnels/notify, or a token secret's value)"
            )
        mode = str(document.get("clientMode", "")).lower()
        if mode not in ("source", "destination"):
            raise ConfigurationError(
                f"{origin}: clientMode is {document.get('clientMode')!r}; expected source or destination"
            )
        services = document.get("services") or []
        return cls(
            token=document["clientAccessToken"],
            mode=mode,
            region=document.get("region") or None,
            services=tuple(str(service) for service in services),
            tunnel_id=document.get("tunnelId") or None,
            thing_name=document.get("thingName") or None,
            expires_at=document.get("expiresAt") or None,
        )

    def require_mode(self, mode: str, origin: str) -> "TokenDocument":
        if self.mode != mode:
            other = "connect" if self.mode == "source" else "device"
            raise ConfigurationError(
                f"{origin}: holds a {self.mode} token, but this command needs a {mode} token; "
                f"use `cdk-secure-tunnel {other}` with it"
            )
        return self
