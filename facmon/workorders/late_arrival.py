"""Arrival evidence applied at its own time whenever it is processed, and the breaches it disproves withdrawn.

On site is the time of the evidence, not of its processing (docs/kpis.md): a card read replayed from a gateway's
outbox after an outage, processed after the on-site deadline but stamped before it, proves the technician was there
in time. Three things follow, each in the caller's transaction:

- `withdraw_disproved`: every clock of the work order met at or before its deadline whose breach had been recorded
  gets that breach withdrawn: `breached_at` cleared, `breach_withdrawn_at` set to when it was found, and a
  `breach_withdrawn` timeline entry naming the clock, the breach and the evidence (source, time, who). Every
  transition that meets clocks calls it (facmon.workorders.workflow), so an arrival through the API and one proved
  by the site take the same path. From the timeline the lifecycle exporter writes the correction to InfluxDB
  (facmon.workorders.lifecycle), and the notifier cancels what it still had queued for the breach and tells those
  it had told (facmon.notifier.withdrawn).
- `backdate_arrival`: a work order already on site (or resolved, or closed) whose recorded arrival is later than the
  evidence gets the earlier time: `on_site_at` (and `acknowledged_at`, when later: an arrival implies the
  acknowledgement) moved back, the clocks of those milestones met then, breaches withdrawn, and a `late_evidence`
  entry saying what changed. A cancelled work order is left as it is.
- `note_late`: evidence applied behind entries already on the timeline (the transition entries carry the evidence's
  time) gets a `late_evidence` entry at the time it was processed, so whatever reads a work order's latest entry
  (the dashboards' "status now") sees the status it has now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from facmon.workorders.tables import Milestone, TimelineType, WorkOrder, WorkOrderClock, WorkOrderEvent, WorkOrderStatus

# The least step between two times the database keeps apart.
_NEXT = timedelta(microseconds=1)


@dataclass(frozen=True)
class Evidence:
    """What proved a milestone reached: its source (api, card_read, inspection_mode), who, and when it happened."""

    source: str
    actor: str
    at: datetime
    note: str | None = None
    event_id: str | None = None
    # Who entered it, when that was someone else (an engineer recording a technician's arrival).
    recorded_by: str | None = None

    def detail(self) -> dict[str, Any]:
        found: dict[str, Any] = {"source": self.source, "actor": self.actor, "at": self.at.isoformat()}
        for name in ("note", "event_id", "recorded_by"):
            if getattr(self, name) is not None:
                found[name] = getattr(self, name)
        return found


def _status(session: Session, work_order_id: int) -> str:
    return str(session.execute(select(WorkOrder.status).where(WorkOrder.id == work_order_id)).scalar_one())


def _breach_entries(session: Session, work_order_id: int) -> dict[str, int]:
    """The `sla_breached` entry of each clock of the work order, by clock name."""
    entries = session.execute(
        select(WorkOrderEvent.id, WorkOrderEvent.detail)
        .where(WorkOrderEvent.work_order_id == work_order_id, WorkOrderEvent.type == TimelineType.SLA_BREACHED)
        .order_by(WorkOrderEvent.id)
    )
    return {str((detail or {}).get("clock")): entry_id for entry_id, detail in entries}


def withdraw_disproved(session: Session, work_order_id: int, evidence: Evidence, now: datetime) -> list[str]:
    """Withdraw every recorded breach of a clock of the work order that is met in time; the clocks' names."""
    c = WorkOrderClock
    disproved = session.execute(
        select(c.name, c.milestone, c.due_at, c.met_at, c.breached_at).where(
            c.work_order_id == work_order_id, c.breached_at.is_not(None), c.met_at.is_not(None), c.met_at <= c.due_at
        )
    ).all()
    if not disproved:
        return []
    status = _status(session, work_order_id)
    entries = _breach_entries(session, work_order_id)
    for clock in disproved:
        session.execute(
            update(c)
            .where(c.work_order_id == work_order_id, c.name == clock.name)
            .values(breached_at=None, breach_withdrawn_at=now)
            .execution_options(synchronize_session=False)
        )
        session.add(
            WorkOrderEvent(
                work_order_id=work_order_id,
                at=now,
                type=TimelineType.BREACH_WITHDRAWN,
                status=status,
                actor=evidence.actor,
                source=evidence.source,
                note=f"{clock.name} met at {clock.met_at.isoformat()}, by its deadline {clock.due_at.isoformat()}",
                detail={
                    "clock": clock.name,
                    "milestone": clock.milestone,
                    "due_at": clock.due_at.isoformat(),
                    "met_at": clock.met_at.isoformat(),
                    "breached_at": clock.breached_at.isoformat(),
                    "breach_entry_id": entries.get(clock.name),
                    "evidence": evidence.detail(),
                },
            )
        )
    return [clock.name for clock in disproved]


