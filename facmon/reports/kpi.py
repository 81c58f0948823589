"""Contract KPIs (docs/kpis.md) as pure functions over work-order rows and intact-rate samples.

Every figure comes with its numerator, denominator and target, so a report can show "97 of 98" and not only 99%.
The work-order figures judge each work order by its own stored clocks (the deadlines it got from its SLA profile
when it opened), as facmon.workorders.sla.clock_compliance does for the work order's page:

- a clock is met when its milestone was reached at or before its deadline, missed when the deadline passed without
  it, and pending while the deadline is ahead: pending clocks are in no figure, they are counted beside it;
- a cancellation stops only the clocks still running: one whose deadline had not passed at the cancellation leaves
  the figure, one already met or missed keeps its outcome (a work order cancelled after its deadline keeps the miss);
- arrival compliance: elevator work orders detected in the period, periodic checks excepted, by their contract
  on-site clock (`contract_clock`) and, apart, by their statutory one (`statutory_clock`, when they have one);
- repair timeliness: work orders whose repair clock (`repair_clock`) falls due in the period;
- follow-up visit rate: work orders resolved in the period, not cancelled, and whether any follow-up was recorded.

`Judged.decided` lists the work orders a figure counts, so a report can name the ones behind a miss.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from facmon.workorders.sla import ClockState, clock_compliance
from facmon.workorders.tables import Category, Milestone, WorkOrderStatus

# The clock of the elevator profiles that carries the regulator's ceiling (sla.yaml: elevator.entrapment).
STATUTORY_CLOCK = "statutory_on_site"


class KpiTargets(BaseSettings):
    """Contract targets (DOMAIN.md service targets), overridable per deployment as FACMON_KPI_* variables."""

    model_config = SettingsConfigDict(env_prefix="FACMON_KPI_", extra="ignore", frozen=True)

    arrival_compliance: float = Field(default=1.0, ge=0, le=1)
    repair_timeliness: float = Field(default=0.99, ge=0, le=1)
    follow_up_rate: float = Field(default=0.30, ge=0, le=1)
    fire_intact_rate: float = Field(default=1.0, ge=0, le=1)
    # Elevator fault downtime at most 0.5 % a quarter: availability at least 99.5 %.
    elevator_availability: float = Field(default=0.995, ge=0, le=1)
    # Below this share of the period with data, a figure's verdict is "insufficient data", never "met".
    min_coverage: float = Field(default=0.95, ge=0, le=1)
    # Retired: arrival is judged by each work order's own SLA clocks. Read only to refuse it with the reason, so a
    # deployment that set it does not believe it still applies.
    arrival_within: str | None = None

    @model_validator(mode="after")
    def _retired(self) -> KpiTargets:
        if self.arrival_within is not None:
            raise ValueError(
                "FACMON_KPI_ARRIVAL_WITHIN is no longer read: arrival is judged by each work order's own SLA clocks "
                "(the profiles of sla.yaml, or the file given to facmon rules --sla); remove the variable"
            )
        return self


@dataclass(frozen=True)
class ClockFacts:
    """One stored SLA clock of a work order (facmon.workorders.tables.WorkOrderClock), as the KPIs read it."""

    name: str
    milestone: str
    due_at: datetime
    met_at: datetime | None = None
    cancelled_at: datetime | None = None


@dataclass(frozen=True)
class KpiRow:
    """What the KPIs need of one work order."""

    kind: str
    status: str
    detected_at: datetime
    # The work order's main deadline: the deadline of its profile's `main` clock.
    due_at: datetime
    on_site_at: datetime | None = None
    resolved_at: datetime | None = None
    cancelled_at: datetime | None = None
    follow_ups: int = 0
    clocks: tuple[ClockFacts, ...] = ()
    # Which work order, so a report can name the ones behind a missed target.
    id: int = 0
    device: str = ""
    title: str = ""
    category: str = Category.REPAIR.value


def _without_clocks(row: KpiRow, milestone: Milestone) -> ClockFacts:
    """A work order opened before SLA profiles has only its main deadline; judge the milestone against it."""
    met = row.on_site_at if milestone is Milestone.ON_SITE else row.resolved_at
    # As the workflow does for stored clocks: a cancellation stops the clock only while it still runs.
    cancelled = row.cancelled_at if met is None else None
    return ClockFacts("due", milestone.value, row.due_at, met, cancelled)


def _on_site_clocks(row: KpiRow) -> list[ClockFacts]:
    return sorted((c for c in row.clocks if c.milestone == Milestone.ON_SITE), key=lambda c: (c.due_at, c.name))


def contract_clock(row: KpiRow) -> ClockFacts | None:
    """The work order's contract on-site clock: the one its profile names as `main` (whose deadline is the work
    order's `due_at`), else its earliest on-site clock; never the statutory clock. None when it has no on-site clock.
    """
    if not row.clocks:
        return _without_clocks(row, Milestone.ON_SITE)
    candidates = [c for c in _on_site_clocks(row) if c.name != STATUTORY_CLOCK]
    main = [c for c in candidates if c.due_at == row.due_at]
    return next(iter(main or candidates), None)


def statutory_clock(row: KpiRow) -> ClockFacts | None:
    return next((c for c in row.clocks if c.name == STATUTORY_CLOCK), None)


def repair_clock(row: KpiRow) -> ClockFacts:
    """The clock waiting for `resolved` (the earliest, should a profile have two); the main deadline without one."""
    resolved = sorted((c for c in row.clocks if c.milestone == Milestone.RESOLVED), key=lambda c: (c.due_at, c.name))
    return resolved[0] if resolved else _without_clocks(row, Milestone.RESOLVED)


def figure_minutes(row: KpiRow, clock: ClockFacts) -> int | float:
    """A clock's figure: its deadline minus the detection time, in minutes (whole when it is whole)."""
    minutes = (clock.due_at - row.detected_at) / timedelta(minutes=1)
    return int(minutes) if minutes == int(minutes) else round(minutes, 2)


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
        """The value against the target alone; a figure's verdict also weighs its coverage."""
        value = self.value
        return None if value is None else value >= self.target


