"""The ``Custom::SecureTunnel`` resource: the provider framework's onEvent handler.

Create opens a tunnel and stores its tokens; Update changes what the API can change in place and opens
a new tunnel (a new physical id, so CloudFormation deletes the old one) for what it cannot; Delete closes
the tunnel. The physical id is the tunnel id, so ``Ref`` gives the tunnel id.

With ``renew`` on, the physical id stays the resource's first tunnel while renewal opens its successors
(see ``renewal``): Update acts on the current one, found through the source secret, and Delete closes it
too, whether or not ``renew`` is still on.

Decisions compare the properties with the tunnel as it is, not with the old properties: that way a
rollback Update, a tunnel that expired, and tags edited by hand all converge on what the template says.

Renewal and rotation write the same secrets at any time, so every write is a compare-and-set (see
``token_secrets.write_all``): a Create or Update that loses closes the tunnel it opened, and an Update or
Delete that loses starts over from what the secrets say now.
"""

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, NotRequired, TypedDict, TypeVar

from botocore.exceptions import ClientError

from . import aws_clients, renewal, tunnels
from .contract import MAX_LIFETIME_MINUTES, RENEWS_TAG, REPLACES_TAG, REQUEST_TAG
from .token_secrets import (
    REPLACES_FIELD,
    Stored,
    WriteConflict,
    open_and_store,
    read_all,
    read_stored,
    resource_nonce,
    settled,
    store_tokens,
    with_record,
    write_all,
)
from .tunnel_spec import (
    Owner,
    Renewal,
    TunnelSpec,
    destination_changes,
    is_bound,
    new_nonce,
    replacing_changes,
    template_tags,
)

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

Event = Mapping[str, Any]
_T = TypeVar("_T")
# How often an Update or Delete starts over after losing a write to a renewal or a rotation.
_ATTEMPTS = 5
# The longest a request's invocations run: the provider framework's own timeout.
_REQUEST_MINUTES = timedelta(minutes=15)


class _Attributes(TypedDict):
    TunnelId: str
    TunnelArn: str


class Response(TypedDict):
    PhysicalResourceId: str
    Data: NotRequired[_Attributes]


def on_event(event: Event, context: object = None) -> Response:
    logger.info(
        "%s %s (physical id %s)",
        event["RequestType"],
        event["LogicalResourceId"],
        event.get("PhysicalResourceId", "-"),
    )
    handlers: dict[str, Callable[[Event], Response]] = {"Create": create, "Update": update, "Delete": delete}
    with aws_clients.invocation(context):
        return handlers[event["RequestType"]](event)


def create(event: Event) -> Response:
    spec = TunnelSpec.from_properties(event["ResourceProperties"])
    owner = Owner.of_event(event)
    request_id = str(event["RequestId"])
    stored = read_all(spec.secret_arns().values())
    # A Create delivered again (the provider framework's invocation retried: same RequestId) after the
    # first delivery stored its tokens. One read of the secret, no IoT call while it holds none.
    earlier = _opened_by(request_id, stored[spec.source_secret_arn].document)
    if earlier is not None:
        logger.info("Create %s already opened tunnel %s", request_id, earlier.tunnel_id)
        return _answer(earlier.tunnel_id, earlier.tunnel_arn)
    record = Renewal(spec, owner, "") if spec.renew else None
    return _open(spec, owner.tags(), stored, new_nonce(), record, request_id=request_id)


def update(event: Event) -> Response:
    return _settle(lambda: _update(event), "update")


def _update(event: Event) -> Response:
    spec = TunnelSpec.from_properties(event["ResourceProperties"])
    old_spec = TunnelSpec.from_properties(event["OldResourceProperties"])
    owner = Owner.of_event(event)
    physical_id = event["PhysicalResourceId"]
    request_id = str(event["RequestId"])
    stored = read_all([old_spec.source_secret_arn, *spec.secret_arns().values()])
    named = renewal.named_tunnel(stored[old_spec.source_secret_arn].document, physical_id)
    if named is not None and named.tags.get(REQUEST_TAG) == request_id:
        # This Update was delivered before and opened a replacement: answer with it again.
        return _answer(named.tunnel_id, named.tunnel_arn)
    nonce = resource_nonce(stored.values())
    record = Renewal(spec, owner, "") if spec.renew else None
    tunnel = renewal.renewal_of(physical_id, owner, named) or tunnels.describe(physical_id)
    replaced = _to_replace(spec, tunnel, physical_id)
    if tunnel is None or replaced is not None:
        replaced = replaced or physical_id
        return _open(
            spec,
            owner.tags_replacing(replaced),
            stored,
            nonce or new_nonce(),
            record,
            request_id=request_id,
            replaces=replaced,
        )
    # The documents keep the nonce only while it is the tunnel's: one whose binding tag was removed by hand
    # is bound to no secret, and the upkeep function refuses it (renewal.require_bound).
    bound_nonce = nonce if is_bound(tunnel.tags, nonce) else None
    _update_secrets(
        tunnel, spec, Renewal(spec, owner, physical_id) if spec.renew else None, stored, bound_nonce
    )
    tunnels.sync_tags(tunnel, spec.tags)
    # Ref and TunnelArn keep naming the resource's first tunnel; the secrets name the current one.
    return _answer(physical_id, tunnel.tunnel_arn.rpartition("/")[0] + "/" + physical_id)