def backdate_arrival(session: Session, work_order_id: int, evidence: Evidence, now: datetime) -> bool:
    """Move a recorded arrival back to the evidence's time; False when the evidence is not earlier than it (or
    precedes the detection, or the work order was cancelled): nothing changed."""
    at = evidence.at
    row = session.execute(
        select(WorkOrder.status, WorkOrder.detected_at, WorkOrder.acknowledged_at, WorkOrder.on_site_at).where(
            WorkOrder.id == work_order_id
        )
    ).one()
    if row.on_site_at is None or row.on_site_at <= at or row.detected_at > at:
        return False
    if row.status == WorkOrderStatus.CANCELLED:
        return False
    values: dict[str, datetime] = {"on_site_at": at}
    milestones = [Milestone.ON_SITE.value]
    if row.acknowledged_at is None or row.acknowledged_at > at:
        values["acknowledged_at"] = at
        milestones.append(Milestone.ACKNOWLEDGED.value)
    session.execute(
        update(WorkOrder)
        .where(WorkOrder.id == work_order_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    c = WorkOrderClock
    session.execute(
        update(c)
        .where(c.work_order_id == work_order_id, c.milestone.in_(milestones), c.met_at > at)
        .values(met_at=at)
        .execution_options(synchronize_session=False)
    )
    before = {"on_site_at": row.on_site_at, "acknowledged_at": row.acknowledged_at}
    session.add(
        WorkOrderEvent(
            work_order_id=work_order_id,
            at=now,
            type=TimelineType.LATE_EVIDENCE,
            status=row.status,
            actor=evidence.actor,
            source=evidence.source,
            note=evidence.note,
            detail={
                "evidence": evidence.detail(),
                "moved": {
                    name: {"from": None if before[name] is None else before[name].isoformat(), "to": at.isoformat()}
                    for name in values
                },
            },
        )
    )
    withdraw_disproved(session, work_order_id, evidence, now)
    return True


def note_late(session: Session, work_order_id: int, evidence: Evidence, now: datetime) -> bool:
    """A `late_evidence` entry at `now` (or just after the latest entry) when entries later than the evidence were on
    the timeline already (and the latest is not a withdrawal, which says as much); True when one was written."""
    latest = session.execute(
        select(WorkOrderEvent.at, WorkOrderEvent.type)
        .where(WorkOrderEvent.work_order_id == work_order_id)
        .order_by(WorkOrderEvent.at.desc(), WorkOrderEvent.id.desc())
        .limit(1)
    ).first()
    if latest is None or latest.at <= evidence.at or latest.type == TimelineType.BREACH_WITHDRAWN:
        return False
    session.add(
        WorkOrderEvent(
            work_order_id=work_order_id,
            # After the latest entry even when that is of this very moment (the opening of a work order the evidence
            # is applied to): a reader of the latest point must not have to break a tie.
            at=max(now, latest.at + _NEXT),
            type=TimelineType.LATE_EVIDENCE,
            status=_status(session, work_order_id),
            actor=evidence.actor,
            source=evidence.source,
            note=evidence.note,
            detail={"evidence": evidence.detail(), "applied_at": evidence.at.isoformat()},
        )
    )
    return True
