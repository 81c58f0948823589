"""The coverage of the work-order KPIs, counted by a real influxd: 5-minute slots from the period's start (not from
InfluxDB's own slot boundaries), a device's readings of any kind, other sites and silent devices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from facmon.estate.site import Site
from facmon.historian.lines import reading_line
from facmon.kernel.daemons import Influxd
from facmon.kernel.influx import InfluxSettings
from facmon.kernel.model import Reading, Value
from facmon.reports.kpi_coverage import (
    NO_SITE_FILE,
    NOT_CONFIGURED,
    NOT_REACHABLE,
    average,
    slots,
    work_order_coverage,
)
from facmon.reports.kpi_data import InfluxReader
from facmon.reports.kpi_verdict import Coverage

SITE = Site.model_validate(
    {
        "site": {"id": "s1", "timezone": "Asia/Shanghai"},
        "buildings": [
            {
                "id": "b1",
                "devices": [
                    {"id": "e1", "kind": "elevator", "model": "elev-gb-a", "address": {"host": "127.0.0.1"}},
                    {"id": "e2", "kind": "elevator", "model": "elev-gb-a", "address": {"host": "127.0.0.1"}},
                    {"id": "fp1", "kind": "fire_panel", "model": "fire-gb-a", "address": {"host": "127.0.0.1"}},
                    {"id": "cam1", "kind": "camera", "model": "camera-a"},
                ],
            }
        ],
    }
)
# Two minutes past a 5-minute boundary: the period's slots are [00:02, 00:07), [00:07, 00:12), [00:12, 00:17).
START = datetime(2026, 5, 1, 0, 2, tzinfo=UTC)
UNTIL = START + timedelta(minutes=15)


def t(minute: float) -> datetime:
    return datetime(2026, 5, 1, tzinfo=UTC) + timedelta(minutes=minute)


def test_slots() -> None:
    assert slots(START, UNTIL) == 3
    assert slots(START, UNTIL + timedelta(seconds=1)) == 4  # a last, shorter slot counts
    assert slots(START, START) == 0
    assert average({"a": 3, "b": 1}, ["a", "b", "c"], 3) == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert average({}, [], 3) is None


def _line(device: str, at: datetime, values: dict[str, Value], site: Site = SITE) -> str:
    line = reading_line(Reading(ref=site.ref(device), ts=at, values=values))
    assert line is not None
    return line


async def test_coverage_from_influxd(influxd: Influxd, influx_db: str) -> None:
    lift: dict[str, Value] = {"service_mode": "normal", "fault_code": 0}
    other = Site.model_validate({"site": {"id": "s2"}, "buildings": [{"id": "b1", "devices": [
        {"id": e, "kind": "elevator", "model": "elev-gb-a", "address": {"host": "127.0.0.1"}} for e in ("e1", "e2")
    ]}]})  # fmt: skip
    lines = [
        _line("e1", t(1), lift),  # before the period
        _line("e1", t(6), lift),  # slot 1 ([00:02, 00:07)); by InfluxDB's own slots the same as the next two
        _line("e1", t(7), lift),  # slot 2
        _line("e1", t(8), lift),  # slot 2 again
        _line("e1", t(17), lift),  # the end is exclusive
        _line("fp1", t(2), {"points_total": 200, "points_intact": 200}),  # slot 1, at its very start
        _line("fp1", t(16.99), {"points_total": 200, "points_intact": 200}),  # slot 3
        _line("cam1", t(3), {"recording": True, "storage_used_pct": 40.0}),
        _line("cam1", t(8), {"recording": True, "storage_used_pct": 40.0}),
        _line("cam1", t(13), {"recording": True, "storage_used_pct": 40.0}),
        _line("e2", t(3), lift, other),  # another site's e2, no reading of this site's e2
        _line("e1", t(13), lift, other),
    ]
    async with httpx.AsyncClient() as raw:
        written = await raw.post(f"{influxd.url}/write", params={"db": influx_db}, content="\n".join(lines))
        written.raise_for_status()
    reader = InfluxReader(InfluxSettings(influxd.url, influx_db))
    try:
        coverage = await work_order_coverage(reader, SITE, START, UNTIL)
    finally:
        await reader.aclose()
    # Elevators: e1 2 of 3 slots, e2 none. Every device: e1 2/3, e2 0, fp1 2/3, cam1 3/3.
    assert coverage.elevators == Coverage(round((2 / 3 + 0) / 2, 4))
    assert coverage.devices == Coverage(round((2 / 3 + 0 + 2 / 3 + 1) / 4, 4))


def _refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


async def test_coverage_unknown() -> None:
    reader = InfluxReader(
        InfluxSettings("http://influx.invalid:8086", "facmon"), transport=httpx.MockTransport(_refuse)
    )
    try:
        refused = await work_order_coverage(reader, SITE, START, UNTIL)
        no_site = await work_order_coverage(reader, None, START, UNTIL)
    finally:
        await reader.aclose()
    assert refused.elevators == refused.devices == Coverage(None, NOT_REACHABLE)
    assert no_site.devices == Coverage(None, NO_SITE_FILE)
    assert (await work_order_coverage(None, SITE, START, UNTIL)).devices == Coverage(None, NOT_CONFIGURED)
