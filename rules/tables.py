"""The rules worker's own tables: events already processed, each device's status and state, state-rule holds and
watermarks, the latest clear of each fault, fire alarms, the single-item checks of fire systems, the fire panels'
commissioned points and the leases of tasks one worker of many does."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Index,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from facmon.kernel.db import Base, Id, sql_list


class Comm(StrEnum):
    OK = "ok"
    LOST = "lost"


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
    __table_args__ = (CheckConstraint(f"comm IN ({sql_list(tuple(Comm))})", name="comm"),)

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
        CheckConstraint(f"outcome IN ({sql_list(tuple(FireAlarmOutcome))})", name="outcome"),
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
    # When the notifier queued its alerts (facmon.notifier.dispatcher); NULL: not yet.
    alerted_at: Mapped[datetime | None]


class FireCheckResult(StrEnum):
    PASSED = "passed"
    FAILED = "failed"


class FireCheck(Base):
    """A GB 25201 single-item check of one fire panel (`device`) or one fire system (`system`), e.g. sprinklers."""

    __tablename__ = "fire_checks"
    __table_args__ = (
        CheckConstraint(f"result IN ({sql_list(tuple(FireCheckResult))})", name="result"),
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
        CheckConstraint(f"comm IN ({sql_list(tuple(Comm))})", name="comm"),
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
    # Per aspect of the state ("comm", "fault:<code>", "service_mode", "power_source"), the ISO time of the newest
    # event that decided it (rules.state_engine.next_state); NULL in rows stored before it was kept.
    seen: Mapped[dict[str, str] | None] = mapped_column(JSON)


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


class FaultClear(Base):
    """The latest clear of each fault of a device, kept for a raise that is processed after it but happened before
    it (two workers took the device's events and the clear's finished first): the work order that raise opens
    records the fault as cleared at once, as it would had the events come in order (rules.store)."""

    __tablename__ = "fault_clears"

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    device: Mapped[str] = mapped_column(String(64), primary_key=True)
    fault: Mapped[str] = mapped_column(String(64), primary_key=True)
    cleared_at: Mapped[datetime]


class Lease(Base):
    """A task one process of many does at a time (the fire intact figures): held by `holder` until `expires_at`,
    renewed by it while it lives, taken over by another once it has run out (rules.leases)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]


class FirePointSource(StrEnum):
    SITE_FILE = "site_file"
    REPORTED = "reported"


class FirePoint(Base):
    """A point of a fire panel's point table as commissioned: listed in the site file, or reported by the panel at
    least once. It counts in the intact rate (rules.fire_intact) from `first_seen_at` until a person decommissions
    it (`decommissioned_at`, by whom and why; the audit log keeps the same); recommissioning clears those again.

    `state`, `intact` and `state_since` are what the panel last said of the point (its `state` word: normal, fault,
    disabled, fire, ..., absent) and since when; `heard_at` is the time of its latest reading (the gateway reports
    every point it knows at least once a minute), so a worker that starts knows which of them are still current.
    """

    __tablename__ = "fire_points"
    __table_args__ = (CheckConstraint(f"source IN ({sql_list(tuple(FirePointSource))})", name="source"),)

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    device: Mapped[str] = mapped_column(String(64), primary_key=True)
    point: Mapped[str] = mapped_column(String(16), primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    first_seen_at: Mapped[datetime]
    # The first reading of the point from its panel; NULL: never reported.
    reported_at: Mapped[datetime | None]
    state: Mapped[str | None] = mapped_column(String(32))
    intact: Mapped[bool | None] = mapped_column(Boolean)
    state_since: Mapped[datetime | None]
    heard_at: Mapped[datetime | None]
    decommissioned_at: Mapped[datetime | None]
    decommissioned_by: Mapped[str | None] = mapped_column(String(128))
    decommission_reason: Mapped[str | None] = mapped_column(String(500))


class ArrivalEvidence(Base):
    """A technician's granted card read or an elevator switched to inspection, kept for a bounded window
    (rules.evidence) so a work order that opens later, for a fault detected before the evidence, gets it too."""

    __tablename__ = "arrival_evidence"
    __table_args__ = (Index("ix_arrival_evidence_site_at", "site", "at"), Index("ix_arrival_evidence_at", "at"))

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    # The event that carried it; unique, so a redelivered event keeps nothing twice.
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    site: Mapped[str] = mapped_column(String(64))
    # The reader of a card read, the elevator of an inspection.
    device: Mapped[str] = mapped_column(String(64))
    # card_read or inspection_mode (the timeline's sources).
    source: Mapped[str] = mapped_column(String(32))
    # Who the timeline names: the card holder's name, or the elevator.
    actor: Mapped[str] = mapped_column(String(128))
    # The device kinds the card holder's disciplines covered when the card was read; empty for an inspection,
    # which proves arrival at its own elevator only.
    kinds: Mapped[list[str]] = mapped_column(JSON)
    note: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime]
    recorded_at: Mapped[datetime]
