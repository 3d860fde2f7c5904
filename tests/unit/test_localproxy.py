"""Source and destination proxies end to end through a fake tunneling service (tests/support).

No test sleeps to wait for a state: each waits on the proxies' events (``ready``, ``online``) or on data.
"""

import asyncio
import itertools
import logging
import textwrap
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
from cdk_secure_tunnel.localproxy import (
    ConfigurationError,
    HandshakeRejected,
    LocalProxy,
    ProxySettings,
    RetryPolicy,
    ServiceMismatch,
    Target,
    TunnelClosed,
    Unreachable,
    connection,
)
from cdk_secure_tunnel.localproxy.connection import Retryable, TunnelSocket
from cdk_secure_tunnel.localproxy.proxy import first_done
from cdk_secure_tunnel.protocol import Message, ProtocolError, encode
from cdk_secure_tunnel.protocol.handshake import ACCESS_TOKEN_HEADER, CLIENT_TOKEN_HEADER
from support.fake_service import FakeService, echo_server, running_fake_service

FAST = RetryPolicy(initial=0.001, maximum=0.01)


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 20))


def settings(service: FakeService, mode: str, services: dict[str, Target], **changes: Any) -> ProxySettings:
    token = "src-token" if mode == "source" else "dst-token"
    values: dict[str, Any] = {"access_token": token, "retry": FAST, "service_ids_timeout": 2.0} | changes
    return ProxySettings(mode=mode, endpoint=service.endpoint, services=services, **values)  # type: ignore[arg-type]


@asynccontextmanager
async def running(*proxies: LocalProxy) -> AsyncIterator[list["asyncio.Task[None]"]]:
    tasks = [asyncio.ensure_future(proxy.run()) for proxy in proxies]
    try:
        yield tasks
    finally:
        for proxy in proxies:
            proxy.stop()
        await asyncio.gather(*tasks, return_exceptions=True)


