"""The custom resource handler against real boto3 clients: the emulator for tunnels, moto for secrets.

Each test calls ``on_event`` with CloudFormation-shaped events (every scalar a string, as CloudFormation
passes them) and checks the service's state afterwards through boto3.
"""

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from support.events import STACK_ID, event, update
from support.interleaving import interleaved
from tunnel_lambda import aws_clients
from tunnel_lambda.custom_resource import on_event

OWNER_TAGS = {"cdk-secure-tunnel:stack-id": STACK_ID, "cdk-secure-tunnel:logical-id": "Tunnel"}


@pytest.fixture
def aws(local_aws: Any) -> Any:
    return local_aws


@pytest.fixture
def tunneling(aws: Any) -> Any:
    return boto3.client("iotsecuretunneling")


@pytest.fixture
def secrets(aws: Any) -> Any:
    return boto3.client("secretsmanager")


@pytest.fixture
def new_secret(secrets: Any) -> Callable[[], str]:
    def create() -> str:
        return secrets.create_secret(Name=f"token-{uuid.uuid4().hex[:8]}", SecretString="placeholder")["ARN"]  # type: ignore[no-any-return]

    return create


@pytest.fixture
def props(new_secret: Callable[[], str]) -> dict[str, Any]:
    return {
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:framework",
        "ThingName": "pump-7",
        "Services": ["SSH"],
        "MaxLifetimeMinutes": "120",
        "Description": "cdk-secure-tunnel Test/Tunnel in stack Test",
        "SourceTokenSecretArn": new_secret(),
        "Tags": [{"Key": "team", "Value": "ops"}],
    }


def document(secrets: Any, arn: str) -> dict[str, Any]:
    # Named explicitly: moto answers a request without a stage from a copy that UpdateSecretVersionStage
    # (how every handler write becomes current) does not move; Secrets Manager itself answers AWSCURRENT.
    value = secrets.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")
    return json.loads(value["SecretString"])  # type: ignore[no-any-return]


def describe(tunneling: Any, tunnel_id: str) -> dict[str, Any]:
    return tunneling.describe_tunnel(tunnelId=tunnel_id)["tunnel"]  # type: ignore[no-any-return]


# Set at OpenTunnel for the tunnel's life, different on every tunnel: checked by their own tests.
PER_TUNNEL_TAGS = ("cdk-secure-tunnel:binding", "cdk-secure-tunnel:request-id")


def tags_of(tunnel: dict[str, Any]) -> dict[str, str]:
    """The tunnel's tags but the per-tunnel ones (see PER_TUNNEL_TAGS)."""
    return {tag["key"]: tag["value"] for tag in tunnel.get("tags", []) if tag["key"] not in PER_TUNNEL_TAGS}


def test_create_opens_a_tagged_tunnel_and_stores_only_the_source_token(
    props: dict[str, Any], tunneling: Any, secrets: Any, tunnel_emulator: Any
) -> None:
    response = on_event(event("Create", props))

    tunnel_id = response["PhysicalResourceId"]
    assert set(response["Data"]) == {"TunnelId", "TunnelArn"}
    tunnel = describe(tunneling, tunnel_id)
    assert tunnel["status"] == "OPEN"
    assert tunnel["destinationConfig"] == {"thingName": "pump-7", "services": ["SSH"]}
    assert tunnel["timeoutConfig"] == {"maxLifetimeTimeoutMinutes": 120}
    assert tags_of(tunnel) == {"team": "ops", **OWNER_TAGS}
    stored = document(secrets, props["SourceTokenSecretArn"])
    assert stored["clientMode"] == "source"
    assert stored["tunnelId"] == tunnel_id
    assert stored["tunnelArn"] == tunnel["tunnelArn"] == response["Data"]["TunnelArn"]
    assert stored["region"] == "us-east-1"
    assert stored["services"] == ["SSH"]
    assert stored["thingName"] == "pump-7"
    assert stored["expiresAt"]
    assert len(stored["clientAccessToken"]) > 100
    # The device's token went to the thing, as AWS IoT publishes it, and nowhere else.
    (notification,) = tunnel_emulator.notifications("pump-7")
    assert notification["clientMode"] == "destination"
    assert notification["clientAccessToken"] not in json.dumps(response)


