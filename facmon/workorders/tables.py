"""The work-order tables: work orders, their timeline, SLA clocks, follow-ups and grouped members.

The one-open-work-order rule is a partial unique index that SQLite and PostgreSQL both enforce, so no process memory
or lock is trusted with it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from facmon.kernel.db import Base, Id, sql_list


class WorkOrderStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    ON_SITE = "on_site"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"


# A work order in one of these no longer holds its (device, fault) slot: a new fault opens a new work order.
TERMINAL_STATUSES = (WorkOrderStatus.RESOLVED, WorkOrderStatus.CLOSED, WorkOrderStatus.CANCELLED)


OPEN_STATUSES = tuple(s for s in WorkOrderStatus if s not in TERMINAL_STATUSES)

# The source of timeline entries written by a rule (through the rules worker or its monitors).
RULES_SOURCE = "rules"


class Priority(StrEnum):
    EMERGENCY = "emergency"
    URGENT = "urgent"


class Category(StrEnum):
    """What kind of work: a repair of something broken (零修/急修), a task the plan asks for (bring the backup
    into service, record a power loss), or a periodic check that is due (GB 25201 single-item check)."""

    REPAIR = "repair"
    TASK = "task"
    CHECK = "check"


class Milestone(StrEnum):
    """What an SLA clock waits for: the work order reaching this status (or a later one on the way)."""

    ACKNOWLEDGED = "acknowledged"
    ON_SITE = "on_site"
    RESOLVED = "resolved"


class FollowUpOutcome(StrEnum):
    SATISFIED = "satisfied"
    DISSATISFIED = "dissatisfied"
    # Nobody could be reached; the visit was attempted and counts as one, the outcome says it told us nothing.
    UNREACHABLE = "unreachable"


# The predicate of the partial unique index, as literal SQL. The upsert names the very same text as its conflict
# target: SQLite only uses a partial index for ON CONFLICT when the upsert's WHERE matches the index's WHERE, and
# bound parameters would not match.
OPEN_WHERE_SQL = f"status NOT IN ({sql_list(TERMINAL_STATUSES)})"

# A clock still running: neither met nor cancelled.
RUNNING_CLOCK_SQL = "met_at IS NULL AND cancelled_at IS NULL"


class WorkOrder(Base):
    __tablename__ = "work_orders"
    __table_args__ = (
        CheckConstraint(f"status IN ({sql_list(tuple(WorkOrderStatus))})", name="status"),
        CheckConstraint(f"priority IN ({sql_list(tuple(Priority))})", name="priority"),
        CheckConstraint("occurrences >= 1", name="occurrences"),
        # The guarantee the whole design leans on: at most one open work order per (site, device, fault).
        Index(
            "uq_work_orders_open_fault",
            "site",
            "device",
            "fault",
            unique=True,
            sqlite_where=text(OPEN_WHERE_SQL),
            postgresql_where=text(OPEN_WHERE_SQL),
        ),
        Index("ix_work_orders_status_detected_at", "status", "detected_at"),
        # Pages newest (or oldest) first without sorting every work order (facmon.workorders.queries).
        Index("ix_work_orders_detected_at_id", "detected_at", "id"),
        # The urgency sort's first part: work orders with a running clock, earliest deadline first.
        Index(
            "ix_work_orders_next_due",
            "next_due_at",
            "detected_at",
            "id",
            sqlite_where=text("next_due_at IS NOT NULL"),
            postgresql_where=text("next_due_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(String(64))
    building: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    # The event code: the controller's fault code as text ("2") or a named condition ("entrapment").
    fault: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    priority: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(16), default=Category.REPAIR.value, server_default="repair")
    status: Mapped[str] = mapped_column(String(16), default=WorkOrderStatus.OPEN.value)
    detected_at: Mapped[datetime]
    due_at: Mapped[datetime]
    occurrences: Mapped[int] = mapped_column(default=1)
    last_occurrence_at: Mapped[datetime]
    # When the fault last cleared at the device; NULL while it is active. Clearing does not close the work order:
    # a technician still has to look at why it happened.
    fault_cleared_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # The work order of the same device and fault before this one (resolved, closed or cancelled), when there is one.
    previous_id: Mapped[int | None] = mapped_column(ForeignKey("work_orders.id", ondelete="SET NULL"))
    # The SLA profile (facmon/workorders/library/sla.yaml) the deadlines came from; NULL for work orders opened before
    # profiles.
    sla_profile: Mapped[str | None] = mapped_column(String(64))
    # The technician (id in the site files) the work order is assigned to; NULL while nobody is.
    assignee: Mapped[str | None] = mapped_column(String(64), index=True)
    # When each status was first reached; an implied step (open -> on_site implies acknowledged) sets both.
    acknowledged_at: Mapped[datetime | None]
    on_site_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    # The earliest deadline of the clocks still running, NULL when none runs: the urgency sort's key, kept by
    # facmon.workorders.next_due.refresh_next_due wherever the running clocks change.
    next_due_at: Mapped[datetime | None]

    timeline: Mapped[list[WorkOrderEvent]] = relationship(
        back_populates="work_order", order_by="WorkOrderEvent.id", cascade="all, delete-orphan", passive_deletes=True
    )
    clocks: Mapped[list[WorkOrderClock]] = relationship(
        order_by="(WorkOrderClock.due_at, WorkOrderClock.name)", cascade="all, delete-orphan", passive_deletes=True
    )
    follow_ups: Mapped[list[FollowUp]] = relationship(
        order_by="FollowUp.id", cascade="all, delete-orphan", passive_deletes=True
    )


class TimelineType(StrEnum):
    OPENED = "opened"
    RECURRED = "recurred"
    FAULT_CLEARED = "fault_cleared"
    TRANSITION = "transition"
    SLA_BREACHED = "sla_breached"
    FOLLOW_UP = "follow_up"
    # The notifier (facmon.notifier.dispatcher): the on-call technician told, someone further up told, an alert
    # silenced.
    NOTIFIED = "notified"
    ESCALATED = "escalated"
    SILENCED = "silenced"
    # People through the API (facmon.workorders.workflow): the work order given to a technician (or taken back), a
    # remark.
    ASSIGNED = "assigned"
    NOTE = "note"
    # Arrival evidence processed late (facmon.workorders.late_arrival): a recorded breach it disproves is withdrawn;
    # evidence applied before entries already on the timeline (or earlier than the arrival recorded) is noted when
    # it was processed.
    BREACH_WITHDRAWN = "breach_withdrawn"
    LATE_EVIDENCE = "late_evidence"


class WorkOrderEvent(Base):
    """One entry of a work order's timeline (see TimelineType).

    The timeline is also the outbox of lifecycle points for InfluxDB: `exported_at` is set once the entry's point
    was written (facmon.workorders.lifecycle), so a sink that was down gets every entry later.
    """

    __tablename__ = "work_order_events"
    __table_args__ = (
        Index(
            "ix_work_order_events_unexported",
            "id",
            sqlite_where=text("exported_at IS NULL"),
            postgresql_where=text("exported_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    type: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The work order's status after this entry; NULL on entries written before statuses were recorded.
    status: Mapped[str | None] = mapped_column(String(16))
    # Who and through what: a technician's name and "api", a card holder and "card_read", "rules" for the engine.
    actor: Mapped[str | None] = mapped_column(String(128))
    source: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(String(2000))
    exported_at: Mapped[datetime | None]

    work_order: Mapped[WorkOrder] = relationship(back_populates="timeline")


class WorkOrderClock(Base):
    """One SLA clock of a work order: its deadline, when it was met, and when its breach was recorded.

    `breached_at` is written by one conditional UPDATE (`WHERE breached_at IS NULL`), so a breach is recorded once
    however many monitors run and however often they restart. A clock the work order was cancelled under before
    its deadline (`cancelled_at`) can no longer be breached.

    Evidence processed after the breach was recorded may prove the milestone reached in time (a card read replayed
    from a gateway's outbox): the clock is then met at the evidence's time, its `breached_at` cleared and
    `breach_withdrawn_at` set to when that was found (facmon.workorders.late_arrival). A clock met in time is never
    breached again, so `breached_at IS NOT NULL` stays the one test for "breach recorded".
    """

    __tablename__ = "work_order_clocks"
    __table_args__ = (
        CheckConstraint(f"milestone IN ({sql_list(tuple(Milestone))})", name="milestone"),
        # The monitor's question every second: deadlines passed and no breach recorded yet.
        Index(
            "ix_work_order_clocks_unbreached_due",
            "due_at",
            sqlite_where=text("breached_at IS NULL"),
            postgresql_where=text("breached_at IS NULL"),
        ),
        # The clocks still running (only work orders being worked on have any), by work order and deadline: the
        # urgency sort's earliest running deadline per work order (facmon.workorders.queries).
        Index(
            "ix_work_order_clocks_running",
            "work_order_id",
            "due_at",
            sqlite_where=text(RUNNING_CLOCK_SQL),
            postgresql_where=text(RUNNING_CLOCK_SQL),
        ),
        # The notifier's question every second: breaches withdrawn (few: only late evidence withdraws one).
        Index(
            "ix_work_order_clocks_withdrawn",
            "work_order_id",
            sqlite_where=text("breach_withdrawn_at IS NOT NULL"),
            postgresql_where=text("breach_withdrawn_at IS NOT NULL"),
        ),
    )

    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    milestone: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime]
    met_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    breached_at: Mapped[datetime | None]
    breach_withdrawn_at: Mapped[datetime | None]


class FollowUp(Base):
    """A follow-up visit or call (回访) after the repair: who, when, what the resident said."""

    __tablename__ = "follow_ups"
    __table_args__ = (CheckConstraint(f"outcome IN ({sql_list(tuple(FollowUpOutcome))})", name="outcome"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id", ondelete="CASCADE"), index=True)
    visited_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(String(2000))
    recorded_at: Mapped[datetime]


class WorkOrderMember(Base):
    """A device whose condition is covered by a grouped work order (one per building and cause)."""

    __tablename__ = "work_order_members"

    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id", ondelete="CASCADE"), primary_key=True)
    device: Mapped[str] = mapped_column(String(64), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(100))
    detected_at: Mapped[datetime]
    linked_at: Mapped[datetime]
