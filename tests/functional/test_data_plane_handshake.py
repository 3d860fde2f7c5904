"""The data plane's opening handshake, spoken by a raw WebSocket client: every refusal with its status and
message, single-use tokens and client-token reconnects, version negotiation, injected 5xx, TLS."""

import http.client
import os
import ssl
import urllib.error
import urllib.request
import uuid
from urllib.parse import urlsplit

import boto3
import pytest
from cdk_secure_tunnel.emulator import LocalAws, ManualClock, TunnelEmulator
from cdk_secure_tunnel.protocol import Message
from cdk_secure_tunnel.protocol.handshake import SUBPROTOCOL_V1, SUBPROTOCOL_V2, SUBPROTOCOL_V3
from support.data_plane import TIMEOUT, Tunnel, data, describe, open_tunnel, peer, refusal, stream_start


@pytest.fixture
def url(tunnel_emulator: TunnelEmulator) -> str:
    return tunnel_emulator.data_plane.url


@pytest.fixture
def tunnel(local_aws: LocalAws) -> Tunnel:
    return open_tunnel()


def client_token() -> str:
    return str(uuid.uuid4())


def test_the_environment_names_the_data_plane(local_aws: LocalAws) -> None:
    plane = local_aws.emulator.data_plane
    assert local_aws.environment()["CDK_SECURE_TUNNEL_DATA_ENDPOINT"] == plane.url == f"ws://{plane.endpoint}"
    assert local_aws.data_plane_endpoint == plane.endpoint
    assert plane.ca_file is None


def test_a_source_connects_and_gets_the_service_ids(url: str, tunnel: Tunnel) -> None:
    with peer(url, "source", tunnel.source_token) as source:
        assert source.subprotocol == SUBPROTOCOL_V3
        assert source.headers["channel-id"]
        hello = source.receive()
        assert hello.type == Message.SERVICE_IDS
        assert list(hello.availableServiceIds) == ["SSH"]


def test_the_token_may_come_in_the_cookie(url: str, tunnel: Tunnel) -> None:
    cookie = {"Cookie": f"theme=dark; awsiot-tunnel-token={tunnel.destination_token}"}
    with peer(url, "destination", None, headers=cookie) as destination:
        assert destination.receive().type == Message.SERVICE_IDS


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/other?local-proxy-mode=source", 400, "serves /tunnel only, not /other"),
        ("/tunnel", 400, "local-proxy-mode must be source or destination, got nothing"),
        ("/tunnel?local-proxy-mode=both", 400, "got 'both'"),
        ("/tunnel?local-proxy-mode=source&local-proxy-mode=source", 400, "got 'source', 'source'"),
    ],
)
def test_the_path_and_mode_must_be_right(
    url: str, tunnel: Tunnel, path: str, status: int, message: str
) -> None:
    refused_status, body, headers = refusal(url, "source", tunnel.source_token, path=path)
    assert (refused_status, message in body) == (status, True), body
    assert headers["channel-id"]


def test_a_token_is_required(url: str, tunnel: Tunnel) -> None:
    status, body, headers = refusal(url, "source", None)
    assert status == 401
    assert "access-token header or the awsiot-tunnel-token cookie" in body
    assert headers["channel-id"]


@pytest.mark.parametrize(
    ("in_header", "extra"),
    [
        (True, [("access-token", "{token}")]),
        (True, [("Cookie", "awsiot-tunnel-token={token}")]),
        (False, [("Cookie", "awsiot-tunnel-token={token}; awsiot-tunnel-token={token}")]),
    ],
    ids=["two headers", "header and cookie", "two cookies"],
)
def test_exactly_one_token(url: str, tunnel: Tunnel, in_header: bool, extra: list[tuple[str, str]]) -> None:
    token = tunnel.source_token
    filled = [(name, value.format(token=token)) for name, value in extra]
    status, body, _ = refusal(url, "source", token if in_header else None, headers=filled)
    assert status == 400
    assert "2 access tokens in the request" in body
    assert token not in body


