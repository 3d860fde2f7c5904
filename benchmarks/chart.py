"""The README's chart: synthesis time and template size against tunnel count, a line per approach."""

from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")  # no display: the chart is only ever written to a file

# Imported after mpl.use: the backend must be chosen before pyplot loads.
import matplotlib.pyplot as plt
from matplotlib import ticker

from .approaches import Approach
from .synthesis import Results

_STYLE = {
    Approach.SECURE_TUNNEL: {"color": "#1f77b4", "marker": "o"},
    Approach.AWS_CUSTOM_RESOURCE: {"color": "#d62728", "marker": "s"},
    Approach.CFN_TUNNEL: {"color": "#7f7f7f", "marker": "^"},
}


def draw(results: Results, path: Path) -> None:
    counts = sorted({count for _, count in results})
    figure, (time_axis, size_axis) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for approach in Approach:
        runs = [results[(approach, count)] for count in counts]
        style = _STYLE[approach]
        time_axis.plot(counts, [r.median_of("app_s") for r in runs], label=approach.value, **style)
        size_axis.plot(counts, [r.template_bytes / 1024 for r in runs], label=approach.value, **style)
    for axis, title, unit in (
        (time_axis, "Synthesis time (build + synth, median)", "seconds"),
        (size_axis, "Template size (minified JSON)", "KiB"),
    ):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xticks(counts, [str(count) for count in counts])
        # Plain numbers: readers compare values, and 10^-1 reads worse than 0.1.
        axis.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        axis.set_xlabel("tunnels in the stack")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.savefig(path, dpi=120)
    plt.close(figure)
