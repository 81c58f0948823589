"""One event through the rules: a list of handlers in one transaction, at most once per event id.

The transaction's first statement claims the event's id in `processed_events` (on SQLite that takes the write lock
at once, so a concurrent worker waits there instead of failing later). A redelivered event finds its id taken and
changes nothing; a crash before the commit leaves nothing behind, and the redelivery does it all.

Then it locks the event's device: its row in `device_status` (inserted first if the device is new), held until the
commit, so two workers never apply events of one device at once. On PostgreSQL the second waits for the first's
commit and then reads what it wrote; SQLite has one writer at a time anyway. With the lock, arrival order does not
matter within a device: what an event changes is decided by the events' own times (rules.store, rules.state_engine),
so a fault cleared on one worker before its raise is processed on another ends as it would in order.

Each handler is one step of what an event means (fire alarms, work orders, the site's evidence, the state rules):
it reads and writes in the shared session, may narrow the actions the steps after it see, and notes what it did in
the `Outcome`. The metrics and logs of an outcome are written after the commit (`report`), so a transaction rolled
back counts nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import structlog
from sqlalchemy import Engine, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from facmon.estate.site import Site
from facmon.kernel.db import Base
from facmon.kernel.metrics import Counters
from facmon.kernel.model import Event
from rules.engine import Action
from rules.tables import Comm, DeviceStatus, FaultClear, ProcessedEvent

log = structlog.get_logger(__name__)


def refusal(sites: Mapping[str, Site], event: Event) -> tuple[str, str] | None:
    """(reason code, reason) when an event must not be applied because the site files do not know its device: a site
    or device they do not have, or one named with another building, kind or model than theirs; None when they do.

    The broker's ACL keeps a gateway under its own site's topics; this keeps a device nobody described (a forged or
    misconfigured publisher within that site, or a site without a site file here) from opening work orders."""
    ref = event.ref
    site = sites.get(ref.site)
    if site is None:
        return "unknown_site", f"site {ref.site!r} is in no site file"
    try:
        known = site.ref(ref.device)
    except KeyError:
        return "unknown_device", f"device {ref.device!r} is not in site {ref.site!r}'s file"
    for name in ("building", "kind", "model"):
        if getattr(known, name) != getattr(ref, name):
            return (
                "device_mismatch",
                f"{ref.device}: {name} {getattr(ref, name)!r}, the site file says {getattr(known, name)!r}",
            )
    return None


def upsert(session: Session, entity: type[Base]) -> sqlite.Insert | postgresql.Insert:
    """The dialect's own INSERT, which knows ON CONFLICT; plain SQL INSERT has no portable upsert."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        return sqlite.insert(entity)
    if dialect == "postgresql":
        return postgresql.insert(entity)
    raise NotImplementedError(f"work orders need SQLite or PostgreSQL, not {dialect}")


def remember_clear(session: Session, site: str, device: str, fault: str, cleared_at: datetime) -> None:
    """Keep the latest clear of a device's fault (or fire alarm), for a raise older than it that is processed after
    it: the events reached two workers and the clear's finished first."""
    stmt = upsert(session, FaultClear).values(site=site, device=device, fault=fault, cleared_at=cleared_at)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[FaultClear.site, FaultClear.device, FaultClear.fault],
            set_={"cleared_at": stmt.excluded.cleared_at},
            where=FaultClear.cleared_at < stmt.excluded.cleared_at,
        )
    )


def latest_clear(session: Session, site: str, device: str, fault: str) -> datetime | None:
    """The latest clear `remember_clear` kept of the device's fault, if any."""
    where = (FaultClear.site == site, FaultClear.device == device, FaultClear.fault == fault)
    return session.execute(select(FaultClear.cleared_at).where(*where)).scalar_one_or_none()


def claim(session: Session, key: str, now: datetime) -> bool:
    """Record `key` (an event id) as processed; False if it was there already."""
    stmt = (
        upsert(session, ProcessedEvent)
        .values(id=key, processed_at=now)
        .on_conflict_do_nothing(index_elements=[ProcessedEvent.id])
        .returning(ProcessedEvent.id)
    )
    return session.execute(stmt).scalar_one_or_none() is not None


def lock_device(session: Session, event: Event) -> None:
    """Hold the row of the event's device in `device_status` until the transaction ends (a new device's row is
    inserted as the event's; the handlers then write it as usual)."""
    ref = event.ref
    key = (DeviceStatus.site == ref.site, DeviceStatus.device == ref.device)
    new = upsert(session, DeviceStatus).values(
        site=ref.site, device=ref.device, comm=Comm.OK.value, last_event_at=event.ts, last_event_type=event.type.value
    )
    session.execute(new.on_conflict_do_nothing(index_elements=[DeviceStatus.site, DeviceStatus.device]))
    session.execute(select(DeviceStatus.site).where(*key).with_for_update())


