"""Migration 0004: a database at 0003 (with work orders) upgrades to fire alarms and checks, losing nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session

from facmon.kernel.clock import FakeClock
from facmon.kernel.db import Base, make_engine
from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType
from facmon.shell.migrations.schema import create_schema
from facmon.workorders.queries import list_work_orders
from rules.engine import FireAlarmSignal, evaluate, load_rules
from rules.fire import list_fire_alarms, record_fire_signals
from rules.fire_checks import FireCheckMonitor, record_check
from rules.tables import FireCheckResult

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
NEW_TABLES = {"fire_alarms", "fire_checks", "fire_check_schedule"}


@pytest.mark.parametrize("start", ["0002", "0003"])
async def test_upgrade_to_0004_keeps_work_orders_and_adds_the_fire_tables(tmp_path: Path, start: str) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        create_schema(engine, start)
        assert NEW_TABLES.isdisjoint(inspect(engine).get_table_names())
        rules = load_rules()
        # A work order as the code of that revision wrote it (today's models have columns it did not have yet).
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO work_orders (site, building, device, kind, fault, title, priority, status,"
                    " detected_at, due_at, occurrences, last_occurrence_at, created_at, updated_at)"
                    " VALUES ('s1', 'b1', 'e1', 'elevator', '2', 'door close fault', 'urgent', 'open',"
                    " :t, :t, 1, :t, :t, :t)"
                ),
                {"t": T0},
            )

        create_schema(engine, "0004")
        with engine.connect() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0004"
            assert connection.execute(text("SELECT fault FROM work_orders")).scalars().all() == ["2"]
        assert NEW_TABLES.issubset(inspect(engine).get_table_names())

        create_schema(engine)  # and on to head, whatever comes after
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        with Session(engine) as session:
            assert [(wo.fault, wo.category) for wo in list_work_orders(session).items] == [("2", "repair")]

        # The new features work on the upgraded database.
        panel = DeviceRef(site="s1", building="b1", device="fp1", kind=DeviceKind.FIRE_PANEL, model="fire-gb-a")
        fire = Event(ref=panel, ts=T0, type=EventType.FAULT_RAISED, code="fire", point="1-004")
        signals = [a for a in evaluate(rules, fire, T0) if isinstance(a, FireAlarmSignal)]
        assert len(record_fire_signals(engine, signals, T0)) == 1
        with Session(engine) as session:
            items, total = list_fire_alarms(session, site="s1")
            assert (total, items[0].point) == (1, "1-004")
        record_check(
            engine,
            site="s1",
            device=None,
            system="hydrant",
            item="pressure",
            actor="wang",
            result=FireCheckResult.PASSED,
            note=None,
            at=T0,
            now=T0,
        )
        clock = FakeClock(T0 + timedelta(days=30))
        assert [o.subject for o in await FireCheckMonitor(engine, clock).tick()] == ["system:hydrant"]
    finally:
        engine.dispose()


def test_0004_downgrades_to_0003(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    from facmon.shell.migrations.schema import MIGRATIONS

    engine = make_engine(f"sqlite:///{tmp_path / 'db.db'}")
    try:
        create_schema(engine, "0004")
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0003")
        assert NEW_TABLES.isdisjoint(inspect(engine).get_table_names())
    finally:
        engine.dispose()
