"""TLS to the data plane: verified against the emulator's CA and host name, refused without them."""

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator

import boto3
import pytest
from cdk_secure_tunnel.emulator.tls import ServerCredentials
from cdk_secure_tunnel.localproxy import CertificateUntrusted, LocalProxy, ProxySettings, Target
from cdk_secure_tunnel.testing import LocalAws


@pytest.fixture(scope="module")
def tls_aws() -> Iterator[LocalAws]:
    with LocalAws(secrets_manager=False, tls=True) as aws:
        yield aws


def test_the_proxy_verifies_the_service_certificate(
    tls_aws: LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = tls_aws.environment()
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    url, ca_file = (
        environment["CDK_SECURE_TUNNEL_DATA_ENDPOINT"],
        environment["CDK_SECURE_TUNNEL_DATA_CA_FILE"],
    )
    assert url.startswith("wss://")
    opened = boto3.client("iotsecuretunneling").open_tunnel(destinationConfig={"services": ["SSH"]})

    async def scenario() -> None:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(65536):
                writer.write(data)
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        common = {"endpoint": url, "cafile": ca_file, "service_ids_timeout": 5.0}
        destination = LocalProxy(
            ProxySettings(
                mode="destination",
                access_token=opened["destinationAccessToken"],
                services={"SSH": Target(None, port)},
                **common,
            )
        )
        source = LocalProxy(
            ProxySettings(
                mode="source",
                access_token=opened["sourceAccessToken"],
                services={"SSH": Target(None, 0)},
                **common,
            )
        )
        tasks = [asyncio.ensure_future(p.run()) for p in (destination, source)]
        await asyncio.gather(destination.ready.wait(), source.ready.wait())
        reader, writer = await asyncio.open_connection("127.0.0.1", source.ports["SSH"])
        writer.write(b"over TLS")
        assert await reader.readexactly(8) == b"over TLS"
        writer.close()
        for proxy in (destination, source):
            proxy.stop()
        await asyncio.gather(*tasks)
        server.close()

        # Without the emulator's CA the certificate does not verify: the proxy ends at once, although its
        # retries are unlimited (the default), rather than meeting the same certificate forever.
        untrusting = LocalProxy(
            ProxySettings(mode="source", access_token=opened["sourceAccessToken"], endpoint=url)
        )
        with pytest.raises(CertificateUntrusted, match=r"did not verify") as untrusted:
            await asyncio.wait_for(untrusting.run(), 10)
        assert untrusted.value.exit_code == 6

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_a_wrong_ca_ends_the_command_at_once_with_what_to_check(tls_aws: LocalAws) -> None:
    # Another CA than the one that signed the data plane's certificate: what a wrong --capath or a
    # TLS-intercepting proxy looks like to the command.
    other = ServerCredentials.generate(["127.0.0.1"])
    try:
        environment = {
            **os.environ,
            **tls_aws.environment(),
            "CDK_SECURE_TUNNEL_DATA_CA_FILE": other.ca_file,
            "AWSIOT_TUNNEL_ACCESS_TOKEN": "not-checked-before-tls",
        }
        completed = subprocess.run(
            [sys.executable, "-m", "cdk_secure_tunnel.cli", "device", "-d", "22"],
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        other.remove()
    assert completed.returncode == 6, completed.stderr
    assert "error: TLS: the certificate of wss://" in completed.stderr
    assert "check --capath and $CDK_SECURE_TUNNEL_DATA_CA_FILE" in completed.stderr
    assert "retrying" not in completed.stderr
    assert "Traceback" not in completed.stderr
