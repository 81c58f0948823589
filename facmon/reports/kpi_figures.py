"""Every KPI figure with its coverage and verdict, made once for both the API (`/kpis`) and the monthly report
(facmon.reports.kpi_monthly), so the two cannot disagree. Pure: the rows, the InfluxDB figures and the coverage are
read by the callers (facmon.reports.kpi_data, kpi_period, kpi_coverage).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from facmon.reports.kpi import (
    Judged,
    KpiRow,
    KpiTargets,
    Ratio,
    arrival,
    follow_up,
    repair,
    statutory_clock,
)
from facmon.reports.kpi_coverage import WorkOrderCoverage
from facmon.reports.kpi_period import AvailabilityFigure, IntactFigure
from facmon.reports.kpi_verdict import Coverage, Verdict, coverage_reason, met_of, verdict


@dataclass(frozen=True)
class Figure:
    """A work-order KPI: the work orders it counts, its ratio, its coverage, and the verdict on them."""

    judged: Judged
    ratio: Ratio
    coverage: Coverage
    verdict: Verdict
    # Why the verdict is "insufficient data" (the coverage unknown, or how low it is); None otherwise.
    reason: str | None = None

    @property
    def met(self) -> bool | None:
        return met_of(self.verdict)


def figure(judged: Judged, target: float, coverage: Coverage, min_coverage: float) -> Figure:
    ratio = judged.ratio(target)
    judgement = verdict(ratio.value, target, coverage.share, min_coverage)
    reason = coverage_reason(coverage, min_coverage) if judgement == "insufficient data" else None
    return Figure(judged, ratio, coverage, judgement, reason)


@dataclass(frozen=True)
class WorkOrderFigures:
    arrival: Figure
    statutory: Figure
    repair: Figure
    follow_up: Figure


def work_order_figures(
    rows: Sequence[KpiRow],
    start: datetime,
    end: datetime,
    now: datetime,
    targets: KpiTargets,
    coverage: WorkOrderCoverage,
) -> WorkOrderFigures:
    least = targets.min_coverage
    return WorkOrderFigures(
        arrival=figure(arrival(rows, start, end, now), targets.arrival_compliance, coverage.elevators, least),
        statutory=figure(
            arrival(rows, start, end, now, statutory_clock), targets.arrival_compliance, coverage.elevators, least
        ),
        repair=figure(repair(rows, start, end, now), targets.repair_timeliness, coverage.devices, least),
        follow_up=figure(follow_up(rows, start, end), targets.follow_up_rate, coverage.devices, least),
    )


@dataclass(frozen=True)
class Judgement:
    """The coverage and verdict of a figure read from InfluxDB (fire intact rate, elevator availability)."""

    coverage: Coverage
    verdict: Verdict
    reason: str | None = None

    @property
    def met(self) -> bool | None:
        return met_of(self.verdict)


def judge_figure(figure: IntactFigure | AvailabilityFigure, min_coverage: float) -> Judgement:
    if not figure.available:
        return Judgement(Coverage(None, figure.reason), "unavailable", figure.reason)
    value = figure.period_mean if isinstance(figure, IntactFigure) else figure.value
    coverage = Coverage.of(figure.coverage, "coverage unknown")
    judgement = verdict(value, figure.target, coverage.share, min_coverage)
    reason = coverage_reason(coverage, min_coverage) if judgement == "insufficient data" else None
    return Judgement(coverage, judgement, reason)
