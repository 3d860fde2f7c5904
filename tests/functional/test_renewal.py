"""Renewal past the service's lifetime limit, against the emulator with a fast-forwarded clock.

The schedule's event is what the construct puts in its EventBridge Scheduler target: with 60-minute
tunnels, a run every 50 minutes renews whatever ends within 60.
"""

import json
from datetime import timedelta
from typing import Any

import boto3
import pytest
from support.events import STACK_ID, event, update
from support.upkeep import (
    create,
    delete,
    document,
    emulator_now,
    new_secret,
    properties,
    run_schedule,
    schedule_event,
)
from tunnel_lambda.contract import ScheduleInput
from tunnel_lambda.custom_resource import on_event
from tunnel_lambda.renewal import RenewalFailed, on_schedule
from tunnel_lambda.upkeep import handle

pytestmark = pytest.mark.usefixtures("local_aws")


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


def test_a_run_moments_after_a_renewal_leaves_the_new_tunnel_alone(tunnel_emulator: Any) -> None:
    create(properties(renew=True))
    tunnel_emulator.clock.advance(minutes=50)
    (renewed_id,) = run_schedule(tunnel_emulator)
    # Scheduler delivers at least once, and retries a run that failed for another tunnel: with 60-minute
    # tunnels the window is the whole lifetime, yet the tunnel just opened must stay.
    tunnel_emulator.clock.advance(minutes=1)
    assert run_schedule(tunnel_emulator) == []
    assert [view.tunnel_id for view in tunnel_emulator.open_tunnels()] == [renewed_id]
    # One interval later it is renewed as usual.
    tunnel_emulator.clock.advance(minutes=49)
    assert len(run_schedule(tunnel_emulator)) == 1


def test_a_late_retry_of_the_run_that_renewed_leaves_its_tunnel_alone(tunnel_emulator: Any) -> None:
    create(properties(renew=True))
    tunnel_emulator.clock.advance(minutes=50)
    scheduled = emulator_now(tunnel_emulator)
    (renewed_id,) = run_schedule(tunnel_emulator, scheduled_at=scheduled)
    # The run failed for another tunnel after working for minutes (its timeout is 10), and Scheduler
    # retries it: 12 minutes on, the tunnel it opened ends within the window and within an interval.
    tunnel_emulator.clock.advance(minutes=12)
    assert run_schedule(tunnel_emulator, scheduled_at=scheduled) == []
    assert [view.tunnel_id for view in tunnel_emulator.open_tunnels()] == [renewed_id]
    # The next scheduled run renews it as before.
    tunnel_emulator.clock.advance(minutes=38)
    (next_id,) = run_schedule(tunnel_emulator, scheduled_at=scheduled + timedelta(minutes=50))
    assert [view.tunnel_id for view in tunnel_emulator.open_tunnels()] == [next_id]


@pytest.mark.parametrize(
    "scheduled_time", [None, "<aws.scheduler.scheduled-time>", "yesterday", "2026-01-01T10:50"]
)
def test_a_run_without_a_usable_scheduled_time_keeps_the_age_and_window_rule(
    scheduled_time: str | None, tunnel_emulator: Any
) -> None:
    # A schedule deployed before the input carried the time, or an invocation by hand.
    create(properties(renew=True))
    tunnel_emulator.clock.advance(minutes=50)
    run_schedule(tunnel_emulator)
    tunnel_emulator.clock.advance(minutes=1)
    event = schedule_event(scheduled_time=scheduled_time)
    assert on_schedule(event, now=emulator_now(tunnel_emulator)) == []
    tunnel_emulator.clock.advance(minutes=11)
    # Opened 12 minutes ago, it would end before the next run: the age and window rule renews it.
    assert len(on_schedule(event, now=emulator_now(tunnel_emulator))) == 1


def test_a_fresh_tunnel_that_would_end_before_the_next_run_is_renewed(tunnel_emulator: Any) -> None:
    first_id = create(properties(renew=True))
    tunnel_emulator.clock.advance(minutes=1)
    assert run_schedule(tunnel_emulator) == []  # opened a minute ago, lives past the next run
    tunnel_emulator.clock.advance(minutes=19)
    # Opened between runs 20 minutes ago: it would end 10 minutes before the next run.
    (renewed_id,) = run_schedule(tunnel_emulator)
    assert renewed_id != first_id


