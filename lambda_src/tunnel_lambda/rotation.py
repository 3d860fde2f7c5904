"""Secrets Manager rotation of a token secret: a fresh client access token on demand or on a schedule.

A token connects only once, so an operator whose local proxy disconnected needs a new one::

    aws secretsmanager rotate-secret --secret-id <source token secret ARN>

Secrets Manager then invokes this function once per step with ``{"Step", "SecretId",
"ClientRequestToken"}``:

- createSecret: RotateTunnelAccessToken for the secret's client mode (a destination rotation resends the
  destination config, so AWS IoT notifies the device), the new document stored as AWSPENDING;
- setSecret: nothing, the service already issued the token;
- testSecret: the new token's tunnel is open;
- finishSecret: the new version becomes AWSCURRENT, and AWSPENDING is removed; unless anything (a
  renewal, a deploy) wrote the secret since createSecret or the tunnel closed, in which case the rotation
  fails.

createSecret acts only for a secret that holds the binding nonce of the tunnel it names (see
``renewal.require_bound``). A tunnel that has closed cannot issue tokens: with ``renew`` on, createSecret
first opens the resource's next tunnel (see ``renewal``); without it, the rotation fails with a message
saying so. A failed step removes its AWSPENDING label, because a label left behind blocks every later
rotation.
"""

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, cast

from botocore.exceptions import ClientError

from . import aws_clients, tunnels
from .renewal import renew, require_bound
from .token_secrets import CURRENT, PENDING, Stored, read_document, read_stored, token_document
from .tunnel_spec import BINDING_FIELD, Destination, Renewal
from .tunnels import ClientMode, TunnelRef

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)


# In the pending document: the version that was AWSCURRENT when createSecret ran. finishSecret moves
# AWSCURRENT only from that version: a rotation that finished after a deploy had moved the tunnel from
# pump-7 to pump-8 in place used to make the pending pump-7 document (whose token the deploy had revoked)
# current again, and renewal then reopened to pump-7.
ROTATES_FIELD = "rotatesVersionId"


class RotationError(Exception):
    """A rotation that cannot succeed; the message says why and what to do."""


def on_rotation(event: Mapping[str, Any]) -> None:
    step, secret_arn, version = event["Step"], event["SecretId"], event["ClientRequestToken"]
    logger.info("%s of %s (version %s)", step, secret_arn, version)
    steps: dict[str, Callable[[str, str], None]] = {
        "createSecret": create_secret,
        "setSecret": lambda _arn, _version: None,
        "testSecret": verify_secret,
        "finishSecret": finish_secret,
    }
    if step not in steps:
        raise RotationError(f"Unknown rotation step {step!r}")
    stages = _stages(secret_arn).get(version)
    if stages is not None and CURRENT in stages:
        return  # a retry of a rotation that already finished
    if stages is not None and PENDING not in stages:
        raise RotationError(f"Version {version} of {secret_arn} is not pending rotation")
    try:
        steps[step](secret_arn, version)
    except Exception:
        _drop_pending(secret_arn, version)
        raise


def create_secret(secret_arn: str, version: str) -> None:
    """Store a fresh token of the secret's client mode as AWSPENDING, once per rotation."""
    if read_document(secret_arn, version_id=version, stage=PENDING) is not None:
        return  # Secrets Manager retried the step: the token is already issued and stored
    current = read_stored(secret_arn)
    if current.document is None:
        raise RotationError(
            f"{secret_arn} holds no token yet: the stack has not opened its tunnel (deploy it first)"
        )
    mode = cast(ClientMode, str(current.document["clientMode"]).upper())
    current, tunnel, destination = _open_tunnel_of(current)
    document = cast(dict[str, Any], current.document)
    tokens = tunnels.rotate(tunnel.tunnel_id, mode, destination)
    pending = token_document(
        mode, tokens[mode], destination, tunnel, document.get("renewal"), nonce=document.get(BINDING_FIELD)
    )
    pending[ROTATES_FIELD] = current.version_id
    aws_clients.secrets().put_secret_value(
        SecretId=secret_arn,
        ClientRequestToken=version,
        SecretString=json.dumps(pending),
        VersionStages=[PENDING],
    )
    logger.info("Stored a new %s token of tunnel %s as %s", mode.lower(), tunnel.tunnel_id, PENDING)


