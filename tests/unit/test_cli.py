"""The command's pieces that need no tunnel: help, usage errors, the reference proxy's command line."""

import argparse
import logging
import os
import re
import socket
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from cdk_secure_tunnel.cli import connect, main, output
from cdk_secure_tunnel.cli.documents import TokenDocument
from cdk_secure_tunnel.cli.lookup import secret_logical_id
from cdk_secure_tunnel.localproxy import ProxySettings, Target


def test_every_command_has_help_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["connect", "--help"], ["device", "--help"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 0
        assert "examples:" in capsys.readouterr().out


def test_usage_errors_exit_2_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["device"])  # --destination is required
    assert exited.value.code == 2
    assert main(["device", "-d", "SSH=22"]) == 2  # no token anywhere
    err = capsys.readouterr().err
    assert "the token: pass --notify FILE (or -), --secret ARN, or set $AWSIOT_TUNNEL_ACCESS_TOKEN" in err
    assert "Traceback" not in err


def test_the_construct_path_gives_the_secrets_logical_id() -> None:
    assert secret_logical_id("Plant", "Maintenance", "source") == "MaintenanceSourceToken30C10707"
    assert secret_logical_id("Plant", "Plant/Maintenance", "source") == "MaintenanceSourceToken30C10707"
    assert secret_logical_id("X", "Bastion", "destination").startswith("BastionDestinationToken")


def test_the_stack_tag_is_the_constructs() -> None:
    from cdk_secure_tunnel.cli.lookup import SECRET_STACK_TAG  # noqa: PLC0415
    from tunnel_lambda.contract import OWNER_STACK_TAG  # noqa: PLC0415  (not in the device's distribution)

    assert SECRET_STACK_TAG == OWNER_STACK_TAG


def test_exec_localproxy_passes_the_token_in_the_environment_only(tmp_path: Path) -> None:
    fake = tmp_path / "localproxy"
    record = tmp_path / "record"
    fake.write_text(
        f"#!{sys.executable}\nimport os, sys\n"
        f"open({str(record)!r}, 'w').write(repr((sys.argv[1:], os.environ.get('AWSIOT_TUNNEL_ACCESS_TOKEN'),"
        " os.environ.get('AWSIOT_TUNNEL_CLIENT_TOKEN'))))\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    args = argparse.Namespace(
        exec_localproxy=str(fake),
        command=[],
        region=None,
        endpoint=None,
        capath=None,
        no_ssl_host_verify=False,
    )
    settings = ProxySettings(
        mode="source",
        access_token="the-token",
        endpoint="wss://data.tunneling.iot.eu-west-1.amazonaws.com:443",
        services={"SSH": Target(None, 5555), "HTTP": Target(None, 8080)},
        version=2,
        client_token="c" * 36,
    )
    assert connect.exec_localproxy(args, settings, "eu-west-1") == 0
    argv, token, client_token = eval(record.read_text())  # noqa: S307  (our own repr)
    assert argv == ["-s", "SSH=5555,HTTP=8080", "-b", "127.0.0.1", "-r", "eu-west-1", "-y", "V2"]
    assert token == "the-token"
    assert client_token == "c" * 36
    assert "the-token" not in " ".join(argv)
    assert os.environ.get("AWSIOT_TUNNEL_ACCESS_TOKEN") is None