def test_a_rolled_back_replacement_of_a_closed_renewal_leaves_nothing_after_destroy(
    tunnel_emulator: Any, aws_tunneling: Any
) -> None:
    props = properties(renew=True)
    first_id = create(props)
    tunnel_emulator.clock.advance(minutes=50)
    (renewed_id,) = run_schedule(tunnel_emulator)
    aws_tunneling.close_tunnel(tunnelId=renewed_id)
    changed = {**props, "Tags": [{"Key": "team", "Value": "support"}]}
    new_id = update(first_id, changed, props)["PhysicalResourceId"]
    assert new_id != first_id

    # The stack update failed elsewhere: CloudFormation keeps the first tunnel's resource and deletes
    # the replacement. The renewal record names the kept resource again.
    delete(changed, new_id)
    record = document(props["SourceTokenSecretArn"])["renewal"]
    (next_id,) = run_schedule(tunnel_emulator)
    next_renews = tunnel_emulator.tunnel(next_id).tags["cdk-secure-tunnel:renews"]

    delete(props, first_id)  # cdk destroy
    assert tunnel_emulator.open_tunnels() == []
    assert (record["resourceTunnelId"], next_renews) == (first_id, first_id)
    assert tunnel_emulator.tunnel(new_id).tags["cdk-secure-tunnel:replaces"] == renewed_id


@pytest.mark.parametrize("tunnel", ["ended", "gone"])
def test_the_schedule_renews_nothing_for_a_secret_that_is_not_the_tunnels(
    tunnel: str, tunnel_emulator: Any, aws_tunneling: Any
) -> None:
    props = properties(renew=True)
    first_id = create(props)
    real = document(props["SourceTokenSecretArn"])
    # Someone tags a secret of theirs like a renewing token secret of this stack, naming its tunnel (or
    # one that no longer exists) and a renewal record of their choosing.
    forged_arn = new_secret(renew=True)
    record = real["renewal"] | {
        "properties": real["renewal"]["properties"]
        | {"ThingName": "their-thing", "SourceTokenSecretArn": forged_arn}
    }
    named = first_id if tunnel == "ended" else "00000000-0000-0000-0000-000000000000"
    forged = {key: value for key, value in real.items() if key != "bindingNonce"} | {
        "tunnelId": named,
        "renewal": record,
    }
    boto3.client("secretsmanager").put_secret_value(SecretId=forged_arn, SecretString=json.dumps(forged))
    aws_tunneling.close_tunnel(tunnelId=first_id)

    with pytest.raises(RenewalFailed, match=forged_arn):
        run_schedule(tunnel_emulator)

    # The stack's own resource was renewed; nothing was opened for the forged secret.
    (renewed,) = tunnel_emulator.open_tunnels()
    assert renewed.thing_name == "pump-7"
    assert document(props["SourceTokenSecretArn"])["tunnelId"] == renewed.tunnel_id
    assert tunnel_emulator.notifications("their-thing") == []


class _AlmostOut:
    """A Lambda context with less time left than the clean-up reserve: the deadline has passed."""

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 5_000


def test_a_run_with_no_time_left_leaves_every_tunnel_to_the_next_run(tunnel_emulator: Any) -> None:
    props = properties(renew=True)
    first_id = create(props)
    tunnel_emulator.clock.advance(minutes=60)  # ended: due whatever the time
    schedule = {
        ScheduleInput.STACK_ID: STACK_ID,
        ScheduleInput.RENEW_WITHIN_MINUTES: "60",
        ScheduleInput.INTERVAL_MINUTES: "50",
    }
    before = len(tunnel_emulator.calls)
    with pytest.raises(RenewalFailed, match=props["SourceTokenSecretArn"]):
        handle(schedule, _AlmostOut())
    assert tunnel_emulator.calls[before:] == []
    assert document(props["SourceTokenSecretArn"])["tunnelId"] == first_id


@pytest.fixture
def aws_tunneling(local_aws: Any) -> Any:
    import boto3  # noqa: PLC0415

    return boto3.client("iotsecuretunneling")
