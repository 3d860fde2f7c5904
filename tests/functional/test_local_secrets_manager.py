"""The local Secrets Manager behaves as the real one across a rotation (emulator.secrets_manager).

Reads here name no stage, as a user's code and the AWS CLI do.
"""

import json
import logging
import os
import shutil
import subprocess
import sys
from typing import Any

import boto3
import pytest
from aws_cdk import App, Stack
from aws_cdk.assertions import Template
from cdk_secure_tunnel import SecureTunnel
from cdk_secure_tunnel.emulator import secrets_manager
from cdk_secure_tunnel.testing import LocalAws
from cdk_secure_tunnel.testing.cloudformation import LocalCloudFormation

CURRENT, PENDING, PREVIOUS = "AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"


def _stages(secret_arn: str) -> dict[str, list[str]]:
    return dict(boto3.client("secretsmanager").describe_secret(SecretId=secret_arn)["VersionIdsToStages"])


def _labels(secret_arn: str) -> list[str]:
    """Secrets Manager's own staging labels on the secret (the handler may add labels of its own)."""
    return sorted(
        label for stages in _stages(secret_arn).values() for label in stages if label.startswith("AWS")
    )


def _value(secret_arn: str) -> dict[str, Any]:
    return json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"])  # type: ignore[no-any-return]


def test_moving_awscurrent_moves_what_a_read_without_a_stage_returns(local_aws: Any) -> None:
    client = boto3.client("secretsmanager")
    arn = client.create_secret(Name="plain", SecretString="one")["ARN"]
    (first,) = _stages(arn)
    second = "2" * 32
    client.put_secret_value(
        SecretId=arn, SecretString="two", ClientRequestToken=second, VersionStages=[PENDING]
    )
    client.update_secret_version_stage(
        SecretId=arn, VersionStage=CURRENT, MoveToVersionId=second, RemoveFromVersionId=first
    )
    client.update_secret_version_stage(SecretId=arn, VersionStage=PENDING, RemoveFromVersionId=second)
    assert client.get_secret_value(SecretId=arn)["SecretString"] == "two"

    third = client.put_secret_value(SecretId=arn, SecretString="three")["VersionId"]
    assert {version: stages for version, stages in _stages(arn).items() if stages} == {
        third: [CURRENT],
        second: [PREVIOUS],
    }
    assert client.get_secret_value(SecretId=arn)["SecretString"] == "three"


@pytest.fixture
def deployed(local_aws: Any) -> Any:
    """A stack with one tunnel (source token secret only) deployed through LocalCloudFormation."""
    stack = Stack(App(), "Plant")
    SecureTunnel(stack, "Maintenance", thing="pump-7")
    cloudformation = LocalCloudFormation("Plant")
    cloudformation.deploy(Template.from_stack(stack).to_json())
    yield cloudformation
    cloudformation.destroy()


def _source_secret(cloudformation: LocalCloudFormation) -> str:
    (arn,) = (arn for logical_id, arn in cloudformation.secrets.items() if "SourceToken" in logical_id)
    return arn


def test_deploying_configures_the_upkeep_function_as_the_rotation_function(deployed: Any) -> None:
    described = boto3.client("secretsmanager").describe_secret(SecretId=_source_secret(deployed))
    assert described["RotationEnabled"] is True
    assert ":function:" in described["RotationLambdaARN"]
    assert "CdkSecureTunnelUpkeep" in described["RotationLambdaARN"]
    # Configuring rotation tests it on a copy of the current version, which is gone again.
    assert _labels(_source_secret(deployed)) == [CURRENT, PREVIOUS]  # the token, the placeholder


def test_rotate_secret_gives_a_fresh_token_of_the_same_tunnel(deployed: Any, tunnel_emulator: Any) -> None:
    arn = _source_secret(deployed)
    before = _value(arn)
    for _ in range(2):  # a second rotation finds no rotation in progress
        boto3.client("secretsmanager").rotate_secret(SecretId=arn)
    after = _value(arn)
    assert after["tunnelId"] == before["tunnelId"]
    assert after["clientAccessToken"] != before["clientAccessToken"]
    tunnel = tunnel_emulator.tunnel(after["tunnelId"])
    assert tunnel.source_token == after["clientAccessToken"]
    assert before["clientAccessToken"] in tunnel.revoked_tokens
    assert _labels(arn) == [CURRENT, PREVIOUS]


def test_a_failed_rotation_answers_as_secrets_manager_does_and_leaves_the_secret(
    deployed: Any, tunnel_emulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    arn = _source_secret(deployed)
    before = _value(arn)
    boto3.client("iotsecuretunneling").close_tunnel(tunnelId=before["tunnelId"])
    with caplog.at_level(logging.WARNING):
        boto3.client("secretsmanager").rotate_secret(SecretId=arn)  # accepted: the function fails later
    assert _value(arn) == before
    assert _labels(arn) == [CURRENT, PREVIOUS]
    assert any("has closed" in record.getMessage() for record in caplog.records)


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed")
def test_the_readmes_fresh_token_command_works_offline(deployed: Any) -> None:
    arn = _source_secret(deployed)
    before = _value(arn)
    subprocess.run(["aws", "secretsmanager", "rotate-secret", "--secret-id", arn], check=True, env=os.environ)
    assert _value(arn)["clientAccessToken"] != before["clientAccessToken"]


DEPLOY = """
import sys
from aws_cdk import App, Stack
from aws_cdk.assertions import Template
from cdk_secure_tunnel import SecureTunnel
from cdk_secure_tunnel.testing import LocalCloudFormation

stack = Stack(App(), "Plant")
tunnel = SecureTunnel(stack, "Maintenance", thing="pump-7")
cloudformation = LocalCloudFormation("Plant")
cloudformation.deploy(Template.from_stack(stack).to_json())
print(cloudformation.secrets[stack.get_logical_id(tunnel.source_token_secret.node.default_child)])
"""
READ_TOKEN = (
    "import boto3, json, sys; "
    "print(json.loads(boto3.client('secretsmanager').get_secret_value(SecretId=sys.argv[1])['SecretString'])"
    "['clientAccessToken'])"
)

ROTATE = "import boto3, sys; boto3.client('secretsmanager').rotate_secret(SecretId=sys.argv[1])"


@pytest.mark.slow
def test_rotation_from_a_shell_against_the_command_line_server(tmp_path: Any) -> None:
    # The README's path: a server from `python -m cdk_secure_tunnel.testing`, a stack deployed by another
    # process, and rotate-secret from a third, each a fresh process of a shell.
    (tmp_path / "deploy.py").write_text(DEPLOY)
    python = sys.executable
    script = f"""
        set -e
        eval "$({python} -m cdk_secure_tunnel.testing --background)"
        trap 'kill "$CDK_SECURE_TUNNEL_LOCAL_AWS_PID"' EXIT
        arn=$({python} deploy.py)
        before=$({python} -c "{READ_TOKEN}" "$arn")
        {python} -c "{ROTATE}" "$arn"
        after=$({python} -c "{READ_TOKEN}" "$arn")
        test -n "$before" && test "$before" != "$after"
    """
    result = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_second_local_aws_leaves_the_first_ones_rotation_running(local_aws: Any) -> None:
    # A LocalAws started and stopped during a session (a doctest, say) must not unregister the session's.
    arn = "arn:aws:lambda:us-east-1:123456789012:function:Plant-CdkSecureTunnelUpkeepFunction5E03B1B0"
    first = secrets_manager.rotation_function(arn)
    assert first is not None
    with LocalAws():
        assert secrets_manager.rotation_function(arn) is not first
    assert secrets_manager.rotation_function(arn) is first
