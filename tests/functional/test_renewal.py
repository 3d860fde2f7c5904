"""Renewal past the service's lifetime limit, against the emulator with a fast-forwarded clock.

The schedule's event is what the construct puts in its EventBridge Scheduler target: with 60-minute
tunnels, a run every 50 minutes renews whatever ends within 60.
"""

from datetime import UTC, datetime
from typing import Any

import pytest
from support.events import STACK_ID, event, update
from support.upkeep import create, delete, document, properties
from tunnel_lambda.custom_resource import on_event
from tunnel_lambda.renewal import on_schedule

pytestmark = pytest.mark.usefixtures("local_aws")

SCHEDULE_EVENT = {"stackId": STACK_ID, "renewWithinMinutes": "60"}


def run_schedule(emulator: Any, within_minutes: int = 60) -> list[str]:
    event = {**SCHEDULE_EVENT, "renewWithinMinutes": str(within_minutes)}
    return on_schedule(event, now=datetime.fromtimestamp(emulator.clock.now(), UTC))


def test_renewal_keeps_exactly_one_tunnel_open_across_three_lifetimes(tunnel_emulator: Any) -> None:
    props = properties(renew=True)
    first_id = create(props)
    seen = [first_id]
    for _ in range(3):
        tunnel_emulator.clock.advance(minutes=50)
        (renewed_id,) = run_schedule(tunnel_emulator)
        seen.append(renewed_id)
        (current,) = tunnel_emulator.open_tunnels()
        assert current.tunnel_id == renewed_id
        assert current.tags["cdk-secure-tunnel:renews"] == first_id
        assert current.tags["cdk-secure-tunnel:logical-id"] == "Tunnel"
        assert current.tags["team"] == "ops"
        assert (current.description, current.lifetime_minutes) == (props["Description"], 60)
        stored = document(props["SourceTokenSecretArn"])
        assert (stored["tunnelId"], stored["tunnelArn"]) == (current.tunnel_id, current.arn)
        assert tunnel_emulator.is_token_valid(stored["clientAccessToken"])
    assert len(set(seen)) == 4
    # With a thing, AWS IoT told the device about every new tunnel.
    assert len(tunnel_emulator.notifications("pump-7")) == 4


def test_a_tunnel_is_renewed_only_once_it_ends_within_the_window(tunnel_emulator: Any) -> None:
    tunnel_id = create(properties(renew=True))
    assert run_schedule(tunnel_emulator, within_minutes=30) == []
    tunnel_emulator.clock.advance(minutes=31)
    (renewed_id,) = run_schedule(tunnel_emulator, within_minutes=30)
    assert renewed_id != tunnel_id
    assert [view.tunnel_id for view in tunnel_emulator.open_tunnels()] == [renewed_id]


def test_a_tunnel_closed_by_hand_is_renewed_on_the_next_run(tunnel_emulator: Any, aws_tunneling: Any) -> None:
    props = properties(renew=True, thing=None, destination=True)
    first_id = create(props)
    aws_tunneling.close_tunnel(tunnelId=first_id)

    (renewed_id,) = run_schedule(tunnel_emulator)

    assert [view.tunnel_id for view in tunnel_emulator.open_tunnels()] == [renewed_id]
    # Without a thing, both secrets name the new tunnel.
    assert document(props["DestinationTokenSecretArn"])["tunnelId"] == renewed_id


def test_tunnels_without_renewal_are_not_touched(tunnel_emulator: Any) -> None:
    create(properties())
    tunnel_emulator.clock.advance(minutes=60)
    assert run_schedule(tunnel_emulator) == []
    assert tunnel_emulator.open_tunnels() == []


def test_delete_after_renewal_leaves_no_open_tunnel(tunnel_emulator: Any) -> None:
    props = properties(renew=True)
    first_id = create(props)
    for _ in range(2):
        tunnel_emulator.clock.advance(minutes=50)
        run_schedule(tunnel_emulator)
    assert len(tunnel_emulator.open_tunnels()) == 1

    delete(props, first_id)

    assert tunnel_emulator.open_tunnels() == []


def test_update_acts_on_the_current_tunnel_and_keeps_the_physical_id(tunnel_emulator: Any) -> None:
    props = properties(renew=True)
    first_id = create(props)
    tunnel_emulator.clock.advance(minutes=50)
    (renewed_id,) = run_schedule(tunnel_emulator)

    changed = {**props, "Tags": [{"Key": "team", "Value": "support"}]}
    response = on_event(event("Update", changed, PhysicalResourceId=first_id, OldResourceProperties=props))

    assert response["PhysicalResourceId"] == first_id
    assert response["Data"]["TunnelArn"].endswith(f"tunnel/{first_id}")
    current = tunnel_emulator.tunnel(renewed_id)
    assert current.tags["team"] == "support"
    assert current.tags["cdk-secure-tunnel:renews"] == first_id
    # The next renewal opens the tunnel the updated template describes.
    tunnel_emulator.clock.advance(minutes=50)
    (next_id,) = run_schedule(tunnel_emulator)
    assert tunnel_emulator.tunnel(next_id).tags["team"] == "support"


def test_turning_renew_off_leaves_update_acting_on_the_renewal(tunnel_emulator: Any) -> None:
    props = properties(renew=True)
    first_id = create(props)
    tunnel_emulator.clock.advance(minutes=50)
    (renewed_id,) = run_schedule(tunnel_emulator)
    off = {**props, "Renew": "false"}
    update(first_id, off, props)

    # The secret no longer carries a renewal record, yet it still names the tunnel the resource holds.
    retagged = {**off, "Tags": [{"Key": "team", "Value": "support"}]}
    assert update(first_id, retagged, off)["PhysicalResourceId"] == first_id

    assert [view.tunnel_id for view in tunnel_emulator.open_tunnels()] == [renewed_id]
    assert tunnel_emulator.tunnel(renewed_id).tags["team"] == "support"
    assert "renewal" not in document(props["SourceTokenSecretArn"])


def test_delete_with_renew_off_closes_the_renewal(tunnel_emulator: Any) -> None:
    props = properties(renew=True)
    first_id = create(props)
    tunnel_emulator.clock.advance(minutes=50)
    run_schedule(tunnel_emulator)

    delete({**props, "Renew": "false"}, first_id)

    assert tunnel_emulator.open_tunnels() == []


def test_the_cleanup_delete_after_replacing_a_renewed_tunnel_closes_the_renewal(tunnel_emulator: Any) -> None:
    props = properties(renew=True)
    first_id = create(props)
    tunnel_emulator.clock.advance(minutes=50)
    run_schedule(tunnel_emulator)
    new_id = update(first_id, {**props, "MaxLifetimeMinutes": "30"}, props)["PhysicalResourceId"]

    delete(props, first_id)

    assert [view.tunnel_id for view in tunnel_emulator.open_tunnels()] == [new_id]


@pytest.fixture
def aws_tunneling(local_aws: Any) -> Any:
    import boto3  # noqa: PLC0415

    return boto3.client("iotsecuretunneling")