def test_create_without_a_thing_stores_the_destination_token(
    props: dict[str, Any], new_secret: Callable[[], str], secrets: Any
) -> None:
    del props["ThingName"]
    props["DestinationTokenSecretArn"] = new_secret()
    on_event(event("Create", props))
    source = document(secrets, props["SourceTokenSecretArn"])
    destination = document(secrets, props["DestinationTokenSecretArn"])
    assert (source["clientMode"], destination["clientMode"]) == ("source", "destination")
    assert source["clientAccessToken"] != destination["clientAccessToken"]
    assert destination["thingName"] is None


def test_create_closes_its_tunnel_when_the_token_cannot_be_stored(
    props: dict[str, Any], tunneling: Any
) -> None:
    props["SourceTokenSecretArn"] = "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf"
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        on_event(event("Create", props))
    summaries = tunneling.list_tunnels()["tunnelSummaries"]
    assert [summary["status"] for summary in summaries] == ["CLOSED"]


def test_update_of_services_rotates_in_place_and_notifies_the_device_again(
    props: dict[str, Any], tunneling: Any, secrets: Any, tunnel_emulator: Any
) -> None:
    tunnel_id = on_event(event("Create", props))["PhysicalResourceId"]
    before = document(secrets, props["SourceTokenSecretArn"])["clientAccessToken"]

    changed = {**props, "Services": ["SSH", "HTTP"]}
    response = update(tunnel_id, changed, props)

    assert response["PhysicalResourceId"] == tunnel_id
    assert describe(tunneling, tunnel_id)["destinationConfig"]["services"] == ["SSH", "HTTP"]
    stored = document(secrets, props["SourceTokenSecretArn"])
    assert stored["clientAccessToken"] != before
    assert stored["services"] == ["SSH", "HTTP"]
    assert [n["services"] for n in tunnel_emulator.notifications("pump-7")] == [["SSH"], ["SSH", "HTTP"]]


def test_update_of_the_thing_rotates_in_place(
    props: dict[str, Any], tunneling: Any, tunnel_emulator: Any
) -> None:
    tunnel_id = on_event(event("Create", props))["PhysicalResourceId"]
    response = update(tunnel_id, {**props, "ThingName": "pump-8"}, props)
    assert response["PhysicalResourceId"] == tunnel_id
    assert describe(tunneling, tunnel_id)["destinationConfig"]["thingName"] == "pump-8"
    assert len(tunnel_emulator.notifications("pump-8")) == 1


def test_update_of_tags_syncs_them_and_keeps_the_owner_tags(props: dict[str, Any], tunneling: Any) -> None:
    tunnel_id = on_event(event("Create", props))["PhysicalResourceId"]
    changed = {**props, "Tags": [{"Key": "cost-center", "Value": "42"}]}
    assert update(tunnel_id, changed, props)["PhysicalResourceId"] == tunnel_id
    assert tags_of(describe(tunneling, tunnel_id)) == {"cost-center": "42", **OWNER_TAGS}


def test_update_leaves_owner_tags_removed_by_hand_to_whoever_removed_them(
    props: dict[str, Any], tunneling: Any
) -> None:
    """Ownership is set only by OpenTunnel: the IAM policy refuses tagging with the owner tags (on AWS, a
    tunnel without this stack's tag cannot even be described), so the handler never tries."""
    tunnel_id = on_event(event("Create", props))["PhysicalResourceId"]
    arn = describe(tunneling, tunnel_id)["tunnelArn"]
    tunneling.untag_resource(resourceArn=arn, tagKeys=list(OWNER_TAGS))
    update(tunnel_id, {**props, "Tags": []}, props)
    assert tags_of(describe(tunneling, tunnel_id)) == {}


def test_tag_updates_never_name_the_handlers_own_tags(
    props: dict[str, Any], tunneling: Any, tunnel_emulator: Any
) -> None:
    """A replacement carries cdk-secure-tunnel:replaces for life: a later tag update keeps it, and every
    TagResource and UntagResource call names only the template's tags (see test_iam_policies.py)."""
    old_id = on_event(event("Create", props))["PhysicalResourceId"]
    replaced = {**props, "MaxLifetimeMinutes": "60"}
    new_id = update(old_id, replaced, props)["PhysicalResourceId"]
    retagged = {**replaced, "Tags": [{"Key": "cost-center", "Value": "42"}]}
    assert update(new_id, retagged, replaced)["PhysicalResourceId"] == new_id
    tags = tags_of(describe(tunneling, new_id))
    assert tags == {**OWNER_TAGS, "cdk-secure-tunnel:replaces": old_id, "cost-center": "42"}
    named = [
        key
        for call in tunnel_emulator.calls
        if call.operation in ("TagResource", "UntagResource")
        for key in (call.params.get("tagKeys") or [tag["key"] for tag in call.params.get("tags", [])])
    ]
    assert sorted(named) == ["cost-center", "team"]


