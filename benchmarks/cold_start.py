"""The cold-start cost of importing the handler beside a bare ``import boto3``, in fresh processes.

Each import runs in its own interpreter, alternating between the two, with the handler imported from a
copy of ``lambda_src`` without byte-code caches and with writing them disabled: the Lambda asset excludes
``__pycache__``, so Lambda compiles the handler's modules at every cold start, while boto3 and botocore
come from the runtime precompiled (as they do here). The figures are the import alone (time) and the
process's peak resident set after it (which includes the interpreter's own few MiB, as Lambda's does).

Each pair of imports runs at a different depth of the Python stack, the same for both, spread over
``STACK_SPAN`` frames. CPython keeps frames in 16 KiB chunks and frees a chunk as soon as the frame that
opened it returns: recursion that goes back and forth across a chunk's end (the regex parser's, as
urllib3 compiles its URL patterns at import) maps and unmaps a chunk on every call, thousands of times,
which adds tens of milliseconds. Whether an import does so depends on where the stack stands when it
starts, which for the handler is wherever Lambda's bootstrap imports it from; at one fixed depth the
comparison would be between two arbitrary positions (boto3 imported from the top level happens to be
one of its fastest).
"""

import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import tunnel_lambda

from .measure import median, paired_ratio, run_python, spread

HANDLER_MODULE = "tunnel_lambda.custom_resource"
BARE_MODULE = "boto3"
WARM_UP = 2
# Depths of the probe's own frames (about 130 fill a 16 KiB chunk in CPython 3.11 to 3.13): two chunks.
STACK_SPAN = 256
_FIGURES = ("seconds", "cpu_seconds", "peak_kib")

# The peak comes from /proc's VmHWM: ru_maxrss would include this (parent) process's size (see
# measure.own_peak_kib), and the probe imports nothing but what it measures to read it.
_PROBE = """
import json, time
def import_at_depth(depth):
    if depth:
        return import_at_depth(depth - 1)
    started, cpu_started = time.perf_counter(), time.process_time()
    __import__("{module}")
    return time.perf_counter() - started, time.process_time() - cpu_started
seconds, cpu_seconds = import_at_depth({depth})
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
import platform
print(json.dumps({{"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_kib": peak,
                  "python": platform.python_version()}}))
"""


@dataclass(frozen=True)
class ImportCost:
    module: str
    seconds: list[float]
    cpu_seconds: list[float]
    peak_kib: list[float]

    @property
    def median_s(self) -> float:
        return median(self.seconds)

    @property
    def median_cpu_s(self) -> float:
        return median(self.cpu_seconds)

    @property
    def median_peak_kib(self) -> float:
        return median(self.peak_kib)


@dataclass(frozen=True)
class ColdStart:
    handler: ImportCost
    bare: ImportCost
    python: str

    @property
    def time_ratio(self) -> float:
        return paired_ratio(self.handler.seconds, self.bare.seconds)

    @property
    def cpu_ratio(self) -> float:
        return paired_ratio(self.handler.cpu_seconds, self.bare.cpu_seconds)

    @property
    def memory_ratio(self) -> float:
        return paired_ratio(self.handler.peak_kib, self.bare.peak_kib)

    @property
    def spread(self) -> float:
        return max(spread(self.handler.seconds), spread(self.bare.seconds))


def measure(runs: int, interpreter: str = sys.executable) -> ColdStart:
    """``interpreter`` needs boto3; the closer its version to the function's Lambda runtime, the better the
    figures stand for a cold start there.
    """
    with tempfile.TemporaryDirectory() as copy:
        source = Path(copy) / "lambda_src"
        shutil.copytree(
            Path(tunnel_lambda.__file__).parent,
            source / "tunnel_lambda",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        environment = {"PYTHONPATH": str(source), "PYTHONDONTWRITEBYTECODE": "1"}
        samples: dict[str, dict[str, list[float]]] = {
            module: {name: [] for name in _FIGURES} for module in (HANDLER_MODULE, BARE_MODULE)
        }
        for run in range(WARM_UP + runs):
            depth = run * STACK_SPAN // (WARM_UP + runs)
            for module in (HANDLER_MODULE, BARE_MODULE)[:: 1 if run % 2 else -1]:
                probe = _PROBE.format(module=module, depth=depth)
                result = run_python(["-c", probe], environment, interpreter)
                if run >= WARM_UP:
                    for name, series in samples[module].items():
                        series.append(result[name])
    return ColdStart(
        handler=ImportCost(HANDLER_MODULE, **samples[HANDLER_MODULE]),
        bare=ImportCost(BARE_MODULE, **samples[BARE_MODULE]),
        python=str(result["python"]),
    )