@dataclass(frozen=True)
class Decided:
    """A work order a KPI counts, whether it counts in the numerator (in time, followed up), and the clock that
    decided it (None for the follow-up rate)."""

    row: KpiRow
    ok: bool
    clock: ClockFacts | None = None


@dataclass(frozen=True)
class ClockFigure:
    """How many of a figure's work orders were judged by a clock of this many minutes."""

    minutes: int | float
    work_orders: int


@dataclass(frozen=True)
class Judged:
    """The work orders a figure counts, and how many it leaves out for now because their clock is still running."""

    decided: tuple[Decided, ...] = ()
    pending: int = 0

    def ratio(self, target: float) -> Ratio:
        return Ratio(sum(d.ok for d in self.decided), len(self.decided), target)

    @property
    def clocks(self) -> tuple[ClockFigure, ...]:
        counted = Counter(figure_minutes(d.row, d.clock) for d in self.decided if d.clock is not None)
        return tuple(ClockFigure(minutes, n) for minutes, n in sorted(counted.items()))


def judge(
    pairs: Iterable[tuple[KpiRow, ClockFacts]],
    now: datetime,
) -> Judged:
    """Each work order by its clock at `now`: met and missed are decided, pending is counted, cancelled in time
    (the clock stopped before its deadline) is left out."""
    decided: list[Decided] = []
    pending = 0
    for row, clock in pairs:
        state = clock_compliance(clock, now).state
        if state is ClockState.PENDING:
            pending += 1
        elif state is not ClockState.CANCELLED:
            decided.append(Decided(row, state is ClockState.MET, clock))
    return Judged(tuple(decided), pending)


def arrival(
    rows: Iterable[KpiRow],
    start: datetime,
    end: datetime,
    now: datetime,
    clock_of: Callable[[KpiRow], ClockFacts | None] = contract_clock,
) -> Judged:
    """Elevator work orders detected in [start, end), periodic checks excepted (an overdue maintenance visit owes no
    arrival), each by the clock `clock_of` picks; those without one are not in the figure."""
    pairs = []
    for r in rows:
        if r.kind != "elevator" or r.category == Category.CHECK or not start <= r.detected_at < end:
            continue
        clock = clock_of(r)
        if clock is not None:
            pairs.append((r, clock))
    return judge(pairs, now)


def repair(rows: Iterable[KpiRow], start: datetime, end: datetime, now: datetime) -> Judged:
    """Work orders of every kind whose repair clock falls due in [start, end)."""
    pairs = [(r, clock) for r in rows if start <= (clock := repair_clock(r)).due_at < end]
    return judge(pairs, now)


def follow_up(rows: Iterable[KpiRow], start: datetime, end: datetime) -> Judged:
    resolved = [
        r
        for r in rows
        if r.status != WorkOrderStatus.CANCELLED and r.resolved_at is not None and start <= r.resolved_at < end
    ]
    return Judged(tuple(Decided(r, r.follow_ups > 0) for r in resolved))


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
