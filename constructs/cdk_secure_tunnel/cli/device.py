"""``cdk-secure-tunnel device``: the device's side, a destination local proxy to local services."""

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from ..localproxy import LocalProxy, ProxySettings, data_endpoint, parse_services
from ..localproxy.errors import ConfigurationError, HandshakeRejected, NotFound
from ..localproxy.settings import REFERENCE_REGION_VARIABLE, TOKEN_VARIABLE
from . import common
from .documents import TokenDocument
from .output import say
from .secrets import TokenSecret

DESCRIPTION = f"""\
Run the device's end of a tunnel: connect to the tunneling service with the destination token and
forward each of the tunnel's services to a local host:port, until the tunnel closes. A dropped network
connection comes back with the same token and its client token.

The token comes from the MQTT message AWS IoT publishes on $aws/things/<thing>/tunnels/notify (--notify,
a file or - for stdin), from the destination token secret (--secret, for tunnels that store it), or
from ${TOKEN_VARIABLE} (the region then from --region, ${REFERENCE_REGION_VARIABLE} or AWS's
settings, or --endpoint). It never goes on the command line."""

EPILOG = """\
examples:
  mosquitto_sub ... -t '$aws/things/pump-7/tunnels/notify' -C 1 \\
      | cdk-secure-tunnel device --notify - -d SSH=22
  cdk-secure-tunnel device --notify notify.json --destination SSH=22,HTTP=localhost:8080
  cdk-secure-tunnel device --secret arn:aws:secretsmanager:...:secret:BastionDestinationToken... -d 22

exit status: 5 when the tunnel closes or expires, 4 token refused, 6 service unreachable (with
--retries) or its TLS certificate not trusted, 7 the tunnel's services do not match --destination,
3 no token found, 2 bad usage or AWS set up wrong (credentials, profile, region, permissions),
130 when stopped with Ctrl-C, 1 anything else (the message says what)."""


def add_parser(subparsers: Any) -> None:
    parser = common.add_command_parser(
        subparsers, "device", "the device's side: forward the tunnel to local services", DESCRIPTION, EPILOG
    )
    token = parser.add_argument_group("the destination token (one of)")
    token.add_argument("--notify", metavar="FILE", help="the notify payload's JSON, in a file or - for stdin")
    token.add_argument("--secret", metavar="ARN", help="the destination token secret's ARN")
    parser.add_argument(
        "--destination",
        "-d",
        required=True,
        metavar="MAP",
        help="where each service goes: SSH=22,HTTP=localhost:8080 (a lone port or host:port for a "
        "one-service tunnel); hosts default to localhost",
    )
    parser.add_argument(
        "--protocol",
        choices=sorted(common.VERSIONS),
        default="V3",
        help="speak an older protocol, as AWS IoT Device Client (V1) does; for testing sources against it",
    )
    common.add_connection_options(parser)
    parser.set_defaults(run=run)


class _TokenSource:
    """Where the token came from, read again when the service refuses it (it may have been rotated)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.secret: TokenSecret | None = None
        sources = [name for name in ("notify", "secret") if getattr(args, name)]
        if len(sources) > 1:
            raise ConfigurationError("--notify, --secret: give one source of the token")
        if args.secret:
            self.secret = TokenSecret(common.aws_session(common.region(args)), args.secret)
        elif not args.notify and not os.environ.get(TOKEN_VARIABLE):
            raise ConfigurationError(
                f"the token: pass --notify FILE (or -), --secret ARN, or set ${TOKEN_VARIABLE}"
            )

    def read(self) -> TokenDocument:
        if self.secret is not None:
            return self.secret.read().require_mode("destination", f"secret {self.secret.arn}")
        if self.args.notify:
            origin = "the notify payload" + ("" if self.args.notify == "-" else f" {self.args.notify}")
            text = sys.stdin.read() if self.args.notify == "-" else self._read_file(self.args.notify)
            return TokenDocument.parse(text, origin=origin).require_mode("destination", origin)
        return TokenDocument(token=os.environ[TOKEN_VARIABLE], mode="destination", region=None, services=())

    @staticmethod
    def _read_file(name: str) -> str:
        try:
            return Path(name).read_text()
        except OSError as error:
            raise NotFound(f"--notify: cannot read {name}: {error.strerror or error}") from None

    @property
    def rereadable(self) -> bool:
        return self.secret is not None or (bool(self.args.notify) and self.args.notify != "-")


def run(args: argparse.Namespace) -> int:
    source = _TokenSource(args)
    document = source.read()
    settings = ProxySettings(
        mode="destination",
        access_token=document.token,
        endpoint=data_endpoint(endpoint=args.endpoint, region=common.region(args, document)),
        services=parse_services(args.destination),
        version=common.VERSIONS[args.protocol],
        client_token=common.client_token(args, dict(os.environ)),
        **common.tls_options(args, dict(os.environ)),
        retry=common.retry_policy(args),
    )

    async def refresh(rejected: HandshakeRejected) -> str | None:
        if not source.rereadable:
            return None
        latest = await asyncio.to_thread(source.read)
        if latest.token == settings.access_token:
            return None
        say(f"refused (HTTP {rejected.status}); connecting with the newer token")
        return latest.token

    return asyncio.run(_serve(LocalProxy(settings, refresh_token=refresh)))


async def _serve(proxy: LocalProxy) -> int:
    async with proxy.running() as running:
        if not running.done():
            targets = ", ".join(
                f"{name or 'service'} to {target.host or 'localhost'}:{target.port}"
                for name, target in proxy.services.items()
            )
            say(f"connected; forwarding {targets}")
        await running
        return 0
