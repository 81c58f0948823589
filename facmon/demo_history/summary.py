"""What a generated history holds, counted from the database and the points written."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, func, select
from sqlalchemy.orm import Session

from facmon.workorders.tables import FollowUp, WorkOrder, WorkOrderClock, WorkOrderEvent
from rules.maintenance_models import MaintenanceVisit
from rules.tables import FireAlarm, FireCheck


@dataclass(frozen=True)
class HistorySummary:
    site: str
    start: datetime
    until: datetime
    seed: int
    # True when the database had a generated history already: nothing was written this time.
    skipped: bool = False
    # Work orders by "kind/category" (elevator/repair, elevator/check, fire_panel/repair, ...), and of them:
    work_orders: dict[str, int] = field(default_factory=dict)
    entrapments: int = 0
    cancelled: int = 0
    breached_clocks: int = 0
    follow_ups: int = 0
    timeline_entries: int = 0
    maintenance_visits: int = 0
    fire_alarms: int = 0
    fire_checks: int = 0
    events: int = 0
    # Points written to InfluxDB by measurement, and the SHA-256 of every line in the order written.
    points: dict[str, int] = field(default_factory=dict)
    digest: str = ""
    seconds: float = 0.0

    def lines(self) -> list[str]:
        """The summary as a person reads it."""
        if self.skipped:
            return [f"history of {self.site} was generated before (up to {self.until:%Y-%m-%d %H:%M} UTC): unchanged"]
        orders = ", ".join(f"{kind} {count}" for kind, count in sorted(self.work_orders.items()))
        points = ", ".join(f"{name} {count:,}" for name, count in sorted(self.points.items()))
        return [
            f"history of {self.site}, {self.start:%Y-%m-%d %H:%M} to {self.until:%Y-%m-%d %H:%M} UTC, seed {self.seed}",
            f"  work orders   {sum(self.work_orders.values())}: {orders}",
            f"                entrapments {self.entrapments}, cancelled {self.cancelled}, SLA clocks breached "
            f"{self.breached_clocks}, follow-ups {self.follow_ups}, timeline entries {self.timeline_entries}",
            f"  maintenance visits {self.maintenance_visits}, fire alarms {self.fire_alarms}, "
            f"fire checks {self.fire_checks}, events {self.events}",
            f"  InfluxDB      {sum(self.points.values()):,} points: {points}",
            f"  took {self.seconds:.1f} s",
        ]


def count_rows(engine: Engine) -> dict[str, Any]:
    """The database side of a summary."""
    with Session(engine) as session:

        def count(table: Any, *where: ColumnElement[bool]) -> int:
            return int(session.execute(select(func.count()).select_from(table).where(*where)).scalar_one())

        kinds = Counter(f"{k}/{c}" for k, c in session.execute(select(WorkOrder.kind, WorkOrder.category)))
        return {
            "work_orders": dict(kinds),
            "entrapments": count(WorkOrder, WorkOrder.fault == "entrapment"),
            "cancelled": count(WorkOrder, WorkOrder.status == "cancelled"),
            "breached_clocks": count(WorkOrderClock, WorkOrderClock.breached_at.is_not(None)),
            "follow_ups": count(FollowUp),
            "timeline_entries": count(WorkOrderEvent),
            "maintenance_visits": count(MaintenanceVisit),
            "fire_alarms": count(FireAlarm),
            "fire_checks": count(FireCheck),
        }
