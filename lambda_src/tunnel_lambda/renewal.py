"""Renewal: a tunnel available for as long as its stack exists, past the service's 12-hour limit.

No tunnel outlives its max lifetime (12 hours at most) and rotation never extends it. With ``renew`` on,
the stack's upkeep function, invoked by an EventBridge Scheduler schedule, opens a replacement with the
same configuration shortly before the current tunnel ends (or as soon as it finds it closed), writes its
tokens to the secrets and then closes the old tunnel. Nothing of ours runs between two invocations.

The schedule's event names the stack; the answer lists the tunnels opened (none, in a stack without
renewing tunnels):

>>> aws = getfixture("local_aws")  # in a test: local AWS, with boto3's environment set
>>> stack_id = "arn:aws:cloudformation:us-east-1:123456789012:stack/Pumps/1"
>>> on_schedule({"stackId": stack_id, "renewWithinMinutes": "60"})
[]

A replacement carries the resource's identity tags plus ``cdk-secure-tunnel:renews`` with the resource's
physical id (its first tunnel): that link is how Update finds the current tunnel and Delete closes it.
"""

import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from . import aws_clients, tunnels
from .contract import OWNER_STACK_TAG, RENEW_TAG, RENEWS_TAG, REPLACES_TAG
from .token_secrets import open_and_store, read_document
from .tunnel_spec import Owner, Renewal
from .tunnels import OpenedTunnel, Tunnel

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)


class RenewalFailed(Exception):
    """Some tunnels could not be renewed; the others were, and the next invocation tries again."""


def on_schedule(event: Mapping[str, Any], now: datetime | None = None) -> list[str]:
    """Renew every tunnel of the stack that ends within ``renewWithinMinutes``; returns the new ids.

    ``now`` is for tests whose tunnels run on a fast-forwarded clock.
    """
    stack_id = str(event["stackId"])
    deadline = (now or datetime.now(UTC)) + timedelta(minutes=int(event["renewWithinMinutes"]))
    renewed, failed = [], []
    for secret_arn in _renewing_secrets(stack_id):
        try:
            opened = renew_if_due(secret_arn, deadline)
        except Exception:
            # One broken resource must not keep the others' tunnels from being renewed.
            logger.exception("Renewing the tunnel of %s failed", secret_arn)
            failed.append(secret_arn)
            continue
        if opened is not None:
            renewed.append(opened.tunnel_id)
    if failed:
        raise RenewalFailed(f"Renewal failed for {len(failed)} secret(s): {', '.join(failed)}")
    return renewed


def renew_if_due(source_secret_arn: str, deadline: datetime) -> OpenedTunnel | None:
    """Renew the tunnel whose tokens the secret holds if it is closed, gone, or ends before ``deadline``."""
    document = read_document(source_secret_arn)
    if document is None or "renewal" not in document:
        return None
    current = tunnels.describe(document["tunnelId"])
    if current is not None and current.is_open and current.expires_at > deadline:
        return None
    return renew(Renewal.from_json(document["renewal"]), current)


def renew(renewal: Renewal, current: Tunnel | None) -> OpenedTunnel:
    """Open the resource's next tunnel, store its tokens, then close ``current``.

    Opening first keeps a tunnel available throughout; with a thing, AWS IoT notifies the device of the
    new destination token on OpenTunnel.
    """
    owner_tags = renewal.owner.tags_renewing(renewal.resource_tunnel_id)
    opened = open_and_store(renewal.spec, renewal.owner, owner_tags, renewal)
    logger.info("Renewed tunnel %s with %s", current.tunnel_id if current else "-", opened.tunnel_id)
    if current is not None and current.is_open:
        tunnels.close(current.tunnel_id)
    return opened


def renews(tunnel: Tunnel, resource_tunnel_id: str, owner: Owner) -> bool:
    """Whether renewal opened ``tunnel`` for this resource: its link and its owner tags both say so."""
    return tunnel.tags.get(RENEWS_TAG) == resource_tunnel_id and owner.owns(tunnel.tags)


def open_renewal(resource_tunnel_id: str, owner: Owner, source: Mapping[str, Any] | None) -> Tunnel | None:
    """The resource's open renewal, found through ``source``, its source secret's token document.

    The secret answers whether or not ``renew`` is on now (it may have been on when the renewal opened),
    without listing the region's tunnels. It names the renewal, or, once an update replaced the renewal,
    the replacement, which is tagged with the tunnel it replaced.
    """
    named_id = source.get("tunnelId") if source else None
    named = tunnels.describe(named_id) if named_id and named_id != resource_tunnel_id else None
    if named is not None and not renews(named, resource_tunnel_id, owner):
        replaced_id = named.tags.get(REPLACES_TAG)
        named = tunnels.describe(replaced_id) if replaced_id else None
    if named is None or not named.is_open or not renews(named, resource_tunnel_id, owner):
        return None
    return named


def _renewing_secrets(stack_id: str) -> Iterator[str]:
    """The source secrets of the stack's renewing tunnels, found by the tags the construct sets."""
    paginator = aws_clients.secrets().get_paginator("list_secrets")
    filters = [{"Key": "tag-key", "Values": [RENEW_TAG]}, {"Key": "tag-value", "Values": [stack_id]}]
    for page in paginator.paginate(Filters=filters):  # type: ignore[arg-type]
        for secret in page.get("SecretList", []):
            tags = {tag["Key"]: tag["Value"] for tag in secret.get("Tags", [])}
            # tag-value matches any tag: check the stack tag itself.
            if tags.get(OWNER_STACK_TAG) == stack_id:
                yield secret["ARN"]
