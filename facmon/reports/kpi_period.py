"""The InfluxDB-based KPIs of one site over a period, as plain figures: fire equipment intact rate and elevator
availability. Shared by the API (`/kpis`) and the monthly report (facmon.reports.kpi_monthly), which present them in
their
own ways; InfluxDB not answering is a figure that says so (`available=False` and why), never an exception.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from facmon.estate.site import Site
from facmon.kernel.model import DeviceKind
from facmon.reports.availability import (
    DEFAULT_MAX_GAP,
    SCHEDULED_ROLES,
    ElevatorAvailability,
    Interval,
    elevator_availability,
    scheduled_intervals,
)
from facmon.reports.kpi import Ratio, WeightedMean
from facmon.reports.kpi_data import InfluxReader, InfluxUnavailable, PanelIntact

AVAILABILITY_NOTE = (
    "scheduled: main elevators 24 h a day, peak elevators 06:00-08:00 and 17:00-19:00 site time; backup elevators "
    "and elevators without a role are left out (the hand-over to a backup while the main car is under repair is not "
    "modelled). Down: a reading with a service mode other than normal, a non-zero fault code (fault_code, e_code, "
    "fault_bits) or a trapped passenger (entrapment), and an entrapment work order open (from detection until "
    "resolved, or now), counted once where they overlap; a reading holds until the next one, for at most max(60 s, 3 "
    "poll intervals). Time without a reading (and no entrapment work order open) is unknown and not counted as down; "
    "comm_lost events are not read separately (a silent car is unknown)."
)


# How long one `fire_intact` figure holds in the period's mean when no other follows it sooner (docs/kpis.md): the
# rules worker writes one at least every minute while it runs, so a longer gap is time it did not know the rate.
INTACT_HOLD = timedelta(minutes=5)


def held_mean(
    samples: Sequence[tuple[datetime, float | None]], start: datetime, end: datetime, hold: timedelta = INTACT_HOLD
) -> WeightedMean:
    """Mean of a step function over [start, end): each sample's value holds until the next sample, for at most
    `hold`; a None value holds nothing. `covered_s` is the time the values cover. Samples in time order."""
    if end <= start:
        raise ValueError("the period must end after it starts")
    total = covered = 0.0
    for i, (t, value) in enumerate(samples):
        following = samples[i + 1][0] if i + 1 < len(samples) else end
        lo, hi = max(t, start), min(following, t + hold, end)
        if value is None or hi <= lo:
            continue
        seconds = (hi - lo).total_seconds()
        total += value * seconds
        covered += seconds
    return WeightedMean(None if covered == 0 else total / covered, covered)


@dataclass(frozen=True)
class IntactFigure:
    available: bool
    target: float
    reason: str | None = None
    # Intact points / commissioned points, the latest figure at the period's end.
    current: Ratio | None = None
    current_at: datetime | None = None
    # The time-weighted mean over the period (each figure holding for at most INTACT_HOLD), as a ratio, and how
    # many seconds of the period the figures cover.
    period_mean: float | None = None
    period_covered_s: float | None = None
    panels: tuple[PanelIntact, ...] = ()
    # Seconds of the period judged (its start to the earlier of its end and now).
    period_s: float | None = None

    @property
    def met(self) -> bool | None:
        return None if self.period_mean is None else self.period_mean >= self.target

    @property
    def coverage(self) -> float | None:
        """The share of the period the intact figures cover."""
        if not self.available or self.period_covered_s is None or not self.period_s:
            return None
        return self.period_covered_s / self.period_s


async def period_intact(influx: InfluxReader, site: str, start: datetime, end: datetime, target: float) -> IntactFigure:
    try:
        now_figure = await influx.site_intact(site, end)
        panels = await influx.panels_intact(site, end)
        samples = await influx.site_intact_samples(site, start, end, INTACT_HOLD)
    except InfluxUnavailable as exc:
        return IntactFigure(available=False, reason=str(exc), target=target)
    if now_figure is None:
        # InfluxDB answered and holds no figure: nothing to count (a site without fire panels, or none heard yet).
        return IntactFigure(
            available=True,
            target=target,
            reason="no fire panel figures for this site",
            period_covered_s=0.0,
            period_s=(end - start).total_seconds(),
        )
    mean = held_mean(samples, start, end, INTACT_HOLD)
    return IntactFigure(
        available=True,
        target=target,
        current=Ratio(now_figure.points_intact, now_figure.points_commissioned, target),
        current_at=now_figure.at,
        period_mean=None if mean.mean is None else round(mean.mean / 100.0, 6),
        period_covered_s=mean.covered_s,
        panels=tuple(panels),
        period_s=(end - start).total_seconds(),
    )


def availability_value(scheduled_s: float, down_s: float) -> float | None:
    return None if scheduled_s == 0 else round((scheduled_s - down_s) / scheduled_s, 6)


@dataclass(frozen=True)
class AvailabilityFigure:
    available: bool
    target: float
    reason: str | None = None
    elevators: tuple[ElevatorAvailability, ...] = ()

    @property
    def scheduled_s(self) -> float:
        return sum(f.scheduled_s for f in self.elevators)

    @property
    def down_s(self) -> float:
        return sum(f.down_s for f in self.elevators)

    @property
    def unknown_s(self) -> float:
        return sum(f.unknown_s for f in self.elevators)

    @property
    def value(self) -> float | None:
        return availability_value(self.scheduled_s, self.down_s) if self.available else None

    @property
    def met(self) -> bool | None:
        value = self.value
        return None if value is None else value >= self.target

    @property
    def coverage(self) -> float | None:
        """Scheduled time with a reading in force / scheduled time; None when nothing is scheduled."""
        scheduled = self.scheduled_s
        if not self.available or scheduled == 0:
            return None
        return (scheduled - self.unknown_s) / scheduled


async def period_availability(
    influx: InfluxReader,
    site: Site,
    start: datetime,
    end: datetime,
    target: float,
    entrapments: Mapping[str, Sequence[Interval]] | None = None,
) -> AvailabilityFigure:
    """The availability of the site's scheduled cars over [start, end), `end` being at most now. `entrapments`: each
    car's entrapment work orders as down intervals (facmon.reports.kpi_data.entrapment_intervals), down even where
    the readings say the car is fine or there is no reading."""
    entrapments = entrapments or {}
    if end <= start:
        return AvailabilityFigure(available=False, reason="the period has not started yet", target=target)
    cars = [d for _, d in site.devices() if d.kind == DeviceKind.ELEVATOR and d.role in SCHEDULED_ROLES]
    gaps = {d.id: max(DEFAULT_MAX_GAP, timedelta(seconds=3 * d.poll_interval_s)) for d in cars}
    try:
        # From the longest gap before the start: the reading in force at the start holds that long.
        states = await influx.elevator_states(site.id, start - max(gaps.values(), default=DEFAULT_MAX_GAP), end)
    except InfluxUnavailable as exc:
        return AvailabilityFigure(available=False, reason=str(exc), target=target)
    figures = []
    for car in cars:
        role = car.role or ""
        scheduled = scheduled_intervals(role, start, end, site.tz)
        readings, down = states.get(car.id, []), entrapments.get(car.id, ())
        figures.append(elevator_availability(car.id, role, scheduled, readings, end, gaps[car.id], down))
    return AvailabilityFigure(available=True, target=target, elevators=tuple(figures))
