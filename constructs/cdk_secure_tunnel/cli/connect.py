"""``cdk-secure-tunnel connect``: the operator's side, a source local proxy fed from the token secret."""

import argparse
import asyncio
import os
import socket
import subprocess
from datetime import UTC, datetime
from typing import Any

from ..localproxy import LocalProxy, ProxySettings, Target, data_endpoint, parse_services
from ..localproxy.errors import ConfigurationError, ExitCode, HandshakeRejected, NotFound, TunnelClosed
from ..localproxy.proxy import first_done
from ..localproxy.settings import CLIENT_TOKEN_VARIABLE, DEFAULT_BIND_ADDRESS, TOKEN_VARIABLE, endpoint_of
from . import common
from .documents import TokenDocument
from .lookup import find_secret
from .output import Progress, say
from .secrets import TokenSecret, tunnel_status

DESCRIPTION = """\
Connect to a SecureTunnel's device: read the source token from its secret, listen locally on each of
the tunnel's services, and carry connections through the tunnel. Optionally run a command once the
device is connected (at once if DescribeTunnel is not allowed): what a client sends before the device
connects is lost. The proxy ends with the command.

The tunnel is found by its source token secret (--secret ARN), or by the stack name and the construct's
path in it (--stack, --tunnel): through the secrets' tags (secretsmanager:ListSecrets), else the stack's
resources (cloudformation:DescribeStackResource).

A token connects once. If the service refuses it (spent, rotated or revoked), the secret is rotated
(secretsmanager:RotateSecret; the construct's rotate_on_demand, on by default) and the connection is
tried once more with the new token. A dropped connection comes back with the same token and its client
token."""

EPILOG = """\
examples:
  cdk-secure-tunnel connect --stack Plant --tunnel Maintenance -- ssh -p {SSH} admin@localhost
  cdk-secure-tunnel connect --secret arn:aws:secretsmanager:...:secret:MaintenanceSourceToken30C10707-AbC \\
      --services SSH=5555,HTTP=8080
  # AWS IoT Device Client or the Greengrass component on the device:
  cdk-secure-tunnel connect --stack Plant --tunnel Maintenance --destination-client-type V1
  # the reference C++ local proxy instead of this one:
  cdk-secure-tunnel connect --stack Plant --tunnel Maintenance --exec-localproxy

In the command, {NAME} is the port of service NAME, {port} the first service's and {host} the address
listened on.

exit status: the command's, when one is run; 130 when stopped with Ctrl-C; 2 bad usage (a port that
cannot be listened on too) or AWS set up wrong (credentials, profile, region, permissions), 3
secret/stack/tunnel not found, 4 token refused (also after rotating), 5 tunnel closed or expired, 6
service unreachable or its TLS certificate not trusted, 7 the tunnel's services do not match
--services, 1 anything else (a failed rotation, say: the message says what)."""


def add_parser(subparsers: Any) -> None:
    parser = common.add_command_parser(
        subparsers,
        "connect",
        "the operator's side: listen locally and connect through the tunnel",
        DESCRIPTION,
        EPILOG,
    )
    where = parser.add_argument_group("which tunnel (--secret, or --stack and --tunnel)")
    where.add_argument("--secret", metavar="ARN", help="the source token secret's ARN")
    where.add_argument("--stack", metavar="NAME", help="the stack's name")
    where.add_argument(
        "--tunnel", metavar="PATH", help="the SecureTunnel's construct path below the stack, e.g. Maintenance"
    )
    local = parser.add_argument_group("local side")
    local.add_argument(
        "--services",
        "-s",
        metavar="MAP",
        help="ports to listen on: SSH=5555,HTTP=8080 (a lone port for a one-service tunnel); services left "
        "out, or given port 0, get free ports (default: every service of the tunnel on a free port)",
    )
    local.add_argument(
        "--bind",
        "-b",
        default=DEFAULT_BIND_ADDRESS,
        metavar="ADDRESS",
        help="address to listen on (%(default)s)",
    )
    local.add_argument(
        "--destination-client-type",
        "-y",
        choices=sorted(common.VERSIONS),
        default="V3",
        help="the protocol the device speaks: V1 for AWS IoT Device Client and the Greengrass component "
        "(one service, one connection), V2 (one connection per service), V3 (default)",
    )
    parser.add_argument("--no-rotate", action="store_true", help="never rotate the secret; fail instead")
    parser.add_argument(
        "--exec-localproxy",
        nargs="?",
        const="localproxy",
        metavar="PATH",
        help="run the reference local proxy (default: localproxy on PATH) instead, with the token in "
        f"${TOKEN_VARIABLE} and the matching flags",
    )
    common.add_connection_options(parser)
    parser.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        help="-- then a command to run once the device is connected (iot:DescribeTunnel shows it; at once "
        "without that permission)",
    )
    parser.set_defaults(run=run)


