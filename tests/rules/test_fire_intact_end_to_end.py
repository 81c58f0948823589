"""The fire intact rate through the real parts: a simulated fire panel (a pymodbus server), the site gateway polling
it and publishing to a real Mosquitto, the rules worker's writer keeping the point table in SQLite and its figures
in a real influxd, the API decommissioning points and answering the KPI. One fake clock drives stamps and figures.

The story (docs/kpis.md "Fire equipment intact rate"): the site file lists one point the panel never reports; one
point goes absent; the gateway and the worker restart (the new gateway never hears of the absent point); an engineer
decommissions both points; the panel falls silent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from api import create_app
from api.accounts.models import AuditEntry, Role
from api.deps import get_clock
from collectors.registry import fire_panel_driver
from facmon.estate.site import Site
from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import Influxd, Mosquitto, free_port
from facmon.kernel.influx import InfluxSettings
from facmon.kernel.metrics import Counters
from facmon.kernel.mqtt import MqttSettings
from facmon.reports.kpi_data import InfluxReader
from facmon.workorders.lifecycle import InfluxLifecycleSink
from gateway.site_gateway import SiteGateway
from rules.fire_intact_writer import FireIntactWriter, IntactTiming
from simulators.fire_panel import FirePanelSimulator
from simulators.steps import STEP
from tests.api.accounts import bearer
from tests.conftest import influxql
from tests.gateway.conftest import eventually

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
NEVER_THERE = "2-128"  # the simulator fills at most 127 addresses of a loop


def the_site(site_id: str, port: int) -> Site:
    panel = {
        "id": "fp1",
        "kind": "fire_panel",
        "model": "fire-gb-a",
        "address": {"host": "127.0.0.1", "port": port},
        "poll_interval_s": 0.1,
        "points": [NEVER_THERE],
    }
    return Site.model_validate({"site": {"id": site_id}, "buildings": [{"id": "b1", "devices": [panel]}]})


@dataclass
class Estate:
    site: Site
    panel: FirePanelSimulator
    clock: FakeClock
    engine: Engine
    mosquitto: Mosquitto
    influx: InfluxSettings
    state_dir: Path
    stack: contextlib.AsyncExitStack
    writer: FireIntactWriter | None = None

    async def start(self) -> tuple[SiteGateway, FireIntactWriter]:
        """A gateway and a rules worker's writer, as after a (re)start."""
        mqtt = MqttSettings("127.0.0.1", self.mosquitto.port)
        gateway = SiteGateway(self.site, mqtt=mqtt, state_dir=self.state_dir, clock=self.clock, metrics=Counters())
        sink = InfluxLifecycleSink(self.influx)
        self.stack.push_async_callback(sink.aclose)
        timing = IntactTiming(reload_s=0)  # decommissions read back at every tick
        writer = FireIntactWriter(sink, self.engine, sites=[self.site], clock=self.clock, timing=timing)
        await self.task(writer.consume(self.client), "writer")
        await asyncio.wait_for(writer.subscribed.wait(), 5)
        await self.task(gateway.run(), "gateway")
        self.writer = writer
        return gateway, writer

    def client(self) -> aiomqtt.Client:
        return aiomqtt.Client("127.0.0.1", self.mosquitto.port, identifier=f"{self.site.id}-fire-intact")

    async def task(self, coro: object, name: str) -> None:
        task = asyncio.create_task(coro, name=name)  # type: ignore[arg-type]
        self.stack.push_async_callback(_cancel, task)

    async def heard(self) -> None:
        """Wait for a panel reading stamped at the clock's time (one poll after it moved)."""
        writer = self.writer
        assert writer is not None
        at = self.clock.now() - timedelta(seconds=0.1)
        await eventually(lambda: (writer.book.heard(self.site.id, "fp1") or T0 - timedelta(days=1)) >= at, what="poll")

    async def advance(self, seconds: float) -> None:
        """Move the clock in steps of 30 s at most, each followed by a poll (the gateway polls on real time)."""
        while seconds > 0:
            step = min(30.0, seconds)
            self.clock.advance(step)
            seconds -= step
            await self.heard()

    async def figure(self) -> tuple[int, int, int, float | None]:
        """(commissioned, present, intact, intact_pct) of the figure the writer writes now, as read from InfluxDB."""
        writer = self.writer
        assert writer is not None
        self.clock.advance(1)  # each figure at a time of its own
        await self.heard()
        assert await writer.tick() == 1
        [series] = influxql(
            self.influx.url,
            self.influx.db,
            "SELECT points_commissioned, points_present, points_intact, intact_pct FROM fire_intact"
            f" WHERE site = '{self.site.id}' ORDER BY time DESC LIMIT 1",
        )
        [[_, commissioned, present, intact, pct]] = series["values"]  # type: ignore[misc]
        return commissioned, present, intact, pct


