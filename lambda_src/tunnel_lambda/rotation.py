"""Secrets Manager rotation of a token secret: a fresh client access token on demand or on a schedule.

A token connects only once, so an operator whose local proxy disconnected needs a new one::

    aws secretsmanager rotate-secret --secret-id <source token secret ARN>

Secrets Manager then invokes this function once per step with ``{"Step", "SecretId",
"ClientRequestToken"}``:

- createSecret: RotateTunnelAccessToken for the secret's client mode (a destination rotation resends the
  destination config, so AWS IoT notifies the device), the new document stored as AWSPENDING;
- setSecret: nothing, the service already issued the token;
- testSecret: the new token's tunnel is open;
- finishSecret: the new version becomes AWSCURRENT, and AWSPENDING is removed; unless a renewal or an
  update wrote the secret or the tunnel closed since testSecret, in which case the rotation fails.

A tunnel that has closed cannot issue tokens: with ``renew`` on, createSecret first opens the resource's
next tunnel (see ``renewal``); without it, the rotation fails with a message saying so. A failed step
removes its AWSPENDING label, because a label left behind blocks every later rotation.
"""

import logging
from collections.abc import Callable, Mapping
from typing import Any, cast

from botocore.exceptions import ClientError

from . import aws_clients, tunnels
from .renewal import renew
from .token_secrets import CURRENT, PENDING, read_document, token_document
from .tunnel_spec import Destination, Renewal
from .tunnels import ClientMode, TunnelRef

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)


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
    current = read_document(secret_arn)
    if current is None:
        raise RotationError(
            f"{secret_arn} holds no token yet: the stack has not opened its tunnel (deploy it first)"
        )
    mode = cast(ClientMode, str(current["clientMode"]).upper())
    tunnel, destination = _open_tunnel_of(current)
    tokens = tunnels.rotate(tunnel.tunnel_id, mode, destination)
    document = token_document(mode, tokens[mode], destination, tunnel, current.get("renewal"))
    aws_clients.secrets().put_secret_value(
        SecretId=secret_arn, ClientRequestToken=version, SecretString=document, VersionStages=[PENDING]
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
    """Make the pending version current, unless its tunnel was renewed, replaced or closed meanwhile.

    Renewal and the custom resource write the secret without a rotation: making the pending version
    current over theirs would hand out a token of the tunnel they left behind.
    """
    pending, current = _pending_and_current(secret_arn, version)
    if current is not None and current["tunnelId"] != pending["tunnelId"]:
        raise RotationError(
            f"Tunnel {pending['tunnelId']} was renewed or replaced by {current['tunnelId']} during this "
            f"rotation of {secret_arn}, which already holds a fresh token of it: rotate again for another"
        )
    _require_open(pending["tunnelId"])
    _make_current(secret_arn, version)


def _make_current(secret_arn: str, version: str) -> None:
    client = aws_clients.secrets()
    previous = next(
        (known for known, stages in _stages(secret_arn).items() if CURRENT in stages and known != version),
        None,
    )
    move: dict[str, str] = {"RemoveFromVersionId": previous} if previous else {}
    client.update_secret_version_stage(
        SecretId=secret_arn, VersionStage=CURRENT, MoveToVersionId=version, **move
    )
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


def _open_tunnel_of(document: Mapping[str, Any]) -> tuple[TunnelRef, Destination]:
    """The open tunnel the document's token belongs to, renewed first if it closed and renewal is on."""
    tunnel = tunnels.describe(document["tunnelId"])
    if tunnel is not None and tunnel.is_open:
        return tunnel, tunnel
    record = document.get("renewal")
    if record is None:
        raise RotationError(
            f"Tunnel {document['tunnelId']} has closed (its lifetime ended or it was closed by hand) and "
            "cannot issue new tokens: deploy the stack to open a new tunnel, or set renew=True on the "
            "SecureTunnel to have one opened automatically"
        )
    renewal = Renewal.from_json(record)
    return renew(renewal, tunnel), renewal.spec


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
