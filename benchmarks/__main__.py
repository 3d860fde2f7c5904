"""``python -m benchmarks [--quick] [--no-write] [--only PART]``: run every benchmark, print the tables and
the goals, and write docs/benchmarks.md and docs/benchmarks.png.
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from . import (
    api_calls,
    burst,
    chart,
    cold_start,
    create_latency,
    machine,
    proxy,
    proxy_report,
    relay,
    report,
    synthesis,
)
from .goals import Goal
from .handler_env import LocalHandler
from .measure import ROOT
from .tables import Table

DOCS = ROOT / "docs"
CHART = "benchmarks.png"


@dataclass(frozen=True)
class Effort:
    synthesis_rounds: int
    import_runs: int
    create_runs: int
    burst_rounds: int
    relay_rounds: int
    proxy: proxy.Effort


FULL = Effort(
    synthesis_rounds=4, import_runs=25, create_runs=40, burst_rounds=3, relay_rounds=3, proxy=proxy.FULL
)
QUICK = Effort(
    synthesis_rounds=1, import_runs=5, create_runs=10, burst_rounds=1, relay_rounds=1, proxy=proxy.QUICK
)
# Parts that run alone, to check a change against its goals without the whole run.
PARTS = ("synthesis", "import", "burst", "relay", "proxy")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs, for development (noisier figures)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    parser.add_argument(
        "--handler-python",
        default=sys.executable,
        metavar="PATH",
        help="interpreter (with boto3) for the handler's cold import; best the Lambda runtime's version "
        "(default: this one)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=PARTS,
        help="measure only this part (repeatable) and print its tables and goals; writes nothing, except "
        "that proxy rewrites its own section of docs/benchmarks.md and its chart (unless --no-write)",
    )
    return parser


def _step(message: str) -> None:
    print(f"== {message}", file=sys.stderr, flush=True)


def measure(effort: Effort, command: str, handler_python: str) -> report.Measurements:
    facts = machine.facts()
    # Synthesis first, while no local servers run in this process to compete for the CPUs.
    _step(f"synthesis: {effort.synthesis_rounds} round(s) of 9 fresh processes")
    synthesized = synthesis.measure(effort.synthesis_rounds)
    _step(f"handler import: {effort.import_runs} fresh interpreters each")
    imports = cold_start.measure(effort.import_runs, handler_python)
    with LocalHandler() as local:
        _step("AWS calls per operation")
        calls = api_calls.measure(local)
        _step(f"Create latency: {effort.create_runs} of each")
        latency = create_latency.measure(local, effort.create_runs)
        _step(f"bursts of 100 Creates: {effort.burst_rounds} round(s) of {len(burst.Setup)} setups")
        bursts = burst.measure(local, effort.burst_rounds)
    _step(f"data plane relay: {effort.relay_rounds} round(s)")
    relayed = relay.measure(effort.relay_rounds)
    _step("local proxy through the emulator")
    proxied = proxy.measure(effort.proxy)
    return report.Measurements(synthesized, imports, calls, latency, bursts, relayed, proxied, facts, command)


def measure_parts(
    parts: list[str], effort: Effort, handler_python: str, write: bool
) -> tuple[list[Table], list[Goal]]:
    tables: list[Table] = []
    goal_list: list[Goal] = []
    if "synthesis" in parts:
        _step(f"synthesis: {effort.synthesis_rounds} round(s) of 9 fresh processes")
        results = synthesis.measure(effort.synthesis_rounds)
        tables += report.synthesis_tables(results)
        goal_list += report.synthesis_goals(results)
    if "import" in parts:
        _step(f"handler import: {effort.import_runs} fresh interpreters each")
        goal_list += report.import_goals(cold_start.measure(effort.import_runs, handler_python))
    if "burst" in parts:
        with LocalHandler() as local:
            _step(f"bursts of 100 Creates: {effort.burst_rounds} round(s) of {len(burst.Setup)} setups")
            bursts = burst.measure(local, effort.burst_rounds)
        tables.append(report.burst_table(bursts))
        goal_list += report.burst_goals(bursts)
    if "relay" in parts:
        _step(f"data plane relay: {effort.relay_rounds} round(s)")
        relayed = relay.measure(effort.relay_rounds)
        tables.append(report.relay_table(relayed))
        goal_list += report.relay_goals(relayed)
    if "proxy" in parts:
        _step("local proxy through the emulator")
        proxied = proxy.measure(effort.proxy)
        tables.append(proxy_report.table(proxied))
        goal_list += proxy_report.goals(proxied)
        if write:
            proxy_report.write_section(proxied, DOCS / "benchmarks.md")
            written = f"{Path('docs/benchmarks.md')} (proxy section) and {Path('docs') / proxy_report.CHART}"
            print(f"Wrote {written}")
    return tables, goal_list


def _print(tables: list[Table], goal_list: list[Goal]) -> None:
    for table in [*tables, report.goals_table(goal_list)]:
        print(table.text(), end="\n\n")


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    effort = QUICK if arguments.quick else FULL
    if arguments.only:
        tables, goal_list = measure_parts(
            arguments.only, effort, arguments.handler_python, write=not arguments.no_write
        )
        _print(tables, goal_list)
        return 0 if all(goal.passed for goal in goal_list) else 1
    command = "python -m benchmarks" + (" --quick" if arguments.quick else "")
    if arguments.handler_python != sys.executable:
        command += f" --handler-python {arguments.handler_python}"
    measurements = measure(effort, command, arguments.handler_python)
    tables = report.all_tables(measurements)
    goal_list = report.goals(measurements)
    _print([*tables, proxy_report.table(measurements.proxy)], goal_list)
    if not arguments.no_write:
        DOCS.mkdir(exist_ok=True)
        chart.draw(measurements.synthesis, DOCS / CHART)
        proxy_report.draw(measurements.proxy, DOCS / proxy_report.CHART)
        markdown = report.markdown(measurements, tables, goal_list, CHART)
        (DOCS / "benchmarks.md").write_text(markdown)
        print(f"Wrote {Path('docs/benchmarks.md')} and {Path('docs') / CHART}")
    return 0 if all(goal.passed for goal in goal_list) else 1


if __name__ == "__main__":
    sys.exit(main())
