"""The command's pieces that need no tunnel: help, usage errors, the reference proxy's command line."""

import argparse
import os
import stat
import sys
from pathlib import Path

import pytest
from cdk_secure_tunnel.cli import connect, main
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
    document = TokenDocument(token="the-token", mode="source", region="eu-west-1", services=("SSH", "HTTP"))
    settings = ProxySettings(
        mode="source",
        access_token="the-token",
        endpoint="wss://data.tunneling.iot.eu-west-1.amazonaws.com:443",
        services={"SSH": Target(None, 5555), "HTTP": Target(None, 8080)},
        version=2,
        client_token="c" * 36,
    )
    assert connect.exec_localproxy(args, settings, document) == 0
    argv, token, client_token = eval(record.read_text())  # noqa: S307  (our own repr)
    assert argv == ["-s", "SSH=5555,HTTP=8080", "-b", "127.0.0.1", "-r", "eu-west-1", "-y", "V2"]
    assert token == "the-token"
    assert client_token == "c" * 36
    assert "the-token" not in " ".join(argv)
    assert os.environ.get("AWSIOT_TUNNEL_ACCESS_TOKEN") is None
