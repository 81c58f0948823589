"""A breach withdrawn by late arrival evidence, through the lifecycle exporter into a real InfluxDB: the breach's point
is marked withdrawn in place, a `breach_withdrawn` point is written, and every dashboard panel that counts or lists
breaches stops counting it, while a breach that stands is still counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import Influxd
from facmon.kernel.influx import InfluxSettings
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType
from facmon.workorders.breaches import record_breaches
from facmon.workorders.lifecycle import InfluxLifecycleSink, LifecycleExporter
from rules.arrival import apply_with_site_evidence
from rules.engine import evaluate, load_rules
from tests.conftest import influxql
from tests.grafana.expand import load_dashboards, panels
from tests.grafana.scenario import Played
from tests.grafana.test_panel_queries import Results, merged, rows, run_panel, total
from tests.rules.support import elevator
from tests.rules.test_late_evidence import LI, ZHAO, card

RULES = load_rules()
MIN = timedelta(minutes=1)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def apply(engine: Engine, event: Event, now: datetime) -> list[int]:
    actions = evaluate(RULES, event, now)
    return list(
        apply_with_site_evidence(engine, event, actions, now, technicians=(LI, ZHAO), metrics=Counters()).opened
    )


def panel(dashboard: str, title: str) -> dict[str, Any]:
    return next(p for p in panels(load_dashboards()[dashboard]) if p.get("title") == title)


def without_withdrawn(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The panel's `filterByValue` transformation: rows whose `withdrawn` is set are left out."""
    [rule] = panel("work-orders", "SLA breaches (overdue)")["transformations"][:1]
    assert rule["id"] == "filterByValue"
    assert rule["options"]["type"] == "exclude"
    assert rule["options"]["filters"] == [{"fieldName": "withdrawn", "config": {"id": "isNotNull", "options": {}}}]
    return [row for row in table if row.get("withdrawn") is None]


async def test_a_withdrawn_breach_leaves_every_panel_that_counts_breaches(
    engine: Engine, clock: FakeClock, influxd: Influxd, influx_db: str
) -> None:
    def fault(device: str, ts: datetime) -> Event:
        return Event(ref=elevator(device=device), ts=ts, type=EventType.FAULT_RAISED, code="2")

    [early] = apply(engine, fault("e1", T0), T0)
    [late] = apply(engine, fault("e2", T0 + 16 * MIN), T0 + 16 * MIN)
    record_breaches(engine, T0 + 21 * MIN)  # e1's on-site clock
    record_breaches(engine, T0 + 37 * MIN)  # e2's
    sink = InfluxLifecycleSink(InfluxSettings(influxd.url, influx_db))
    exporter = LifecycleExporter(engine, sink, clock)
    try:
        assert await exporter.export_once() > 0
        # Li's card read at 09:15 reaches the worker at 09:40: on time for e1's fault, before e2's was detected.
        apply(engine, card(T0 + 15 * MIN), T0 + 40 * MIN)
        # Three entries (acknowledged, on_site, breach_withdrawn), four points: the breach's is written again.
        assert await exporter.export_once() == 3
        assert await exporter.export_once() == 0
    finally:
        await sink.aclose()

    breaches = influxql(
        influxd.url, influx_db, "SELECT work_order_id, withdrawn FROM work_orders WHERE event = 'sla_breached'"
    )
    marked = [(row["work_order_id"], row["withdrawn"]) for row in rows(breaches)]
    assert marked == [(early, True), (late, None)], "one point each, the withdrawn one marked"
    withdrawal = influxql(
        influxd.url, influx_db, "SELECT work_order_id, clock, status FROM work_orders WHERE event = 'breach_withdrawn'"
    )
    assert [(row["work_order_id"], row["clock"], row["status"]) for row in rows(withdrawal)] == [
        (early, "on_site", "on_site")
    ]

    played = Played(influxd.url, influx_db, "s1", T0 - MIN, T0 + 60 * MIN)
    by_clock: Results = run_panel(played, panel("site-overview", "SLA clocks breached"))
    assert {row["clock"]: row["count"] for row in rows(by_clock["A"])} == {"on_site": 1}
    (arrival,) = merged(run_panel(played, panel("elevators", "On site within the contract clock")), "A", "B")
    assert (arrival["opened"], arrival["late"]) == (2, 1)
    listed = rows(run_panel(played, panel("work-orders", "SLA breaches (overdue)"))["A"])
    assert {row["device"] for row in listed} == {"e1", "e2"}
    assert [(row["device"], row["clock"]) for row in without_withdrawn(listed)] == [("e2", "on_site")]
    status = rows(run_panel(played, panel("work-orders", "Open work orders"))["A"])
    assert {row["device"]: row["status"] for row in status} == {"e1": "on_site", "e2": "open"}


async def test_a_fire_breach_withdrawn_is_not_counted(
    engine: Engine, clock: FakeClock, influxd: Influxd, influx_db: str
) -> None:
    played = Played(influxd.url, influx_db, "s1", T0 - MIN, T0 + 4 * 60 * MIN)
    fire_panel = panel("fire-systems", "Overdue checks and fire SLA breaches")
    assert run_panel(played, fire_panel)["B"] == [], "nothing written yet: no error, and no series"
    ref = DeviceRef(site="s1", building="b1", device="fp1", kind=DeviceKind.FIRE_PANEL, model="fp-gb-a")
    [wo] = apply(engine, Event(ref=ref, ts=T0, type=EventType.FAULT_RAISED, code="battery_fault"), T0)
    record_breaches(engine, T0 + 2 * 60 * MIN + MIN)  # the fire.panel profile: on site within 2 h
    sink = InfluxLifecycleSink(InfluxSettings(influxd.url, influx_db))
    exporter = LifecycleExporter(engine, sink, clock)
    try:
        await exporter.export_once()
        assert total(run_panel(played, fire_panel)["B"]) == 1
        # Zhao (fire) badged in at 10:30; the gateway's outbox delivers the read at 12:30.
        apply(engine, card(T0 + 90 * MIN, number="0F0F0F0F"), T0 + 3 * 60 * MIN + 30 * MIN)
        await exporter.export_once()
    finally:
        await sink.aclose()
    assert total(run_panel(played, fire_panel)["B"]) == 0
    assert wo > 0
