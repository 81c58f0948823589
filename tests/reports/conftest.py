"""Fixtures for the report tests: a real SQLite file at the newest schema, seeded with a year of work orders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from facmon.kernel.db import make_engine
from facmon.shell.migrations.schema import create_schema
from tests.reports.support import seed


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, dict[str, int]]]:
    """One database for the module: the reports only read it."""
    path: Path = tmp_path_factory.mktemp("reports") / "facmon.db"
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    ids = seed(engine)
    yield engine, ids
    engine.dispose()
