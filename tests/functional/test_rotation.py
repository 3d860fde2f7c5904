"""Secrets Manager rotation of the token secrets, against the emulator and moto.

Each resource is created through the custom resource handler, then rotated the way Secrets Manager drives
the upkeep function: createSecret, setSecret, testSecret, finishSecret with one ClientRequestToken.
"""

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from support.events import update
from support.upkeep import create, document, new_secret, properties, rotate, stages
from tunnel_lambda.renewal import NotBound, renew_if_due
from tunnel_lambda.rotation import RotationError

pytestmark = pytest.mark.usefixtures("local_aws")


def test_rotation_replaces_the_source_token_and_leaves_one_current_version(tunnel_emulator: Any) -> None:
    props = properties()
    tunnel_id = create(props)
    before = document(props["SourceTokenSecretArn"])

    rotate(props["SourceTokenSecretArn"])

    after = document(props["SourceTokenSecretArn"])
    assert after["clientAccessToken"] != before["clientAccessToken"]
    unchanged = ("clientMode", "tunnelId", "tunnelArn", "region", "services", "thingName")
    assert {key: after[key] for key in unchanged} == {key: before[key] for key in unchanged}
    assert tunnel_emulator.is_token_valid(after["clientAccessToken"])
    assert not tunnel_emulator.is_token_valid(before["clientAccessToken"])
    assert stages(props["SourceTokenSecretArn"]) == ["AWSCURRENT", "AWSPREVIOUS"]
    # A source rotation leaves the device's token and the thing alone.
    assert len(tunnel_emulator.notifications("pump-7")) == 1
    assert tunnel_emulator.tunnel(tunnel_id).status == "OPEN"


def test_rotating_the_destination_secret_notifies_the_device_of_the_new_token(tunnel_emulator: Any) -> None:
    props = properties(destination=True)
    create(props)

    rotate(props["DestinationTokenSecretArn"])

    stored = document(props["DestinationTokenSecretArn"])
    assert stored["clientMode"] == "destination"
    opened, rotated = tunnel_emulator.notifications("pump-7")
    assert rotated["clientAccessToken"] == stored["clientAccessToken"] != opened["clientAccessToken"]
    assert rotated["services"] == ["SSH"]


def test_a_spent_token_is_replaced_by_each_rotation(tunnel_emulator: Any) -> None:
    props = properties()
    tunnel_id = create(props)
    tokens = [document(props["SourceTokenSecretArn"])["clientAccessToken"]]
    for _ in range(2):  # the operator connected with each token, then needed another
        rotate(props["SourceTokenSecretArn"])
        tokens.append(document(props["SourceTokenSecretArn"])["clientAccessToken"])
    assert len(set(tokens)) == 3
    assert set(tokens[:2]) <= tunnel_emulator.tunnel(tunnel_id).revoked_tokens
    assert tunnel_emulator.is_token_valid(tokens[2])


def test_a_retried_create_secret_stores_the_token_it_already_issued(tunnel_emulator: Any) -> None:
    props = properties()
    create(props)
    arn = props["SourceTokenSecretArn"]
    version = rotate(arn, steps=("createSecret",))
    pending = document(arn, VersionId=version, VersionStage="AWSPENDING")

    rotate(arn, steps=("createSecret",), version=version)

    assert document(arn, VersionId=version, VersionStage="AWSPENDING") == pending
    assert [call.operation for call in tunnel_emulator.calls].count("RotateTunnelAccessToken") == 1
    rotate(arn, steps=("setSecret", "testSecret", "finishSecret"), version=version)
    assert document(arn)["clientAccessToken"] == pending["clientAccessToken"]
    assert "AWSPENDING" not in stages(arn)


def test_rotation_of_a_closed_tunnel_fails_clearly_and_leaves_nothing_pending(tunnel_emulator: Any) -> None:
    props = properties()
    create(props)
    before = document(props["SourceTokenSecretArn"])
    tunnel_emulator.clock.advance(minutes=60)  # the tunnel's lifetime ends

    with pytest.raises(RotationError, match=r"has closed .* deploy the stack .* renew=True"):
        rotate(props["SourceTokenSecretArn"])

    assert document(props["SourceTokenSecretArn"]) == before
    assert "AWSPENDING" not in stages(props["SourceTokenSecretArn"])


def test_rotation_before_the_first_token_says_the_stack_is_not_deployed() -> None:
    props = properties()  # the secret still holds the construct's placeholder
    with pytest.raises(RotationError, match="holds no token yet"):
        rotate(props["SourceTokenSecretArn"])
    assert "AWSPENDING" not in stages(props["SourceTokenSecretArn"])


def test_rotation_of_a_closed_tunnel_with_renewal_opens_the_next_one(tunnel_emulator: Any) -> None:
    props = properties(renew=True)
    first_id = create(props)
    tunnel_emulator.clock.advance(minutes=60)

    rotate(props["SourceTokenSecretArn"])

    stored = document(props["SourceTokenSecretArn"])
    (current,) = tunnel_emulator.open_tunnels()
    assert stored["tunnelId"] == current.tunnel_id != first_id
    assert current.tags["cdk-secure-tunnel:renews"] == first_id
    assert tunnel_emulator.is_token_valid(stored["clientAccessToken"])
    assert stages(props["SourceTokenSecretArn"]).count("AWSCURRENT") == 1
    assert "AWSPENDING" not in stages(props["SourceTokenSecretArn"])


