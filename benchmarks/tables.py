"""A table rendered as aligned text for the terminal and as Markdown for docs/benchmarks.md."""

from dataclasses import dataclass, field


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(cell) for cell in cells])

    def text(self) -> str:
        widths = [max(len(row[i]) for row in [self.headers, *self.rows]) for i in range(len(self.headers))]

        def line(cells: list[str]) -> str:
            first, *rest = cells
            return "  ".join(
                [first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))]
            )

        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        body = [self.title, rule, line(self.headers), rule, *(line(row) for row in self.rows), rule]
        return "\n".join(body + [f"  {note}" for note in self.notes])

    def markdown(self) -> str:
        def line(cells: list[str]) -> str:
            return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

        alignment = ["---"] + ["---:"] * (len(self.headers) - 1)
        body = [
            f"### {self.title}",
            "",
            line(self.headers),
            line(alignment),
            *(line(row) for row in self.rows),
        ]
        if self.notes:
            body += ["", *(f"- {note}" for note in self.notes)]
        return "\n".join(body)


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator else "-"


def with_spread(value: float, relative_spread: float, digits: int = 2) -> str:
    """A median and its relative half interquartile range: ``1.23 ±4%``."""
    return f"{value:.{digits}f} ±{relative_spread:.0%}"
