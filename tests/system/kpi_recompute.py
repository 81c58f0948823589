"""Every KPI of docs/kpis.md recomputed from the raw records (tests/system/kpi_raw.py), with code of its own: nothing
of facmon, rules or api is imported (tests/system/test_kpi_recomputed.py checks). Each work order's story (when a
technician was on site, when it was resolved or cancelled) is worked out in tests/system/kpi_story.py, the figures
made of readings in tests/system/kpi_readings.py; this module counts the figures, their coverage and verdicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tests.system.kpi_raw import (
    Influx,
    WorkOrder,
    decommissioned,
    devices,
    elevator_readings,
    events,
    intact_figures,
    panel_readings,
    point_readings,
    reading_times,
    site_zone,
    work_orders,
)
from tests.system.kpi_readings import (
    FIGURE_HOLDS,
    FirePoints,
    car_time,
    intact_mean,
    listed_points,
    scheduled,
    silent_after,
)
from tests.system.kpi_story import Story, outcome, standing_breaches, story

# DOMAIN.md's targets; the verdict threshold of coverage (FACMON_KPI_MIN_COVERAGE's default).
TARGETS = {
    "arrival": 1.0,
    "arrival_statutory": 1.0,
    "repair": 0.99,
    "follow_up": 0.30,
    "fire_intact": 1.0,
    "availability": 0.995,
}
MIN_COVERAGE = 0.95
SLOT = timedelta(minutes=5)

__all__ = ["Figure", "Period", "Recomputed", "month_bounds", "recompute", "site_zone"]


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime
    now: datetime

    @property
    def until(self) -> datetime:
        """Nothing after now is counted."""
        return min(self.end, self.now)


def month_bounds(month: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    year, number = map(int, month.split("-"))
    start = datetime(year, number, 1, tzinfo=tz)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


@dataclass(frozen=True)
class Figure:
    numerator: float
    denominator: float
    coverage: float | None
    verdict: str
    pending: int = 0
    # Work-order figures: how many counted clocks had each figure (deadline minus detection, in seconds).
    clock_figures: dict[float, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Cancellation:
    id: int
    at: datetime
    by: str | None
    reason: str | None
    missed: tuple[str, ...]


@dataclass(frozen=True)
class Recomputed:
    figures: dict[str, Figure]
    cancellations: list[Cancellation]
    # Raw records that contradict each other (a stored deadline that is not detection + the profile's figure, ...).
    inconsistencies: list[str]
    # Each work order's clocks at `now`: met, missed, pending or None (cancelled while pending).
    outcomes: dict[int, dict[str, str | None]] = field(default_factory=dict)
    # Each work order's (on site, resolved) as the evidence has them.
    milestones: dict[int, tuple[datetime | None, datetime | None]] = field(default_factory=dict)


def shown(share: float | None) -> float | None:
    """A coverage as it is shown and judged: rounded to 4 places."""
    return None if share is None else round(share, 4)


def verdict(numerator: float, denominator: float, coverage: float | None, target: float) -> str:
    """No data, insufficient data (coverage unknown or below the threshold), met or missed, in that order."""
    if denominator == 0:
        return "no data"
    if coverage is None or coverage < MIN_COVERAGE:
        return "insufficient data"
    return "met" if numerator / denominator >= target - 1e-12 else "missed"


# --- the work-order figures --------------------------------------------------------------------------------------


def _main_clock(profiles: dict[str, dict[str, Any]], wo: WorkOrder) -> str | None:
    profile = profiles.get(wo.sla_profile or "")
    if profile is None:
        return None
    if profile.get("main"):
        return str(profile["main"])
    return next((c["name"] for c in profile["clocks"] if c["milestone"] == "on_site"), None)


def _repair_clock(profiles: dict[str, dict[str, Any]], wo: WorkOrder) -> str | None:
    waiting = [name for name, (milestone, _) in wo.clocks.items() if milestone == "resolved"]
    return min(waiting, key=lambda n: wo.clocks[n][1]) if waiting else _main_clock(profiles, wo)


def _count(stories: Iterable[tuple[Story, str]], now: datetime, coverage: float | None, target: float) -> Figure:
    met = missed = pending = 0
    by_figure: dict[float, int] = {}
    for s, clock in stories:
        state = outcome(s, clock, now)
        met += state == "met"
        missed += state == "missed"
        pending += state == "pending"
        if state in ("met", "missed"):
            seconds = (s.wo.clocks[clock][1] - s.wo.detected_at).total_seconds()
            by_figure[seconds] = by_figure.get(seconds, 0) + 1
    return Figure(met, met + missed, coverage, verdict(met, met + missed, coverage, target), pending, by_figure)


def _arrival(stories: Sequence[Story], profiles: dict[str, dict[str, Any]], p: Period, coverage: float | None):  # type: ignore[no-untyped-def]
    counted = [
        s
        for s in stories
        if s.wo.kind == "elevator" and s.wo.category != "check" and p.start <= s.wo.detected_at < p.until
    ]
    contract = [(s, c) for s in counted if (c := _main_clock(profiles, s.wo)) is not None and c in s.wo.clocks]
    statutory = [(s, "statutory_on_site") for s in counted if "statutory_on_site" in s.wo.clocks]
    return (
        _count(contract, p.now, coverage, TARGETS["arrival"]),
        _count(statutory, p.now, coverage, TARGETS["arrival_statutory"]),
    )


def _repair(stories: Sequence[Story], profiles: dict[str, dict[str, Any]], p: Period, coverage: float | None) -> Figure:
    due = []
    for s in stories:
        clock = _repair_clock(profiles, s.wo)
        if clock is not None and clock in s.wo.clocks and p.start <= s.wo.clocks[clock][1] < p.end:
            due.append((s, clock))
    return _count(due, p.now, coverage, TARGETS["repair"])


def _follow_up(stories: Sequence[Story], p: Period, coverage: float | None) -> Figure:
    resolved = [s for s in stories if s.resolved is not None and p.start <= s.resolved < p.until]
    visited = sum(any(at <= p.now for at in s.wo.follow_ups) for s in resolved)
    return Figure(visited, len(resolved), coverage, verdict(visited, len(resolved), coverage, TARGETS["follow_up"]))


def cancellations(stories: Sequence[Story], p: Period) -> list[Cancellation]:
    out = []
    for s in stories:
        if s.cancelled is None or not p.start <= s.cancelled < p.until:
            continue
        missed = tuple(sorted(n for n in s.wo.clocks if outcome(s, n, s.cancelled) == "missed"))
        out.append(Cancellation(s.wo.id, s.cancelled, s.cancelled_by, s.cancel_reason, missed))
    return out


# --- coverage ----------------------------------------------------------------------------------------------------


def slot_coverage(times: dict[str, list[datetime]], wanted: Sequence[str], p: Period) -> float | None:
    """The share of 5-minute slots of the period up to now with at least one reading, averaged over `wanted`."""
    slots = []
    at = p.start
    while at < p.until:
        slots.append((at, min(at + SLOT, p.until)))
        at += SLOT
    if not slots or not wanted:
        return None
    shares = []
    for device in wanted:
        seen = times.get(device, [])
        shares.append(sum(any(lo <= t < hi for t in seen) for lo, hi in slots) / len(slots))
    return shown(sum(shares) / len(shares))


# --- all of it ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Records:
    """Where the raw records of one estate are."""

    site: dict[str, Any]
    profiles: dict[str, dict[str, Any]]
    database: Path
    influx: Influx

    @property
    def id(self) -> str:
        return str(self.site["site"]["id"])


def recompute(records: Records, p: Period) -> Recomputed:
    site_events = events(records.influx, records.id, p.now)
    orders = work_orders(records.database, records.id)
    # A work order detected after now did not exist yet.
    stories = [story(wo, records.site, site_events, p.now) for wo in orders if wo.detected_at <= p.now]
    all_devices = devices(records.site)
    times = reading_times(records.influx, records.id, p.start, p.until)
    cars = [d["id"] for d in all_devices if d["kind"] == "elevator"]
    car_coverage = slot_coverage(times, cars, p)
    device_coverage = slot_coverage(times, [d["id"] for d in all_devices], p)
    arrival, statutory = _arrival(stories, records.profiles, p, car_coverage)
    fire, fire_problems = _fire(records, p)
    figures = {
        "arrival": arrival,
        "arrival_statutory": statutory,
        "repair": _repair(stories, records.profiles, p, device_coverage),
        "follow_up": _follow_up(stories, p, device_coverage),
        **fire,
        "availability": _availability(records, stories, p),
    }
    outcomes = {s.wo.id: {name: outcome(s, name, p.now) for name in s.wo.clocks} for s in stories}
    milestones = {s.wo.id: (s.on_site, s.resolved) for s in stories}
    found = _inconsistencies(stories, records.profiles, site_events) + _breaches(stories, p.now) + fire_problems
    return Recomputed(figures, cancellations(stories, p), found, outcomes, milestones)


# A figure is made from the readings processed by its time: one made a moment before a reading was taken in counts.
FIGURE_LAGS = timedelta(seconds=2)


def _fire(records: Records, p: Period) -> tuple[dict[str, Figure], list[str]]:
    """The intact rate at the period's end (or now) from the points' own readings; over the period, the mean of the
    `fire_intact` figures' times with the values those readings give then; and each figure as written checked
    against them."""
    silent = {d["id"]: silent_after(d) for d in devices(records.site) if d["kind"] == "fire_panel"}
    since = p.start - max(silent.values(), default=timedelta(0)) - FIGURE_HOLDS
    fire = FirePoints(
        frozenset(listed_points(records.site)),
        point_readings(records.influx, records.id, p.until),
        panel_readings(records.influx, records.id, since, p.until),
        silent,
        decommissioned(records.database, records.id),
    )
    now = fire.at(p.until)
    figures = intact_figures(records.influx, records.id, p.start, p.until)
    # Each figure holds from when it was written, with the value the points' readings give at that time.
    mean = intact_mean(figures, p.start, p.until, lambda row: fire.at(row["time"]).share)
    value, has, coverage = (0.0, 0, shown(mean.coverage)) if mean.mean is None else (mean.mean, 1, shown(mean.coverage))
    problems = []
    for row in figures:
        said = (row.get("points_intact"), row.get("points_commissioned"))
        counted = [fire.at(row["time"]), fire.at(row["time"] - FIGURE_LAGS)]
        if p.start <= row["time"] <= p.until and said not in [(c.intact, c.commissioned) for c in counted]:
            facts = f"{counted[0].intact}/{counted[0].commissioned}"
            problems.append(f"fire_intact figure at {row['time']}: {said[0]}/{said[1]}, the points' readings: {facts}")
    return {
        "fire_intact_now": Figure(now.intact, now.commissioned, None, ""),
        "fire_intact": Figure(value, has, coverage, verdict(value, has, coverage, TARGETS["fire_intact"])),
    }, problems


def _availability(records: Records, stories: Sequence[Story], p: Period) -> Figure:
    tz = site_zone(records.site)
    readings = elevator_readings(records.influx, records.id, p.start - timedelta(minutes=10), p.until)
    total = down = known = 0.0
    for car in devices(records.site):
        if car["kind"] != "elevator":
            continue
        trapped = [
            (s.wo.detected_at, min(t for t in (s.resolved, s.cancelled, p.until) if t is not None))
            for s in stories
            if s.wo.device == car["id"] and s.wo.fault == "entrapment" and s.cancelled is None
        ]
        plan = scheduled(car.get("role"), p.start, p.until, tz)
        time = car_time(readings.get(car["id"], []), trapped, plan, p.until, float(car.get("poll_interval_s", 1.0)))
        total, down, known = total + time.scheduled_s, down + time.down_s, known + time.known_s
    coverage = None if total == 0 else shown(known / total)
    hours = (total - down) / 3600.0, total / 3600.0
    return Figure(*hours, coverage, verdict(*hours, coverage, TARGETS["availability"]))


def _inconsistencies(
    stories: Sequence[Story], profiles: dict[str, dict[str, Any]], site_events: Sequence[dict[str, Any]]
) -> list[str]:
    """Stored deadlines that are not detection + hold + the profile's figure; work orders whose detection is not the
    time of a fault raised at their device."""
    found = []
    raised = {
        (e["device"], e.get("code"), e.get("point") or "", e["time"])
        for e in site_events
        if e["type"] == "fault_raised"
    }
    for s in stories:
        wo, profile = s.wo, profiles.get(s.wo.sla_profile or "")
        if profile is not None:
            hold = _duration(profile.get("hold", "0s"))
            for clock in profile["clocks"]:
                expected = wo.detected_at + hold + _duration(clock["within"])
                stored = wo.clocks.get(clock["name"], (None, None))[1]
                if stored != expected:
                    found.append(f"work order {wo.id} clock {clock['name']}: due {stored}, expected {expected}")
        point, _, code = wo.fault.rpartition("/")
        if wo.category == "repair" and (wo.device, code, point, wo.detected_at) not in raised:
            found.append(f"work order {wo.id}: no {wo.fault} raised at {wo.device} at {wo.detected_at}")
    return found


# The SLA monitor records a breach within a tick (1 s) of the deadline; a clock due this close to now is not judged.
BREACH_SETTLES = timedelta(seconds=5)


def _breaches(stories: Sequence[Story], now: datetime) -> list[str]:
    """The timeline, and with it the alerts and the dashboards, must say breached exactly where the clock is missed:
    a breach standing (recorded, not withdrawn) for every missed clock and for no other."""
    found = []
    for s in stories:
        standing = standing_breaches(s.wo, now)
        for name, (_, due) in s.wo.clocks.items():
            if due >= now - BREACH_SETTLES:
                continue
            missed = outcome(s, name, now) == "missed"
            if missed != (name in standing):
                said = "a breach standing" if name in standing else "no breach"
                found.append(f"work order {s.wo.id} clock {name}: {outcome(s, name, now)}, the timeline has {said}")
    return found


def _duration(text: str) -> timedelta:
    number, unit = int(text.rstrip("sminhd")), text.lstrip("0123456789")
    return timedelta(seconds=number * {"s": 1, "min": 60, "h": 3600, "d": 86400}[unit])