def test_the_mode_must_be_the_tokens(url: str, tunnel: Tunnel) -> None:
    status, body, _ = refusal(url, "destination", tunnel.source_token)
    assert (status, body.strip()) == (
        400,
        "The access token is a source token: connect with local-proxy-mode=source",
    )
    # A refused handshake does not spend the token.
    with peer(url, "source", tunnel.source_token) as source:
        assert source.receive().type == Message.SERVICE_IDS


@pytest.mark.parametrize(
    ("name", "value", "status"),
    [
        ("Sec-WebSocket-Key", "not base64!", 400),
        ("Sec-WebSocket-Key", "c2hvcnQ=", 400),
        ("Connection", "keep-alive", 426),
    ],
    ids=["a key that is not base64", "a key of 5 bytes", "no Connection: upgrade"],
)
def test_a_malformed_upgrade_is_refused_without_spending_the_token(
    url: str, tunnel: Tunnel, name: str, value: str, status: int
) -> None:
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Protocol": SUBPROTOCOL_V3,
        "access-token": tunnel.source_token,
    } | {name: value}
    connection = http.client.HTTPConnection(urlsplit(url).netloc, timeout=TIMEOUT)
    try:
        connection.request("GET", "/tunnel?local-proxy-mode=source", headers=headers)
        assert connection.getresponse().status == status  # websockets' own answer
    finally:
        connection.close()
    with peer(url, "source", tunnel.source_token) as source:
        assert source.receive().type == Message.SERVICE_IDS


def test_an_unknown_token_is_forbidden(url: str, tunnel: Tunnel) -> None:
    status, body, _ = refusal(url, "source", "not-a-token")
    assert (status, body.strip()) == (403, "Invalid access token: no tunnel has issued it")


@pytest.mark.parametrize(
    "offered",
    [[], ["aws.iot.securetunneling-4.0"], ["chat"]],
    ids=["none", "a future version", "another protocol"],
)
def test_a_known_subprotocol_is_required(url: str, tunnel: Tunnel, offered: list[str]) -> None:
    status, body, _ = refusal(url, "source", tunnel.source_token, subprotocols=offered)
    assert status == 400
    assert "Sec-WebSocket-Protocol must offer one of aws.iot.securetunneling-3.0" in body


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        ([SUBPROTOCOL_V1], SUBPROTOCOL_V1),
        ([SUBPROTOCOL_V2], SUBPROTOCOL_V2),
        ([SUBPROTOCOL_V1, SUBPROTOCOL_V3, SUBPROTOCOL_V2], SUBPROTOCOL_V3),
        (["chat", SUBPROTOCOL_V2, SUBPROTOCOL_V1], SUBPROTOCOL_V2),
    ],
)
def test_the_highest_offered_version_is_chosen(
    url: str, tunnel: Tunnel, offered: list[str], chosen: str
) -> None:
    with peer(url, "source", tunnel.source_token, subprotocols=offered) as source:
        assert source.subprotocol == chosen


def test_v1_peers_get_no_service_ids_and_relay_without_them(url: str, tunnel: Tunnel) -> None:
    with (
        peer(url, "source", tunnel.source_token, subprotocols=[SUBPROTOCOL_V1]) as source,
        peer(url, "destination", tunnel.destination_token, subprotocols=[SUBPROTOCOL_V1]) as destination,
    ):
        source.send(
            Message(type=Message.STREAM_START, streamId=7),
            Message(type=Message.DATA, streamId=7, payload=b"v1"),
        )
        # The first message a v1 destination receives is the source's, not SERVICE_IDS.
        assert destination.receive().type == Message.STREAM_START
        assert destination.receive().payload == b"v1"


def test_a_v3_source_and_a_v1_destination_interoperate(url: str, tunnel: Tunnel) -> None:
    with (
        peer(url, "source", tunnel.source_token) as source,
        peer(url, "destination", tunnel.destination_token, subprotocols=[SUBPROTOCOL_V1]) as destination,
    ):
        assert source.receive().type == Message.SERVICE_IDS
        source.send(stream_start(1), data(1, b"to a v1 device"))
        assert destination.receive().type == Message.STREAM_START
        assert destination.receive().payload == b"to a v1 device"
        # A v1 device answers without service or connection ids.
        destination.send(Message(type=Message.DATA, streamId=1, payload=b"from a v1 device"))
        assert source.receive().payload == b"from a v1 device"


