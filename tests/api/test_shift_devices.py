"""Devices for a shift: the state filter and technician scope, the detail with the latest readings from a real
influxd, and one field's history downsampled by InfluxQL (exact bucket means of a constructed series)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from api.accounts.models import Role
from api.influx_history import bucket_seconds
from facmon.kernel.daemons import Influxd, free_port
from facmon.kernel.db import make_engine
from facmon.kernel.influx import InfluxSettings
from facmon.kernel.model import FIRST_CONTACT, Event, EventType, Value
from facmon.reports.kpi_data import InfluxReader
from rules.engine import evaluate, load_rules
from rules.store import apply_event
from tests.api.accounts import bearer
from tests.api.shift_support import NORTH, NOW, client_for, iso, m, make_app, seed

S = 1_000_000_000


def ns(minutes: float) -> int:
    return int(m(minutes).timestamp()) * S


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    seed(engine)
    yield engine
    engine.dispose()


def write(influxd: Influxd, db: str, lines: list[str]) -> None:
    response = httpx.post(f"{influxd.url}/write", params={"db": db, "precision": "ns"}, content="\n".join(lines))
    assert response.status_code == 204, response.text


@pytest.fixture
def readings(influxd: Influxd, influx_db: str) -> str:
    """north/e1: floor 0..59 one a second in the last minute; door changes three times; speed once, earlier.
    north/e2 and south/e1 (same device id, other site) have readings that must not leak into e1's."""
    tags = "elevator,building=b1,device=e1,model=elev-gb-a,role=main,site=north"
    lines = [f"{tags} floor={i}i {ns(-1) + i * S}" for i in range(60)]
    lines += [f'{tags} door="{d}" {ns(-1) + i * S}' for i, d in ((0, "open"), (20, "closed"), (45, "open"))]
    lines += [f"{tags} speed=1.5 {ns(-30)}", f"{tags} moving=true {ns(-1) + 30 * S}"]
    lines += [
        f"elevator,building=b2,device=e2,model=elev-gb-a,site=north floor=99i {ns(0) - S}",
        f'elevator,building=b1,device=e1,model=elev-gb-a,site=south floor=77i,door="stuck" {ns(0) - S}',
    ]
    write(influxd, influx_db, lines)
    return influx_db


@pytest.fixture
async def client(engine: Engine, influxd: Influxd, readings: str) -> AsyncIterator[httpx.AsyncClient]:
    reader = InfluxReader(InfluxSettings(influxd.url, readings))
    async with client_for(make_app(engine, reader)) as client:
        yield client
    await reader.aclose()


async def devices(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[str]:
    response = await client.get("/devices", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [f"{d['site']}/{d['id']}:{d['state']}" for d in response.json()["items"]]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["north/e1:fault", "north/f1:fault", "north/g1:comm_lost", "north/c1:ok", "north/e2:unknown",
              "south/e1:fault"]),
        ({"state": "ok"}, ["north/c1:ok"]),
        ({"state": "fault"}, ["north/e1:fault", "north/f1:fault", "south/e1:fault"]),
        ({"state": "comm_lost"}, ["north/g1:comm_lost"]),
        ({"state": "unknown"}, ["north/e2:unknown"]),
        ({"state": ["ok", "unknown"], "building": "b2"}, ["north/c1:ok", "north/e2:unknown"]),
        ({"site": "south", "kind": "elevator"}, ["south/e1:fault"]),
    ],
)  # fmt: skip
async def test_device_state_filter(
    client: httpx.AsyncClient, engine: Engine, params: dict[str, Any], expected: list[str]
) -> None:
    assert await devices(client, bearer(engine, Role.VIEWER), **params) == expected


async def test_technicians_see_their_sites_devices_only(client: httpx.AsyncClient, engine: Engine) -> None:
    chen = bearer(engine, Role.TECHNICIAN, technician="chen")
    assert await devices(client, chen) == ["south/e1:fault"]
    refused = await client.get("/devices", params={"site": "north"}, headers=chen)
    assert (refused.status_code, refused.json()["detail"]) == (403, "chen does not work at north")
    for path in ("/devices/north/e1", "/devices/north/e1/history?field=floor"):
        response = await client.get(path, headers=chen)
        assert (response.status_code, response.json()["detail"]) == (403, "chen does not work at north")


async def test_bad_state_is_422(client: httpx.AsyncClient, engine: Engine) -> None:
    response = await client.get("/devices", params={"state": "broken"}, headers=bearer(engine))
    assert (response.status_code, [e["field"] for e in response.json()["errors"]]) == (422, ["query.state[0]"])


