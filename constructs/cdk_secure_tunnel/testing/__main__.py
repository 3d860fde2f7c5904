"""``python -m cdk_secure_tunnel.testing``: serve local AWS until stopped, and tell a shell how to use it.

It prints shell lines, an ``unset`` of the variables that would send AWS SDKs and the AWS CLI elsewhere
(profiles, session tokens, other endpoints) and one ``export`` per variable (endpoints first):

    $ python -m cdk_secure_tunnel.testing --port 4566 --data-port 4567
    unset AWS_ENDPOINT_URL AWS_IGNORE_CONFIGURED_ENDPOINT_URLS AWS_PROFILE ...
    export AWS_ENDPOINT_URL_IOTSECURETUNNELING=http://127.0.0.1:4566
    export AWS_ENDPOINT_URL_SECRETS_MANAGER=http://127.0.0.1:38211
    export CDK_SECURE_TUNNEL_DATA_ENDPOINT=ws://127.0.0.1:4567
    ...

The data plane's ``host:port`` (the reference local proxy's ``-e``) and, with ``--tls``, its CA file go
to stderr with the "Serving" line.

A shell's ``eval "$(...)"`` reads until the command's output closes, which a server never does: in the
foreground, pass ``--env-file PATH`` and ``source PATH`` from another shell; or start it with
``--background``, which prints the lines (plus the server's process id, to stop it) and returns while
the server keeps running, as ``eval "$(ssh-agent -s)"`` does::

    eval "$(python -m cdk_secure_tunnel.testing --background)"
    aws secretsmanager list-secrets
    kill "$CDK_SECURE_TUNNEL_LOCAL_AWS_PID"
"""

import argparse
import contextlib
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

from ..emulator import LocalAws, TunnelEmulator
from ..emulator.local_aws import UNSET_VARIABLES

PID_VARIABLE = "CDK_SECURE_TUNNEL_LOCAL_AWS_PID"
# How long --background waits for the server to write its environment.
START_TIMEOUT_S = 60.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cdk_secure_tunnel.testing",
        description="Serve local AWS IoT Secure Tunneling (control and data plane) and Secrets Manager, "
        "and print the shell lines (unset, export) that point AWS SDKs, the AWS CLI and proxies at them.",
        epilog='examples:\n  eval "$(python -m cdk_secure_tunnel.testing --background)"\n'
        f'  kill "${PID_VARIABLE}"\n'
        "  python -m cdk_secure_tunnel.testing --port 4566 --env-file local-aws.env  # then: . local-aws.env",
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    parser.add_argument(
        "--env-file",
        metavar="PATH",
        type=Path,
        help="also write the lines to PATH once serving (for `source PATH`); removed when the server stops",
    )
    parser.add_argument(
        "--background",
        action="store_true",
        help="serve from a background process: print the lines, with its process id as "
        f"{PID_VARIABLE}, and return (for eval)",
    )
    return parser


def shell_lines(variables: Mapping[str, str]) -> list[str]:
    """The lines that give a POSIX shell this environment.

    >>> shell_lines({"AWS_REGION": "us-east-1"})[1:]
    ['export AWS_REGION=us-east-1']
    """
    return [
        f"unset {' '.join(UNSET_VARIABLES)}",
        *(f"export {name}={shlex.quote(value)}" for name, value in variables.items()),
    ]


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _write_atomically(path: Path, text: str) -> None:
    """Write so that a reader polling for ``path`` never sees half of it."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    partial.replace(path)


def serve(args: argparse.Namespace) -> int:
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
    # SIGTERM (from kill, a process manager or a test's terminate()) stops the servers as Ctrl-C does.
    signal.signal(signal.SIGTERM, _stop)
    # This process's own environment too: rotation functions run here (see emulator.secrets_manager).
    with aws, aws.environment_applied() as variables:
        text = "\n".join(shell_lines(variables)) + "\n"
        print(text, end="", flush=True)
        if args.env_file is not None:
            _write_atomically(args.env_file, text)
        plane = aws.emulator.data_plane
        print(f"Data plane for local proxies: -e {plane.endpoint}", file=sys.stderr)
        if plane.ca_file is not None:
            print(f"Data plane CA (for -c, after openssl rehash): {plane.ca_file}", file=sys.stderr)
        if not sys.stdout.isatty() and args.env_file is None:
            print(
                'Serving until stopped. The output stays open meanwhile, so `eval "$(...)"` would wait '
                "forever: use --background (or --env-file PATH).",
                file=sys.stderr,
            )
        else:
            print("Serving; press Ctrl-C to stop.", file=sys.stderr)
        try:
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
        finally:
            if args.env_file is not None:
                args.env_file.unlink(missing_ok=True)
    return 0


def background(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Start ``serve`` in a detached process, print its lines and process id, and return."""
    workdir = Path(tempfile.mkdtemp(prefix="cdk-secure-tunnel-local-aws-"))
    env_file = args.env_file or workdir / "environment"
    log = workdir / "server.log"
    command = [sys.executable, "-m", "cdk_secure_tunnel.testing"]
    command += [arg for arg in argv if arg != "--background"]
    if args.env_file is None:
        command += ["--env-file", str(env_file)]
    env_file.unlink(missing_ok=True)  # a previous server's: its ports are closed
    with log.open("w") as log_file:
        # Nothing of this process's output is inherited: eval's pipe closes when this process exits.
        server = subprocess.Popen(  # noqa: S603  (this interpreter, this module)
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not env_file.exists():
        if server.poll() is not None or time.monotonic() > deadline:
            if server.returncode is None:
                server.terminate()
            print(f"The local AWS server did not start:\n{log.read_text()}", file=sys.stderr)
            return 1
        time.sleep(0.05)
    print(env_file.read_text(), end="")
    print(f"export {PID_VARIABLE}={server.pid}", flush=True)
    print(f"Serving in process {server.pid} (log: {log}); stop it with: kill {server.pid}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.background:
        return background(args, argv)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
