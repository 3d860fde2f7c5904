"""SecureTunnel.connect_command() and localproxy_command(): what a stack output tells an operator to run."""

import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Environment, Fn, Stack
from cdk_secure_tunnel import SecureTunnel
from cdk_secure_tunnel.connect_recipe import SourceConnection

TOKEN = "AQGAAXiSecretToken_-"


def _resolved(stack: Stack, value: str) -> Any:
    return stack.resolve(value)


def _stack(region: str | None = "eu-west-1") -> Stack:
    return Stack(App(), "Plant", env=Environment(account="123456789012", region=region) if region else None)


def _text(resolved: Any) -> str:
    """A resolved Fn::Join as text, each reference written as <Ref ...>."""
    if isinstance(resolved, str):
        return resolved
    if "Fn::Join" in resolved:
        separator, parts = resolved["Fn::Join"]
        return separator.join(_text(part) for part in parts)
    return f"<{json.dumps(resolved, sort_keys=True)}>"


def test_the_command_names_the_stacks_region_and_the_secret() -> None:
    stack = _stack()
    tunnel = SecureTunnel(stack, "Maintenance", thing="pump-7")
    command = _text(_resolved(stack, tunnel.connect_command()))
    secret = _text(_resolved(stack, tunnel.source_token_secret.secret_arn))
    assert command == f"cdk-secure-tunnel connect --region eu-west-1 --secret {secret} --services SSH=5555"


def test_the_localproxy_recipe_names_the_region_and_takes_the_token_from_the_environment() -> None:
    stack = _stack()
    tunnel = SecureTunnel(stack, "Maintenance", thing="pump-7")
    command = _text(_resolved(stack, tunnel.localproxy_command()))
    secret = _text(_resolved(stack, tunnel.source_token_secret.secret_arn))
    assert command == (
        'AWSIOT_TUNNEL_ACCESS_TOKEN="$(aws secretsmanager get-secret-value --region eu-west-1 '
        f'--secret-id {secret} --query SecretString --output text | jq -r .clientAccessToken)" '
        "localproxy -r eu-west-1 -s SSH=5555"
    )
    assert " -t " not in command


def test_an_environment_agnostic_stack_gets_its_region_at_deploy() -> None:
    stack = _stack(region=None)
    tunnel = SecureTunnel(stack, "Maintenance")
    assert '--region <{"Ref": "AWS::Region"}> --secret' in _text(_resolved(stack, tunnel.connect_command()))
    command = _text(_resolved(stack, tunnel.localproxy_command()))
    assert '--region <{"Ref": "AWS::Region"}>' in command
    assert '-r <{"Ref": "AWS::Region"}> -s SSH=5555' in command


def test_every_service_gets_a_port_of_its_own() -> None:
    stack = _stack()
    tunnel = SecureTunnel(stack, "Support", services=["SSH", "RDP", "HTTP"])
    assert tunnel.localproxy_command().endswith("-s SSH=5555,RDP=5556,HTTP=5557")
    assert tunnel.connect_command().endswith("--services SSH=5555,RDP=5556,HTTP=5557")
    chosen = tunnel.localproxy_command(local_ports={"HTTP": 8080, "SSH": 2222, "RDP": 3389})
    assert chosen.endswith("-s SSH=2222,RDP=3389,HTTP=8080")


def test_a_v1_destination_gets_a_bare_port_and_the_flag() -> None:
    stack = _stack()
    tunnel = SecureTunnel(stack, "Maintenance", thing="gateway-12")
    assert tunnel.localproxy_command(destination_client_type="V1").endswith(
        "localproxy -r eu-west-1 -s 5555 --destination-client-type V1"
    )
    assert tunnel.connect_command(destination_client_type="V1").endswith(
        "--services 5555 --destination-client-type V1"
    )


