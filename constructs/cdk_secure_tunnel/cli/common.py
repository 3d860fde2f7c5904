"""What ``connect`` and ``device`` share: connection options, TLS, retries and the AWS session."""

import argparse
from typing import Any

from ..localproxy.errors import ConfigurationError
from ..localproxy.settings import (
    CLIENT_TOKEN_VARIABLE,
    REFERENCE_REGION_VARIABLE,
    RetryPolicy,
    Version,
    new_client_token,
    tunnel_region,
)
from ..protocol.handshake import DATA_CA_FILE_VARIABLE
from .documents import TokenDocument
from .output import say

VERSIONS: dict[str, Version] = {"V1": 1, "V2": 2, "V3": 3}


def add_command_parser(
    subparsers: Any, name: str, summary: str, description: str, epilog: str
) -> argparse.ArgumentParser:
    """A command's parser; its description and epilog keep their line breaks (they hold examples)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=summary,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection to the tunneling service")
    group.add_argument(
        "--region",
        "-r",
        help="the tunnel's region, where its stack and secrets are too (default: the token's, else "
        f"${REFERENCE_REGION_VARIABLE}, else AWS's settings: $AWS_REGION, $AWS_DEFAULT_REGION, the profile's "
        "region)",
    )
    group.add_argument(
        "--endpoint",
        "-e",
        metavar="URL",
        help="an explicit data plane endpoint, e.g. wss://host:443 or ws://127.0.0.1:8080 for a local "
        "emulator (default: $CDK_SECURE_TUNNEL_DATA_ENDPOINT, else the region's)",
    )
    group.add_argument("--capath", "-c", metavar="DIR", help="more root CAs for TLS, besides the system's")
    group.add_argument(
        "--no-ssl-host-verify",
        "-k",
        action="store_true",
        help="do not verify the service's certificate (local testing only)",
    )
    # Kept because the reference proxy has it (-i); the variable is the way the docs show.
    group.add_argument(
        "--client-token",
        "-i",
        metavar="TOKEN",
        help=f"the client token to reconnect with, 32-128 of [a-zA-Z0-9-]; set ${CLIENT_TOKEN_VARIABLE} "
        "instead: it lets whoever holds the access token reconnect, and a command line is visible to "
        "every local user (ps) (default: the variable, else a fresh UUID)",
    )
    group.add_argument(
        "--no-client-token",
        action="store_true",
        help="send no client token: the access token is then spent by the first connection and a dropped "
        "connection cannot come back",
    )
    group.add_argument(
        "--retries",
        type=int,
        metavar="N",
        help="give up after N failed attempts in a row to reach the service (default: never)",
    )
    parser.add_argument("--verbose", "-v", action="count", default=0, help="more output (-vv: debug)")


def client_token(args: argparse.Namespace, environ: dict[str, str]) -> str | None:
    if args.no_client_token:
        return None
    if args.client_token:
        say(
            f"warning: --client-token is visible to other local users (ps); set ${CLIENT_TOKEN_VARIABLE} "
            "instead"
        )
    return str(args.client_token or environ.get(CLIENT_TOKEN_VARIABLE) or new_client_token())


def tls_options(args: argparse.Namespace, environ: dict[str, str]) -> dict[str, Any]:
    """The TLS settings: --capath, --no-ssl-host-verify, and a local emulator's CA file from its variable."""
    return {
        "capath": args.capath,
        "cafile": environ.get(DATA_CA_FILE_VARIABLE),
        "verify_host": not args.no_ssl_host_verify,
    }


def retry_policy(args: argparse.Namespace) -> RetryPolicy:
    if args.retries is not None and args.retries < 1:
        raise ConfigurationError(f"--retries: got {args.retries}; expected 1 or more")
    return RetryPolicy(attempts=args.retries)


def region(args: argparse.Namespace, document: TokenDocument | None = None) -> str | None:
    """The tunnel's region, for its data plane and for AWS's APIs (its stack and secrets are there too):
    --region, else the token's, else $AWSIOT_TUNNEL_REGION, else AWS's settings: $AWS_REGION,
    $AWS_DEFAULT_REGION, then the profile's region (when botocore is installed). An explicit region wins,
    as options do, but a token names where its tunnel was opened: another region is warned about."""
    token_region = document.region if document is not None else None
    if args.region and token_region and args.region != token_region:
        say(
            f"warning: --region {args.region} overrides the token's region {token_region}, where its tunnel "
            "was opened"
        )
    return tunnel_region(args.region, token_region) or _profile_region()


def _profile_region() -> str | None:
    try:
        import botocore.session  # noqa: PLC0415  (the device's distribution may lack it)
    except ImportError:
        return None
    configured = botocore.session.Session().get_config_variable("region")
    return str(configured) if configured else None


def aws_session(region: str | None) -> Any:
    """A boto3 session; boto3 comes with the full distribution or the proxy's ``[aws]`` extra."""
    try:
        import boto3  # noqa: PLC0415  (only the commands that read secrets need it)
    except ImportError:
        raise ConfigurationError(
            "reading secrets needs boto3: pip install boto3, or install the proxy wheel with its extra "
            "(pip install 'cdk_secure_tunnel_proxy-<version>-py3-none-any.whl[aws]')"
        ) from None
    import logging  # noqa: PLC0415

    # botocore's DEBUG records carry response bodies, and GetSecretValue's carries the token.
    logging.getLogger("botocore").setLevel(logging.INFO)
    return boto3.session.Session(region_name=region)
