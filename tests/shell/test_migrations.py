"""Upgrading a database that holds data of an earlier schema: nothing lost, and the new features work on old rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from facmon.kernel.clock import FakeClock
from facmon.kernel.db import Base, make_engine
from facmon.kernel.model import Event, EventType
from facmon.shell.migrations.schema import create_schema
from facmon.workorders.breaches import record_breaches
from facmon.workorders.lifecycle import pending_lines
from facmon.workorders.queries import get_work_order, list_work_orders
from facmon.workorders.tables import WorkOrderStatus
from facmon.workorders.workflow import transition
from rules.engine import evaluate, load_rules
from rules.store import apply_event
from tests.rules.support import elevator, head_revision

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
# Rows as the 0001 code wrote them: (id, device, fault, status); naive UTC text, as SQLite stores it.
OLD_WORK_ORDERS = [
    (1, "e1", "2", "open"),
    (2, "e2", "entrapment", "acknowledged"),
    (3, "e3", "3", "on_site"),
    (4, "e4", "7", "closed"),
    (5, "e5", "8", "cancelled"),
]


@pytest.fixture
def old_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    create_schema(engine, "0001")
    stamp = T0.replace(tzinfo=None).isoformat(sep=" ")
    due = (T0 + timedelta(minutes=20)).replace(tzinfo=None).isoformat(sep=" ")
    with engine.begin() as connection:
        for wo_id, device, fault, status in OLD_WORK_ORDERS:
            connection.execute(
                text(
                    "INSERT INTO work_orders (id, site, building, device, kind, fault, title, priority, status,"
                    " detected_at, due_at, occurrences, last_occurrence_at, created_at, updated_at) VALUES"
                    " (:id, 's1', 'b1', :device, 'elevator', :fault, 'old', 'urgent', :status,"
                    " :t, :due, 1, :t, :t, :t)"
                ),
                {"id": wo_id, "device": device, "fault": fault, "status": status, "t": stamp, "due": due},
            )
            connection.execute(
                text(
                    "INSERT INTO work_order_events (work_order_id, at, type, detail)"
                    " VALUES (:id, :t, 'opened', '{\"rule\": \"elevator.fault.work-order\"}')"
                ),
                {"id": wo_id, "t": stamp},
            )
        connection.execute(text("INSERT INTO processed_events (id, processed_at) VALUES ('ev-old', :t)"), {"t": stamp})
    yield engine
    engine.dispose()


def test_upgrade_keeps_every_row_and_matches_the_models(old_engine: Engine) -> None:
    create_schema(old_engine)
    with old_engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head_revision()
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        # The table rebuild ran with foreign keys off, so the timeline was not cascaded away; and they are on again.
        assert connection.execute(text("SELECT count(*) FROM work_order_events")).scalar_one() == 5
        assert connection.execute(text("SELECT count(*) FROM processed_events")).scalar_one() == 1
        assert connection.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
    with Session(old_engine) as session:
        page = list_work_orders(session)
        by_id = {wo.id: wo for wo in page.items}
        assert {i: (w.status, w.sla_profile, w.previous_id) for i, w in by_id.items()} == {
            wo_id: (status, None, None) for wo_id, _, _, status in OLD_WORK_ORDERS
        }
        # Work orders still waiting for a technician got their on-site clock; the others have no clock to invent.
        assert {i: [(c.name, c.due_at, c.met_at) for c in w.clocks] for i, w in by_id.items()} == {
            1: [("on_site", T0 + timedelta(minutes=20), None)],
            2: [("on_site", T0 + timedelta(minutes=20), None)],
            3: [],
            4: [],
            5: [],
        }
        old = get_work_order(session, 1)
        assert old is not None
        assert [(e.type, e.status, e.exported_at) for e in old.timeline] == [("opened", "open", T0)]
    assert pending_lines(old_engine, 100) == []  # old entries are not replayed into the dashboards


def test_old_work_orders_take_part_in_the_new_lifecycle(old_engine: Engine) -> None:
    create_schema(old_engine)
    clock = FakeClock(T0 + timedelta(minutes=10))
    transition(old_engine, 1, WorkOrderStatus.ON_SITE, actor="li", source="api", at=clock.now())
    clock.advance(timedelta(minutes=11))
    # Work order 2's migrated clock breaches; work order 1 met its clock.
    assert [(b.work_order_id, b.clock) for b in record_breaches(old_engine, clock.now())] == [(2, "on_site")]
    # A fault on e4, whose old work order is closed, opens a new one linked to it.
    rules = load_rules()
    event = Event(ref=elevator(device="e4"), ts=clock.now(), type=EventType.FAULT_RAISED, code="7")
    [new_id] = apply_event(old_engine, event, evaluate(rules, event, clock.now()), clock.now()).opened
    with Session(old_engine) as session:
        new = get_work_order(session, new_id)
        assert new is not None
        assert (new.previous_id, new.sla_profile) == (4, "elevator.fault")
        assert [(c.name, c.due_at - new.detected_at) for c in new.clocks] == [
            ("on_site", timedelta(minutes=20)),
            ("repair", timedelta(hours=24)),
        ]
    assert len(pending_lines(old_engine, 100)) == 4  # implied ack + on_site, the breach, the new work order