def _to_replace(spec: TunnelSpec, tunnel: tunnels.Tunnel | None, physical_id: str) -> str | None:
    """The tunnel an update must replace rather than change in place, or None.

    A closed or gone tunnel is replaced too, and its replacement tagged with what it replaces like any
    other: if the stack update rolls back, the Delete of the replacement finds the kept resource and
    points the renewal record back at it. Without the tag the record kept naming the deleted
    replacement, and the next renewal (linked to it) outlived the stack.
    """
    if tunnel is None or not tunnel.is_open:
        logger.info("Tunnel %s is closed or gone: opening a replacement", physical_id)
        return tunnel.tunnel_id if tunnel is not None else physical_id
    if changed := replacing_changes(spec, tunnel):
        logger.info("%s changed: replacing tunnel %s", " and ".join(changed), tunnel.tunnel_id)
        return tunnel.tunnel_id
    return None


def delete(event: Event) -> Response:
    tunnel_id = event["PhysicalResourceId"]
    spec = TunnelSpec.from_properties(event["ResourceProperties"])
    owner = Owner.of_event(event)
    first = tunnels.describe(tunnel_id)
    tunnels.close(tunnel_id)
    logger.info("Closed tunnel %s", tunnel_id)
    _settle(lambda: _close_the_rest(tunnel_id, first, spec, owner), "delete")
    return {"PhysicalResourceId": tunnel_id}


def _close_the_rest(tunnel_id: str, first: tunnels.Tunnel | None, spec: TunnelSpec, owner: Owner) -> None:
    """After closing the resource's first tunnel: its renewal, its secrets, and what races left open."""
    # Read after closing: a secret that cannot be read (a disabled key) must not keep the tunnel open.
    stored = read_all(spec.secret_arns().values())
    source = stored[spec.source_secret_arn].document
    chain = renewal.renewal_of(tunnel_id, owner, renewal.named_tunnel(source, tunnel_id))
    if chain is not None and chain.is_open:
        tunnels.close(chain.tunnel_id)
        logger.info("Closed tunnel %s, which renewed %s", chain.tunnel_id, tunnel_id)
    if not _names_resource(source, tunnel_id, chain):
        # The secrets hold another resource's tunnel: this is the clean-up after a replacement, which
        # settles it (a later Delete of the replacement is then no rollback).
        write_all([(each, settled) for each in stored.values()])
    elif first is None or not _refresh_kept_tunnel(first, spec, owner, stored):
        # The resource ends. Dropping its renewal record is a write: a renewal or rotation that read the
        # secret before it (and opened a tunnel) loses its own write and closes that tunnel. Without it a
        # renewal running while the stack was deleted wrote its new tunnel after this Delete had read the
        # secret, and that tunnel stayed open.
        write_all([(each, with_record(None)) for each in stored.values()])
    _sweep(tunnel_id, first, spec, owner, {s.document["tunnelId"] for s in stored.values() if s.document})


def _names_resource(source: Mapping[str, Any] | None, tunnel_id: str, chain: tunnels.Tunnel | None) -> bool:
    """Whether the source document is this resource's: it names its first tunnel, its renewal, or its
    record names it (or the secret holds nothing yet)."""
    if source is None:
        return True
    ours = {tunnel_id} | ({chain.tunnel_id} if chain is not None else set())
    return source["tunnelId"] in ours or (source.get("renewal") or {}).get("resourceTunnelId") == tunnel_id


