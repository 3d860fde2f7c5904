"""The documents the handler writes to the token secrets.

Each secret holds one client access token and everything a person or a tool needs to use it, in the
same field names AWS IoT uses for the device's notification::

    {"clientAccessToken": "...", "clientMode": "source", "region": "eu-west-1",
     "services": ["SSH"], "thingName": "pump-7", "tunnelId": "...", "tunnelArn": "...",
     "expiresAt": "2026-11-23T19:00:00+00:00"}

With ``renew`` on, each document also carries a ``renewal`` record (see ``tunnel_spec.Renewal``): the
secrets are the only place that outlives every tunnel of the resource. Each also carries the resource's
``bindingNonce`` (see ``contract.BINDING_TAG``).

Every write is a compare-and-set on the ``AWSCURRENT`` label (see ``write_all``): Create, Update, Delete,
renewal and rotation run without coordination, and a writer whose view of the secret is stale must lose
rather than overwrite a newer tunnel with an older one.
"""

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from . import aws_clients, tunnels
from .tunnel_spec import BINDING_FIELD, Destination, Renewal, TunnelSpec, binding_tags
from .tunnels import OpenedTunnel, TunnelRef

# Secrets Manager's staging labels: the version readers get, and the one a rotation is preparing.
CURRENT = "AWSCURRENT"
PENDING = "AWSPENDING"
# Our own label on the version a write creates, until it is made current: a version needs a label to be
# kept, and AWSPENDING belongs to rotations in progress.
WRITING = "CDKSECURETUNNELWRITE"
# In the documents a replacement writes, until CloudFormation deletes the tunnel it replaced: the Delete of
# the replacement can then tell a rollback (the marker is still there) from the end of the resource.
REPLACES_FIELD = "replacesTunnelId"
# How often a write whose own change is settled re-reads a secret that changed under it.
_REWRITES = 5


class WriteConflict(Exception):
    """Another writer changed the secret after it was read: the caller acted on a stale view."""


@dataclass(frozen=True)
class Stored:
    """A secret's current token document (None while it holds none) and the version that holds it."""

    secret_arn: str
    # Out of repr (tracebacks, pytest's output): the document holds the client access token.
    document: dict[str, Any] | None = field(repr=False)
    version_id: str | None


# The document to write given the one the secret holds now, or None to leave the secret as it is.
Change = Callable[[dict[str, Any] | None], dict[str, Any] | None]


def token_document(
    mode: str,
    token: str,
    destination: Destination,
    tunnel: TunnelRef,
    renewal: Mapping[str, Any] | None = None,
    *,
    nonce: str | None = None,
    replaces: str | None = None,
) -> dict[str, Any]:
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
    if nonce is not None:
        document[BINDING_FIELD] = nonce
    if replaces is not None:
        document[REPLACES_FIELD] = replaces
    return document


def read_stored(secret_arn: str, version_id: str | None = None, stage: str = CURRENT) -> Stored:
    """A secret's token document and version; the document is None for the placeholder or no version."""
    arguments = {"VersionId": version_id} if version_id else {}
    try:
        value = aws_clients.secrets().get_secret_value(SecretId=secret_arn, VersionStage=stage, **arguments)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in (
            "ResourceNotFoundException",
            "InvalidRequestException",
        ):
            return Stored(secret_arn, None, None)
        raise
    try:
        document = json.loads(value.get("SecretString") or "")
    except json.JSONDecodeError:
        document = None
    if not (isinstance(document, dict) and "tunnelId" in document):
        document = None
    return Stored(secret_arn, document, value.get("VersionId"))


def read_document(
    secret_arn: str, version_id: str | None = None, stage: str = CURRENT
) -> dict[str, Any] | None:
    """A secret's token document, or None while it holds none (the placeholder, or no such version)."""
    return read_stored(secret_arn, version_id, stage).document


def read_all(secret_arns: Iterable[str]) -> dict[str, Stored]:
    """Each secret's ``Stored`` by ARN, each secret read once."""
    return {secret_arn: read_stored(secret_arn) for secret_arn in dict.fromkeys(secret_arns)}


def resource_nonce(stored: Iterable[Stored]) -> str | None:
    """The binding nonce the resource's secrets hold, if any does."""
    return next(
        (str(s.document[BINDING_FIELD]) for s in stored if s.document and BINDING_FIELD in s.document),
        None,
    )


def compare_and_set(stored: Stored, document: Mapping[str, Any]) -> None:
    """Make ``document`` the secret's current version if ``stored`` still is; else raise WriteConflict.

    Secrets Manager has no conditional PutSecretValue, but moving AWSCURRENT is conditional: the call
    fails unless RemoveFromVersionId names the version that holds the label. So the document is written
    under our own label first, then made current with the version that was read.
    """
    client = aws_clients.secrets()
    written = client.put_secret_value(
        SecretId=stored.secret_arn, SecretString=json.dumps(document), VersionStages=[WRITING]
    )["VersionId"]
    expected = {"RemoveFromVersionId": stored.version_id} if stored.version_id else {}
    try:
        client.update_secret_version_stage(
            SecretId=stored.secret_arn, VersionStage=CURRENT, MoveToVersionId=written, **expected
        )
    except ClientError as error:
        # Secrets Manager answers a mismatched RemoveFromVersionId as an invalid parameter; read again to
        # tell a lost race from any other invalid request.
        if read_stored(stored.secret_arn).version_id != stored.version_id:
            raise WriteConflict(f"{stored.secret_arn} was written by another writer meanwhile") from error
        raise