def test_services_known_only_at_deploy_get_the_single_port_form() -> None:
    stack = _stack()
    tunnel = SecureTunnel(stack, "Maintenance", services=Fn.split(",", Fn.import_value("Services")))
    assert tunnel.localproxy_command().endswith("-s 5555")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"local_ports": {"SSH": 2222}}, "local_ports: got {'SSH': 2222}; expected a port for each"),
        ({"local_ports": {"SSH": 22, "HTTP": 70000}}, "local_ports: got 70000 for 'HTTP'; expected a port"),
        ({"local_ports": {"SSH": 22, "HTTP": 22}}, "each service needs a port of its own"),
        ({"destination_client_type": "V3"}, "destination_client_type: got 'V3'; expected one of"),
        ({"destination_client_type": "V1"}, "a V1 destination (AWS IoT Device Client, the Greengrass"),
    ],
)
def test_bad_options_are_named(options: dict[str, Any], message: str) -> None:
    tunnel = SecureTunnel(_stack(), "Bastion", services=["SSH", "HTTP"])
    for command in (tunnel.connect_command, tunnel.localproxy_command):
        with pytest.raises(ValueError, match=re.escape(message)):
            command(**options)


def test_every_example_prints_the_command(example_templates: dict[str, dict[str, Any]]) -> None:
    for name, template in example_templates.items():
        command = _text(template["Outputs"]["ConnectCommand"]["Value"])
        assert command.startswith('cdk-secure-tunnel connect --region <{"Ref": "AWS::Region"}> --secret <'), (
            name
        )
        recipe = _text(template["Outputs"]["LocalProxyCommand"]["Value"])
        assert recipe.startswith("AWSIOT_TUNNEL_ACCESS_TOKEN="), name
        assert '-r <{"Ref": "AWS::Region"}>' in recipe, name
    services = example_templates["ServicesWithKmsKey"]["Outputs"]["LocalProxyCommand"]["Value"]
    assert _text(services).endswith("-s SSH=5555,RDP=5556,HTTP=5557")
    two = example_templates["ThingWithOperatorRole"]["Outputs"]["ConnectCommand"]["Value"]
    assert _text(two).endswith("--services SSH=5555,HTTP=5556")


def test_the_token_reaches_the_proxys_environment_and_never_its_argv(tmp_path: Path) -> None:
    # Stand-ins for the AWS CLI (answering with a token document) and the reference proxy.
    document = json.dumps({"clientAccessToken": TOKEN, "region": "eu-west-1"})
    (tmp_path / "aws").write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/aws.args\necho '{document}'\n")
    (tmp_path / "localproxy").write_text(
        f'#!/bin/sh\necho "$@" > {tmp_path}/argv\n'
        f'printf %s "$AWSIOT_TUNNEL_ACCESS_TOKEN" > {tmp_path}/token\n'
    )
    for name in ("aws", "localproxy"):
        (tmp_path / name).chmod(0o755)
    command = SourceConnection(
        "eu-west-1", "arn:aws:secretsmanager:eu-west-1:1:secret:S", ["SSH"]
    ).localproxy_command()
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["bash", "-c", command], env=env, check=True)
    assert (tmp_path / "token").read_text() == TOKEN
    assert TOKEN not in (tmp_path / "argv").read_text()
    assert (tmp_path / "argv").read_text().split() == ["-r", "eu-west-1", "-s", "SSH=5555"]
    assert "--region eu-west-1" in (tmp_path / "aws.args").read_text()


def test_the_command_is_one_the_cli_accepts() -> None:
    # The cdk-secure-tunnel command (cdk_secure_tunnel.cli) parses what the output tells operators to run.
    cli = pytest.importorskip("cdk_secure_tunnel.cli")
    command = SourceConnection(
        "eu-west-1", "arn:aws:secretsmanager:eu-west-1:1:secret:S", ["SSH", "HTTP"]
    ).cli_command()
    args = cli.parser().parse_args(shlex.split(command)[1:])
    assert (args.region, args.secret, args.services) == (
        "eu-west-1",
        "arn:aws:secretsmanager:eu-west-1:1:secret:S",
        "SSH=5555,HTTP=5556",
    )
    v1 = SourceConnection("eu-west-1", "arn", ["SSH"], destination_client_type="V1").cli_command()
    assert cli.parser().parse_args(shlex.split(v1)[1:]).destination_client_type == "V1"
