"""Arrival evidence processed late, through the rules worker's handlers on a real SQLite file: applied at its own
time, moving a later recorded arrival back, and a breach it disproves withdrawn."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from facmon.estate.entries import Technician
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType
from facmon.workorders.breaches import record_breaches
from facmon.workorders.queries import get_work_order
from facmon.workorders.sla import ClockState, compliance
from facmon.workorders.tables import WorkOrder, WorkOrderClock, WorkOrderStatus
from facmon.workorders.workflow import transition
from rules.arrival import apply_with_site_evidence
from rules.engine import evaluate, load_rules
from rules.store import ApplyResult
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


def apply(engine: Engine, event: Event, now: datetime) -> ApplyResult:
    actions = evaluate(RULES, event, now)
    return apply_with_site_evidence(engine, event, actions, now, technicians=TECHNICIANS, metrics=Counters())


def fault(ts: datetime, device: str = "e1", code: str = "2") -> Event:
    return Event(ref=elevator(device=device), ts=ts, type=EventType.FAULT_RAISED, code=code)


def card(ts: datetime, number: str = "A1B2C3D4") -> Event:
    return Event(ref=GATE, ts=ts, type=EventType.CARD_READ, data={"card": number, "granted": True})


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
