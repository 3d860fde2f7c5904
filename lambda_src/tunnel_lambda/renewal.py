"""Renewal: a tunnel available for as long as its stack exists, past the service's 12-hour limit.

No tunnel outlives its max lifetime (12 hours at most) and rotation never extends it. With ``renew`` on,
the stack's upkeep function, invoked by an EventBridge Scheduler schedule, opens a replacement with the
same configuration shortly before the current tunnel ends (or as soon as it finds it closed), writes its
tokens to the secrets and then closes the old tunnel. Nothing of ours runs between two invocations.

The schedule's event names the stack; the answer lists the tunnels opened (none, in a stack without
renewing tunnels):

>>> aws = getfixture("local_aws")  # in a test: local AWS, with boto3's environment set
>>> stack_id = "arn:aws:cloudformation:us-east-1:123456789012:stack/Pumps/1"
>>> on_schedule({"stackId": stack_id, "renewWithinMinutes": "60", "intervalMinutes": "50",
...              "scheduledTime": "2026-01-01T10:50:00Z"})
[]

A replacement carries the resource's identity tags plus ``cdk-secure-tunnel:renews`` with the resource's
physical id (its first tunnel): that link is how Update finds the current tunnel and Delete closes it.
"""

import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from . import aws_clients, tunnels
from .contract import OWNER_STACK_TAG, RENEW_TAG, RENEWS_TAG, REPLACES_TAG, ScheduleInput
from .token_secrets import Stored, WriteConflict, open_and_store, read_all, read_stored
from .tunnel_spec import BINDING_FIELD, Owner, Renewal, is_bound, new_nonce
from .tunnels import OpenedTunnel, Tunnel

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)


class RenewalFailed(Exception):
    """Some tunnels could not be renewed; the others were, and the next invocation tries again."""


class NotBound(Exception):
    """A token secret names a tunnel it does not hold the binding nonce of: nothing is done for it."""


def on_schedule(event: Mapping[str, Any], now: datetime | None = None) -> list[str]:
    """Renew every tunnel of the stack that ends within ``renewWithinMinutes``; returns the new ids.

    ``intervalMinutes`` is the schedule's rate and ``scheduledTime`` the run's scheduled time (schedules
    deployed before either existed leave them out, and get the older rules: see ``is_due``). ``now`` is
    for tests whose tunnels run on a fast-forwarded clock.
    """
    stack_id = str(event[ScheduleInput.STACK_ID])
    within_minutes = event[ScheduleInput.RENEW_WITHIN_MINUTES]
    within = timedelta(minutes=int(within_minutes))
    interval = timedelta(minutes=int(event.get(ScheduleInput.INTERVAL_MINUTES, within_minutes)))
    scheduled_at = scheduled_time(event)
    now = now or datetime.now(UTC)
    renewed, failed = [], []
    for secret_arn in _renewing_secrets(stack_id):
        try:
            # Past the invocation's deadline the rest wait for the next run, which looks at every tunnel.
            aws_clients.check_deadline(f"renewing the tunnel of {secret_arn}")
            opened = renew_if_due(secret_arn, now, within, interval, scheduled_at)
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


def scheduled_time(event: Mapping[str, Any]) -> datetime | None:
    """The run's scheduled time, as EventBridge Scheduler substituted it into the schedule's input.

    None when it is missing or not a time with a time zone: a schedule deployed before the input carried
    it, or an invocation by hand (which may pass the template's input with the placeholder unreplaced).
    Such a run falls back to the age and window rule alone.

    >>> scheduled_time({"scheduledTime": "2026-01-01T10:50:00Z"})
    datetime.datetime(2026, 1, 1, 10, 50, tzinfo=datetime.timezone.utc)
    >>> scheduled_time({"scheduledTime": "<aws.scheduler.scheduled-time>"}) is None
    True
    """
    value = event.get(ScheduleInput.SCHEDULED_TIME)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        logger.warning(
            "Ignoring the schedule's %s %r: not an ISO 8601 time", ScheduleInput.SCHEDULED_TIME, value
        )
        return None
    return parsed


def is_due(
    tunnel: Tunnel | None,
    now: datetime,
    within: timedelta,
    interval: timedelta,
    scheduled_at: datetime | None = None,
) -> bool:
    """Whether renewal must replace ``tunnel`` now: it is closed or gone, or it was opened before this
    run's scheduled time ``scheduled_at``, ends within ``within`` and is either older than ``interval``
    or would not outlive the next run.

    Scheduler delivers a run at least once and retries a failed run twice (one broken tunnel fails a
    run, and a run may work for up to its 10-minute timeout before failing), and with a 60-minute
    lifetime the window is the whole lifetime: on the window alone, a second delivery renewed the tunnel
    the first had just opened, dropping the operator's session and notifying the device again.

    - An open tunnel created at or after ``scheduled_at`` was opened by this same scheduled run (an
      earlier attempt, or a duplicate delivery), or after it: it is left alone, however late the attempt.
      It lives at least ``interval + margin`` (the construct sizes the interval so), so it outlives the
      next run's scheduled time by the margin, and that run applies the rule below.
    - Otherwise a tunnel opened less than an interval ago is left alone, unless it would end before the
      next run (one opened between runs, by Create or by a rotation): that one must go now. Without
      ``scheduled_at`` (older schedules, runs by hand) this rule alone decides, and a retry more than a
      few minutes after the first attempt may renew a tunnel that attempt opened.

    >>> from types import SimpleNamespace as Tunnel
    >>> now, hour = datetime(2026, 1, 1, tzinfo=UTC), timedelta(hours=1)
    >>> fresh = Tunnel(is_open=True, created_at=now, expires_at=now + hour)
    >>> is_due(fresh, now, within=hour, interval=timedelta(minutes=50))
    False
    >>> ending = Tunnel(is_open=True, created_at=now - 40 * hour / 60, expires_at=now + 20 * hour / 60)
    >>> is_due(ending, now, within=hour, interval=timedelta(minutes=50))
    True
    >>> is_due(ending, now, within=hour, interval=timedelta(minutes=50), scheduled_at=now - hour)
    False
    """
    if tunnel is None or not tunnel.is_open:
        return True
    if scheduled_at is not None and tunnel.created_at >= scheduled_at:
        return False
    left = tunnel.expires_at - now
    if left > within:
        return False
    return now - tunnel.created_at >= interval or left <= interval


