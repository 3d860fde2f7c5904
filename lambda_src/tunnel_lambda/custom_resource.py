"""The ``Custom::SecureTunnel`` resource: the provider framework's onEvent handler.

Create opens a tunnel and stores its tokens; Update changes what the API can change in place and opens
a new tunnel (a new physical id, so CloudFormation deletes the old one) for what it cannot; Delete closes
the tunnel. The physical id is the tunnel id, so ``Ref`` gives the tunnel id.

With ``renew`` on, the physical id stays the resource's first tunnel while renewal opens its successors
(see ``renewal``): Update acts on the current one, found through the source secret, and Delete closes it
too, whether or not ``renew`` is still on.

Decisions compare the properties with the tunnel as it is, not with the old properties: that way a
rollback Update, a tunnel that expired, and tags edited by hand all converge on what the template says.
"""

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, NotRequired, TypedDict

from . import renewal, tunnels
from .contract import RENEWS_TAG, REPLACES_TAG
from .token_secrets import open_and_store, read_documents, refresh_renewal, store_tokens
from .tunnel_spec import (
    Owner,
    Renewal,
    TunnelSpec,
    destination_changes,
    replacing_changes,
    template_tags,
)

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

Event = Mapping[str, Any]


class _Attributes(TypedDict):
    TunnelId: str
    TunnelArn: str


class Response(TypedDict):
    PhysicalResourceId: str
    Data: NotRequired[_Attributes]


def on_event(event: Event, _context: object = None) -> Response:
    logger.info(
        "%s %s (physical id %s)",
        event["RequestType"],
        event["LogicalResourceId"],
        event.get("PhysicalResourceId", "-"),
    )
    handlers: dict[str, Callable[[Event], Response]] = {"Create": create, "Update": update, "Delete": delete}
    return handlers[event["RequestType"]](event)


def create(event: Event) -> Response:
    owner = Owner.of_event(event)
    return _open(TunnelSpec.from_properties(event["ResourceProperties"]), owner, owner.tags())


def update(event: Event) -> Response:
    spec = TunnelSpec.from_properties(event["ResourceProperties"])
    old_spec = TunnelSpec.from_properties(event["OldResourceProperties"])
    owner = Owner.of_event(event)
    physical_id = event["PhysicalResourceId"]
    documents = read_documents([old_spec.source_secret_arn, *spec.secret_arns().values()])
    source = documents[old_spec.source_secret_arn]
    tunnel = renewal.open_renewal(physical_id, owner, source) or tunnels.describe(physical_id)
    if tunnel is None or not tunnel.is_open:
        logger.info("Tunnel %s is closed or gone: opening a replacement", physical_id)
        return _open(spec, owner, owner.tags())
    if changed := replacing_changes(spec, tunnel):
        logger.info("%s changed: replacing tunnel %s", " and ".join(changed), tunnel.tunnel_id)
        return _open(spec, owner, owner.tags_replacing(tunnel.tunnel_id))
    _update_secrets(tunnel, spec, Renewal(spec, owner, physical_id) if spec.renew else None, documents)
    tunnels.sync_tags(tunnel, spec.tags)
    # Ref and TunnelArn keep naming the resource's first tunnel; the secrets name the current one.
    return _answer(physical_id, tunnel.tunnel_arn.rpartition("/")[0] + "/" + physical_id)


def delete(event: Event) -> Response:
    tunnel_id = event["PhysicalResourceId"]
    spec = TunnelSpec.from_properties(event["ResourceProperties"])
    owner = Owner.of_event(event)
    tunnel = tunnels.describe(tunnel_id)
    tunnels.close(tunnel_id)
    logger.info("Closed tunnel %s", tunnel_id)
    # Read after closing: a secret that cannot be read (a disabled key) must not keep the tunnel open.
    documents = read_documents(spec.secret_arns().values())
    renewed = renewal.open_renewal(tunnel_id, owner, documents[spec.source_secret_arn])
    if renewed is not None:
        tunnels.close(renewed.tunnel_id)
        logger.info("Closed tunnel %s, which renewed %s", renewed.tunnel_id, tunnel_id)
    if tunnel is not None:
        _refresh_kept_tunnel(tunnel, spec, owner, documents)
    return {"PhysicalResourceId": tunnel_id}


