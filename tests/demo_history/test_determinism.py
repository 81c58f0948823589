"""One seed, site and end give one history: the same rows in the database and the same points in InfluxDB; another
seed gives another. A database that holds work of its own is refused, untouched."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from facmon.demo_history.generate import ensure_demo_history, generate_history
from facmon.demo_history.guard import HistoryRefused
from facmon.demo_history.summary import HistorySummary
from facmon.kernel.daemons import Influxd
from facmon.kernel.db import make_engine
from facmon.kernel.model import Event, EventType
from facmon.shell.migrations.schema import create_schema
from rules.engine import evaluate, load_rules
from rules.store import apply_event
from tests.demo_history.support import UNTIL, demo_site, dump, query

DAYS = 14


class Target:
    """A fresh SQLite file and a fresh InfluxDB database."""

    def __init__(self, influxd: Influxd, folder: Path) -> None:
        self.engine: Engine = make_engine(f"sqlite:///{folder / f'{uuid.uuid4().hex}.db'}")
        create_schema(self.engine)
        self.url = influxd.url
        self.db = f"t_{uuid.uuid4().hex[:12]}"

    def generate(self, seed: int) -> HistorySummary:
        return generate_history(demo_site(), self.engine, self.url, self.db, until=UNTIL, days=DAYS, seed=seed)

    def points(self, measurement: str) -> list[dict[str, Any]]:
        return query(self.url, self.db, f"SELECT * FROM {measurement} GROUP BY *")


@pytest.fixture
def targets(influxd: Influxd, tmp_path: Path) -> Iterator[list[Target]]:
    made = [Target(influxd, tmp_path) for _ in range(3)]
    yield made
    for target in made:
        httpx.post(f"{influxd.url}/query", data={"q": f'DROP DATABASE "{target.db}"'})
        target.engine.dispose()


def test_one_seed_one_history(targets: list[Target]) -> None:
    first, second, other = targets
    a, b, c = first.generate(seed=7), second.generate(seed=7), other.generate(seed=8)
    assert a.start == UNTIL - timedelta(days=DAYS)
    assert sum(a.work_orders.values()) > 3
    assert dump(first.engine) == dump(second.engine)
    assert (a.digest, a.points, a.work_orders) == (b.digest, b.points, b.work_orders)
    for measurement in ("events", "work_orders", "fire_intact"):
        assert first.points(measurement) == second.points(measurement), measurement
    assert a.digest != c.digest
    assert dump(first.engine) != dump(other.engine)


def test_a_database_with_work_of_its_own_is_refused(targets: list[Target]) -> None:
    target = targets[0]
    site = demo_site()
    fault = Event(ref=site.ref("b1-e1"), ts=UNTIL - timedelta(days=3), type=EventType.FAULT_RAISED, code="2")
    apply_event(target.engine, fault, evaluate(load_rules(), fault, fault.ts), fault.ts)
    before = dump(target.engine)
    with pytest.raises(HistoryRefused, match="already holds 1 work orders"):
        target.generate(seed=1)
    assert dump(target.engine) == before
    assert query(target.url, target.db, "SHOW MEASUREMENTS") == []


async def test_ensure_demo_history_leaves_a_database_with_work_of_its_own_alone(targets: list[Target]) -> None:
    target = targets[0]
    site = demo_site()
    fault = Event(ref=site.ref("b2-e2"), ts=UNTIL - timedelta(days=1), type=EventType.FAULT_RAISED, code="7")
    apply_event(target.engine, fault, evaluate(load_rules(), fault, fault.ts), fault.ts)
    before = dump(target.engine)
    assert await ensure_demo_history(site, target.engine, target.url, target.db, now=UNTIL, demo=True) is None
    assert dump(target.engine) == before
