"""``python -m cdk_secure_tunnel.testing``: serve local AWS until interrupted.

It prints the environment to use, one ``NAME=value`` line each (endpoints first), so a shell can
``export`` them:

    $ python -m cdk_secure_tunnel.testing --port 4566 --data-port 4567
    AWS_ENDPOINT_URL_IOTSECURETUNNELING=http://127.0.0.1:4566
    AWS_ENDPOINT_URL_SECRETS_MANAGER=http://127.0.0.1:38211
    CDK_SECURE_TUNNEL_DATA_ENDPOINT=ws://127.0.0.1:4567
    ...

The data plane's ``host:port`` (the reference local proxy's ``-e``) and, with ``--tls``, its CA file go
to stderr with the "Serving" line.
"""

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from ..emulator import LocalAws, TunnelEmulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cdk_secure_tunnel.testing",
        description="Serve local AWS IoT Secure Tunneling (control and data plane) and Secrets Manager.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="tunneling port (default: any free one)")
    parser.add_argument("--data-port", type=int, default=0, help="data plane port (default: any free one)")
    parser.add_argument("--tls", action="store_true", help="serve the data plane as wss:// (generated CA)")
    parser.add_argument("--secrets-manager-port", type=int, default=0, help="moto's port (default: any)")
    parser.add_argument("--no-secrets-manager", action="store_true", help="serve the tunnel emulator only")
    parser.add_argument("--region", default="us-east-1", help="region in the printed environment")
    parser.add_argument("--account", default="123456789012", help="account id in tunnel ARNs")
    parser.add_argument("--max-open-tunnels", type=int, default=None, help="OpenTunnel limit (default: none)")
    return parser


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    emulator = TunnelEmulator(
        region=args.region, account=args.account, max_open_tunnels=args.max_open_tunnels
    )
    aws = LocalAws(
        emulator,
        region=args.region,
        host=args.host,
        tunneling_port=args.port,
        secrets_manager_port=args.secrets_manager_port,
        secrets_manager=not args.no_secrets_manager,
        data_port=args.data_port,
        tls=args.tls,
    )
    # SIGTERM (from a process manager or a test's terminate()) stops the servers as Ctrl-C does.
    signal.signal(signal.SIGTERM, _stop)
    with aws:
        for name, value in aws.environment().items():
            print(f"{name}={value}")
        plane = aws.emulator.data_plane
        print(f"Data plane for local proxies: -e {plane.endpoint}", file=sys.stderr)
        if plane.ca_file is not None:
            print(f"Data plane CA (for -c, after openssl rehash): {plane.ca_file}", file=sys.stderr)
        print("Serving; press Ctrl-C to stop.", file=sys.stderr)
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
