"""Time windows read on the site's wall clock: a DST-free zone and a zone with summer time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from rules.windows import Window, in_windows, window_opened

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
PEAKS = (
    Window.model_validate({"days": ["mon..sun"], "from": "06:00", "to": "08:00"}),
    Window.model_validate({"days": ["mon..sun"], "from": "17:00", "to": "19:00"}),
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("local", "inside"),
    [("05:59", False), ("06:00", True), ("07:59", True), ("08:00", False), ("16:59", False), ("17:00", True),
     ("18:59", True), ("19:00", False)],
)  # fmt: skip
@pytest.mark.parametrize(
    ("zone", "day"),
    [
        (SHANGHAI, (2026, 1, 15)),  # UTC+8 all year
        (BERLIN, (2026, 1, 15)),  # winter: UTC+1
        (BERLIN, (2026, 7, 15)),  # summer: UTC+2
    ],
)
def test_peak_window_edges_in_local_time(zone: ZoneInfo, day: tuple[int, int, int], local: str, inside: bool) -> None:
    hour, minute = map(int, local.split(":"))
    now = datetime(*day, hour, minute, tzinfo=zone).astimezone(UTC)
    assert in_windows(PEAKS, now, zone) is inside


def test_the_same_utc_instant_is_in_the_window_in_one_zone_and_not_in_another() -> None:
    # 05:30 UTC in January is 06:30 in Berlin (inside) and 13:30 in Shanghai (outside).
    assert in_windows(PEAKS, utc(2026, 1, 15, 5, 30), BERLIN)
    assert not in_windows(PEAKS, utc(2026, 1, 15, 5, 30), SHANGHAI)
    # Berlin's summer time moves the window an hour earlier in UTC: 04:30 UTC is 06:30 local in July, 05:30 in January.
    assert in_windows(PEAKS, utc(2026, 7, 15, 4, 30), BERLIN)
    assert not in_windows(PEAKS, utc(2026, 1, 15, 4, 30), BERLIN)


def test_days_limit_the_window() -> None:
    weekdays = Window.model_validate({"days": ["mon..fri"], "from": "06:00", "to": "08:00"})
    saturday = datetime(2026, 1, 17, 7, 0, tzinfo=SHANGHAI)
    assert not in_windows([weekdays], saturday, SHANGHAI)
    assert in_windows([weekdays], saturday - timedelta(days=1), SHANGHAI)
    assert in_windows([], saturday, SHANGHAI)  # no windows: always


def test_window_opened_between_two_ticks() -> None:
    start = datetime(2026, 1, 15, 6, 0, tzinfo=BERLIN).astimezone(UTC)
    second = timedelta(seconds=1)
    assert window_opened(PEAKS, start - second, start, BERLIN)
    assert not window_opened(PEAKS, start, start + second, BERLIN)  # opened before this tick's span
    assert not window_opened(PEAKS, start - 2 * second, start - second, BERLIN)
    # A worker down over the opening catches it on its first tick, if the window is still open then...
    assert window_opened(PEAKS, start - timedelta(hours=3), start + timedelta(minutes=30), BERLIN)
    # ...but not once it has closed again.
    assert not window_opened(PEAKS, start - timedelta(hours=3), start + timedelta(hours=3), BERLIN)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"from": "08:00", "to": "06:00"}, "must be before"),
        ({"from": "6:00", "to": "08:00"}, "is not a time"),
        ({"from": 360, "to": "08:00"}, "quote it"),
        ({"days": ["someday"], "from": "06:00", "to": "08:00"}, "is not a day"),
        ({"days": ["fri..mon"], "from": "06:00", "to": "08:00"}, "day range"),
        ({"days": [], "from": "06:00", "to": "08:00"}, "at least one day"),
        ({"days": "mon", "from": "06:00", "to": "08:00"}, "valid frozenset"),
        ({"from": "06:00", "to": "08:00", "at": "x"}, "Extra inputs"),
    ],
)
def test_bad_windows_are_refused(raw: dict[str, object], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        Window.model_validate(raw)


def test_days_listed_one_by_one_and_a_window_that_does_not_open_on_the_day() -> None:
    mon_wed = Window.model_validate({"days": ["mon", "wed"], "from": "06:00", "to": "08:00"})
    assert mon_wed.days == {"mon", "wed"}
    thursday = datetime(2026, 1, 15, 6, 0, tzinfo=BERLIN)
    assert mon_wed.starts(thursday.date(), BERLIN) is None
    assert mon_wed.starts(thursday.date() - timedelta(days=1), BERLIN) == thursday - timedelta(days=1)
    # Thursday's 06:00 passes by without a window opening on it.
    assert not window_opened([mon_wed], thursday - timedelta(minutes=1), thursday + timedelta(minutes=1), BERLIN)
