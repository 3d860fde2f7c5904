"""The fault matrix: each row ends in a defined stack state, with no tunnel open that no resource owns and
no token in any log record."""

import itertools
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_cdk import Duration
from cdk_secure_tunnel import SecureTunnel
from cdk_secure_tunnel.testing import DeploymentFailed, LocalCloudFormation, TunnelEmulator
from support.lifecycle import assert_stack_consistent, secret_ids, template_with, templates_with, tunnel_ids
from tunnel_lambda import aws_clients, custom_resource

TEMPLATE = {"thing": "pump-7", "services": ["SSH"], "max_lifetime": Duration.hours(1)}


class LambdaAborted(BaseException):
    """An abort from outside the handler's own logic (as the runtime's own exceptions are), which no
    ``except Exception`` sees. A process killed outright runs no clean-up at all: see the README."""


@pytest.fixture(autouse=True)
def no_token_in_logs(
    local_aws: Any, tunnel_emulator: TunnelEmulator, caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    tokens = {
        token
        for view in tunnel_emulator.tunnels()
        for token in (view.source_token, view.destination_token, *view.revoked_tokens)
    }
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert tokens
    assert not [token for token in tokens if token in logged]


class SecretWrites:
    """Breaks and mends the handler's PutSecretValue calls at its client, whatever the handler's structure."""

    EVENT = "before-parameter-build.secrets-manager.PutSecretValue"

    def __init__(self) -> None:
        self.events = aws_clients.secrets().meta.events

    def fail_with(
        self, error: BaseException, secret_arn: str | None = None, times: int | None = None
    ) -> None:
        """Fail every write, or only those to ``secret_arn``; ``times`` times, or until mended."""
        failures = itertools.repeat(error) if times is None else itertools.repeat(error, times)

        def fail(params: dict[str, Any], **_: Any) -> None:
            if secret_arn in (None, params["SecretId"]) and (failure := next(failures, None)) is not None:
                raise failure

        self.events.register(self.EVENT, fail, unique_id="test-fault")

    def mend(self) -> None:
        self.events.unregister(self.EVENT, unique_id="test-fault")


@pytest.fixture
def secret_writes() -> Iterator[SecretWrites]:
    writes = SecretWrites()
    yield writes
    writes.mend()


def test_throttling_on_every_other_call(tunnel_emulator: TunnelEmulator) -> None:
    tunnel_emulator.fail_every(None, every=2, error="ThrottlingException")
    before, after = template_with(**TEMPLATE), template_with(**{**TEMPLATE, "services": ["SSH", "RDP"]})
    cloudformation = LocalCloudFormation()
    cloudformation.deploy(before)
    cloudformation.deploy(after)
    assert_stack_consistent(cloudformation, after, tunnel_emulator)
    cloudformation.destroy()
    assert tunnel_emulator.open_tunnels() == []


@pytest.mark.slow
def test_burst_of_100_tunnels_against_10_requests_per_second(tunnel_emulator: TunnelEmulator) -> None:
    tunnel_emulator.limit_rate(None, per_second=10)
    secrets = boto3.client("secretsmanager")
    events = [
        {
            "RequestType": "Create",
            "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/Burst/1",
            "RequestId": str(uuid.uuid4()),
            "LogicalResourceId": f"Tunnel{index}",
            "ResourceType": "Custom::SecureTunnel",
            "ResourceProperties": {
                "ThingName": f"device-{index}",
                "Services": ["SSH"],
                "SourceTokenSecretArn": secrets.create_secret(Name=f"burst-{index}", SecretString="-")["ARN"],
            },
        }
        for index in range(100)
    ]
    failures: list[BaseException] = []

    def create(event: dict[str, Any]) -> None:
        try:
            custom_resource.on_event(event)
        except Exception as error:
            failures.append(error)

    threads = [threading.Thread(target=create, args=(event,)) for event in events]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(tunnel_emulator.open_tunnels()) == 100
    # 100 OpenTunnel calls at 10 per second, after the first second's burst.
    assert time.monotonic() - started >= 9


def test_secret_write_fails_after_open_tunnel(
    tunnel_emulator: TunnelEmulator, secret_writes: SecretWrites
) -> None:
    template = template_with(**TEMPLATE)
    cloudformation = LocalCloudFormation()
    secret_writes.fail_with(RuntimeError("Secrets Manager is unavailable"))
    with pytest.raises(DeploymentFailed, match="Secrets Manager is unavailable"):
        cloudformation.deploy(template)
    # Create failed and was rolled back: the tunnel it opened was closed by the handler itself.
    assert tunnel_emulator.open_tunnels() == []
    assert cloudformation.tunnels == {}
    secret_writes.mend()
    cloudformation.deploy(template)
    assert_stack_consistent(cloudformation, template, tunnel_emulator)


def test_handler_aborted_after_open_tunnel_then_cloudformation_rolls_back_or_retries(
    tunnel_emulator: TunnelEmulator, secret_writes: SecretWrites
) -> None:
    template = template_with(**TEMPLATE)
    cloudformation = LocalCloudFormation()
    secret_writes.fail_with(LambdaAborted())
    with pytest.raises(LambdaAborted):
        cloudformation.deploy(template)
    # Create failed: the provider framework passes no Delete on, so the handler's own clean-up is all.
    assert tunnel_emulator.open_tunnels() == []
    secret_writes.mend()
    # The retry (the next deployment) creates the resource as if nothing had happened.
    cloudformation.deploy(template)
    assert_stack_consistent(cloudformation, template, tunnel_emulator)


@pytest.mark.parametrize("thing", [None, "pump-7"], ids=["without a thing", "with a thing"])
def test_destination_write_fails_during_a_replacement_then_the_update_rolls_back(
    thing: str | None, tunnel_emulator: TunnelEmulator, secret_writes: SecretWrites
) -> None:
    options = {"thing": thing, "store_destination_token": True}
    before = template_with(**options, max_lifetime=Duration.hours(2))
    after = template_with(**options, max_lifetime=Duration.hours(1))
    cloudformation = LocalCloudFormation()
    cloudformation.deploy(before)
    (logical_id,) = tunnel_ids(before)
    destination = cloudformation.secrets[secret_ids(before, logical_id)["destination"]]
    # The replacement's source token is written, then its destination token is not.
    secret_writes.fail_with(RuntimeError("Secrets Manager is unavailable"), secret_arn=destination, times=1)

    with pytest.raises(DeploymentFailed, match="Secrets Manager is unavailable"):
        cloudformation.deploy(after)

    # The rollback Update found the source secret naming the closed replacement and gave it a live token.
    assert_stack_consistent(cloudformation, before, tunnel_emulator)
    if thing:
        # AWS IoT told the device about the replacement: it hears of the kept tunnel again.
        kept = tunnel_emulator.tunnel(cloudformation.physical_id(logical_id))
        assert tunnel_emulator.notifications(thing)[-1]["clientAccessToken"] == kept.destination_token


@pytest.mark.parametrize("how", ["expired", "closed by hand"])
def test_tunnel_gone_before_update_and_delete(how: str, tunnel_emulator: TunnelEmulator) -> None:
    before, after = template_with(**TEMPLATE), template_with(**{**TEMPLATE, "tags": {"team": "ops"}})
    cloudformation = LocalCloudFormation()
    cloudformation.deploy(before)
    (logical_id,) = tunnel_ids(before)
    first = cloudformation.physical_id(logical_id)

    def lose_tunnel() -> None:
        if how == "expired":
            tunnel_emulator.clock.advance(hours=1, minutes=1)
        else:
            boto3.client("iotsecuretunneling").close_tunnel(tunnelId=cloudformation.physical_id(logical_id))

    lose_tunnel()
    cloudformation.deploy(after)
    assert cloudformation.physical_id(logical_id) != first
    assert_stack_consistent(cloudformation, after, tunnel_emulator)

    lose_tunnel()
    cloudformation.destroy()
    assert tunnel_emulator.open_tunnels() == []


def test_open_tunnel_limit_reached(tunnel_emulator: TunnelEmulator) -> None:
    tunnel_emulator.max_open_tunnels = 1
    template = templates_with(
        lambda stack: [
            SecureTunnel(stack, "First", thing="pump-1"),
            SecureTunnel(stack, "Second", thing="pump-2"),
        ]
    )
    cloudformation = LocalCloudFormation()
    with pytest.raises(DeploymentFailed, match="LimitExceededException"):
        cloudformation.deploy(template)
    # The first tunnel was created, then deleted by the rollback.
    assert tunnel_emulator.open_tunnels() == []
    assert len(tunnel_emulator.tunnels()) == 1
    # A quota is not a rate: the second OpenTunnel failed at once instead of backing off for a minute.
    assert [call.operation for call in tunnel_emulator.calls].count("OpenTunnel") == 2


def test_tags_removed_by_hand(tunnel_emulator: TunnelEmulator) -> None:
    """The README's recipe: a tunnel whose owner tags were removed is re-tagged by hand (the stack's
    policy lets no role set them: on AWS the stack could not even describe it), then the stack manages it
    again; the template's own tags converge on the next update."""
    before, after = template_with(**TEMPLATE), template_with(**{**TEMPLATE, "tags": {"team": "ops"}})
    cloudformation = LocalCloudFormation()
    cloudformation.deploy(before)
    (logical_id,) = tunnel_ids(before)
    tunnel_id = cloudformation.physical_id(logical_id)
    client = boto3.client("iotsecuretunneling")
    arn = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]["tunnelArn"]
    owner_tags = dict(tunnel_emulator.tunnel(tunnel_id).tags)
    client.untag_resource(resourceArn=arn, tagKeys=list(owner_tags))
    client.tag_resource(resourceArn=arn, tags=[{"key": k, "value": v} for k, v in owner_tags.items()])

    cloudformation.deploy(after)
    assert cloudformation.physical_id(logical_id) == tunnel_id
    assert_stack_consistent(cloudformation, after, tunnel_emulator)
    assert tunnel_emulator.tunnel(tunnel_id).tags["team"] == "ops"

    client.untag_resource(resourceArn=arn, tagKeys=list(tunnel_emulator.tunnel(tunnel_id).tags))
    cloudformation.destroy()
    assert tunnel_emulator.open_tunnels() == []