def _sweep(
    tunnel_id: str, first: tunnels.Tunnel | None, spec: TunnelSpec, owner: Owner, named: set[str]
) -> None:
    """Close every open tunnel of this resource that no secret names.

    Writers that lose a race close what they opened, but that close can fail too (or a process can be
    cut off): what is left is owned by this stack and logical id and linked to this resource, as its
    renewal (``renews``) or as a second tunnel of the request that opened it (``request-id``). A tunnel
    of the same logical id linked to another physical id belongs to the resource that replaced this one
    and is left alone. So is a tunnel tagged ``replaces`` (an update's replacement whose own close
    failed looks like one): the live tunnel of a resource that replaced this one is tagged so too, and
    when that resource's template names other secrets, no secret read here names it (README, "Two gaps
    remain"). ListTunnels shows no tags, so only the tunnels with this resource's description
    are described (the rest costs one ListTunnels call per 100 tunnels opened since this resource's
    first tunnel, or in the last 12 hours).
    """
    description = first.description if first is not None else spec.description
    request_id = first.tags.get(REQUEST_TAG) if first is not None else None
    # No tunnel stays open longer than its maximum lifetime, so older ones need not be listed; a second
    # tunnel of the first one's request was opened during that request (the provider framework's
    # invocations end within 15 minutes).
    since = datetime.now(UTC) - timedelta(minutes=MAX_LIFETIME_MINUTES)
    if first is not None:
        since = max(since, first.created_at - _REQUEST_MINUTES)
    for summary in tunnels.open_tunnels(since):
        if summary.tunnel_id in named or summary.tunnel_id == tunnel_id or summary.description != description:
            continue
        aws_clients.check_deadline("closing this resource's leftover tunnels")
        try:
            tunnel = tunnels.describe(summary.tunnel_id)
        except ClientError as error:
            # Other stacks' tunnels: the handler may describe only tunnels tagged with this stack.
            if error.response.get("Error", {}).get("Code") == "AccessDeniedException":
                continue
            raise
        if tunnel is None or not owner.owns(tunnel.tags):
            continue
        linked = tunnel.tags.get(RENEWS_TAG) == tunnel_id or (
            request_id is not None and tunnel.tags.get(REQUEST_TAG) == request_id
        )
        if linked:
            tunnels.close(tunnel.tunnel_id)
            logger.info("Closed tunnel %s, left open by a lost race for %s", tunnel.tunnel_id, tunnel_id)


def _refresh_kept_tunnel(
    deleted: tunnels.Tunnel, spec: TunnelSpec, owner: Owner, stored: Mapping[str, Stored]
) -> bool:
    """Fresh tokens for the tunnel ``deleted`` replaced, if an update rolled back; whether it did.

    CloudFormation then keeps the old tunnel and deletes the replacement, whose tokens are in the secrets
    that name it. Only those are rewritten, and the tunnel's configuration comes from the service: the
    properties are the replacement's, not the kept tunnel's.
    """
    named = {
        mode
        for mode, arn in spec.secret_arns().items()
        if _names_tunnel(stored[arn].document, deleted.tunnel_id)
    }
    replaced_id = deleted.tags.get(REPLACES_TAG)
    kept = tunnels.describe(replaced_id) if named and replaced_id else None
    if not named or not replaced_id or (kept is not None and not owner.owns(kept.tags)):
        return False
    # The kept tunnel may itself be a renewal: its record must keep naming the resource's first tunnel.
    resource_id = kept.tags.get(RENEWS_TAG, kept.tunnel_id) if kept is not None else replaced_id
    as_it_is = _as_described(kept or deleted, spec)
    record = Renewal(as_it_is, owner, resource_id) if spec.renew else None
    if kept is None or not kept.is_open:
        return _point_record_at_kept(deleted, replaced_id, record, spec, stored)
    if kept.thing_name:
        # AWS IoT told the device about the replacement: it must hear of the kept tunnel again.
        named.add("DESTINATION")
    logger.info("Update rolled back: fresh tokens for tunnel %s", kept.tunnel_id)
    nonce = resource_nonce(stored.values())
    tokens = tunnels.rotate(kept.tunnel_id, tunnels.client_mode(named), as_it_is)
    store_tokens(tokens, as_it_is, kept, stored, record, nonce=nonce if is_bound(kept.tags, nonce) else None)
    return True


def _point_record_at_kept(
    deleted: tunnels.Tunnel,
    replaced_id: str,
    record: Renewal | None,
    spec: TunnelSpec,
    stored: Mapping[str, Stored],
) -> bool:
    """A rolled-back replacement of a closed (or gone) tunnel: no tokens to give, but the renewal record
    must name the kept resource again, or the next renewal is linked to the deleted one and outlives
    the stack. The replacement's marker in the secrets tells a rollback from the end of a resource that
    was once a replacement (its replaced tunnel is closed too, by the clean-up that removed the marker).
    """
    source = stored[spec.source_secret_arn].document or {}
    if source.get(REPLACES_FIELD) != replaced_id:
        return False
    logger.info(
        "Update rolled back to closed tunnel %s: renewal record reset from %s", replaced_id, deleted.tunnel_id
    )
    write_all([(stored[arn], with_record(record)) for arn in spec.secret_arns().values()])
    return True


