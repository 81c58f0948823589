"""The work-order database every API test starts from: a fresh SQLite file at the newest schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from facmon.kernel.db import make_engine
from facmon.shell.migrations.schema import create_schema


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'facmon.db'}")
    create_schema(engine)
    yield engine
    engine.dispose()
