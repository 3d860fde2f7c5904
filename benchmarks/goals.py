"""The goals of issue #5, each a measured ratio against its limit."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Goal:
    name: str
    measured: float
    limit: float
    # How the figures were obtained, shown beside the ratio.
    detail: str

    @property
    def passed(self) -> bool:
        return self.measured <= self.limit

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "MISS"
