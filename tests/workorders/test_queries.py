"""Pages of work orders from the database, in the order list_work_orders documents, on SQLite and PostgreSQL.

The database sorts and pages (in segments read from indexes, facmon.workorders.queries); here the whole mixed set
is sorted in Python by the documented keys and every page of every sort, with and without filters, must be the
matching slice of it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import Postgres
from facmon.workorders.next_due import refresh_next_due
from facmon.workorders.queries import SORTS, list_work_orders
from facmon.workorders.tables import (
    TERMINAL_STATUSES,
    Milestone,
    Priority,
    WorkOrder,
    WorkOrderClock,
    WorkOrderStatus,
)
from facmon.workorders.workflow import transition
from rules.engine import evaluate, load_rules
from rules.store import apply_event
from tests.rules.support import MakeEvent

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
RULES = load_rules()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_engine(request: pytest.FixtureRequest, postgres: Postgres) -> Engine:
    # The server is asked for by name, so it is set up as the session's (a child process of its own, not the test's).
    engine: Engine = request.getfixturevalue("engine" if request.param == "sqlite" else "postgres_engine")
    return engine


def _mixed_set(engine: Engine, seed: int, count: int = 40) -> list[dict[str, Any]]:
    """Work orders of every status and both priorities at two sites, with running, met and cancelled clocks, passed
    and future deadlines, and ties in deadlines and detection times (so the id must break them)."""
    rng = random.Random(seed)
    detections = [NOW - timedelta(hours=h) for h in (1, 2, 2, 5, 30, 30, 200)]
    deadlines = [NOW + timedelta(minutes=m) for m in (-90, -5, -5, 10, 10, 60, 600)]
    rows: list[dict[str, Any]] = []
    with Session(engine) as session:
        for n in range(count):
            status = rng.choice(list(WorkOrderStatus))
            detected = rng.choice(detections)
            work_order = WorkOrder(
                site=rng.choice(["north", "south"]), building="b1", device=f"d{n}", kind="elevator", fault="2",
                title=f"fault {n}", priority=rng.choice(list(Priority)).value, status=status.value,
                detected_at=detected, due_at=detected + timedelta(minutes=20), last_occurrence_at=detected,
                created_at=detected, updated_at=detected,
            )  # fmt: skip
            session.add(work_order)
            session.flush()
            running: list[datetime] = []
            for c in range(rng.randint(0, 3)):
                due = rng.choice(deadlines)
                # Work orders being worked on have clocks still running; the others only met or cancelled ones.
                state = rng.choice(["running", "met", "cancelled"]) if status not in TERMINAL_STATUSES else "met"
                met = NOW if state == "met" else None
                cancelled = NOW if state == "cancelled" else None
                session.add(
                    WorkOrderClock(work_order_id=work_order.id, name=f"c{c}", milestone=Milestone.ON_SITE.value,
                                   due_at=due, met_at=met, cancelled_at=cancelled)
                )  # fmt: skip
                if state == "running":
                    running.append(due)
            session.flush()
            refresh_next_due(session, work_order.id)  # as the code that adds or stops clocks does
            rows.append(
                {"id": work_order.id, "site": work_order.site, "status": status.value,
                 "priority": work_order.priority, "detected_at": detected, "next_due": min(running, default=None)}
            )  # fmt: skip
        session.commit()
    return rows


def _urgency(row: dict[str, Any]) -> tuple[Any, ...]:
    """The documented urgency order: the earliest running deadline first, then those with none, newest first."""
    newest = (-row["detected_at"].timestamp(), -row["id"])
    if row["next_due"] is None:
        return (1, 0.0, *newest)
    return (0, row["next_due"].timestamp(), *newest)


KEYS: dict[str, Callable[[dict[str, Any]], tuple[Any, ...]]] = {
    "urgency": _urgency,
    "priority": lambda r: ([Priority.EMERGENCY.value, Priority.URGENT.value].index(r["priority"]), *_urgency(r)),
    "detected_at": lambda r: (r["detected_at"], r["id"]),
    "-detected_at": lambda r: (-r["detected_at"].timestamp(), -r["id"]),
}

FILTERS: list[tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]] = [
    ({}, lambda r: True),
    ({"site": "north"}, lambda r: r["site"] == "north"),
    (
        {"statuses": ["open", "acknowledged", "on_site"]},
        lambda r: r["status"] in ("open", "acknowledged", "on_site"),
    ),
    ({"priority": "emergency"}, lambda r: r["priority"] == "emergency"),
]


@pytest.mark.parametrize("seed", [1, 2])
def test_every_page_of_every_sort_is_the_documented_order(any_engine: Engine, seed: int) -> None:
    rows = _mixed_set(any_engine, seed)
    assert len({_urgency(r)[:2] for r in rows}) < len(rows), "the set should hold ties the id has to break"
    with Session(any_engine) as session:
        for sort in SORTS:
            for filters, keep in FILTERS:
                expected = [r["id"] for r in sorted(filter(keep, rows), key=KEYS[sort])]
                for limit in (1, 7, 100):
                    for offset in range(0, len(expected) + 2):
                        page = list_work_orders(session, sort=sort, limit=limit, offset=offset, **filters)
                        assert [w.id for w in page.items] == expected[offset : offset + limit], (sort, filters)
                        assert page.total == len(expected)
                        if limit == 100:
                            break  # one page holds them all; later offsets are covered by the smaller pages


def test_next_due_follows_the_running_clocks_through_opening_and_transitions(
    any_engine: Engine, clock: FakeClock, make_event: MakeEvent
) -> None:
    """The stored sort key is the earliest deadline of the running clocks after each change the code makes."""

    def stored_and_computed() -> tuple[datetime | None, datetime | None]:
        with Session(any_engine) as session:
            work_order = session.get_one(WorkOrder, wo_id)
            running = [c.due_at for c in work_order.clocks if c.met_at is None and c.cancelled_at is None]
            return work_order.next_due_at, min(running, default=None)

    event = make_event("fault_raised", "entrapment")
    [wo_id] = apply_event(any_engine, event, evaluate(RULES, event, clock.now()), clock.now()).opened
    assert stored_and_computed() == (clock.now() + timedelta(minutes=3),) * 2  # acknowledge within 3 min
    for status, earliest in (
        (WorkOrderStatus.ACKNOWLEDGED, timedelta(minutes=20)),  # on site within 20 min
        (WorkOrderStatus.ON_SITE, timedelta(hours=4)),  # repaired within 4 h
        (WorkOrderStatus.RESOLVED, None),
    ):
        transition(any_engine, wo_id, status, actor="li", source="api", at=clock.now())
        expected = None if earliest is None else event.ts + earliest
        assert stored_and_computed() == (expected, expected), status
    event = make_event("fault_raised", "2", device="e2")
    [other] = apply_event(any_engine, event, evaluate(RULES, event, clock.now()), clock.now()).opened
    transition(any_engine, other, WorkOrderStatus.CANCELLED, actor="li", source="api", at=clock.now())
    with Session(any_engine) as session:
        assert session.get_one(WorkOrder, other).next_due_at is None
