"""A figure's verdict from its value, its target and its coverage (docs/kpis.md, "Coverage and insufficient data").

The verdict is decided in this order, the first that applies:

1. `unavailable`: the figure could not be made (InfluxDB not configured or not answering, for the figures read from
   it); the reason says why.
2. `no data`: nothing to count (no work order due, no scheduled elevator): there is no value to judge.
3. `insufficient data`: the coverage is unknown, or below the threshold (`KpiTargets.min_coverage`): whatever the
   value says, it is not "met".
4. `met` when the value reaches the target, else `missed`.

Coverage is compared as shown (rounded to 4 places), so the number printed beside a verdict explains it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Verdict = Literal["met", "missed", "insufficient data", "no data", "unavailable"]

COVERAGE_PLACES = 4


def rounded(share: float | None) -> float | None:
    return None if share is None else round(min(1.0, max(0.0, share)), COVERAGE_PLACES)


@dataclass(frozen=True)
class Coverage:
    """The share of a period with data to judge by (0..1, rounded); None when it is unknown, with the reason."""

    share: float | None
    reason: str | None = None

    @staticmethod
    def of(share: float | None, reason: str | None = None) -> Coverage:
        return Coverage(rounded(share), reason if share is None else None)


def verdict(value: float | None, target: float, coverage: float | None, min_coverage: float) -> Verdict:
    """The verdict of a figure that could be made (see the module's order)."""
    if value is None:
        return "no data"
    if coverage is None or coverage < min_coverage:
        return "insufficient data"
    return "met" if value >= target else "missed"


def met_of(judgement: Verdict) -> bool | None:
    """`met` as the API has always shown it: true or false only when the verdict is met or missed."""
    return {"met": True, "missed": False}.get(judgement)


def coverage_reason(coverage: Coverage, min_coverage: float) -> str | None:
    """Why a figure is "insufficient data", in words for the report."""
    if coverage.share is None:
        return coverage.reason or "coverage unknown"
    if coverage.share < min_coverage:
        return f"coverage {coverage.share:.2%} is below {min_coverage:.0%}"
    return None