def verify_secret(secret_arn: str, version: str) -> None:
    """Check that the pending token's tunnel is open, so finishing hands out a token that can connect."""
    pending, current = _pending_and_current(secret_arn, version)
    if current is not None and pending["clientAccessToken"] == current["clientAccessToken"]:
        # Configuring rotation without rotating now, Secrets Manager tests a copy of the current version;
        # the configuration works whether or not that tunnel is still open.
        return
    _require_open(pending["tunnelId"])


def finish_secret(secret_arn: str, version: str) -> None:
    """Make the pending version current, unless the secret was written or its tunnel closed meanwhile.

    Renewal and the custom resource write the secret without a rotation: making the pending version
    current over theirs would hand out a token of a tunnel (or a destination) they left behind.
    """
    pending = read_document(secret_arn, version_id=version, stage=PENDING)
    if pending is None:
        raise RotationError(f"Version {version} of {secret_arn} holds no token document")
    current = read_stored(secret_arn)
    based_on = pending.get(ROTATES_FIELD)
    if current.version_id != based_on:
        moved_by = (current.document or {}).get("tunnelId", "-")
        raise RotationError(
            f"{secret_arn} was written since this rotation's createSecret (renewed, replaced or updated by "
            f"a deploy; it now names tunnel {moved_by}) and already holds a fresh token: rotate again for "
            "another"
        )
    _require_open(pending["tunnelId"])
    _make_current(secret_arn, version, str(based_on))


def _make_current(secret_arn: str, version: str, based_on: str) -> None:
    client = aws_clients.secrets()
    try:
        # Conditional: fails if AWSCURRENT left ``based_on`` since it was read just now.
        client.update_secret_version_stage(
            SecretId=secret_arn, VersionStage=CURRENT, MoveToVersionId=version, RemoveFromVersionId=based_on
        )
    except ClientError as error:
        if read_stored(secret_arn).version_id != based_on:
            raise RotationError(f"{secret_arn} was written during finishSecret: rotate again") from error
        raise
    client.update_secret_version_stage(SecretId=secret_arn, VersionStage=PENDING, RemoveFromVersionId=version)
    logger.info("Version %s of %s is now %s", version, secret_arn, CURRENT)


def _pending_and_current(secret_arn: str, version: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The rotation's pending token document and the secret's current one."""
    pending = read_document(secret_arn, version_id=version, stage=PENDING)
    if pending is None:
        raise RotationError(f"Version {version} of {secret_arn} holds no token document")
    return pending, read_document(secret_arn)


def _require_open(tunnel_id: str) -> None:
    tunnel = tunnels.describe(tunnel_id)
    if tunnel is None or not tunnel.is_open:
        raise RotationError(
            f"Tunnel {tunnel_id} of the new token has closed (its lifetime ended or it was closed by hand): "
            "rotate again"
        )


def _open_tunnel_of(current: Stored) -> tuple[Stored, TunnelRef, Destination]:
    """The open tunnel the secret's token belongs to, renewed first if it closed and renewal is on;
    with the secret as it is then (a renewal writes it).
    """
    document = cast(dict[str, Any], current.document)
    tunnel = tunnels.describe(document["tunnelId"])
    require_bound(tunnel, document, current.secret_arn)
    if tunnel is not None and tunnel.is_open:
        return current, tunnel, tunnel
    record = document.get("renewal")
    if record is None:
        raise RotationError(
            f"Tunnel {document['tunnelId']} has closed (its lifetime ended or it was closed by hand) and "
            "cannot issue new tokens: deploy the stack to open a new tunnel, or set renew=True on the "
            "SecureTunnel to have one opened automatically"
        )
    renewal = Renewal.from_json(record)
    opened = renew(renewal, tunnel, current)
    if opened is None:
        # Another writer (the schedule, most likely) renewed it first, and the tunnel this rotation
        # opened is closed again: two successors would leave one open that no secret names.
        raise RotationError(
            f"{current.secret_arn} was renewed by another writer during this rotation: rotate again"
        )
    # The renewal wrote the secret: the pending version is based on what it wrote.
    return read_stored(current.secret_arn), opened, renewal.spec


def _stages(secret_arn: str) -> dict[str, list[str]]:
    described = aws_clients.secrets().describe_secret(SecretId=secret_arn)
    return dict(described.get("VersionIdsToStages", {}))


def _drop_pending(secret_arn: str, version: str) -> None:
    if PENDING not in _stages(secret_arn).get(version, []):
        return
    try:
        aws_clients.secrets().update_secret_version_stage(
            SecretId=secret_arn, VersionStage=PENDING, RemoveFromVersionId=version
        )
    except ClientError:
        logger.exception("Could not remove %s from version %s of %s", PENDING, version, secret_arn)
