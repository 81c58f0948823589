"""Contract KPIs (DOMAIN.md "KPI formulas") as pure functions over work-order rows and intact-rate samples.

Every figure comes with its numerator, denominator and target, so a report can show "97 of 98" and not only 99%.
Which work orders count:

- cancelled work orders count nowhere (a cancellation records why, e.g. a false alarm: there was nothing to repair);
- arrival compliance: elevator work orders detected in the period, except periodic checks (an overdue maintenance
  visit owes no 20-minute arrival); one still waiting for a technician and still inside its window is not decided
  yet and is left out until it is;
- repair timeliness: work orders whose repair deadline falls in the period and has passed; the repair deadline is
  the profile's `resolved` clock when it has one, else the work order's main deadline (`due_at`);
- follow-up visit rate: work orders resolved in the period, and whether any follow-up was recorded for them.

The `*_decisions` functions give the work orders each figure counts, so a report can list the ones behind a miss.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from facmon.workorders.tables import Category, WorkOrderStatus


class KpiTargets(BaseSettings):
    """Contract targets (DOMAIN.md service targets), overridable per deployment as FACMON_KPI_* variables."""

    model_config = SettingsConfigDict(env_prefix="FACMON_KPI_", extra="ignore", frozen=True)

    arrival_within: timedelta = timedelta(minutes=20)
    arrival_compliance: float = Field(default=1.0, ge=0, le=1)
    repair_timeliness: float = Field(default=0.99, ge=0, le=1)
    follow_up_rate: float = Field(default=0.30, ge=0, le=1)
    fire_intact_rate: float = Field(default=1.0, ge=0, le=1)
    # Elevator fault downtime at most 0.5 % a quarter: availability at least 99.5 %.
    elevator_availability: float = Field(default=0.995, ge=0, le=1)


@dataclass(frozen=True)
class KpiRow:
    """What the KPIs need of one work order."""

    kind: str
    status: str
    detected_at: datetime
    on_site_at: datetime | None
    resolved_at: datetime | None
    repair_due_at: datetime
    follow_ups: int
    # Which work order, so a report can name the ones behind a missed target.
    id: int = 0
    device: str = ""
    title: str = ""
    category: str = Category.REPAIR.value


@dataclass(frozen=True)
class Ratio:
    numerator: int
    denominator: int
    target: float

    @property
    def value(self) -> float | None:
        return None if self.denominator == 0 else self.numerator / self.denominator

    @property
    def met(self) -> bool | None:
        value = self.value
        return None if value is None else value >= self.target


def _counted(rows: Iterable[KpiRow]) -> list[KpiRow]:
    return [r for r in rows if r.status != WorkOrderStatus.CANCELLED]


@dataclass(frozen=True)
class Decided:
    """A work order a KPI counts, and whether it counts in the numerator (in time, followed up)."""

    row: KpiRow
    ok: bool


def arrival_decisions(
    rows: Iterable[KpiRow], start: datetime, end: datetime, now: datetime, targets: KpiTargets
) -> list[Decided]:
    decided = []
    for r in _counted(rows):
        if r.kind != "elevator" or r.category == Category.CHECK or not start <= r.detected_at < end:
            continue
        deadline = r.detected_at + targets.arrival_within
        in_time = r.on_site_at is not None and r.on_site_at <= deadline
        if not in_time and r.on_site_at is None and now <= deadline:
            continue  # still inside its window: not decided yet
        decided.append(Decided(r, in_time))
    return decided


def repair_decisions(
    rows: Iterable[KpiRow], start: datetime, end: datetime, now: datetime, targets: KpiTargets
) -> list[Decided]:
    decided = []
    for r in _counted(rows):
        if not start <= r.repair_due_at < end:
            continue
        in_time = r.resolved_at is not None and r.resolved_at <= r.repair_due_at
        if not in_time and now <= r.repair_due_at:
            continue  # due later today, say: not decided yet
        decided.append(Decided(r, in_time))
    return decided


def follow_up_decisions(rows: Iterable[KpiRow], start: datetime, end: datetime) -> list[Decided]:
    resolved = [r for r in _counted(rows) if r.resolved_at is not None and start <= r.resolved_at < end]
    return [Decided(r, r.follow_ups > 0) for r in resolved]


def _ratio(decided: Sequence[Decided], target: float) -> Ratio:
    return Ratio(sum(d.ok for d in decided), len(decided), target)


def arrival_compliance(
    rows: Iterable[KpiRow], start: datetime, end: datetime, now: datetime, targets: KpiTargets
) -> Ratio:
    return _ratio(arrival_decisions(rows, start, end, now, targets), targets.arrival_compliance)


def repair_timeliness(
    rows: Iterable[KpiRow], start: datetime, end: datetime, now: datetime, targets: KpiTargets
) -> Ratio:
    return _ratio(repair_decisions(rows, start, end, now, targets), targets.repair_timeliness)


def follow_up_rate(rows: Iterable[KpiRow], start: datetime, end: datetime, targets: KpiTargets) -> Ratio:
    return _ratio(follow_up_decisions(rows, start, end), targets.follow_up_rate)


@dataclass(frozen=True)
class WeightedMean:
    mean: float | None
    # Seconds of [start, end) the samples cover (from the first known value on).
    covered_s: float


def time_weighted_mean(samples: Sequence[tuple[datetime, float]], start: datetime, end: datetime) -> WeightedMean:
    """Mean of a step function over [start, end): each sample's value holds until the next sample.

    A sample at or before `start` gives the value at the start; without one, the mean covers the time from the first
    sample on (`covered_s` says how much). Samples must be in time order.
    """
    if end <= start:
        raise ValueError("the period must end after it starts")
    total = 0.0
    covered = 0.0
    for i, (t, value) in enumerate(samples):
        following = samples[i + 1][0] if i + 1 < len(samples) else end
        lo, hi = max(t, start), min(following, end)
        if hi <= lo:
            continue
        seconds = (hi - lo).total_seconds()
        total += value * seconds
        covered += seconds
    return WeightedMean(None if covered == 0 else total / covered, covered)
