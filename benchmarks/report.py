"""Turns the measurements into tables, goals and docs/benchmarks.md."""

from collections.abc import Callable
from dataclasses import dataclass

from . import burst, cold_start, deployment, proxy, proxy_report, relay, synthesis
from .api_calls import SECRETS, TUNNELING, OperationCalls
from .approaches import Approach
from .burst import BurstRuns, Setup
from .cold_start import ColdStart
from .create_latency import CreateLatency
from .goals import Goal
from .measure import median
from .tables import Table, ratio, with_spread
from .template_profile import per_tunnel_parts

ST, ACR, CFN = Approach.SECURE_TUNNEL, Approach.AWS_CUSTOM_RESOURCE, Approach.CFN_TUNNEL
APPROACHES = (ST, ACR, CFN)
MIB = 1024
TOP_PARTS = 10

TOKENS_GO = {
    ST: "Secrets Manager",
    ACR: "custom resource response",
    CFN: "nowhere: no tokens",
}


@dataclass(frozen=True)
class Measurements:
    synthesis: synthesis.Results
    cold_start: ColdStart
    api_calls: list[OperationCalls]
    create_latency: CreateLatency
    bursts: list[BurstRuns]
    relay: relay.Relay
    proxy: proxy.Results
    facts: dict[str, str]
    command: str


def _approach_table(title: str) -> Table:
    return Table(title, ["", *(a.value for a in APPROACHES), "SecureTunnel / AwsCustomResource"])


def _row(table: Table, label: str, values: dict[Approach, float], form: str = "{:.0f}") -> None:
    table.add(label, *(form.format(values[a]) for a in APPROACHES), ratio(values[ST], values[ACR]))


# The synthesis figures per tunnel count: (label, value of one approach's runs, format).
_SYNTHESIS_ROWS: tuple[tuple[str, Callable[[synthesis.Synthesis], float], str], ...] = (
    ("whole process, s", lambda s: s.median_of("process_s"), "{:.2f}"),
    ("Python peak RSS, MiB", lambda s: s.median_of("python_peak_kib") / MIB, "{:.0f}"),
    ("Node.js peak RSS, MiB", lambda s: s.median_of("node_peak_kib") / MIB, "{:.0f}"),
    ("template, bytes", lambda s: s.template_bytes, "{:,.0f}"),
    ("resources", lambda s: s.resource_count, "{:.0f}"),
)


def synthesis_table(results: synthesis.Results) -> Table:
    runs = len(next(iter(results.values())).runs)
    table = _approach_table(f"Synthesis (each in a fresh process; median of {runs} runs, ±half IQR)")
    counts = sorted({count for _, count in results})
    first = {a: median([r.first_synth_s for c in counts for r in results[(a, c)].runs]) for a in APPROACHES}
    start = {a: median([r.import_s for c in counts for r in results[(a, c)].runs]) for a in APPROACHES}
    _row(table, "start of a process (import aws_cdk: jsii loads aws-cdk-lib), s", start, "{:.2f}")
    _row(table, "first synth of a process (1 tunnel, fixed cost), s", first, "{:.2f}")
    for count in counts:
        cell = {a: results[(a, count)] for a in APPROACHES}
        label = f"{count} tunnel{'s' if count > 1 else ''}"
        app = {a: s.median_of("app_s") for a, s in cell.items()}
        table.add(
            f"{label}: build + synth, s",
            *(with_spread(app[a], cell[a].spread_of("app_s")) for a in APPROACHES),
            ratio(app[ST], app[ACR]),
        )
        for suffix, value, form in _SYNTHESIS_ROWS:
            _row(table, f"{label}: {suffix}", {a: float(value(s)) for a, s in cell.items()}, form)
    table.notes += [
        "build + synth: constructing the app and app.synth(), after a 1-tunnel warm-up synth in the same "
        "process; whole process: what `cdk synth` waits for (interpreter, jsii, warm-up, measured synth).",
        "Peak RSS: the Python process's own, and the sum over jsii's Node.js processes (read from /proc "
        "VmHWM before exit); their sum bounds the combined peak from above.",
    ]
    return table