def write_all(changes: Sequence[tuple[Stored, Change]]) -> None:
    """Apply each change, in order, compare-and-set against the version it was read from.

    The first secret written decides: if it changed since it was read, WriteConflict is raised with
    nothing written, and the caller closes what it opened (or starts over). Once it is written, this
    writer's view is the newest, so a later secret that changed meanwhile (a destination rotation
    finishing) is read again and the change applied to what it holds now.
    """
    decided = False
    for stored, change in changes:
        current = stored
        for _ in range(_REWRITES):
            document = change(current.document)
            if document is None:
                break
            try:
                compare_and_set(current, document)
            except WriteConflict:
                if not decided:
                    raise
                aws_clients.check_deadline(f"writing {current.secret_arn}")
                current = read_stored(current.secret_arn)
                continue
            decided = True
            break
        else:
            raise WriteConflict(f"{stored.secret_arn} kept changing while being written")


def store_tokens(
    tokens: Mapping[str, str],
    spec: TunnelSpec,
    tunnel: TunnelRef,
    stored: Mapping[str, Stored],
    renewal: Renewal | None = None,
    *,
    nonce: str | None = None,
    others: Change | None = None,
    replaces: str | None = None,
) -> None:
    """Write each token the spec has a secret for (tokens without a secret, a thing's, are dropped), the
    source first; ``others`` changes the documents of the secrets that get no token.
    """
    record = renewal.to_json() if renewal is not None else None
    changes: list[tuple[Stored, Change]] = []
    for mode, secret_arn in spec.secret_arns().items():
        if mode in tokens:
            document = token_document(
                mode, tokens[mode], spec, tunnel, record, nonce=nonce, replaces=replaces
            )
            changes.append((stored[secret_arn], _replace_with(document)))
        elif others is not None:
            changes.append((stored[secret_arn], others))
    write_all(changes)


def _replace_with(document: dict[str, Any]) -> Change:
    """A change that writes ``document`` whatever the secret holds (a new tunnel's or new tokens)."""
    return lambda _current: document


def with_record(renewal: Renewal | None, nonce: str | None = None) -> Change:
    """A change that brings a document's renewal record (and binding nonce) up to date; the token stays.

    >>> change = with_record(None)
    >>> change({"tunnelId": "t", "renewal": {}}), change({"tunnelId": "t"}), change(None)
    ({'tunnelId': 't'}, None, None)
    """
    record = renewal.to_json() if renewal is not None else None

    def change(document: dict[str, Any] | None) -> dict[str, Any] | None:
        if document is None:
            return None
        refreshed = {key: value for key, value in document.items() if key != "renewal"}
        if record is not None:
            refreshed["renewal"] = record
        if nonce is not None:
            refreshed[BINDING_FIELD] = nonce
        return refreshed if refreshed != document else None

    return change


def settled(document: dict[str, Any] | None) -> dict[str, Any] | None:
    """A change that drops the replacement marker: the replaced tunnel's resource is gone, no rollback."""
    if document is None or REPLACES_FIELD not in document:
        return None
    return {key: value for key, value in document.items() if key != REPLACES_FIELD}


def open_and_store(
    spec: TunnelSpec,
    owner_tags: Mapping[str, str],
    stored: Mapping[str, Stored],
    nonce: str,
    *,
    renewal: Renewal | None = None,
    replaces: str | None = None,
) -> OpenedTunnel:
    """Open a tunnel and write its tokens, or close it again: a tunnel whose tokens nobody holds is waste.

    ``renewal`` is the record the documents carry (None without ``renew``); a record naming no resource
    yet (``resource_tunnel_id`` empty) names the new tunnel, the resource's first. Raises WriteConflict
    (with the tunnel closed) when another writer changed the source secret since ``stored`` was read.
    """
    opened = tunnels.open_tunnel(spec, {**owner_tags, **binding_tags(nonce)})
    if renewal is not None and not renewal.resource_tunnel_id:
        renewal = Renewal(renewal.spec, renewal.owner, resource_tunnel_id=opened.tunnel_id)
    try:
        store_tokens(opened.tokens, spec, opened, stored, renewal, nonce=nonce, replaces=replaces)
    except BaseException:
        # The caller never learns this tunnel's id when we fail (and the provider framework sends no
        # Delete after a failed Create), so a tunnel left open here would belong to no resource. The
        # close runs in the time the invocation kept for it (aws_clients.CLEANUP_RESERVE_S).
        with aws_clients.cleanup():
            tunnels.close(opened.tunnel_id)
        raise
    return opened
