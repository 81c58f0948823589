"""Arrival proved by the site: a technician's card read at the gate, or the car switched to inspection mode.

A technician is on site when they say so (the API, source "api"), and also when the site shows it:

- a granted card read of a registered technician's card at any access reader of the estate moves every open or
  acknowledged work order of that estate the technician is qualified for (`facmon.estate.site.DISCIPLINE_OF_KIND`) to
  on_site, at the read's time, with the technician as the actor (source "card_read");
- an elevator entering inspection mode (status event 43, service_mode = inspection) moves the open or acknowledged
  work orders of that elevator to on_site (source "inspection_mode"): nobody else puts a car in inspection.

A work order detected after the evidence is not moved by it: a card read at 09:58 does not prove anyone came for a
fault at 10:00. Denied reads and unknown cards move nothing. A work order already on site, or further on, stays as
it is unless the evidence is earlier than the arrival it has: evidence processed late (a gateway's outbox replayed
after an outage) is applied at its own time, moving the arrival back (facmon.workorders.late_arrival), and a breach
it disproves is withdrawn, whether the work order was still waiting or someone had recorded a later arrival since.
The evidence is also kept for a window (rules.evidence), for work orders that open after it for faults detected
before it.

An elevator that leaves inspection after long enough in it has had a maintenance visit (rules.maintenance_visits);
a granted read of a technician's card is kept so the visit can name who was on the estate when it began.

While an elevator is in inspection its faults open no work order (a technician is working on it and trips them):
they are counted and logged as suppressed. The service mode is kept on the device's row (`device_status`), so a
restarted worker still knows.

Several workers (rules.worker): a card read and a work order's opening are events of different devices, so two
workers may apply them at the same moment, each under its own device's lock. Both also take the site's arrivals
lock (rules.pipeline.lock_site_arrivals), so the one that goes second sees the other's work: the read finds the
work order, or the opening finds the read kept as evidence.

`arrivals` and `suppressed` are pure: events, open work orders and technicians in, decisions out. The handlers
(rules.pipeline) carry them out in the event's transaction, around `rules.store.ApplyActions` (`site_evidence`);
`apply_with_site_evidence` runs them without the fire alarms and the state rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import Engine, case, or_, select, update
from sqlalchemy.orm import Session

from facmon.estate.entries import Technician
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, Event, EventType
from facmon.workorders.late_arrival import Evidence, backdate_arrival, note_late
from facmon.workorders.tables import WorkOrder, WorkOrderStatus
from facmon.workorders.transitions import IllegalTransition
from facmon.workorders.workflow import transition_in
from rules.engine import Action, OpenWorkOrder
from rules.evidence import CARD_READ_SOURCE, DEFAULT_WINDOW, INSPECTION_SOURCE, keep_evidence
from rules.maintenance_models import VisitSource
from rules.maintenance_settle import settle_overdue_in
from rules.maintenance_visits import (
    DEFAULT_MIN_INSPECTION,
    add_visit,
    ended_inspection,
    remember_card_read,
    technician_at,
)
from rules.pipeline import Handler, Step, lock_site_arrivals, report_evidence, run_handlers
from rules.store import ApplyActions, ApplyResult
from rules.tables import DeviceStatus

log = structlog.get_logger(__name__)

# What the elevator collectors put in a status event's data (collectors.modbus.conditions), and the GB/T 24476
# event code of inspection for publishers that send the code alone.
SERVICE_MODE_POINT = "service_mode"
INSPECTION = "inspection"
INSPECTION_CODE = "43"
# Statuses an arrival moves on from; on_site and later already have their technician.
AWAITING_ARRIVAL = (WorkOrderStatus.OPEN, WorkOrderStatus.ACKNOWLEDGED)
# Statuses whose recorded arrival earlier evidence moves back.
ARRIVED = (WorkOrderStatus.ON_SITE, WorkOrderStatus.RESOLVED, WorkOrderStatus.CLOSED)


@dataclass(frozen=True)
class OpenOrder:
    """What the decision needs to know of a work order."""

    id: int
    site: str
    device: str
    kind: DeviceKind
    status: WorkOrderStatus
    detected_at: datetime
    on_site_at: datetime | None = None


@dataclass(frozen=True)
class Arrival:
    """Move `work_order_id` to on_site; `backdate`: it is there already, since later than `at`."""

    work_order_id: int
    source: str
    actor: str
    at: datetime
    note: str
    backdate: bool = False


def _proved(order: OpenOrder, at: datetime) -> bool:
    """Whether evidence at `at` moves `order`: waiting for an arrival, or arrived later than `at`; detected by then."""
    if order.detected_at > at:
        return False
    if order.status in AWAITING_ARRIVAL:
        return True
    return order.status in ARRIVED and order.on_site_at is not None and order.on_site_at > at


def service_mode_of(event: Event) -> str | None:
    """The service mode an elevator's status event reports ("inspection", "normal", ...); None for other events."""
    if event.type is not EventType.STATUS or event.ref.kind is not DeviceKind.ELEVATOR:
        return None
    if event.data.get("status_point") == SERVICE_MODE_POINT:
        return str(event.data.get("status_value", "")) or None
    # Code 40 ("back to normal") is shared with the power source, so only inspection is known from the code alone.
    return INSPECTION if "status_point" not in event.data and event.code == INSPECTION_CODE else None


