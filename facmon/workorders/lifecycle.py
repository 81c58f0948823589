"""Work-order lifecycle points for the dashboards: every timeline entry as a line of InfluxDB line protocol.

Measurement `work_orders`; tags site, building, device, kind, fault, priority, status (after the entry), event
(opened, recurred, fault_cleared, sla_breached, breach_withdrawn, late_evidence, follow_up, notified, escalated,
silenced, assigned, note, or the status a transition went to: acknowledged, on_site, ...), source (api, card_read,
rules, ...) and, for a breach and its withdrawal, clock; fields work_order_id, entry_id, title, and actor, note,
outcome, assignee (of an assignment; left out when it took the work order back from someone) where there are any.
The time is the entry's own, in nanoseconds.

A breach withdrawn by late arrival evidence (facmon.workorders.late_arrival) gives two points: the `breach_withdrawn`
entry's own, and the withdrawn breach's point written again with one more field, `withdrawn=true`: the same series
and time, so InfluxDB keeps one point, now marked. A breach point carries the field only once withdrawn; the
dashboards count breaches as all `sla_breached` points less those with a `withdrawn` field.

The timeline is the outbox: `LifecycleExporter` takes entries not exported yet, hands their lines to a
`LifecycleSink`, and marks them exported only after the sink took them. A sink that is down gets everything later;
a crash between writing and marking writes the same points again, which InfluxDB stores once (same series, same
time). `InfluxLifecycleSink` writes to InfluxDB's v1 `/write`, the one path 1.x, 2.x and 3.x all serve.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import NoReturn, Protocol

import httpx
import structlog
from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from facmon.kernel.backoff import Backoff
from facmon.kernel.clock import Clock
from facmon.kernel.influx import InfluxClient, InfluxDatabaseNotFound, InfluxError, InfluxSettings
from facmon.kernel.metrics import Counters
from facmon.workorders.tables import TimelineType, WorkOrder, WorkOrderEvent

log = structlog.get_logger(__name__)

MEASUREMENT = "work_orders"


# Entries whose point names the SLA clock they are about.
_CLOCK_ENTRIES = (TimelineType.SLA_BREACHED, TimelineType.BREACH_WITHDRAWN)


def lifecycle_line(entry: WorkOrderEvent, work_order: WorkOrder, *, withdrawn: bool = False) -> str:
    """The line protocol point of one timeline entry of `work_order`; `withdrawn`: the point of a breach entry
    written again, with `withdrawn=true`, once the breach was withdrawn (same series and time: the same point)."""
    detail = entry.detail or {}
    event = entry.status if entry.type == TimelineType.TRANSITION else entry.type
    tags: dict[str, str | None] = {
        "site": work_order.site,
        "building": work_order.building,
        "device": work_order.device,
        "kind": work_order.kind,
        "fault": work_order.fault,
        "priority": work_order.priority,
        "status": entry.status,
        "event": event,
        "source": entry.source,
        "clock": detail.get("clock") if entry.type in _CLOCK_ENTRIES else None,
    }
    fields: dict[str, str | int | bool] = {
        "work_order_id": work_order.id,
        "entry_id": entry.id,
        "title": work_order.title,
    }
    assignee = detail.get("to") if entry.type == TimelineType.ASSIGNED else None
    for name, value in (
        ("actor", entry.actor),
        ("note", entry.note),
        ("outcome", detail.get("outcome")),
        ("assignee", assignee),
    ):
        if isinstance(value, str) and value:
            fields[name] = value
    if entry.type == TimelineType.TRANSITION:
        fields["implied"] = bool(detail.get("implied", False))
    if withdrawn:
        fields["withdrawn"] = True
    # Point leaves out None tags; the fields are never empty (work_order_id).
    point = Point.from_dict({"measurement": MEASUREMENT, "tags": tags, "fields": fields, "time": entry.at})
    line: str = point.to_line_protocol(WritePrecision.NS)
    return line


class LifecycleSink(Protocol):
    """Where lifecycle lines go. `write` returns once they are stored, and raises if they were not."""

    async def write(self, lines: Sequence[str]) -> None: ...


class LifecycleSinkError(RuntimeError):
    """The sink did not take the lines; they stay unexported and are offered again."""


class InfluxLifecycleSink:
    """Writes lines to InfluxDB's v1 `/write`, creating the database when it is missing."""

    def __init__(self, settings: InfluxSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.db = settings.db
        self._influx = InfluxClient(settings, transport=transport)

    async def write(self, lines: Sequence[str]) -> None:
        body = "\n".join(lines).encode()
        try:
            try:
                await self._influx.write(body)
            except InfluxDatabaseNotFound:
                await self._influx.create_database()
                await self._influx.write(body)
        except InfluxError as exc:
            raise LifecycleSinkError(str(exc)) from exc

    async def aclose(self) -> None:
        await self._influx.aclose()


def _withdrawn_breaches(session: Session, entries: Sequence[WorkOrderEvent]) -> dict[int, WorkOrderEvent]:
    """The `sla_breached` entries the `breach_withdrawn` entries among `entries` withdraw, by the withdrawal's id."""
    wanted = {
        e.id: int(e.detail["breach_entry_id"])
        for e in entries
        if e.type == TimelineType.BREACH_WITHDRAWN and isinstance((e.detail or {}).get("breach_entry_id"), int)
    }
    if not wanted:
        return {}
    found = session.execute(select(WorkOrderEvent).where(WorkOrderEvent.id.in_(set(wanted.values())))).scalars()
    breaches = {breach.id: breach for breach in found}
    return {entry_id: breaches[breach_id] for entry_id, breach_id in wanted.items() if breach_id in breaches}


def pending_lines(engine: Engine, limit: int) -> list[tuple[int, str]]:
    """(entry id, line) of the oldest entries not exported yet. A breach withdrawal brings a second line: the point
    of the breach it withdraws, written again with `withdrawn=true` (dashboards count breaches without those)."""
    query = (
        select(WorkOrderEvent, WorkOrder)
        .join(WorkOrder, WorkOrder.id == WorkOrderEvent.work_order_id)
        .where(WorkOrderEvent.exported_at.is_(None))
        .order_by(WorkOrderEvent.id)
        .limit(limit)
    )
    with Session(engine) as session:
        rows = session.execute(query).all()
        corrected = _withdrawn_breaches(session, [entry for entry, _ in rows])
        lines: list[tuple[int, str]] = []
        for entry, wo in rows:
            lines.append((entry.id, lifecycle_line(entry, wo)))
            if entry.id in corrected:
                lines.append((entry.id, lifecycle_line(corrected[entry.id], wo, withdrawn=True)))
        return lines


def mark_exported(engine: Engine, ids: Sequence[int], at: datetime) -> None:
    with Session(engine) as session, session.begin():
        session.execute(
            update(WorkOrderEvent)
            .where(WorkOrderEvent.id.in_(ids))
            .values(exported_at=at)
            .execution_options(synchronize_session=False)
        )


class LifecycleExporter:
    def __init__(
        self,
        engine: Engine,
        sink: LifecycleSink,
        clock: Clock,
        *,
        batch_size: int = 500,
        metrics: Counters | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.engine = engine
        self.sink = sink
        self.clock = clock
        self.batch_size = batch_size
        self.metrics = metrics or Counters()

    async def export_once(self) -> int:
        """Hand one batch to the sink; how many entries it held (0: nothing was waiting)."""
        pending = await asyncio.to_thread(pending_lines, self.engine, self.batch_size)
        if not pending:
            return 0
        await self.sink.write([line for _, line in pending])
        ids = sorted({entry_id for entry_id, _ in pending})
        await asyncio.to_thread(mark_exported, self.engine, ids, self.clock.now())
        self.metrics.inc("rules_lifecycle_points", len(pending))
        return len(ids)

    async def run(self, interval_s: float = 1.0, backoff_max_s: float = 30.0) -> NoReturn:
        """Export until cancelled, on the injected clock: a full batch is followed at once by the next, a failure
        by a pause doubling from `interval_s` up to `backoff_max_s`."""
        backoff = Backoff(interval_s, max(interval_s, backoff_max_s), jitter=0.0)
        failures = 0
        while True:
            next_at = self.clock.monotonic() + interval_s
            try:
                exported = await self.export_once()
            except (LifecycleSinkError, OperationalError) as exc:
                failures += 1
                delay = backoff.delay(failures)
                self.metrics.inc("rules_lifecycle_errors")
                log.warning("lifecycle points not exported", error=str(exc), retry_in_s=delay)
                await self.clock.sleep(delay)
                continue
            failures = 0
            if exported < self.batch_size:
                await self.clock.sleep_until(next_at)
