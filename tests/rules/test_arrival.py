"""Arrival proved by the site, as tables of the pure decision, and carried out on a real SQLite file: card reads and
inspection mode move work orders to on_site with their source; faults during inspection open nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from facmon.estate.entries import Technician
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType, Value
from facmon.workorders.queries import get_work_order, list_work_orders
from facmon.workorders.tables import WorkOrderStatus
from facmon.workorders.workflow import transition
from rules.arrival import (
    Arrival,
    OpenOrder,
    apply_with_site_evidence,
    arrivals,
    service_mode_of,
    suppressed,
)
from rules.engine import evaluate, load_rules
from rules.store import ApplyResult
from tests.rules.support import elevator

S = WorkOrderStatus
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
AT = T0 + timedelta(minutes=5)
GATE = DeviceRef(site="s1", building="b1", device="gate-north", kind=DeviceKind.GATE, model="barrier-a")
LI = Technician.model_validate(
    {"id": "li", "name": "Li Ming", "phone": "+86 138 0000 0001", "cards": ["a1b2c3d4"], "disciplines": ["elevator"]}
)
ZHAO = Technician.model_validate(
    {"id": "zhao", "name": "Zhao Lei", "phone": "13800000002", "cards": ["0F0F0F0F"], "disciplines": ["fire"]}
)
TECHNICIANS = (LI, ZHAO)


def order(
    id_: int, device: str, kind: DeviceKind, status: S = S.OPEN, site: str = "s1", at: datetime = T0
) -> OpenOrder:
    return OpenOrder(id=id_, site=site, device=device, kind=kind, status=status, detected_at=at)


ORDERS = (
    order(1, "e1", DeviceKind.ELEVATOR),
    order(2, "e2", DeviceKind.ELEVATOR, S.ACKNOWLEDGED),
    order(3, "fp1", DeviceKind.FIRE_PANEL),
    order(4, "gate-south", DeviceKind.GATE),
    order(5, "e3", DeviceKind.ELEVATOR, S.ON_SITE),
    order(6, "e1", DeviceKind.ELEVATOR, site="s2"),
    order(7, "e4", DeviceKind.ELEVATOR, at=AT + timedelta(seconds=1)),  # detected after the evidence
    order(8, "e1", DeviceKind.ELEVATOR, S.RESOLVED),
)


def card(number: object, granted: object = True, ts: datetime = AT) -> Event:
    data: dict[str, Value] = {"direction": "in"}
    if number is not None:
        data["card"] = number  # type: ignore[assignment]
    if granted is not None:
        data["granted"] = granted  # type: ignore[assignment]
    return Event(ref=GATE, ts=ts, type=EventType.CARD_READ, data=data)


def status(value: str, code: str, device: str = "e1", point: str = "service_mode") -> Event:
    data: dict[str, Value] = {"status_point": point, "status_value": value}
    return Event(ref=elevator(device=device), ts=AT, type=EventType.STATUS, code=code, data=data)


INSPECTION = status("inspection", "43")


@pytest.mark.parametrize(
    ("event", "moved", "source", "actor"),
    [
        # (b) a granted read of Li's card: every open/acknowledged elevator work order of the site, nothing else
        (card("A1B2C3D4"), [1, 2], "card_read", "Li Ming"),
        (card("a1b2c3d4"), [1, 2], "card_read", "Li Ming"),  # the reader's spelling of hex does not matter
        (card("0F0F0F0F"), [3], "card_read", "Zhao Lei"),  # fire discipline: the fire panel only
        # (c) inspection mode of e1: e1's work orders only, and not those of e1 at another site
        (INSPECTION, [1], "inspection_mode", "e1"),
        (status("inspection", "43", device="e2"), [2], "inspection_mode", "e2"),
        (Event(ref=elevator(), ts=AT, type=EventType.STATUS, code="43"), [1], "inspection_mode", "e1"),
    ],
)
def test_evidence_moves_the_work_orders_it_proves(event: Event, moved: list[int], source: str, actor: str) -> None:
    planned = arrivals(event, ORDERS, TECHNICIANS, now=AT)
    assert [a.work_order_id for a in planned] == moved
    assert {(a.source, a.actor, a.at) for a in planned} == {(source, actor, AT)}


@pytest.mark.parametrize(
    ("event", "why"),
    [
        (card("A1B2C3D4", granted=False), "a denied read proves nothing"),
        (card("A1B2C3D4", granted=None), "a read that does not say it was granted"),
        (card("A1B2C3D4", granted="true"), "granted must be the boolean"),
        (card("DEADBEEF"), "nobody holds this card"),
        (card(None), "a read without a card number"),
        (status("normal", "40"), "leaving inspection"),
        (status("backup", "41", point="power_source"), "another status point"),
        (Event(ref=elevator(), ts=AT, type=EventType.STATUS, code="40"), "code 40 alone is not inspection"),
        (Event(ref=elevator(), ts=AT, type=EventType.FAULT_RAISED, code="2"), "a fault"),
        (status("inspection", "43", device="e3"), "e3 is on site already"),
        (status("inspection", "43", device="e4"), "e4's fault came after the inspection began"),
        (status("inspection", "43", device="e9"), "no work order for e9"),
    ],
)
def test_what_moves_nothing(event: Event, why: str) -> None:
    assert arrivals(event, ORDERS, TECHNICIANS, now=AT) == [], why


def test_a_card_read_needs_the_sites_technicians_and_a_work_order_at_that_site() -> None:
    assert arrivals(card("A1B2C3D4"), ORDERS, (), now=AT) == []
    other_site = [o for o in ORDERS if o.site == "s2"]
    assert arrivals(card("A1B2C3D4"), other_site, TECHNICIANS, now=AT) == []


def test_an_event_stamped_in_the_future_arrives_now() -> None:
    [arrival] = arrivals(card("A1B2C3D4", ts=AT + timedelta(hours=1)), ORDERS[:1], TECHNICIANS, now=AT)
    assert arrival == Arrival(1, "card_read", "Li Ming", AT, "card A1B2C3D4 read at gate-north")


@pytest.mark.parametrize(
    ("mode", "since", "expected"),
    [
        ("inspection", AT - timedelta(seconds=1), True),
        ("inspection", AT, True),
        ("inspection", AT + timedelta(seconds=1), False),  # the fault is older than the inspection (late replay)
        ("normal", AT - timedelta(seconds=1), False),
        (None, None, False),
    ],
)
def test_faults_are_suppressed_only_while_in_inspection(
    mode: str | None, since: datetime | None, expected: bool
) -> None:
    fault = Event(ref=elevator(), ts=AT, type=EventType.FAULT_RAISED, code="2")
    assert suppressed(fault, mode, since) is expected
    cleared = Event(ref=elevator(), ts=AT, type=EventType.FAULT_CLEARED, code="2")
    assert not suppressed(cleared, mode, since)


def test_service_mode_of_status_events() -> None:
    assert service_mode_of(INSPECTION) == "inspection"
    assert service_mode_of(status("normal", "40")) == "normal"
    assert service_mode_of(status("main", "40", point="power_source")) is None
    assert service_mode_of(card("A1B2C3D4")) is None


# --- on the database -------------------------------------------------------------------------------------------------

RULES = load_rules()


def apply(
    engine: Engine, event: Event, now: datetime, metrics: Counters, technicians: tuple[Technician, ...] = ()
) -> ApplyResult:
    return apply_with_site_evidence(
        engine, event, evaluate(RULES, event, now), now, technicians=technicians, metrics=metrics
    )


def fault(device: str, code: str, ts: datetime) -> Event:
    return Event(ref=elevator(device=device), ts=ts, type=EventType.FAULT_RAISED, code=code)


def test_a_card_read_moves_the_sites_elevator_work_orders_and_the_timeline_says_how(engine: Engine) -> None:
    metrics = Counters()
    apply(engine, fault("e1", "2", T0), T0, metrics)
    apply(engine, fault("e2", "entrapment", T0), T0, metrics)
    transition(engine, 2, S.ACKNOWLEDGED, actor="Wang", source="api", at=T0 + timedelta(minutes=1))
    read = card("A1B2C3D4")
    apply(engine, read, AT, metrics, TECHNICIANS)
    apply(engine, read, AT, metrics, TECHNICIANS)  # redelivered: nothing more happens
    with Session(engine) as session:
        assert {wo.id: wo.status for wo in list_work_orders(session).items} == {1: "on_site", 2: "on_site"}
        wo = get_work_order(session, 1)
        assert wo is not None
        assert wo.on_site_at == AT
        arrived = [e for e in wo.timeline if e.type == "transition"]
        assert [(e.status, e.source, e.actor, e.detail["implied"]) for e in arrived] == [
            ("acknowledged", "card_read", "Li Ming", True),
            ("on_site", "card_read", "Li Ming", False),
        ]
        assert arrived[-1].note == "card A1B2C3D4 read at gate-north"
        clock = next(c for c in wo.clocks if c.milestone == "on_site")
        assert clock.met_at == AT
    assert metrics.get("rules_arrivals", source="card_read") == 2


def test_inspection_moves_the_elevators_work_order_and_suppresses_its_faults_across_a_restart(
    engine: Engine,
) -> None:
    metrics = Counters()
    apply(engine, fault("e1", "2", T0), T0, metrics)
    apply(engine, INSPECTION, AT, metrics)
    with Session(engine) as session:
        wo = get_work_order(session, 1)
        assert wo is not None
        assert wo.status == "on_site"
        assert wo.timeline[-1].source == "inspection_mode"
    assert metrics.get("rules_arrivals", source="inspection_mode") == 1

    # Nothing is kept in memory between calls: a restarted worker reads the mode from the device's row.
    later = AT + timedelta(minutes=1)
    result = apply(engine, fault("e1", "5", later), later, Counters())
    apply(engine, fault("e1", "2", later), later, metrics)  # the open work order's fault: suppressed as well
    assert result.opened == ()
    assert metrics.get("rules_faults_suppressed") == 1
    with Session(engine) as session:
        items = list_work_orders(session).items
        assert [(wo.fault, wo.occurrences) for wo in items] == [("2", 1)]

    # Back to normal: faults open work orders again.
    back = later + timedelta(minutes=1)
    apply(engine, status("normal", "40").model_copy(update={"ts": back}), back, metrics)
    assert apply(engine, fault("e1", "5", back), back, metrics).opened != ()
    # An inspection event replayed late does not put the car back into inspection.
    apply(engine, INSPECTION.model_copy(update={"id": "late"}), back, metrics)
    assert apply(engine, fault("e1", "7", back), back, metrics).opened != ()