def lock_site_arrivals(session: Session, site: str) -> None:
    """Hold the site's arrivals until the transaction ends: a card read or an inspection proving arrival, and a work
    order opening with the evidence kept before it (rules.evidence), take it, so one of them always sees the
    other's work. They are events of different devices, which two workers may otherwise apply at the same moment,
    each under its own device's lock and blind to the other's uncommitted rows: the read would find no work order
    and the opening no evidence. PostgreSQL: a transaction-scoped advisory lock. SQLite: nothing to do; every
    event's transaction writes first (`claim`), so it holds the database's one write lock already."""
    if session.get_bind().dialect.name == "postgresql":
        key = {"key": f"facmon.arrivals/{site}"}
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), key)


@dataclass
class Outcome:
    """What the handlers did with one event; `duplicate`: the event id was applied before and nothing changed."""

    duplicate: bool = False
    # Work orders of the event rules: opened, counted once more, fault cleared.
    opened: list[int] = field(default_factory=list)
    recurred: list[int] = field(default_factory=list)
    cleared: list[int] = field(default_factory=list)
    fire_alarms: list[int] = field(default_factory=list)
    # An elevator fault that opened nothing because the car is in inspection.
    suppressed: bool = False
    visits: list[int] = field(default_factory=list)
    # (work order moved on site, the evidence's source)
    arrivals: list[tuple[int, str]] = field(default_factory=list)
    # The state rules' work orders and holds.
    state_opened: list[int] = field(default_factory=list)
    state_recurred: list[int] = field(default_factory=list)
    holds_started: int = 0
    holds_cancelled: int = 0


@dataclass
class Step:
    """One event on its way through the handlers, inside the event's transaction."""

    session: Session
    event: Event
    # What the event rules decided; a handler may narrow it for the handlers after it.
    actions: list[Action]
    now: datetime
    outcome: Outcome


class Handler(Protocol):
    """One step of applying an event, in the event's transaction."""

    name: str

    def __call__(self, step: Step) -> None: ...


def run_handlers(
    engine: Engine,
    event: Event,
    actions: Sequence[Action],
    now: datetime,
    handlers: Sequence[Handler],
    *,
    key: str | None = None,
) -> Outcome:
    """Claim the event (under `key`, its id unless given) and run `handlers` in order, all in one transaction."""
    outcome = Outcome()
    with Session(engine) as session, session.begin():
        if not claim(session, event.id if key is None else key, now):
            outcome.duplicate = True
            return outcome
        lock_device(session, event)
        step = Step(session, event, list(actions), now, outcome)
        for handler in handlers:
            handler(step)
    return outcome


# --- after the commit ------------------------------------------------------------------------------------------------


def report_work_orders(outcome: Outcome, event: Event, metrics: Counters) -> None:
    if outcome.opened:
        metrics.inc("rules_work_orders_opened", len(outcome.opened))
        log.info("work order opened", ids=outcome.opened, site=event.ref.site, device=event.ref.device)
    if outcome.recurred:
        metrics.inc("rules_work_orders_recurred", len(outcome.recurred))


def report_fire(outcome: Outcome, event: Event, metrics: Counters) -> None:
    if outcome.fire_alarms:
        metrics.inc("rules_fire_alarms", len(outcome.fire_alarms))
        ref = event.ref
        log.error("FIRE ALARM", ids=outcome.fire_alarms, site=ref.site, device=ref.device, point=event.point)


def report_evidence(outcome: Outcome, event: Event, metrics: Counters) -> None:
    ref = event.ref
    if outcome.suppressed:
        metrics.inc("rules_faults_suppressed", kind=ref.kind.value)
        log.info("fault suppressed: the elevator is in inspection", site=ref.site, device=ref.device, code=event.code)
    for visit_id in outcome.visits:
        metrics.inc("rules_maintenance_visits", source="inspection_mode")
        log.info("maintenance visit", id=visit_id, site=ref.site, device=ref.device)
    for _, source in outcome.arrivals:
        metrics.inc("rules_arrivals", source=source)
    if outcome.arrivals:
        moved = [work_order_id for work_order_id, _ in outcome.arrivals]
        log.info("technician on site", ids=moved, site=ref.site, device=ref.device, source=outcome.arrivals[0][1])


def report_state(outcome: Outcome, event: Event, metrics: Counters) -> None:
    if outcome.state_opened:
        metrics.inc("rules_work_orders_opened", len(outcome.state_opened))
        log.info("work order opened by a state rule", ids=outcome.state_opened, device=event.ref.device)
    if outcome.holds_started:
        metrics.inc("rules_holds_started", outcome.holds_started)
    if outcome.holds_cancelled:
        metrics.inc("rules_holds_cancelled", outcome.holds_cancelled)


def report(outcome: Outcome, event: Event, metrics: Counters) -> None:
    """Count and log what applying `event` did (after its commit)."""
    if outcome.duplicate:
        metrics.inc("rules_events_duplicate")
        return
    metrics.inc("rules_events_applied")
    report_fire(outcome, event, metrics)
    report_work_orders(outcome, event, metrics)
    report_evidence(outcome, event, metrics)
    report_state(outcome, event, metrics)