_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:MaintenanceSourceToken30C10707-AbCdEf"


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No credentials, profile or region anywhere (nor the proxies' variables), and Secrets Manager on a
    local port nobody listens on."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "AWSIOT_TUNNEL_", "CDK_SECURE_TUNNEL_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata credentials either
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with socket.socket() as probe:  # a port that was free a moment ago: nothing answers there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://127.0.0.1:{port}")
    return monkeypatch


@pytest.mark.parametrize(
    ("environment", "argv", "status", "message"),
    [
        (
            {},
            ["connect", "--secret", _SECRET],
            2,
            "AWS: no credentials found; set them up with `aws configure",
        ),
        (
            {"AWS_PROFILE": "nonexistent"},
            ["connect", "--secret", _SECRET],
            2,
            "AWS: the profile does not exist; check AWS_PROFILE",
        ),
        (
            {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "example"},
            ["connect", "--stack", "Plant", "--tunnel", "Maintenance"],
            2,
            "AWS: no region is set; pass --region",
        ),
        (
            {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "example"},
            ["device", "--secret", _SECRET, "-d", "22"],
            6,
            "AWS: the endpoint cannot be reached; check the network",
        ),
    ],
    ids=["no credentials", "no such profile", "no region", "endpoint unreachable"],
)
def test_aws_setup_problems_are_explained_without_a_traceback(
    no_aws: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *,
    environment: dict[str, str],
    argv: list[str],
    status: int,
    message: str,
) -> None:
    for name, value in environment.items():
        no_aws.setenv(name, value)
    assert main(argv) == status
    err = capsys.readouterr().err
    assert f"error: {message}" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["connect", "device"])
