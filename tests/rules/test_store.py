"""The work-order store over a real SQLite file: open, recur, clear, idempotence, and the database's own guarantee."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateIndex

from facmon.kernel.clock import FakeClock
from facmon.kernel.db import Base
from facmon.kernel.model import Event
from facmon.shell.migrations.schema import create_schema
from facmon.workorders.queries import get_work_order, list_work_orders, open_work_order_counts
from facmon.workorders.tables import WorkOrder, WorkOrderStatus
from rules.engine import evaluate, load_rules
from rules.store import ApplyResult, apply_event, device_statuses
from rules.tables import DeviceStatus
from tests.rules.support import MakeEvent, head_revision

RULES = load_rules()


def apply(engine: Engine, event: Event, clock: FakeClock) -> ApplyResult:
    return apply_event(engine, event, evaluate(RULES, event, clock.now()), clock.now())


def work_orders(engine: Engine) -> list[WorkOrder]:
    with Session(engine) as session:
        return list(session.execute(select(WorkOrder).order_by(WorkOrder.id)).scalars())


def timeline(engine: Engine, work_order_id: int) -> list[str]:
    with Session(engine) as session:
        work_order = get_work_order(session, work_order_id)
        assert work_order is not None
        return [entry.type for entry in work_order.timeline]


def test_fault_opens_a_work_order(engine: Engine, clock: FakeClock, make_event: MakeEvent) -> None:
    result = apply(engine, make_event("fault_raised", "entrapment"), clock)
    [wo] = work_orders(engine)
    assert result == ApplyResult(opened=(wo.id,))
    assert (wo.site, wo.building, wo.device, wo.kind, wo.fault) == ("s1", "b1", "e1", "elevator", "entrapment")
    assert (wo.status, wo.priority, wo.occurrences) == ("open", "emergency", 1)
    assert wo.detected_at == wo.last_occurrence_at == wo.created_at == clock.now()
    assert wo.detected_at.tzinfo is UTC
    assert wo.due_at == clock.now() + timedelta(minutes=20)
    assert wo.fault_cleared_at is None
    assert (wo.sla_profile, wo.previous_id) == ("elevator.entrapment", None)
    assert timeline(engine, wo.id) == ["opened"]
    with Session(engine) as session:
        stored = get_work_order(session, wo.id)
        assert stored is not None
        assert [(c.name, c.milestone, c.due_at - wo.detected_at) for c in stored.clocks] == [
            ("acknowledge", "acknowledged", timedelta(minutes=3)),
            ("on_site", "on_site", timedelta(minutes=20)),
            ("statutory_on_site", "on_site", timedelta(minutes=30)),
            ("repair", "resolved", timedelta(hours=4)),
        ]
        assert all(c.met_at is None and c.breached_at is None for c in stored.clocks)
        [opened] = stored.timeline
        assert (opened.status, opened.source, opened.actor) == ("open", "rules", "elevator.fault.work-order")


def test_repeated_fault_counts_an_occurrence_of_the_open_work_order(
    engine: Engine, clock: FakeClock, make_event: MakeEvent
) -> None:
    first = apply(engine, make_event("fault_raised", "2"), clock)
    clock.advance(60)
    second = apply(engine, make_event("fault_raised", "2"), clock)
    [wo] = work_orders(engine)
    assert second == ApplyResult(recurred=first.opened)
    assert wo.occurrences == 2
    assert wo.last_occurrence_at == clock.now()
    assert wo.due_at == wo.detected_at + timedelta(minutes=20)  # the SLA runs from the first report
    assert timeline(engine, wo.id) == ["opened", "recurred"]


def test_flapping_fault_is_one_work_order_and_a_clear_does_not_close_it(
    engine: Engine, clock: FakeClock, make_event: MakeEvent
) -> None:
    apply(engine, make_event("fault_raised", "3"), clock)
    clock.advance(10)
    cleared = apply(engine, make_event("fault_cleared", "3"), clock)
    [wo] = work_orders(engine)
    assert cleared.cleared == (wo.id,)
    assert (wo.status, wo.fault_cleared_at) == ("open", clock.now())
    clock.advance(10)
    apply(engine, make_event("fault_raised", "3"), clock)
    [wo] = work_orders(engine)
    assert (wo.status, wo.occurrences, wo.fault_cleared_at) == ("open", 2, None)  # active again
    assert timeline(engine, wo.id) == ["opened", "fault_cleared", "recurred"]
    with Session(engine) as session:
        assert open_work_order_counts(session) == {("s1", "e1"): 1}


def test_a_fault_after_the_work_order_is_closed_opens_a_new_one(
    engine: Engine, clock: FakeClock, make_event: MakeEvent
) -> None:
    apply(engine, make_event("fault_raised", "2"), clock)
    with Session(engine) as session, session.begin():
        session.execute(update(WorkOrder).values(status=WorkOrderStatus.CLOSED.value))
    clock.advance(3600)
    result = apply(engine, make_event("fault_raised", "2"), clock)
    old, new = work_orders(engine)
    assert result.opened == (new.id,)
    assert (old.status, old.occurrences) == ("closed", 1)
    assert (new.status, new.occurrences, new.detected_at) == ("open", 1, clock.now())
    assert (old.previous_id, new.previous_id) == (None, old.id)  # the recurrence links to the work order before
    # ... and a third one to the second, not the first.
    with Session(engine) as session, session.begin():
        session.execute(update(WorkOrder).where(WorkOrder.id == new.id).values(status=WorkOrderStatus.RESOLVED.value))
    apply(engine, make_event("fault_raised", "2"), clock)
    assert [wo.previous_id for wo in work_orders(engine)] == [None, old.id, new.id]
    # Another fault of the same device has no previous work order.
    apply(engine, make_event("fault_raised", "3"), clock)
    assert work_orders(engine)[-1].previous_id is None


def test_other_faults_and_devices_get_their_own_work_orders(
    engine: Engine, clock: FakeClock, make_event: MakeEvent
) -> None:
    apply(engine, make_event("fault_raised", "2"), clock)
    apply(engine, make_event("fault_raised", "3"), clock)
    apply(engine, make_event("fault_raised", "2", device="e2"), clock)
    apply(engine, make_event("fault_raised", "2", site="s2"), clock)
    assert len(work_orders(engine)) == 4


def test_duplicate_event_id_changes_nothing(engine: Engine, clock: FakeClock, make_event: MakeEvent) -> None:
    event = make_event("fault_raised", "2")
    apply(engine, event, clock)
    clock.advance(5)
    assert apply(engine, event, clock) == ApplyResult(duplicate=True)
    [wo] = work_orders(engine)
    assert wo.occurrences == 1
    assert timeline(engine, wo.id) == ["opened"]


def test_the_database_itself_refuses_a_second_open_work_order(engine: Engine, clock: FakeClock) -> None:
    now = clock.now()

    def row(status: WorkOrderStatus) -> WorkOrder:
        return WorkOrder(
            site="s1", building="b1", device="e1", kind="elevator", fault="2", title="t", priority="urgent",
            status=status.value, detected_at=now, due_at=now, occurrences=1, last_occurrence_at=now,
            created_at=now, updated_at=now,
        )  # fmt: skip

    with Session(engine) as session, session.begin():
        session.add_all([row(WorkOrderStatus.OPEN), row(WorkOrderStatus.CLOSED), row(WorkOrderStatus.CANCELLED)])
    # Any non-terminal status holds the slot, not only "open".
    for status in (WorkOrderStatus.OPEN, WorkOrderStatus.ON_SITE):
        with Session(engine) as session, pytest.raises(IntegrityError, match=r"(?i)unique"), session.begin():
            session.add(row(status))
    assert len(work_orders(engine)) == 3


def test_concurrent_workers_never_duplicate_a_work_order(
    engine: Engine, clock: FakeClock, make_event: MakeEvent
) -> None:
    # Separate threads with their own connections, as separate workers would have. On SQLite this proves writers
    # wait for each other (busy timeout) instead of failing with "database is locked"; that the database, not the
    # timing, prevents duplicates is what the unique-index test above proves.
    events = [make_event("fault_raised", "5") for _ in range(24)]
    failures: list[BaseException] = []

    def work(batch: list[Event]) -> None:
        try:
            for event in batch:
                apply(engine, event, clock)
        except BaseException as exc:  # collected and asserted on below: a thread's exception would be lost
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(events[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert failures == []
    [wo] = work_orders(engine)
    assert wo.occurrences == 24
    assert sorted(timeline(engine, wo.id)) == ["opened"] + ["recurred"] * 23


def test_late_clear_does_not_mark_a_newer_fault_cleared(
    engine: Engine, clock: FakeClock, make_event: MakeEvent
) -> None:
    apply(engine, make_event("fault_raised", "4"), clock)
    clock.advance(10)
    stale_clear = make_event("fault_cleared", "4")
    clock.advance(10)
    apply(engine, make_event("fault_raised", "4"), clock)
    assert apply(engine, stale_clear, clock).cleared == ()
    [wo] = work_orders(engine)
    assert wo.fault_cleared_at is None


def test_device_status_follows_comm_events_and_ignores_late_ones(
    engine: Engine, clock: FakeClock, make_event: MakeEvent
) -> None:
    late = make_event("comm_restored")
    clock.advance(1)
    apply(engine, make_event("comm_lost"), clock)
    apply(engine, make_event("fault_raised", "2", device="e2"), clock)
    apply(engine, late, clock)
    with Session(engine) as session:
        statuses = device_statuses(session)
        assert {key: (s.comm, s.last_event_type) for key, s in statuses.items()} == {
            ("s1", "e1"): ("lost", "comm_lost"),
            ("s1", "e2"): ("ok", "fault_raised"),
        }
        assert statuses[("s1", "e1")].last_event_at == clock.now()
    clock.advance(1)
    apply(engine, make_event("comm_restored"), clock)
    with Session(engine) as session:
        assert device_statuses(session, site="s1")[("s1", "e1")].comm == "ok"
        assert device_statuses(session, site="s2") == {}


def test_listing_filters_and_pages_newest_first(engine: Engine, clock: FakeClock, make_event: MakeEvent) -> None:
    for device in ("e1", "e2", "e3"):
        apply(engine, make_event("fault_raised", "2", device=device), clock)
        clock.advance(60)
    apply(engine, make_event("fault_raised", "2", site="s2"), clock)
    with Session(engine) as session, session.begin():
        session.execute(update(WorkOrder).where(WorkOrder.device == "e2").values(status="acknowledged"))
    with Session(engine) as session:
        everything = list_work_orders(session)
        assert [(w.site, w.device) for w in everything.items] == [
            ("s2", "e1"),
            ("s1", "e3"),
            ("s1", "e2"),
            ("s1", "e1"),
        ]
        assert everything.total == 4
        page = list_work_orders(session, site="s1", limit=2, offset=1)
        assert ([w.device for w in page.items], page.total) == (["e2", "e1"], 3)
        assert [w.device for w in list_work_orders(session, statuses=["acknowledged"]).items] == ["e2"]
        assert list_work_orders(session, statuses=["open", "acknowledged"], site="s1").total == 3
        assert list_work_orders(session, device="e3").total == 1
        assert get_work_order(session, 999) is None


def test_naive_datetimes_are_refused(engine: Engine) -> None:
    naive = datetime(2026, 1, 1)  # noqa: DTZ001 - the point of the test
    with Session(engine) as session:
        session.add(DeviceStatus(site="s", device="d", comm="ok", last_event_at=naive, last_event_type="x"))
        with pytest.raises(StatementError, match="naive datetime"):
            session.flush()


def test_migrations_build_exactly_the_models_with_the_partial_index(engine: Engine) -> None:
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        if connection.dialect.name == "postgresql":
            found = text("SELECT indexdef FROM pg_indexes WHERE indexname = 'uq_work_orders_open_fault'")
        else:
            found = text("SELECT sql FROM sqlite_master WHERE name = 'uq_work_orders_open_fault'")
        index_sql = connection.execute(found).scalar_one()
    assert index_sql.startswith("CREATE UNIQUE INDEX uq_work_orders_open_fault ON ")
    assert all(f"'{status}'" in index_sql for status in ("resolved", "closed", "cancelled"))
    assert "WHERE" in index_sql


@pytest.mark.sqlite_only("WAL and foreign keys are SQLite pragmas of facmon.kernel.db.make_engine")
def test_sqlite_runs_with_wal_and_foreign_keys(engine: Engine) -> None:
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar_one() == 1


def test_the_partial_index_is_also_postgresql_ddl() -> None:
    [index] = [i for i in Base.metadata.tables["work_orders"].indexes if i.name == "uq_work_orders_open_fault"]
    ddl = str(CreateIndex(index).compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]
    assert ddl.startswith("CREATE UNIQUE INDEX uq_work_orders_open_fault ON work_orders (site, device, fault) WHERE")
    assert "status NOT IN ('resolved', 'closed', 'cancelled')" in ddl


def test_schema_upgrade_is_repeatable(engine: Engine) -> None:
    create_schema(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head_revision()
