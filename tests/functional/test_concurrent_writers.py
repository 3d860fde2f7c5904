"""Delete, Update, rotation and renewal writing the same secrets at once (issue 10, item 10).

Each test forces one interleaving: the second writer runs inside a call of the first (see
``support.interleaving``). The end state must be what some order of the two would give: every open
tunnel of the resource named by its secrets, or none open once it is deleted.
"""

from typing import Any

import boto3
import pytest
from support.events import STACK_ID, update
from support.interleaving import interleaved
from support.upkeep import create, delete, document, new_secret, properties, rotate, run_schedule, stages
from tunnel_lambda.rotation import RotationError

pytestmark = pytest.mark.usefixtures("local_aws")

AFTER_OPEN = "after-call.iotsecuretunneling.OpenTunnel"


def test_delete_between_a_renewals_open_tunnel_and_its_write_leaves_nothing_open(
    tunnel_emulator: Any,
) -> None:
    props = properties(renew=True)
    first_id = create(props)
    tunnel_emulator.clock.advance(minutes=50)

    with interleaved(AFTER_OPEN, lambda: delete(props, first_id)) as deleted:
        # The Delete dropped the renewal record, so the renewal's own write lost: it closed its tunnel.
        assert run_schedule(tunnel_emulator) == []

    assert deleted == [None]
    assert tunnel_emulator.open_tunnels() == []


def test_rotation_and_the_schedule_renewing_the_same_ended_tunnel_leave_one_successor(
    tunnel_emulator: Any,
) -> None:
    props = properties(renew=True)
    create(props)
    arn = props["SourceTokenSecretArn"]
    tunnel_emulator.clock.advance(minutes=60)  # the tunnel ended: rotation renews it first

    with (
        interleaved(AFTER_OPEN, lambda: run_schedule(tunnel_emulator)) as renewed,
        pytest.raises(RotationError, match=r"renewed by another writer.*rotate again"),
    ):
        rotate(arn)

    (successor,) = tunnel_emulator.open_tunnels()
    assert renewed == [[successor.tunnel_id]]
    stored = document(arn)
    assert stored["tunnelId"] == successor.tunnel_id
    assert tunnel_emulator.is_token_valid(stored["clientAccessToken"])
    assert "AWSPENDING" not in stages(arn)


def test_an_in_place_update_racing_a_renewal_leaves_the_live_tunnel_named_and_updated(
    tunnel_emulator: Any,
) -> None:
    props = properties(renew=True, thing=None, destination=True)
    first_id = create(props)
    tunnel_emulator.clock.advance(minutes=50)
    changed = {**props, "Services": ["SSH", "RDP"]}

    # The update rotates the tokens of the tunnel it found; the renewal then replaces that tunnel and
    # writes the secrets before the update writes its (now stale) tokens.
    rotated = "after-call.iotsecuretunneling.RotateTunnelAccessToken"
    with interleaved(rotated, lambda: run_schedule(tunnel_emulator)) as renewed:
        assert update(first_id, changed, props)["PhysicalResourceId"] == first_id

    (live,) = tunnel_emulator.open_tunnels()
    assert renewed == [[live.tunnel_id]]
    assert live.services == ("SSH", "RDP")
    for secret in ("SourceTokenSecretArn", "DestinationTokenSecretArn"):
        stored = document(props[secret])
        assert (stored["tunnelId"], stored["services"]) == (live.tunnel_id, ["SSH", "RDP"])
        assert tunnel_emulator.is_token_valid(stored["clientAccessToken"])
    # The next renewal opens what the updated template describes.
    tunnel_emulator.clock.advance(minutes=50)
    (next_id,) = run_schedule(tunnel_emulator)
    assert tunnel_emulator.tunnel(next_id).services == ("SSH", "RDP")


def test_delete_closes_what_a_lost_race_left_open_and_only_that(tunnel_emulator: Any) -> None:
    props = properties(renew=True)
    first_id = create(props)
    tunnels = boto3.client("iotsecuretunneling")
    owner = [
        {"key": "cdk-secure-tunnel:stack-id", "value": STACK_ID},
        {"key": "cdk-secure-tunnel:logical-id", "value": "Tunnel"},
    ]

    def leftover(renews: str) -> str:
        """A renewal whose writer lost and whose clean-up failed: open, owned, named by no secret."""
        return str(
            tunnels.open_tunnel(
                description=props["Description"],
                destinationConfig={"thingName": "pump-7", "services": ["SSH"]},
                tags=[*owner, {"key": "cdk-secure-tunnel:renews", "value": renews}],
            )["tunnelId"]
        )

    leftover(first_id)
    # Linked to another physical id of the same logical id: the resource that replaced this one.
    successors = leftover("a-later-tunnel-of-this-logical-id")

    delete(props, first_id)

    assert [view.tunnel_id for view in tunnel_emulator.open_tunnels()] == [successors]


def test_the_cleanup_delete_leaves_a_replacement_open_whatever_secrets_hold_it(tunnel_emulator: Any) -> None:
    """Why Delete's sweep leaves tunnels tagged ``replaces`` alone (README, "Two gaps remain"): the live
    tunnel of the resource that replaced this one is tagged so too, and when its template names other
    secrets, none that this Delete reads names it. An update's replacement whose compensating close
    failed looks the same, and is left to its max_lifetime."""
    props = properties()
    old_id = create(props)
    moved = {**props, "MaxLifetimeMinutes": "30", "SourceTokenSecretArn": new_secret()}
    new_id = update(old_id, moved, props)["PhysicalResourceId"]
    assert tunnel_emulator.tunnel(new_id).tags["cdk-secure-tunnel:replaces"] == old_id
    assert document(props["SourceTokenSecretArn"])["tunnelId"] == old_id

    delete(props, old_id)  # CloudFormation's clean-up of the replaced resource, with its old properties

    assert [view.tunnel_id for view in tunnel_emulator.open_tunnels()] == [new_id]


def test_delete_lists_no_further_than_the_tunnels_that_can_still_be_open(tunnel_emulator: Any) -> None:
    tunnels = boto3.client("iotsecuretunneling")
    for _ in range(150):  # an account's history: a page and a half of tunnels, long closed
        tunnels.open_tunnel(destinationConfig={"services": ["SSH"]})
    tunnel_emulator.clock.advance(hours=13)
    props = properties()
    first_id = create(props)
    before = len(tunnel_emulator.calls)

    delete(props, first_id)

    listed = [call for call in tunnel_emulator.calls[before:] if call.operation == "ListTunnels"]
    assert len(listed) == 1
