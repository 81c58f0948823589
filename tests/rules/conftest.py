"""Fixtures for the rules tests: a real SQLite database file per test, at the newest schema, and event makers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from facmon.kernel.clock import FakeClock
from facmon.kernel.db import make_engine
from facmon.kernel.model import Event, EventType
from facmon.shell.migrations.schema import create_schema
from tests.rules.support import MakeEvent, elevator


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'facmon.db'}")
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_event(clock: FakeClock) -> MakeEvent:
    """An event at the fake clock's current time: make_event("fault_raised", "2", device="e2")."""

    def make(type_: str, code: str | None = None, **ref: str) -> Event:
        return Event(ref=elevator(**ref), ts=clock.now(), type=EventType(type_), code=code)

    return make
