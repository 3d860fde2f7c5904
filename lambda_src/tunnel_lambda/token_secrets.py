"""The documents the handler writes to the token secrets.

Each secret holds one client access token and everything a person or a tool needs to use it, in the
same field names AWS IoT uses for the device's notification::

    {"clientAccessToken": "...", "clientMode": "source", "region": "eu-west-1",
     "services": ["SSH"], "thingName": "pump-7", "tunnelId": "...", "tunnelArn": "...",
     "expiresAt": "2026-11-23T19:00:00+00:00"}

With ``renew`` on, each document also carries a ``renewal`` record (see ``tunnel_spec.Renewal``): the
secrets are the only place that outlives every tunnel of the resource.
"""

import json
from collections.abc import Iterable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from . import aws_clients, tunnels
from .tunnel_spec import Destination, Owner, Renewal, TunnelSpec
from .tunnels import OpenedTunnel, TunnelRef

# Secrets Manager's staging labels: the version readers get, and the one a rotation is preparing.
CURRENT = "AWSCURRENT"
PENDING = "AWSPENDING"


def token_document(
    mode: str,
    token: str,
    destination: Destination,
    tunnel: TunnelRef,
    renewal: Mapping[str, Any] | None = None,
) -> str:
    document: dict[str, Any] = {
        "clientAccessToken": token,
        "clientMode": mode.lower(),
        "region": tunnel.region,
        "services": list(destination.services),
        "thingName": destination.thing_name,
        "tunnelId": tunnel.tunnel_id,
        "tunnelArn": tunnel.tunnel_arn,
        "expiresAt": tunnel.expires_at.isoformat(timespec="seconds"),
    }
    if renewal is not None:
        document["renewal"] = dict(renewal)
    return json.dumps(document)


def store_tokens(
    tokens: Mapping[str, str], spec: TunnelSpec, tunnel: TunnelRef, renewal: Renewal | None = None
) -> None:
    """Write each token the spec has a secret for; tokens without a secret (a thing's) are dropped."""
    client = aws_clients.secrets()
    record = renewal.to_json() if renewal is not None else None
    for mode, secret_arn in spec.secret_arns().items():
        if mode in tokens:
            document = token_document(mode, tokens[mode], spec, tunnel, record)
            client.put_secret_value(SecretId=secret_arn, SecretString=document)


def open_and_store(
    spec: TunnelSpec,
    owner: Owner,
    owner_tags: Mapping[str, str],
    renewal_of: Renewal | None = None,
) -> OpenedTunnel:
    """Open a tunnel and write its tokens, or close it again: a tunnel whose tokens nobody holds is waste.

    ``renewal_of`` is the record of the resource this tunnel renews; without it, with ``renew`` on, the
    new tunnel is the resource's first and the record names it.
    """
    opened = tunnels.open_tunnel(spec, owner_tags)
    renewal = renewal_of
    if renewal is None and spec.renew:
        renewal = Renewal(spec, owner, resource_tunnel_id=opened.tunnel_id)
    try:
        store_tokens(opened.tokens, spec, opened, renewal)
    except BaseException:
        # The caller never learns this tunnel's id when we fail (and the provider framework sends no
        # Delete after a failed Create), so a tunnel left open here would belong to no resource.
        tunnels.close(opened.tunnel_id)
        raise
    return opened


def read_document(
    secret_arn: str, version_id: str | None = None, stage: str = CURRENT
) -> dict[str, Any] | None:
    """A secret's token document, or None while it holds none (the placeholder, or no such version)."""
    arguments = {"VersionId": version_id} if version_id else {}
    try:
        value = aws_clients.secrets().get_secret_value(SecretId=secret_arn, VersionStage=stage, **arguments)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in (
            "ResourceNotFoundException",
            "InvalidRequestException",
        ):
            return None
        raise
    try:
        document = json.loads(value.get("SecretString") or "")
    except json.JSONDecodeError:
        return None
    return document if isinstance(document, dict) and "tunnelId" in document else None


def read_documents(secret_arns: Iterable[str]) -> dict[str, dict[str, Any] | None]:
    """Each secret's token document (see ``read_document``) by ARN, each secret read once."""
    return {secret_arn: read_document(secret_arn) for secret_arn in dict.fromkeys(secret_arns)}


def refresh_renewal(documents: Mapping[str, Mapping[str, Any] | None], renewal: Renewal | None) -> None:
    """Bring the renewal record in each secret's document (keyed by ARN) up to date after an update.

    The token stays as it is: only the record (or, with ``renew`` turned off, its absence) changes.
    """
    record = renewal.to_json() if renewal is not None else None
    client = aws_clients.secrets()
    for secret_arn, document in documents.items():
        if document is None or document.get("renewal") == record:
            continue
        refreshed = {key: value for key, value in document.items() if key != "renewal"}
        if record is not None:
            refreshed["renewal"] = record
        client.put_secret_value(SecretId=secret_arn, SecretString=json.dumps(refreshed))
