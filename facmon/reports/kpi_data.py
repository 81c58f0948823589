"""Where the KPIs' inputs come from: work-order rows from the database, fire intact figures from InfluxDB.

`InfluxReader` queries InfluxDB's v1 `/query` with InfluxQL (the path 1.x, 2.x and 3.x serve). The period's intact
rate is the time-weighted mean of the site's `fire_intact` figures (rules.fire_intact), each holding until the next
for at most five minutes (facmon.reports.kpi_period): every figure of the period and the one in force at its start,
as written (the rules worker writes one a minute and at each change, so a month is some 45,000 rows).

Elevator availability reads each car's raw readings (`elevator`: service mode, fault codes and the entrapment flag) in
the period, as (time, down) pairs for facmon.reports.availability. At a 1 s poll that is 86,400 rows per car and day:
fine for days and weeks, heavy for a quarter. The cars' entrapment work orders, down from detection to resolution,
come from the database (`entrapment_intervals`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, selectinload

from facmon.kernel.influx import InfluxClient, InfluxError, InfluxSettings
from facmon.kernel.model import DeviceKind
from facmon.reports.availability import ENTRAPMENT_FIELD, FAULT_FIELDS, Interval, is_down
from facmon.reports.kpi import ClockFacts, KpiRow
from facmon.workorders.sla import MAX_HOLD, MAX_WITHIN
from facmon.workorders.tables import FollowUp, WorkOrder, WorkOrderStatus

# A deadline falls at most the longest hold plus the longest clock after its work order's detection (the limits
# facmon.workorders.sla enforces), so work orders detected this long before a period cannot have one inside it.
LOOKBACK = MAX_WITHIN + MAX_HOLD


def kpi_rows(session: Session, site: str, start: datetime, end: datetime) -> list[KpiRow]:
    """The site's work orders any figure of [start, end) may count: those with a deadline that can fall in it,
    and those resolved in it (the follow-up visit rate), with their stored clocks."""
    follow_ups = select(func.count(FollowUp.id)).where(FollowUp.work_order_id == WorkOrder.id).scalar_subquery()
    query = (
        select(WorkOrder, follow_ups)
        .where(
            WorkOrder.site == site,
            WorkOrder.detected_at < end,
            or_(
                WorkOrder.detected_at >= start - LOOKBACK,
                and_(WorkOrder.resolved_at >= start, WorkOrder.resolved_at < end),
            ),
        )
        .options(selectinload(WorkOrder.clocks))
        .order_by(WorkOrder.detected_at, WorkOrder.id)
    )
    return [_row(wo, int(visits or 0)) for wo, visits in session.execute(query)]


def _row(wo: WorkOrder, follow_ups: int) -> KpiRow:
    return KpiRow(
        kind=wo.kind,
        status=wo.status,
        detected_at=wo.detected_at,
        due_at=wo.due_at,
        on_site_at=wo.on_site_at,
        resolved_at=wo.resolved_at,
        cancelled_at=wo.cancelled_at,
        follow_ups=follow_ups,
        clocks=tuple(ClockFacts(c.name, c.milestone, c.due_at, c.met_at, c.cancelled_at) for c in wo.clocks),
        id=wo.id,
        device=wo.device,
        title=wo.title,
        category=wo.category,
    )


# The fault of an entrapment work order: the controller's entrapment flag and the collector's detector both raise it
# (collectors/modbus/drivers/*/driver.yaml); the car alarm button (15, 90) runs the same SLA profile as a possible
# entrapment, but the button pressed does not stop the car, and its readings say down while the code is raised.
ENTRAPMENT_FAULT = "entrapment"
# Each car's intervals known to be down, keyed by device.
Entrapments = dict[str, list[Interval]]


def entrapment_intervals(session: Session, site: str, start: datetime, end: datetime) -> Entrapments:
    """Each elevator's entrapment work orders as down intervals meeting [start, end), keyed by device: from detection
    to resolution, or to `end` (the period's end or now, the earlier) while not resolved by then. Cancelled ones (a
    false alarm, a duplicate) are left out."""
    query = select(WorkOrder.device, WorkOrder.detected_at, WorkOrder.resolved_at).where(
        WorkOrder.site == site,
        WorkOrder.kind == DeviceKind.ELEVATOR.value,
        WorkOrder.fault == ENTRAPMENT_FAULT,
        WorkOrder.status != WorkOrderStatus.CANCELLED.value,
        WorkOrder.detected_at < end,
        or_(WorkOrder.resolved_at.is_(None), WorkOrder.resolved_at > start),
    )
    found: Entrapments = {}
    for device, detected_at, resolved_at in session.execute(query):
        until = end if resolved_at is None else min(_utc(resolved_at), end)
        found.setdefault(device, []).append((_utc(detected_at), until))
    return found


def _utc(value: object) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"not a time: {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- InfluxDB --------------------------------------------------------------------------------------------------------


class InfluxUnavailable(RuntimeError):
    pass


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _time(at: datetime) -> str:
    return "'" + at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "'"


@dataclass(frozen=True)
class IntactNow:
    at: datetime
    intact_pct: float | None
    points_present: int
    points_intact: int
    # The denominator: commissioned points (a figure written before they were counted: its present points).
    points_commissioned: int = 0


@dataclass(frozen=True)
class PanelIntact:
    device: str
    at: datetime
    intact_pct: float | None
    points_present: int
    points_intact: int


class InfluxReader:
    def __init__(self, settings: InfluxSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.db = settings.db
        self._influx = InfluxClient(settings, transport=transport)

    async def aclose(self) -> None:
        await self._influx.aclose()

    async def series(self, query: str) -> list[dict[str, Any]]:
        series: list[dict[str, Any]] = (await self.statements(query))[0]
        return series

    async def statements(
        self, query: str, params: Mapping[str, str | int | float] | None = None
    ) -> list[list[dict[str, Any]]]:
        """The series of each statement of `query` (several separated by ';'), in order.

        `params` are InfluxQL bind parameters (`$name` in the query): values sent apart from the query text, so
        text from a request never becomes InfluxQL. Identifiers cannot be bound; callers quote known ones.
        """
        try:
            return await self._influx.statements(query, params)
        except InfluxError as exc:
            raise InfluxUnavailable(str(exc)) from exc

    async def site_intact(self, site: str, at: datetime) -> IntactNow | None:
        query = (
            "SELECT intact_pct, points_present, points_intact, points_commissioned FROM fire_intact"
            f" WHERE site = {_literal(site)} AND time <= {_time(at)} ORDER BY time DESC LIMIT 1"
        )
        for s in await self.series(query):
            for ts, pct, present, intact, commissioned in s["values"]:
                total = int(present or 0) if commissioned is None else int(commissioned)
                return IntactNow(_from_ns(ts), pct, int(present or 0), int(intact or 0), total)
        return None

    async def panels_intact(self, site: str, at: datetime) -> list[PanelIntact]:
        query = (
            "SELECT intact_pct, points_total, points_intact FROM fire_panel"
            f" WHERE site = {_literal(site)} AND time <= {_time(at)} GROUP BY device ORDER BY time DESC LIMIT 1"
        )
        panels = []
        for s in await self.series(query):
            for ts, pct, present, intact in s["values"]:
                panels.append(PanelIntact(s["tags"]["device"], _from_ns(ts), pct, int(present or 0), int(intact or 0)))
        return sorted(panels, key=lambda p: p.device)

    async def site_intact_samples(
        self, site: str, start: datetime, end: datetime, hold: timedelta
    ) -> list[tuple[datetime, float | None]]:
        """Every figure in (start, end), and the last one at or before `start` when it is at most `hold` old, as
        (time, intact_pct): None for a figure without a rate (no commissioned point), which ends the one before."""
        where = f"site = {_literal(site)}"
        before = (
            f"SELECT intact_pct, points_commissioned FROM fire_intact WHERE {where} AND time <= {_time(start)}"
            f" AND time > {_time(start - hold)} ORDER BY time DESC LIMIT 1"
        )
        within = (
            f"SELECT intact_pct, points_commissioned FROM fire_intact WHERE {where} AND time > {_time(start)}"
            f" AND time < {_time(end)}"
        )
        samples: list[tuple[datetime, float | None]] = []
        for query in (before, within):
            for s in await self.series(query):
                samples += [(_from_ns(row[0]), None if row[1] is None else float(row[1])) for row in s["values"]]
        return samples

    async def elevator_states(
        self, site: str, start: datetime, end: datetime
    ) -> dict[str, list[tuple[datetime, bool]]]:
        """Each car's readings in [start, end) as (time, down), in time order, keyed by device.

        A reading without one of the fields (a value the collector rejected) keeps that field's previous value.
        """
        fields = ", ".join(("service_mode", *FAULT_FIELDS, ENTRAPMENT_FIELD))
        query = (
            f"SELECT {fields} FROM elevator WHERE site = {_literal(site)} AND time >= {_time(start)}"
            f" AND time < {_time(end)} GROUP BY device"
        )
        states: dict[str, list[tuple[datetime, bool]]] = {}
        for s in await self.series(query):
            columns: list[str] = s["columns"]
            last: dict[str, Any] = {}
            rows = states.setdefault(s["tags"]["device"], [])
            for values in s["values"]:
                row = dict(zip(columns, values, strict=True))
                last.update({k: v for k, v in row.items() if v is not None})
                faults = {name: last.get(name) for name in FAULT_FIELDS}
                down = is_down(last.get("service_mode"), faults, last.get(ENTRAPMENT_FIELD))
                rows.append((_from_ns(row["time"]), down))
        return states


def _from_ns(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)