def _secret_arn(args: argparse.Namespace, session: Any) -> str:
    if args.secret:
        if args.stack or args.tunnel:
            raise ConfigurationError("--secret: give either --secret or --stack with --tunnel, not both")
        return str(args.secret)
    if not (args.stack and args.tunnel):
        raise ConfigurationError(
            "which tunnel: pass --secret <source token secret ARN>, "
            "or --stack <name> --tunnel <construct path>"
        )
    return find_secret(session, args.stack, args.tunnel, "source")


def _services(args: argparse.Namespace, document: TokenDocument) -> dict[str, Target]:
    if args.services:
        return parse_services(args.services, allow_zero=True)
    return {name: Target(None, 0) for name in document.services} or {"": Target(None, 0)}


def _command(words: list[str], ports: dict[str, int], host: str) -> list[str]:
    if words and words[0] == "--":
        words = words[1:]
    values = {f"{{{name}}}": str(port) for name, port in ports.items() if name}
    values["{port}"] = str(next(iter(ports.values())))
    values["{host}"] = host
    command = []
    for word in words:
        for placeholder, value in values.items():
            word = word.replace(placeholder, value)  # noqa: PLW2901
        command.append(word)
    return command


def run(args: argparse.Namespace) -> int:
    session = common.aws_session(common.region(args))
    arn = _secret_arn(args, session)
    secret = TokenSecret(session, arn)
    document = secret.read().require_mode("source", f"secret {arn}")
    region = common.region(args, document)
    settings = ProxySettings(
        mode="source",
        access_token=document.token,
        endpoint=data_endpoint(endpoint=args.endpoint, region=region),
        services=_services(args, document),
        version=common.VERSIONS[args.destination_client_type],
        client_token=common.client_token(args, dict(os.environ)),
        bind_address=args.bind,
        **common.tls_options(args, dict(os.environ)),
        retry=common.retry_policy(args),
    )
    if args.exec_localproxy:
        return exec_localproxy(args, settings, region)
    return asyncio.run(_connect(args, settings, secret, document, region))


class _Refresher:
    """After a refusal: a newer token from the secret, or a closed tunnel named, or one rotation."""

    def __init__(
        self, args: argparse.Namespace, secret: TokenSecret, document: TokenDocument, region: str | None
    ) -> None:
        self.args = args
        self.secret = secret
        self.document = document
        self.region = region
        self.proxy: LocalProxy | None = None
        self._rotated_after = -1

    async def __call__(self, rejected: HandshakeRejected) -> str | None:
        await self._raise_if_closed()
        made = self.proxy.connections_made if self.proxy else 0
        try:
            latest = await asyncio.to_thread(self.secret.read)
        except NotFound as error:
            if made:  # it was there when we connected: the stack went (cdk destroy) with its tunnel
                raise TunnelClosed(f"{error}; the stack's deletion closed its tunnel") from None
            raise
        if latest.token != self.document.token:
            say("the secret holds a newer token: connecting with it")
            self.document = latest
            return latest.token
        if self.args.no_rotate or self._rotated_after >= made:
            return None
        self._rotated_after = made
        say(
            f"{rejected.reason or 'refused'} (HTTP {rejected.status}): "
            "the token is spent or revoked; rotating it"
        )
        self.document = await asyncio.to_thread(self.secret.rotate, Progress())
        return self.document.token

    async def _raise_if_closed(self) -> None:
        if not self.document.tunnel_id:
            return
        tunnel = await asyncio.to_thread(
            tunnel_status, self.secret.session, self.document.tunnel_id, self.region
        )
        if tunnel is not None and tunnel.get("status") == "CLOSED":
            raise TunnelClosed(closed_message(tunnel))