def suppressed(event: Event, service_mode: str | None, since: datetime | None) -> bool:
    """True for an elevator fault raised while that elevator is in inspection (a fault from before it went into
    inspection, replayed late, is not)."""
    return (
        event.type is EventType.FAULT_RAISED
        and event.ref.kind is DeviceKind.ELEVATOR
        and service_mode == INSPECTION
        and since is not None
        and since <= event.ts
    )


def card_holder(event: Event, technicians: Sequence[Technician]) -> Technician | None:
    """The technician whose card a granted card read is; None for denied reads and cards nobody holds."""
    if event.type is not EventType.CARD_READ or event.data.get("granted") is not True:
        return None
    card = event.data.get("card")
    if not isinstance(card, str):
        return None
    card = card.upper()
    return next((t for t in technicians if card in t.cards), None)


def arrivals(
    event: Event, orders: Iterable[OpenOrder], technicians: Sequence[Technician], now: datetime
) -> list[Arrival]:
    """The work orders `event` proves a technician arrived for. `technicians` are those of the event's site."""
    at = min(event.ts, now)  # as for faults: a device clock running ahead must not date an arrival in the future
    ref = event.ref
    holder = card_holder(event, technicians)
    if holder is not None:
        card = str(event.data["card"]).upper()
        note = f"card {card} read at {ref.device}"
        source, actor = CARD_READ_SOURCE, holder.name
        wanted = [o for o in orders if o.site == ref.site and holder.covers(o.kind)]
    elif service_mode_of(event) == INSPECTION:
        note = f"{ref.device} switched to inspection mode"
        source, actor = INSPECTION_SOURCE, ref.device
        wanted = [o for o in orders if o.site == ref.site and o.device == ref.device]
    else:
        return []
    return [
        Arrival(o.id, source, actor, at, note, backdate=o.status not in AWAITING_ARRIVAL)
        for o in wanted
        if _proved(o, at)
    ]


# --- carrying it out -------------------------------------------------------------------------------------------------


def may_prove_arrival(event: Event, technicians: Sequence[Technician]) -> bool:
    """Cheap test before reading work orders: most events prove nothing."""
    return card_holder(event, technicians) is not None or service_mode_of(event) == INSPECTION


