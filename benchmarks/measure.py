"""Measuring primitives shared by every benchmark: robust summaries, child processes and their memory."""

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# jsii starts whatever `node` is first on PATH; the project's own Node LTS keeps an end-of-life Node's
# banner (and its different speed) out of the figures.
NODE_BIN = ROOT / "node_modules" / ".bin"


Template = Mapping[str, Any]


def minified_size(document: Any) -> int:
    """Bytes of ``document`` as minified JSON: what a template weighs against CloudFormation's limits."""
    return len(json.dumps(document, separators=(",", ":")).encode())


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """The median of the ratios of runs made back to back: load that drifts during a benchmark hits both
    halves of a pair alike, so this holds where a ratio of medians would drift.
    """
    return median([n / d for n, d in zip(numerators, denominators, strict=True)])


def spread(values: Sequence[float]) -> float:
    """Half the interquartile range relative to the median: how much to trust a median."""
    if len(values) < 4:  # quartiles of fewer points say nothing
        return (max(values) - min(values)) / 2 / statistics.median(values)
    low, _, high = statistics.quantiles(values, n=4)
    return (high - low) / 2 / statistics.median(values)


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    environment = dict(os.environ)
    if (NODE_BIN / "node").exists():
        environment["PATH"] = f"{NODE_BIN}{os.pathsep}{environment.get('PATH', '')}"
    return environment | dict(extra or {})


def run_python(
    arguments: Sequence[str],
    extra_environment: Mapping[str, str] | None = None,
    interpreter: str = sys.executable,
) -> dict[str, Any]:
    """Run ``interpreter`` (this one by default) in a fresh process; its last stdout line is a JSON object,
    returned.
    """
    completed = subprocess.run(
        [interpreter, *arguments],
        capture_output=True,
        text=True,
        env=child_environment(extra_environment),
        cwd=ROOT,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{arguments} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def timed_python(
    arguments: Sequence[str], extra_environment: Mapping[str, str] | None = None
) -> tuple[float, dict[str, Any]]:
    """``run_python``, with the wall time of the whole process (interpreter start to exit)."""
    started = time.perf_counter()
    result = run_python(arguments, extra_environment)
    return time.perf_counter() - started, result


def own_peak_kib() -> int:
    """This process's peak resident set, from /proc (VmHWM).

    Not getrusage's ru_maxrss: Linux carries the parent's resident set over fork and exec into it, so a
    small child of a large parent reports the parent's size.
    """
    return _high_water_mark_kib(os.getpid())


def _parent_of(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # The command name may contain spaces and parentheses; the fields after its last ")" do not.
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _high_water_mark_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants_peak_kib() -> int:
    """The summed peak resident sets of this process's live descendants (jsii's Node.js), from /proc.

    getrusage(RUSAGE_CHILDREN) would not do: it counts only children already waited for (jsii's Node
    still runs), and it reports the largest child, not the sum.
    """
    parents = {int(pid): _parent_of(pid) for pid in os.listdir("/proc") if pid.isdigit()}
    family, grew = {os.getpid()}, True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in family} - family
        family |= found
        grew = bool(found)
    return sum(_high_water_mark_kib(pid) for pid in family - {os.getpid()})


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """``with stopwatch() as elapsed: ...``; ``elapsed()`` is the seconds the block took (so far)."""
    started = time.perf_counter()
    ended: list[float] = []
    yield lambda: (ended[0] if ended else time.perf_counter()) - started
    ended.append(time.perf_counter())