def closed_message(tunnel: dict[str, Any]) -> str:
    """Why a described CLOSED tunnel is closed: its lifetime ended, or it was closed."""
    tunnel_id = tunnel.get("tunnelId", "")
    created, updated = tunnel.get("createdAt"), tunnel.get("lastUpdatedAt")
    minutes = (tunnel.get("timeoutConfig") or {}).get("maxLifetimeTimeoutMinutes")
    if isinstance(created, datetime) and isinstance(updated, datetime) and minutes:
        ends = created.timestamp() + 60 * int(minutes)
        if updated.timestamp() >= ends - 1:
            at = datetime.fromtimestamp(ends, UTC).isoformat(timespec="seconds")
            return (
                f"tunnel {tunnel_id} has expired (its {minutes}-minute lifetime ended at {at}); deploy "
                "again to open a new one, or use the construct's renew"
            )
    return (
        f"tunnel {tunnel_id} is closed (CloseTunnel or the stack's deletion); deploy again to open a new one"
    )


async def _connect(
    args: argparse.Namespace,
    settings: ProxySettings,
    secret: TokenSecret,
    document: TokenDocument,
    region: str | None,
) -> int:
    refresher = _Refresher(args, secret, document, region)
    proxy = refresher.proxy = LocalProxy(settings, refresh_token=refresher)
    async with proxy.running() as running:
        if running.done():
            running.result()
            return int(ExitCode.OK)
        listening = ", ".join(
            f"{name or 'service'} on {settings.bind_address}:{port}" for name, port in proxy.ports.items()
        )
        say(f"listening: {listening}")
        command = _command(args.command, proxy.ports, settings.bind_address)
        watcher = (
            asyncio.ensure_future(
                _watch_device(secret.session, refresher.document, region, waiting=bool(command))
            )
            if document.tunnel_id
            else None
        )
        try:
            if not command:
                await running
                return int(ExitCode.OK)
            if watcher is not None:
                # The service relays only to a connected peer: a client's first bytes sent before the device
                # connects are lost, so the command starts once the device is there (or, unable to
                # describe the tunnel, at once).
                await first_done(watcher, running)
                if running.done():
                    running.result()
                    return int(ExitCode.OK)
            child = await asyncio.create_subprocess_exec(*command)
            await first_done(child.wait(), running)
            if running.done():
                if child.returncode is None:
                    child.terminate()
                    await child.wait()
                running.result()
            return int(child.returncode or 0)
        finally:
            if watcher is not None:
                watcher.cancel()


async def _watch_device(
    session: Any, document: TokenDocument, region: str | None, *, waiting: bool, interval: float = 1.0
) -> None:
    """Say whether the device is connected (DescribeTunnel), and when it connects; returns then, or at once
    without permission to describe the tunnel."""
    assert document.tunnel_id is not None
    said = None
    while True:
        tunnel = await asyncio.to_thread(tunnel_status, session, document.tunnel_id, region)
        if tunnel is None:
            return  # no permission to describe it: nothing to tell
        state = (tunnel.get("destinationConnectionState") or {}).get("status", "DISCONNECTED")
        if state != said:
            if state == "CONNECTED":
                say("the device is connected")
                return
            then = "the command starts once it is" if waiting else "what is sent before it connects is lost"
            say(f"the device is not connected yet; {then}")
            said = state
        await asyncio.sleep(interval)


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def localproxy_command(args: argparse.Namespace, settings: ProxySettings, region: str | None) -> list[str]:
    """The reference proxy's arguments for these settings (never the token: that goes in its environment)."""
    mapping = ",".join(
        f"{name}={target.port or _free_port(settings.bind_address)}"
        if name
        else str(target.port or _free_port(settings.bind_address))
        for name, target in settings.services.items()
    )
    command = [args.exec_localproxy, "-s", mapping, "-b", settings.bind_address]
    if region and settings.endpoint == endpoint_of(region):
        command += ["-r", region]
    else:
        command += ["-e", settings.endpoint.partition("://")[2]]
    if settings.version < 3:
        command += ["-y", f"V{settings.version}"]
    if args.capath:
        command += ["-c", args.capath]
    if args.no_ssl_host_verify:
        command.append("-k")
    return command


def exec_localproxy(args: argparse.Namespace, settings: ProxySettings, region: str | None) -> int:
    if args.command:
        raise ConfigurationError("--exec-localproxy: runs the reference proxy alone; leave out the command")
    command = localproxy_command(args, settings, region)
    environment = {**os.environ, TOKEN_VARIABLE: settings.access_token}
    if settings.client_token:
        environment[CLIENT_TOKEN_VARIABLE] = settings.client_token
    say(f"running {' '.join(command)}")
    try:
        return subprocess.call(command, env=environment)  # noqa: S603  (the user's own command)
    except FileNotFoundError:
        raise ConfigurationError(
            f"--exec-localproxy: {args.exec_localproxy!r} not found; pass its path"
        ) from None
