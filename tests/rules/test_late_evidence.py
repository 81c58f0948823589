"""Arrival evidence processed late, through the rules worker's handlers on a real SQLite file: applied at its own
time, a breach it disproves withdrawn, evidence kept for work orders that open after it (within the window, once per
event id), and evidence from before the detection proving nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from facmon.estate.entries import Technician
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType, Value
from facmon.reports.kpi import arrival
from facmon.reports.kpi_data import kpi_rows
from facmon.workorders.breaches import record_breaches
from facmon.workorders.queries import get_work_order
from facmon.workorders.sla import ClockState, compliance
from facmon.workorders.tables import WorkOrder, WorkOrderClock, WorkOrderStatus
from facmon.workorders.workflow import transition
from rules.arrival import apply_with_site_evidence
from rules.engine import evaluate, load_rules
from rules.store import ApplyResult
from rules.tables import ArrivalEvidence
from tests.rules.support import elevator

RULES = load_rules()
MIN = timedelta(minutes=1)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
GATE = DeviceRef(site="s1", building="b1", device="gate-north", kind=DeviceKind.GATE, model="barrier-a")
LI = Technician.model_validate(
    {"id": "li", "name": "Li Ming", "phone": "13800000001", "cards": ["A1B2C3D4"], "disciplines": ["elevator"]}
)
ZHAO = Technician.model_validate(
    {"id": "zhao", "name": "Zhao Lei", "phone": "13800000002", "cards": ["0F0F0F0F"], "disciplines": ["fire"]}
)
TECHNICIANS = (LI, ZHAO)


def apply(engine: Engine, event: Event, now: datetime, window: timedelta = timedelta(days=7)) -> ApplyResult:
    actions = evaluate(RULES, event, now)
    return apply_with_site_evidence(
        engine, event, actions, now, technicians=TECHNICIANS, metrics=Counters(), window=window
    )


def fault(ts: datetime, device: str = "e1", code: str = "2") -> Event:
    return Event(ref=elevator(device=device), ts=ts, type=EventType.FAULT_RAISED, code=code)


def card(ts: datetime, number: str = "A1B2C3D4") -> Event:
    return Event(ref=GATE, ts=ts, type=EventType.CARD_READ, data={"card": number, "granted": True})


def inspection(ts: datetime, device: str = "e1") -> Event:
    data: dict[str, Value] = {"status_point": "service_mode", "status_value": "inspection"}
    return Event(ref=elevator(device=device), ts=ts, type=EventType.STATUS, code="43", data=data)


def load(engine: Engine, work_order_id: int) -> WorkOrder:
    with Session(engine, expire_on_commit=False) as session:
        wo = get_work_order(session, work_order_id)
        assert wo is not None
        return wo


def entries(wo: WorkOrder, kind: str) -> list[tuple[datetime, str | None, str | None, dict[str, object]]]:
    return [(e.at, e.status, e.source, e.detail) for e in wo.timeline if e.type == kind]


def clock_of(wo: WorkOrder, name: str) -> WorkOrderClock:
    return next(c for c in wo.clocks if c.name == name)


def test_a_card_read_replayed_after_the_deadline_but_stamped_before_it_withdraws_the_breach(engine: Engine) -> None:
    [wo_id] = apply(engine, fault(T0), T0).opened
    [breach] = record_breaches(engine, T0 + 20 * MIN + timedelta(seconds=1))
    assert (breach.work_order_id, breach.clock) == (wo_id, "on_site")
    read_at, processed = T0 + 15 * MIN, T0 + 41 * MIN  # the gateway's outbox, replayed after an outage
    apply(engine, card(read_at), processed)

    wo = load(engine, wo_id)
    assert (wo.status, wo.on_site_at, wo.acknowledged_at) == ("on_site", read_at, read_at)
    on_site = clock_of(wo, "on_site")
    assert (on_site.met_at, on_site.breached_at, on_site.breach_withdrawn_at) == (read_at, None, processed)
    states = {c.name: c.state for c in compliance(wo.clocks, processed)}
    assert states == {"on_site": ClockState.MET, "repair": ClockState.PENDING}, "the KPI's rule: met by the deadline"
    with Session(engine) as session:
        rows = kpi_rows(session, "s1", T0 - MIN, T0 + MIN)
    judged = arrival(rows, T0 - MIN, T0 + MIN, processed)
    assert (judged.ratio(1.0).numerator, judged.ratio(1.0).denominator, judged.pending) == (1, 1, 0), "the KPI: met"
    [(at, status, source, detail)] = entries(wo, "breach_withdrawn")
    assert (at, status, source) == (processed, "on_site", "card_read")
    assert detail["clock"] == "on_site"
    assert detail["breached_at"] == breach.breached_at.isoformat()
    assert detail["evidence"] == {
        "source": "card_read",
        "actor": "Li Ming",
        "at": read_at.isoformat(),
        "note": "card A1B2C3D4 read at gate-north",
    }
    [breached] = [e for e in wo.timeline if e.type == "sla_breached"]
    assert detail["breach_entry_id"] == breached.id
    # The transitions are at the evidence's time; the withdrawal, the latest entry, says the status now.
    assert [(e.status, e.at) for e in wo.timeline if e.type == "transition"] == [
        ("acknowledged", read_at),
        ("on_site", read_at),
    ]
    assert entries(wo, "late_evidence") == []
    # Nothing records the breach again.
    assert record_breaches(engine, T0 + 50 * MIN) == []


def test_evidence_after_the_deadline_leaves_the_breach(engine: Engine) -> None:
    [wo_id] = apply(engine, fault(T0), T0).opened
    record_breaches(engine, T0 + 21 * MIN)
    apply(engine, card(T0 + 22 * MIN), T0 + 23 * MIN)
    wo = load(engine, wo_id)
    on_site = clock_of(wo, "on_site")
    assert (on_site.met_at, on_site.breached_at) == (T0 + 22 * MIN, T0 + 21 * MIN)
    assert entries(wo, "breach_withdrawn") == []


def test_an_earlier_card_read_moves_back_an_arrival_recorded_later_through_the_api(engine: Engine) -> None:
    [wo_id] = apply(engine, fault(T0, code="entrapment"), T0).opened
    record_breaches(engine, T0 + 21 * MIN)  # acknowledge (3 min) and on_site (20 min)
    transition(engine, wo_id, WorkOrderStatus.ON_SITE, actor="Li Ming", source="api", at=T0 + 24 * MIN)
    read_at, processed = T0 + 2 * MIN, T0 + 40 * MIN
    apply(engine, card(read_at), processed)

    wo = load(engine, wo_id)
    assert (wo.status, wo.on_site_at, wo.acknowledged_at) == ("on_site", read_at, read_at)
    met = {c.name: (c.met_at, c.breached_at) for c in wo.clocks if c.milestone != "resolved"}
    assert met == {"acknowledge": (read_at, None), "on_site": (read_at, None), "statutory_on_site": (read_at, None)}
    assert sorted(str(d["clock"]) for *_, d in entries(wo, "breach_withdrawn")) == ["acknowledge", "on_site"]
    [(at, status, source, detail)] = entries(wo, "late_evidence")
    assert (at, status, source) == (processed, "on_site", "card_read")
    assert detail["moved"] == {
        "on_site_at": {"from": (T0 + 24 * MIN).isoformat(), "to": read_at.isoformat()},
        "acknowledged_at": {"from": (T0 + 24 * MIN).isoformat(), "to": read_at.isoformat()},
    }
    # A read later than the recorded arrival changes nothing.
    apply(engine, card(T0 + 3 * MIN), T0 + 41 * MIN)
    assert load(engine, wo_id).on_site_at == read_at


def test_a_card_read_processed_before_the_fault_arrives_is_applied_when_the_work_order_opens(engine: Engine) -> None:
    read_at = T0 + 5 * MIN
    read = card(read_at)
    apply(engine, read, read_at)  # nothing open yet: kept
    apply(engine, read, read_at)  # redelivered: kept once
    with Session(engine) as session:
        assert session.execute(select(func.count()).select_from(ArrivalEvidence)).scalar_one() == 1
    # The fault happened at T0 + 2 min; its event reaches the worker at T0 + 30 min (an outbox replayed).
    processed = T0 + 30 * MIN
    [wo_id] = apply(engine, fault(T0 + 2 * MIN), processed).opened

    wo = load(engine, wo_id)
    assert (wo.status, wo.on_site_at, wo.acknowledged_at) == ("on_site", read_at, read_at)
    assert clock_of(wo, "on_site").met_at == read_at
    assert clock_of(wo, "on_site").breached_at is None
    on_site = [e for e in wo.timeline if e.type == "transition" and e.status == "on_site"]
    assert [(e.at, e.source, e.actor) for e in on_site] == [(read_at, "card_read", "Li Ming")]
    assert on_site[0].note == "card A1B2C3D4 read at gate-north (before the work order opened)"
    # The latest entry comes after the opening, so a reader of the latest point sees on_site.
    latest = max(wo.timeline, key=lambda e: (e.at, e.id))
    assert (latest.type, latest.status, latest.at > processed) == ("late_evidence", "on_site", True)
    assert latest.detail["evidence"]["event_id"] == read.id
    assert record_breaches(engine, T0 + 60 * MIN) == []


def test_an_inspection_before_the_fault_arrives_is_applied_to_that_elevator_only(engine: Engine) -> None:
    begun = T0 + 3 * MIN
    apply(engine, inspection(begun), begun)
    processed = T0 + 25 * MIN
    # A fault from before the inspection began, replayed late: not suppressed, and the inspection proves arrival.
    [e1] = apply(engine, fault(T0, device="e1"), processed).opened
    [e2] = apply(engine, fault(T0, device="e2"), processed).opened
    assert (load(engine, e1).status, load(engine, e1).on_site_at) == ("on_site", begun)
    assert load(engine, e2).status == "open"


def test_evidence_from_before_the_detection_or_of_another_discipline_proves_nothing(engine: Engine) -> None:
    apply(engine, card(T0), T0)
    apply(engine, card(T0 + 2 * MIN, number="0F0F0F0F"), T0 + 2 * MIN)  # the fire technician
    [wo_id] = apply(engine, fault(T0 + MIN), T0 + 10 * MIN).opened
    wo = load(engine, wo_id)
    assert (wo.status, wo.on_site_at) == ("open", None)


def test_evidence_older_than_the_window_is_pruned_and_not_applied(engine: Engine) -> None:
    window = timedelta(hours=1)
    apply(engine, card(T0), T0, window)
    later = T0 + 2 * window
    apply(engine, inspection(later, device="e2"), later, window)  # keeping new evidence prunes the old
    with Session(engine) as session:
        kept = session.execute(select(ArrivalEvidence.source, ArrivalEvidence.device)).all()
    assert kept == [("inspection_mode", "e2")]
    [wo_id] = apply(engine, fault(T0 - MIN), later, window).opened
    assert load(engine, wo_id).status == "open", "the card read at T0 was pruned"
    # Evidence already older than the window when it is processed is applied to what is open, and not kept.
    apply(engine, card(T0 + MIN), later, window)
    with Session(engine) as session:
        assert session.execute(select(func.count()).select_from(ArrivalEvidence)).scalar_one() == 1
    assert load(engine, wo_id).on_site_at == T0 + MIN
