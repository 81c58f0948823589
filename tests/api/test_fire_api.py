"""Fire alarms, single-item checks and KPIs through the HTTP API, on a fake clock over real SQLite (and influxd)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from api import create_app
from api.accounts.models import Role
from api.deps import get_clock
from facmon.estate.site import Site
from facmon.historian.lines import reading_line
from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import Influxd
from facmon.kernel.influx import InfluxSettings
from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType, Reading
from facmon.reports.kpi_data import InfluxReader
from facmon.workorders.tables import FollowUpOutcome, WorkOrderStatus
from facmon.workorders.workflow import add_follow_up, transition
from rules.engine import FireAlarmSignal, evaluate, load_rules
from rules.fire import record_fire_signals
from rules.store import apply_event
from tests.api.accounts import bearer
from tests.api.lift_site import lift_site, local
from tests.rules.support import elevator

# 2026-03-02 09:00 in Shanghai; that local day runs from 2026-03-01T16:00Z to 2026-03-02T16:00Z.
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
DAY_START = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
RULES = load_rules()
SITE = Site.model_validate(
    {
        "site": {"id": "s1", "timezone": "Asia/Shanghai"},
        "buildings": [
            {
                "id": "b1",
                "devices": [
                    {"id": "fp1", "kind": "fire_panel", "model": "fire-gb-a", "address": {"host": "127.0.0.1"}}
                ],
            }
        ],
    }
)
PANEL = DeviceRef(site="s1", building="b1", device="fp1", kind=DeviceKind.FIRE_PANEL, model="fire-gb-a")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


def make_app(engine: Engine, clock: FakeClock, influx: InfluxReader | None = None) -> FastAPI:
    app = create_app(sites=[SITE], engine=engine, influx=influx)
    app.dependency_overrides[get_clock] = lambda: clock
    return app


@pytest.fixture
async def client(engine: Engine, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(engine, clock))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://facmon.test/api/v1", headers=bearer(engine, Role.ENGINEER)
    ) as client:
        yield client


def fire(engine: Engine, at: datetime, point: str = "1-004", code: str = "fire") -> list[int]:
    event = Event(ref=PANEL, ts=at, type=EventType.FAULT_RAISED, code=code, point=point)
    signals = [a for a in evaluate(RULES, event, at) if isinstance(a, FireAlarmSignal)]
    return record_fire_signals(engine, signals, at)


def z(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def verdict(
    client: httpx.AsyncClient, alarm_id: int, outcome: str = "false_alarm", **body: Any
) -> httpx.Response:
    return await client.post(f"/fire-alarms/{alarm_id}/outcome", json={"outcome": outcome, **body})


# --- fire alarms ---------------------------------------------------------------------------------------------------


async def test_false_alarms_are_counted_per_local_day_and_the_sixth_flags_the_site(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    # One alarm a second before the local day, six inside it (the first at its very start), one supervisory signal.
    [before] = fire(engine, DAY_START - timedelta(seconds=1), point="1-001")
    ids = [fire(engine, DAY_START + timedelta(hours=h), point=f"1-01{h}")[0] for h in range(6)]
    assert fire(engine, DAY_START, point="1-007", code="supervisory") == []

    answer = await verdict(client, before)
    assert answer.status_code == 200
    assert answer.json()["site_day"] == {"site": "s1", "day": "2026-03-01", "false_alarms": 1, "flagged": False}
    for n, alarm_id in enumerate(ids[:5], start=1):
        body = (await verdict(client, alarm_id, note="dust")).json()
        assert body["site_day"] == {"site": "s1", "day": "2026-03-02", "false_alarms": n, "flagged": False}
        assert (body["alarm"]["outcome"], body["alarm"]["outcome_by"], body["alarm"]["note"]) == (
            "false_alarm",
            "test-engineer",
            "dust",
        )
    sixth = (await verdict(client, ids[5])).json()
    assert sixth["site_day"] == {"site": "s1", "day": "2026-03-02", "false_alarms": 6, "flagged": True}

    listed = (await client.get("/fire-alarms", params={"site": "s1"})).json()
    assert listed["total"] == 7
    assert listed["false_alarm_days"] == [
        {"site": "s1", "day": "2026-03-01", "false_alarms": 1, "flagged": False},
        {"site": "s1", "day": "2026-03-02", "false_alarms": 6, "flagged": True},
    ]
    # Confirming one after all takes the day back under the limit.
    assert (await verdict(client, ids[0], "confirmed")).json()["site_day"]["flagged"] is False


async def test_list_filters_by_site_and_time(client: httpx.AsyncClient, engine: Engine) -> None:
    fire(engine, START - timedelta(hours=2), point="1-001")
    fire(engine, START, point="1-002")
    params = {"site": "s1", "from": z(START - timedelta(hours=1)), "to": z(START + timedelta(seconds=1))}
    body = (await client.get("/fire-alarms", params=params)).json()
    assert [(a["point"], a["raised_at"], a["outcome"], a["cleared_at"]) for a in body["items"]] == [
        ("1-002", z(START), "unknown", None)
    ]
    assert body["false_alarm_days"] == []
    assert (await client.get("/fire-alarms", params={"site": "elsewhere"})).json()["total"] == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "to"),
        ({"from": "2026-03-02T00:00:00"}, "from"),  # no zone
        ({"limit": "0"}, "limit"),
    ],
)
async def test_bad_list_parameters_are_422(client: httpx.AsyncClient, params: dict[str, str], field: str) -> None:
    response = await client.get("/fire-alarms", params=params)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [f"query.{field}"]


async def test_outcome_of_an_unknown_alarm_is_404_and_a_bad_body_422(client: httpx.AsyncClient, engine: Engine) -> None:
    missing = await verdict(client, 99)
    assert (missing.status_code, missing.headers["content-type"]) == (404, "application/problem+json")
    [alarm_id] = fire(engine, START)
    assert (await verdict(client, alarm_id, "unknown")).status_code == 422  # a verdict, not a reset
    assert (
        await client.post(f"/fire-alarms/{alarm_id}/outcome", json={"outcome": "confirmed", "actor": "x"})
    ).status_code == 422
    assert (await verdict(client, 0)).status_code == 422


# --- single-item checks --------------------------------------------------------------------------------------------


async def test_checks_are_recorded_and_listed(client: httpx.AsyncClient, clock: FakeClock) -> None:
    one = await client.post(
        "/fire-checks",
        json={"site": "s1", "device": "fp1", "item": "detector test, loop 1", "result": "passed"},
    )
    assert one.status_code == 201
    assert (one.json()["at"], one.json()["system"]) == (z(START), None)
    earlier = z(START - timedelta(days=1))
    two = await client.post(
        "/fire-checks",
        json={"site": "s1", "system": "sprinkler", "item": "alarm valve", "result": "failed",
              "note": "valve stuck", "at": earlier},
    )  # fmt: skip
    assert two.status_code == 201
    listed = (await client.get("/fire-checks", params={"site": "s1"})).json()
    assert [(c["device"], c["system"], c["result"], c["at"]) for c in listed] == [
        ("fp1", None, "passed", z(START)),
        (None, "sprinkler", "failed", earlier),
    ]
    since = (await client.get("/fire-checks", params={"from": z(START - timedelta(hours=1))})).json()
    assert [c["device"] for c in since] == ["fp1"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"device": "fp1", "system": "sprinkler"}, None),  # both
        ({}, None),  # neither
        ({"device": "fp1", "result": "ok"}, "result"),
        ({"device": "fp1", "at": "2026-03-03T00:00:00Z"}, "at"),  # in the future
        ({"system": "Sprinkler System"}, "system"),
    ],
)
async def test_bad_checks_are_422(client: httpx.AsyncClient, body: dict[str, str], field: str | None) -> None:
    full = {"site": "s1", "item": "x", "result": "passed"} | body
    response = await client.post("/fire-checks", json=full)
    assert response.status_code == 422
    if field is not None:
        assert [e["field"] for e in response.json()["errors"]] == [f"body.{field}"]


# --- KPIs ----------------------------------------------------------------------------------------------------------


def elevator_fault(engine: Engine, at: datetime, device: str) -> int:
    event = Event(ref=elevator(site="s1", device=device), ts=at, type=EventType.FAULT_RAISED, code="2")
    [wo_id] = apply_event(engine, event, evaluate(RULES, event, at), at).opened
    return wo_id


async def test_kpis_from_work_orders(client: httpx.AsyncClient, engine: Engine, clock: FakeClock) -> None:
    t = START - timedelta(days=1)
    fast = elevator_fault(engine, t, "e1")
    slow = elevator_fault(engine, t, "e2")
    transition(engine, fast, WorkOrderStatus.ON_SITE, actor="li", source="api", at=t + timedelta(minutes=12))
    transition(engine, slow, WorkOrderStatus.ON_SITE, actor="li", source="api", at=t + timedelta(minutes=35))
    transition(engine, fast, WorkOrderStatus.RESOLVED, actor="li", source="api", at=t + timedelta(minutes=15))
    transition(engine, slow, WorkOrderStatus.RESOLVED, actor="li", source="api", at=t + timedelta(minutes=50))
    visit = t + timedelta(hours=1)
    add_follow_up(
        engine,
        fast,
        actor="zhao",
        outcome=FollowUpOutcome.SATISFIED,
        note=None,
        visited_at=visit,
        now=START,
        source="api",
    )
    params = {"site": "s1", "from": "2026-03-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"}
    response = await client.get("/kpis", params=params)
    assert response.status_code == 200
    body = response.json()
    assert (body["site"], body["from"], body["to"], body["generated_at"]) == (
        "s1",
        "2026-03-01T00:00:00Z",
        "2026-04-01T00:00:00Z",
        z(START),
    )
    # Without InfluxDB the coverage is unknown: the ratios stand, the verdict is "insufficient data", never "met".
    unknown = {"coverage": None, "verdict": "insufficient data", "reason": "coverage unknown: InfluxDB not configured",
               "met": None, "pending": 0}  # fmt: skip
    assert body["elevator_arrival_compliance"] == {
        "numerator": 1, "denominator": 2, "value": 0.5, "target": 1.0, "clocks": [{"minutes": 20, "work_orders": 2}]
    } | unknown  # fmt: skip
    assert body["elevator_arrival_compliance_statutory"] == {
        "numerator": 0, "denominator": 0, "value": None, "target": 1.0, "clocks": [], "coverage": None,
        "verdict": "no data", "reason": None, "met": None, "pending": 0,
    }  # fmt: skip
    # Elevator work orders' repair deadline is their 24 h repair clock, not the 20 min arrival: the slow one arrived
    # late (35 min) but was repaired at +50 min, so both count in time (due 2026-03-02 01:00, decided at that moment).
    assert body["repair_timeliness"] == {
        "numerator": 2, "denominator": 2, "value": 1.0, "target": 0.99, "clocks": [{"minutes": 1440, "work_orders": 2}]
    } | unknown  # fmt: skip
    assert body["follow_up_visit_rate"] == {
        "numerator": 1, "denominator": 2, "value": 0.5, "target": 0.3, "clocks": []
    } | unknown  # fmt: skip
    assert body["cancellations"] == []
    assert body["fire_equipment_intact_rate"]["available"] is False
    assert body["fire_equipment_intact_rate"]["reason"] == "the API is not connected to InfluxDB"
    assert body["elevator_availability"]["available"] is False
    assert body["elevator_availability"]["reason"] == (
        "not computed: fault downtime comes from the cars' readings, and the API is not connected to InfluxDB"
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-03-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"}, "site"),
        ({"site": "s1", "to": "2026-04-01T00:00:00Z"}, "from"),
        ({"site": "s1", "from": "2026-04-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "to"),
        ({"site": "s1", "from": "2026-03-01", "to": "2026-04-01T00:00:00Z"}, "from"),
    ],
)
async def test_bad_kpi_parameters_are_422(client: httpx.AsyncClient, params: dict[str, str], field: str) -> None:
    response = await client.get("/kpis", params=params)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [f"query.{field}"]


async def test_kpis_fire_intact_rate_from_influxdb(
    engine: Engine, clock: FakeClock, influxd: Influxd, influx_db: str
) -> None:
    begin = START - timedelta(hours=10)
    # The rules worker's figures, one a minute: 200 commissioned points, all intact for 5 hours, then one absent and
    # nine in fault (190 of 200) for 5 hours; no figure from 02:00 to 02:30 into the period (the worker was away).
    # A figure an hour before the period is not in force at its start: one holds for at most 5 minutes.
    lines = ["fire_intact,site=s1 intact_pct=100,points_commissioned=200i,points_present=200i,points_intact=200i"
             f" {int((begin - timedelta(hours=1)).timestamp()) * 10**9}"]  # fmt: skip
    for minute in range(600):
        if 120 <= minute < 150:
            continue
        present, intact = (200, 200) if minute < 300 else (199, 190)
        at = int((begin + timedelta(minutes=minute)).timestamp()) * 10**9
        lines.append(
            f"fire_intact,site=s1 intact_pct={intact / 2},points_commissioned=200i,points_present={present}i,"
            f"points_intact={intact}i,panels=1i,panels_answering=1i {at}"
        )
    # The per-panel point as the historian writes it.
    stamp = int((begin + timedelta(hours=5)).timestamp()) * 10**9
    lines.append(f"fire_panel,device=fp1,site=s1 intact_pct=95.0,points_total=200i,points_intact=190i {stamp}")
    async with httpx.AsyncClient() as raw:
        written = await raw.post(f"{influxd.url}/write", params={"db": influx_db}, content="\n".join(lines))
        written.raise_for_status()

    reader = InfluxReader(InfluxSettings(influxd.url, influx_db))
    transport = httpx.ASGITransport(app=make_app(engine, clock, reader))
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://facmon.test/api/v1", headers=bearer(engine, Role.ENGINEER)
        ) as client:
            params = {"site": "s1", "from": z(begin), "to": z(START + timedelta(days=1))}
            intact = (await client.get("/kpis", params=params)).json()["fire_equipment_intact_rate"]
    finally:
        await reader.aclose()
    assert intact["available"] is True
    # Intact over commissioned points, not over the 199 present.
    assert intact["current"] == {"numerator": 190, "denominator": 200, "value": 0.95, "target": 1.0, "met": False}
    assert intact["current_at"] == z(begin + timedelta(minutes=599))
    # The period ends now (the clock), not at `to`: 10 h less the 26 minutes no figure held (01:59's holds 5 of the
    # 31 minutes until 02:30's); 4 h 34 min at 100 %, 5 h at 95 %.
    assert intact["period_covered_s"] == 10 * 3600 - 26 * 60
    assert intact["period_mean"] == pytest.approx((274 * 1.0 + 300 * 0.95) / 574, abs=1e-6)
    # 95.7 % of the period covered, above the 95 % threshold: a verdict.
    assert (intact["coverage"], intact["verdict"]) == (round(1 - 26 / 600, 4), "missed")
    assert intact["panels"] == [
        {"device": "fp1", "at": z(begin + timedelta(hours=5)), "intact_pct": 95.0, "points_present": 200,
         "points_intact": 190}
    ]  # fmt: skip


# Elevators polled once a minute, so a reading holds for at most 3 minutes.
LIFT_SITE = lift_site("s2")


def lift_lines() -> list[str]:
    """A reading a minute from 23:50 the evening before to 00:10 the morning after the local day of 2 March."""
    lines = []
    at, last = local(23, 50, day=1), local(0, 10, day=3)
    while at <= last:
        for device in LIFT_SITE.buildings[0].devices:
            values: dict[str, str | int | bool | float]
            if device.id == "e1":  # main: a fault 10:00-10:30 and inspection 20:00-20:05; silent 03:00-04:00
                if local(3) <= at < local(4):
                    continue
                mode = "inspection" if local(20) <= at < local(20, 5) else "normal"
                values = {"service_mode": mode, "fault_code": 2 if local(10) <= at < local(10, 30) else 0}
            elif device.id == "e2":  # peak: a fault 05:55-06:07 (7 min of it in the window), another at noon
                bits = 4 if local(5, 55) <= at < local(6, 7) else 0
                values = {"service_mode": "normal", "e_code": 17 if local(12) <= at < local(13) else 0,
                          "fault_bits": bits}  # fmt: skip
            else:  # backup, out of service all day: not scheduled, not counted
                values = {"service_mode": "out_of_service", "fault_code": 0}
            ref = LIFT_SITE.ref(device.id)
            line = reading_line(Reading(ref=ref, ts=at, values={**values, "moving": False, "floor": 1}))
            assert line is not None
            lines.append(line)
        at += timedelta(minutes=1)
    return lines


async def test_kpis_elevator_availability_from_influxdb(engine: Engine, influxd: Influxd, influx_db: str) -> None:
    async with httpx.AsyncClient() as raw:
        lines = lift_lines()
        for i in range(0, len(lines), 5000):
            written = await raw.post(
                f"{influxd.url}/write", params={"db": influx_db}, content="\n".join(lines[i : i + 5000])
            )
            written.raise_for_status()

    reader = InfluxReader(InfluxSettings(influxd.url, influx_db))
    app = create_app(sites=[SITE, LIFT_SITE], engine=engine, influx=reader)
    app.dependency_overrides[get_clock] = lambda: FakeClock(local(9, day=5))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://facmon.test/api/v1", headers=bearer(engine, Role.ENGINEER)
        ) as client:
            params = {"site": "s2", "from": "2026-03-02T00:00:00+08:00", "to": "2026-03-03T00:00:00+08:00"}
            availability = (await client.get("/kpis", params=params)).json()["elevator_availability"]
            elsewhere = (await client.get("/kpis", params=params | {"site": "s9"})).json()["elevator_availability"]
            # The part of the period that has passed: the clock at 09:00 on 2 March.
            app.dependency_overrides[get_clock] = lambda: FakeClock(local(9))
            morning = (await client.get("/kpis", params=params)).json()["elevator_availability"]
    finally:
        await reader.aclose()
    # Scheduled: 24 h (main) + 4 h (peak); down: 30 + 5 min (main) + 7 min (peak) = 0.7 h; 27.3 / 28 = 97.5 %.
    assert {k: v for k, v in availability.items() if k not in ("elevators", "note")} == {
        "available": True, "reason": None, "target": 0.995, "numerator_hours": 27.3, "denominator_hours": 28.0,
        "value": 0.975, "met": False, "downtime_hours": 0.7, "unknown_hours": 0.966667,
        "coverage": round(1 - 0.966667 / 28, 4), "verdict": "missed",
    }  # fmt: skip
    assert availability["elevators"] == [
        # Silent 03:00-04:00: the 02:59 reading holds to 03:02, then 58 min unknown, not down.
        {"device": "e1", "role": "main", "scheduled_hours": 24.0, "downtime_hours": 0.583333,
         "unknown_hours": 0.966667, "value": 0.975694, "coverage": 0.9597, "verdict": "missed", "met": False},
        {"device": "e2", "role": "peak", "scheduled_hours": 4.0, "downtime_hours": 0.116667, "unknown_hours": 0.0,
         "value": 0.970833, "coverage": 1.0, "verdict": "missed", "met": False},
    ]  # fmt: skip
    assert "backup elevators" in availability["note"]
    assert elsewhere["available"] is False
    assert elsewhere["reason"] == "not computed: no site file for this site, so no elevator roles to schedule"
    # Up to 09:00: 9 h main (1 h silent, 58 min of it unknown) + 2 h peak with its 7 min down.
    assert (morning["denominator_hours"], morning["downtime_hours"], morning["unknown_hours"]) == (
        11.0,
        0.116667,
        0.966667,
    )
