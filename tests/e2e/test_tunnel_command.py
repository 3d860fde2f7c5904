"""From ``cdk deploy`` to bytes through the tunnel, offline: ``cdk-secure-tunnel connect`` and ``device``.

LocalCloudFormation deploys the ThingWithOperatorRole example (thing gateway-12, services SSH and HTTP)
against local AWS (the emulator's control and data plane, moto's Secrets Manager). A simulated device
reads the emulator's notify payload and runs ``device`` to a local TCP echo server and a local HTTP
server; the operator runs ``connect``. Both run in-process (threads) for speed, and once as real
processes. Tests wait on the emulator's connection events and on data, never on the wall clock.

Secrets Manager rotation: RotateSecret against local AWS runs the stack's rotation function (its upkeep
function) in this process, as Secrets Manager invokes the Lambda (``LocalAws``, see
cdk_secure_tunnel.emulator.secrets_manager), for the command's calls as for the tests' own.
"""

import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import boto3
import pytest
from cdk_secure_tunnel import cli
from cdk_secure_tunnel.testing import LocalAws, LocalCloudFormation, serving_device_services

STACK = "ThingWithOperatorRole"
THING = "gateway-12"
WEB_PAGE = b"<h1>gateway-12</h1>"

# The client the operator runs through the tunnel: 10 simultaneous connections to SSH (an echo server on
# the device), each with its own bytes, then a web page over HTTP. Exits 0 when every byte came back.
CLIENT = """
import socket, sys, urllib.request
ssh, web = int(sys.argv[1]), int(sys.argv[2])
sockets = [socket.create_connection(("127.0.0.1", ssh), timeout=20) for _ in range(10)]
for n, s in enumerate(sockets):
    s.sendall(bytes([65 + n]) * (50_000 + n))
for n, s in enumerate(sockets):
    expected, got = bytes([65 + n]) * (50_000 + n), b""
    while len(got) < len(expected):
        got += s.recv(65536)
    assert got == expected, (n, len(got))
    s.close()
page = urllib.request.urlopen(f"http://127.0.0.1:{web}/", timeout=20).read()
assert page == b"<h1>gateway-12</h1>", page
print("round trips ok")
"""
# What follows ``connect``'s own options: the client, with each service's local port filled in.
CLIENT_COMMAND = ("--", sys.executable, "-c", CLIENT, "{SSH}", "{HTTP}")


@pytest.fixture(scope="module")
def device_services() -> Iterator[dict[str, int]]:
    """The device's own services: an echo server (standing in for SSH) and a web server."""
    with serving_device_services(WEB_PAGE) as ports:
        yield ports


@pytest.fixture
def deployed(local_aws: LocalAws, example_templates: dict[str, dict[str, Any]]) -> Iterator["Deployment"]:
    cloudformation = LocalCloudFormation(STACK)
    cloudformation.deploy(example_templates[STACK])
    yield Deployment(local_aws, cloudformation)
    cloudformation.destroy()


class Deployment:
    def __init__(self, aws: LocalAws, cloudformation: LocalCloudFormation) -> None:
        self.aws = aws
        self.cloudformation = cloudformation
        self.tunnel_id = self._tunnel_id()
        self.plane = aws.emulator.data_plane

    def _tunnel_id(self) -> str:
        (tunnel,) = self.aws.emulator.open_tunnels()
        return tunnel.tunnel_id

    @property
    def source_secret(self) -> str:
        return self.cloudformation.secrets["MaintenanceSourceToken30C10707"]

    def source_token(self) -> str:
        value = boto3.client("secretsmanager").get_secret_value(SecretId=self.source_secret)
        return str(json.loads(value["SecretString"])["clientAccessToken"])

    def rotate_source_secret(self) -> None:
        """RotateSecret, as an operator (or rotate_every) would."""
        boto3.client("secretsmanager").rotate_secret(SecretId=self.source_secret)

    def notify_file(self, directory: Path) -> Path:
        path = directory / "notify.json"
        path.write_text(json.dumps(self.aws.emulator.notifications(THING)[-1]))
        return path

    def connections(self, mode: str) -> int:
        """How many times ``mode`` has connected (each V2+ connection gets SERVICE_IDS): a count that only
        grows, so a wait on it cannot miss a drop and reconnect that were over before it began."""
        log = self.plane.log(self.tunnel_id)
        return sum(record.type == "SERVICE_IDS" and record.delivered_to == mode for record in log)

    def wait_connections(self, mode: str, count: int) -> None:
        assert self.plane.wait_for(lambda: self.connections(mode) >= count, 20)


class Run(threading.Thread):
    """``cdk-secure-tunnel <arguments>`` in-process, in a thread; ``status`` once it ends."""

    def __init__(self, *arguments: str, stderr: TextIO) -> None:
        super().__init__(daemon=True)
        self.arguments = list(arguments)
        self.stderr = stderr
        self.status: int | None = None

    def run(self) -> None:
        self.status = cli.main(self.arguments, stderr=self.stderr)

    def result(self) -> int | None:
        self.join(30)
        return self.status


