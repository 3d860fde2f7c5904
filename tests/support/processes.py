"""Reading what a server subprocess prints, with a deadline: one that hangs without exiting fails its test
instead of blocking the whole run.
"""

import os
import selectors
import subprocess
import time
from collections.abc import Callable

import pytest

# Long enough for a server to start on a loaded CI machine; short beside a CI job's own timeout.
STARTUP_TIMEOUT = 60.0


def read_lines(
    process: subprocess.Popen[str], until: Callable[[str], bool], timeout: float = STARTUP_TIMEOUT
) -> list[str]:
    """The lines ``process`` prints on stdout, up to and including the first for which ``until`` holds.

    Fails the test, quoting what was read, when the output ends first or ``timeout`` seconds pass. It
    reads the pipe itself, a byte at a time (a stream's buffer would hide lines from ``select``), so
    nothing past that line is taken: call it before reading ``process.stdout`` any other way.
    """
    stdout = process.stdout
    assert stdout is not None, "start the process with stdout=subprocess.PIPE"
    descriptor = stdout.fileno()
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    line = bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(descriptor, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            ready = remaining > 0 and bool(selector.select(remaining))
            byte = os.read(descriptor, 1) if ready else b""
            if not byte:
                read = [*lines, line.decode(stdout.encoding, "replace")]
                ending = "the output ended" if ready else f"nothing more after {timeout} s"
                pytest.fail(f"{ending}; read so far: {read!r}")
            line += byte
            if byte == b"\n":
                lines.append(line.decode(stdout.encoding))
                line.clear()
                if until(lines[-1]):
                    return lines