def open_orders(
    session: Session, site: str, device: str | None = None, *, at: datetime | None = None
) -> list[OpenOrder]:
    """The work orders of `site` evidence may move: waiting for an arrival; with `at`, those detected by then, and
    also those arrived later than `at`."""
    wo = WorkOrder
    waiting = wo.status.in_([s.value for s in AWAITING_ARRIVAL])
    query = select(wo.id, wo.site, wo.device, wo.kind, wo.status, wo.detected_at, wo.on_site_at).where(
        wo.site == site,
        # Only devices' work orders: a whole fire system's overdue check (kind fire_system) has no device to reach.
        wo.kind.in_([k.value for k in DeviceKind]),
    )
    if at is None:
        query = query.where(waiting)
    else:
        arrived_later = wo.status.in_([s.value for s in ARRIVED]) & (wo.on_site_at > at)
        query = query.where(wo.detected_at <= at, or_(waiting, arrived_later))
    if device is not None:
        query = query.where(wo.device == device)
    return [
        OpenOrder(i, s, d, DeviceKind(k), WorkOrderStatus(st), detected, on_site)
        for i, s, d, k, st, detected, on_site in session.execute(query.order_by(wo.id))
    ]


def service_mode(session: Session, site: str, device: str) -> tuple[str | None, datetime | None]:
    row = session.execute(
        select(DeviceStatus.service_mode, DeviceStatus.service_mode_at).where(
            DeviceStatus.site == site, DeviceStatus.device == device
        )
    ).first()
    return (None, None) if row is None else (row[0], row[1])


def record_service_mode(session: Session, event: Event, mode: str) -> None:
    """Keep the mode on the device's row (written by apply_event before); a late replay does not undo a newer one,
    and the same mode reported again keeps the time it began (an inspection's start is its maintenance visit's)."""
    same = (DeviceStatus.service_mode == mode) & DeviceStatus.service_mode_at.is_not(None)
    session.execute(
        update(DeviceStatus)
        .where(
            DeviceStatus.site == event.ref.site,
            DeviceStatus.device == event.ref.device,
            or_(DeviceStatus.service_mode_at.is_(None), DeviceStatus.service_mode_at <= event.ts),
        )
        .values(service_mode=mode, service_mode_at=case((same, DeviceStatus.service_mode_at), else_=event.ts))
        .execution_options(synchronize_session=False)
    )


def move_on_site(session: Session, planned: Iterable[Arrival], now: datetime, event_id: str | None = None) -> list[int]:
    """Carry out arrivals, at their evidence's time (`now`: when it is processed); the ids of the work orders moved.
    One that got to on_site (or further) since, at or before the evidence, is skipped."""
    moved = []
    for arrival in planned:
        wo_id = arrival.work_order_id
        evidence = Evidence(arrival.source, arrival.actor, arrival.at, arrival.note, event_id=event_id)
        if arrival.backdate:
            if backdate_arrival(session, wo_id, evidence, now):
                moved.append(wo_id)
            continue
        try:
            transition_in(
                session,
                wo_id,
                WorkOrderStatus.ON_SITE,
                actor=arrival.actor,
                source=arrival.source,
                at=arrival.at,
                note=arrival.note,
                now=now,
            )
        except IllegalTransition as exc:
            # Only on_site and later refuse on_site: someone proved an arrival first; the earlier one counts.
            log.debug("arrival already recorded", work_order_id=wo_id, status=exc.current.value)
            if backdate_arrival(session, wo_id, evidence, now):
                moved.append(wo_id)
            continue
        note_late(session, wo_id, evidence, now)
        moved.append(wo_id)
    return moved


# --- the handlers (rules.pipeline), in the order they run ------------------------------------------------------------


class SuppressInInspection:
    """Handler: an elevator in inspection opens no work order for its faults (before `rules.store.ApplyActions`)."""

    name = "suppress_in_inspection"

    def __call__(self, step: Step) -> None:
        event, ref = step.event, step.event.ref
        if event.type is not EventType.FAULT_RAISED or ref.kind is not DeviceKind.ELEVATOR:
            return
        if suppressed(event, *service_mode(step.session, ref.site, ref.device)):
            step.actions = [a for a in step.actions if not isinstance(a, OpenWorkOrder)]
            step.outcome.suppressed = True