def _round_trip(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as connection:
        connection.sendall(data)
        received = b""
        while len(received) < len(data):
            chunk = connection.recv(65536)
            assert chunk, "the tunnel closed the connection"
            received += chunk
        return received


class Said(io.StringIO):
    """What the commands say (``cli.main(..., stderr=said)``), as they say it, from any thread.

    The commands run in threads of this process and print whenever they get there, so a test waits for a
    command's line (``wait_for``) rather than assume it was said once the command's side connected. (Not
    capsys: a line a thread prints between pytest's setup and call phases bypasses it.)
    """

    def __init__(self) -> None:
        super().__init__()
        self._changed = threading.Condition()

    def write(self, text: str) -> int:
        with self._changed:
            written = super().write(text)
            self._changed.notify_all()
            return written

    @property
    def text(self) -> str:
        with self._changed:
            return self.getvalue()

    def wait_for(self, line: str, after: int, timeout: float = 20) -> str:
        """The text said past position ``after``, once it holds ``line``."""
        with self._changed:
            said = self._changed.wait_for(lambda: line in self.getvalue()[after:], timeout)
            assert said, f"never said {line!r}; said: {self.getvalue()!r}"
            return self.getvalue()[after:]


@pytest.fixture
def said() -> Said:
    return Said()


# The line each command says once it is ready: the device forwarding, the operator's side listening.
READY_LINE = {"device": "connected; forwarding", "connect": "listening: "}


def _ready(said: Said, *arguments: str) -> tuple[Run, str]:
    """``cdk-secure-tunnel <arguments>`` started, once it says it is ready; and what it said."""
    mark = len(said.text)
    run = Run(*arguments, stderr=said)
    run.start()
    return run, said.wait_for(READY_LINE[arguments[0]], after=mark)


def _ports(listening: str) -> dict[str, int]:
    """The ports in ``connect``'s line ``listening: SSH on 127.0.0.1:5555, HTTP on ...``."""
    return {name: int(port) for name, port in re.findall(r"(\S+) on [^ ,]+:(\d+)", listening)}


@pytest.fixture
def device(said: Said, deployed: Deployment, device_services: dict[str, int], tmp_path: Path) -> Run:
    """``device`` from the notify payload to the device's services, forwarding."""
    notify = deployed.notify_file(tmp_path)
    services = f"SSH={device_services['SSH']},HTTP={device_services['HTTP']}"
    return _ready(said, "device", "--notify", str(notify), "-d", services)[0]


def _listening(said: Said) -> tuple[Run, dict[str, int]]:
    """``connect`` on ports the system chose (a port probed free could be taken before it listens)."""
    source, listening = _ready(
        said, "connect", "--stack", STACK, "--tunnel", "Maintenance", "-s", "SSH=0,HTTP=0"
    )
    return source, _ports(listening)


def test_connect_runs_a_client_through_both_services(deployed: Deployment, said: Said, device: Run) -> None:
    status = cli.main(["connect", "--secret", deployed.source_secret, *CLIENT_COMMAND], stderr=said)
    assert status == 0
    deployed.cloudformation.destroy()  # cdk destroy: CloseTunnel ends the device's session
    assert device.result() == 5
    err = said.text
    assert "listening: SSH on 127.0.0.1:" in err
    assert "connected; forwarding SSH to localhost" in err
    assert "the device is connected" in err
    assert "the tunnel has ended" in err
    assert "The tunnel was closed" in err


def test_connect_starts_its_command_once_the_device_connects(
    deployed: Deployment, said: Said, device_services: dict[str, int], tmp_path: Path
) -> None:
    # The service relays only to a connected peer: a client started before the device would lose its bytes.
    connecting = Run("connect", "--secret", deployed.source_secret, *CLIENT_COMMAND, stderr=said)
    connecting.start()
    said.wait_for("the device is not connected yet; the command starts once it is", after=0)
    assert connecting.is_alive()
    notify = str(deployed.notify_file(tmp_path))
    services = f"SSH={device_services['SSH']},HTTP={device_services['HTTP']}"
    device, _ = _ready(said, "device", "--notify", notify, "-d", services)
    assert connecting.result() == 0  # every byte of both services came back
    deployed.cloudformation.destroy()
    assert device.result() == 5


@pytest.mark.usefixtures("device")
def test_connect_as_a_process_finds_the_tunnel_by_stack_and_construct_path(deployed: Deployment) -> None:
    completed = subprocess.run(
        ["cdk-secure-tunnel", "connect", "--stack", STACK, "--tunnel", "Maintenance", *CLIENT_COMMAND],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | {"PATH": _bin_path()},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "round trips ok" in completed.stdout
    token = deployed.cloudformation.token_document("MaintenanceSourceToken30C10707")["clientAccessToken"]
    assert token not in completed.stderr + completed.stdout


def _bin_path() -> str:
    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"


@pytest.mark.usefixtures("device")
def test_a_spent_token_is_rotated_with_progress_and_tried_once_more(deployed: Deployment, said: Said) -> None:
    assert cli.main(["connect", "--secret", deployed.source_secret, *CLIENT_COMMAND], stderr=said) == 0
    before = deployed.source_token()
    # A second connect has a new client token: the token, spent by the first, is refused, rotated.
    assert cli.main(["connect", "--secret", deployed.source_secret, *CLIENT_COMMAND], stderr=said) == 0
    assert deployed.source_token() != before
    # With --no-rotate the refusal stands: exit 4 and what to do.
    assert (
        cli.main(["connect", "--secret", deployed.source_secret, "--no-rotate", *CLIENT_COMMAND], stderr=said)
        == 4
    )
    err = said.text
    assert "the token is spent or revoked; rotating it" in err
    assert "rotated arn:aws:secretsmanager" in err
    assert "rotate the token (aws secretsmanager rotate-secret" in err


def test_the_device_reconnects_after_its_network_drops(deployed: Deployment, said: Said, device: Run) -> None:
    source, ports = _listening(said)
    assert _round_trip(ports["SSH"], b"before the drop") == b"before the drop"
    connections = deployed.connections("destination")
    deployed.plane.refuse_handshakes(times=1, status=503)  # and the service is briefly unavailable
    assert deployed.plane.drop(deployed.tunnel_id, "destination")
    # Back after a backoff, with the same token and client token.
    deployed.wait_connections("destination", connections + 1)
    assert _round_trip(ports["SSH"], b"after the drop") == b"after the drop"
    assert device.is_alive()
    deployed.cloudformation.destroy()
    assert device.result() == 5
    assert source.result() == 5


@pytest.mark.usefixtures("device")
def test_rotating_the_source_secret_mid_session(deployed: Deployment, said: Said) -> None:
    source, ports = _listening(said)
    assert _round_trip(ports["SSH"], b"one") == b"one"
    # The emulator's default: a live connection outlives the rotation of its token.
    deployed.rotate_source_secret()
    assert _round_trip(ports["SSH"], b"two") == b"two"
    # Where rotation drops it, connect reconnects with the newest token from the secret: first the
    # connection on the token just rotated away goes, then one whose token is rotated while it is live.
    connections = deployed.connections("source")
    deployed.plane.rotation_drops_connections = True
    deployed.wait_connections("source", connections + 1)
    deployed.rotate_source_secret()
    deployed.wait_connections("source", connections + 2)
    assert _round_trip(ports["SSH"], b"three") == b"three"
    deployed.cloudformation.destroy()
    assert source.result() == 5


def test_an_expired_tunnel_ends_both_sides_with_a_clear_message(
    deployed: Deployment, said: Said, device: Run
) -> None:
    source, ports = _listening(said)
    assert _round_trip(ports["SSH"], b"alive") == b"alive"
    deployed.aws.emulator.clock.advance(hours=12)  # type: ignore[attr-defined]
    assert device.result() == 5
    assert source.result() == 5
    err = said.text
    assert "has expired (its 720-minute lifetime ended at" in err
    assert "The tunnel's lifetime ended" in err


def test_a_v1_destination(
    deployed: Deployment, said: Said, device_services: dict[str, int], tmp_path: Path
) -> None:
    notify = str(deployed.notify_file(tmp_path))
    ssh = str(device_services["SSH"])
    device, _ = _ready(said, "device", "--notify", notify, "-d", ssh, "--protocol", "V1")
    secret = deployed.source_secret
    source, listening = _ready(
        said, "connect", "--secret", secret, "-s", "0", "--destination-client-type", "V1"
    )
    (port,) = _ports(listening).values()
    assert _round_trip(port, b"hello, Device Client") == b"hello, Device Client"
    kinds = {(m.origin, m.service_id, m.connection_id) for m in deployed.plane.log(deployed.tunnel_id)}
    assert all(not service and not connection for _, service, connection in kinds)
    deployed.cloudformation.destroy()
    assert device.result() == 5
    assert source.result() == 5


def test_errors_name_what_is_wrong_with_exit_statuses(
    deployed: Deployment, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert cli.main(["connect", "--stack", STACK, "--tunnel", "Nowhere"]) == 3
    assert cli.main(["connect", "--stack", "NoSuchStack", "--tunnel", "Maintenance"]) == 3
    assert cli.main(["connect"]) == 2
    (tmp_path / "bad.json").write_text("{not json")
    assert cli.main(["device", "--notify", str(tmp_path / "bad.json"), "-d", "22"]) == 2
    source_document = tmp_path / "source.json"
    source_document.write_text(
        json.dumps(deployed.cloudformation.token_document("MaintenanceSourceToken30C10707"))
    )
    assert cli.main(["device", "--notify", str(source_document), "-d", "22"]) == 2
    err = capsys.readouterr().err
    assert "no source token secret for construct path 'Nowhere' (logical id NowhereSourceToken" in err
    assert "which tunnel: pass --secret" in err
    assert "not JSON" in err
    assert "holds a source token, but this command needs a destination token" in err
    assert "Traceback" not in err
