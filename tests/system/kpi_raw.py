"""The raw records of a run, read without facmon: the work-order tables with plain SQL (sqlite3), InfluxDB with
InfluxQL over HTTP, the site files and the SLA profiles as YAML. Nothing here imports facmon, rules, api or any of
their modules (tests/system/test_kpi_recomputed.py checks the imports of this module and of kpi_recompute.py).
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

# The discipline a work order of each device kind needs (docs/kpis.md "On site": the technician's disciplines cover
# the work order); the site file names each technician's.
DISCIPLINE = {"elevator": "elevator", "fire_panel": "fire", "gate": "security", "camera": "security"}
# A device's reading, for coverage, is one with the field every reading of its kind carries (docs/kpis.md): an
# elevator's and a fire panel's every poll, a gate's and a camera's heartbeats.
READING_FIELDS = {"elevator": "service_mode", "fire_panel": "points_total", "gate": "cycles", "camera": "recording"}
EVER = datetime(2000, 1, 1, tzinfo=UTC)


def utc(text: str | None) -> datetime | None:
    """A time as SQLite keeps it (naive UTC text) or as InfluxDB and the API give it (RFC 3339)."""
    if text is None:
        return None
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def site_zone(site: dict[str, Any]) -> ZoneInfo:
    return ZoneInfo(site["site"].get("timezone", "Asia/Shanghai"))


def devices(site: dict[str, Any]) -> list[dict[str, Any]]:
    return [device for building in site.get("buildings", []) for device in building.get("devices", [])]


Entry = tuple[datetime, str, str | None, str | None, str | None, str | None, dict[str, Any]]


@dataclass
class WorkOrder:
    id: int
    device: str
    kind: str
    category: str
    fault: str
    detected_at: datetime
    sla_profile: str | None
    status: str
    # name -> (milestone, due_at), as stored when it opened.
    clocks: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    # (at, type, status, actor, source, note, detail) in order.
    timeline: list[Entry] = field(default_factory=list)
    follow_ups: list[datetime] = field(default_factory=list)


def work_orders(database: Path, site: str) -> list[WorkOrder]:
    """Every work order of `site`, with its clocks, timeline and follow-ups, read with plain SQL."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT id, device, kind, category, fault, detected_at, sla_profile, status FROM work_orders"
            " WHERE site = ? ORDER BY id",
            (site,),
        ).fetchall()
        orders = {
            r[0]: WorkOrder(r[0], r[1], r[2], r[3], r[4], _at(r[5]), r[6], r[7]) for r in rows
        }  # fmt: skip
        for wo_id, name, milestone, due in conn.execute(
            "SELECT work_order_id, name, milestone, due_at FROM work_order_clocks"
        ):
            if wo_id in orders:
                orders[wo_id].clocks[name] = (milestone, _at(due))
        for wo_id, at, type_, status, actor, source, note, detail in conn.execute(
            "SELECT work_order_id, at, type, status, actor, source, note, detail FROM work_order_events ORDER BY id"
        ):
            if wo_id in orders:
                entry = (_at(at), type_, status, actor, source, note, json.loads(detail) if detail else {})
                orders[wo_id].timeline.append(entry)
        for wo_id, recorded in conn.execute("SELECT work_order_id, recorded_at FROM follow_ups"):
            if wo_id in orders:
                orders[wo_id].follow_ups.append(_at(recorded))
    return list(orders.values())


def _at(text: str) -> datetime:
    at = utc(text)
    assert at is not None
    return at


# --- InfluxDB ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Influx:
    url: str
    db: str

    def query(self, q: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/query", params={"db": self.db, "q": q, "epoch": "ns"}, timeout=30)
        answer.raise_for_status()
        result = answer.json()["results"][0]
        if "error" in result:
            raise AssertionError(f"InfluxQL error: {result['error']}")
        series: list[dict[str, Any]] = result.get("series", [])
        return series

    def rows(self, q: str) -> list[dict[str, Any]]:
        """Every row of every series, as a dict of its columns and the series' tags, `time` as a datetime."""
        out = []
        for s in self.query(q):
            for values in s["values"]:
                row = dict(zip(s["columns"], values, strict=True)) | s.get("tags", {})
                row["time"] = datetime.fromtimestamp(row["time"] / 1e9, tz=UTC)
                out.append(row)
        return sorted(out, key=lambda r: r["time"])


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _time(at: datetime) -> str:
    return "'" + at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "'"


def between(site: str, start: datetime, end: datetime) -> str:
    return f"site = {_literal(site)} AND time >= {_time(start)} AND time <= {_time(end)}"


def events(influx: Influx, site: str, until: datetime) -> list[dict[str, Any]]:
    """Every event of `site` stored up to `until` (card reads, faults raised and cleared, status events)."""
    return influx.rows(f"SELECT * FROM events WHERE {between(site, EVER, until)}")


def reading_times(influx: Influx, site: str, start: datetime, end: datetime) -> dict[str, list[datetime]]:
    """When each device of `site` sent a reading in [start, end]."""
    times: dict[str, list[datetime]] = defaultdict(list)
    for measurement, field_ in READING_FIELDS.items():
        query = f'SELECT "{field_}" FROM "{measurement}" WHERE {between(site, start, end)} GROUP BY device'
        for row in influx.rows(query):
            times[row["device"]].append(row["time"])
    return {device: sorted(at) for device, at in times.items()}


def elevator_readings(influx: Influx, site: str, start: datetime, end: datetime) -> dict[str, list[dict[str, Any]]]:
    fields = "service_mode, fault_code, entrapment"
    by_car: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in influx.rows(f"SELECT {fields} FROM elevator WHERE {between(site, start, end)} GROUP BY device"):
        by_car[row["device"]].append(row)
    return by_car


def point_readings(influx: Influx, site: str, until: datetime) -> list[dict[str, Any]]:
    """Every reading of every point of the site's fire panels up to `until`."""
    where = between(site, EVER, until)
    return influx.rows(f"SELECT state, fault, disabled FROM fire_panel_point WHERE {where} GROUP BY device, point")


def panel_readings(influx: Influx, site: str, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """When each fire panel of `site` answered (its every poll carries `points_total`) in [since, until]."""
    where = between(site, since, until)
    return influx.rows(f"SELECT points_total FROM fire_panel WHERE {where} GROUP BY device")


def decommissioned(database: Path, site: str) -> dict[str, datetime]:
    """When a person decommissioned each point so taken out, by `<panel>:<point>` (table fire_points)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "fire_points" not in tables:
            return {}
        rows = conn.execute(
            "SELECT device, point, decommissioned_at FROM fire_points WHERE site = ? AND decommissioned_at IS NOT NULL",
            (site,),
        ).fetchall()
    return {f"{device}:{point}": _at(at) for device, point, at in rows}


def intact_figures(influx: Influx, site: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The site's `fire_intact` figures in [start - 5 min, end] (the one in force at the start included)."""
    return influx.rows(f"SELECT * FROM fire_intact WHERE {between(site, start - timedelta(minutes=5), end)}")
