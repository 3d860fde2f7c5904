"""``cdk-secure-tunnel``: from ``cdk deploy`` to ``ssh`` in one command (no aws_cdk, no Node.js needed).

- ``connect``: the operator's side (a source local proxy, token from the stack's secret);
- ``device``: the device's side (a destination local proxy, token from AWS IoT's notify payload).

``--version`` prints on stdout and exits with status 0, as argparse's own version action does:

>>> try:
...     main(["--version"])
... except SystemExit as leaving:
...     print("exit status", leaving.code)
cdk-secure-tunnel ...
exit status 0
"""

import argparse
import sys
from typing import Any, TextIO

from ..localproxy.errors import ExitCode, LocalProxyError
from . import connect, device
from .aws_errors import explained
from .output import PROGRAM, logging_to_stderr, messages_to, say

DESCRIPTION = """\
Reach a device through an AWS IoT secure tunnel opened by the SecureTunnel construct: `connect` on the
operator's machine, `device` on the device. Both are local proxies speaking the secure tunneling
protocol (V1-V3), in Python. Run `cdk-secure-tunnel <command> --help` for each."""

EPILOG = """\
examples:
  cdk-secure-tunnel connect --stack Plant --tunnel Maintenance -- ssh -p {SSH} admin@localhost
  cdk-secure-tunnel device --notify notify.json --destination SSH=22"""


class _Version(argparse.Action):
    """``--version``: importlib.metadata costs a tenth of a second, so it is imported only when asked."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(nargs=0, default=argparse.SUPPRESS, help="show the version and exit", **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        shown = f"{PROGRAM} (not installed)"
        for distribution in ("cdk-secure-tunnel", "cdk-secure-tunnel-proxy"):
            try:
                shown = f"{PROGRAM} {version(distribution)} ({distribution})"
                break
            except PackageNotFoundError:
                continue
        print(shown)  # on stdout, as argparse's own version action does
        parser.exit()


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog=PROGRAM,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root.add_argument("--version", action=_Version)
    subparsers = root.add_subparsers(title="commands", metavar="COMMAND", required=True)
    connect.add_parser(subparsers)
    device.add_parser(subparsers)
    return root


def main(argv: list[str] | None = None, *, stderr: TextIO | None = None) -> int:
    """Run the command; returns its exit status (see each command's --help). Its messages and log go to
    ``stderr`` (default: ``sys.stderr``), also when several commands run in threads of one process;
    argparse's usage errors still go to ``sys.stderr``.

    >>> import io
    >>> said = io.StringIO()
    >>> main(["device", "--notify", "/nonexistent", "--destination", "22"], stderr=said)
    3
    >>> print(said.getvalue().strip())
    cdk-secure-tunnel: error: --notify: cannot read /nonexistent: No such file or directory
    """
    with messages_to(stderr):
        arguments = parser().parse_args(argv)
        try:
            with logging_to_stderr(arguments.verbose):
                return int(arguments.run(arguments))
        except Exception as error:
            known = error if isinstance(error, LocalProxyError) else explained(error)
            if known is None:
                raise  # a bug: its traceback is the report
            say(f"error: {known}")
            return int(known.exit_code)
        except KeyboardInterrupt:
            say("interrupted")
            return int(ExitCode.INTERRUPTED)


def console() -> None:
    """The console script's entry point."""
    sys.exit(main())