async def round_trip(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    received = await reader.readexactly(len(data))
    writer.close()
    return received


def ssh_pair(service: FakeService, port: int) -> tuple[LocalProxy, LocalProxy]:
    """A destination forwarding SSH to ``port`` and a source listening for it on a free port."""
    destination = LocalProxy(settings(service, "destination", {"SSH": Target(None, port)}))
    return destination, LocalProxy(settings(service, "source", {"SSH": Target(None, 0)}))


async def ready(*proxies: LocalProxy) -> None:
    await asyncio.gather(*(proxy.ready.wait() for proxy in proxies))


def test_two_services_and_ten_simultaneous_connections_round_trip() -> None:
    async def scenario() -> None:
        async with running_fake_service() as service, echo_server() as ssh, echo_server() as http:
            destination = LocalProxy(
                settings(
                    service, "destination", {"SSH": Target(None, ssh), "HTTP": Target("127.0.0.1", http)}
                )
            )
            source = LocalProxy(settings(service, "source", {"SSH": Target(None, 0)}))
            async with running(destination, source):
                await ready(source, destination)
                assert set(source.ports) == {"SSH", "HTTP"}  # HTTP was not mapped: a free port
                assert (
                    await round_trip(source.ports["HTTP"], b"GET / HTTP/1.0\r\n\r\n")
                    == b"GET / HTTP/1.0\r\n\r\n"
                )
                payloads = [bytes([n]) * (100_000 + n) for n in range(10)]
                results = await asyncio.gather(*(round_trip(source.ports["SSH"], p) for p in payloads))
                assert results == payloads
            first = service.handshakes[0]
            assert "/tunnel?local-proxy-mode=" in first.path
            assert first.headers["Sec-WebSocket-Protocol"].startswith("aws.iot.securetunneling-3.0")

    run(scenario())


def test_v1_source_and_destination_carry_one_unnamed_service() -> None:
    async def scenario() -> None:
        async with running_fake_service(services=()) as service, echo_server() as port:
            destination = LocalProxy(settings(service, "destination", {"": Target(None, port)}, version=1))
            source = LocalProxy(settings(service, "source", {"": Target(None, 0)}, version=1))
            async with running(destination, source):
                await ready(source, destination)
                assert await round_trip(source.ports[""], b"hello v1") == b"hello v1"
            assert {h.headers["Sec-WebSocket-Protocol"] for h in service.handshakes} == {
                "aws.iot.securetunneling-1.0"
            }

    run(scenario())


def test_a_dropped_connection_comes_back_with_the_same_tokens() -> None:
    async def scenario() -> None:
        async with running_fake_service(services=("SSH",)) as service, echo_server() as port:
            destination, source = ssh_pair(service, port)
            async with running(destination, source):
                await ready(source, destination)
                assert await round_trip(source.ports["SSH"], b"before") == b"before"
                await service.drop("destination")
                while destination.connections_made < 2 or not destination.online.is_set():
                    await service.connected["destination"].wait()
                    await asyncio.sleep(0)
                assert await round_trip(source.ports["SSH"], b"after") == b"after"
            handshakes = [h for h in service.handshakes if h.path.endswith("destination")]
            assert len(handshakes) == 2
            assert len({h.headers[ACCESS_TOKEN_HEADER] for h in handshakes}) == 1
            assert len({h.headers[CLIENT_TOKEN_HEADER] for h in handshakes}) == 1

    run(scenario())


def test_a_service_gone_silent_is_found_out_by_its_unanswered_pings(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with running_fake_service(services=("SSH",)) as service:
            source = LocalProxy(settings(service, "source", {}, ping_interval=0.05, ping_timeout=0.05))
            async with running(source):
                await source.ready.wait()
                service.go_silent("source")
                while source.connections_made < 2 or not source.online.is_set():  # back by itself
                    await service.connected["source"].wait()
                    await asyncio.sleep(0)

    caplog.set_level(logging.WARNING, "cdk_secure_tunnel.localproxy")
    run(scenario())
    assert "keepalive ping timeout; no close frame received; reconnecting" in caplog.text


def test_4xx_is_not_retried_and_says_what_to_do() -> None:
    async def scenario() -> None:
        async with running_fake_service() as service:
            proxy = LocalProxy(settings(service, "source", {}, access_token="spent"))
            with pytest.raises(HandshakeRejected, match=r"HTTP 403.*rotate the token") as raised:
                await proxy.run()
            assert raised.value.exit_code == 4
            assert len(service.handshakes) == 1

    run(scenario())


def test_5xx_is_retried_with_backoff() -> None:
    async def scenario() -> None:
        async with running_fake_service() as service:
            service.fail_with = [503, 500, 502]
            draws = iter([0.0, 0.5, 0.999])  # the jitter of each wait, in turn
            policy = RetryPolicy(initial=0.04, maximum=0.1)
            source = LocalProxy(
                settings(service, "source", {}, retry=policy), random_source=lambda: next(draws)
            )
            async with running(source):
                await source.ready.wait()
            assert len(service.handshakes) == 4
            # Each attempt came only after its delay: doubling from 0.04 s to the 0.1 s cap, with jitter.
            delays = [policy.delay(1, 0.0), policy.delay(2, 0.5), policy.delay(3, 0.999)]
            assert delays == pytest.approx([0.02, 0.06, 0.09995])
            waited = [later - earlier for earlier, later in itertools.pairwise(service.handshake_times)]
            assert all(wait >= delay for wait, delay in zip(waited, delays, strict=True)), waited

    run(scenario())


def test_an_unreachable_service_ends_after_the_attempts_allowed() -> None:
    async def scenario() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        proxy = LocalProxy(
            ProxySettings(
                mode="source",
                access_token="t",
                endpoint=f"ws://127.0.0.1:{port}",
                retry=RetryPolicy(initial=0.001, attempts=3),
            )
        )
        with pytest.raises(Unreachable, match="after 3 attempts"):
            await proxy.run()

    run(scenario())


@pytest.mark.parametrize("sabotage", ["abort", "oversized"])
def test_a_first_connection_that_ends_before_ready_is_retried_with_backoff(sabotage: str) -> None:
    # Before the proxy is ready (V3: before SERVICE_IDS), a dropped connection is a failed attempt: waited
    # for as the retry policy says, not a crash, and not an immediate reconnect.
    async def scenario() -> None:
        async with running_fake_service(services=("SSH",)) as service:
            service.sabotage = [sabotage]
            policy = RetryPolicy(initial=0.2)
            source = LocalProxy(settings(service, "source", {}, retry=policy), random_source=lambda: 0.0)
            async with source.running() as task:
                assert not task.done()
                assert source.ready.is_set()
                assert source.ports.keys() == {"SSH"}
            await task  # stopped: it ended without raising
            assert source.connections_made == 2
            first, second = service.handshake_times
            assert second - first >= policy.delay(1, 0.0) == 0.1

    run(scenario())


def test_connections_that_keep_ending_before_ready_make_the_service_unreachable() -> None:
    async def scenario() -> None:
        async with running_fake_service(services=("SSH",)) as service:
            service.sabotage = ["abort", "oversized", "abort", "abort"]
            source = LocalProxy(settings(service, "source", {}, retry=RetryPolicy(initial=0.001, attempts=3)))
            with pytest.raises(Unreachable, match="after 3 attempts: the connection to the service closed"):
                await source.run()
            assert len(service.handshakes) == 3

    run(scenario())


def test_connections_that_keep_dropping_once_ready_are_backed_off() -> None:
    # After the proxy is ready, a session that ends soon after it started is a failed attempt too: a
    # service that accepts and drops again and again gets the policy's backoff, not a tight loop.
    async def scenario() -> None:
        async with running_fake_service(services=("SSH",)) as service:
            policy = RetryPolicy(initial=0.05)
            source = LocalProxy(settings(service, "source", {}, retry=policy), random_source=lambda: 0.0)
            async with source.running():
                service.sabotage = ["abort", "abort"]
                await service.drop("source")
                await asyncio.wait_for(service.connected["source"].wait(), 5)
                times = service.handshake_times
                assert len(times) == 4
                gaps = [later - earlier for earlier, later in itertools.pairwise(times[1:])]
                assert gaps[0] >= policy.delay(2, 0.0)
                assert gaps[1] >= policy.delay(3, 0.0)

    run(scenario())


def test_a_refused_token_is_replaced_once_by_refresh_token() -> None:
    async def scenario() -> None:
        async with running_fake_service() as service:
            offered: list[int] = []

            async def refresh(rejected: HandshakeRejected) -> str | None:
                offered.append(rejected.status)
                return "src-token"

            source = LocalProxy(settings(service, "source", {}, access_token="spent"), refresh_token=refresh)
            async with running(source):
                await source.ready.wait()
            assert offered == [403]

            async def same(rejected: HandshakeRejected) -> str | None:
                return "still-spent"

            stuck = LocalProxy(settings(service, "source", {}, access_token="spent"), refresh_token=same)
            with pytest.raises(HandshakeRejected):
                await stuck.run()

    run(scenario())


def test_a_tunnel_closed_under_a_live_session_ends_both_sides() -> None:
    async def scenario() -> None:
        async with running_fake_service(services=("SSH",)) as service, echo_server() as port:
            destination, source = ssh_pair(service, port)
            async with running(destination, source) as tasks:
                await ready(source, destination)
                await service.close_tunnel()
                results = await asyncio.gather(*tasks, return_exceptions=True)
            for result in results:
                assert isinstance(result, TunnelClosed), result
                assert "tunnel closed" in str(result)
                assert "closed or has expired" in str(result)
                assert result.exit_code == 5

    run(scenario())


def test_a_port_that_cannot_be_had_is_a_setting_to_change_exit_2() -> None:
    async def scenario() -> None:
        async with running_fake_service() as service:
            taken = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
            port = taken.sockets[0].getsockname()[1]
            async with taken:
                busy = LocalProxy(settings(service, "source", {"SSH": Target(None, port)}))
                with pytest.raises(ConfigurationError) as raised:
                    await busy.run()
            assert int(raised.value.exit_code) == 2
            assert str(raised.value).startswith(f"services: cannot listen for SSH on 127.0.0.1:{port}: ")
            assert str(raised.value).endswith("; choose another port (e.g. SSH=0 for any)")
            assert service.handshakes == []  # it failed before connecting, spending no token
            elsewhere = LocalProxy(
                settings(service, "source", {"SSH": Target(None, 0)}, bind_address="192.0.2.1")
            )
            with pytest.raises(
                ConfigurationError, match=r"^bind address: cannot listen for SSH on 192\.0\.2\.1:0"
            ):
                await elsewhere.run()

    run(scenario())


def test_services_that_do_not_match_the_tunnel_stop_the_proxy() -> None:
    async def scenario() -> None:
        async with running_fake_service() as service:
            destination = LocalProxy(settings(service, "destination", {"SSH": Target(None, 22)}))
            with pytest.raises(ServiceMismatch, match="no destination for HTTP"):
                await destination.run()

    run(scenario())


def test_a_malformed_message_costs_streams_not_the_proxy() -> None:
    async def scenario() -> None:
        async with running_fake_service(services=("SSH",)) as service, echo_server() as port:
            destination, source = ssh_pair(service, port)
            async with running(destination, source):
                await ready(source, destination)
                reader, writer = await asyncio.open_connection("127.0.0.1", source.ports["SSH"])
                writer.write(b"one")
                assert await reader.readexactly(3) == b"one"
                # Garbage, then a message with an oversized payload naming connection 1, to the source.
                oversized = Message(type=Message.DATA, streamId=1, serviceId="SSH", connectionId=1)
                body = oversized.SerializeToString() + b"\x22\xff\xfb\x03" + b"x" * 65023
                await service.peers["source"].send(b"\x00\x02\xff\xff" + len(body).to_bytes(2, "big") + body)
                assert await reader.read() == b""  # the connection it named was reset
                assert source.online.is_set()
                assert await round_trip(source.ports["SSH"], b"still up") == b"still up"

    run(scenario())


def test_the_token_never_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with running_fake_service(services=("SSH",)) as service, echo_server() as port:
            destination, source = ssh_pair(service, port)
            async with running(destination, source):
                await ready(source, destination)
                assert await round_trip(source.ports["SSH"], b"x") == b"x"
            with pytest.raises(HandshakeRejected) as raised:
                await LocalProxy(settings(service, "source", {}, access_token="spent-token")).run()
            assert "spent-token" not in str(raised.value)

    caplog.set_level(logging.DEBUG)
    run(scenario())
    assert caplog.records
    for token in ("src-token", "dst-token", "spent-token"):
        assert token not in caplog.text


def test_encoded_messages_fit_a_frame() -> None:
    assert len(encode(Message(type=Message.DATA, streamId=1, payload=b"x" * 64512))) < 131076


def test_the_connection_modules_example_runs() -> None:
    # Its indented example, run against the fake service; its "..." records each message it is given.
    lines = [line[4:] for line in (connection.__doc__ or "").splitlines() if line.startswith("    ")]
    body = "\n".join(lines).replace("...", "seen.append(message); got.set()")
    namespace: dict[str, Any] = {
        "TunnelSocket": TunnelSocket,
        "Message": Message,
        "ProtocolError": ProtocolError,
    }
    exec(f"async def example(settings, seen, got):\n{textwrap.indent(body, '    ')}", namespace)  # noqa: S102

    async def scenario() -> None:
        async with running_fake_service(services=("SSH",)) as service:
            seen: list[Any] = []
            got = asyncio.Event()
            example = asyncio.ensure_future(namespace["example"](settings(service, "source", {}), seen, got))
            await first_done(got.wait(), example)
            assert not example.done(), example.exception()
            await service.close_tunnel()
            with pytest.raises(Retryable, match="tunnel closed"):
                await example
            assert [message.type for message in seen] == [Message.SERVICE_IDS]

    run(scenario())