def marginal_table(results: synthesis.Results) -> Table:
    table = _approach_table("Per added tunnel (from the 10 -> 100 difference)")
    rows: tuple[tuple[str, Callable[[Approach], float], str], ...] = (
        ("template bytes", lambda a: synthesis.marginal(results, a, "template_bytes"), "{:,.0f}"),
        ("resources", lambda a: synthesis.marginal(results, a, "resource_count"), "{:.2f}"),
        ("build + synth, ms", lambda a: 1000 * synthesis.marginal_median(results, a, "app_s"), "{:.1f}"),
        (
            "jsii round trips (Python -> Node.js)",
            lambda a: sum(synthesis.round_trips_per_tunnel(results, a).values()),
            "{:.0f}",
        ),
    )
    for label, value, form in rows:
        _row(table, label, {a: value(a) for a in APPROACHES}, form)
    return table


def deployment_table(results: synthesis.Results) -> Table:
    count = max(c for _, c in results)
    shapes = {a: deployment.shape(results[(a, count)].template, count) for a in APPROACHES}
    table = _approach_table(f"Deployment shape, {count} tunnels (from the templates)")
    table.add("client access tokens go to", *(TOKENS_GO[a] for a in APPROACHES), "")
    rows = (
        ("resources", "resources"),
        ("Lambda functions", "functions"),
        ("custom-resource events per Create of the stack", "custom_resources"),
        ("Lambda invocations per event", "invocations_per_event"),
        (f"Lambda invocations: Create all {count}", "create_invocations"),
        ("Lambda invocations: Update one in place", "update_invocations"),
        ("Lambda invocations: Update one by replacement", "replace_invocations"),
        (f"Lambda invocations: Delete all {count}", "delete_invocations"),
    )
    for label, name in rows:
        _row(table, label, {a: float(getattr(shapes[a], name)) for a in APPROACHES})
    for name, limit, limit_label in (
        ("resource_count", deployment.MAX_RESOURCES, f"{deployment.MAX_RESOURCES} resources"),
        ("template_bytes", deployment.MAX_TEMPLATE_BYTES, "1 MB template"),
    ):
        fits = {}
        for a in APPROACHES:
            per_tunnel = synthesis.marginal(results, a, name)
            fixed = float(getattr(results[(a, 10)], name)) - 10 * per_tunnel
            fits[a] = float(deployment.tunnels_per_stack(fixed, per_tunnel, limit))
        _row(table, f"tunnels per stack ({limit_label})", fits, "{:,.0f}")
    table.notes += [
        "SecureTunnel events go through the CDK provider framework: its function, then the handler. "
        "AwsCustomResource has no on_update here, so an Update invokes it and changes nothing.",
    ]
    return table


def handler_table(m: Measurements) -> Table:
    cold, latency = m.cold_start, m.create_latency
    table = Table("The handler", ["", "handler", "baseline", "handler / baseline"])
    table.add(
        "cold import, ms (baseline: bare `import boto3`)",
        with_spread(1000 * cold.handler.median_s, cold.spread, 0),
        f"{1000 * cold.bare.median_s:.0f}",
        f"{cold.time_ratio:.2f}x",
    )
    table.add(
        "cold import, CPU ms",
        f"{1000 * cold.handler.median_cpu_s:.0f}",
        f"{1000 * cold.bare.median_cpu_s:.0f}",
        f"{cold.cpu_ratio:.2f}x",
    )
    table.add(
        "peak RSS after the import, MiB",
        f"{cold.handler.median_peak_kib / MIB:.1f}",
        f"{cold.bare.median_peak_kib / MIB:.1f}",
        f"{cold.memory_ratio:.2f}x",
    )
    table.add(
        "Create, ms (baseline: OpenTunnel + PutSecretValue with boto3)",
        with_spread(1000 * latency.handler_median_s, latency.spread, 1),
        f"{1000 * latency.direct_median_s:.1f}",
        f"{latency.ratio:.2f}x",
    )
    table.notes += [
        f"Imports: {len(cold.handler.seconds)} fresh interpreters each, alternating; the handler from a copy "
        f"of lambda_src without byte-code (as the Lambda asset ships it); Python {cold.python}. Ratios are "
        "medians of the ratios of back-to-back pairs, each pair from its own depth of the Python stack "
        f"(0 to {cold_start.STACK_SPAN} frames), as where Lambda's bootstrap imports from is unknown.",
        f"Create: {len(latency.handler_s)} of each, alternating, warm clients, against the local emulator "
        "and moto (about a millisecond a call, so the handler's own overhead is at its most visible).",
    ]
    return table


