"""The proxy benchmark's table, goals, chart and section of docs/benchmarks.md (issue 12's goals)."""

import re
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")  # no display: the chart is only ever written to a file

import matplotlib.pyplot as plt

from .goals import Goal
from .measure import median
from .proxy import Results
from .tables import Table

CHART = "proxy.png"
BEGIN, END = "<!-- proxy:begin -->", "<!-- proxy:end -->"

GOAL_MB_S = 50.0
GOAL_ADDED_P50_MS = 1.0
GOAL_CPU_PER_100MB = 0.6
GOAL_RSS_MIB = 60.0
GOAL_LISTENING_S = 1.0

INTRO = f"""## Local proxy

`cdk-secure-tunnel connect` (source) and `cdk-secure-tunnel device` (destination) on loopback through the
emulator's data plane, each party a process of its own, beside raw TCP to the same target
(`benchmarks/proxy.py`; `python -m benchmarks --only proxy` measures just this and rewrites this section
and [the chart]({CHART})). The clients and the target are small asyncio programs; the raw TCP figures are
theirs, the ceiling any proxy in between could reach here.

![Local proxy throughput and round trips beside raw TCP]({CHART})
"""


def table(results: Results) -> Table:
    rtt = results.rtt_ms
    built = Table("Local proxy through the emulator, loopback", ["", "tunnel", "raw TCP"])
    built.add("bulk, 1 connection, MB/s", f"{results.bulk_1:.0f}", f"{results.raw_1:.0f}")
    built.add(
        "bulk, 10 connections at once, MB/s (all together)", f"{results.bulk_10:.0f}", f"{results.raw_10:.0f}"
    )
    built.add("round trip, 64 bytes, p50 ms", f"{rtt['tunnel'][0]:.2f}", f"{rtt['raw TCP'][0]:.2f}")
    built.add("round trip, 64 bytes, p99 ms", f"{rtt['tunnel'][1]:.2f}", f"{rtt['raw TCP'][1]:.2f}")
    for side in ("source", "destination"):
        built.add(f"{side} proxy: CPU seconds per 100 MB", f"{results.cpu_per_100mb[side]:.2f}", "-")
        built.add(f"{side} proxy: MB relayed per CPU second", f"{100 / results.cpu_per_100mb[side]:.0f}", "-")
        built.add(f"{side} proxy: peak RSS, MiB", f"{results.peak_rss_mib[side]:.1f}", "-")
    built.add(
        "emulator: CPU seconds per 100 MB (its relay, for comparison)",
        f"{results.emulator_cpu_per_100mb:.2f}",
        "-",
    )
    starts = results.start_to_listening_s
    built.add(f"connect: start to listening, s (median of {len(starts)})", f"{median(starts):.2f}", "-")
    effort = results.effort
    built.notes += [
        f"{effort.bulk_mb} MB in each bulk run (1 MB = 10^6 bytes), sent client -> target, timed "
        f"until the target acknowledges the last byte; {effort.round_trips} round trips after 50 warm-up.",
        "CPU seconds: each process's user + system time (/proc) over both bulk runs, per 100 MB relayed. "
        "Peak RSS: VmHWM after all runs. Start to listening: from starting `connect` (Python start-up, "
        "boto3, reading the secret, the WebSocket handshake) to its `listening:` line.",
        "All five processes share the machine's cores (see Machine), so the tunnel's MB/s is bounded by "
        "whichever of them is busiest: compare MB per CPU second. The 1-minute load average was "
        f"{results.load[0]:.1f} before and {results.load[1]:.1f} after (other work on the same cores): "
        "wall-clock figures (MB/s, round trips, start-up) move with it, CPU seconds much less.",
    ]
    return built


def goals(results: Results) -> list[Goal]:
    return [
        Goal(
            f"proxy bulk, 1 connection: {GOAL_MB_S:.0f} MB/s over the measured rate",
            GOAL_MB_S / results.bulk_1,
            1.0,
            f"{results.bulk_1:.0f} MB/s (raw TCP {results.raw_1:.0f}; 10 connections {results.bulk_10:.0f})",
        ),
        Goal(
            "proxy round trip, 64 bytes: p50 added to raw TCP's, ms",
            results.added_p50_ms,
            GOAL_ADDED_P50_MS,
            f"{results.rtt_ms['tunnel'][0]:.2f} vs {results.rtt_ms['raw TCP'][0]:.2f} ms",
        ),
        *(
            Goal(
                f"proxy CPU seconds per 100 MB, {side}",
                results.cpu_per_100mb[side],
                GOAL_CPU_PER_100MB,
                f"{100 / results.cpu_per_100mb[side]:.0f} MB per CPU second",
            )
            for side in ("source", "destination")
        ),
        *(
            Goal(f"proxy peak RSS, {side}, MiB", results.peak_rss_mib[side], GOAL_RSS_MIB, "VmHWM")
            for side in ("source", "destination")
        ),
        Goal(
            "connect: start to listening, s",
            median(results.start_to_listening_s),
            GOAL_LISTENING_S,
            ", ".join(f"{s:.2f}" for s in results.start_to_listening_s),
        ),
    ]


def draw(results: Results, path: Path) -> None:
    figure, (rate_axis, rtt_axis) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    labels = ["1 connection", "10 connections"]
    positions = range(len(labels))
    rate_axis.bar(
        [p - 0.2 for p in positions], [results.bulk_1, results.bulk_10], 0.4, label="through the tunnel"
    )
    rate_axis.bar([p + 0.2 for p in positions], [results.raw_1, results.raw_10], 0.4, label="raw TCP")
    rate_axis.axhline(GOAL_MB_S, color="#d62728", linestyle="--", label=f"goal: {GOAL_MB_S:.0f} MB/s")
    rate_axis.set_xticks(list(positions), labels)
    rate_axis.set_ylabel("MB/s")
    rate_axis.set_title("Bulk transfer")
    paths = ["tunnel", "raw TCP"]
    for offset, (index, name) in zip((-0.2, 0.2), enumerate(("p50", "p99")), strict=True):
        rtt_axis.bar(
            [p + offset for p in range(len(paths))],
            [results.rtt_ms[p][index] for p in paths],
            0.4,
            label=name,
        )
    rtt_axis.set_xticks(range(len(paths)), ["through the tunnel", "raw TCP"])
    rtt_axis.set_ylabel("ms")
    rtt_axis.set_title("Round trip, 64 bytes")
    for axis in (rate_axis, rtt_axis):
        axis.grid(True, axis="y", alpha=0.3)
        axis.legend()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def section(results: Results, *, with_goals: bool = False) -> str:
    """The Markdown between the markers: intro, chart, (goals,) table. The whole run's page lists the
    goals with all the others; ``--only proxy`` rewrites just this section, with its own goals."""
    from .report import goals_table  # noqa: PLC0415  (report imports this module)

    parts = [BEGIN, INTRO]
    if with_goals:
        parts += [goals_table(goals(results)).markdown().replace("### Goals", "### Local proxy goals"), ""]
    return "\n".join([*parts, table(results).markdown(), END])


def write_section(results: Results, document: Path) -> None:
    """Replace the proxy section of ``document`` (or add it before the machine's facts)."""
    draw(results, document.parent / CHART)
    text = document.read_text() if document.exists() else ""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    written = section(results, with_goals=True)
    if pattern.search(text):
        text = pattern.sub(lambda _: written, text)
    elif "### Machine" in text:
        text = text.replace("### Machine", written + "\n\n### Machine", 1)
    else:
        text += "\n" + written + "\n"
    document.write_text(text)
