"""The KPI decisions as tables: which work orders count, in the numerator and the denominator, judged by each work
order's own clocks; pending, cancelled and clock-less work orders; verdicts from value, target and coverage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from facmon.reports.kpi import (
    ClockFacts,
    ClockFigure,
    KpiRow,
    KpiTargets,
    arrival,
    contract_clock,
    follow_up,
    repair,
    statutory_clock,
    time_weighted_mean,
)
from facmon.reports.kpi_cancellations import missed_at_cancellation
from facmon.reports.kpi_verdict import Coverage, coverage_reason, met_of, verdict

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 4, 1, tzinfo=UTC)
NOW = datetime(2026, 4, 2, tzinfo=UTC)
DETECTED = START + timedelta(days=10)

# Profiles as sla.yaml has them: name -> (milestone, minutes from detection); the first on_site clock is `main`.
FAULT = {"on_site": ("on_site", 20), "repair": ("resolved", 24 * 60)}
ENTRAPMENT = {
    "acknowledge": ("acknowledged", 3),
    "on_site": ("on_site", 20),
    "statutory_on_site": ("on_site", 30),
    "repair": ("resolved", 240),
}
CONTRACT_30 = {"on_site": ("on_site", 30), "repair": ("resolved", 24 * 60)}


def m(minutes: float, detected: datetime = DETECTED) -> datetime:
    return detected + timedelta(minutes=minutes)


def wo(
    profile: dict[str, tuple[str, float]] | None = FAULT,
    *,
    kind: str = "elevator",
    category: str = "repair",
    detected: datetime = DETECTED,
    on_site: float | None = None,
    resolved: float | None = None,
    cancelled: float | None = None,
    follow_ups: int = 0,
    main: str = "on_site",
) -> KpiRow:
    """A work order as the workflow leaves it: milestones meet their clocks, a cancellation stops the clocks still
    running (times in minutes after detection). `profile=None`: opened before SLA profiles, 20 min main deadline."""
    reached = {
        "acknowledged": on_site,
        "on_site": on_site,
        "resolved": resolved,
    }
    clocks = []
    for name, (milestone, minutes) in (profile or {}).items():
        met = reached[milestone]
        stopped = cancelled if met is None else None
        clocks.append(
            ClockFacts(
                name,
                milestone,
                m(minutes, detected),
                None if met is None else m(met, detected),
                None if stopped is None else m(stopped, detected),
            )
        )
    due = m(profile[main][1], detected) if profile else m(20, detected)
    status = "cancelled" if cancelled is not None else "resolved" if resolved is not None else "open"
    return KpiRow(
        kind=kind,
        status=status,
        detected_at=detected,
        due_at=due,
        on_site_at=None if on_site is None else m(on_site, detected),
        resolved_at=None if resolved is None else m(resolved, detected),
        cancelled_at=None if cancelled is None else m(cancelled, detected),
        follow_ups=follow_ups,
        clocks=tuple(clocks),
        category=category,
    )


@pytest.mark.parametrize(
    ("rows", "now", "expected"),
    [
        ([wo(on_site=20)], NOW, (1, 1, 0)),  # on site at the very deadline is on time
        ([wo(on_site=20.5)], NOW, (0, 1, 0)),
        ([wo()], NOW, (0, 1, 0)),  # never came, deadline long gone
        ([wo()], m(10), (0, 0, 1)),  # deadline ahead: pending, in no figure
        ([wo()], m(20), (0, 0, 1)),  # at the deadline itself still pending
        ([wo(cancelled=5)], NOW, (0, 0, 0)),  # a false alarm cancelled in time leaves the figure
        ([wo(cancelled=20)], NOW, (0, 0, 0)),  # cancelled at the deadline: it had not been missed yet
        ([wo(cancelled=45)], NOW, (0, 1, 0)),  # cancelled after the deadline: the miss stays
        ([wo(on_site=12, cancelled=30)], NOW, (1, 1, 0)),  # met, then cancelled: the arrival stays met
        ([wo(on_site=25, cancelled=30)], NOW, (0, 1, 0)),  # late, then cancelled: the miss stays
        ([wo(CONTRACT_30, on_site=25)], NOW, (1, 1, 0)),  # a 30 min contract is judged against 30 min
        ([wo(CONTRACT_30, on_site=31)], NOW, (0, 1, 0)),
        ([wo(kind="fire_panel", on_site=5)], NOW, (0, 0, 0)),  # elevators only
        # An overdue maintenance visit (a check) owes no arrival; a task (bring the backup in) does.
        ([wo(on_site=300, category="check"), wo(on_site=30, category="task")], NOW, (0, 1, 0)),
        ([wo(detected=START - timedelta(minutes=1), on_site=1)], NOW, (0, 0, 0)),  # detected before the period
        ([wo(detected=END, on_site=1)], NOW, (0, 0, 0)),  # the period's end is exclusive
        ([wo(on_site=3), wo(on_site=30), wo(on_site=19)], NOW, (2, 3, 0)),
        ([wo(None, on_site=20)], NOW, (1, 1, 0)),  # no stored clocks: the main deadline
        ([wo(None, on_site=21)], NOW, (0, 1, 0)),
        ([wo(None, cancelled=5)], NOW, (0, 0, 0)),
        ([wo(None, cancelled=25)], NOW, (0, 1, 0)),
        ([wo({"repair": ("resolved", 60)}, main="repair")], NOW, (0, 0, 0)),  # no on-site clock at all
    ],
)
def test_arrival_by_the_contract_clock(rows: list[KpiRow], now: datetime, expected: tuple[int, int, int]) -> None:
    judged = arrival(rows, START, END, now)
    ratio = judged.ratio(1.0)
    assert (ratio.numerator, ratio.denominator, judged.pending) == expected


def test_the_contract_clock_is_the_main_one_never_the_statutory_one() -> None:
    # main names the 45-minute clock although a 20-minute on-site clock comes first; a statutory clock shorter than
    # the contract's (a strange file) is still not the contract's.
    odd = {
        "statutory_on_site": ("on_site", 15),
        "early": ("on_site", 20),
        "agreed": ("on_site", 45),
        "repair": ("resolved", 600),
    }
    row = wo(odd, main="agreed", on_site=40)
    assert (contract_clock(row) or ClockFacts("", "", NOW)).name == "agreed"
    assert arrival([row], START, END, NOW).ratio(1.0).numerator == 1
    # Without a clock at the main deadline (main is not an on-site clock), the earliest non-statutory on-site one.
    row = wo(odd, main="repair", on_site=40)
    assert (contract_clock(row) or ClockFacts("", "", NOW)).name == "early"
    assert statutory_clock(row) is not None


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([wo(ENTRAPMENT, on_site=25)], (1, 1)),  # 25 min: late by contract, in time by law
        ([wo(ENTRAPMENT, on_site=30)], (1, 1)),
        ([wo(ENTRAPMENT, on_site=31)], (0, 1)),
        ([wo(ENTRAPMENT, cancelled=25)], (0, 0)),  # cancelled before the statutory deadline
        ([wo(ENTRAPMENT, cancelled=35)], (0, 1)),
        ([wo(FAULT, on_site=50), wo(None, on_site=50)], (0, 0)),  # no statutory clock: not in this figure
    ],
)
def test_arrival_by_the_statutory_clock(rows: list[KpiRow], expected: tuple[int, int]) -> None:
    ratio = arrival(rows, START, END, NOW, statutory_clock).ratio(1.0)
    assert (ratio.numerator, ratio.denominator) == expected


def test_the_clock_figures_counted() -> None:
    rows = [wo(on_site=5), wo(on_site=25), wo(CONTRACT_30, on_site=10), wo(ENTRAPMENT, on_site=10), wo()]
    judged = arrival(rows, START, END, m(25))  # the last one, never attended, missed its 20 minutes
    assert judged.clocks == (ClockFigure(20, 4), ClockFigure(30, 1))
    assert arrival(rows, START, END, m(25), statutory_clock).clocks == (ClockFigure(30, 1),)
    odd = wo({"on_site": ("on_site", 0.5), "repair": ("resolved", 60)}, on_site=0.25)
    assert arrival([odd], START, END, NOW).clocks == (ClockFigure(0.5, 1),)


@pytest.mark.parametrize(
    ("rows", "now", "expected"),
    [
        ([wo(on_site=10, resolved=60)], NOW, (1, 1, 0)),
        ([wo(on_site=10, resolved=24 * 60)], NOW, (1, 1, 0)),  # at the deadline is in time
        ([wo(on_site=10, resolved=24 * 60 + 1)], NOW, (0, 1, 0)),
        ([wo(on_site=10)], NOW, (0, 1, 0)),  # overdue and still not repaired
        ([wo(on_site=10)], m(60), (0, 0, 1)),  # not due yet
        ([wo(cancelled=60)], NOW, (0, 0, 0)),  # cancelled before the repair deadline
        ([wo(cancelled=25 * 60)], NOW, (0, 1, 0)),  # cancelled after it: the miss stays
        ([wo(ENTRAPMENT, on_site=10, resolved=241)], NOW, (0, 1, 0)),  # the entrapment's 4 h repair clock
        ([wo({"on_site": ("on_site", 20)}, on_site=10, resolved=20)], NOW, (1, 1, 0)),  # no repair clock: due_at
        ([wo({"on_site": ("on_site", 20)}, on_site=10, resolved=21)], NOW, (0, 1, 0)),
        ([wo(None, on_site=10, resolved=21)], NOW, (0, 1, 0)),  # no clocks at all: due_at
        # Due in the period although detected before it; due after the period is not counted.
        ([wo(detected=START - timedelta(hours=2), on_site=10, resolved=60)], NOW, (1, 1, 0)),
        ([wo(detected=END - timedelta(hours=1), on_site=10, resolved=60)], NOW, (0, 0, 0)),
    ],
)
def test_repair_by_the_repair_clock(rows: list[KpiRow], now: datetime, expected: tuple[int, int, int]) -> None:
    judged = repair(rows, START, END, now)
    ratio = judged.ratio(0.99)
    assert (ratio.numerator, ratio.denominator, judged.pending) == expected


@pytest.mark.parametrize(
    ("rows", "expected", "met"),
    [
        ([], (0, 0), None),
        (
            [wo(on_site=5, resolved=60, follow_ups=1), wo(on_site=5, resolved=60), wo(on_site=5, resolved=60)],
            (1, 3),
            True,
        ),
        ([wo(on_site=5, resolved=60, follow_ups=2)] + [wo(on_site=5, resolved=60)] * 3, (1, 4), False),  # 25 % < 30 %
        ([wo(on_site=5)], (0, 0), None),  # not resolved
        ([wo(on_site=5, cancelled=50)], (0, 0), None),
        ([wo(detected=END - timedelta(minutes=30), on_site=5, resolved=30)], (0, 0), None),  # resolved at the end
    ],
)
def test_follow_up_rate(rows: list[KpiRow], expected: tuple[int, int], met: bool | None) -> None:
    ratio = follow_up(rows, START, END).ratio(0.3)
    assert ((ratio.numerator, ratio.denominator), ratio.met) == (expected, met)


def test_missed_clocks_at_a_cancellation() -> None:
    late = wo(ENTRAPMENT, cancelled=25)  # acknowledge (3 min) and on_site (20 min) missed, statutory not yet
    assert late.cancelled_at is not None
    assert missed_at_cancellation(late.clocks, late.cancelled_at) == ("acknowledge", "on_site")
    early = wo(ENTRAPMENT, cancelled=2)
    assert early.cancelled_at is not None
    assert missed_at_cancellation(early.clocks, early.cancelled_at) == ()
    arrived_late = wo(FAULT, on_site=22, cancelled=30)
    assert arrived_late.cancelled_at is not None
    assert missed_at_cancellation(arrived_late.clocks, arrived_late.cancelled_at) == ("on_site",)


@pytest.mark.parametrize(
    ("value", "coverage", "expected"),
    [
        (None, 1.0, "no data"),
        (None, None, "no data"),
        (1.0, None, "insufficient data"),  # coverage unknown
        (1.0, 0.9499, "insufficient data"),  # 100 % on too little data is not "met"
        (0.5, 0.9499, "insufficient data"),
        (1.0, 0.95, "met"),
        (0.99, 1.0, "missed"),
    ],
)
def test_verdict(value: float | None, coverage: float | None, expected: str) -> None:
    judgement = verdict(value, 1.0, coverage, 0.95)
    assert judgement == expected
    assert met_of(judgement) == {"met": True, "missed": False}.get(expected)


def test_coverage_is_rounded_and_explained() -> None:
    assert Coverage.of(0.949996) == Coverage(0.95)
    assert Coverage.of(1.0000001) == Coverage(1.0)
    assert Coverage.of(None, "no site file") == Coverage(None, "no site file")
    assert coverage_reason(Coverage(0.5), 0.95) == "coverage 50.00% is below 95%"
    assert coverage_reason(Coverage(None, "coverage unknown: InfluxDB not reachable"), 0.95) == (
        "coverage unknown: InfluxDB not reachable"
    )
    assert coverage_reason(Coverage(0.95), 0.95) is None


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
    targets = KpiTargets()
    assert (targets.repair_timeliness, targets.follow_up_rate, targets.min_coverage) == (0.99, 0.30, 0.95)
    monkeypatch.setenv("FACMON_KPI_FOLLOW_UP_RATE", "0.5")
    monkeypatch.setenv("FACMON_KPI_MIN_COVERAGE", "0.8")
    assert (KpiTargets().follow_up_rate, KpiTargets().min_coverage) == (0.5, 0.8)
