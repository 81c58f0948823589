"""The coverage of the work-order KPIs: how much of the period facmon could hear the site's devices.

A work order can only be opened for a fault facmon heard, so a figure made while devices were silent may look
better than the estate was. The coverage is the share of the period's 5-minute slots (from its start, up to the
earlier of its end and now) in which InfluxDB holds at least one reading of the device, averaged over the devices
of the site file a figure is about: the elevators for arrival compliance, every device for repair timeliness and
the follow-up visit rate. A device without a single reading in the period covers nothing.

A reading is counted by one field every reading of its kind carries (`PRESENCE_FIELDS`): the elevators' and fire
panels' every poll writes the whole register set, and barriers and cameras send their heartbeat every 10 and 30 s.
InfluxDB counts the slots itself (a subquery grouped by slot and device), so a month of 1 s polls is not sent back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from facmon.estate.site import Site
from facmon.kernel.model import DeviceKind
from facmon.reports.kpi_data import InfluxReader, InfluxUnavailable
from facmon.reports.kpi_verdict import Coverage

SLOT = timedelta(minutes=5)

# Per measurement (one per device kind, docs/influxdb-schema.md), a field that every reading of that kind has.
PRESENCE_FIELDS: Mapping[DeviceKind, str] = {
    DeviceKind.ELEVATOR: "service_mode",
    DeviceKind.FIRE_PANEL: "points_total",
    DeviceKind.GATE: "cycles",
    DeviceKind.CAMERA: "recording",
}

NOT_REACHABLE = "coverage unknown: InfluxDB not reachable"
NOT_CONFIGURED = "coverage unknown: InfluxDB not configured"
NO_SITE_FILE = "coverage unknown: no site file for this site"


@dataclass(frozen=True)
class WorkOrderCoverage:
    """The coverage of the arrival figures (the elevators) and of the other work-order figures (every device)."""

    elevators: Coverage
    devices: Coverage

    @staticmethod
    def unknown(reason: str) -> WorkOrderCoverage:
        return WorkOrderCoverage(Coverage(None, reason), Coverage(None, reason))


def slots(start: datetime, until: datetime) -> int:
    """How many 5-minute slots [start, until) has; a last, shorter one counts as a slot."""
    return max(0, math.ceil((until - start) / SLOT))


def _time(at: datetime) -> str:
    return "'" + at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "'"


def slot_query(kind: DeviceKind, start: datetime, until: datetime) -> str:
    """Per device of the site (`$site`), the slots with at least one reading. The slots start at `start`: InfluxDB's
    own start at whole multiples of 5 minutes since the epoch, so they are shifted by the rest."""
    offset_us = (
        (start - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) % (SLOT // timedelta(microseconds=1))
    )
    inner = (
        f'SELECT count("{PRESENCE_FIELDS[kind]}") AS c FROM "{kind.value}" WHERE site = $site'
        f" AND time >= {_time(start)} AND time < {_time(until)} GROUP BY time(5m, {offset_us}u), device fill(none)"
    )
    return f"SELECT count(c) FROM ({inner}) GROUP BY device"


def average(covered: Mapping[str, int], devices: Iterable[str], total: int) -> float | None:
    """The mean over `devices` of covered slots / all slots; None without a device or a slot."""
    names = list(devices)
    if not names or total == 0:
        return None
    return sum(min(covered.get(d, 0), total) / total for d in names) / len(names)


async def covered_slots(
    influx: InfluxReader, site: str, kinds: Iterable[DeviceKind], start: datetime, until: datetime
) -> dict[str, int]:
    """Covered slots per device id, over the measurements of `kinds` (one statement each, one request)."""
    kinds = sorted(set(kinds))
    if not kinds:
        return {}
    results = await influx.statements(";".join(slot_query(k, start, until) for k in kinds), {"site": site})
    covered: dict[str, int] = {}
    for series in results:
        for s in series:
            device = s["tags"]["device"]
            covered[device] = covered.get(device, 0) + sum(int(v[1] or 0) for v in s["values"])
    return covered


async def work_order_coverage(
    influx: InfluxReader | None, site: Site | None, start: datetime, until: datetime
) -> WorkOrderCoverage:
    """The coverage of [start, until) (until: the earlier of the period's end and now)."""
    if site is None:
        return WorkOrderCoverage.unknown(NO_SITE_FILE)
    if influx is None:
        return WorkOrderCoverage.unknown(NOT_CONFIGURED)
    total = slots(start, until)
    if total == 0:
        return WorkOrderCoverage.unknown("coverage unknown: the period has not started yet")
    devices = [d for _, d in site.devices()]
    try:
        covered = await covered_slots(influx, site.id, (d.kind for d in devices), start, until)
    except InfluxUnavailable:
        return WorkOrderCoverage.unknown(NOT_REACHABLE)
    elevators = [d.id for d in devices if d.kind == DeviceKind.ELEVATOR]
    return WorkOrderCoverage(
        Coverage.of(average(covered, elevators, total), "coverage unknown: no elevator in the site file"),
        Coverage.of(average(covered, (d.id for d in devices), total), "coverage unknown: no device in the site file"),
    )
