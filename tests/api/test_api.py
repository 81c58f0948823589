"""The HTTP API over a real SQLite file seeded through the rules store (the same path the worker takes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from api import create_app
from api.accounts.models import Role
from api.deps import get_clock
from facmon.estate.site import Site
from facmon.kernel.clock import FakeClock
from facmon.kernel.db import make_engine
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, Event, EventType
from facmon.workorders.tables import WorkOrder
from rules.engine import evaluate, load_rules
from rules.store import apply_event
from tests.api.accounts import bearer

START = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
SITE = Site.model_validate(
    {
        "site": {"id": "north", "name": "North Estate"},
        "buildings": [
            {
                "id": "b1",
                "devices": [
                    {
                        "id": "e1",
                        "kind": "elevator",
                        "model": "elev-gb-a",
                        "role": "main",
                        "address": {"host": "127.0.0.1", "port": 1502},
                        "installed_on": "2012-05-01",
                        "registration_code": "31104401002012050001",
                    },
                    {"id": "e2", "kind": "elevator", "model": "elev-gb-a", "address": {"host": "127.0.0.1"}},
                ],
            },
            {
                "id": "b2",
                "devices": [
                    {"id": "e3", "kind": "elevator", "model": "elev-gb-a", "address": {"host": "127.0.0.1"}},
                    {"id": "g1", "kind": "gate", "model": "barrier-x"},
                ],
            },
        ],
    }
)
OTHER = Site.model_validate(
    {
        "site": {"id": "south"},
        "buildings": [
            {"id": "b1", "devices": [{"id": "e1", "kind": "elevator", "model": "m", "address": {"host": "h"}}]}
        ],
    }
)


def seed(engine: Engine) -> None:
    """north/e1: entrapment (emergency) then comm lost; north/e2: door fault, acknowledged; south/e1: a fault."""
    clock, rules = FakeClock(START), load_rules()

    def send(site: Site, device: str, type_: EventType, code: str | None = None) -> None:
        event = Event(ref=site.ref(device), ts=clock.now(), type=type_, code=code)
        apply_event(engine, event, evaluate(rules, event, clock.now()), clock.now())
        clock.advance(60)

    send(SITE, "e1", EventType.FAULT_RAISED, "entrapment")
    send(SITE, "e2", EventType.FAULT_RAISED, "2")
    send(SITE, "e2", EventType.FAULT_CLEARED, "2")
    send(SITE, "e1", EventType.COMM_LOST)
    send(OTHER, "e1", EventType.FAULT_RAISED, "3")
    with Session(engine) as session, session.begin():
        session.execute(update(WorkOrder).where(WorkOrder.device == "e2").values(status="acknowledged"))


# The API's time for SLA figures, after everything was seeded.
NOW = START + timedelta(minutes=10)


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    seed(engine)
    app = create_app(sites=[SITE, OTHER], engine=engine)
    app.dependency_overrides[get_clock] = lambda: FakeClock(NOW)
    headers = bearer(engine, Role.ENGINEER)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://facmon.test", headers=headers
    ) as client:
        yield client


async def test_health_reports_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() | {"version": "-"} == {"status": "ok", "database": "ok", "version": "-", "sites": 2}


async def test_health_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'missing-folder' / 'facmon.db'}")
    app = create_app(sites=[SITE], engine=engine)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://facmon.test") as client:
            response = await client.get("/api/v1/health")
    finally:
        engine.dispose()
    assert response.status_code == 503
    assert (response.json()["status"], response.json()["database"]) == ("unavailable", "unreachable")


async def test_devices_combine_site_files_with_status_and_open_work_orders(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/devices")
    assert response.status_code == 200
    devices = {(d["site"], d["id"]): d for d in response.json()["items"]}
    assert list(devices) == [("north", "e1"), ("north", "e2"), ("north", "e3"), ("north", "g1"), ("south", "e1")]
    assert devices[("north", "e1")] == {
        "site": "north",
        "building": "b1",
        "id": "e1",
        "kind": "elevator",
        "model": "elev-gb-a",
        "role": "main",
        "installed_on": "2012-05-01",
        "registration_code": "31104401002012050001",
        "comm": "lost",
        "comm_since": "2026-02-01T09:03:00Z",
        "state": "comm_lost",
        "last_event_at": "2026-02-01T09:03:00Z",
        "last_event_type": "comm_lost",
        "open_work_orders": 1,
    }
    # Acknowledged is still open work; a cleared fault does not close it.
    assert (devices[("north", "e2")]["comm"], devices[("north", "e2")]["open_work_orders"]) == ("ok", 1)
    assert (devices[("north", "e3")]["comm"], devices[("north", "e3")]["open_work_orders"]) == ("unknown", 0)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("site=north", ["e1", "e2", "e3", "g1"]),
        ("site=north&building=b2", ["e3", "g1"]),
        ("kind=gate", ["g1"]),
        ("site=south&kind=elevator", ["e1"]),
        ("site=nowhere", []),
    ],
)
async def test_device_filters(client: httpx.AsyncClient, query: str, expected: list[str]) -> None:
    response = await client.get(f"/api/v1/devices?{query}")
    assert [d["id"] for d in response.json()["items"]] == expected


async def test_devices_a_page_at_a_time_in_site_file_order(client: httpx.AsyncClient) -> None:
    everything = (await client.get("/api/v1/devices")).json()
    assert (everything["total"], everything["limit"], everything["offset"]) == (5, 100, 0)
    order = [(d["site"], d["id"]) for d in everything["items"]]
    pages = [(await client.get(f"/api/v1/devices?limit=2&offset={o}")).json() for o in (0, 2, 4, 6)]
    assert [[(d["site"], d["id"]) for d in p["items"]] for p in pages] == [order[0:2], order[2:4], order[4:], []]
    assert {p["total"] for p in pages} == {5}
    faults = (await client.get("/api/v1/devices?state=fault&limit=1&offset=1")).json()
    with_fault = [d for d in everything["items"] if d["state"] == "fault"]
    assert faults["total"] == len(with_fault) >= 2
    assert faults["items"] == with_fault[1:2]
    assert (await client.get("/api/v1/devices?limit=1001")).status_code == 422


async def test_work_orders_newest_first_with_filters_and_paging(client: httpx.AsyncClient) -> None:
    everything = (await client.get("/api/v1/work-orders?sort=-detected_at")).json()
    assert [(w["site"], w["device"], w["fault"]) for w in everything["items"]] == [
        ("south", "e1", "3"),
        ("north", "e2", "2"),
        ("north", "e1", "entrapment"),
    ]
    assert (everything["total"], everything["limit"], everything["offset"]) == (3, 50, 0)
    first = everything["items"][-1]
    assert (first["priority"], first["status"], first["detected_at"]) == ("emergency", "open", "2026-02-01T09:00:00Z")
    assert first["due_at"] == (START + timedelta(minutes=20)).isoformat().replace("+00:00", "Z")
    assert first["next_statuses"] == ["acknowledged", "on_site", "cancelled"]
    # Ten minutes in: the 3-minute acknowledgement is breached, the arrival clocks are running.
    assert first["sla"]["profile"] == "elevator.entrapment"
    assert first["sla"]["state"] == "breached"
    assert [(c["name"], c["state"], c["time_left_s"], c["overdue_s"]) for c in first["sla"]["clocks"]] == [
        ("acknowledge", "breached", None, 420.0),
        ("on_site", "pending", 600.0, None),
        ("statutory_on_site", "pending", 1200.0, None),
        ("repair", "pending", 4 * 3600.0 - 600.0, None),  # rescued and made safe within 4 h
    ]

    async def devices(query: str) -> list[str]:
        return [
            f"{w['site']}/{w['device']}"
            for w in (await client.get(f"/api/v1/work-orders?sort=-detected_at&{query}")).json()["items"]
        ]

    assert await devices("status=acknowledged") == ["north/e2"]
    assert await devices("status=open&status=acknowledged&site=north") == ["north/e2", "north/e1"]
    assert await devices("status=resolved") == []
    assert await devices("site=north&device=e1") == ["north/e1"]
    assert await devices("limit=1&offset=1") == ["north/e2"]


async def test_work_order_detail_has_the_timeline(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/api/v1/work-orders?site=north&device=e2")).json()["items"][0]
    response = await client.get(f"/api/v1/work-orders/{listed['id']}")
    assert response.status_code == 200
    detail = response.json()
    assert {k: v for k, v in detail.items() if k not in ("timeline", "follow_ups", "people")} == listed
    assert detail["fault_cleared_at"] == "2026-02-01T09:02:00Z"
    assert [(e["type"], e["at"], e["status"], e["source"]) for e in detail["timeline"]] == [
        ("opened", "2026-02-01T09:01:00Z", "open", "rules"),
        ("fault_cleared", "2026-02-01T09:02:00Z", "open", "rules"),
    ]
    assert detail["timeline"][0]["detail"]["rule"] == "elevator.fault.work-order"
    assert detail["follow_ups"] == []


async def test_unknown_work_order_is_a_problem_document(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/work-orders/9999")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Work order not found",
        "status": 404,
        "detail": "no work order with id 9999",
    }


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/work-orders?status=lost", "status[0]"),
        ("/api/v1/work-orders?limit=0", "limit"),
        ("/api/v1/work-orders?offset=-1", "offset"),
        ("/api/v1/work-orders/abc", "work_order_id"),
        ("/api/v1/devices?kind=lift", "kind"),
    ],
)
async def test_bad_parameters_are_422_naming_the_field(client: httpx.AsyncClient, path: str, field: str) -> None:
    response = await client.get(path)
    assert response.status_code == 422
    assert [error["field"].rsplit(".", 1)[-1] for error in response.json()["errors"]] == [field]  # query.status[0]


async def test_openapi_lists_the_paths(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert set(spec["paths"]) >= {
        "/api/v1/health",
        "/api/v1/ack/{token}",
        "/api/v1/devices",
        "/api/v1/work-orders",
        "/api/v1/work-orders/{work_order_id}",
        "/api/v1/work-orders/{work_order_id}/transitions",
        "/api/v1/work-orders/{work_order_id}/follow-ups",
        "/api/v1/metrics",
        "/api/v1/fire-alarms",
        "/api/v1/fire-alarms/{alarm_id}/outcome",
        "/api/v1/fire-checks",
        "/api/v1/kpis",
        "/api/v1/on-call",
        "/api/v1/work-orders/{work_order_id}/on-call",
        "/api/v1/work-orders/{work_order_id}/deliveries",
    }
    detail = spec["paths"]["/api/v1/work-orders/{work_order_id}"]["get"]
    assert "application/problem+json" in detail["responses"]["404"]["content"]
    kinds = spec["components"]["schemas"]["DeviceKind"]["enum"]
    assert kinds == [k.value for k in DeviceKind]


def test_site_ids_must_be_unique(engine: Engine) -> None:
    with pytest.raises(ValueError, match="north"):
        create_app(sites=[SITE, SITE], engine=engine)


async def test_metrics_page_shows_the_process_counters(engine: Engine) -> None:
    counters = Counters()
    counters.inc("gateway_rejected", device="e1", source="modbus")
    counters.inc("gateway_rejected", 2, device="g1", source="mqtt")
    app = create_app(sites=[SITE], engine=engine, metrics=counters)
    headers = bearer(engine, Role.VIEWER)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://facmon.test", headers=headers
    ) as client:
        response = await client.get("/api/v1/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    # prometheus_client's exposition: counters end in _total, and each label set has its own line.
    lines = response.text.splitlines()
    assert "# TYPE facmon_gateway_rejected_total counter" in lines
    assert 'facmon_gateway_rejected_total{device="e1",source="modbus"} 1.0' in lines
    assert 'facmon_gateway_rejected_total{device="g1",source="mqtt"} 2.0' in lines
