"""The two KPIs of docs/kpis.md made from readings, recomputed without facmon (see kpi_recompute.py): the fire
equipment intact rate (the commissioned points of the site's panels at an instant; the time-weighted mean of the
`fire_intact` figures over the period) and elevator availability (scheduled hours, downtime, unknown time).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

Interval = tuple[datetime, datetime]

FIGURE_HOLDS = timedelta(minutes=5)
PEAK_WINDOWS = ((6, 8), (17, 19))
READING_HOLDS_AT_LEAST = timedelta(seconds=60)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for lo, hi in sorted(i for i in intervals if i[1] > i[0]):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def overlap(a: Iterable[Interval], b: Iterable[Interval]) -> list[Interval]:
    return merge((max(x[0], y[0]), min(x[1], y[1])) for x in merge(a) for y in merge(b))


def seconds(intervals: Iterable[Interval]) -> float:
    return sum((hi - lo).total_seconds() for lo, hi in merge(intervals))


# --- fire equipment intact rate ----------------------------------------------------------------------------------


# A panel is not answering when not heard of for max(60 s, 3 poll intervals, its comm grace); a point whose latest
# reading is older than that and 90 s more is one its gateway no longer reports (it repeats every point it knows once
# a minute).
POINT_HOLDS_MORE = timedelta(seconds=90)


def silent_after(panel: dict[str, Any]) -> timedelta:
    poll_s, grace_s = float(panel.get("poll_interval_s", 1.0)), float(panel.get("comm_grace_s", 3.0))
    return max(READING_HOLDS_AT_LEAST, timedelta(seconds=3 * poll_s), timedelta(seconds=grace_s))


def listed_points(site: dict[str, Any]) -> list[str]:
    """`<panel>:<point>` of the points the site file lists for its fire panels ("1-001..1-120" is a range)."""
    out = []
    for building in site.get("buildings", []):
        for panel in building.get("devices", []):
            if panel["kind"] != "fire_panel":
                continue
            for entry in panel.get("points", []):
                first, _, last = str(entry).partition("..")
                loop, _, address = first.partition("-")
                end = int(last.partition("-")[2]) if last else int(address)
                out += [f"{panel['id']}:{loop}-{n:03d}" for n in range(int(address), end + 1)]
    return out


@dataclass(frozen=True)
class IntactNow:
    intact: int
    commissioned: int

    @property
    def share(self) -> float | None:
        return None if self.commissioned == 0 else self.intact / self.commissioned


def _intact_point(row: dict[str, Any], at: datetime, holds: timedelta) -> bool:
    current = at - row["time"] <= holds
    return current and row.get("state") != "absent" and not row.get("fault") and not row.get("disabled")


def intact_at(
    commissioned: set[str], readings: Sequence[dict[str, Any]], silent: dict[str, timedelta], at: datetime
) -> IntactNow:
    """Commissioned points (`<panel>:<point>`: listed or reported by `at`, less those decommissioned) and those
    intact at `at`: the panel answering (`silent`: panels answering, with how long their silence may last), the
    point's latest reading current, present, neither in fault nor disabled."""
    latest: dict[str, dict[str, Any]] = {}
    for row in readings:
        if row["time"] <= at:
            latest[f"{row['device']}:{row['point']}"] = row
    intact = 0
    for point in commissioned:
        panel = point.partition(":")[0]
        if point in latest and panel in silent and _intact_point(latest[point], at, silent[panel] + POINT_HOLDS_MORE):
            intact += 1
    return IntactNow(intact, len(commissioned))


def answering(panels: Sequence[dict[str, Any]], silent: dict[str, timedelta], at: datetime) -> dict[str, timedelta]:
    """The panels heard of before `at` within their `silent` time, with that time."""
    heard: dict[str, datetime] = {}
    for row in panels:
        if row["time"] <= at:
            heard[row["device"]] = row["time"]
    return {panel: silent[panel] for panel, last in heard.items() if panel in silent and at - last <= silent[panel]}


