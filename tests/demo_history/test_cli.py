"""`facmon demo-history` on the settings' database and InfluxDB: writes once, then says it is there; a database
with work of its own is refused with the reason. The command sets up logging for its process, so it runs in one of
its own here, as an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from facmon.kernel.daemons import Influxd
from facmon.kernel.db import make_engine
from facmon.kernel.model import Event, EventType
from facmon.shell.demo_history_cli import parse_until
from facmon.shell.migrations.schema import create_schema
from facmon.workorders.tables import WorkOrder
from rules.engine import evaluate, load_rules
from rules.store import apply_event
from tests.demo_history.support import EXAMPLES, demo_site

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 7, 6, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, NOW),
        ("2026-11-01", datetime(2026, 10, 31, 16, 0, tzinfo=UTC)),
        ("2026-11-01T08:00", datetime(2026, 11, 1, 0, 0, tzinfo=UTC)),
        ("2026-11-01T08:00+00:00", datetime(2026, 11, 1, 8, 0, tzinfo=UTC)),
    ],
)
def test_until_is_a_day_or_a_time_of_the_site(text: str | None, expected: datetime) -> None:
    assert parse_until(text, SHANGHAI, NOW) == expected


@dataclass(frozen=True)
class Run:
    """A state folder, and the environment the command runs in (the session's influxd, a database of its own)."""

    state: Path
    env: dict[str, str]

    def __call__(self) -> tuple[int, str]:
        args = ["demo-history", "--site", str(EXAMPLES / "demo-site.yaml"), "--state-dir", str(self.state)]
        command = [sys.executable, "-m", "facmon", *args, "--days", "7", "--until", "2026-11-20", "--seed", "3"]
        done = subprocess.run(command, capture_output=True, text=True, env=self.env, timeout=120, check=False)
        return done.returncode, done.stdout + done.stderr


@pytest.fixture
def run(influxd: Influxd, tmp_path: Path) -> Iterator[Run]:
    db = f"t_{uuid.uuid4().hex[:12]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACMON_")}
    yield Run(tmp_path / "state", env | {"FACMON_INFLUX_URL": influxd.url, "FACMON_INFLUX_DB": db})
    httpx.post(f"{influxd.url}/query", data={"q": f'DROP DATABASE "{db}"'})


def test_the_command_writes_once(run: Run) -> None:
    state = run.state
    code, output = run()
    assert code == 0, output
    assert "history of sunrise-garden, 2026-11-12 16:00 to 2026-11-19 16:00 UTC, seed 3" in output
    assert "InfluxDB" in output
    engine = make_engine(f"sqlite:///{state / 'facmon.db'}")
    with Session(engine) as session:
        orders = session.execute(select(func.count()).select_from(WorkOrder)).scalar_one()
    code, output = run()
    assert code == 0, output
    assert "was generated before (up to 2026-11-19 16:00 UTC): unchanged" in output
    with Session(engine) as session:
        assert session.execute(select(func.count()).select_from(WorkOrder)).scalar_one() == orders
    engine.dispose()


def test_the_command_refuses_a_database_with_work_of_its_own(run: Run) -> None:
    state = run.state
    state.mkdir()
    engine = make_engine(f"sqlite:///{state / 'facmon.db'}")
    create_schema(engine)
    fault = Event(
        ref=demo_site().ref("b2-e1"), ts=datetime(2026, 11, 18, tzinfo=UTC), type=EventType.FAULT_RAISED, code="3"
    )
    apply_event(engine, fault, evaluate(load_rules(), fault, fault.ts), fault.ts)
    engine.dispose()
    code, output = run()
    assert code == 2
    assert "no history written: the database already holds 1 work orders" in output
