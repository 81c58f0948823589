"""Settling an elevator's overdue maintenance work order (rules.maintenance_visits) by the visit that satisfies it:
one after the last visit the work order was counted from. On site at the visit's start, resolved at its end, with
the visit's technician as the actor; a work order on site already (the inspection mode put it there) is resolved.

`settle_overdue_in` does it in the caller's transaction (the event's, for a visit the inspection mode made);
`settle_overdue` in a transaction per work order (the API's visits and the monitor's tick).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Protocol

import structlog
from sqlalchemy import ColumnElement, Engine, select
from sqlalchemy.orm import Session

from facmon.workorders.tables import OPEN_STATUSES, WorkOrder, WorkOrderStatus
from facmon.workorders.transitions import IllegalTransition
from facmon.workorders.workflow import transition, transition_in
from rules.maintenance_models import MaintenanceSchedule, MaintenanceVisit

log = structlog.get_logger(__name__)

# The fault of the overdue work order (rules.maintenance_visits opens it).
FAULT = "maintenance_overdue"


@dataclass(frozen=True)
class _Settlement:
    work_order_id: int
    detected_at: datetime
    visit: MaintenanceVisit


def _satisfied(session: Session, site: str | None, device: str | None) -> list[_Settlement]:
    """The open overdue work orders a visit satisfies (one after the last visit they were counted from)."""
    schedule_ = MaintenanceSchedule
    conditions: list[ColumnElement[bool]] = [
        WorkOrder.fault == FAULT,
        WorkOrder.status.in_([s.value for s in OPEN_STATUSES]),
        schedule_.last_visit_at.is_not(None),
        schedule_.overdue_base_at.is_not(None),
        schedule_.last_visit_at > schedule_.overdue_base_at,
    ]
    if site is not None:
        conditions.append(WorkOrder.site == site)
    if device is not None:
        conditions.append(WorkOrder.device == device)
    found = session.execute(
        select(WorkOrder.id, WorkOrder.detected_at, schedule_)
        .join(schedule_, (schedule_.site == WorkOrder.site) & (schedule_.device == WorkOrder.device))
        .where(*conditions)
    ).all()
    settlements = []
    for work_order_id, detected_at, row in found:
        visit = session.execute(
            select(MaintenanceVisit)
            .where(
                MaintenanceVisit.site == row.site,
                MaintenanceVisit.device == row.device,
                MaintenanceVisit.started_at == row.last_visit_at,
            )
            .order_by(MaintenanceVisit.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        if visit is not None:
            settlements.append(_Settlement(work_order_id, detected_at, visit))
    return settlements


class _Move(Protocol):
    """`transition` on an engine or `transition_in` in a session, the work order and status given."""

    def __call__(
        self, work_order_id: int, to: WorkOrderStatus, *, actor: str, source: str, at: datetime, note: str | None
    ) -> object: ...


def _settle(move: _Move, settlement: _Settlement) -> bool:
    """On site at the visit's start, resolved at its end, with the visit's technician; False if settled before."""
    visit = settlement.visit
    actor = visit.technician or visit.actor or visit.device
    on_site_at = max(visit.started_at, settlement.detected_at)
    span = f"{visit.started_at:%Y-%m-%d %H:%M} to {visit.ended_at:%Y-%m-%d %H:%M} UTC"
    note = f"maintenance visit #{visit.id}, {span}"
    with contextlib.suppress(IllegalTransition):  # on site already (the inspection mode put it there)
        move(
            settlement.work_order_id,
            WorkOrderStatus.ON_SITE,
            actor=actor,
            source=visit.source,
            at=on_site_at,
            note=note,
        )
    resolved_at = max(visit.ended_at, on_site_at)
    try:
        move(
            settlement.work_order_id,
            WorkOrderStatus.RESOLVED,
            actor=actor,
            source=visit.source,
            at=resolved_at,
            note=note,
        )
    except IllegalTransition as exc:
        log.debug(
            "overdue maintenance already settled", work_order_id=settlement.work_order_id, status=exc.current.value
        )
        return False
    return True


def settle_overdue_in(session: Session, *, site: str | None = None, device: str | None = None) -> list[int]:
    """`settle_overdue` in the caller's transaction (the event's, for a visit the inspection mode made)."""
    move = partial(transition_in, session)
    return [s.work_order_id for s in _satisfied(session, site, device) if _settle(move, s)]


def settle_overdue(engine: Engine, *, site: str | None = None, device: str | None = None) -> list[int]:
    """Resolve the open overdue work orders a visit satisfies (one after the last visit they were counted from):
    on site at the visit's start, resolved at its end, with the visit's technician as the actor. The ids resolved."""
    with Session(engine) as session:
        settlements = _satisfied(session, site, device)
    move = partial(transition, engine)
    return [s.work_order_id for s in settlements if _settle(move, s)]
