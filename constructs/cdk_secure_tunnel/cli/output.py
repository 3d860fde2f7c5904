"""What the command tells its user: status lines on stderr (or the stream ``main`` is given), and one
progress line that updates in place.

stdout stays for the command run through the tunnel; on a terminal, progress rewrites one line, elsewhere
(logs, CI) it prints a line only when the message changes other than in its figures.
"""

import logging
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TextIO

PROGRAM = "cdk-secure-tunnel"

# Where this command's messages go when its caller chose (``main(..., stderr=)``): a context variable, so
# that commands run in threads of one process (an embedding program, the tests) each keep their own, and
# the proxy's tasks and worker threads inherit it.
_MESSAGES: ContextVar[TextIO | None] = ContextVar("messages", default=None)


def messages() -> TextIO:
    """The stream for the command's messages: the one its caller chose, else ``sys.stderr`` as it is now."""
    return _MESSAGES.get() or sys.stderr


@contextmanager
def messages_to(stream: TextIO | None) -> Iterator[None]:
    """The command's messages to ``stream`` (None: ``sys.stderr``) in this context."""
    token = _MESSAGES.set(stream)
    try:
        yield
    finally:
        _MESSAGES.reset(token)


def say(message: str, stream: TextIO | None = None) -> None:
    print(f"{PROGRAM}: {message}", file=stream or messages(), flush=True)


class Progress:
    """One line of progress: ``update()`` as often as wanted, ``done()`` to end the line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or messages()
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


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the messages stream of the context that logs (``messages()``), as it is at the time."""

    @property
    def stream(self) -> TextIO:
        return messages()

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


# The loggers whose records are the command's output (the emulator's, in tests, are not).
LOGGERS = ("cdk_secure_tunnel.localproxy", "cdk_secure_tunnel.cli")


class _CommandLogging:
    """The loggers' set-up, shared by the commands running at once in one process (tests run ``device``
    and ``connect`` in threads): the first to start saves the loggers' state and adds the handler, the
    last to end puts the state back, in whatever order they end. While several run, the most verbose
    one's level applies (the loggers are the process's); each record still goes to the messages stream of
    the command that logs it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._verbosities: list[int] = []
        self._saved: list[tuple[logging.Logger, int, bool]] = []
        self._handler = _StderrHandler()
        self._handler.setFormatter(logging.Formatter(f"{PROGRAM}: %(message)s"))

    def enter(self, verbosity: int) -> None:
        with self._lock:
            if not self._verbosities:
                for name in LOGGERS:
                    logger = logging.getLogger(name)
                    self._saved.append((logger, logger.level, logger.propagate))
                    logger.addHandler(self._handler)
                    logger.propagate = False
            self._verbosities.append(verbosity)
            self._set_level()

    def exit(self, verbosity: int) -> None:
        with self._lock:
            self._verbosities.remove(verbosity)
            if self._verbosities:
                self._set_level()
                return
            for logger, level, propagate in self._saved:
                logger.removeHandler(self._handler)
                logger.setLevel(level)
                logger.propagate = propagate
            self._saved.clear()

    def _set_level(self) -> None:
        level = max(logging.WARNING - 10 * max(self._verbosities), logging.DEBUG)
        for logger, _, _ in self._saved:
            logger.setLevel(level)


_COMMAND_LOGGING = _CommandLogging()


@contextmanager
def logging_to_stderr(verbosity: int) -> Iterator[None]:
    """The proxy's log on stderr while the command runs: warnings by default, ``-v`` info, ``-vv`` debug
    (never tokens); the loggers are put back as they were once the last command running ends.

    >>> proxy_log = logging.getLogger("cdk_secure_tunnel.localproxy")
    >>> before = (proxy_log.level, proxy_log.propagate, list(proxy_log.handlers))
    >>> with logging_to_stderr(verbosity=1):
    ...     logging.getLevelName(proxy_log.level), proxy_log.propagate
    ('INFO', False)
    >>> (proxy_log.level, proxy_log.propagate, list(proxy_log.handlers)) == before
    True
    """
    _COMMAND_LOGGING.enter(verbosity)
    try:
        yield
    finally:
        _COMMAND_LOGGING.exit(verbosity)