@pytest.mark.parametrize(
    "change",
    [{"MaxLifetimeMinutes": "60"}, {"Description": "Vendor support"}],
    ids=["lifetime", "description"],
)
def test_update_the_api_cannot_apply_in_place_opens_a_new_tunnel(
    change: dict[str, str], props: dict[str, Any], tunneling: Any, secrets: Any
) -> None:
    old_id = on_event(event("Create", props))["PhysicalResourceId"]
    new_id = update(old_id, {**props, **change}, props)["PhysicalResourceId"]
    assert new_id != old_id
    assert document(secrets, props["SourceTokenSecretArn"])["tunnelId"] == new_id
    # CloudFormation deletes the old one in its cleanup phase; until then it stays as it was.
    assert describe(tunneling, old_id)["status"] == "OPEN"
    on_event(event("Delete", props, PhysicalResourceId=old_id))
    assert describe(tunneling, old_id)["status"] == "CLOSED"
    assert describe(tunneling, new_id)["status"] == "OPEN"


def test_update_of_a_tunnel_closed_by_hand_replaces_it(props: dict[str, Any], tunneling: Any) -> None:
    old_id = on_event(event("Create", props))["PhysicalResourceId"]
    tunneling.close_tunnel(tunnelId=old_id)
    new_id = update(old_id, {**props, "Tags": []}, props)["PhysicalResourceId"]
    assert new_id != old_id
    assert describe(tunneling, new_id)["status"] == "OPEN"


def test_update_of_a_tunnel_whose_record_is_gone_replaces_it(props: dict[str, Any], tunneling: Any) -> None:
    old_id = on_event(event("Create", props))["PhysicalResourceId"]
    tunneling.close_tunnel(tunnelId=old_id, delete=True)
    assert update(old_id, props, props)["PhysicalResourceId"] != old_id


def test_rollback_update_returns_to_the_old_configuration(props: dict[str, Any], tunneling: Any) -> None:
    tunnel_id = on_event(event("Create", props))["PhysicalResourceId"]
    changed = {**props, "Services": ["RDP"], "Tags": []}
    update(tunnel_id, changed, props)
    # CloudFormation's rollback: the same resource, old and new properties swapped.
    assert update(tunnel_id, props, changed)["PhysicalResourceId"] == tunnel_id
    tunnel = describe(tunneling, tunnel_id)
    assert tunnel["destinationConfig"]["services"] == ["SSH"]
    assert tags_of(tunnel) == {"team": "ops", **OWNER_TAGS}


def test_a_new_secret_gets_a_fresh_token_of_its_mode(
    props: dict[str, Any], new_secret: Callable[[], str], secrets: Any
) -> None:
    tunnel_id = on_event(event("Create", props))["PhysicalResourceId"]
    changed = {**props, "SourceTokenSecretArn": new_secret(), "DestinationTokenSecretArn": new_secret()}
    update(tunnel_id, changed, props)
    assert document(secrets, changed["SourceTokenSecretArn"])["clientMode"] == "source"
    assert document(secrets, changed["DestinationTokenSecretArn"])["clientMode"] == "destination"


def test_unchanged_update_makes_no_write_call(props: dict[str, Any], tunnel_emulator: Any) -> None:
    tunnel_id = on_event(event("Create", props))["PhysicalResourceId"]
    calls_before = len(tunnel_emulator.calls)
    update(tunnel_id, props, props)
    assert [call[0] for call in tunnel_emulator.calls[calls_before:]] == ["DescribeTunnel"]


