"""A device's readings from InfluxDB: the latest value of each field, and one field over a time range, downsampled.

A reading holds only the fields of the message it came from (a barrier's state messages and its heartbeats are
separate points of one series, docs/influxdb-schema.md), so the latest state is the last value of each field, each
with its own time: one `SELECT last("<field>")` per field, sent as one request of several statements.

Request text never becomes InfluxQL: tag values and times are bind parameters (`$site`, `$device`, `$from`, `$to`),
and a field name is only used after it was found among the measurement's field keys (`SHOW FIELD KEYS`), double
quoted. The measurement is the device kind's (from the site file).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from facmon.kernel.influx import quote_identifier
from facmon.reports.kpi_data import InfluxReader

FieldType = Literal["float", "integer", "boolean", "string"]
NUMERIC_TYPES = frozenset({"float", "integer"})
Aggregation = Literal["mean", "last", "raw"]
Value = bool | int | float | str | None

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DEVICE = "site = $site AND device = $device"


def _ns(at: datetime) -> int:
    return (at.astimezone(UTC) - _EPOCH) // timedelta(microseconds=1) * 1000


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _from_ns(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


async def field_types(reader: InfluxReader, measurement: str) -> dict[str, FieldType]:
    """The measurement's field keys and their types, as InfluxDB has them (empty: nothing written yet)."""
    (series,) = await reader.statements(f"SHOW FIELD KEYS FROM {quote_identifier(measurement)}")
    types: dict[str, FieldType] = {}
    for s in series:
        for name, kind in s["values"]:
            types[name] = kind
    return types


@dataclass(frozen=True)
class LatestValue:
    value: Value
    at: datetime


@dataclass(frozen=True)
class Latest:
    at: datetime  # the newest of the fields' times
    fields: dict[str, LatestValue]


async def latest(reader: InfluxReader, measurement: str, site: str, device: str) -> Latest | None:
    """The last value of every field of the device's readings, with its time; None when there are none."""
    names = sorted(await field_types(reader, measurement))
    if not names:
        return None
    query = ";".join(
        f"SELECT last({quote_identifier(n)}) FROM {quote_identifier(measurement)} WHERE {_DEVICE}" for n in names
    )
    answers = await reader.statements(query, {"site": site, "device": device})
    fields: dict[str, LatestValue] = {}
    for name, series in zip(names, answers, strict=True):
        for s in series:
            for ts, value in s["values"]:
                if value is not None:
                    fields[name] = LatestValue(value, _from_ns(ts))
    if not fields:
        return None
    return Latest(at=max(v.at for v in fields.values()), fields=fields)


def bucket_seconds(start: datetime, end: datetime, points: int) -> int:
    """The bucket width giving at most `points` buckets over [start, end): whole seconds, at least one."""
    return max(1, math.ceil((end - start).total_seconds() / points))


@dataclass(frozen=True)
class HistoryPoint:
    at: datetime  # the bucket's start, or the reading's time (raw)
    value: Value  # mean (numeric), last (boolean, string) or the reading's value (raw)
    min: float | int | None = None
    max: float | int | None = None


@dataclass(frozen=True)
class History:
    field: str
    type: FieldType
    aggregation: Aggregation
    interval_s: int | None  # the bucket width; None for raw readings
    points: list[HistoryPoint]


async def history(
    reader: InfluxReader,
    measurement: str,
    site: str,
    device: str,
    field: str,
    field_type: FieldType,
    start: datetime,
    end: datetime,
    points: int,
) -> History:
    """`field` of the device over [start, end) in at most `points` values.

    Numbers: mean, min and max per bucket. Booleans and strings: the readings themselves when there are no more
    than `points`, else the last value per bucket. Buckets start at `start` (GROUP BY time with an offset), and
    buckets without a reading are left out (fill(none)).
    """
    interval = bucket_seconds(start, end, points)
    offset_ns = _ns(start) % (interval * 1_000_000_000)
    params: dict[str, str | int | float] = {
        "site": site,
        "device": device,
        "from": _rfc3339(start),
        "to": _rfc3339(end),
    }
    f, m = quote_identifier(field), quote_identifier(measurement)
    where = f"WHERE {_DEVICE} AND time >= $from AND time < $to"
    group = f"GROUP BY time({interval}s, {offset_ns}ns) fill(none)"
    rows: list[HistoryPoint] = []
    if field_type in NUMERIC_TYPES:
        (series,) = await reader.statements(f"SELECT mean({f}), min({f}), max({f}) FROM {m} {where} {group}", params)
        for s in series:
            rows += [HistoryPoint(_from_ns(ts), mean, lo, hi) for ts, mean, lo, hi in s["values"] if mean is not None]
        return History(field, field_type, "mean", interval, rows)
    (counted,) = await reader.statements(f"SELECT count({f}) FROM {m} {where}", params)
    count = sum(int(v or 0) for s in counted for _, v in s["values"])
    if count <= points:
        (series,) = await reader.statements(f"SELECT {f} FROM {m} {where}", params)
        for s in series:
            rows += [HistoryPoint(_from_ns(ts), v) for ts, v in s["values"] if v is not None]
        return History(field, field_type, "raw", None, rows)
    (series,) = await reader.statements(f"SELECT last({f}) FROM {m} {where} {group}", params)
    for s in series:
        rows += [HistoryPoint(_from_ns(ts), v) for ts, v in s["values"] if v is not None]
    return History(field, field_type, "last", interval, rows)
