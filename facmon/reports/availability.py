"""Elevator availability (DOMAIN.md "KPI formulas"): (scheduled hours - fault downtime) / scheduled hours.

Everything here is pure: the caller passes the period, the zone and the readings.

Scheduled time, by the elevator's role in the site file (DOMAIN.md service plan):

- `main`: 24 h a day;
- `peak`: the peak windows, 06:00-08:00 and 17:00-19:00 on the site's wall clock, every day;
- `backup` (and an elevator without a role): not scheduled. A backup carries the service only while the main car
  is under repair; that hand-over is not modelled, so backups are left out of the figure.

Fault downtime: the scheduled time in which the car was not available. A reading says the car is down when its
service mode is anything but `normal` (out of service, inspection, fire return, emergency power, ...), it reports
a non-zero fault (`fault_code` (elev-gb-a), `e_code` or `fault_bits` (elev-st-b)), or a trapped passenger (the
`entrapment` flag of elev-gb-a), whatever the service mode says. A reading's state holds until the next reading, but
for at most `max_gap` (the collector writes a reading every poll, 1 s by default): time after that without a reading
is unknown, reported as such and not counted as down, so a monitoring outage does not count against the maintenance
contractor. The period's end is exclusive.

Besides the readings, the caller may give intervals the car is known to be down (an entrapment work order open, from
its detection to its resolution): they are unioned with the readings' down spans, so a time both say is down counts
once, and they count as known even where no reading covers them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from rules.windows import Window

Interval = tuple[datetime, datetime]

PEAK_WINDOWS = (
    Window.model_validate({"from": "06:00", "to": "08:00"}),
    Window.model_validate({"from": "17:00", "to": "19:00"}),
)
# Roles with scheduled hours; the others (backup, none) are left out of the figure.
SCHEDULED_ROLES = ("main", "peak")
# Readings' fields that carry a fault code (0 = none), across the elevator models.
FAULT_FIELDS = ("fault_code", "e_code", "fault_bits")
# The reading's field that flags a trapped passenger (elev-gb-a; elev-st-b has none, its entrapment is derived and
# reaches availability as an entrapment work order).
ENTRAPMENT_FIELD = "entrapment"
DEFAULT_MAX_GAP = timedelta(seconds=60)


def _utc(at: datetime) -> datetime:
    # Aware datetimes in one zone subtract as wall-clock times; UTC keeps every duration real across DST changes.
    if at.tzinfo is None:
        raise ValueError(f"{at!r} has no time zone")
    return at.astimezone(UTC)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """The union of half-open intervals, sorted, without empty or overlapping ones."""
    merged: list[Interval] = []
    for lo, hi in sorted((_utc(a), _utc(b)) for a, b in intervals):
        if hi <= lo:
            continue
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def intersect(a: Iterable[Interval], b: Iterable[Interval]) -> list[Interval]:
    """The intersection of two unions of intervals."""
    left, right = merge(a), merge(b)
    out: list[Interval] = []
    i = j = 0
    while i < len(left) and j < len(right):
        lo, hi = max(left[i][0], right[j][0]), min(left[i][1], right[j][1])
        if lo < hi:
            out.append((lo, hi))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return out


def seconds(intervals: Iterable[Interval]) -> float:
    return sum((hi - lo).total_seconds() for lo, hi in merge(intervals))


def window_intervals(windows: Iterable[Window], start: datetime, end: datetime, tz: ZoneInfo) -> list[Interval]:
    """The times in [start, end) that fall in `windows` on the wall clock of `tz`."""
    opened: list[Interval] = []
    first, last = start.astimezone(tz).date(), end.astimezone(tz).date()
    for window in windows:
        day = first
        while day <= last:
            opens = window.starts(day, tz)
            if opens is not None:
                opened.append((opens, datetime.combine(day, window.end, tzinfo=tz)))
            day += timedelta(days=1)
    return intersect(opened, [(start, end)])


def scheduled_intervals(role: str | None, start: datetime, end: datetime, tz: ZoneInfo) -> list[Interval]:
    """When an elevator of `role` is scheduled to run in [start, end)."""
    if end <= start:
        return []
    if role == "main":
        return [(_utc(start), _utc(end))]
    if role == "peak":
        return window_intervals(PEAK_WINDOWS, start, end, tz)
    return []


def is_down(service_mode: str | None, faults: Mapping[str, int | float | None], entrapment: object = None) -> bool:
    """Whether one reading says the car is not available: service mode not normal, a non-zero fault code, or a
    passenger trapped (`entrapment` true), even with the car in normal service and no fault code."""
    if entrapment is True:
        return True
    if service_mode is not None and service_mode != "normal":
        return True
    return any(value not in (None, 0) for name, value in faults.items() if name in FAULT_FIELDS)


@dataclass(frozen=True)
class StateSpans:
    down: list[Interval]
    # Times a reading covers (down or not); the rest of the period is unknown.
    known: list[Interval]


def state_spans(readings: Sequence[tuple[datetime, bool]], end: datetime, max_gap: timedelta) -> StateSpans:
    """The step function of `readings` (time, down), in time order: each holds until the next reading, at most
    `max_gap`, and never past `end`."""
    down: list[Interval] = []
    known: list[Interval] = []
    end = _utc(end)
    for i, (at, is_down_) in enumerate(readings):
        at = _utc(at)
        following = _utc(readings[i + 1][0]) if i + 1 < len(readings) else end
        until = min(following, at + max_gap, end)
        if until <= at:
            continue
        known.append((at, until))
        if is_down_:
            down.append((at, until))
    return StateSpans(merge(down), merge(known))


@dataclass(frozen=True)
class ElevatorAvailability:
    device: str
    role: str
    scheduled_s: float
    down_s: float
    # Scheduled time without a reading (nor a known down interval): neither down nor known to be up.
    unknown_s: float


def elevator_availability(
    device: str,
    role: str,
    scheduled: Sequence[Interval],
    readings: Sequence[tuple[datetime, bool]],
    end: datetime,
    max_gap: timedelta = DEFAULT_MAX_GAP,
    down: Sequence[Interval] = (),
) -> ElevatorAvailability:
    """The car's figure over `scheduled` (up to `end`): the readings' down spans and the intervals `down` (known to be
    down, e.g. an entrapment work order open), unioned; `down` is known time even where no reading covers it."""
    spans = state_spans(readings, end, max_gap)
    # Nothing after `end` (the period's end, or now) is counted.
    extra = merge((lo, min(_utc(hi), _utc(end))) for lo, hi in down)
    scheduled_s = seconds(scheduled)
    down_s = seconds(intersect([*spans.down, *extra], scheduled))
    known_s = seconds(intersect([*spans.known, *extra], scheduled))
    return ElevatorAvailability(device, role, scheduled_s, down_s, scheduled_s - known_s)
