"""Synthesis of stacks of 1, 10 and 100 tunnels per approach, each in a fresh process.

A fresh process per synth is what ``cdk synth`` is, and the only way to read one synth's peak memory: jsii
keeps every object alive until its process exits. Inside the process the app is built and synthesized once
with one tunnel first, which loads the Node.js modules and warms the JIT (``first_synth_s``, a fixed cost
every ``cdk synth`` pays), then the stack of ``count`` tunnels is built and synthesized and timed.
Rounds are interleaved, with the approaches' order rotated every round, so load on the machine falls on
all of them alike.

``python -m benchmarks.synthesis APPROACH COUNT`` is the worker; it prints one JSON line.
"""

import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .approaches import Approach
from .measure import (
    descendants_peak_kib,
    median,
    minified_size,
    own_peak_kib,
    spread,
    stopwatch,
    timed_python,
)

COUNTS = (1, 10, 100)


@dataclass(frozen=True)
class SynthRun:
    """One synth in its own process; times in seconds, memory in KiB."""

    process_s: float
    import_s: float
    first_synth_s: float
    build_s: float
    synth_s: float
    python_peak_kib: int
    node_peak_kib: int
    round_trips: dict[str, int]

    @property
    def app_s(self) -> float:
        """Building and synthesizing the app: the part of a synth that grows with it."""
        return self.build_s + self.synth_s


@dataclass
class Synthesis:
    """Every run of one approach at one tunnel count, with the template they all produced."""

    approach: Approach
    count: int
    template: dict[str, Any]
    runs: list[SynthRun] = field(default_factory=list)

    def median_of(self, name: str) -> float:
        return median([float(getattr(run, name)) for run in self.runs])

    def spread_of(self, name: str) -> float:
        return spread([float(getattr(run, name)) for run in self.runs])

    @property
    def template_bytes(self) -> int:
        return minified_size(self.template)

    @property
    def resource_count(self) -> int:
        return len(self.template["Resources"])

    @property
    def round_trips(self) -> dict[str, int]:
        """The same in every run (the construct code is deterministic); the first run's."""
        return self.runs[0].round_trips


Results = dict[tuple[Approach, int], Synthesis]


def _run(approach: Approach, count: int) -> tuple[SynthRun, dict[str, Any]]:
    process_s, result = timed_python(["-m", __name__, approach.value, str(count)])
    template = result.pop("template")
    return SynthRun(process_s=process_s, **result), template


def measure(rounds: int, counts: Sequence[int] = COUNTS, progress: bool = True) -> Results:
    approaches = list(Approach)
    # The very first process pays for cold disk caches and byte-code compilation; nobody else should.
    _run(approaches[0], counts[0])
    results: Results = {}
    for round_number in range(rounds):
        rotated = approaches[round_number % len(approaches) :] + approaches[: round_number % len(approaches)]
        for count in counts:
            for approach in rotated:
                run, template = _run(approach, count)
                results.setdefault((approach, count), Synthesis(approach, count, template)).runs.append(run)
                if progress:
                    print(
                        f"  synth round {round_number + 1}/{rounds}: {approach.value} x{count}: "
                        f"{run.app_s:.2f} s",
                        file=sys.stderr,
                    )
    return results


def marginal(results: Results, approach: Approach, name: str) -> float:
    """What one more tunnel adds to ``name`` (an attribute of Synthesis), from the 10 -> 100 difference."""
    low, high = results[(approach, 10)], results[(approach, 100)]
    return (float(getattr(high, name)) - float(getattr(low, name))) / (high.count - low.count)


def marginal_median(results: Results, approach: Approach, run_attribute: str) -> float:
    low, high = results[(approach, 10)], results[(approach, 100)]
    return (high.median_of(run_attribute) - low.median_of(run_attribute)) / (high.count - low.count)


def round_trips_per_tunnel(results: Results, approach: Approach) -> dict[str, float]:
    """Round trips each added tunnel makes, by kind, most first."""
    low, high = results[(approach, 10)], results[(approach, 100)]
    kinds = set(low.round_trips) | set(high.round_trips)
    per_tunnel = {
        kind: (high.round_trips.get(kind, 0) - low.round_trips.get(kind, 0)) / (high.count - low.count)
        for kind in kinds
    }
    return dict(sorted(((k, v) for k, v in per_tunnel.items() if v), key=lambda item: -item[1]))


def _worker(approach: Approach, count: int) -> dict[str, Any]:
    with stopwatch() as importing:
        # Importing aws_cdk starts jsii's Node.js process and loads aws-cdk-lib into it.
        from .jsii_round_trips import install  # noqa: PLC0415
        from .stacks import build_app, template_of  # noqa: PLC0415
    round_trips = install()
    with tempfile.TemporaryDirectory() as outdir:
        with stopwatch() as first_synth:
            template_of(build_app(approach, 1, f"{outdir}/warm-up"))
        round_trips.clear()
        with stopwatch() as building:
            app = build_app(approach, count, f"{outdir}/measured")
        with stopwatch() as synthesizing:
            template = template_of(app)
        counted = dict(round_trips)
    return {
        "import_s": importing(),
        "first_synth_s": first_synth(),
        "build_s": building(),
        "synth_s": synthesizing(),
        "python_peak_kib": own_peak_kib(),
        "node_peak_kib": descendants_peak_kib(),
        "round_trips": counted,
        "template": template,
    }


if __name__ == "__main__":
    print(json.dumps(_worker(Approach(sys.argv[1]), int(sys.argv[2]))))