def _refresh_kept_tunnel(
    deleted: tunnels.Tunnel,
    spec: TunnelSpec,
    owner: Owner,
    documents: Mapping[str, Mapping[str, Any] | None],
) -> None:
    """Fresh tokens for the tunnel ``deleted`` replaced, if an update rolled back.

    CloudFormation then keeps the old tunnel and deletes the replacement, whose tokens are in the secrets
    that name it. Only those are rewritten, and the tunnel's configuration comes from the service: the
    properties are the replacement's, not the kept tunnel's.
    """
    named = {
        mode for mode, arn in spec.secret_arns().items() if _names_tunnel(documents[arn], deleted.tunnel_id)
    }
    replaced_id = deleted.tags.get(REPLACES_TAG)
    kept = tunnels.describe(replaced_id) if named and replaced_id else None
    if kept is None or not kept.is_open or not owner.owns(kept.tags):
        return
    if kept.thing_name:
        # AWS IoT told the device about the replacement: it must hear of the kept tunnel again.
        named.add("DESTINATION")
    as_it_is = _as_described(kept, spec)
    # The kept tunnel may itself be a renewal: its record must keep naming the resource's first tunnel.
    record = Renewal(as_it_is, owner, kept.tags.get(RENEWS_TAG, kept.tunnel_id)) if spec.renew else None
    logger.info("Update rolled back: fresh tokens for tunnel %s", kept.tunnel_id)
    store_tokens(tunnels.rotate(kept.tunnel_id, tunnels.client_mode(named), as_it_is), as_it_is, kept, record)


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


def _open(spec: TunnelSpec, owner: Owner, owner_tags: Mapping[str, str]) -> Response:
    # On failure open_and_store closes the tunnel again: CloudFormation never learns its id when we fail
    # (and the provider framework sends no Delete after a failed Create).
    opened = open_and_store(spec, owner, owner_tags)
    logger.info("Opened tunnel %s", opened.tunnel_id)
    return _answer(opened.tunnel_id, opened.tunnel_arn)


def _update_secrets(
    tunnel: tunnels.Tunnel,
    spec: TunnelSpec,
    record: Renewal | None,
    documents: Mapping[str, Mapping[str, Any] | None],
) -> None:
    """Fresh tokens where the secrets need them, and the renewal record brought up to date in the rest."""
    mode = _mode_to_rotate(spec, tunnel, documents)
    rotated: dict[str, str] = {}
    if mode:
        logger.info("Rotating %s tokens of tunnel %s", mode, tunnel.tunnel_id)
        rotated = tunnels.rotate(tunnel.tunnel_id, mode, spec)
    store_tokens(rotated, spec, tunnel, record)
    refresh_renewal(
        {arn: documents[arn] for mode, arn in spec.secret_arns().items() if mode not in rotated}, record
    )


def _mode_to_rotate(
    spec: TunnelSpec, tunnel: tunnels.Tunnel, documents: Mapping[str, Mapping[str, Any] | None]
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
    held = {mode: documents[arn] for mode, arn in spec.secret_arns().items()}
    stale = {mode for mode, document in held.items() if not _names_tunnel(document, tunnel.tunnel_id)}
    if tunnel.thing_name and any(held[mode] is not None for mode in stale):
        stale.add("DESTINATION")
    return tunnels.client_mode(stale) if stale else None


def _names_tunnel(document: Mapping[str, Any] | None, tunnel_id: str) -> bool:
    return document is not None and document["tunnelId"] == tunnel_id


def _answer(tunnel_id: str, tunnel_arn: str) -> Response:
    return {"PhysicalResourceId": tunnel_id, "Data": {"TunnelId": tunnel_id, "TunnelArn": tunnel_arn}}