def api_calls_table(m: Measurements) -> Table:
    table = Table(
        "AWS calls per operation (SecureTunnel handler, counted with botocore's before-call event)",
        ["operation", "IoT", "Secrets Manager", "calls", "as expected"],
    )
    for result in m.api_calls:
        expected = "-" if result.expected is None else ("yes" if result.meets_expectation else "NO")
        table.add(result.operation, result.count(TUNNELING), result.count(SECRETS), result.summary, expected)
    table.notes.append(
        "A replacement's old tunnel is closed by the Delete CloudFormation sends in its cleanup phase "
        "(the Delete row). AwsCustomResource: 1 call per Create and Delete, nothing on Update; CfnTunnel: "
        "CloudFormation's own calls."
    )
    return table


def burst_table(bursts: list[BurstRuns]) -> Table:
    first = bursts[0].runs[0]
    rounds = len(bursts[0].runs)
    table = Table(
        f"Burst: {first.tunnels} Creates at once, OpenTunnel limited to {first.per_second:g}/s (other "
        f"operations unlimited); the median of {rounds} run{'s' if rounds > 1 else ''}"
        + (" (the slower middle one)" if rounds % 2 == 0 else ""),
        [
            "clients",
            "total, s",
            "ideal, s",
            "total / ideal",
            "worst",
            "OpenTunnel throttled",
            "most tries by one Create",
            "slowest Create, s",
            "failed Creates (+ leaked tunnels)",
        ],
    )
    for runs in bursts:
        typical = runs.typical
        kinds = ", ".join(f"{kind} x{n}" for kind, n in runs.failure_kinds.most_common())
        table.add(
            runs.setup.value,
            f"{typical.total_s:.1f}",
            f"{typical.ideal_s:.1f}",
            ratio(typical.total_s, typical.ideal_s),
            f"{runs.worst_ratio:.2f}x",
            f"{runs.median_throttled:.0f}",
            max(max(burst.attempts) for burst in runs.runs),
            f"{max(max(burst.create_s) for burst in runs.runs):.1f}",
            f"{runs.problems}" + (f" ({kinds})" if kinds else ""),
        )
    table.notes += [
        "ideal: the limit's own pace, (tunnels - its burst of 10) / 10 per second.",
        "shared: one process's threads share the handler's cached clients (fresh), and so one connection "
        "pool; a client per invocation: as Lambda runs concurrent invocations, "
        f"each in its own environment; shared, warm: shared clients that just made {burst.WARM_UP_CREATES} "
        "fast Creates (diagnostic, no goal).",
        "A ThrottlingException failure is a Create still throttled when the handler's 90 s of retries for "
        "one call ran out (tunnel_lambda.aws_clients).",
    ]
    return table


def profile_tables(results: synthesis.Results) -> list[Table]:
    tables = []
    for approach in (ST, ACR):
        small, large = results[(approach, 10)], results[(approach, 100)]
        parts = per_tunnel_parts(small.template, large.template, large.count - small.count)
        table = Table(f"Template bytes per added tunnel, {approach.value}: largest parts", ["part", "bytes"])
        for part, size in list(parts.items())[:TOP_PARTS]:
            table.add(part, f"{size:.0f}")
        rest = list(parts.values())[TOP_PARTS:]
        table.add(f"{len(rest)} smaller parts", f"{sum(rest):.0f}")
        table.add("total", f"{sum(parts.values()):.0f}")
        tables.append(table)
    trips = synthesis.round_trips_per_tunnel(results, ST)
    table = Table("jsii round trips per added tunnel, SecureTunnel (request kind)", ["request", "per tunnel"])
    for kind, count in list(trips.items())[:TOP_PARTS]:
        table.add(kind, f"{count:.1f}")
    rest = list(trips.values())[TOP_PARTS:]
    table.add(f"{len(rest)} other kinds", f"{sum(rest):.1f}")
    table.add("total", f"{sum(trips.values()):.1f}")
    others = ", ".join(
        f"{a.value} {sum(synthesis.round_trips_per_tunnel(results, a).values()):.0f}" for a in (ACR, CFN)
    )
    table.notes.append(f"For comparison: {others}.")
    tables.append(table)
    return tables


