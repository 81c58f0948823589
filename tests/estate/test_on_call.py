"""Who is on call, as tables of site-local times: rotation arithmetic, handoff edges, DST in Berlin, overrides."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from facmon.estate.on_call import on_call, on_call_for_work_order
from facmon.estate.site import Site
from facmon.kernel.model import Discipline

BERLIN = ZoneInfo("Europe/Berlin")
TECHNICIANS = [
    {"id": i, "name": i.upper(), "phone": f"+49 30 000{n}", "disciplines": ["elevator", "fire"]}
    for n, i in enumerate(("ana", "ben", "cem"))
]


def site(on_call_section: dict[str, Any], **extra: Any) -> Site:
    return Site.model_validate(
        {
            "site": {"id": "berlin", "timezone": "Europe/Berlin"},
            "buildings": [{"id": "b1"}],
            "technicians": TECHNICIANS,
            "on_call": on_call_section,
            **extra,
        }
    )


# Daily from Friday 2026-03-27 08:30; clocks go forward on Sunday 2026-03-29 and back on Sunday 2026-10-25.
DAILY = {"technicians": ["ana", "ben", "cem"], "every": "daily", "handoff": "08:30", "start": "2026-03-27"}


def local(day: str, clock: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=BERLIN)


@pytest.mark.parametrize(
    ("at", "technician", "since", "until"),
    [
        (local("2026-03-27", "08:29:59"), None, None, None),  # before the rota's first handoff: nobody
        (local("2026-03-27", "08:30:00"), "ana", local("2026-03-27", "08:30"), local("2026-03-28", "08:30")),
        (local("2026-03-28", "08:29:59"), "ana", local("2026-03-27", "08:30"), local("2026-03-28", "08:30")),
        (local("2026-03-28", "08:30:00"), "ben", local("2026-03-28", "08:30"), local("2026-03-29", "08:30")),
        (local("2026-03-29", "03:00:00"), "ben", local("2026-03-28", "08:30"), local("2026-03-29", "08:30")),
        (local("2026-03-29", "08:29:59"), "ben", local("2026-03-28", "08:30"), local("2026-03-29", "08:30")),
        (local("2026-03-29", "08:30:00"), "cem", local("2026-03-29", "08:30"), local("2026-03-30", "08:30")),
        (local("2026-03-30", "08:30:00"), "ana", local("2026-03-30", "08:30"), local("2026-03-31", "08:30")),
        (local("2026-10-25", "08:29:59"), "ben", local("2026-10-24", "08:30"), local("2026-10-25", "08:30")),
    ],
)
def test_a_daily_rota_hands_over_at_the_local_handoff(
    at: datetime, technician: str | None, since: datetime | None, until: datetime | None
) -> None:
    answer = on_call(site({"elevator": DAILY}), Discipline.ELEVATOR, at)
    if technician is None:
        assert answer is None
        return
    assert answer is not None
    assert (answer.technician.id, answer.start, answer.until, answer.source) == (technician, since, until, "rota")


def test_the_same_instant_in_any_zone_gives_the_same_answer() -> None:
    berlin = local("2026-03-28", "08:30")
    the_site = site({"elevator": DAILY})
    assert on_call(the_site, Discipline.ELEVATOR, berlin) == on_call(
        the_site, Discipline.ELEVATOR, berlin.astimezone(ZoneInfo("Asia/Shanghai"))
    )


@pytest.mark.parametrize(
    ("day", "hours"),
    [("2026-03-28", 23), ("2026-03-27", 24), ("2026-10-24", 25), ("2026-10-25", 24)],
)
def test_shifts_across_dst_last_from_handoff_to_handoff_on_the_wall_clock(day: str, hours: int) -> None:
    answer = on_call(site({"elevator": DAILY}), Discipline.ELEVATOR, local(day, "12:00"))
    assert answer is not None
    assert answer.until - answer.start == timedelta(hours=hours)
    assert answer.start.astimezone(BERLIN).time().isoformat() == "08:30:00"
    assert answer.until.astimezone(BERLIN).time().isoformat() == "08:30:00"


def test_a_handoff_in_the_spring_forward_gap_happens_when_the_clocks_have_jumped() -> None:
    rota = {**DAILY, "handoff": "02:30"}  # 02:30 does not exist in Berlin on 2026-03-29
    the_site = site({"elevator": rota})
    before = on_call(the_site, Discipline.ELEVATOR, local("2026-03-29", "03:29:59"))
    after = on_call(the_site, Discipline.ELEVATOR, local("2026-03-29", "03:30:00"))
    assert before is not None
    assert after is not None
    assert (before.technician.id, after.technician.id) == ("ben", "cem")
    assert after.start == local("2026-03-29", "03:30")


@pytest.mark.parametrize(
    ("every", "technicians", "at", "expected"),
    [
        ("1w", ["ana", "ben"], local("2026-04-03", "08:29"), "ana"),  # the first week ends 2026-04-03 08:30
        ("1w", ["ana", "ben"], local("2026-04-03", "08:30"), "ben"),
        ("1w", ["ana", "ben"], local("2026-04-10", "08:30"), "ana"),  # wraps round
        ("weekly", ["ana", "ben", "cem"], local("2026-04-10", "09:00"), "cem"),
        ("weekly", ["ana", "ben", "cem"], local("2026-04-17", "09:00"), "ana"),
        ("2d", ["ana", "ben"], local("2026-03-28", "23:00"), "ana"),
        ("2d", ["ana", "ben"], local("2026-03-29", "08:30"), "ben"),
        ("2w", ["ana", "ben", "cem"], local("2026-05-08", "08:29"), "cem"),  # fortnight 2 ends 05-08 08:30
        ("2w", ["ana", "ben", "cem"], local("2026-05-08", "08:30"), "ana"),
        ("2w", ["ana", "ben", "cem"], local("2027-03-26", "08:30"), "cem"),  # 364 days on: fortnight 26, 26 % 3 == 2
        ("daily", ["ana"], local("2030-01-01", "00:00"), "ana"),
    ],
)
def test_rotation_arithmetic(every: str, technicians: list[str], at: datetime, expected: str) -> None:
    rota = {**DAILY, "every": every, "technicians": technicians}
    answer = on_call(site({"elevator": rota}), Discipline.ELEVATOR, at)
    assert answer is not None
    assert answer.technician.id == expected


# 2026-04-01 is cem's day (daily from 03-27: ana, ben, cem, ana, ben, cem); ana covers 12:00-18:00 of it, and cem
# swaps ana's whole day on 04-02 (a swap is an override for the shift given away).
OVERRIDES = [
    {"discipline": "elevator", "technician": "ana", "from": "2026-04-01 12:00", "to": "2026-04-01 18:00"},
    {"discipline": "elevator", "technician": "cem", "from": "2026-04-02 08:30", "to": "2026-04-03 08:30"},
    {"discipline": "fire", "technician": "ben", "from": "2026-04-01 00:00", "to": "2026-04-02 00:00"},
]


@pytest.mark.parametrize(
    ("discipline", "at", "technician", "source", "since", "until"),
    [
        ("elevator", ("04-01", "11:59:59"), "cem", "rota", ("04-01", "08:30"), ("04-01", "12:00")),
        ("elevator", ("04-01", "12:00:00"), "ana", "override", ("04-01", "12:00"), ("04-01", "18:00")),
        ("elevator", ("04-01", "17:59:59"), "ana", "override", ("04-01", "12:00"), ("04-01", "18:00")),
        ("elevator", ("04-01", "18:00:00"), "cem", "rota", ("04-01", "18:00"), ("04-02", "08:30")),
        ("elevator", ("04-02", "08:30:00"), "cem", "override", ("04-02", "08:30"), ("04-03", "08:30")),
        ("elevator", ("04-03", "08:30:00"), "ben", "rota", ("04-03", "08:30"), ("04-04", "08:30")),
        ("fire", ("04-01", "00:00:00"), "ben", "override", ("04-01", "00:00"), ("04-02", "00:00")),
    ],
)
def test_overrides_win_over_the_rota_and_cut_its_shift(
    discipline: str,
    at: tuple[str, str],
    technician: str,
    source: str,
    since: tuple[str, str],
    until: tuple[str, str],
) -> None:
    the_site = site({"elevator": DAILY, "overrides": OVERRIDES})
    answer = on_call(the_site, Discipline(discipline), local(f"2026-{at[0]}", at[1]))
    assert answer is not None
    assert (answer.technician.id, answer.source) == (technician, source)
    assert (answer.start, answer.until) == (local(f"2026-{since[0]}", since[1]), local(f"2026-{until[0]}", until[1]))


def test_without_a_rota_only_overrides_put_someone_on_call() -> None:
    the_site = site({"elevator": DAILY, "overrides": OVERRIDES})
    assert on_call(the_site, Discipline.FIRE, local("2026-04-02", "00:00")) is None
    assert on_call(the_site, Discipline.SECURITY, local("2026-04-01", "12:00")) is None


@pytest.mark.parametrize(
    ("kind", "discipline"),
    [
        ("elevator", Discipline.ELEVATOR),
        ("fire_panel", Discipline.FIRE),
        ("fire_system", Discipline.FIRE),
        ("gate", Discipline.SECURITY),
        ("camera", Discipline.SECURITY),
    ],
)
def test_a_work_order_goes_to_its_disciplines_on_call_with_the_escalation_chain(
    kind: str, discipline: Discipline
) -> None:
    rota = {**DAILY, "technicians": ["ben"]}
    the_site = site(
        {"elevator": rota, "fire": rota},
        supervisor="ana",
        manager={"name": "Dora", "phone": "+49 30 9999", "email": "dora@example.com"},
    )
    chain = on_call_for_work_order(the_site, kind, local("2026-04-01", "12:00"))
    assert chain.discipline is discipline
    assert (chain.on_call.technician.id if chain.on_call else None) == (
        None if discipline is Discipline.SECURITY else "ben"
    )
    assert chain.supervisor is not None
    assert (chain.supervisor.name, chain.supervisor.phone, chain.supervisor.technician) == ("ANA", "+49 30 0000", "ana")
    assert chain.manager is not None
    assert (chain.manager.name, chain.manager.email, chain.manager.technician) == ("Dora", "dora@example.com", None)


def test_a_kind_no_discipline_covers_is_refused() -> None:
    with pytest.raises(ValueError, match="no discipline covers work orders of kind 'boiler'"):
        on_call_for_work_order(site({}), "boiler", local("2026-04-01", "12:00"))


def test_no_supervisor_or_manager_is_none() -> None:
    chain = on_call_for_work_order(site({}), "elevator", local("2026-04-01", "12:00"))
    assert (chain.on_call, chain.supervisor, chain.manager) == (None, None, None)