@pytest.mark.parametrize("renew", [False, True])
def test_an_update_that_writes_the_default_services_and_lifetime_changes_nothing(
    renew: bool, props: dict[str, Any], secrets: Any, tunnel_emulator: Any
) -> None:
    # Earlier construct versions left Services and MaxLifetimeMinutes out when they equalled the
    # defaults; the first deploy with a version that writes them is an Update between the two.
    old = {key: value for key, value in props.items() if key not in ("Services", "MaxLifetimeMinutes")}
    old |= {"Renew": "true"} if renew else {}
    tunnel_id = on_event(event("Create", old))["PhysicalResourceId"]
    versions = secrets.describe_secret(SecretId=props["SourceTokenSecretArn"])["VersionIdsToStages"]
    token = document(secrets, props["SourceTokenSecretArn"])["clientAccessToken"]
    calls_before = len(tunnel_emulator.calls)

    new = old | {"Services": ["SSH"], "MaxLifetimeMinutes": "720"}
    assert update(tunnel_id, new, old)["PhysicalResourceId"] == tunnel_id

    # No replacement, no rotation, no retagging: one DescribeTunnel, and no secret written.
    assert [call[0] for call in tunnel_emulator.calls[calls_before:]] == ["DescribeTunnel"]
    assert secrets.describe_secret(SecretId=props["SourceTokenSecretArn"])["VersionIdsToStages"] == versions
    assert document(secrets, props["SourceTokenSecretArn"])["clientAccessToken"] == token


@pytest.mark.parametrize(
    "physical_id",
    ["AWSCDK::CustomResourceProviderFramework::CREATE_FAILED", "never-opened", "not a tunnel id!"],
)
def test_delete_of_what_was_never_opened_succeeds(props: dict[str, Any], physical_id: str) -> None:
    assert (
        on_event(event("Delete", props, PhysicalResourceId=physical_id))["PhysicalResourceId"] == physical_id
    )


def test_delete_closes_and_repeated_delete_succeeds(props: dict[str, Any], tunneling: Any) -> None:
    tunnel_id = on_event(event("Create", props))["PhysicalResourceId"]
    on_event(event("Delete", props, PhysicalResourceId=tunnel_id))
    on_event(event("Delete", props, PhysicalResourceId=tunnel_id))
    assert describe(tunneling, tunnel_id)["status"] == "CLOSED"