@dataclass(frozen=True)
class FirePoints:
    """What the fire intact rate is made of: the points the site file lists, the points' and panels' readings, how
    long each panel may be silent, and the points decommissioned (with when)."""

    listed: frozenset[str]
    readings: Sequence[dict[str, Any]]
    panels: Sequence[dict[str, Any]]
    silent: dict[str, timedelta]
    decommissioned: dict[str, datetime]

    def at(self, at: datetime) -> IntactNow:
        """The figure at `at`: the commissioned points (listed, or reported by then, less those decommissioned by
        then) and those of them intact."""
        reported = {
            f"{r['device']}:{r['point']}" for r in self.readings if r["time"] <= at and r["device"] in self.silent
        }
        out = {p for p, when in self.decommissioned.items() if when <= at}
        commissioned = (self.listed | reported) - out
        return intact_at(commissioned, self.readings, answering(self.panels, self.silent, at), at)


@dataclass(frozen=True)
class IntactMean:
    mean: float | None
    coverage: float | None


def _share(row: dict[str, Any]) -> float | None:
    """The figure: intact / commissioned points (intact / present in figures written before there were commissioned
    points)."""
    intact, out_of = row.get("points_intact"), row.get("points_commissioned") or row.get("points_present")
    return None if not out_of or intact is None else float(intact) / float(out_of)


def intact_mean(
    figures: Sequence[dict[str, Any]],
    start: datetime,
    until: datetime,
    value_of: Callable[[dict[str, Any]], float | None] = _share,
) -> IntactMean:
    """The time-weighted mean of the figures, each holding until the next for at most 5 minutes, over
    [start, until); coverage: the share of that time some figure holds. `value_of`: a figure's value (default: as
    written; None: no point commissioned, in no mean)."""
    if until <= start:
        return IntactMean(None, None)
    total = covered = 0.0
    for i, row in enumerate(figures):
        following = figures[i + 1]["time"] if i + 1 < len(figures) else until
        lo, hi = max(row["time"], start), min(following, row["time"] + FIGURE_HOLDS, until)
        value = value_of(row)
        if hi <= lo or value is None:
            continue
        total += value * (hi - lo).total_seconds()
        covered += (hi - lo).total_seconds()
    span = (until - start).total_seconds()
    return IntactMean(None if covered == 0 else total / covered, covered / span)


# --- elevator availability ---------------------------------------------------------------------------------------


def scheduled(role: str | None, start: datetime, until: datetime, tz: ZoneInfo) -> list[Interval]:
    """Main cars 24 h a day, peak cars 06:00-08:00 and 17:00-19:00 on the site's wall clock, backups never."""
    if until <= start:
        return []
    if role == "main":
        return [(start, until)]
    if role != "peak":
        return []
    windows = []
    day = start.astimezone(tz).date() - timedelta(days=1)
    while day <= until.astimezone(tz).date():
        for lo, hi in PEAK_WINDOWS:
            opens = datetime(day.year, day.month, day.day, lo, tzinfo=tz).astimezone(UTC)
            closes = datetime(day.year, day.month, day.day, hi, tzinfo=tz).astimezone(UTC)
            windows.append((opens, closes))
        day += timedelta(days=1)
    return overlap(windows, [(start, until)])


def _down(row: dict[str, Any]) -> bool:
    mode = row.get("service_mode")
    return (
        (mode is not None and mode != "normal")
        or row.get("fault_code") not in (None, 0)
        or row.get("entrapment") is True
    )


@dataclass(frozen=True)
class CarTime:
    scheduled_s: float
    down_s: float
    known_s: float


def car_time(
    readings: Sequence[dict[str, Any]],
    entrapments: Sequence[Interval],
    plan: Sequence[Interval],
    until: datetime,
    poll_s: float,
) -> CarTime:
    """A car's scheduled, down and known seconds: a reading holds until the next, for at most max(60 s, 3 polls);
    a car is down while a reading says so and while an entrapment work order of it is open."""
    holds = max(READING_HOLDS_AT_LEAST, timedelta(seconds=3 * poll_s))
    known: list[Interval] = []
    down: list[Interval] = list(entrapments)
    last: dict[str, Any] = {}
    for i, row in enumerate(readings):
        # A reading without a field (a value the collector refused) keeps that field's previous value.
        last.update({k: v for k, v in row.items() if v is not None})
        following = readings[i + 1]["time"] if i + 1 < len(readings) else until
        span = (row["time"], min(following, row["time"] + holds, until))
        known.append(span)
        if _down(last):
            down.append(span)
    known_or_down = merge([*known, *entrapments])
    return CarTime(seconds(plan), seconds(overlap(down, plan)), seconds(overlap(known_or_down, plan)))
