"""``python -m cdk_secure_tunnel.testing``: serve local AWS until interrupted.

It prints the environment to use, one ``NAME=value`` line each (endpoints first), so a shell can
``export`` them:

    $ python -m cdk_secure_tunnel.testing --port 4566
    AWS_ENDPOINT_URL_IOTSECURETUNNELING=http://127.0.0.1:4566
    AWS_ENDPOINT_URL_SECRETS_MANAGER=http://127.0.0.1:38211
    ...
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
        description="Serve a local AWS IoT Secure Tunneling control plane and moto's Secrets Manager.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="tunneling port (default: any free one)")
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
    )
    # SIGTERM (from a process manager or a test's terminate()) stops the servers as Ctrl-C does.
    signal.signal(signal.SIGTERM, _stop)
    with aws:
        for name, value in aws.environment().items():
            print(f"{name}={value}")
        print("Serving; press Ctrl-C to stop.", file=sys.stderr)
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