def test_help_examples_keep_their_line_breaks(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    epilog = capsys.readouterr().out.partition("\nexamples:\n")[2]
    assert epilog
    # A line continued in the source must stay two lines (the first ending in a shell's backslash), not
    # become one with a run of spaces in it.
    for line in epilog.splitlines():
        assert not re.search(r"\S {3,}\S", line), line
    assert " \\\n      " in epilog


@pytest.mark.parametrize("command", ["connect", "device"])
def test_help_steers_the_client_token_to_the_environment(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    helped = " ".join(capsys.readouterr().out.split())
    assert "set $AWSIOT_TUNNEL_CLIENT_TOKEN instead" in helped
    assert "a command line is visible to every local user (ps)" in helped


def test_a_client_token_on_the_command_line_is_warned_about(capsys: pytest.CaptureFixture[str]) -> None:
    from cdk_secure_tunnel.cli import common  # noqa: PLC0415

    given = argparse.Namespace(no_client_token=False, client_token="c" * 36)
    assert common.client_token(given, {}) == "c" * 36
    assert "--client-token is visible to other local users (ps); set $AWSIOT_TUNNEL_CLIENT_TOKEN" in (
        capsys.readouterr().err
    )
    from_environment = argparse.Namespace(no_client_token=False, client_token=None)
    assert common.client_token(from_environment, {"AWSIOT_TUNNEL_CLIENT_TOKEN": "e" * 36}) == "e" * 36
    assert capsys.readouterr().err == ""


def _logger_states() -> list[tuple[int, bool, list[logging.Handler]]]:
    return [
        (logger.level, logger.propagate, list(logger.handlers))
        for logger in map(logging.getLogger, output.LOGGERS)
    ]


def test_overlapping_commands_put_the_loggers_back_whatever_order_they_end() -> None:
    # Two commands in threads of one process (the e2e tests' device and connect) ending in the order they
    # started: the first to end must not restore while the other runs, nor the last restore what the
    # first had set up (WARNING, propagation off, for the rest of the process).
    loggers = [logging.getLogger(name) for name in output.LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        before = _logger_states()
        first, second = output.logging_to_stderr(verbosity=0), output.logging_to_stderr(verbosity=2)
        first.__enter__()
        assert {level for level, _, _ in _logger_states()} == {logging.WARNING}
        second.__enter__()
        first.__exit__(None, None, None)
        during = _logger_states()
        assert all(not propagate and len(handlers) == 1 for _, propagate, handlers in during)
        assert {level for level, _, _ in during} == {logging.DEBUG}  # the running command's -vv
        second.__exit__(None, None, None)
        assert _logger_states() == before
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


# -- AWS refusing a call: one line and an exit status, never a traceback -----------------------------------

_DENIED = "User: arn:aws:sts::123456789012:assumed-role/Operator/me is not authorized to perform: {action}"


def _refusing(session: Any, operation: str, code: str = "AccessDeniedException") -> None:
    """Make ``session`` (boto3) answer ``operation`` ("secrets-manager.ListSecrets") with HTTP 400 ``code``,
    as AWS refuses a call, before any request leaves (a botocore ``before-call`` hook)."""
    service, _, name = operation.partition(".")
    message = _DENIED.format(action=f"{service.replace('-', '')}:{name}") if "Denied" in code else "No."

    def refuse(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        return AWSResponse("https://aws.invalid/", 400, {}, None), {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }

    session.events.register(f"before-call.{operation}", refuse)


@pytest.fixture
def aws_refusing(no_aws: pytest.MonkeyPatch) -> Callable[..., None]:
    """``refuse("secrets-manager.ListSecrets", ...)``: every session the command makes refuses those calls
    (fake credentials and a region are set; nothing reaches any endpoint)."""
    from cdk_secure_tunnel.cli import common  # noqa: PLC0415

    no_aws.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    no_aws.setenv("AWS_SECRET_ACCESS_KEY", "example")
    no_aws.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    refusals: list[tuple[str, str]] = []
    original = common.aws_session

    def session(region: str | None) -> Any:
        made = original(region)
        for operation, code in refusals:
            _refusing(made, operation, code)
        return made

    no_aws.setattr(common, "aws_session", session)

    def refuse(*operations: str, code: str = "AccessDeniedException") -> None:
        refusals.extend((operation, code) for operation in operations)

    return refuse


def test_listsecrets_denied_falls_back_to_the_stack_resources(monkeypatch: pytest.MonkeyPatch) -> None:
    from cdk_secure_tunnel.cli import lookup  # noqa: PLC0415

    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL_CLOUDFORMATION"):
        monkeypatch.delenv(name, raising=False)  # real AWS as far as the lookup knows: it tries both ways
    session = boto3.session.Session(
        region_name="eu-west-1", aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="example"
    )
    _refusing(session, "secrets-manager.ListSecrets")
    asked: list[dict[str, Any]] = []

    def stack_resource(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        asked.append(params)
        detail = {"LogicalResourceId": "MaintenanceSourceToken30C10707", "PhysicalResourceId": _SECRET}
        return AWSResponse("https://aws.invalid/", 200, {}, None), {"StackResourceDetail": detail}

    session.events.register("before-call.cloudformation.DescribeStackResource", stack_resource)
    assert lookup.find_secret(session, "Plant", "Maintenance", "source") == _SECRET
    assert len(asked) == 1


@pytest.mark.parametrize(
    ("refused", "cloudformation", "status", "said"),
    [
        (
            ["secrets-manager.ListSecrets"],
            False,  # offline: Secrets Manager local, no CloudFormation endpoint to fall back to
            2,
            "error: stack Plant: cannot look for its source token secret: not allowed to call "
            "secretsmanager:ListSecrets (User: arn:aws:sts::123456789012:assumed-role/Operator/me is not "
            "authorized to perform: secretsmanager:ListSecrets); grant it (SecureTunnel.grant_connect does), "
            "or pass --secret <the source token secret's ARN>",
        ),
        (
            ["secrets-manager.ListSecrets", "cloudformation.DescribeStackResource"],
            True,
            2,
            "error: stack Plant: cannot look for its source token secret: not allowed to call "
            "secretsmanager:ListSecrets (User: ",
        ),
    ],
    ids=["ListSecrets denied, offline", "both denied"],
)
def test_a_lookup_nobody_may_make_says_which_permissions_and_suggests_secret(
    aws_refusing: Callable[..., None],
    no_aws: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *,
    refused: list[str],
    cloudformation: bool,
    status: int,
    said: str,
) -> None:
    if cloudformation:
        no_aws.setenv("AWS_ENDPOINT_URL_CLOUDFORMATION", "http://127.0.0.1:9")
    aws_refusing(*refused)
    assert main(["connect", "--stack", "Plant", "--tunnel", "Maintenance"]) == status
    err = capsys.readouterr().err
    assert said in err
    if cloudformation:
        assert "nor cloudformation:DescribeStackResource (User: " in err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "refused", "code", "status", "said"),
    [
        (
            ["connect", "--secret", _SECRET],
            "secrets-manager.GetSecretValue",
            "AccessDeniedException",
            2,
            f"error: secret {_SECRET}: cannot read it (AccessDeniedException): User: ",
        ),
        (
            ["connect", "--stack", "Plant", "--tunnel", "Maintenance"],
            "secrets-manager.ListSecrets",
            "ThrottlingException",
            6,
            "error: AWS: ListSecrets was refused (ThrottlingException): No.; try again later",
        ),
        (
            ["device", "--secret", _SECRET, "-d", "22"],
            "secrets-manager.GetSecretValue",
            "DecryptionFailure",
            1,
            f"error: secret {_SECRET}: cannot read it (DecryptionFailure): No.",
        ),
    ],
    ids=["GetSecretValue denied", "throttled past botocore's retries", "other refusals"],
)
def test_aws_refusals_are_one_line_with_the_code_and_an_exit_status(
    aws_refusing: Callable[..., None],
    capsys: pytest.CaptureFixture[str],
    *,
    argv: list[str],
    refused: str,
    code: str,
    status: int,
    said: str,
) -> None:
    aws_refusing(refused, code=code)
    assert main(argv) == status
    err = capsys.readouterr().err
    assert said in err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_a_rotation_that_may_not_describe_the_secret_says_so(no_aws: pytest.MonkeyPatch) -> None:
    from cdk_secure_tunnel.cli.output import Progress  # noqa: PLC0415
    from cdk_secure_tunnel.cli.secrets import TokenSecret  # noqa: PLC0415
    from cdk_secure_tunnel.localproxy import ConfigurationError  # noqa: PLC0415

    session = boto3.session.Session(
        region_name="eu-west-1", aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="example"
    )
    _refusing(session, "secrets-manager.DescribeSecret")
    with pytest.raises(ConfigurationError) as raised:
        TokenSecret(session, _SECRET).rotate(Progress())
    assert str(raised.value).startswith(
        f"secret {_SECRET}: cannot describe it (AccessDeniedException): User: "
    )
    assert "waiting for a rotation needs secretsmanager:DescribeSecret" in str(raised.value)


def test_any_other_aws_refusal_is_explained_with_its_code_and_operation() -> None:
    from botocore.exceptions import ClientError  # noqa: PLC0415
    from cdk_secure_tunnel.cli.aws_errors import explained  # noqa: PLC0415

    error = ClientError({"Error": {"Code": "Whatever", "Message": "no\nsuch   luck"}}, "DescribeTunnel")
    known = explained(error)
    assert known is not None
    assert str(known) == "AWS: DescribeTunnel was refused (Whatever): no such luck"
    assert int(known.exit_code) == 1


@pytest.mark.parametrize("command", ["connect", "device"])
def test_each_commands_help_gives_every_exit_status(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    from cdk_secure_tunnel.localproxy import ExitCode  # noqa: PLC0415

    with pytest.raises(SystemExit):
        main([command, "--help"])
    statuses = " ".join(capsys.readouterr().out.partition("exit status:")[2].split())
    given = {int(status) for status in re.findall(r"\b(\d+) ", statuses)}
    assert given >= {int(code) for code in ExitCode} - {ExitCode.OK}


def test_connect_help_says_when_the_command_starts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["connect", "--help"])
    helped = " ".join(capsys.readouterr().out.split())
    assert "once listening" not in helped
    assert "run a command once the device is connected (at once if DescribeTunnel is not allowed)" in helped
    assert "-- then a command to run once the device is connected" in helped


# -- the tunnel's region ----------------------------------------------------------------------------------

_EVERY_REGION_SETTING = {
    "AWSIOT_TUNNEL_REGION": "ap-south-1",
    "AWS_REGION": "sa-east-1",
    "AWS_DEFAULT_REGION": "ca-central-1",
}


@pytest.mark.parametrize(
    ("given", "token", "unset", "expected"),
    [
        ("eu-west-1", "us-east-1", [], "eu-west-1"),
        (None, "us-east-1", [], "us-east-1"),
        (None, None, [], "ap-south-1"),
        (None, None, ["AWSIOT_TUNNEL_REGION"], "sa-east-1"),
        (None, None, ["AWSIOT_TUNNEL_REGION", "AWS_REGION"], "ca-central-1"),
        (None, None, list(_EVERY_REGION_SETTING), "eu-north-1"),
    ],
    ids=["--region", "the token's", "$AWSIOT_TUNNEL_REGION", "$AWS_REGION", "$AWS_DEFAULT_REGION", "profile"],
)
def test_the_tunnels_region_is_the_first_one_set(
    no_aws: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    *,
    given: str | None,
    token: str | None,
    unset: list[str],
    expected: str,
) -> None:
    from cdk_secure_tunnel.cli import common  # noqa: PLC0415

    (tmp_path / "config").write_text("[default]\nregion = eu-north-1\n")
    for name, value in _EVERY_REGION_SETTING.items():
        if name not in unset:
            no_aws.setenv(name, value)
    document = TokenDocument(token="t", mode="destination", region=token, services=())
    assert common.region(argparse.Namespace(region=given), document) == expected
    warned = capsys.readouterr().err
    assert ("--region eu-west-1 overrides the token's region us-east-1" in warned) == (given is not None)


def _endpoints_served(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``device``'s data plane endpoints, recorded instead of connecting (nothing may reach AWS)."""
    from cdk_secure_tunnel.cli import device  # noqa: PLC0415

    endpoints: list[str] = []

    async def serve(proxy: Any) -> int:
        endpoints.append(proxy.settings.endpoint)
        return 0

    monkeypatch.setattr(device, "_serve", serve)
    return endpoints


def test_device_with_the_token_in_the_environment_takes_aws_region(no_aws: pytest.MonkeyPatch) -> None:
    no_aws.setenv("AWSIOT_TUNNEL_ACCESS_TOKEN", "t0k3n")
    no_aws.setenv("AWS_REGION", "eu-central-1")
    endpoints = _endpoints_served(no_aws)
    assert main(["device", "-d", "22"]) == 0
    assert endpoints == ["wss://data.tunneling.iot.eu-central-1.amazonaws.com:443"]


def test_an_explicit_region_wins_over_the_tokens(
    no_aws: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notify = tmp_path / "notify.json"
    notify.write_text(
        '{"clientAccessToken": "t0k3n", "clientMode": "destination", "region": "us-east-1", "services": []}'
    )
    endpoints = _endpoints_served(no_aws)
    assert main(["device", "--notify", str(notify), "-d", "22", "--region", "eu-west-1"]) == 0
    assert main(["device", "--notify", str(notify), "-d", "22"]) == 0
    assert endpoints == [
        "wss://data.tunneling.iot.eu-west-1.amazonaws.com:443",
        "wss://data.tunneling.iot.us-east-1.amazonaws.com:443",
    ]
    assert "warning: --region eu-west-1 overrides the token's region us-east-1" in capsys.readouterr().err


def test_connect_looks_for_the_stack_in_aws_region(
    aws_refusing: Callable[..., None], no_aws: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cdk_secure_tunnel.cli import common  # noqa: PLC0415

    no_aws.delenv("AWS_DEFAULT_REGION")  # boto3 reads only that one itself
    no_aws.setenv("AWS_REGION", "eu-central-1")
    regions: list[str | None] = []
    refusing_session = common.aws_session

    def session(region: str | None) -> Any:
        made = refusing_session(region)
        regions.append(made.region_name)
        made.events.register(
            "before-call.secrets-manager.ListSecrets",
            lambda **_: (AWSResponse("https://aws.invalid/", 200, {}, None), {"SecretList": []}),
        )
        return made

    no_aws.setattr(common, "aws_session", session)
    assert main(["connect", "--stack", "Plant", "--tunnel", "Maintenance"]) == 3
    assert regions == ["eu-central-1"]
    assert "no source token secret for construct path 'Maintenance'" in capsys.readouterr().err