def test_delete_closes_the_tunnel_even_when_its_secrets_cannot_be_read(
    props: dict[str, Any], tunneling: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    tunnel_id = on_event(event("Create", props))["PhysicalResourceId"]

    def unreadable(**_: Any) -> None:
        error = {"Error": {"Code": "DecryptionFailure", "Message": "key disabled"}}
        raise ClientError(error, "GetSecretValue")  # type: ignore[arg-type]

    monkeypatch.setattr(aws_clients.secrets(), "get_secret_value", unreadable)
    with pytest.raises(ClientError, match="DecryptionFailure"):
        on_event(event("Delete", props, PhysicalResourceId=tunnel_id))
    assert describe(tunneling, tunnel_id)["status"] == "CLOSED"


def test_throttling_is_retried(props: dict[str, Any], tunnel_emulator: Any, tunneling: Any) -> None:
    tunnel_emulator.fail_next("OpenTunnel", times=2, error="ThrottlingException")
    tunnel_id = on_event(event("Create", props))["PhysicalResourceId"]
    assert describe(tunneling, tunnel_id)["status"] == "OPEN"


def test_throttling_is_retried_past_botocores_attempts_until_its_time_runs_out(
    props: dict[str, Any], tunnel_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aws_clients, "_THROTTLING_CAP_S", 0.01)
    tunnel_emulator.fail_next("OpenTunnel", times=20, error="ThrottlingException")
    on_event(event("Create", props))
    monkeypatch.setattr(aws_clients, "_THROTTLING_BUDGET_S", 0.2)
    tunnel_emulator.fail_next("OpenTunnel", times=1000, error="ThrottlingException")
    with pytest.raises(ClientError, match="ThrottlingException"):
        on_event(event("Create", props))
    assert len(tunnel_emulator.open_tunnels()) == 1


def test_throttled_calls_leave_retries_for_transient_errors(
    props: dict[str, Any], tunnel_emulator: Any, tunneling: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Enough throttled retries to spend a shared retry quota (500 tokens, 5 a throttle) several times.
    monkeypatch.setattr(aws_clients, "_THROTTLING_CAP_S", 0.001)
    for _ in range(20):
        tunnel_emulator.fail_next("OpenTunnel", times=10, error="ThrottlingException")
        on_event(event("Create", props))
    tunnel_emulator.fail_next("OpenTunnel", times=2, error="InternalFailure")
    tunnel_id = on_event(event("Create", props))["PhysicalResourceId"]
    assert describe(tunneling, tunnel_id)["status"] == "OPEN"


def test_no_token_reaches_any_log_record(
    props: dict[str, Any], secrets: Any, tunnel_emulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tunnel_id = on_event(event("Create", props))["PhysicalResourceId"]
    tokens = [document(secrets, props["SourceTokenSecretArn"])["clientAccessToken"]]
    update(tunnel_id, {**props, "Services": ["RDP"]}, props)
    tokens.append(document(secrets, props["SourceTokenSecretArn"])["clientAccessToken"])
    tokens += [n["clientAccessToken"] for n in tunnel_emulator.notifications("pump-7")]
    on_event(event("Delete", props, PhysicalResourceId=tunnel_id))
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "Opened tunnel" in logged
    assert not [token for token in tokens if token in logged]


def test_deleting_a_rolled_back_replacement_gives_the_kept_tunnel_fresh_tokens(
    props: dict[str, Any], tunneling: Any, secrets: Any, tunnel_emulator: Any
) -> None:
    old_id = on_event(event("Create", props))["PhysicalResourceId"]
    changed = {**props, "MaxLifetimeMinutes": "60"}
    new_id = update(old_id, changed, props)["PhysicalResourceId"]
    assert document(secrets, props["SourceTokenSecretArn"])["tunnelId"] == new_id

    # The stack update failed elsewhere: CloudFormation keeps the old tunnel and deletes the new one.
    on_event(event("Delete", changed, PhysicalResourceId=new_id))

    stored = document(secrets, props["SourceTokenSecretArn"])
    assert stored["tunnelId"] == old_id
    assert tunnel_emulator.is_token_valid(stored["clientAccessToken"])
    assert [view.tunnel_id for view in tunnel_emulator.open_tunnels()] == [old_id]
    assert (
        tunnel_emulator.notifications("pump-7")[-1]["clientAccessToken"]
        == tunnel_emulator.tunnel(old_id).destination_token
    )


def test_cleanup_delete_after_a_replacement_leaves_the_new_tunnels_tokens_alone(
    props: dict[str, Any], secrets: Any, tunnel_emulator: Any
) -> None:
    old_id = on_event(event("Create", props))["PhysicalResourceId"]
    new_id = update(old_id, {**props, "Description": "new"}, props)["PhysicalResourceId"]
    token = document(secrets, props["SourceTokenSecretArn"])["clientAccessToken"]
    on_event(event("Delete", props, PhysicalResourceId=old_id))
    assert document(secrets, props["SourceTokenSecretArn"])["clientAccessToken"] == token
    assert tunnel_emulator.is_token_valid(token)
    assert [view.tunnel_id for view in tunnel_emulator.open_tunnels()] == [new_id]


def test_deleting_a_rolled_back_replacement_records_the_kept_tunnels_own_lifetime(
    props: dict[str, Any], secrets: Any
) -> None:
    props["Renew"] = "true"
    old_id = on_event(event("Create", props))["PhysicalResourceId"]
    changed = {**props, "MaxLifetimeMinutes": "60"}
    new_id = update(old_id, changed, props)["PhysicalResourceId"]

    on_event(event("Delete", changed, PhysicalResourceId=new_id))

    record = document(secrets, props["SourceTokenSecretArn"])["renewal"]
    assert record["resourceTunnelId"] == old_id
    assert record["properties"]["MaxLifetimeMinutes"] == "120"


def test_deleting_a_rolled_back_replacement_leaves_a_destination_copy_it_did_not_replace(
    props: dict[str, Any], new_secret: Callable[[], str], secrets: Any, tunnel_emulator: Any
) -> None:
    del props["ThingName"]
    props["DestinationTokenSecretArn"] = new_secret()
    old_id = on_event(event("Create", props))["PhysicalResourceId"]
    copy = document(secrets, props["DestinationTokenSecretArn"])["clientAccessToken"]
    # The failed update gave the tunnel a thing, which needs no destination secret.
    changed = {**props, "ThingName": "pump-7", "MaxLifetimeMinutes": "60"}
    del changed["DestinationTokenSecretArn"]
    new_id = update(old_id, changed, props)["PhysicalResourceId"]

    on_event(event("Delete", changed, PhysicalResourceId=new_id))

    assert document(secrets, props["DestinationTokenSecretArn"])["clientAccessToken"] == copy
    assert tunnel_emulator.is_token_valid(copy)
    source = document(secrets, props["SourceTokenSecretArn"])
    assert source["tunnelId"] == old_id
    assert tunnel_emulator.is_token_valid(source["clientAccessToken"])


def test_the_cleanup_delete_of_an_earlier_replacement_leaves_the_current_tokens_alone(
    props: dict[str, Any], secrets: Any, tunnel_emulator: Any
) -> None:
    first_id = on_event(event("Create", props))["PhysicalResourceId"]
    second = {**props, "MaxLifetimeMinutes": "60"}
    second_id = update(first_id, second, props)["PhysicalResourceId"]
    # CloudFormation's cleanup Delete of the first tunnel failed (it only warns): it is still open.
    third_id = update(second_id, {**props, "MaxLifetimeMinutes": "30"}, second)["PhysicalResourceId"]
    token = document(secrets, props["SourceTokenSecretArn"])["clientAccessToken"]

    on_event(event("Delete", second, PhysicalResourceId=second_id))

    stored = document(secrets, props["SourceTokenSecretArn"])
    assert (stored["tunnelId"], stored["clientAccessToken"]) == (third_id, token)
    assert tunnel_emulator.is_token_valid(token)


def test_deleting_a_replacement_never_rotates_another_resources_tunnel(
    props: dict[str, Any], new_secret: Callable[[], str], secrets: Any, tunneling: Any, tunnel_emulator: Any
) -> None:
    other = {**props, "SourceTokenSecretArn": new_secret()}
    other_id = on_event(event("Create", other, LogicalResourceId="Other"))["PhysicalResourceId"]
    other_token = document(secrets, other["SourceTokenSecretArn"])["clientAccessToken"]
    old_id = on_event(event("Create", props))["PhysicalResourceId"]
    changed = {**props, "MaxLifetimeMinutes": "60"}
    new_id = update(old_id, changed, props)["PhysicalResourceId"]
    arn = describe(tunneling, new_id)["tunnelArn"]
    tunneling.tag_resource(resourceArn=arn, tags=[{"key": "cdk-secure-tunnel:replaces", "value": other_id}])

    on_event(event("Delete", changed, PhysicalResourceId=new_id))

    assert tunnel_emulator.is_token_valid(other_token)
    assert document(secrets, props["SourceTokenSecretArn"])["tunnelId"] == new_id


def test_create_makes_one_iot_call_and_tags_the_tunnel_with_its_request(
    props: dict[str, Any], tunneling: Any, tunnel_emulator: Any
) -> None:
    created = event("Create", props)
    tunnel_id = on_event(created)["PhysicalResourceId"]
    assert [call.operation for call in tunnel_emulator.calls] == ["OpenTunnel"]
    tags = {tag["key"]: tag["value"] for tag in describe(tunneling, tunnel_id)["tags"]}
    assert tags["cdk-secure-tunnel:request-id"] == created["RequestId"]


def test_a_create_delivered_again_answers_with_the_tunnel_it_opened(
    props: dict[str, Any], tunnel_emulator: Any
) -> None:
    created = event("Create", props)
    first = on_event(created)
    assert on_event(created) == first
    assert [view.tunnel_id for view in tunnel_emulator.open_tunnels()] == [first["PhysicalResourceId"]]


def test_a_create_delivered_twice_at_once_answers_one_tunnel_from_both(
    props: dict[str, Any], secrets: Any, tunnel_emulator: Any
) -> None:
    created = event("Create", props)
    # The second delivery runs between the first's OpenTunnel and its secret write.
    with interleaved("after-call.iotsecuretunneling.OpenTunnel", lambda: on_event(created)) as second:
        first = on_event(created)
    assert second == [first]
    (tunnel,) = tunnel_emulator.open_tunnels()
    assert tunnel.tunnel_id == first["PhysicalResourceId"]
    assert document(secrets, props["SourceTokenSecretArn"])["tunnelId"] == tunnel.tunnel_id


def test_an_update_delivered_again_answers_with_the_replacement_it_opened(
    props: dict[str, Any], tunnel_emulator: Any
) -> None:
    old_id = on_event(event("Create", props))["PhysicalResourceId"]
    changed = {**props, "MaxLifetimeMinutes": "60"}
    updated = event("Update", changed, PhysicalResourceId=old_id, OldResourceProperties=props)
    new_id = on_event(updated)["PhysicalResourceId"]
    assert on_event(updated)["PhysicalResourceId"] == new_id
    assert sorted(view.tunnel_id for view in tunnel_emulator.open_tunnels()) == sorted([old_id, new_id])


def test_an_update_delivered_twice_at_once_answers_one_replacement_from_both(
    props: dict[str, Any], secrets: Any, tunnel_emulator: Any
) -> None:
    old_id = on_event(event("Create", props))["PhysicalResourceId"]
    changed = {**props, "MaxLifetimeMinutes": "60"}
    updated = event("Update", changed, PhysicalResourceId=old_id, OldResourceProperties=props)
    with interleaved("after-call.iotsecuretunneling.OpenTunnel", lambda: on_event(updated)) as second:
        first = on_event(updated)
    assert second == [first]
    new_id = first["PhysicalResourceId"]
    assert sorted(view.tunnel_id for view in tunnel_emulator.open_tunnels()) == sorted([old_id, new_id])
    assert document(secrets, props["SourceTokenSecretArn"])["tunnelId"] == new_id


class _Context:
    """A Lambda context whose invocation ends ``seconds`` after ``start()``.

    The time starts with the invocation under test, not when the test begins: what a test does before it
    (a Create to update) takes however long the machine needs without eating into the invocation's time.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end: float | None = None

    def start(self) -> "_Context":
        self.end = time.monotonic() + self.seconds
        return self

    def timed_out(self) -> bool:
        return self.end is not None and time.monotonic() >= self.end

    def get_remaining_time_in_millis(self) -> int:
        assert self.end is not None, "the invocation has not started: call start()"
        return int((self.end - time.monotonic()) * 1000)


class _TimedOut(BaseException):
    """The Lambda runtime stopping the process at its timeout: nothing after it reaches AWS."""


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def _throttled(request: Any, **_: Any) -> AWSResponse:
    body = b'{"__type": "ThrottlingException", "message": "Rate exceeded"}'
    return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.1"}, _Raw(body))


@pytest.fixture
def lambda_timeout(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Context]:
    """An invocation with 3 s left from its ``start()``, 1 s of it kept for the clean-up, and a runtime
    that stops every call once the time is up."""
    monkeypatch.setattr(aws_clients, "CLEANUP_RESERVE_S", 1.0, raising=False)
    monkeypatch.setattr(aws_clients, "_ANSWER_S", 0.5, raising=False)
    monkeypatch.setattr(aws_clients, "_THROTTLING_CAP_S", 0.05)
    context = _Context(3.0)

    def runtime(**_: Any) -> None:
        if context.timed_out():
            raise _TimedOut

    clients = (aws_clients.tunneling(), aws_clients.secrets())
    for client in clients:
        client.meta.events.register("before-send", runtime, unique_id="lambda-runtime")
    yield context
    for client in clients:
        client.meta.events.unregister("before-send", unique_id="lambda-runtime")


def test_a_replacement_whose_write_is_throttled_past_the_deadline_is_closed_before_the_timeout(
    props: dict[str, Any], tunnel_emulator: Any, lambda_timeout: _Context
) -> None:
    old_id = on_event(event("Create", props))["PhysicalResourceId"]
    events = aws_clients.secrets().meta.events
    events.register("before-send.secrets-manager.PutSecretValue", _throttled, unique_id="throttled")
    try:
        updated = event("Update", {**props, "Description": "new"}, PhysicalResourceId=old_id)
        updated["OldResourceProperties"] = props
        # Throttling is retried until the invocation's deadline, not for its 90 s budget: the error
        # reaches the caller with time left to close the replacement.
        with pytest.raises(ClientError, match="ThrottlingException"):
            on_event(updated, lambda_timeout.start())
    finally:
        events.unregister("before-send.secrets-manager.PutSecretValue", unique_id="throttled")
    assert lambda_timeout.get_remaining_time_in_millis() > 0
    assert [view.tunnel_id for view in tunnel_emulator.open_tunnels()] == [old_id]


def test_a_replacement_with_as_many_tags_as_the_construct_allows_opens(
    props: dict[str, Any], tunneling: Any
) -> None:
    # 200 tags a tunnel: the construct leaves room for the handler's five (stack id, logical id,
    # replaces or renews, binding, request id).
    props["Tags"] = [{"Key": f"k{index}", "Value": "v"} for index in range(195)]
    old_id = on_event(event("Create", props))["PhysicalResourceId"]
    new_id = update(old_id, {**props, "MaxLifetimeMinutes": "60"}, props)["PhysicalResourceId"]
    assert len(describe(tunneling, new_id)["tags"]) == 200