def _as_described(tunnel: tunnels.Tunnel, spec: TunnelSpec) -> TunnelSpec:
    """``tunnel`` as the service describes it, with the secrets and the renew setting of ``spec``."""
    return replace(
        spec,
        services=tunnel.services,
        max_lifetime_minutes=tunnel.max_lifetime_minutes,
        thing_name=tunnel.thing_name,
        description=tunnel.description,
        tags=template_tags(tunnel.tags),
    )


def _open(
    spec: TunnelSpec,
    owner_tags: Mapping[str, str],
    stored: Mapping[str, Stored],
    nonce: str,
    record: Renewal | None,
    *,
    request_id: str,
    replaces: str | None = None,
) -> Response:
    # On failure open_and_store closes the tunnel again: CloudFormation never learns its id when we fail
    # (and the provider framework sends no Delete after a failed Create).
    try:
        opened = open_and_store(
            spec, {**owner_tags, REQUEST_TAG: request_id}, stored, nonce, renewal=record, replaces=replaces
        )
    except WriteConflict:
        # Another delivery of this same request stored its tunnel first (ours is closed again): both
        # answer with that one, so CloudFormation learns one id whichever answer it takes.
        winner = _opened_by(request_id, read_stored(spec.source_secret_arn).document)
        if winner is None:
            raise
        logger.info("Request %s was delivered twice: answering with tunnel %s", request_id, winner.tunnel_id)
        return _answer(winner.tunnel_id, winner.tunnel_arn)
    logger.info("Opened tunnel %s", opened.tunnel_id)
    return _answer(opened.tunnel_id, opened.tunnel_arn)


def _opened_by(request_id: str, document: Mapping[str, Any] | None) -> tunnels.Tunnel | None:
    """The tunnel a token document names, if request ``request_id`` opened it."""
    tunnel = tunnels.describe(document["tunnelId"]) if document is not None else None
    return tunnel if tunnel is not None and tunnel.tags.get(REQUEST_TAG) == request_id else None


def _settle(attempt: Callable[[], _T], what: str) -> _T:
    """``attempt()``, started over while it loses a write to a concurrent renewal or rotation."""
    for attempts in range(1, _ATTEMPTS + 1):
        try:
            return attempt()
        except WriteConflict:
            if attempts == _ATTEMPTS:
                raise
            aws_clients.check_deadline(what)
            logger.info("The secrets were written meanwhile: starting the %s over", what)
    raise AssertionError("unreachable")


def _update_secrets(
    tunnel: tunnels.Tunnel,
    spec: TunnelSpec,
    record: Renewal | None,
    stored: Mapping[str, Stored],
    nonce: str | None,
) -> None:
    """Fresh tokens where the secrets need them, and the renewal record brought up to date in the rest."""
    mode = _mode_to_rotate(spec, tunnel, stored)
    rotated: dict[str, str] = {}
    if mode:
        logger.info("Rotating %s tokens of tunnel %s", mode, tunnel.tunnel_id)
        rotated = tunnels.rotate(tunnel.tunnel_id, mode, spec)
    store_tokens(rotated, spec, tunnel, stored, record, nonce=nonce, others=with_record(record, nonce))


def _mode_to_rotate(
    spec: TunnelSpec, tunnel: tunnels.Tunnel, stored: Mapping[str, Stored]
) -> tunnels.ClientMode | None:
    """Which tokens an in-place update must replace, if any.

    A new destination (thing or services) needs both: the device is notified again and the source must
    connect to the changed tunnel. Otherwise each secret that holds no token of this tunnel needs one of
    its mode: a new secret holds a placeholder, and a failed update may have left a secret naming the
    tunnel it opened and closed again. AWS IoT told the thing about that tunnel too, so it must hear of
    this one again.
    """
    if destination_changes(spec, tunnel):
        return "ALL"
    held = {mode: stored[arn].document for mode, arn in spec.secret_arns().items()}
    stale = {mode for mode, document in held.items() if not _names_tunnel(document, tunnel.tunnel_id)}
    if tunnel.thing_name and any(held[mode] is not None for mode in stale):
        stale.add("DESTINATION")
    return tunnels.client_mode(stale) if stale else None


def _names_tunnel(document: Mapping[str, Any] | None, tunnel_id: str) -> bool:
    return document is not None and document["tunnelId"] == tunnel_id


def _answer(tunnel_id: str, tunnel_arn: str) -> Response:
    return {"PhysicalResourceId": tunnel_id, "Data": {"TunnelId": tunnel_id, "TunnelArn": tunnel_arn}}
