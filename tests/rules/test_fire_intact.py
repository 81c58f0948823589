"""The site's fire intact rate: from panel readings, written to a real influxd, read back with InfluxQL."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import aiomqtt
import pytest

from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import Influxd, Mosquitto
from facmon.kernel.influx import InfluxSettings
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeviceKind, DeviceRef, Reading, Value
from facmon.kernel.topics import state_topic
from facmon.reports.kpi import time_weighted_mean
from facmon.reports.kpi_data import InfluxReader
from facmon.workorders.lifecycle import InfluxLifecycleSink
from rules.fire_intact import FireIntactWriter, SiteIntact, SiteIntactRates
from tests.conftest import influxql

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def panel(device: str, site: str = "s1") -> DeviceRef:
    return DeviceRef(site=site, building="b1", device=device, kind=DeviceKind.FIRE_PANEL, model="fire-gb-a")


def reading(device: str, present: int, intact: int, at: datetime, site: str = "s1") -> Reading:
    values: dict[str, Value] = {"points_total": present, "points_intact": intact, "battery_fault": False}
    if present:
        values["intact_pct"] = round(100.0 * intact / present, 2)
    return Reading(ref=panel(device, site), ts=at, values=values)


def test_site_rate_is_over_all_points_not_a_mean_of_panel_rates() -> None:
    rates = SiteIntactRates()
    assert rates.update(reading("fp1", 400, 400, T0)) == SiteIntact("s1", T0, 400, 400, 1)
    site = rates.update(reading("fp2", 40, 20, T0 + timedelta(seconds=1)))
    # Panel rates 100 % and 50 % would average 75 %; the points say 420 / 440.
    assert site is not None
    assert (site.points_present, site.points_intact, site.intact_pct) == (440, 420, 95.45)
    # A reading older than the panel's last one changes nothing; a point's reading and other kinds are not panels.
    assert rates.update(reading("fp2", 40, 0, T0)) is None
    assert rates.update(reading("fp1", 400, 1, T0).model_copy(update={"point": "1-001"})) is None
    elevator = DeviceRef(site="s1", building="b1", device="e1", kind=DeviceKind.ELEVATOR, model="elev-gb-a")
    assert rates.update(Reading(ref=elevator, ts=T0, values={"points_total": 1, "points_intact": 1})) is None
    # Another site is its own sum; a panel with no point present has no rate.
    other = rates.update(reading("fp9", 0, 0, T0, site="s2"))
    assert other is not None
    assert (other.points_present, other.intact_pct) == (0, None)


async def test_the_site_point_is_queryable_in_influxdb(influxd: Influxd, influx_db: str) -> None:
    sink = InfluxLifecycleSink(InfluxSettings(influxd.url, influx_db))
    seen: list[tuple[str, str, str, datetime]] = []

    async def on_new_panel(site: str, building: str, device: str, at: datetime) -> None:
        seen.append((site, building, device, at))

    writer = FireIntactWriter(sink, on_new_panel=on_new_panel, metrics=Counters())
    await writer.take(reading("fp1", 224, 224, T0))
    await writer.take(reading("fp2", 234, 234, T0))
    await writer.take(reading("fp1", 224, 222, T0 + timedelta(hours=3)))  # two points of fp1 fail for an hour
    await writer.take(reading("fp1", 224, 224, T0 + timedelta(hours=4)))
    assert await writer.flush() == 4
    assert await writer.flush() == 0
    await sink.aclose()
    assert [d for _, _, d, _ in seen] == ["fp1", "fp2"]  # each panel announced once (for the check schedule)

    [series] = influxql(
        influxd.url,
        influx_db,
        "SELECT intact_pct, points_present, points_intact, panels FROM fire_intact WHERE site = 's1'",
    )
    rows = series["values"]
    assert isinstance(rows, list)
    assert [r[1:] for r in rows] == [[100.0, 458, 458, 2], [99.56, 458, 456, 2], [100.0, 458, 458, 2]]

    reader = InfluxReader(InfluxSettings(influxd.url, influx_db))
    try:
        now = await reader.site_intact("s1", T0 + timedelta(hours=3, minutes=30))
        assert now is not None
        assert (now.at, now.intact_pct, now.points_present, now.points_intact) == (
            T0 + timedelta(hours=3),
            99.56,
            458,
            456,
        )
        assert await reader.site_intact("s1", T0 - timedelta(seconds=1)) is None
        # Over 08:00-16:00: 1 h of 99.56 %, 7 h of 100 %.
        start, end = T0, T0 + timedelta(hours=8)
        mean = time_weighted_mean(await reader.site_intact_samples("s1", start, end), start, end)
        assert mean.covered_s == 8 * 3600
        assert mean.mean == pytest.approx((99.56 + 7 * 100.0) / 8)
    finally:
        await reader.aclose()


class Lines:
    """A sink that keeps what it is given."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    async def write(self, lines: Sequence[str]) -> None:
        self.lines.extend(lines)


async def test_the_flusher_writes_on_the_clock_it_is_given() -> None:
    sink, clock = Lines(), FakeClock(T0)
    writer = FireIntactWriter(sink, clock=clock)
    task = asyncio.create_task(writer.run_flusher(interval_s=5.0))
    try:
        await writer.take(reading("fp1", 10, 9, T0))
        await clock.settle()
        assert clock.sleeping == [5.0]
        await clock.advance_and_settle(4.9)
        assert sink.lines == [], "not before its period"
        await clock.advance_and_settle(0.1)
        assert len(sink.lines) == 1
        await writer.take(reading("fp1", 10, 10, T0 + timedelta(seconds=5)))
        await clock.advance_and_settle(5.0)
        assert len(sink.lines) == 2
        assert clock.sleeping == [15.0]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_panel_reading_stamped_a_day_ahead_does_not_hide_the_readings_after_it() -> None:
    clock, metrics = FakeClock(T0), Counters()
    writer = FireIntactWriter(Lines(), metrics=metrics, clock=clock)
    ahead = await writer.take(reading("fp1", 10, 4, T0 + timedelta(days=1)))
    assert ahead is not None
    assert ahead.ts == T0, "taken as now"
    assert metrics.get("rules_fire_intact_from_future") == 1
    # The gateway's clock set right: the next reading counts at once, not a day later.
    await clock.advance_and_settle(1.0)
    corrected = await writer.take(reading("fp1", 10, 10, T0 + timedelta(seconds=1)))
    assert corrected is not None
    assert corrected.points_intact == 10


async def test_panel_readings_from_the_backbone_reach_the_writer(mosquitto: Mosquitto, topic_prefix: str) -> None:
    sink = Lines()
    writer = FireIntactWriter(sink)

    def client() -> aiomqtt.Client:
        return aiomqtt.Client("127.0.0.1", mosquitto.port, identifier=f"{topic_prefix}-sub")

    task = asyncio.create_task(writer.consume(client))
    try:
        await asyncio.wait_for(writer.subscribed.wait(), 5)
        message = reading("fp1", 10, 9, T0, site=topic_prefix)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as publisher:
            await publisher.publish(state_topic(message.ref), message.model_dump_json(), qos=1)
        for _ in range(100):
            if await writer.flush():
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert sink.lines == [
        f"fire_intact,site={topic_prefix} intact_pct=90,panels=1i,points_intact=9i,points_present=10i"
        " 1772352000000000000"
    ]
