"""The KPI formulas as tables: which work orders count, in the numerator and the denominator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from facmon.reports.kpi import (
    KpiRow,
    KpiTargets,
    arrival_compliance,
    follow_up_rate,
    repair_timeliness,
    time_weighted_mean,
)

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 4, 1, tzinfo=UTC)
NOW = datetime(2026, 4, 2, tzinfo=UTC)
TARGETS = KpiTargets()


def m(minutes: float) -> datetime:
    return START + timedelta(days=10, minutes=minutes)


def row(
    *,
    kind: str = "elevator",
    status: str = "resolved",
    detected: datetime | None = None,
    on_site: datetime | None = None,
    resolved: datetime | None = None,
    repair_due: datetime | None = None,
    follow_ups: int = 0,
    category: str = "repair",
) -> KpiRow:
    detected = detected or m(0)
    due = repair_due or detected + timedelta(hours=24)
    return KpiRow(kind, status, detected, on_site, resolved, due, follow_ups, category=category)


@pytest.mark.parametrize(
    ("rows", "now", "expected"),
    [
        ([row(on_site=m(20))], NOW, (1, 1)),  # the 20th minute still counts
        ([row(on_site=m(20.5))], NOW, (0, 1)),
        ([row(on_site=None, status="open")], NOW, (0, 1)),  # never arrived, window long gone
        ([row(on_site=None, status="open")], m(10), (0, 0)),  # still inside its window: not decided
        ([row(on_site=m(5), status="cancelled")], NOW, (0, 0)),  # cancelled counts nowhere
        ([row(kind="fire_panel", on_site=m(5))], NOW, (0, 0)),  # elevators only
        # An overdue maintenance visit (a check) owes no 20-minute arrival; a task (bring the backup in) does.
        ([row(on_site=m(300), category="check"), row(on_site=m(30), category="task")], NOW, (0, 1)),
        ([row(detected=START - timedelta(minutes=1), on_site=START)], NOW, (0, 0)),  # detected before the period
        ([row(detected=END, on_site=END)], NOW, (0, 0)),  # the period's end is exclusive
        ([row(on_site=m(3)), row(on_site=m(30)), row(on_site=m(19))], NOW, (2, 3)),
    ],
)
def test_arrival_compliance(rows: list[KpiRow], now: datetime, expected: tuple[int, int]) -> None:
    ratio = arrival_compliance(rows, START, END, now, TARGETS)
    assert (ratio.numerator, ratio.denominator) == expected
    assert ratio.target == 1.0


@pytest.mark.parametrize(
    ("rows", "now", "expected"),
    [
        ([row(resolved=m(60), repair_due=m(120))], NOW, (1, 1)),
        ([row(resolved=m(120), repair_due=m(120))], NOW, (1, 1)),  # at the deadline is in time
        ([row(resolved=m(121), repair_due=m(120))], NOW, (0, 1)),
        ([row(status="on_site", repair_due=m(120))], NOW, (0, 1)),  # overdue and still not repaired
        ([row(status="on_site", repair_due=m(120))], m(60), (0, 0)),  # not due yet
        ([row(status="cancelled", repair_due=m(120))], NOW, (0, 0)),
        # Due in the period although detected before it; due after the period is not counted.
        (
            [row(detected=START - timedelta(hours=2), resolved=START, repair_due=START + timedelta(hours=1))],
            NOW,
            (1, 1),
        ),
        ([row(resolved=END, repair_due=END + timedelta(hours=1))], NOW, (0, 0)),
    ],
)
def test_repair_timeliness(rows: list[KpiRow], now: datetime, expected: tuple[int, int]) -> None:
    ratio = repair_timeliness(rows, START, END, now, TARGETS)
    assert (ratio.numerator, ratio.denominator) == expected


@pytest.mark.parametrize(
    ("rows", "expected", "met"),
    [
        ([], (0, 0), None),
        ([row(resolved=m(60), follow_ups=1), row(resolved=m(60)), row(resolved=m(60))], (1, 3), True),
        ([row(resolved=m(60), follow_ups=2)] + [row(resolved=m(60))] * 3, (1, 4), False),  # 25 % < 30 %
        ([row(status="on_site")], (0, 0), None),  # not resolved
        ([row(status="closed", resolved=m(60), follow_ups=1)], (1, 1), True),
        ([row(status="cancelled", resolved=m(60))], (0, 0), None),
        ([row(resolved=END)], (0, 0), None),
    ],
)
def test_follow_up_rate(rows: list[KpiRow], expected: tuple[int, int], met: bool | None) -> None:
    ratio = follow_up_rate(rows, START, END, TARGETS)
    assert ((ratio.numerator, ratio.denominator), ratio.met) == (expected, met)


H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("samples", "mean", "covered_h"),
    [
        ([], None, 0),
        ([(START - H, 100.0)], 100.0, 4),  # the value in force before the period holds through it
        ([(START, 100.0), (START + 3 * H, 96.0)], 99.0, 4),  # 3 h at 100, 1 h at 96
        ([(START + 2 * H, 90.0)], 90.0, 2),  # nothing known before: only the covered time counts
        ([(START - H, 100.0), (START + 2 * H, 50.0), (START + 5 * H, 0.0)], 75.0, 4),  # after the end ignored
    ],
)
def test_time_weighted_mean(samples: list[tuple[datetime, float]], mean: float | None, covered_h: float) -> None:
    result = time_weighted_mean(samples, START, START + 4 * H)
    assert (result.mean, result.covered_s) == (mean, covered_h * 3600)


def test_targets_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (TARGETS.repair_timeliness, TARGETS.follow_up_rate, TARGETS.arrival_within) == (
        0.99,
        0.30,
        timedelta(minutes=20),
    )
    monkeypatch.setenv("FACMON_KPI_FOLLOW_UP_RATE", "0.5")
    assert KpiTargets().follow_up_rate == 0.5