async def test_device_detail_with_the_latest_value_of_each_field(client: httpx.AsyncClient, engine: Engine) -> None:
    response = await client.get("/devices/north/e1", headers=bearer(engine, Role.VIEWER))
    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: v for k, v in body.items() if k not in ("work_orders", "latest")} == {
        "site": "north",
        "building": "b1",
        "id": "e1",
        "kind": "elevator",
        "model": "elev-gb-a",
        "role": "main",
        "installed_on": "2012-05-01",
        "registration_code": "31104401002012050001",
        "description": "east car",
        "comm": "ok",
        "comm_since": None,
        "last_event_at": iso(m(-1)),
        "last_event_type": "status",
        "last_heard_at": iso(m(0) - timedelta(seconds=1)),
        "open_work_orders": 2,
        "state": "fault",
        "latest_error": None,
    }
    assert [(w["id"], w["status"], w["assignee"], w["next_deadline"]["name"]) for w in body["work_orders"]] == [
        (1, "open", None, "acknowledge"),
        (2, "acknowledged", "li", "on_site"),
    ]
    assert body["latest"] == {
        "at": iso(m(0) - timedelta(seconds=1)),
        "fields": {
            "door": {"value": "open", "at": iso(m(-1) + timedelta(seconds=45))},
            "floor": {"value": 59, "at": iso(m(0) - timedelta(seconds=1))},
            "moving": {"value": True, "at": iso(m(-1) + timedelta(seconds=30))},
            "speed": {"value": 1.5, "at": iso(m(-30))},
        },
    }


def heard(engine: Engine, device: str, type_: EventType, at: datetime) -> None:
    """An event of north/`device` through the rules, as the worker applies it."""
    data: dict[str, Value] = {FIRST_CONTACT: True} if type_ is EventType.COMM_RESTORED else {}
    event = Event(ref=NORTH.ref(device), ts=at, type=type_, data=data)
    apply_event(engine, event, evaluate(load_rules(), event, at), at)


async def test_a_first_contact_makes_a_device_comm_ok(client: httpx.AsyncClient, engine: Engine) -> None:
    viewer = bearer(engine, Role.VIEWER)
    assert "north/e2:unknown" in await devices(client, viewer)
    heard(engine, "e2", EventType.COMM_RESTORED, m(-5))
    listed = {
        d["id"]: d for d in (await client.get("/devices", params={"site": "north"}, headers=viewer)).json()["items"]
    }
    assert {k: listed["e2"][k] for k in ("comm", "comm_since", "state", "last_event_type")} == {
        "comm": "ok",
        "comm_since": iso(m(-5)),
        "state": "ok",
        "last_event_type": "comm_restored",
    }
    detail = (await client.get("/devices/north/e2", headers=viewer)).json()
    assert (detail["comm"], detail["comm_since"]) == ("ok", iso(m(-5)))
    assert detail["last_heard_at"] == iso(m(0) - timedelta(seconds=1)), "its latest reading, newer than the event"


async def test_last_heard_is_the_latest_event_without_readings_and_never_a_comm_lost(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    viewer = bearer(engine, Role.VIEWER)
    # c1 (no readings) was last heard a minute ago; the gateway restarts and hears it again half a minute ago.
    heard(engine, "c1", EventType.COMM_RESTORED, m(-0.5))
    detail = (await client.get("/devices/north/c1", headers=viewer)).json()
    assert (detail["comm"], detail["last_heard_at"], detail["latest"]) == ("ok", iso(m(-0.5)), None)
    heard(engine, "c1", EventType.COMM_LOST, m(-0.25))
    detail = (await client.get("/devices/north/c1", headers=viewer)).json()
    assert (detail["comm"], detail["comm_since"], detail["state"]) == ("lost", iso(m(-0.25)), "comm_lost")
    assert detail["last_heard_at"] is None, "noticing the silence is not hearing the camera"


async def test_device_without_readings_says_so(client: httpx.AsyncClient, engine: Engine) -> None:
    body = (await client.get("/devices/north/g1", headers=bearer(engine))).json()
    assert (body["latest"], body["latest_error"]) == (None, "no readings from this device in InfluxDB")


async def test_device_detail_without_influxdb_still_answers(engine: Engine) -> None:
    async with client_for(make_app(engine)) as client:
        body = (await client.get("/devices/north/e1", headers=bearer(engine))).json()
        assert (body["latest"], body["latest_error"], body["open_work_orders"]) == (
            None,
            "the API is not connected to InfluxDB",
            2,
        )
        history = await client.get("/devices/north/e1/history", params={"field": "floor"}, headers=bearer(engine))
        assert (history.status_code, history.json()["detail"]) == (503, "the API is not connected to InfluxDB")
    reader = InfluxReader(InfluxSettings(f"http://127.0.0.1:{free_port()}", "nowhere", timeout_s=2))
    async with client_for(make_app(engine, reader)) as client:
        body = (await client.get("/devices/north/e1", headers=bearer(engine))).json()
        assert body["latest"] is None
        assert body["latest_error"].startswith("InfluxDB unreachable")
    await reader.aclose()


async def test_unknown_site_or_device_is_404_naming_it(client: httpx.AsyncClient, engine: Engine) -> None:
    for path, detail in (
        ("/devices/north/zz", "no device 'zz' at site 'north'"),
        ("/devices/west/e1", "no site 'west'"),
        ("/devices/north/zz/history?field=floor", "no device 'zz' at site 'north'"),
    ):
        response = await client.get(path, headers=bearer(engine))
        assert (response.status_code, response.json()["detail"]) == (404, detail)


async def test_history_of_a_number_is_mean_min_max_per_bucket(client: httpx.AsyncClient, engine: Engine) -> None:
    params = {"field": "floor", "from": iso(m(-1)), "to": iso(NOW), "points": 6}
    response = await client.get("/devices/north/e1/history", params=params, headers=bearer(engine, Role.VIEWER))
    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: v for k, v in body.items() if k != "points"} == {
        "site": "north",
        "device": "e1",
        "field": "floor",
        "type": "integer",
        "from": iso(m(-1)),
        "to": iso(NOW),
        "aggregation": "mean",
        "interval_s": 10,
    }
    assert [(p["at"], p["value"], p["min"], p["max"]) for p in body["points"]] == [
        (iso(m(-1) + timedelta(seconds=10 * k)), 10 * k + 4.5, 10 * k, 10 * k + 9) for k in range(6)
    ]


