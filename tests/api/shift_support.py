"""Two estates with technicians, seven work orders with known deadlines, and device states, for the shift tests.

Work orders are written as rows (not through the rules engine) so every deadline, priority, category and assignee
is exactly what the expected orders in the tests assume. The ids are the order of SEED below, 1 to 7.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api import create_app
from api.deps import get_clock
from facmon.estate.site import Site
from facmon.kernel.clock import FakeClock
from facmon.reports.kpi_data import InfluxReader
from facmon.workorders.next_due import refresh_next_due
from facmon.workorders.tables import WorkOrder, WorkOrderClock
from rules.tables import DeviceStatus

# 18:00 in Shanghai on 2 March: the second day of the north elevator rota, Wang Fang's.
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
TECHNICIANS = [
    {"id": "li", "name": "Li Ming", "phone": "+86 138 0000 0001", "disciplines": ["elevator"]},
    {"id": "wang", "name": "Wang Fang", "phone": "+86 138 0000 0002", "disciplines": ["elevator", "security"]},
    {"id": "zhao", "name": "Zhao Lei", "phone": "+86 138 0000 0003", "disciplines": ["fire"]},
]
NORTH = Site.model_validate(
    {
        "site": {"id": "north"},
        "buildings": [
            {
                "id": "b1",
                "devices": [
                    {
                        "id": "e1",
                        "kind": "elevator",
                        "model": "elev-gb-a",
                        "role": "main",
                        "address": {"host": "127.0.0.1"},
                        "installed_on": "2012-05-01",
                        "registration_code": "31104401002012050001",
                        "description": "east car",
                    },
                    {"id": "f1", "kind": "fire_panel", "model": "fire-gb-a", "address": {"host": "127.0.0.1"}},
                ],
            },
            {
                "id": "b2",
                "devices": [
                    {"id": "g1", "kind": "gate", "model": "barrier-a"},
                    {"id": "c1", "kind": "camera", "model": "camera-a"},
                    {"id": "e2", "kind": "elevator", "model": "elev-gb-a", "address": {"host": "127.0.0.1"}},
                ],
            },
        ],
        "technicians": TECHNICIANS,
        "on_call": {
            "elevator": {"technicians": ["li", "wang"], "every": "daily", "handoff": "08:00", "start": "2026-03-01"}
        },
    }
)
SOUTH = Site.model_validate(
    {
        "site": {"id": "south"},
        "buildings": [
            {"id": "b1", "devices": [{"id": "e1", "kind": "elevator", "model": "elev-gb-a", "address": {"host": "h"}}]}
        ],
        "technicians": [{"id": "chen", "name": "Chen Jing", "phone": "+86 138 0000 0009", "disciplines": ["elevator"]}],
    }
)


def m(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


@dataclass(frozen=True)
class Seed:
    site: str
    building: str
    device: str
    kind: str
    fault: str
    priority: str
    category: str
    status: str
    detected: float  # minutes from NOW
    clocks: list[tuple[str, str, float, float | None]]  # name, milestone, due (min), met (min)
    assignee: str | None = None
    times: dict[str, float] = field(default_factory=dict)


SEED = [
    # 1: entrapment, both clocks running and passed (the acknowledge one 27 min ago)
    Seed("north", "b1", "e1", "elevator", "entrapment", "emergency", "repair", "open", -30,
         [("acknowledge", "acknowledged", -27, None), ("on_site", "on_site", -10, None)]),
    # 2: door fault, Li's, on_site due in 10 min
    Seed("north", "b1", "e1", "elevator", "2", "urgent", "repair", "acknowledged", -10,
         [("on_site", "on_site", 10, None)], assignee="li", times={"acknowledged_at": -8}),
    # 3: a gate, on site due in an hour
    Seed("north", "b2", "g1", "gate", "limit_timeout", "urgent", "repair", "open", -60,
         [("on_site", "on_site", 60, None), ("repair", "resolved", 23 * 60, None)]),
    # 4: a fire check, Zhao's, due in two hours
    Seed("north", "b1", "f1", "fire_panel", "check", "urgent", "check", "open", -120,
         [("on_site", "on_site", 120, None)], assignee="zhao"),
    # 5: resolved in time, Wang's: no clock running
    Seed("north", "b1", "e1", "elevator", "3", "urgent", "repair", "resolved", -300,
         [("on_site", "on_site", -280, -290)], assignee="wang", times={"on_site_at": -290, "resolved_at": -250}),
    # 6: south, an entrapment, acknowledge due in 30 min
    Seed("south", "b1", "e1", "elevator", "entrapment", "emergency", "repair", "open", -5,
         [("acknowledge", "acknowledged", 30, None)]),
    # 7: a task closed yesterday, arrival 20 min late (breached, met)
    Seed("north", "b1", "e1", "elevator", "peak", "urgent", "task", "closed", -24 * 60,
         [("on_site", "on_site", -24 * 60 + 20, -24 * 60 + 40)],
         times={"on_site_at": -24 * 60 + 40, "resolved_at": -23 * 60, "closed_at": -22 * 60}),
]  # fmt: skip


def seed(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        for s in SEED:
            detected = m(s.detected)
            wo = WorkOrder(
                site=s.site,
                building=s.building,
                device=s.device,
                kind=s.kind,
                fault=s.fault,
                title=f"{s.device}: {s.fault}",
                priority=s.priority,
                category=s.category,
                status=s.status,
                detected_at=detected,
                due_at=m(s.clocks[0][2]),
                occurrences=1,
                last_occurrence_at=detected,
                created_at=detected,
                updated_at=detected,
                assignee=s.assignee,
                sla_profile="test",
                **{name: m(v) for name, v in s.times.items()},
            )
            session.add(wo)
            session.flush()
            for name, milestone, due, met in s.clocks:
                session.add(
                    WorkOrderClock(
                        work_order_id=wo.id,
                        name=name,
                        milestone=milestone,
                        due_at=m(due),
                        met_at=None if met is None else m(met),
                    )
                )
            session.flush()
            refresh_next_due(session, wo.id)  # as the code that adds or stops clocks does
        # Device states: north/e1 heard from (fault: open work orders), g1 lost, c1 fine; e2 and f1 never heard from.
        for device, comm in (("e1", "ok"), ("g1", "lost"), ("c1", "ok")):
            session.add(
                DeviceStatus(site="north", device=device, comm=comm, last_event_at=m(-1), last_event_type="status")
            )


def make_app(engine: Engine, influx: InfluxReader | None = None) -> FastAPI:
    app = create_app(sites=[NORTH, SOUTH], engine=engine, influx=influx)
    app.dependency_overrides[get_clock] = lambda: FakeClock(NOW)
    return app


@asynccontextmanager
async def client_for(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://facmon.test/api/v1") as client:
        yield client


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")
