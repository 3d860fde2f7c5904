"""The data plane's opening handshake checks, before any token is looked up (protocol guides, "Handshake").

``parse_upgrade`` turns a WebSocket upgrade request into what the service needs to admit it, or raises
``Refusal`` with the 4xx status and a message that says what is wrong. The token itself (spent, revoked,
wrong mode, client token binding) is the tunnel store's to judge.

>>> from websockets.datastructures import Headers
>>> headers = Headers({"Sec-WebSocket-Protocol": "aws.iot.securetunneling-3.0", "access-token": "T"})
>>> upgrade = parse_upgrade("/tunnel?local-proxy-mode=source", headers)
>>> upgrade.mode, upgrade.subprotocol, upgrade.client_token
('source', 'aws.iot.securetunneling-3.0', None)
>>> parse_upgrade("/tunnel?local-proxy-mode=both", headers)
Traceback (most recent call last):
...
cdk_secure_tunnel.emulator.upgrade.Refusal: 400: local-proxy-mode must be source or destination, got 'both'
"""

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers
from websockets.exceptions import InvalidHandshake
from websockets.http11 import Request
from websockets.server import ServerProtocol

from ..protocol import handshake
from ..protocol.handshake import Mode


class Refusal(Exception):
    """A handshake the service answers with ``status`` (4xx, or an injected 5xx) and ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Upgrade:
    """A well-formed data plane upgrade request: which side connects, with what, speaking which version.

    ``repr`` leaves the token out, so an Upgrade can be logged.
    """

    mode: Mode
    token: str
    client_token: str | None
    subprotocol: str

    def __repr__(self) -> str:
        client = "with" if self.client_token else "without"
        return f"Upgrade({self.mode}, {self.subprotocol}, {client} client token)"

    @property
    def version(self) -> int:
        return handshake.VERSIONS[self.subprotocol]


def request_size(path: str, headers: Headers) -> int:
    """The request's size on the wire: request line and headers (websockets keeps no raw copy)."""
    size = len(f"GET {path} HTTP/1.1\r\n") + 2
    for name, value in headers.raw_items():
        size += len(name) + len(value) + 4
    return size


def is_websocket_upgrade(headers: Headers) -> bool:
    """Whether the request asks for a WebSocket at all; websockets itself answers those that do not."""
    upgrade = [token.strip().lower() for value in headers.get_all("Upgrade") for token in value.split(",")]
    return (
        "websocket" in upgrade
        and "Sec-WebSocket-Key" in headers
        and headers.get("Sec-WebSocket-Version", "").strip() == "13"
    )


def websockets_accepts(request: Request) -> bool:
    """Whether websockets will complete this upgrade, by its own checks (method, HTTP version,
    ``Connection``, ``Upgrade``, a 16-byte key, version 13, a parsable offer). Asked after the service's own
    checks (their messages say more) and before the token is spent: websockets answers the rest itself,
    and a refused handshake spends no token."""
    try:
        ServerProtocol().process_request(request)
    except InvalidHandshake:
        return False
    return True


def parse_upgrade(path: str, headers: Headers) -> Upgrade:
    """The upgrade's mode, token, client token and chosen subprotocol, or ``Refusal`` with a 4xx."""
    size, limit = request_size(path, headers), handshake.MAX_HANDSHAKE_BYTES
    if size > limit:
        raise Refusal(431, f"The upgrade request is {size} bytes; the service accepts at most {limit}")
    url = urlsplit(path)
    if url.path != handshake.PATH:
        raise Refusal(400, f"The data plane serves {handshake.PATH} only, not {url.path}")
    modes = parse_qs(url.query, keep_blank_values=True).get(handshake.MODE_PARAMETER, [])
    if len(modes) != 1 or modes[0] not in handshake.MODES:
        shown = ", ".join(repr(mode) for mode in modes) or "nothing"
        raise Refusal(400, f"{handshake.MODE_PARAMETER} must be source or destination, got {shown}")
    return Upgrade(
        mode=modes[0],
        token=_access_token(headers),
        client_token=_client_token(headers),
        subprotocol=_subprotocol(headers),
    )


def _access_token(headers: Headers) -> str:
    values = list(headers.get_all(handshake.ACCESS_TOKEN_HEADER))
    for cookie_header in headers.get_all("Cookie"):
        for cookie in cookie_header.split(";"):
            name, _, value = cookie.strip().partition("=")
            if name == handshake.ACCESS_TOKEN_COOKIE:
                values.append(value)
    if not values:
        raise Refusal(
            401,
            f"No access token: send it in the {handshake.ACCESS_TOKEN_HEADER} header "
            f"or the {handshake.ACCESS_TOKEN_COOKIE} cookie",
        )
    if len(values) > 1:
        raise Refusal(
            400,
            f"{len(values)} access tokens in the request ({handshake.ACCESS_TOKEN_HEADER} header and "
            f"{handshake.ACCESS_TOKEN_COOKIE} cookie together): send exactly one",
        )
    return values[0]


def _client_token(headers: Headers) -> str | None:
    values = headers.get_all(handshake.CLIENT_TOKEN_HEADER)
    if not values:
        return None
    if len(values) > 1:
        raise Refusal(400, f"{len(values)} {handshake.CLIENT_TOKEN_HEADER} headers: send at most one")
    if not handshake.CLIENT_TOKEN_PATTERN.fullmatch(values[0]):
        raise Refusal(
            400,
            f"The {handshake.CLIENT_TOKEN_HEADER} header must be 32 to 128 letters, digits and hyphens "
            f"(a UUID will do), got {len(values[0])} characters",
        )
    return values[0]


def _subprotocol(headers: Headers) -> str:
    offered = [
        token.strip() for value in headers.get_all("Sec-WebSocket-Protocol") for token in value.split(",")
    ]
    for subprotocol in handshake.SUBPROTOCOLS:
        if subprotocol in offered:
            return subprotocol
    shown = ", ".join(offered) or "none"
    raise Refusal(
        400, f"Sec-WebSocket-Protocol must offer one of {', '.join(handshake.SUBPROTOCOLS)}; offered: {shown}"
    )
