"""The WebSocket upgrade that opens a data plane connection, as the protocol guides state it.

>>> endpoint("eu-west-1"), endpoint("cn-north-1")
('wss://data.tunneling.iot.eu-west-1.amazonaws.com:443', 'wss://data.tunneling.iot.cn-north-1.amazonaws.com.cn:443')
>>> SUBPROTOCOLS[0]
'aws.iot.securetunneling-3.0'
"""

import re
from typing import Final, Literal

PATH: Final = "/tunnel"
MODE_PARAMETER: Final = "local-proxy-mode"
# Header and cookie names, not secrets.
ACCESS_TOKEN_HEADER: Final = "access-token"  # noqa: S105
ACCESS_TOKEN_COOKIE: Final = "awsiot-tunnel-token"  # noqa: S105
CLIENT_TOKEN_HEADER: Final = "client-token"  # noqa: S105
CHANNEL_ID_HEADER: Final = "channel-id"
CLIENT_TOKEN_PATTERN: Final = re.compile(r"[a-zA-Z0-9-]{32,128}")
# The upgrade request, headers included, must stay under this (V3 guide, "Handshake").
MAX_HANDSHAKE_BYTES: Final = 4096

# Not the guides' but this project's: where a local data plane is, set by the emulator (LocalAws) and read
# by the local proxy. Here because both layers, and the device's distribution, carry this module.
# The data plane's URL (ws:// or wss://), used instead of the region's endpoint.
DATA_ENDPOINT_VARIABLE: Final = "CDK_SECURE_TUNNEL_DATA_ENDPOINT"
# With a wss:// data plane, the CA file that verifies its certificate.
DATA_CA_FILE_VARIABLE: Final = "CDK_SECURE_TUNNEL_DATA_CA_FILE"

Mode = Literal["source", "destination"]
MODES: Final[tuple[Mode, ...]] = ("source", "destination")

SUBPROTOCOL_V1: Final = "aws.iot.securetunneling-1.0"
SUBPROTOCOL_V2: Final = "aws.iot.securetunneling-2.0"
SUBPROTOCOL_V3: Final = "aws.iot.securetunneling-3.0"
# Most preferred first: a server picks the first of these that the client offers.
SUBPROTOCOLS: Final = (SUBPROTOCOL_V3, SUBPROTOCOL_V2, SUBPROTOCOL_V1)
VERSIONS: Final = {SUBPROTOCOL_V1: 1, SUBPROTOCOL_V2: 2, SUBPROTOCOL_V3: 3}


def endpoint(region: str) -> str:
    """The data plane endpoint of ``region``: the one where OpenTunnel ran (China's end in ``.com.cn``)."""
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"wss://data.tunneling.iot.{region}.{suffix}:443"
