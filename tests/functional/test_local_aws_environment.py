"""Pointing a process or a shell at local AWS, and leaving nothing behind: LocalAws.environment_applied()
and ``python -m cdk_secure_tunnel.testing`` (export lines, --env-file, --background for eval).
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from cdk_secure_tunnel.testing import LocalAws
from support.processes import STARTUP_TIMEOUT, read_lines

# What a developer's shell often has: each would send boto3 elsewhere, or fail on a missing profile.
DEVELOPER_SHELL = {
    "AWS_PROFILE": "production",
    "AWS_DEFAULT_PROFILE": "production",
    "AWS_SESSION_TOKEN": "a-real-session-token",
    "AWS_ENDPOINT_URL": "https://elsewhere.example",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
    "AWS_REGION": "eu-west-3",
}
SERVER = [sys.executable, "-m", "cdk_secure_tunnel.testing", "--no-secrets-manager"]
# A client in a fresh process, as a shell's next command: lists tunnels through whatever it was given.
CLIENT = (
    f'"{sys.executable}" -c '
    "\"import boto3; print(boto3.client('iotsecuretunneling').list_tunnels()['tunnelSummaries'])\""
)


@pytest.fixture
def developer_shell(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in DEVELOPER_SHELL.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", raising=False)
    return _aws_variables()


def _aws_variables() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name.startswith("AWS_")}


def test_environment_applied_points_boto3_here_and_restores_everything(
    developer_shell: dict[str, str],
) -> None:
    with LocalAws() as aws:
        with aws.environment_applied() as variables:
            assert not {"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"} & set(os.environ)
            secrets = boto3.client("secretsmanager")  # moto's backends are the process's: others' too
            arn = secrets.create_secret(Name="hygiene-check", SecretString="local")["ARN"]
            assert secrets.get_secret_value(SecretId=arn)["SecretString"] == "local"
            secrets.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
            assert boto3.client("iotsecuretunneling").list_tunnels()["tunnelSummaries"] == []
            assert (
                os.environ["AWS_ENDPOINT_URL_SECRETS_MANAGER"]
                == variables["AWS_ENDPOINT_URL_SECRETS_MANAGER"]
            )
        assert _aws_variables() == developer_shell


def test_environment_applied_restores_after_an_exception(developer_shell: dict[str, str]) -> None:
    with LocalAws(secrets_manager=False) as aws, contextlib.suppress(RuntimeError), aws.environment_applied():
        raise RuntimeError("the test failed")
    assert _aws_variables() == developer_shell


def test_environment_applied_starts_boto3s_default_session_afresh(developer_shell: dict[str, str]) -> None:
    with LocalAws(secrets_manager=False) as aws:
        earlier = boto3.DEFAULT_SESSION
        with aws.environment_applied():
            # A default session made before would keep the profile and credentials it read.
            assert boto3.DEFAULT_SESSION is None
            boto3.client("iotsecuretunneling").list_tunnels()
        assert boto3.DEFAULT_SESSION is earlier


def _shell(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script],
        env={**os.environ, **DEVELOPER_SHELL, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@contextlib.contextmanager
def _foreground(*arguments: str) -> Iterator[subprocess.Popen[str]]:
    server = subprocess.Popen(
        [*SERVER, *arguments], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield server
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)


def test_the_server_prints_export_lines_before_serving() -> None:
    with _foreground() as server:
        first, *exports = read_lines(
            server, until=lambda line: line.startswith("export AWS_SHARED_CREDENTIALS_FILE=")
        )
    assert first.startswith("unset ")
    assert "AWS_PROFILE" in first.split()
    assert exports[0].startswith("export AWS_ENDPOINT_URL_IOTSECURETUNNELING=http://127.0.0.1:")
    assert all(line.startswith("export ") for line in exports)
    assert "export AWS_DEFAULT_REGION=us-east-1\n" in exports


def test_the_env_file_is_for_source_and_goes_when_the_server_stops(tmp_path: Path) -> None:
    env_file = tmp_path / "local-aws.env"
    with _foreground("--env-file", str(env_file)) as server:
        read_lines(server, until=lambda _: True)  # the file is written after the same lines are printed
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not env_file.exists():
            assert server.poll() is None, "the server exited before writing its env file"
            assert time.monotonic() < deadline, f"no env file after {STARTUP_TIMEOUT} s"
            time.sleep(0.05)
        result = _shell(f". {env_file} && {CLIENT}")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "[]"
    assert not env_file.exists()


def test_eval_of_background_returns_and_the_server_keeps_serving(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = (
        f'eval "$({" ".join(SERVER)} --background)" && echo "$CDK_SECURE_TUNNEL_LOCAL_AWS_PID" > {pid_file} '
        f"&& {CLIENT}"
    )
    try:
        result = _shell(script)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "[]"
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
