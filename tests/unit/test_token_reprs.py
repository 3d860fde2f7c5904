"""No token reaches ``repr()``: pytest's failure output and debuggers show the objects that hold them."""

from datetime import UTC, datetime
from typing import Any

from cdk_secure_tunnel.emulator.data_plane import _Peer
from cdk_secure_tunnel.emulator.tunnel_store import _Tunnel
from tunnel_lambda.token_secrets import Stored
from tunnel_lambda.tunnels import OpenedTunnel

SOURCE = "AQGAAXsourcetoken"
DESTINATION = "AQGAAXdestinationtoken"
SPENT = "AQGAAXspenttoken"


def _holders() -> list[Any]:
    return [
        Stored("arn:secret", {"clientAccessToken": SOURCE, "tunnelId": "t-1"}, "v1"),
        OpenedTunnel(
            tunnel_id="t-1",
            tunnel_arn="arn:aws:iot:us-east-1:1:tunnel/t-1",
            expires_at=datetime(2026, 1, 1, tzinfo=UTC),
            tokens={"source": SOURCE, "destination": DESTINATION},
        ),
        _Peer(connection=None, mode="source", token=SOURCE, version=3),  # type: ignore[arg-type]
        _Tunnel(
            sequence=1,
            tunnel_id="t-1",
            arn="arn:aws:iot:us-east-1:1:tunnel/t-1",
            region="us-east-1",
            description=None,
            destination_config=None,
            lifetime_minutes=60,
            tags={},
            source_token=SOURCE,
            destination_token=DESTINATION,
            created_at=0.0,
            last_updated_at=0.0,
            revoked_tokens={SPENT},
            token_uses={SPENT: "client-token"},
        ),
    ]


def test_no_token_in_repr() -> None:
    for holder in _holders():
        shown = repr(holder)
        assert type(holder).__name__ in shown
        for token in (SOURCE, DESTINATION, SPENT):
            assert token not in shown, shown