def synthesis_goals(results: synthesis.Results) -> list[Goal]:
    st_bytes = synthesis.marginal(results, ST, "template_bytes")
    acr_bytes = synthesis.marginal(results, ACR, "template_bytes")
    st_time = results[(ST, 100)].median_of("app_s")
    acr_time = results[(ACR, 100)].median_of("app_s")
    return [
        Goal(
            "template bytes per added tunnel vs AwsCustomResource",
            st_bytes / acr_bytes,
            0.6,
            f"{st_bytes:.0f} vs {acr_bytes:.0f} bytes, with a secret and a grant it lacks",
        ),
        Goal(
            "synthesis time, 100 tunnels, vs AwsCustomResource",
            st_time / acr_time,
            1.0,
            f"{st_time:.2f} vs {acr_time:.2f} s build + synth",
        ),
    ]


def goals(m: Measurements) -> list[Goal]:
    creates = [r for r in m.api_calls if r.expected is not None]
    made = sum(len(r.calls) for r in creates)
    expected = sum(len(r.expected or []) for r in creates)
    return [
        *synthesis_goals(m.synthesis),
        *import_goals(m.cold_start),
        Goal(
            "Create calls vs 1 OpenTunnel + a read and a compare-and-set write per secret",
            made / expected,
            1.0,
            "; ".join(f"{r.operation}: {r.summary}" for r in creates),
        ),
        *burst_goals(m.bursts),
        *relay_goals(m.relay),
        *proxy_report.goals(m.proxy),
    ]


def import_goals(cold: ColdStart) -> list[Goal]:
    return [
        Goal(
            "handler import time vs bare `import boto3`",
            cold.time_ratio,
            1.2,
            f"{1000 * cold.handler.median_s:.0f} vs {1000 * cold.bare.median_s:.0f} ms",
        ),
        Goal(
            "handler import peak RSS vs bare `import boto3`",
            cold.memory_ratio,
            1.2,
            f"{cold.handler.median_peak_kib / MIB:.1f} vs {cold.bare.median_peak_kib / MIB:.1f} MiB",
        ),
    ]


def burst_goals(burst_runs: list[BurstRuns]) -> list[Goal]:
    bursts = {runs.setup: runs for runs in burst_runs}
    return [
        goal
        for setup in (Setup.SHARED, Setup.PER_INVOCATION)
        for goal in (
            Goal(
                f"100-tunnel burst vs ideal rate-limited time ({setup.value})",
                bursts[setup].typical.ratio,
                1.5,
                f"{bursts[setup].typical.total_s:.1f} vs {bursts[setup].typical.ideal_s:.1f} s",
            ),
            Goal(
                f"burst: failed Creates and leaked tunnels ({setup.value})",
                float(bursts[setup].problems),
                0.0,
                f"over {len(bursts[setup].runs)} run(s): "
                + (", ".join(f"{k} x{n}" for k, n in bursts[setup].failure_kinds.items()) or "none failed"),
            ),
        )
    ]


def relay_table(measured: relay.Relay) -> Table:
    rounds = len(measured.one_tunnel_runs)
    table = Table(
        f"Data plane relay through the emulator, loopback (median of {rounds} run(s))", ["", "measured"]
    )
    table.add("1 tunnel, source to destination, MB/s", f"{measured.one_tunnel:.0f}")
    table.add("1 tunnel: emulator CPU seconds per 100 MB", f"{measured.one_tunnel_cpu:.2f}")
    table.add("1 tunnel: what one core of the emulator relays, MB/s", f"{100 / measured.one_tunnel_cpu:.0f}")
    table.add(f"{relay.CONCURRENT_TUNNELS} tunnels at once, all together, MB/s", f"{measured.concurrent:.0f}")
    table.add(
        f"{relay.CONCURRENT_TUNNELS} tunnels: emulator CPU seconds per 100 MB",
        f"{measured.concurrent_cpu:.2f}",
    )
    table.add(
        f"handshakes per second ({relay.HANDSHAKES} upgrades, 10 at a time, each closed after SERVICE_IDS)",
        f"{measured.handshake_rate:.0f}",
    )
    table.notes += [
        "The emulator in the benchmark's process; the sources and the destinations each in a process of "
        f"their own, raw protocol clients (websockets + protobuf); {relay.ONE_TUNNEL_BYTES // relay.MB} MB "
        f"through 1 tunnel, {relay.PER_TUNNEL_BYTES // relay.MB} MB through each of "
        f"{relay.CONCURRENT_TUNNELS}; 64,512-byte payloads, two messages to a 129 KiB frame.",
        "MB/s timed at the destinations from the first payload byte to the last; 1 MB = 10^6 bytes. CPU "
        "seconds: the emulator process's user + system time over the same run (its relay is one thread); "
        "what one core relays is 100 MB over that, the rate the emulator would reach with a core to itself.",
    ]
    return table


