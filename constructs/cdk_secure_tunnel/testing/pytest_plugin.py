"""pytest fixtures for tests against local AWS: registered as a plugin when the package is installed.

It loads in every pytest session of an environment with the package: it imports nothing heavy until a
fixture is used (see ``cdk_secure_tunnel.testing``).

    def test_opens_a_tunnel(local_aws, tunnel_emulator):
        client = boto3.client("iotsecuretunneling")  # created after the fixture set the environment
        tunnel_id = client.open_tunnel()["tunnelId"]
        assert tunnel_emulator.tunnel(tunnel_id).status == "OPEN"
"""

from collections.abc import Iterator

import pytest

from ..emulator import LocalAws, ManualClock, TunnelEmulator
from ..emulator.local_aws import UNSET_VARIABLES


@pytest.fixture(scope="session")
def local_aws_servers() -> Iterator[LocalAws]:
    """The emulator and moto's server, started once per session (per worker under xdist).

    Use ``local_aws`` in tests: this one is neither reset nor wired into the environment.
    """
    with LocalAws(TunnelEmulator(clock=ManualClock())) as aws:
        yield aws


@pytest.fixture
def local_aws(local_aws_servers: LocalAws, monkeypatch: pytest.MonkeyPatch) -> LocalAws:
    """Empty local AWS for one test, with boto3's environment pointing at it.

    Both services are reset, the emulator gets a fresh ``ManualClock`` (starting at the real time), and
    the endpoint, region and fake credential variables are set for the test's duration.
    """
    local_aws_servers.reset()
    local_aws_servers.emulator.clock = ManualClock()
    for name in UNSET_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in local_aws_servers.environment().items():
        monkeypatch.setenv(name, value)
    return local_aws_servers


@pytest.fixture
def tunnel_emulator(local_aws: LocalAws) -> TunnelEmulator:
    """The emulator behind ``local_aws``, for configuring faults and inspecting tunnels and notifications."""
    return local_aws.emulator