@pytest.mark.parametrize(
    ("value", "shown"),
    [("short", "got 5 characters"), ("x" * 129, "got 129 characters"), ("not_a_uuid_" * 4, "got 44")],
)
def test_a_client_token_must_match_the_pattern(url: str, tunnel: Tunnel, value: str, shown: str) -> None:
    status, body, _ = refusal(url, "source", tunnel.source_token, client_token=value)
    assert status == 400
    assert "must be 32 to 128 letters, digits and hyphens" in body
    assert shown in body


def test_at_most_one_client_token(url: str, tunnel: Tunnel) -> None:
    status, body, _ = refusal(
        url, "source", tunnel.source_token, headers=[("client-token", client_token())] * 2
    )
    assert (status, body.strip()) == (400, "2 client-token headers: send at most one")


def test_the_request_must_stay_under_4_kb(url: str, tunnel: Tunnel) -> None:
    status, body, _ = refusal(url, "source", tunnel.source_token, headers={"X-Padding": "p" * 3500})
    assert status == 431
    assert "the service accepts at most 4096" in body
    with peer(url, "source", tunnel.source_token, headers={"X-Padding": "p" * 2000}) as source:
        assert source.receive().type == Message.SERVICE_IDS


def test_a_token_connects_once_without_a_client_token(url: str, tunnel: Tunnel) -> None:
    with peer(url, "source", tunnel.source_token) as source:
        source.receive()
    status, body, _ = refusal(url, "source", tunnel.source_token)
    assert status == 403
    assert body.startswith(
        "Invalid access token: The access token was previously used and cannot be used again"
    )
    assert "rotate it" in body


def test_a_client_token_reconnects_with_the_same_pair(url: str, tunnel: Tunnel) -> None:
    mine = client_token()
    with peer(url, "destination", tunnel.destination_token, client_token=mine) as destination:
        destination.receive()
    for _ in range(2):
        with peer(url, "destination", tunnel.destination_token, client_token=mine) as destination:
            assert destination.receive().type == Message.SERVICE_IDS
    status, body, _ = refusal(url, "destination", tunnel.destination_token, client_token=client_token())
    assert (status, "Client token mismatch" in body) == (403, True)
    status, body, _ = refusal(url, "destination", tunnel.destination_token)
    assert (status, "previously used" in body) == (403, True)


def test_a_token_spent_without_a_client_token_takes_none_later(url: str, tunnel: Tunnel) -> None:
    with peer(url, "source", tunnel.source_token) as source:
        source.receive()
    status, body, _ = refusal(url, "source", tunnel.source_token, client_token=client_token())
    assert (status, "Client token mismatch" in body) == (403, True)


def test_a_client_token_is_unique_across_open_tunnels(url: str, tunnel: Tunnel) -> None:
    shared = client_token()
    with peer(url, "source", tunnel.source_token, client_token=shared) as source:
        source.receive()
    other = open_tunnel()
    status, body, _ = refusal(url, "source", other.source_token, client_token=shared)
    assert (status, body.strip()) == (409, "The client token is already bound to another access token")
    # Closing the first tunnel frees it.
    boto3.client("iotsecuretunneling").close_tunnel(tunnelId=tunnel.tunnel_id)
    with peer(url, "source", other.source_token, client_token=shared) as source:
        assert source.receive().type == Message.SERVICE_IDS


def test_rotation_revokes_the_token_and_frees_its_client_token(url: str, tunnel: Tunnel) -> None:
    mine = client_token()
    with peer(url, "source", tunnel.source_token, client_token=mine) as source:
        source.receive()
    rotated = boto3.client("iotsecuretunneling").rotate_tunnel_access_token(
        tunnelId=tunnel.tunnel_id, clientMode="SOURCE"
    )
    status, body, _ = refusal(url, "source", tunnel.source_token, client_token=mine)
    assert status == 403
    assert "revoked by RotateTunnelAccessToken" in body
    with peer(url, "source", rotated["sourceAccessToken"], client_token=mine) as source:
        assert source.receive().type == Message.SERVICE_IDS
    # The destination's token was not rotated.
    with peer(url, "destination", tunnel.destination_token) as destination:
        assert destination.receive().type == Message.SERVICE_IDS


