"""One year of history for the demo site, generated once for this folder's tests (a real SQLite file, the session's
real influxd): the reports, the invariants and the points are read from it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from facmon.demo_history.generate import generate_history
from facmon.demo_history.summary import HistorySummary
from facmon.estate.site import Site
from facmon.kernel.daemons import Influxd
from facmon.kernel.db import make_engine
from facmon.shell.migrations.schema import create_schema
from tests.demo_history.support import UNTIL, demo_site


@dataclass(frozen=True)
class Year:
    site: Site
    engine: Engine
    influx_url: str
    influx_db: str
    summary: HistorySummary


@pytest.fixture(scope="package")
def year(influxd: Influxd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Year]:
    path: Path = tmp_path_factory.mktemp("history") / "facmon.db"
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    db = f"t_{uuid.uuid4().hex[:12]}"
    site = demo_site()
    summary = generate_history(site, engine, influxd.url, db, until=UNTIL, seed=1)
    yield Year(site, engine, influxd.url, db, summary)
    httpx.post(f"{influxd.url}/query", data={"q": f'DROP DATABASE "{db}"'})
    engine.dispose()
