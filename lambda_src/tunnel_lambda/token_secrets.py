"""The documents the handler writes to the token secrets.

Each secret holds one client access token and everything a person or a tool needs to use it, in the
same field names AWS IoT uses for the device's notification::

    {"clientAccessToken": "...", "clientMode": "source", "region": "eu-west-1",
     "services": ["SSH"], "thingName": "pump-7", "tunnelId": "...", "tunnelArn": "...",
     "expiresAt": "2026-11-23T19:00:00+00:00"}
"""

import json
from collections.abc import Mapping

from . import aws_clients
from .tunnel_spec import TunnelSpec
from .tunnels import TunnelRef


def token_document(mode: str, token: str, spec: TunnelSpec, tunnel: TunnelRef) -> str:
    return json.dumps(
        {
            "clientAccessToken": token,
            "clientMode": mode.lower(),
            "region": tunnel.region,
            "services": list(spec.services),
            "thingName": spec.thing_name,
            "tunnelId": tunnel.tunnel_id,
            "tunnelArn": tunnel.tunnel_arn,
            "expiresAt": tunnel.expires_at.isoformat(timespec="seconds"),
        }
    )


def store_tokens(tokens: Mapping[str, str], spec: TunnelSpec, tunnel: TunnelRef) -> None:
    """Write each token the spec has a secret for; tokens without a secret (a thing's) are dropped."""
    client = aws_clients.secrets()
    for mode, secret_arn in spec.secret_arns().items():
        if mode in tokens:
            document = token_document(mode, tokens[mode], spec, tunnel)
            client.put_secret_value(SecretId=secret_arn, SecretString=document)
