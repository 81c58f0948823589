"""SLA profiles (the library file and bad files) and compliance as a pure function of a clock and `now`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from facmon.workorders.sla import (
    ClockDeadline,
    ClockState,
    SlaFileError,
    clock_compliance,
    compliance,
    load_sla_profiles,
    overall,
)
from facmon.workorders.tables import Milestone

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
PROFILES = load_sla_profiles()


def test_library_profiles() -> None:
    assert set(PROFILES) == {
        "elevator.entrapment",
        "elevator.fault",
        "fire.point",
        "fire.panel",
        "gate.fault",
        "camera.fault",
        "comm_lost",
    }
    entrapment = PROFILES["elevator.entrapment"]
    assert entrapment.main_clock == "on_site"
    assert entrapment.deadlines(T0) == (
        ClockDeadline("acknowledge", Milestone.ACKNOWLEDGED, T0 + 3 * MIN),
        ClockDeadline("on_site", Milestone.ON_SITE, T0 + 20 * MIN),
        ClockDeadline("statutory_on_site", Milestone.ON_SITE, T0 + 30 * MIN),
        ClockDeadline("repair", Milestone.RESOLVED, T0 + 4 * 60 * MIN),
    )
    fault = PROFILES["elevator.fault"]
    assert fault.main_clock == "on_site"
    assert fault.deadlines(T0) == (
        ClockDeadline("on_site", Milestone.ON_SITE, T0 + 20 * MIN),
        ClockDeadline("repair", Milestone.RESOLVED, T0 + 24 * 60 * MIN),
    )
    fire = PROFILES["fire.point"]
    assert [(d.milestone, d.due_at - T0) for d in fire.deadlines(T0)] == [
        (Milestone.ON_SITE, timedelta(hours=4)),
        (Milestone.RESOLVED, timedelta(hours=24)),
    ]


def test_hold_time_moves_every_clock() -> None:
    comm = PROFILES["comm_lost"]
    assert comm.hold == 10 * MIN
    assert [d.due_at - T0 for d in comm.deadlines(T0)] == [
        timedelta(hours=2, minutes=10),
        timedelta(hours=24, minutes=10),
    ]


def test_main_clock_can_be_named(tmp_path: Path) -> None:
    path = tmp_path / "sla.yaml"
    path.write_text(
        "profiles:\n"
        "  - id: repair-only\n"
        "    main: fix\n"
        "    clocks: [{name: fix, milestone: resolved, within: 2d}, {name: look, milestone: on_site, within: 90s}]\n",
        encoding="utf-8",
    )
    profile = load_sla_profiles(path)["repair-only"]
    assert profile.main_clock == "fix"
    assert [d.due_at - T0 for d in profile.deadlines(T0)] == [timedelta(days=2), timedelta(seconds=90)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "profiles:\n  - {id: p1, clocks: [{name: a, milestone: on_site, within: 20}]}\n",
            "profile p1: clocks.0.within",
        ),
        ("profiles:\n  - {id: p2, clocks: [{name: a, milestone: on_site, within: 3 weeks}]}\n", "is not a duration"),
        (
            "profiles:\n  - {id: p3, clocks: [{name: a, milestone: arrived, within: 3min}]}\n",
            "profile p3: clocks.0.milestone",
        ),
        (
            "profiles:\n  - {id: p4, clocks: [{name: a, milestone: on_site, within: 0min}]}\n",
            "within must be more than 0",
        ),
        (
            "profiles:\n  - {id: p5, clocks: [{name: a, milestone: on_site, within: 1h},"
            " {name: a, milestone: resolved, within: 2h}]}\n",
            "profile p5: clock names used twice: ['a']",
        ),
        ("profiles:\n  - {id: p6, main: b, clocks: [{name: a, milestone: on_site, within: 1h}]}\n", "main clock 'b'"),
        (
            "profiles:\n  - {id: p7, clocks: [{name: a, milestone: resolved, within: 1h}]}\n",
            "profile p7: no on_site clock",
        ),
        ("profiles:\n  - {id: p8, clocks: []}\n", "profile p8: clocks: "),
        (
            "profiles:\n  - {id: p9, colour: red, clocks: [{name: a, milestone: on_site, within: 1h}]}\n",
            "profile p9: colour",
        ),
        ("profiles:\n  - {clocks: [{name: a, milestone: on_site, within: 1h}]}\n", "profile #1: id: Field required"),
        (
            "profiles:\n  - {id: twice, clocks: [{name: a, milestone: on_site, within: 1h}]}\n"
            "  - {id: twice, clocks: [{name: a, milestone: on_site, within: 1h}]}\n",
            "profile twice: id used twice",
        ),
        (
            "profiles:\n  - {id: p10, hold: 8d, clocks: [{name: a, milestone: on_site, within: 1h}]}\n",
            "profile p10: hold must be between 0 and 7 days",
        ),
        ("profile: []\n", "expected a mapping with one key, 'profiles'"),
        ("profiles: [\n", "not valid YAML"),
    ],
)
def test_bad_profile_files_name_file_profile_and_reason(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad-sla.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SlaFileError) as caught:
        load_sla_profiles(path)
    assert any(p.startswith(f"{path}:") and expected in p for p in caught.value.problems), caught.value.problems


def test_missing_profile_file() -> None:
    with pytest.raises(SlaFileError, match="cannot read"):
        load_sla_profiles("/nonexistent/sla.yaml")


@dataclass
class Clock:
    due_at: datetime
    met_at: datetime | None = None
    cancelled_at: datetime | None = None
    name: str = "on_site"
    milestone: str = "on_site"


DUE = T0 + 20 * MIN


@pytest.mark.parametrize(
    ("clock", "now", "state", "left_s", "overdue_s"),
    [
        (Clock(DUE), T0, ClockState.PENDING, 1200.0, None),
        (Clock(DUE), DUE - MIN, ClockState.PENDING, 60.0, None),
        (Clock(DUE), DUE, ClockState.PENDING, 0.0, None),  # the deadline itself is still in time
        (Clock(DUE), DUE + timedelta(seconds=1), ClockState.BREACHED, None, 1.0),
        (Clock(DUE), DUE + 5 * MIN, ClockState.BREACHED, None, 300.0),
        (Clock(DUE, met_at=T0 + 12 * MIN), DUE + 60 * MIN, ClockState.MET, None, None),
        (Clock(DUE, met_at=DUE), DUE + 60 * MIN, ClockState.MET, None, None),
        (Clock(DUE, met_at=DUE + 2 * MIN), DUE + 60 * MIN, ClockState.BREACHED, None, 120.0),  # met late
        (Clock(DUE, cancelled_at=T0 + 5 * MIN), DUE + 60 * MIN, ClockState.CANCELLED, None, None),
        (Clock(DUE, cancelled_at=DUE + 3 * MIN), DUE + 60 * MIN, ClockState.BREACHED, None, 180.0),  # too late
    ],
)
def test_clock_compliance(
    clock: Clock, now: datetime, state: ClockState, left_s: float | None, overdue_s: float | None
) -> None:
    result = clock_compliance(clock, now)
    assert (result.state, result.time_left_s, result.overdue_s) == (state, left_s, overdue_s)
    assert (result.name, result.milestone, result.due_at, result.met_at) == (
        "on_site",
        Milestone.ON_SITE,
        DUE,
        clock.met_at,
    )


def test_overall_is_the_worst_clock() -> None:
    now = T0 + 10 * MIN
    ack_met = Clock(T0 + 3 * MIN, met_at=T0 + MIN, name="acknowledge", milestone="acknowledged")
    ack_late = Clock(T0 + 3 * MIN, name="acknowledge", milestone="acknowledged")
    arrival = Clock(DUE)
    assert overall(compliance([ack_met, arrival], now)) is ClockState.PENDING
    assert overall(compliance([ack_late, arrival], now)) is ClockState.BREACHED
    assert overall(compliance([ack_met], now)) is ClockState.MET
    assert overall(compliance([Clock(DUE, cancelled_at=now)], now)) is ClockState.CANCELLED
    assert overall(compliance([], now)) is None