class KeepServiceMode:
    """Handler: an elevator's service mode kept on its row; leaving a long enough inspection is a maintenance visit,
    which settles the elevator's overdue maintenance work order."""

    name = "service_mode"

    def __init__(self, min_inspection: timedelta = DEFAULT_MIN_INSPECTION) -> None:
        self.min_inspection = min_inspection

    def __call__(self, step: Step) -> None:
        mode = service_mode_of(step.event)
        if mode is None:
            return
        session, event, ref = step.session, step.event, step.event.ref
        span = ended_inspection(mode, event.ts, *service_mode(session, ref.site, ref.device), self.min_inspection)
        record_service_mode(session, event, mode)
        if span is None:
            return
        visit = add_visit(
            session,
            site=ref.site,
            building=ref.building,
            device=ref.device,
            started_at=span.started_at,
            ended_at=span.ended_at,
            technician=technician_at(session, ref.site, span.started_at),
            source=VisitSource.INSPECTION_MODE,
            actor=None,
            note=None,
            now=step.now,
            event_id=event.id,
        )
        if visit is not None:
            step.outcome.visits.append(visit.id)
            settle_overdue_in(session, site=ref.site, device=ref.device)


class RememberCardRead:
    """Handler: a granted read of a technician's card kept, to name the technician of a maintenance visit."""

    name = "card_read"

    def __init__(self, technicians: Mapping[str, Sequence[Technician]]) -> None:
        self.technicians = technicians

    def __call__(self, step: Step) -> None:
        holder = card_holder(step.event, self.technicians.get(step.event.ref.site, ()))
        if holder is not None:
            remember_card_read(step.session, step.event, holder.id, min(step.event.ts, step.now))


class ProveArrival:
    """Handler: the work orders a card read or an inspection proves a technician arrived for, moved to on_site (or
    their arrival moved back to it); the evidence kept for `window`, for work orders that open after it."""

    name = "arrival"

    def __init__(self, technicians: Mapping[str, Sequence[Technician]], window: timedelta = DEFAULT_WINDOW) -> None:
        self.technicians = technicians
        self.window = window

    def __call__(self, step: Step) -> None:
        event, ref = step.event, step.event.ref
        technicians = self.technicians.get(ref.site, ())
        if not may_prove_arrival(event, technicians):
            return
        at = min(event.ts, step.now)
        by_device = ref.device if service_mode_of(event) == INSPECTION else None
        lock_site_arrivals(step.session, ref.site)
        planned = arrivals(event, open_orders(step.session, ref.site, by_device, at=at), technicians, step.now)
        moved = set(move_on_site(step.session, planned, step.now, event.id))
        step.outcome.arrivals += [(a.work_order_id, a.source) for a in planned if a.work_order_id in moved]
        holder = card_holder(event, technicians)
        keep_evidence(step.session, event, holder, at=at, now=step.now, window=self.window)


def site_evidence(
    technicians: Mapping[str, Sequence[Technician]], min_inspection: timedelta, window: timedelta = DEFAULT_WINDOW
) -> list[Handler]:
    """The handlers of this module around `rules.store.ApplyActions`, in their order; `window`: how long evidence
    is kept for work orders that open after it."""
    return [
        SuppressInInspection(),
        ApplyActions(),
        KeepServiceMode(min_inspection),
        RememberCardRead(technicians),
        ProveArrival(technicians, window),
    ]


def apply_with_site_evidence(
    engine: Engine,
    event: Event,
    actions: Sequence[Action],
    now: datetime,
    *,
    technicians: Sequence[Technician],
    metrics: Counters,
    min_inspection: timedelta = DEFAULT_MIN_INSPECTION,
    window: timedelta = DEFAULT_WINDOW,
) -> ApplyResult:
    """`apply_event`, with faults suppressed during inspection, the service mode kept, maintenance visits and
    technicians' card reads recorded and arrivals carried out, all in the event's one transaction."""
    handlers = site_evidence({event.ref.site: technicians}, min_inspection, window)
    outcome = run_handlers(engine, event, actions, now, handlers)
    report_evidence(outcome, event, metrics)
    return ApplyResult.of(outcome)
