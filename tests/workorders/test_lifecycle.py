"""Lifecycle points: built with influxdb_client's Point, exported from the timeline, queryable in a real influxd."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import Engine

from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import Influxd, free_port
from facmon.kernel.influx import InfluxSettings
from facmon.kernel.metrics import Counters
from facmon.workorders.breaches import record_breaches
from facmon.workorders.lifecycle import InfluxLifecycleSink, LifecycleExporter, LifecycleSinkError, pending_lines
from facmon.workorders.tables import WorkOrderStatus
from facmon.workorders.workflow import transition
from rules.engine import evaluate, load_rules
from rules.store import apply_event
from tests.conftest import influxql
from tests.rules.support import MakeEvent
from tests.support import eventually

RULES = load_rules()


def story(engine: Engine, clock: FakeClock, make_event: MakeEvent) -> int:
    """An entrapment: opened, acknowledgement breached at 3 min, arrival (card read) at 5, resolved, closed."""
    event = make_event("fault_raised", "entrapment")
    [wo_id] = apply_event(engine, event, evaluate(RULES, event, clock.now()), clock.now()).opened
    clock.advance(timedelta(minutes=3, seconds=1))
    record_breaches(engine, clock.now())
    clock.advance(timedelta(minutes=2))
    transition(engine, wo_id, WorkOrderStatus.ON_SITE, actor="card 0042", source="card_read", at=clock.now())
    clock.advance(timedelta(minutes=10))
    transition(engine, wo_id, WorkOrderStatus.RESOLVED, actor="li", source="api", at=clock.now(), note='a "stuck" door')
    transition(engine, wo_id, WorkOrderStatus.CLOSED, actor="wang", source="api", at=clock.now())
    return wo_id


class MemorySink:
    def __init__(self, fail: int = 0) -> None:
        self.lines: list[str] = []
        self.fail = fail

    async def write(self, lines: Sequence[str]) -> None:
        if self.fail:
            self.fail -= 1
            raise LifecycleSinkError("down")
        self.lines.extend(lines)


def test_lines_carry_tags_fields_and_the_entry_time(engine: Engine, clock: FakeClock, make_event: MakeEvent) -> None:
    t0 = clock.now()
    wo_id = story(engine, clock, make_event)
    lines = [line for _, line in pending_lines(engine, 100)]
    ns = int(t0.timestamp()) * 10**9
    tags = "building=b1,device=e1"
    assert lines[0] == (
        f"work_orders,{tags},event=opened,fault=entrapment,kind=elevator,priority=emergency,site=s1,source=rules,"
        f'status=open actor="elevator.fault.work-order",entry_id=1i,'
        f'title="Elevator e1 (b1): entrapment (passenger trapped)",work_order_id={wo_id}i {ns}'
    )
    # Tags are sorted, as InfluxDB wants them.
    assert lines[1].startswith("work_orders,building=b1,clock=acknowledge,device=e1,event=sla_breached,")
    assert lines[1].endswith(f" {ns + 181 * 10**9}")
    assert lines[2].startswith(f"work_orders,{tags},event=acknowledged,")
    assert "implied=true" in lines[2]
    assert "source=card_read,status=on_site " in lines[3]
    assert "implied=false" in lines[3]
    assert 'note="a \\"stuck\\" door"' in lines[4]
    assert ",event=closed," in lines[5]
    assert len(lines) == 6


async def test_exporter_marks_entries_only_after_the_sink_took_them(
    engine: Engine, clock: FakeClock, make_event: MakeEvent
) -> None:
    story(engine, clock, make_event)
    sink, metrics = MemorySink(fail=1), Counters()
    exporter = LifecycleExporter(engine, sink, clock, batch_size=4, metrics=metrics)
    with pytest.raises(LifecycleSinkError):
        await exporter.export_once()
    assert len(pending_lines(engine, 100)) == 6  # nothing lost
    assert [await exporter.export_once() for _ in range(3)] == [4, 2, 0]
    assert len(sink.lines) == 6
    assert metrics.get("rules_lifecycle_points") == 6


async def test_run_retries_a_failing_sink(engine: Engine, clock: FakeClock, make_event: MakeEvent) -> None:
    story(engine, clock, make_event)
    sink, metrics = MemorySink(fail=2), Counters()
    task = asyncio.create_task(LifecycleExporter(engine, sink, clock, metrics=metrics).run(1.0, backoff_max_s=30.0))
    try:
        await eventually(lambda: clock.sleeping, what="the first failure")
        assert clock.sleeping == [clock.monotonic() + 1.0]  # the first pause is one interval
        await clock.advance_and_settle(1.0)
        assert clock.sleeping == [clock.monotonic() + 2.0]  # then twice as long
        assert sink.lines == []
        await clock.advance_and_settle(2.0)
        assert len(sink.lines) == 6
        assert clock.sleeping == [clock.monotonic() + 1.0]  # back to the interval
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert metrics.get("rules_lifecycle_errors") == 2


async def test_lifecycle_points_are_queryable_with_influxql(
    engine: Engine, clock: FakeClock, make_event: MakeEvent, influxd: Influxd, influx_db: str
) -> None:
    breached_ns = int((clock.now() + timedelta(minutes=3, seconds=1)).timestamp()) * 10**9
    wo_id = story(engine, clock, make_event)
    sink = InfluxLifecycleSink(InfluxSettings(influxd.url, influx_db))
    try:
        assert await LifecycleExporter(engine, sink, clock).export_once() == 6
    finally:
        await sink.aclose()
    counts = influxql(influxd.url, influx_db, "SELECT count(work_order_id) FROM work_orders GROUP BY event")
    assert {s["tags"]["event"]: s["values"][0][1] for s in counts} == {
        "opened": 1,
        "sla_breached": 1,
        "acknowledged": 1,
        "on_site": 1,
        "resolved": 1,
        "closed": 1,
    }
    [breach] = influxql(
        influxd.url,
        influx_db,
        "SELECT work_order_id, clock, priority, status FROM work_orders WHERE event = 'sla_breached'",
    )
    assert breach["values"] == [[breached_ns, wo_id, "acknowledge", "emergency", "open"]]
    [arrival] = influxql(
        influxd.url, influx_db, "SELECT actor, source, implied FROM work_orders WHERE event = 'on_site'"
    )
    assert arrival["values"][0][1:] == ["card 0042", "card_read", False]


async def test_sink_creates_a_missing_database_and_reports_an_unreachable_one(influxd: Influxd) -> None:
    db = f"t_{uuid.uuid4().hex[:12]}"
    sink = InfluxLifecycleSink(InfluxSettings(influxd.url, db))
    try:
        await sink.write(["work_orders,site=s1 work_order_id=1i 1772353815000000000"])
        [series] = influxql(influxd.url, db, "SELECT work_order_id FROM work_orders")
        assert series["values"] == [[1772353815000000000, 1]]
    finally:
        await sink.aclose()
        async with httpx.AsyncClient() as http:
            await http.post(f"{influxd.url}/query", data={"q": f'DROP DATABASE "{db}"'})
    nowhere = InfluxLifecycleSink(InfluxSettings(f"http://127.0.0.1:{free_port()}", db, timeout_s=2))
    try:
        with pytest.raises(LifecycleSinkError, match="unreachable"):
            await nowhere.write(["work_orders,site=s1 work_order_id=1i 1"])
    finally:
        await nowhere.aclose()
