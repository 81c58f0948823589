"""Transitions and follow-ups over a real SQLite file, and what the database (not the process) guarantees under
concurrent writers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from facmon.kernel.clock import FakeClock
from facmon.workorders.queries import get_work_order
from facmon.workorders.tables import FollowUp, FollowUpOutcome, WorkOrder, WorkOrderStatus
from facmon.workorders.transitions import IllegalTransition
from facmon.workorders.workflow import (
    FollowUpRefused,
    FollowUpTimeInvalid,
    WorkOrderNotFound,
    add_follow_up,
    transition,
)
from rules.engine import evaluate, load_rules
from rules.store import apply_event
from tests.rules.support import MakeEvent

RULES = load_rules()
S = WorkOrderStatus
T = TypeVar("T")


def open_work_order(engine: Engine, clock: FakeClock, make_event: MakeEvent, code: str = "entrapment") -> int:
    event = make_event("fault_raised", code)
    [work_order_id] = apply_event(engine, event, evaluate(RULES, event, clock.now()), clock.now()).opened
    return work_order_id


def load(engine: Engine, work_order_id: int) -> WorkOrder:
    with Session(engine) as session:
        work_order = get_work_order(session, work_order_id)
        assert work_order is not None
        return work_order


def move(engine: Engine, clock: FakeClock, work_order_id: int, to: WorkOrderStatus, **kw: str) -> None:
    transition(
        engine, work_order_id, to, actor=kw.get("actor", "li"), source="api", at=clock.now(), note=kw.get("note")
    )


def test_full_lifecycle_records_times_clocks_and_timeline(
    engine: Engine, clock: FakeClock, make_event: MakeEvent
) -> None:
    wo_id = open_work_order(engine, clock, make_event)
    t0 = clock.now()
    clock.advance(60)
    result = transition(engine, wo_id, S.ACKNOWLEDGED, actor="li", source="api", at=clock.now(), note="on my way")
    assert (result.previous, result.steps) == (S.OPEN, (S.ACKNOWLEDGED,))
    clock.advance(14 * 60)
    move(engine, clock, wo_id, S.ON_SITE, actor="li")
    clock.advance(10 * 60)
    move(engine, clock, wo_id, S.RESOLVED, actor="li", note="door operator reset")
    clock.advance(3600)
    move(engine, clock, wo_id, S.CLOSED, actor="wang")

    wo = load(engine, wo_id)
    minutes = timedelta(minutes=1)
    assert wo.status == "closed"
    assert (wo.acknowledged_at, wo.on_site_at, wo.resolved_at, wo.closed_at, wo.cancelled_at) == (
        t0 + minutes,
        t0 + 15 * minutes,
        t0 + 25 * minutes,
        t0 + 85 * minutes,
        None,
    )
    assert {c.name: c.met_at for c in wo.clocks} == {
        "acknowledge": t0 + minutes,
        "on_site": t0 + 15 * minutes,
        "statutory_on_site": t0 + 15 * minutes,
        "repair": t0 + 25 * minutes,  # the resolution meets the repair clock
    }
    transitions = [e for e in wo.timeline if e.type == "transition"]
    assert [(e.status, e.actor, e.source, e.note, e.detail) for e in transitions] == [
        ("acknowledged", "li", "api", "on my way", {"from": "open", "implied": False}),
        ("on_site", "li", "api", None, {"from": "acknowledged", "implied": False}),
        ("resolved", "li", "api", "door operator reset", {"from": "on_site", "implied": False}),
        ("closed", "wang", "api", None, {"from": "resolved", "implied": False}),
    ]
    assert wo.updated_at == clock.now()


def test_arrival_before_acknowledgement_implies_it(engine: Engine, clock: FakeClock, make_event: MakeEvent) -> None:
    wo_id = open_work_order(engine, clock, make_event)
    clock.advance(120)
    result = transition(engine, wo_id, S.ON_SITE, actor="card 0042", source="card_read", at=clock.now(), note="b1")
    assert result.steps == (S.ACKNOWLEDGED, S.ON_SITE)
    wo = load(engine, wo_id)
    assert wo.acknowledged_at == wo.on_site_at == clock.now()
    # Every clock up to on site is met by the arrival; the repair clock waits for the resolution.
    assert {c.name: c.met_at for c in wo.clocks} == {
        "acknowledge": clock.now(),
        "on_site": clock.now(),
        "statutory_on_site": clock.now(),
        "repair": None,
    }
    implied, arrived = wo.timeline[-2:]
    assert (implied.status, implied.source, implied.note, implied.detail) == (
        "acknowledged",
        "card_read",
        None,
        {"from": "open", "implied": True},
    )
    assert (arrived.status, arrived.note, arrived.detail) == (
        "on_site",
        "b1",
        {"from": "acknowledged", "implied": False},
    )


def test_cancelling_stops_the_clocks_still_running(engine: Engine, clock: FakeClock, make_event: MakeEvent) -> None:
    wo_id = open_work_order(engine, clock, make_event)
    clock.advance(60)
    move(engine, clock, wo_id, S.ACKNOWLEDGED)
    clock.advance(4 * 60)
    move(engine, clock, wo_id, S.CANCELLED, note="false alarm: child pressed the alarm button")
    wo = load(engine, wo_id)
    assert (wo.status, wo.cancelled_at) == ("cancelled", clock.now())
    assert {c.name: (c.met_at is not None, c.cancelled_at) for c in wo.clocks} == {
        "acknowledge": (True, None),
        "on_site": (False, clock.now()),
        "statutory_on_site": (False, clock.now()),
        "repair": (False, clock.now()),
    }
    assert wo.timeline[-1].note == "false alarm: child pressed the alarm button"


def test_refused_transitions_change_nothing(engine: Engine, clock: FakeClock, make_event: MakeEvent) -> None:
    wo_id = open_work_order(engine, clock, make_event)
    with pytest.raises(IllegalTransition, match="on site first") as caught:
        move(engine, clock, wo_id, S.RESOLVED)
    assert (caught.value.current, caught.value.allowed) == (S.OPEN, (S.ACKNOWLEDGED, S.ON_SITE, S.CANCELLED))
    move(engine, clock, wo_id, S.ON_SITE)
    with pytest.raises(IllegalTransition, match="already on_site"):
        move(engine, clock, wo_id, S.ON_SITE)
    wo = load(engine, wo_id)
    assert wo.status == "on_site"
    assert [e.status for e in wo.timeline] == ["open", "acknowledged", "on_site"]
    with pytest.raises(WorkOrderNotFound):
        move(engine, clock, 999, S.ACKNOWLEDGED)


def run_together(count: int, work: Callable[[int], T]) -> list[T | BaseException]:
    """Run work(0..count-1) in threads released at the same moment; each result or exception, in order."""
    barrier = threading.Barrier(count)
    results: list[T | BaseException] = [RuntimeError("did not finish")] * count

    def each(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except BaseException as exc:  # handed back to the test, which asserts on it
            results[index] = exc

    threads = [threading.Thread(target=each, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    return results


def test_concurrent_acknowledgements_one_wins_the_others_are_refused(
    engine: Engine, clock: FakeClock, make_event: MakeEvent
) -> None:
    wo_id = open_work_order(engine, clock, make_event)
    clock.advance(30)
    results = run_together(
        4, lambda i: transition(engine, wo_id, S.ACKNOWLEDGED, actor=f"tech{i}", source="api", at=clock.now())
    )
    refused = [r for r in results if isinstance(r, IllegalTransition)]
    assert len(refused) == 3, results
    assert all(r.current is S.ACKNOWLEDGED and "already acknowledged" in r.reason for r in refused)
    assert [e.status for e in load(engine, wo_id).timeline] == ["open", "acknowledged"]


def test_the_database_refuses_a_second_open_work_order_from_another_session(engine: Engine, clock: FakeClock) -> None:
    # Two sessions on two threads insert the same open (site, device, fault) at the same moment, with no upsert and
    # no check in Python: the partial unique index lets exactly one through.
    now = clock.now()

    def insert(_: int) -> int:
        with Session(engine) as session, session.begin():
            row = WorkOrder(
                site="s1", building="b1", device="e1", kind="elevator", fault="2", title="t", priority="urgent",
                status="open", detected_at=now, due_at=now, occurrences=1, last_occurrence_at=now,
                created_at=now, updated_at=now,
            )  # fmt: skip
            session.add(row)
            session.flush()
            return row.id

    results = run_together(2, insert)
    assert sum(isinstance(r, int) for r in results) == 1, results
    [error] = [r for r in results if isinstance(r, BaseException)]
    assert isinstance(error, IntegrityError)
    assert "unique" in str(error).lower()
    with Session(engine) as session:
        assert session.execute(select(func.count()).select_from(WorkOrder)).scalar_one() == 1


def test_concurrent_recurrences_after_resolution_open_one_new_linked_work_order(
    engine: Engine, clock: FakeClock, make_event: MakeEvent
) -> None:
    first = open_work_order(engine, clock, make_event, code="2")
    move(engine, clock, first, S.ON_SITE)
    move(engine, clock, first, S.RESOLVED)
    clock.advance(600)
    events = [make_event("fault_raised", "2") for _ in range(4)]
    run_together(4, lambda i: apply_event(engine, events[i], evaluate(RULES, events[i], clock.now()), clock.now()))
    with Session(engine) as session:
        rows = session.execute(select(WorkOrder).order_by(WorkOrder.id)).scalars().all()
        assert [(w.status, w.occurrences, w.previous_id) for w in rows] == [("resolved", 1, None), ("open", 4, first)]


def test_follow_ups_on_repaired_work_orders(engine: Engine, clock: FakeClock, make_event: MakeEvent) -> None:
    wo_id = open_work_order(engine, clock, make_event, code="3")

    def follow_up(
        visited_at: datetime,
        outcome: FollowUpOutcome = FollowUpOutcome.SATISFIED,
        note: str | None = None,
        work_order_id: int = wo_id,
    ) -> FollowUp:
        return add_follow_up(
            engine,
            work_order_id,
            actor="zhao",
            outcome=outcome,
            note=note,
            visited_at=visited_at,
            now=clock.now(),
            source="api",
        )

    with pytest.raises(FollowUpRefused, match="this one is open") as caught:
        follow_up(clock.now())
    assert caught.value.current is S.OPEN
    move(engine, clock, wo_id, S.ON_SITE)
    clock.advance(600)
    move(engine, clock, wo_id, S.RESOLVED)
    resolved_at = clock.now()
    clock.advance(86400)
    with pytest.raises(FollowUpTimeInvalid, match="in the future"):
        follow_up(clock.now() + timedelta(seconds=1))
    with pytest.raises(FollowUpTimeInvalid, match="after the visit"):
        follow_up(resolved_at - timedelta(seconds=1))
    visited = clock.now() - timedelta(hours=2)
    recorded = follow_up(visited, FollowUpOutcome.DISSATISFIED, "door still slow")
    move(engine, clock, wo_id, S.CLOSED)
    follow_up(clock.now())
    wo = load(engine, wo_id)
    assert [(f.id, f.actor, f.outcome, f.note, f.visited_at) for f in wo.follow_ups] == [
        (recorded.id, "zhao", "dissatisfied", "door still slow", visited),
        (recorded.id + 1, "zhao", "satisfied", None, clock.now()),
    ]
    entries = [e for e in wo.timeline if e.type == "follow_up"]
    assert [(e.status, e.detail["outcome"]) for e in entries] == [("resolved", "dissatisfied"), ("closed", "satisfied")]
    with pytest.raises(WorkOrderNotFound):
        follow_up(clock.now(), work_order_id=999)
