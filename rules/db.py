"""The work-order database: tables, the engine factory and the schema migration entry point.

SQLite is the default (one rules worker, one API); PostgreSQL when several rule workers run. Everything here is
written for both: the statements the store uses are the dialects' own upserts, and the one-open-work-order rule is a
partial unique index that both databases enforce, so no process memory or lock is trusted with it.

The schema is owned by Alembic (`rules/migrations/`): `create_schema(engine)` upgrades to head. `Base.metadata` stays
the description of what head looks like; a test compares the two so they cannot drift.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Dialect,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    create_engine,
    event,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import DateTime, TypeDecorator


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


class Priority(StrEnum):
    EMERGENCY = "emergency"
    URGENT = "urgent"


class Category(StrEnum):
    """What kind of work: a repair of something broken (零修/急修), a task the plan asks for (bring the backup
    into service, record a power loss), or a periodic check that is due (GB 25201 single-item check)."""

    REPAIR = "repair"
    TASK = "task"
    CHECK = "check"


class Comm(StrEnum):
    OK = "ok"
    LOST = "lost"


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


def _sql_list(values: tuple[StrEnum, ...]) -> str:
    return ", ".join(f"'{v.value}'" for v in values)


# The predicate of the partial unique index, as literal SQL. The upsert names the very same text as its conflict
# target: SQLite only uses a partial index for ON CONFLICT when the upsert's WHERE matches the index's WHERE, and
# bound parameters would not match.
OPEN_WHERE_SQL = f"status NOT IN ({_sql_list(TERMINAL_STATUSES)})"


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on every backend.

    PostgreSQL stores `timestamptz`; SQLite has no zone support, so the value is stored as naive UTC text (which
    also sorts correctly) and given its zone back when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} (work orders store UTC with a zone)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# BIGINT on PostgreSQL; on SQLite only a column typed exactly INTEGER becomes the auto-incrementing rowid.
Id = BigInteger().with_variant(Integer(), "sqlite")

# Named constraints and indexes, so migrations can refer to them by name on every backend.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime()}


class WorkOrder(Base):
    __tablename__ = "work_orders"
    __table_args__ = (
        CheckConstraint(f"status IN ({_sql_list(tuple(WorkOrderStatus))})", name="status"),
        CheckConstraint(f"priority IN ({_sql_list(tuple(Priority))})", name="priority"),
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
    # The SLA profile (rules/library/sla.yaml) the deadlines came from; NULL for work orders opened before profiles.
    sla_profile: Mapped[str | None] = mapped_column(String(64))
    # The technician (id in the site files) the work order is assigned to; NULL while nobody is.
    assignee: Mapped[str | None] = mapped_column(String(64), index=True)
    # When each status was first reached; an implied step (open -> on_site implies acknowledged) sets both.
    acknowledged_at: Mapped[datetime | None]
    on_site_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]

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
    # The notifier (notifier.dispatcher): the on-call technician told, someone further up told, an alert silenced.
    NOTIFIED = "notified"
    ESCALATED = "escalated"
    SILENCED = "silenced"
    # People through the API (rules.workflow): the work order given to a technician (or taken back), a remark.
    ASSIGNED = "assigned"
    NOTE = "note"


class WorkOrderEvent(Base):
    """One entry of a work order's timeline (see TimelineType).

    The timeline is also the outbox of lifecycle points for InfluxDB: `exported_at` is set once the entry's point
    was written (rules.lifecycle), so a sink that was down gets every entry later.
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
    """

    __tablename__ = "work_order_clocks"
    __table_args__ = (
        CheckConstraint(f"milestone IN ({_sql_list(tuple(Milestone))})", name="milestone"),
        # The monitor's question every second: deadlines passed and no breach recorded yet.
        Index(
            "ix_work_order_clocks_unbreached_due",
            "due_at",
            sqlite_where=text("breached_at IS NULL"),
            postgresql_where=text("breached_at IS NULL"),
        ),
    )

    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    milestone: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime]
    met_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    breached_at: Mapped[datetime | None]


class FollowUp(Base):
    """A follow-up visit or call (回访) after the repair: who, when, what the resident said."""

    __tablename__ = "follow_ups"
    __table_args__ = (CheckConstraint(f"outcome IN ({_sql_list(tuple(FollowUpOutcome))})", name="outcome"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id", ondelete="CASCADE"), index=True)
    visited_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(String(2000))
    recorded_at: Mapped[datetime]


class ProcessedEvent(Base):
    """Event ids already applied. MQTT QoS 1 is at-least-once, so a redelivered event must change nothing.

    Grows with the event stream; pruning rows older than the broker's redelivery horizon comes with the retention
    job.
    """

    __tablename__ = "processed_events"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    processed_at: Mapped[datetime]


class DeviceStatus(Base):
    """What the API shows per device besides its work orders: can we hear it, and what did it last say."""

    __tablename__ = "device_status"
    __table_args__ = (CheckConstraint(f"comm IN ({_sql_list(tuple(Comm))})", name="comm"),)

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    device: Mapped[str] = mapped_column(String(64), primary_key=True)
    comm: Mapped[str] = mapped_column(String(8), default=Comm.OK.value)
    last_event_at: Mapped[datetime]
    last_event_type: Mapped[str] = mapped_column(String(32))
    # When `comm` was last set: the time of the device's latest comm event (its first answer since the gateway
    # started, a loss or a restore). NULL until the first one.
    comm_since: Mapped[datetime | None]
    # Elevators: the service mode of the last service-mode status event ("inspection", "normal", ...) and its time;
    # faults are suppressed while it is inspection (rules.arrival). NULL until the first such event.
    service_mode: Mapped[str | None] = mapped_column(String(32))
    service_mode_at: Mapped[datetime | None]


class FireAlarmOutcome(StrEnum):
    CONFIRMED = "confirmed"
    FALSE_ALARM = "false_alarm"
    UNKNOWN = "unknown"


class FireAlarm(Base):
    """A fire point's fire signal (not supervisory): an emergency for the control room, not a repair (rules.fire)."""

    __tablename__ = "fire_alarms"
    __table_args__ = (
        CheckConstraint(f"outcome IN ({_sql_list(tuple(FireAlarmOutcome))})", name="outcome"),
        Index("ix_fire_alarms_site_raised_at", "site", "raised_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    # The raising event; unique, so a redelivered event records nothing twice.
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    site: Mapped[str] = mapped_column(String(64))
    building: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(64))
    point: Mapped[str | None] = mapped_column(String(32))
    point_type: Mapped[str | None] = mapped_column(String(64))
    raised_at: Mapped[datetime]
    cleared_at: Mapped[datetime | None]
    outcome: Mapped[str] = mapped_column(String(16), default=FireAlarmOutcome.UNKNOWN.value)
    outcome_at: Mapped[datetime | None]
    outcome_by: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime]
    # When the notifier queued its alerts (notifier.dispatcher); NULL: not yet.
    alerted_at: Mapped[datetime | None]


