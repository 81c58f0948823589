"""A year of one estate's elevator work orders, made the way the rules worker and the API make them: events through
`rules.store.apply_event`, status changes through `facmon.workorders.workflow.transition`, follow-ups through
`add_follow_up`.

The estate ("Maple Court", Asia/Shanghai) and what happened, in UTC (site time is UTC+8):

- old1 (main, installed 2010-03-15, insured, inspection valid): maintenance visits every 15 days to the minute, from
  2025-10-21 01:00 (before the insurance report's 12 months) to 2026-10-31 01:00, 26 in all, alternately seen from
  inspection mode and entered through the API; a door fault on 2025-10-20 (before the 12 months); an entrapment on
  2025-12-10 (acknowledged +2 min, on site +14, resolved +60); a door open fault on 2026-03-05 (ack +5, on site
  +26, resolved +3 h); a cancelled false alarm on 2026-05-02; in October 2026 fault 5 (ack +4, on site +25,
  resolved +50), fault 13 (on site +8, resolved +15, followed up) and, at 15:00 on 31 October (23:00 site time),
  fault 1 that nobody has come for;
- old2 (peak, installed 2014-11-01, uninsured, inspection expired 2026-09-30): maintenance visits on 2026-01-15 and
  2026-03-20 (02:00-03:00) only; task work orders with technicians on site on 2026-02-01 and 2026-02-10 (arrivals,
  not maintenance visits); a door close fault on 2026-10-10 (on site +18 with the acknowledgement implied,
  resolved +2 h);
- edge (backup, installed 2016-10-31: ten years old on the as-of day; its policy expired 2026-06-30): no maintenance
  visit recorded at all; fault 3 at 10:00 on 31 October, on site +10, resolved on 2 November (after the as-of day);
- young (installed 2016-11-01: nine years old on the as-of day, so not in the insurance report): fault 7 on 2026-10-05
  02:00 (ack +3, on site +15, resolved +30 h: six hours past its 24 h repair clock), followed up on 2026-10-07.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from facmon.estate.site import Site
from facmon.kernel.model import Event, EventType
from facmon.workorders.tables import Category, FollowUpOutcome, WorkOrderStatus
from facmon.workorders.workflow import add_follow_up, transition
from rules.engine import OpenWorkOrder, evaluate, load_rules
from rules.maintenance_models import VisitSource
from rules.maintenance_visits import record_visit
from rules.store import apply_event

ADDRESS = {"host": "127.0.0.1", "port": 1502}
MAINTAINER = {
    "company": "南京华信电梯工程有限公司",
    "contract": {"number": "HX-1", "start": "2026-01-01", "end": "2026-12-31"},
}
SITE = Site.model_validate(
    {
        "site": {"id": "maple", "name": "Maple Court", "timezone": "Asia/Shanghai"},
        "buildings": [
            {
                "id": "b1",
                "name": "Building 1",
                "devices": [
                    {
                        "id": "old1",
                        "kind": "elevator",
                        "model": "elev-gb-a",
                        "role": "main",
                        "address": ADDRESS,
                        "installed_on": "2010-03-15",
                        "registration_code": "31103201012010030001",
                        "certificate": "梯11苏A00001(10)",
                        "variety": "3110",
                        "usage": "residential",
                        "maintainer": MAINTAINER,
                        "inspection": {"last": "2026-03-01", "valid_until": "2027-03-31"},
                        "major_repair": {"done_on": "2022-06-01", "description": "ropes replaced"},
                        "insurance": {"insurer": "金陵财产保险", "policy": "P-1", "expires": "2027-01-31"},
                    },
                    {
                        "id": "old2",
                        "kind": "elevator",
                        "model": "elev-gb-a",
                        "role": "peak",
                        "address": ADDRESS,
                        "installed_on": "2014-11-01",
                        "registration_code": "31103201012014110002",
                        "usage": "residential",
                        "inspection": {"last": "2025-09-20", "valid_until": "2026-09-30"},
                    },
                    {
                        "id": "edge",
                        "kind": "elevator",
                        "model": "elev-gb-a",
                        "role": "backup",
                        "address": ADDRESS,
                        "installed_on": "2016-10-31",
                        "insurance": {"insurer": "金陵财产保险", "policy": "P-3", "expires": "2026-06-30"},
                    },
                    {
                        "id": "young",
                        "kind": "elevator",
                        "model": "elev-gb-a",
                        "address": ADDRESS,
                        "installed_on": "2016-11-01",
                    },
                ],
            }
        ],
    }
)
# When the reports are made.
NOW = datetime(2026, 11, 5, 2, 0, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Seeder:
    def __init__(self, engine: Engine, site: Site = SITE) -> None:
        self.engine = engine
        self.site = site
        self.rules = load_rules()
        self.ids: dict[str, int] = {}

    def fault(self, name: str, device: str, code: str, detected: datetime, category: Category | None = None) -> int:
        event = Event(ref=self.site.ref(device), ts=detected, type=EventType.FAULT_RAISED, code=code)
        actions = evaluate(self.rules, event, detected)
        if category is not None:
            actions = [
                dataclasses.replace(a, category=category, fault=f"task-{name}", title=f"Elevator {device}: {name}")
                if isinstance(a, OpenWorkOrder)
                else a
                for a in actions
            ]
        result = apply_event(self.engine, event, actions, detected)
        (work_order_id,) = result.opened
        self.ids[name] = work_order_id
        return work_order_id

    def move(self, name: str, to: WorkOrderStatus, when: datetime) -> None:
        transition(self.engine, self.ids[name], to, actor="Li Ming", source="api", at=when)

    def life(
        self,
        name: str,
        device: str,
        code: str,
        detected: datetime,
        *,
        ack: float | None = None,
        on_site: float | None = None,
        resolved: float | None = None,
        category: Category | None = None,
    ) -> int:
        """A work order and its steps, each `minutes` after detection."""
        work_order_id = self.fault(name, device, code, detected, category)
        for step, minutes in (
            (WorkOrderStatus.ACKNOWLEDGED, ack),
            (WorkOrderStatus.ON_SITE, on_site),
            (WorkOrderStatus.RESOLVED, resolved),
        ):
            if minutes is not None:
                self.move(name, step, detected + timedelta(minutes=minutes))
        return work_order_id


def visit(engine: Engine, device: str, start: datetime, minutes: int, source: VisitSource) -> None:
    record_visit(
        engine,
        site="maple",
        building="b1",
        device=device,
        started_at=start,
        ended_at=start + timedelta(minutes=minutes),
        technician=None,
        source=source,
        actor="Li Ming" if source is VisitSource.API else None,
        note=None,
        now=start + timedelta(minutes=minutes),
    )


def seed(engine: Engine) -> dict[str, int]:
    """The year above; the work order ids by name."""
    s = Seeder(engine)
    s.life("before", "old1", "2", at("2025-10-20 03:00"), ack=1, on_site=10, resolved=30)
    s.life("entrapment", "old1", "entrapment", at("2025-12-10 02:00"), ack=2, on_site=14, resolved=60)
    add_follow_up(
        engine,
        s.ids["entrapment"],
        actor="Chen Jing",
        outcome=FollowUpOutcome.SATISFIED,
        note=None,
        visited_at=at("2025-12-11 02:00"),
        now=at("2025-12-11 02:00"),
        source="api",
    )
    s.life("door-open", "old1", "3", at("2026-03-05 06:00"), ack=5, on_site=26, resolved=180)
    s.life("false-alarm", "old1", "15", at("2026-05-02 01:00"), ack=1)
    s.move("false-alarm", WorkOrderStatus.CANCELLED, at("2026-05-02 01:05"))
    s.life("visit-1", "old2", "40", at("2026-02-01 01:00"), on_site=30, resolved=120, category=Category.TASK)
    s.life("visit-2", "old2", "40", at("2026-02-10 01:00"), on_site=30, resolved=120, category=Category.TASK)
    s.life("door-close", "old2", "2", at("2026-10-10 04:00"), on_site=18, resolved=120)
    s.life("fault-5", "old1", "5", at("2026-10-15 08:00"), ack=4, on_site=25, resolved=50)
    s.life("fault-13", "old1", "13", at("2026-10-20 01:00"), on_site=8, resolved=15)
    add_follow_up(
        engine,
        s.ids["fault-13"],
        actor="Chen Jing",
        outcome=FollowUpOutcome.SATISFIED,
        note="resident happy",
        visited_at=at("2026-10-21 01:00"),
        now=at("2026-10-21 01:00"),
        source="api",
    )
    s.life("edge-fault", "edge", "3", at("2026-10-31 10:00"), on_site=10)
    s.move("edge-fault", WorkOrderStatus.RESOLVED, at("2026-11-02 09:00"))
    s.life("unattended", "old1", "1", at("2026-10-31 15:00"))
    s.life("young-late", "young", "7", at("2026-10-05 02:00"), ack=3, on_site=15, resolved=30 * 60)
    add_follow_up(
        engine,
        s.ids["young-late"],
        actor="Chen Jing",
        outcome=FollowUpOutcome.SATISFIED,
        note=None,
        visited_at=at("2026-10-07 02:00"),
        now=at("2026-10-07 02:00"),
        source="api",
    )
    for k in range(26):
        source = VisitSource.INSPECTION_MODE if k % 2 else VisitSource.API
        visit(engine, "old1", at("2025-10-21 01:00") + timedelta(days=15 * k), 40, source)
    for day in ("2026-01-15", "2026-03-20"):
        visit(engine, "old2", at(f"{day} 02:00"), 60, VisitSource.API)
    return s.ids