def renew_if_due(
    source_secret_arn: str,
    now: datetime,
    within: timedelta,
    interval: timedelta | None = None,
    scheduled_at: datetime | None = None,
) -> OpenedTunnel | None:
    """Renew the tunnel whose tokens the secret holds if it is due (see ``is_due``)."""
    stored = read_stored(source_secret_arn)
    document = stored.document
    if document is None or "renewal" not in document:
        return None
    current = tunnels.describe(document["tunnelId"])
    if not is_due(current, now, within, within if interval is None else interval, scheduled_at):
        return None
    require_bound(current, document, source_secret_arn)
    return renew(Renewal.from_json(document["renewal"]), current, stored)


def require_bound(tunnel: Tunnel | None, document: Mapping[str, Any], secret_arn: str) -> None:
    """Raise NotBound unless the secret's document holds the nonce ``tunnel`` is bound to.

    Anyone who may create a secret tagged with this stack's id can write any tunnel id (and any renewal
    record) into it, and then start its rotation or wait for the schedule: without this check the upkeep
    function rotated this stack's tunnel into their secret. A gone tunnel cannot be checked, so it is
    refused too: its resource gets a new tunnel from the next deploy.
    """
    tunnel_id = document["tunnelId"]
    if tunnel is None:
        raise NotBound(
            f"Tunnel {tunnel_id}, named by {secret_arn}, is gone (closed for hours), so the secret cannot be "
            "checked against it: deploy the stack (a change to the tunnel's tags will do) to open a new one"
        )
    if not is_bound(tunnel.tags, document.get(BINDING_FIELD)):
        raise NotBound(
            f"{secret_arn} names tunnel {tunnel_id} but does not hold its binding nonce: it is not one of "
            "that tunnel's token secrets, and nothing is done for it"
        )


def renew(renewal: Renewal, current: Tunnel | None, decided_on: Stored) -> OpenedTunnel | None:
    """Open the resource's next tunnel, store its tokens, then close ``current``.

    ``decided_on`` is the secret version the decision to renew was read from: if another writer (a
    deploy, a rotation, another run) changed it since, the new tunnel is closed again and None returned;
    without that check two writers renewing the same ended tunnel left two successors open.

    Opening first keeps a tunnel available throughout; with a thing, AWS IoT notifies the device of the
    new destination token on OpenTunnel.
    """
    stored = read_all(renewal.spec.secret_arns().values())
    if decided_on.secret_arn in stored:
        stored[decided_on.secret_arn] = decided_on
    nonce = (decided_on.document or {}).get(BINDING_FIELD) or new_nonce()
    owner_tags = renewal.owner.tags_renewing(renewal.resource_tunnel_id)
    try:
        opened = open_and_store(renewal.spec, owner_tags, stored, str(nonce), renewal=renewal)
    except WriteConflict:
        logger.info(
            "%s was written meanwhile: the tunnel this renewal opened is closed again", decided_on.secret_arn
        )
        return None
    logger.info("Renewed tunnel %s with %s", current.tunnel_id if current else "-", opened.tunnel_id)
    if current is not None and current.is_open:
        tunnels.close(current.tunnel_id)
    return opened


def renews(tunnel: Tunnel, resource_tunnel_id: str, owner: Owner) -> bool:
    """Whether renewal opened ``tunnel`` for this resource: its link and its owner tags both say so."""
    return tunnel.tags.get(RENEWS_TAG) == resource_tunnel_id and owner.owns(tunnel.tags)


def named_tunnel(document: Mapping[str, Any] | None, resource_tunnel_id: str) -> Tunnel | None:
    """The tunnel a token document names, described, unless it is the resource's first (or none)."""
    named_id = document.get("tunnelId") if document else None
    return tunnels.describe(named_id) if named_id and named_id != resource_tunnel_id else None


def renewal_of(resource_tunnel_id: str, owner: Owner, named: Tunnel | None) -> Tunnel | None:
    """The resource's renewal (open or not), found through ``named``: the tunnel its source secret names.

    The secret answers whether or not ``renew`` is on now (it may have been on when the renewal opened),
    without listing the region's tunnels. It names the renewal, or, once an update replaced the renewal,
    the replacement, which is tagged with the tunnel it replaced.
    """
    if named is not None and not renews(named, resource_tunnel_id, owner):
        replaced_id = named.tags.get(REPLACES_TAG)
        named = tunnels.describe(replaced_id) if replaced_id else None
    if named is None or not renews(named, resource_tunnel_id, owner):
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