def test_a_closed_tunnel_refuses_its_tokens(url: str, tunnel: Tunnel) -> None:
    boto3.client("iotsecuretunneling").close_tunnel(tunnelId=tunnel.tunnel_id)
    status, body, _ = refusal(url, "destination", tunnel.destination_token)
    assert (status, body.strip()) == (403, f"Tunnel {tunnel.tunnel_id} is closed")


def test_an_expired_tunnel_refuses_its_tokens(url: str, tunnel_emulator: TunnelEmulator) -> None:
    tunnel = open_tunnel(timeoutConfig={"maxLifetimeTimeoutMinutes": 30})
    assert isinstance(tunnel_emulator.clock, ManualClock)
    tunnel_emulator.clock.advance(minutes=30)
    status, body, _ = refusal(url, "source", tunnel.source_token)
    assert (status, body.strip()) == (403, f"Tunnel {tunnel.tunnel_id} is closed")
    assert describe(tunnel)["status"] == "CLOSED"


def test_injected_5xx_refuse_the_next_handshakes_only(
    url: str, tunnel: Tunnel, tunnel_emulator: TunnelEmulator
) -> None:
    tunnel_emulator.data_plane.refuse_handshakes(times=2, status=503)
    for _ in range(2):
        status, body, headers = refusal(url, "source", tunnel.source_token)
        assert (status, body.strip()) == (503, "Injected failure 503: retry with backoff")
        assert headers["channel-id"]
    # Neither refusal spent the token.
    with peer(url, "source", tunnel.source_token) as source:
        assert source.receive().type == Message.SERVICE_IDS


def test_only_5xx_may_be_injected(tunnel_emulator: TunnelEmulator) -> None:
    with pytest.raises(ValueError, match="status must be a 5xx"):
        tunnel_emulator.data_plane.refuse_handshakes(status=403)


def test_every_answer_has_its_own_channel_id(url: str, tunnel: Tunnel) -> None:
    with peer(url, "source", tunnel.source_token) as source:
        accepted = source.headers["channel-id"]
    _, _, headers = refusal(url, "source", tunnel.source_token)
    assert headers["channel-id"] != accepted


def test_tls_with_the_generated_ca() -> None:
    with LocalAws(TunnelEmulator(clock=ManualClock()), secrets_manager=False, tls=True) as aws:
        plane = aws.emulator.data_plane
        assert plane.url == f"wss://{plane.endpoint}"
        assert plane.ca_file is not None
        assert aws.environment()["CDK_SECURE_TUNNEL_DATA_CA_FILE"] == plane.ca_file
        store = aws.emulator
        opened = store.handle("OpenTunnel", {"destinationConfig": {"services": ["SSH"]}})
        verified = ssl.create_default_context(cafile=plane.ca_file)
        assert verified.check_hostname
        with peer(plane.url, "source", opened["sourceAccessToken"], ssl=verified) as source:
            assert source.receive().type == Message.SERVICE_IDS
        # Without the CA, a verifying client refuses the certificate.
        unverified = ssl.create_default_context()
        with pytest.raises(ssl.SSLCertVerificationError), peer(plane.url, "source", "any", ssl=unverified):
            pass
        ca_file = plane.ca_file
    # Stopping deletes the generated key and certificates.
    assert not os.path.exists(ca_file)


def test_the_emulator_serves_the_data_plane_only_while_started() -> None:
    emulator = TunnelEmulator()
    with pytest.raises(RuntimeError, match="not started"):
        _ = emulator.data_plane.url
    with emulator:
        assert emulator.data_plane.url.startswith("ws://127.0.0.1:")
    with pytest.raises(RuntimeError, match="not started"):
        _ = emulator.data_plane.endpoint


def test_a_request_that_is_not_an_upgrade_is_answered_by_websockets(url: str) -> None:
    plain = url.replace("ws://", "http://") + "/tunnel?local-proxy-mode=source"
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(plain, timeout=TIMEOUT)  # noqa: S310  (a local http URL)
    raised.value.close()
    assert raised.value.code == 426
