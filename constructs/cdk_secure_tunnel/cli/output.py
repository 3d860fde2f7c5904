"""What the command tells its user: status lines on stderr, and one progress line that updates in place.

stdout stays for the command run through the tunnel; on a terminal, progress rewrites one line, elsewhere
(logs, CI) it prints a line only when the message changes other than in its figures.
"""

import logging
import re
import sys
from typing import TextIO

PROGRAM = "cdk-secure-tunnel"


def say(message: str, stream: TextIO | None = None) -> None:
    print(f"{PROGRAM}: {message}", file=stream or sys.stderr, flush=True)


class Progress:
    """One line of progress: ``update()`` as often as wanted, ``done()`` to end the line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._shown = ""
        self._width = 0

    def update(self, message: str) -> None:
        if self._tty:
            line = f"{PROGRAM}: {message}"
            self._stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
            self._stream.flush()
        elif re.sub(r"\d+", "#", message) != re.sub(r"\d+", "#", self._shown):
            say(message, self._stream)
        self._shown = message

    def done(self) -> None:
        if self._tty and self._width:
            self._stream.write("\n")
            self._stream.flush()
        self._width = 0
        self._shown = ""


def configure_logging(verbosity: int) -> None:
    """The proxy's log on stderr: warnings by default, ``-v`` info, ``-vv`` debug (never tokens)."""
    level = logging.WARNING - 10 * verbosity
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROGRAM}: %(message)s"))
    root = logging.getLogger("cdk_secure_tunnel")
    root.handlers[:] = [handler]
    root.setLevel(max(level, logging.DEBUG))
    root.propagate = False