@pytest.mark.parametrize("meanwhile", ["renewed", "closed by hand"])
def test_finish_fails_and_leaves_nothing_pending_if_the_tunnel_changed_after_the_test(
    meanwhile: str, tunnel_emulator: Any
) -> None:
    props = properties(renew=True)
    first_id = create(props)
    arn = props["SourceTokenSecretArn"]
    version = rotate(arn, steps=("createSecret", "setSecret", "testSecret"))
    if meanwhile == "renewed":
        now = datetime.fromtimestamp(tunnel_emulator.clock.now(), UTC)
        renew_if_due(arn, now, within=timedelta(hours=2))
    else:
        boto3.client("iotsecuretunneling").close_tunnel(tunnelId=first_id)
    before = document(arn)

    with pytest.raises(RotationError, match=f"{meanwhile}.*rotate again"):
        rotate(arn, steps=("finishSecret",), version=version)

    assert document(arn) == before
    assert "AWSPENDING" not in stages(arn)


def forged_secret(real: dict[str, Any], **changes: Any) -> str:
    """A secret anyone allowed to create secrets could make: tagged with the stack's id, naming its tunnel."""
    arn = new_secret()
    forged = {key: value for key, value in real.items() if key != "bindingNonce"} | changes
    boto3.client("secretsmanager").put_secret_value(SecretId=arn, SecretString=json.dumps(forged))
    return arn


@pytest.mark.parametrize("nonce", [None, "guessed"], ids=["without the nonce", "with another nonce"])
def test_a_secret_without_the_tunnels_binding_nonce_gets_none_of_its_tokens(
    nonce: str | None, tunnel_emulator: Any
) -> None:
    props = properties()
    create(props)
    real = document(props["SourceTokenSecretArn"])
    forged = forged_secret(real, **({"bindingNonce": nonce} if nonce else {}))

    with pytest.raises(NotBound, match="does not hold its binding nonce"):
        rotate(forged)

    assert "RotateTunnelAccessToken" not in [call.operation for call in tunnel_emulator.calls]
    assert tunnel_emulator.is_token_valid(real["clientAccessToken"])
    assert "AWSPENDING" not in stages(forged)


def test_a_tunnel_without_a_binding_tag_is_refused_even_when_its_secret_holds_no_nonce(
    tunnel_emulator: Any,
) -> None:
    """No tunnel was ever opened without a binding: one without the tag (and a secret without a nonce to
    match) is not accepted as "opened before binding existed", which would let a forged secret through."""
    props = properties()
    first_id = create(props)
    arn = props["SourceTokenSecretArn"]
    real = document(arn)
    client = boto3.client("iotsecuretunneling")
    client.untag_resource(resourceArn=real["tunnelArn"], tagKeys=["cdk-secure-tunnel:binding"])
    unbound = {key: value for key, value in real.items() if key != "bindingNonce"}
    boto3.client("secretsmanager").put_secret_value(SecretId=arn, SecretString=json.dumps(unbound))
    assert "cdk-secure-tunnel:binding" not in tunnel_emulator.tunnel(first_id).tags

    with pytest.raises(NotBound, match="does not hold its binding nonce"):
        rotate(arn)

    assert "RotateTunnelAccessToken" not in [call.operation for call in tunnel_emulator.calls]
    assert tunnel_emulator.is_token_valid(real["clientAccessToken"])


def test_the_handlers_own_writes_keep_the_binding_nonce(tunnel_emulator: Any) -> None:
    props = properties(renew=True, destination=True)
    first_id = create(props)
    nonce = document(props["SourceTokenSecretArn"])["bindingNonce"]
    binding = hashlib.sha256(nonce.encode()).hexdigest()
    assert tunnel_emulator.tunnel(first_id).tags["cdk-secure-tunnel:binding"] == binding
    rotate(props["DestinationTokenSecretArn"])
    tunnel_emulator.clock.advance(minutes=60)
    rotate(props["SourceTokenSecretArn"])  # ended: renewed first
    (renewed,) = tunnel_emulator.open_tunnels()
    assert renewed.tunnel_id != first_id
    assert renewed.tags["cdk-secure-tunnel:binding"] == binding
    for secret in ("SourceTokenSecretArn", "DestinationTokenSecretArn"):
        assert document(props[secret])["bindingNonce"] == nonce


def test_a_rotation_that_finishes_after_an_in_place_update_fails_and_keeps_the_update(
    tunnel_emulator: Any,
) -> None:
    props = properties()
    tunnel_id = create(props)
    arn = props["SourceTokenSecretArn"]
    version = rotate(arn, steps=("createSecret", "setSecret", "testSecret"))
    # A deploy moves the tunnel to another thing in place: same tunnel, new tokens in the secret.
    assert update(tunnel_id, {**props, "ThingName": "pump-8"}, props)["PhysicalResourceId"] == tunnel_id
    updated = document(arn)

    with pytest.raises(RotationError, match=r"written since this rotation's createSecret.*rotate again"):
        rotate(arn, steps=("finishSecret",), version=version)

    assert document(arn) == updated
    assert updated["thingName"] == "pump-8"
    assert tunnel_emulator.is_token_valid(updated["clientAccessToken"])
    assert "AWSPENDING" not in stages(arn)
