"""Readings and events as InfluxDB line protocol, one point each, built with influxdb_client's `Point`.

Readings: measurement = device kind (`elevator`, `fire_panel`, ...), tags site, building, device, model and role,
one field per value. Events: measurement `events`, tags site, building, device, kind, model, type and code, fields
message and event_id. Timestamps are the reading's or event's own time in nanoseconds, so a point replayed after an
outage lands where it belongs, and a point delivered twice overwrites itself instead of doubling.

Field types follow the Python type of the value, never its magnitude: an int is written as an integer (`3i`) and a
float as a float even when it is whole (`3.0` → `3`, which line protocol reads as a float). InfluxDB fixes a field's
type on first write, so a driver must keep each value's type stable; a value that changes type is rejected by
InfluxDB, and the writer parks it instead of blocking.
"""

from __future__ import annotations

from datetime import datetime

from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision

from facmon.kernel.model import Event, Reading, Value

EVENTS_MEASUREMENT = "events"


def reading_line(reading: Reading) -> str | None:
    """One line for a reading; None when it has nothing to store (no values, or only NaN/infinite floats).

    A reading of one point of a many-point device (a fire panel's detector) goes to `<kind>_point`, tagged with
    the point, so the panel's own values and its hundreds of points stay apart.
    """
    ref = reading.ref
    tags = {"site": ref.site, "building": ref.building, "device": ref.device, "model": ref.model, "role": ref.role}
    if reading.point is None:
        return _line(ref.kind.value, tags, dict(reading.values), reading.ts)
    return _line(f"{ref.kind.value}_point", {**tags, "point": reading.point}, dict(reading.values), reading.ts)


def event_line(event: Event) -> str:
    ref = event.ref
    tags = {
        "site": ref.site,
        "building": ref.building,
        "device": ref.device,
        "kind": ref.kind.value,
        "model": ref.model,
        "type": event.type.value,
        "code": event.code,
        "point": event.point,
    }
    # Details (a card read's card, granted, direction) are fields; they never override message or event_id.
    fields: dict[str, Value] = {**event.data, "message": event.message, "event_id": event.id}
    line = _line(EVENTS_MEASUREMENT, tags, fields, event.ts)
    assert line is not None, "event_id is never empty"
    return line


def to_line(message: Reading | Event) -> str | None:
    return reading_line(message) if isinstance(message, Reading) else event_line(message)


def _line(measurement: str, tags: dict[str, str | None], fields: dict[str, Value], ts: datetime) -> str | None:
    # Point leaves out None tags and NaN/infinite fields (InfluxDB stores neither), and returns "" with no fields left.
    point = Point.from_dict({"measurement": measurement, "tags": tags, "fields": fields, "time": ts})
    line: str = point.to_line_protocol(WritePrecision.NS)
    return line or None
