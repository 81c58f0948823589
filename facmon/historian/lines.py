"""Readings and events as InfluxDB line protocol, one point each, built with influxdb_client's `Point`.

Readings: measurement = device kind (`elevator`, `fire_panel`, ...), tags site, building, device, model and role,
one field per value. Events: measurement `events`, tags site, building, device, kind, model, type and code, fields
message and event_id. Timestamps are the reading's or event's own time in nanoseconds, so a point replayed after an
outage lands where it belongs, and a point delivered twice overwrites itself instead of doubling.

Field types follow the Python type of the value, never its magnitude: an int is written as an integer (`3i`) and a
float as a float even when it is whole (`3.0` → `3`, which line protocol reads as a float). InfluxDB fixes a field's
type on first write, so a driver must keep each value's type stable; a value that changes type is rejected by
InfluxDB, and the writer parks it instead of blocking.

`DeclaredFields` is what the drivers of the site files' devices declare; the historian stores no other field and
nothing of a device no site file has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision

from facmon.kernel.model import DeviceRef, Event, Reading, Value

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


@dataclass(frozen=True)
class DeviceFields:
    """What one device's driver declares: its building, kind and model, the fields of its readings and of its points'
    readings (a fire panel's detectors)."""

    building: str
    kind: str
    model: str
    fields: frozenset[str]
    point_fields: frozenset[str] = frozenset()


@dataclass(frozen=True)
class DeclaredFields:
    """The devices of the site files by (site, device), with the fields their drivers declare: the historian stores
    nothing else. A forged or broken publisher could otherwise add any number of fields (InfluxDB keeps each one in
    its schema for good) or write for a device no site has."""

    devices: Mapping[tuple[str, str], DeviceFields]

    def refusal(self, ref: DeviceRef) -> str | None:
        """Why nothing of this device is stored (not in the site files, or named with another building, kind or
        model than theirs); None when it is one of theirs."""
        known = self.devices.get((ref.site, ref.device))
        if known is None:
            return f"device {ref.device!r} of site {ref.site!r} is in no site file"
        for name, have, want in (
            ("building", ref.building, known.building),
            ("kind", ref.kind.value, known.kind),
            ("model", ref.model, known.model),
        ):
            if have != want:
                return f"{ref.device}: {name} {have!r}, the site file says {want!r}"
        return None

    def undeclared(self, reading: Reading) -> list[str]:
        """The reading's fields its device's driver does not declare (call `refusal` first)."""
        known = self.devices[(reading.ref.site, reading.ref.device)]
        allowed = known.fields if reading.point is None else known.point_fields
        return sorted(name for name in reading.values if name not in allowed)

    def screen(self, message: Reading | Event) -> Screened:
        """What of `message` may be stored: all of it, the reading without its undeclared fields, or nothing."""
        refused = self.refusal(message.ref)
        if refused is not None:
            fields = len(message.values) if isinstance(message, Reading) else 0
            return Screened(None, fields, "unknown_device", refused)
        if not isinstance(message, Reading):
            return Screened(message)
        undeclared = self.undeclared(message)
        if not undeclared:
            return Screened(message)
        more = f" and {len(undeclared) - _NAMED} more" if len(undeclared) > _NAMED else ""
        reason = f"fields its driver does not declare: {', '.join(undeclared[:_NAMED])}{more}"
        kept = {name: value for name, value in message.values.items() if name not in undeclared}
        stored = message.model_copy(update={"values": kept}) if kept else None
        return Screened(stored, len(undeclared), "undeclared_fields", reason)


# How many refused fields a dead letter's reason names (a forged reading may carry thousands).
_NAMED = 10


@dataclass(frozen=True)
class Screened:
    """The message to store (None: nothing), how many fields were refused, and why (for the dead letter)."""

    message: Reading | Event | None
    refused: int = 0
    label: str = ""
    reason: str = ""
