"""Elevator availability as tables: scheduled intervals per role, the readings' step function, downtime in schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from facmon.reports.availability import (
    Interval,
    elevator_availability,
    intersect,
    is_down,
    merge,
    scheduled_intervals,
    seconds,
    state_spans,
)

SH = ZoneInfo("Asia/Shanghai")  # UTC+8, no DST
BERLIN = ZoneInfo("Europe/Berlin")
H = timedelta(hours=1)
S = timedelta(seconds=1)


def sh(day: int, hour: int, minute: int = 0) -> datetime:
    """A time on the Shanghai wall clock in March 2026 (2026-03-02 is a Monday)."""
    return datetime(2026, 3, day, hour, minute, tzinfo=SH)


def utc(intervals: list[Interval]) -> list[tuple[str, str]]:
    return [(lo.astimezone(UTC).isoformat(), hi.astimezone(UTC).isoformat()) for lo, hi in intervals]


@pytest.mark.parametrize(
    ("role", "start", "end", "expected"),
    [
        ("main", sh(2, 0), sh(3, 0), [(sh(2, 0), sh(3, 0))]),
        ("backup", sh(2, 0), sh(3, 0), []),
        (None, sh(2, 0), sh(3, 0), []),
        ("main", sh(2, 5), sh(2, 5), []),  # empty period
        # One local day: both windows, whatever the weekday.
        ("peak", sh(2, 0), sh(3, 0), [(sh(2, 6), sh(2, 8)), (sh(2, 17), sh(2, 19))]),
        ("peak", sh(7, 0), sh(8, 0), [(sh(7, 6), sh(7, 8)), (sh(7, 17), sh(7, 19))]),  # a Saturday
        # Period edges inside windows: clipped; the end is exclusive.
        ("peak", sh(2, 7), sh(2, 18), [(sh(2, 7), sh(2, 8)), (sh(2, 17), sh(2, 18))]),
        ("peak", sh(2, 8), sh(2, 17), []),  # from a window's end to the next one's start
        ("peak", sh(2, 5, 59), sh(2, 6, 1), [(sh(2, 6), sh(2, 6, 1))]),
        # Across local midnight: the evening of one day and the morning of the next.
        ("peak", sh(2, 18), sh(3, 7), [(sh(2, 18), sh(2, 19)), (sh(3, 6), sh(3, 7))]),
    ],
)
def test_scheduled_intervals(role: str | None, start: datetime, end: datetime, expected: list[Interval]) -> None:
    assert utc(scheduled_intervals(role, start, end, SH)) == utc(expected)


def test_peak_windows_follow_the_site_clock_given_in_utc() -> None:
    # A UTC period from 2026-03-01 16:00 to 2026-03-02 16:00 is the local day of 2 March in Shanghai.
    got = scheduled_intervals("peak", datetime(2026, 3, 1, 16, tzinfo=UTC), datetime(2026, 3, 2, 16, tzinfo=UTC), SH)
    assert utc(got) == [
        ("2026-03-01T22:00:00+00:00", "2026-03-02T00:00:00+00:00"),
        ("2026-03-02T09:00:00+00:00", "2026-03-02T11:00:00+00:00"),
    ]
    assert seconds(got) == 4 * 3600


def test_main_hours_are_real_hours_across_a_dst_change() -> None:
    # Berlin springs forward on 2026-03-29: that local day has 23 hours.
    start, end = datetime(2026, 3, 29, tzinfo=BERLIN), datetime(2026, 3, 30, tzinfo=BERLIN)
    assert seconds(scheduled_intervals("main", start, end, BERLIN)) == 23 * 3600
    # Peak windows stay at 06:00 and 17:00 on the wall clock: 04:00 and 15:00 UTC after the change.
    assert utc(scheduled_intervals("peak", start, end, BERLIN))[0][0] == "2026-03-29T04:00:00+00:00"


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([(sh(2, 0), sh(2, 2)), (sh(2, 1), sh(2, 3))], [(sh(2, 0), sh(3, 0))], [(sh(2, 0), sh(2, 3))]),  # overlap
        ([(sh(2, 0), sh(2, 1)), (sh(2, 1), sh(2, 2))], [(sh(2, 0), sh(3, 0))], [(sh(2, 0), sh(2, 2))]),  # touching
        ([(sh(2, 0), sh(2, 2))], [(sh(2, 2), sh(2, 3))], []),  # half-open: no common instant
        ([(sh(2, 0), sh(2, 10))], [(sh(2, 1), sh(2, 2)), (sh(2, 5), sh(2, 6))],
         [(sh(2, 1), sh(2, 2)), (sh(2, 5), sh(2, 6))]),
    ],
)  # fmt: skip
def test_intersect(a: list[Interval], b: list[Interval], expected: list[Interval]) -> None:
    assert utc(intersect(a, b)) == utc(expected)
    assert utc(intersect(b, a)) == utc(expected)


def test_merge_drops_empty_intervals() -> None:
    assert merge([(sh(2, 3), sh(2, 3)), (sh(2, 4), sh(2, 2))]) == []


@pytest.mark.parametrize(
    ("mode", "faults", "down"),
    [
        ("normal", {"fault_code": 0}, False),
        ("normal", {"fault_code": 2}, True),
        ("inspection", {"fault_code": 0}, True),
        ("out_of_service", {}, True),
        ("normal", {"e_code": 0, "fault_bits": 0}, False),
        ("normal", {"e_code": 0, "fault_bits": 4}, True),
        ("normal", {"e_code": 17, "fault_bits": 0}, True),
        ("normal", {"fault_code": None, "e_code": None}, False),  # the other model's fields are absent
        (None, {"fault_code": 0}, False),  # no mode known: the fault code decides
        ("normal", {"floor": 3}, False),  # not a fault field
    ],
)
def test_is_down(mode: str | None, faults: dict[str, int | None], down: bool) -> None:
    assert is_down(mode, faults) is down


@pytest.mark.parametrize(
    ("mode", "faults", "entrapment", "down"),
    [
        ("normal", {"fault_code": 0}, True, True),  # a trapped passenger, whatever the controller says otherwise
        (None, {}, True, True),
        ("normal", {"fault_code": 0}, False, False),
        ("normal", {"fault_code": 0}, None, False),  # elev-st-b: no flag
        ("inspection", {"fault_code": 0}, False, True),
        ("normal", {"fault_code": 2}, False, True),
    ],
)
def test_a_trapped_passenger_is_down(
    mode: str | None, faults: dict[str, int], entrapment: bool | None, down: bool
) -> None:
    assert is_down(mode, faults, entrapment) is down


T0 = sh(2, 10)
GAP = timedelta(seconds=60)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


@pytest.mark.parametrize(
    ("readings", "end_s", "down_s", "known_s"),
    [
        ([], 600, 0, 0),
        ([(0, False), (30, False)], 600, 0, 90),  # the last reading holds for the gap, then unknown
        ([(0, True), (10, False)], 600, 10, 70),  # down until the next reading
        ([(0, True), (30, True), (60, False)], 600, 60, 120),  # consecutive down readings join
        ([(0, True), (200, False)], 600, 60, 120),  # a gap longer than 60 s: only 60 s down, the rest unknown
        ([(0, True), (60, False)], 600, 60, 120),  # exactly the gap: still down throughout
        ([(0, True)], 20, 20, 20),  # cut at the end
        ([(-30, True), (10, False)], 600, 40, 100),  # a reading before the start reaches into it
        ([(0, False), (0, True), (5, False)], 600, 5, 65),  # two readings at one instant: the later wins
    ],
)
def test_state_spans(readings: list[tuple[float, bool]], end_s: float, down_s: float, known_s: float) -> None:
    spans = state_spans([(at(s), d) for s, d in readings], at(end_s), GAP)
    assert (seconds(spans.down), seconds(spans.known)) == (down_s, known_s)


def test_downtime_counts_only_in_the_schedule() -> None:
    # A peak car down from 07:30 to 17:30 by a reading every 30 s: an hour of its four scheduled hours.
    start, end = sh(2, 0), sh(3, 0)
    readings = []
    t = start
    while t < end:
        readings.append((t, sh(2, 7, 30) <= t < sh(2, 17, 30)))
        t += 30 * S
    peak = elevator_availability("e2", "peak", scheduled_intervals("peak", start, end, SH), readings, end)
    assert (peak.scheduled_s, peak.down_s, peak.unknown_s) == (4 * 3600, 3600, 0)
    main = elevator_availability("e1", "main", scheduled_intervals("main", start, end, SH), readings, end)
    assert (main.scheduled_s, main.down_s, main.unknown_s) == (24 * 3600, 10 * 3600, 0)


def test_time_without_readings_is_unknown_not_down() -> None:
    start, end = sh(2, 0), sh(2, 4)
    readings = [(start, False), (start + H, True), (start + H + 30 * S, True)]  # silent after 01:01:30
    got = elevator_availability("e1", "main", scheduled_intervals("main", start, end, SH), readings, end)
    # Known: 00:00-00:01 and 01:00-01:01:30, of which 01:00-01:01:30 down.
    assert (got.scheduled_s, got.down_s, got.unknown_s) == (4 * 3600, 90, 4 * 3600 - 150)


def every(
    start: datetime, end: datetime, down: Interval | None = None, step: timedelta = 30 * S
) -> list[tuple[datetime, bool]]:
    """A reading every `step` in [start, end), down inside `down`."""
    readings = []
    t = start
    while t < end:
        readings.append((t, down is not None and down[0] <= t < down[1]))
        t += step
    return readings


def main_car(
    readings: list[tuple[datetime, bool]], down: list[Interval], start: datetime, end: datetime
) -> tuple[float, float, float]:
    got = elevator_availability("e1", "main", scheduled_intervals("main", start, end, SH), readings, end, GAP, down)
    return got.scheduled_s, got.down_s, got.unknown_s


def test_an_entrapment_work_order_is_down_while_the_readings_say_normal() -> None:
    start, end = sh(2, 0), sh(2, 4)
    # Every reading normal; an entrapment work order from 01:00 to 01:30.
    assert main_car(every(start, end), [(sh(2, 1), sh(2, 1, 30))], start, end) == (4 * 3600, 1800, 0)


def test_a_fault_and_an_entrapment_that_overlap_count_once() -> None:
    start, end = sh(2, 0), sh(2, 4)
    # The readings say down 01:00-02:00 (a fault code), the entrapment work order is open 01:30-02:30: 90 min.
    readings = every(start, end, (sh(2, 1), sh(2, 2)))
    assert main_car(readings, [(sh(2, 1, 30), sh(2, 2, 30))], start, end) == (4 * 3600, 5400, 0)
    # Two work orders over the same time (a duplicate), and one inside the fault: still 90 min.
    twice = [(sh(2, 1, 30), sh(2, 2, 30)), (sh(2, 1, 30), sh(2, 2, 30)), (sh(2, 1, 10), sh(2, 1, 20))]
    assert main_car(readings, twice, start, end) == (4 * 3600, 5400, 0)


def test_an_open_entrapment_ends_at_now() -> None:
    # The period so far: 00:00 to now, 02:00. The work order opened at 01:57 is still open; the caller gives it up to
    # the period's end (or further): only the 3 minutes up to now count.
    start, now = sh(2, 0), sh(2, 2)
    readings = every(start, now)
    for until in (now, sh(2, 4), sh(3, 0)):
        assert main_car(readings, [(sh(2, 1, 57), until)], start, now) == (2 * 3600, 180, 0)


def test_an_entrapment_without_readings_is_down_and_known() -> None:
    start, end = sh(2, 0), sh(2, 4)
    # Readings up to 01:00, then silence; the entrapment work order 02:00-03:00 covers part of the silence.
    readings = every(start, sh(2, 1))
    scheduled, down, unknown = main_car(readings, [(sh(2, 2), sh(2, 3))], start, end)
    # Known: 00:00-01:00:30 (the last reading, at 00:59:30, holds 60 s) and 02:00-03:00.
    assert (scheduled, down, unknown) == (4 * 3600, 3600, 4 * 3600 - 3630 - 3600)


def test_an_entrapment_outside_the_schedule_is_not_counted() -> None:
    start, end = sh(2, 0), sh(3, 0)
    readings = every(start, end)
    # A peak car trapped 07:30-09:00: 30 min of it in the 06:00-08:00 window.
    got = elevator_availability(
        "e2", "peak", scheduled_intervals("peak", start, end, SH), readings, end, GAP, [(sh(2, 7, 30), sh(2, 9))]
    )
    assert (got.scheduled_s, got.down_s, got.unknown_s) == (4 * 3600, 1800, 0)