class FireCheckResult(StrEnum):
    PASSED = "passed"
    FAILED = "failed"


class FireCheck(Base):
    """A GB 25201 single-item check of one fire panel (`device`) or one fire system (`system`), e.g. sprinklers."""

    __tablename__ = "fire_checks"
    __table_args__ = (
        CheckConstraint(f"result IN ({_sql_list(tuple(FireCheckResult))})", name="result"),
        CheckConstraint("(device IS NULL) <> (system IS NULL)", name="subject"),
        Index("ix_fire_checks_site_at", "site", "at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(String(64))
    device: Mapped[str | None] = mapped_column(String(64))
    system: Mapped[str | None] = mapped_column(String(48))
    item: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(128))
    result: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(String(2000))
    at: Mapped[datetime]
    recorded_at: Mapped[datetime]


class FireCheckSchedule(Base):
    """Per panel or system: when it was last checked and which overdue period already opened a work order.

    `subject` is the panel's device id, or "system:<name>". A panel is scheduled from the first time the rules
    worker hears of it (`since`), a system from its first recorded check.
    """

    __tablename__ = "fire_check_schedule"

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    building: Mapped[str | None] = mapped_column(String(64))
    since: Mapped[datetime]
    last_check_at: Mapped[datetime | None]
    # The due time of the overdue period a work order was last opened for; a conditional UPDATE on it makes the
    # opening happen once per period, across restarts and concurrent workers.
    overdue_due_at: Mapped[datetime | None]


class DeviceStateRow(Base):
    """A device's last known state for the state rules (rules.state_engine.DeviceState), kept across restarts."""

    __tablename__ = "device_state"
    __table_args__ = (
        CheckConstraint(f"comm IN ({_sql_list(tuple(Comm))})", name="comm"),
        Index("ix_device_state_site_building", "site", "building"),
    )

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    device: Mapped[str] = mapped_column(String(64), primary_key=True)
    building: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    role: Mapped[str | None] = mapped_column(String(16))
    service_mode: Mapped[str | None] = mapped_column(String(32))
    power_source: Mapped[str | None] = mapped_column(String(16))
    comm: Mapped[str] = mapped_column(String(8))
    # The codes of the device's own faults that are raised and not cleared (points of many-point devices are not).
    faults: Mapped[list[str]] = mapped_column(JSON)
    updated_at: Mapped[datetime | None]


class RuleHold(Base):
    """A state rule waiting out its hold on a device: fires at `due_at` unless its condition clears first.

    The tick that fires it deletes the row in the same transaction as it opens the work order, so a hold fires
    once however many workers run and however often they restart.
    """

    __tablename__ = "rule_holds"
    __table_args__ = (Index("ix_rule_holds_due_at", "due_at"),)

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    device: Mapped[str] = mapped_column(String(64), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    building: Mapped[str] = mapped_column(String(64))
    detected_at: Mapped[datetime]
    due_at: Mapped[datetime]


class RuleWatermark(Base):
    """How far a periodic check has looked ("windows": the window openings acted on up to `at`)."""

    __tablename__ = "rule_watermarks"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    at: Mapped[datetime]


class WorkOrderMember(Base):
    """A device whose condition is covered by a grouped work order (one per building and cause)."""

    __tablename__ = "work_order_members"

    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id", ondelete="CASCADE"), primary_key=True)
    device: Mapped[str] = mapped_column(String(64), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(100))
    detected_at: Mapped[datetime]
    linked_at: Mapped[datetime]


class NotificationStep(Base):
    """An escalation step carried out for a work order (notifier.policy: "<stage>#<repeat>").

    The primary key makes a step happen once, across restarts and concurrent dispatchers: the step, its timeline
    entry and its deliveries are written in one transaction, which a second writer cannot commit.
    """

    __tablename__ = "notification_steps"

    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[str] = mapped_column(String(48), primary_key=True)
    # sent, digest, silenced or no_recipient.
    outcome: Mapped[str] = mapped_column(String(16))
    message: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[datetime]


class Delivery(Base):
    """One message to one recipient over one channel: the durable queue and the delivery log in one table."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index(
            "ix_deliveries_pending",
            "next_attempt_at",
            sqlite_where=text("delivered_at IS NULL AND failed_at IS NULL"),
            postgresql_where=text("delivered_at IS NULL AND failed_at IS NULL"),
        ),
        Index("ix_deliveries_recipient_created_at", "recipient_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    # Notification.key plus the channel: unique, so nothing is queued twice.
    key: Mapped[str] = mapped_column(String(240), unique=True)
    message: Mapped[str] = mapped_column(String(200))
    # What the message is about: a work order, or a fire alarm (which is not a work order).
    work_order_id: Mapped[int | None] = mapped_column(ForeignKey("work_orders.id", ondelete="CASCADE"), index=True)
    fire_alarm_id: Mapped[int | None] = mapped_column(ForeignKey("fire_alarms.id", ondelete="CASCADE"), index=True)
    recipient_id: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(16))
    # The Notification and the Recipient as sent (notifier.queue), so a restart rebuilds them exactly.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None]
    # Given up: the channel said trying again would not help.
    failed_at: Mapped[datetime | None]
    # Seconds from queueing to the channel accepting it.
    latency_s: Mapped[float | None] = mapped_column(Float)


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets the API read while a worker writes; foreign keys are off in SQLite unless asked for; the busy
        # timeout makes a second writer (another worker, a migration) wait for the lock instead of failing at once.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for `url`: SQLite (default) with WAL and foreign keys, or PostgreSQL."""
    engine = create_engine(url, echo=echo, pool_pre_ping=not url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


MIGRATIONS = Path(__file__).parent / "migrations"


def create_schema(engine: Engine, revision: str = "head") -> None:
    """Bring the database to the newest schema (Alembic `upgrade head`); safe to call on every start.

    `revision` stops at an older one, for tests that upgrade a database holding data of an earlier schema.
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # A migration that rebuilds a table (SQLite's only way to change constraints) must run with foreign keys
            # off, or dropping the old copy deletes its rows and cascades into the tables referring to it. The
            # pragma does nothing inside a transaction, hence before it; the check below stands in for it.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                # env.py uses this connection instead of opening its own, so callers' engines (and pragmas) are used.
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"migration left rows that break foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


# The account tables (users, tokens, audit log) live in the same database and migrations; importing them here puts
# them in Base.metadata wherever the schema is compared or created.
# The asset data changed through the API (facmon.asset_store), laid over the site files' in the reports, too.
# Elevator maintenance visits, their schedule and the technicians' card reads (rules.maintenance_visits).
from facmon import asset_store as _asset_store  # noqa: E402, F401
from facmon.accounts import models as _accounts  # noqa: E402, F401
from rules import maintenance_models as _maintenance  # noqa: E402, F401