async def test_history_buckets_start_at_from_and_round_up_to_whole_seconds(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    # 50 s in 4 buckets: 12.5 s, rounded up to 13 s; buckets from 09:59:05 (floors 5..17, 18..30, 31..43, 44..54).
    params = {
        "field": "floor",
        "from": iso(m(-1) + timedelta(seconds=5)),
        "to": iso(m(0) - timedelta(seconds=5)),
        "points": 4,
    }
    body = (await client.get("/devices/north/e1/history", params=params, headers=bearer(engine))).json()
    assert body["interval_s"] == 13 == bucket_seconds(m(-1) + timedelta(seconds=5), m(0) - timedelta(seconds=5), 4)
    assert [(p["value"], p["min"], p["max"]) for p in body["points"]] == [
        (11.0, 5, 17),
        (24.0, 18, 30),
        (37.0, 31, 43),
        (49.0, 44, 54),
    ]  # fmt: skip


async def test_history_of_a_string_is_raw_changes_or_last_per_bucket(client: httpx.AsyncClient, engine: Engine) -> None:
    params: dict[str, Any] = {"field": "door", "from": iso(m(-1)), "to": iso(NOW)}
    raw = (await client.get("/devices/north/e1/history", params=params, headers=bearer(engine))).json()
    assert (raw["type"], raw["aggregation"], raw["interval_s"]) == ("string", "raw", None)
    assert [(p["at"], p["value"]) for p in raw["points"]] == [
        (iso(m(-1)), "open"),
        (iso(m(-1) + timedelta(seconds=20)), "closed"),
        (iso(m(-1) + timedelta(seconds=45)), "open"),
    ]
    bucketed = (
        await client.get("/devices/north/e1/history", params=params | {"points": 2}, headers=bearer(engine))
    ).json()
    assert (bucketed["aggregation"], bucketed["interval_s"]) == ("last", 30)
    assert [(p["at"], p["value"]) for p in bucketed["points"]] == [
        (iso(m(-1)), "closed"),
        (iso(m(-0.5)), "open"),
    ]


async def test_history_defaults_to_the_last_24_hours(client: httpx.AsyncClient, engine: Engine) -> None:
    body = (await client.get("/devices/north/e1/history?field=speed", headers=bearer(engine))).json()
    assert (body["from"], body["to"], body["interval_s"]) == (iso(NOW - timedelta(hours=24)), iso(NOW), 288)
    assert [(p["value"], p["min"], p["max"]) for p in body["points"]] == [(1.5, 1.5, 1.5)]


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"field": "altitude"}, "query.field", "elevator readings have no field 'altitude'; fields: door, floor"),
        ({"field": 'floor") FROM x; DROP'}, "query.field", "have no field"),
        ({"field": "floor", "from": iso(NOW), "to": iso(m(-1))}, "query.to", "'to' must be after 'from'"),
        ({"field": "floor", "from": iso(m(1))}, "query.from", "'from' must be before 'to' (default: now)"),
        ({"field": "floor", "from": iso(NOW - timedelta(days=91))}, "query.from", "at most 90 days"),
        ({"field": "floor", "from": "0001-01-01T00:00:00Z"}, "query.from", "between 1900 and 2200"),
        ({"field": "floor", "from": "2026-03-01T00:00:00"}, "query.from", "timezone"),
        ({"field": "floor", "points": 0}, "query.points", "greater than or equal to 1"),
        ({}, "query.field", "required"),
    ],
)
async def test_bad_history_requests_are_422_naming_the_field(
    client: httpx.AsyncClient, engine: Engine, params: dict[str, Any], field: str, words: str
) -> None:
    response = await client.get("/devices/north/e1/history", params=params, headers=bearer(engine))
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert words in response.json()["detail"]