async def _cancel(task: asyncio.Task[object]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.fixture
async def estate(
    engine: Engine, mosquitto: Mosquitto, influxd: Influxd, influx_db: str, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[Estate]:
    port = free_port()
    async with (
        FirePanelSimulator(fire_panel_driver("fire-gb-a"), port=port, seed=7, device_id="fp1") as panel,
        contextlib.AsyncExitStack() as stack,
    ):
        yield Estate(
            the_site(topic_prefix, port),
            panel,
            FakeClock(T0),
            engine,
            mosquitto,
            InfluxSettings(influxd.url, influx_db),
            tmp_path / "gateway",
            stack,
        )


async def stop(*tasks: str) -> None:
    for task in asyncio.all_tasks():
        if task.get_name() in tasks:
            await _cancel(task)


async def test_absent_listed_restarted_decommissioned_and_silent(estate: Estate) -> None:
    site, panel = estate.site.id, estate.panel
    n = len(panel.points())
    gone = panel.points("smoke_detector")[3]
    _, writer = await estate.start()
    await eventually(lambda: len(writer.book.states(site, "fp1")) == n, what="every present point reported")

    # The listed point the panel never reports counts as not intact.
    assert await estate.figure() == (n + 1, n, n, round(100 * n / (n + 1), 2))

    # A point goes absent: (n - 1) of n + 1, not 100 % of the n - 1 present.
    panel.set_point(gone, "absent")
    await eventually(lambda: writer.book.states(site, "fp1")[gone].state == "absent", what="the absent point")
    assert await estate.figure() == (n + 1, n - 1, n - 1, round(100 * (n - 1) / (n + 1), 2))

    # Gateway and worker restart: the new gateway never reports the absent point, the new worker still counts it
    # from the table, at once and after its reading has long lapsed.
    await stop("gateway", "writer")
    _, writer = await estate.start()
    await estate.heard()
    assert await estate.figure() == (n + 1, n - 1, n - 1, round(100 * (n - 1) / (n + 1), 2))
    await estate.advance(200)
    assert await estate.figure() == (n + 1, n - 1, n - 1, round(100 * (n - 1) / (n + 1), 2))

    # An engineer decommissions both through the API (audited); the worker reads it back: 100 %.
    app = create_app(sites=[estate.site], engine=estate.engine, influx=InfluxReader(estate.influx))
    app.dependency_overrides[get_clock] = lambda: estate.clock
    engineer = bearer(estate.engine, Role.ENGINEER)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t/api/v1") as http:
        for point, reason in ((gone, "detector removed"), (NEVER_THERE, "no device at this address")):
            answer = await http.post(
                f"/fire-points/{site}/fp1/{point}/decommission", json={"reason": reason}, headers=engineer
            )
            assert answer.status_code == 200, answer.text
        assert await estate.figure() == (n - 1, n - 1, n - 1, 100.0)
        period = {"site": site, "from": "2026-03-02T00:00:00Z", "to": "2026-03-03T00:00:00Z"}
        kpi = (await http.get("/kpis", params=period, headers=engineer)).json()
        intact = kpi["fire_equipment_intact_rate"]
        assert intact["current"]["numerator"] == intact["current"]["denominator"] == n - 1
    await app.state.influx.aclose()
    with Session(estate.engine) as session:
        audited = session.scalars(select(AuditEntry).where(AuditEntry.action == "fire_point.decommission")).all()
    assert sorted((e.target_id, e.actor, (e.after or {})["decommission_reason"]) for e in audited) == sorted(
        [(f"{site}/fp1/{gone}", "test-engineer", "detector removed"),
         (f"{site}/fp1/{NEVER_THERE}", "test-engineer", "no device at this address")]
    )  # fmt: skip

    # The panel falls silent: a minute later none of its points counts, with no reading to trigger the figure.
    await panel.perform(STEP.validate_python({"action": "link_drop"}))
    estate.clock.advance(61)
    await writer.tick()
    assert writer.book.figure(site, estate.clock.now()).counts() == (n - 1, 0, 0, 1, 0)
    [series] = influxql(
        estate.influx.url, estate.influx.db, f"SELECT last(intact_pct) FROM fire_intact WHERE site = '{site}'"
    )
    assert series["values"][0][1] == 0.0  # type: ignore[index]
