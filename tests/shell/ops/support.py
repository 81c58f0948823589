"""Helpers for the operations tests: the real `facmon` command in a subprocess, work orders through the store, a
year of closed work orders in bulk, and polling with a deadline."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from click.testing import Result
from sqlalchemy import Engine, insert
from typer.testing import CliRunner

from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType
from facmon.workorders.tables import WorkOrder, WorkOrderEvent
from rules.engine import Rule, evaluate
from rules.store import apply_event

ROOT = Path(__file__).resolve().parents[3]
SITE = "sunrise-garden"  # examples/demo-site.yaml
START = datetime(2026, 3, 1, tzinfo=UTC)
T = TypeVar("T")


def facmon(
    *args: str, env: dict[str, str], stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `facmon ARGS` with only the FACMON_* settings given in `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FACMON_")}
    return subprocess.run(
        [sys.executable, "-m", "facmon", *args],
        env=base | env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        check=False,
    )


def run(*args: str, state: Path, db_url: str | None = None, stdin: str | None = None) -> Result:
    """`facmon ARGS` in this process (quicker than a new interpreter), with the state folder (and database URL) given
    and no other FACMON_ setting that matters here."""
    from facmon.shell.cli import app

    env = {"FACMON_STATE_DIR": str(state), "FACMON_DB_URL": db_url, "FACMON_DEMO": None}
    return CliRunner().invoke(app, list(args), env=env, input=stdin)


def wait_until(check: Callable[[], T], timeout_s: float, what: str, every_s: float = 0.05) -> T:
    """The first truthy result of `check`; AssertionError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def fault_event(index: int, at: datetime, device: str | None = None) -> Event:
    """A door fault on an elevator of the demo site, each index its own elevator unless `device` is given."""
    ref = DeviceRef(
        site=SITE,
        building="b1",
        device=device or f"lift-{index}",
        kind=DeviceKind.ELEVATOR,
        model="elev-gb-a",
        role="main",
    )
    return Event(ref=ref, ts=at, type=EventType.FAULT_RAISED, code="2", id=f"fault-{device or ''}-{index}")


def open_work_order(engine: Engine, rules: Sequence[Rule], index: int, at: datetime, device: str | None = None) -> int:
    """Open one work order through the store, as the rules worker does; its id."""
    event = fault_event(index, at, device)
    result = apply_event(engine, event, evaluate(rules, event, at), at)
    assert len(result.opened) == 1, result
    return result.opened[0]


def seed_history(engine: Engine, count: int) -> None:
    """`count` closed work orders with their timelines in one transaction: a database that has run for a while."""
    orders = []
    events = []
    for i in range(1, count + 1):
        at = START - timedelta(minutes=count - i + 1)
        orders.append(
            {
                "id": i,
                "site": SITE,
                "building": "b1",
                "device": f"b1-e{i % 4 + 1}",
                "kind": "elevator",
                "fault": "2",
                "title": "Door fault (history)",
                "priority": "urgent",
                "category": "repair",
                "status": "closed",
                "detected_at": at,
                "due_at": at + timedelta(hours=4),
                "occurrences": 1,
                "last_occurrence_at": at,
                "created_at": at,
                "updated_at": at + timedelta(hours=1),
                "closed_at": at + timedelta(hours=1),
            }
        )
        note = f"replaced the door operator belt of car {i % 4 + 1}; tested 20 cycles. " * 6
        for kind, when in (("opened", at), ("note", at + timedelta(minutes=30))):
            events.append({"work_order_id": i, "at": when, "type": kind, "detail": {}, "source": "api", "note": note})
    with engine.begin() as connection:
        connection.execute(insert(WorkOrder), orders)
        connection.execute(insert(WorkOrderEvent), events)


def sqlite_rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()
