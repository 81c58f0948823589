"""The work orders cancelled in a period, listed beside the KPIs: when, who cancelled, why, and the clocks the work
order had already missed when it was cancelled (those misses stay in the figures; docs/kpis.md).

Who and why come from the cancellation's timeline entry (its actor and note); the clocks are the stored ones, judged
at the moment of the cancellation by facmon.workorders.sla.clock_compliance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from facmon.workorders.sla import ClockState, StoredClock, clock_compliance
from facmon.workorders.tables import TimelineType, WorkOrder, WorkOrderEvent, WorkOrderStatus


@dataclass(frozen=True)
class Cancellation:
    id: int
    kind: str
    device: str
    title: str
    detected_at: datetime
    cancelled_at: datetime
    cancelled_by: str | None
    reason: str | None
    # The clocks already missed at the cancellation, by name (e.g. "on_site"): they keep counting as missed.
    missed_clocks: tuple[str, ...]


def missed_at_cancellation(clocks: Sequence[StoredClock], cancelled_at: datetime) -> tuple[str, ...]:
    """The clocks missed by the time of the cancellation: met late, or their deadline passed before it."""
    missed = [c for c in clocks if clock_compliance(c, cancelled_at).state is ClockState.BREACHED]
    return tuple(c.name for c in sorted(missed, key=lambda c: (c.due_at, c.name)))


def cancellations(session: Session, site: str, start: datetime, end: datetime) -> list[Cancellation]:
    """Every work order of the site cancelled in [start, end), in the order of cancellation."""
    query = (
        select(WorkOrder)
        .where(
            WorkOrder.site == site,
            WorkOrder.status == WorkOrderStatus.CANCELLED.value,
            WorkOrder.cancelled_at >= start,
            WorkOrder.cancelled_at < end,
        )
        .options(selectinload(WorkOrder.clocks))
        .order_by(WorkOrder.cancelled_at, WorkOrder.id)
    )
    orders = list(session.execute(query).scalars())
    entries = _cancel_entries(session, [wo.id for wo in orders])
    listed = []
    for wo in orders:
        assert wo.cancelled_at is not None  # the query asks for it
        entry = entries.get(wo.id)
        listed.append(
            Cancellation(
                id=wo.id,
                kind=wo.kind,
                device=wo.device,
                title=wo.title,
                detected_at=wo.detected_at,
                cancelled_at=wo.cancelled_at,
                cancelled_by=None if entry is None else entry.actor,
                reason=None if entry is None else entry.note,
                missed_clocks=missed_at_cancellation(wo.clocks, wo.cancelled_at),
            )
        )
    return listed


def _cancel_entries(session: Session, ids: list[int]) -> dict[int, WorkOrderEvent]:
    """The timeline entry of each work order's cancellation (the last, should there be two)."""
    if not ids:
        return {}
    query = (
        select(WorkOrderEvent)
        .where(
            WorkOrderEvent.work_order_id.in_(ids),
            WorkOrderEvent.type == TimelineType.TRANSITION.value,
            WorkOrderEvent.status == WorkOrderStatus.CANCELLED.value,
        )
        .order_by(WorkOrderEvent.id)
    )
    return {e.work_order_id: e for e in session.execute(query).scalars()}