def relay_goals(measured: relay.Relay) -> list[Goal]:
    return [
        Goal(
            f"data plane relay, 1 tunnel: {relay.GOAL_MB_S:.0f} MB/s over the measured rate",
            relay.GOAL_MB_S / measured.one_tunnel,
            1.0,
            f"{measured.one_tunnel:.0f} MB/s (at least {relay.GOAL_MB_S:.0f})",
        )
    ]


def goals_table(goal_list: list[Goal]) -> Table:
    table = Table("Goals", ["goal", "measured", "limit", "result", "figures"])
    for goal in goal_list:
        table.add(goal.name, f"{goal.measured:.2f}", f"<= {goal.limit:g}", goal.verdict, goal.detail)
    return table


def synthesis_tables(results: synthesis.Results) -> list[Table]:
    """The tables made from the synthesis runs alone (``python -m benchmarks --only synthesis``)."""
    return [
        synthesis_table(results),
        marginal_table(results),
        deployment_table(results),
        *profile_tables(results),
    ]


def all_tables(m: Measurements) -> list[Table]:
    synthesized, marginal, shape, *profiles = synthesis_tables(m.synthesis)
    return [
        synthesized,
        marginal,
        shape,
        handler_table(m),
        api_calls_table(m),
        burst_table(m.bursts),
        relay_table(m.relay),
        *profiles,
    ]


_INTRO = """# Benchmarks

SecureTunnel beside the two other ways to get an IoT secure tunnel from a CDK app: a hand-written
`AwsCustomResource` calling openTunnel/closeTunnel (what people write today, its tokens in the custom
resource's response) and the L1 `aws_iotsecuretunneling.CfnTunnel` (no tokens at all). All three build
the same stacks in one run (N tunnels to N things for SSH with a 12-hour lifetime, plus an operator role;
SecureTunnel with its defaults and `grant_read_source_token(operator)`), so the ratios hold on a noisy
machine even where the absolute figures do not.

Generated by `{command}` (`make bench`; `--quick` for fewer runs); nothing here calls AWS. The handler
runs in this process against the local IoT Secure Tunneling emulator and moto (`cdk_secure_tunnel.testing`).

- Synthesis: every synth in a fresh process (`cdk synth` is one, and jsii frees nothing before it exits),
  after a 1-tunnel warm-up synth in that process; rounds interleave the approaches in rotating order.
  Marginal costs come from the 10 -> 100 tunnel difference.
- Handler import: fresh interpreters, alternating handler and bare boto3; the handler from a copy of
  `lambda_src` without byte-code, as the Lambda asset ships it; each pair from its own depth of the
  Python stack (see `benchmarks/cold_start.py`).
- AWS calls: botocore's `before-call` event on the handler's own (cached) clients: the handler runs
  unmodified.
- Burst: threads call `on_event` with CloudFormation-shaped Create events, all released at once.
- Relay: the emulator's data plane between raw protocol clients in processes of their own
  (`benchmarks/relay.py`); `--only relay` measures just that.

![Synthesis time and template size against tunnel count]({chart})
"""


def markdown(m: Measurements, tables: list[Table], goal_list: list[Goal], chart_name: str) -> str:
    facts = "\n".join(f"| {name} | {value} |" for name, value in m.facts.items())
    sections = [
        _INTRO.format(command=m.command, chart=chart_name),
        goals_table(goal_list).markdown(),
        "",
        *(section for table in tables for section in (table.markdown(), "")),
        proxy_report.section(m.proxy),
        "",
        "### Machine",
        "",
        "| | |",
        "| --- | --- |",
        facts,
        "",
    ]
    return "\n".join(sections)
