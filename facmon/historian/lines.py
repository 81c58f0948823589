"""Readings and events as InfluxDB line protocol, one point each.

The encoder is our own (`encode_line`) rather than influxdb_client's `Point`: building a line through `Point` cost
about 15 us, most of the historian's own CPU per reading, and this one writes the same lines for the same input
(tags and fields sorted by key, floats as `repr` without a trailing `.0`, `3i`, `true`) in a fraction of that. A
property test writes random names and values through it into a real influxd and reads back exactly what went in.

What InfluxDB 1.x line protocol can carry, and so what this encoder writes: in the measurement, tag keys, tag values
and field keys a comma, a space and (but in the measurement) an equals sign are escaped with a backslash; a
backslash is itself written as is (1.x keeps it literally and has no escape for it), so a name in which a backslash
ends the name or stands before a comma, space or equals sign cannot be written, nor one with a line break or that
starts with a tab (InfluxDB skips it as white space), nor a measurement that starts with `#` (a comment) or is
empty, nor an empty field key: `Unstorable` says which and why (the historian parks such a message as a dead
letter). Tags whose key or value is empty are left out, as InfluxDB stores none. In string field values a double
quote and a backslash are escaped and anything else, line breaks and all, is written as is.

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

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from facmon.kernel.model import DeviceRef, Event, Reading, Value

EVENTS_MEASUREMENT = "events"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ESCAPE_MEASUREMENT = str.maketrans({",": "\\,", " ": "\\ "})
_ESCAPE_NAME = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})
_ESCAPE_STRING = str.maketrans({'"': '\\"', "\\": "\\\\"})
# What no escape can carry in a name: a line break, a backslash at the end or before an escaped character, a tab at
# the start (InfluxDB skips it as white space between the parts of a line).
_UNWRITABLE_NAME = re.compile(r"[\n\r]|\\(?:[, =]|$)|^\t")


class Unstorable(ValueError):
    """A name line protocol cannot carry (see the module); the text says which."""


def reading_line(reading: Reading) -> str | None:
    """One line for a reading; None when it has nothing to store (no values, or only NaN/infinite floats).

    A reading of one point of a many-point device (a fire panel's detector) goes to `<kind>_point`, tagged with
    the point, so the panel's own values and its hundreds of points stay apart.
    """
    ref = reading.ref
    key = (ref.kind, ref.site, ref.building, ref.device, ref.model, ref.role, reading.point)
    series = _SERIES.get(key)
    if series is None:
        series = _reading_series(ref, reading.point)
        if len(_SERIES) >= _SERIES_MAX:
            _SERIES.clear()
        _SERIES[key] = series
    return _with_fields(series, reading.values, reading.ts)


# The measurement and tags of a device's readings, escaped, by device: a device writes many readings, and escaping
# and sorting its tags for each took a third of a line's time. Bounded (emptied when full).
_SERIES: dict[tuple[object, ...], str] = {}
_SERIES_MAX = 100_000
# The sorted, escaped field keys of a reading by its keys in their order: a driver's readings bring the same few
# sets over and over. Bounded (emptied when full).
_FIELD_PLANS: dict[tuple[str, ...], list[tuple[str, str]]] = {}
_FIELD_PLANS_MAX = 10_000


def _reading_series(ref: DeviceRef, point: str | None) -> str:
    tags = {"site": ref.site, "building": ref.building, "device": ref.device, "model": ref.model, "role": ref.role}
    if point is None:
        return encode_series(ref.kind.value, tags)
    return encode_series(f"{ref.kind.value}_point", {**tags, "point": point})


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


def _line(measurement: str, tags: dict[str, str | None], fields: Mapping[str, Value], ts: datetime) -> str | None:
    return _with_fields(encode_series(measurement, tags), fields, ts)


def _with_fields(series: str, fields: Mapping[str, Value], ts: datetime) -> str | None:
    delta = ts - _EPOCH
    return encode_fields(series, fields, (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000)


def encode_line(
    measurement: str, tags: Mapping[str, str | None], fields: Mapping[str, Value], ts_ns: int
) -> str | None:
    """One line of line protocol; None when no field is left to store (NaN and infinite floats are left out, as
    InfluxDB stores neither). Tags with no value (None or empty) are left out. Raises `Unstorable` for a name line
    protocol cannot carry."""
    return encode_fields(encode_series(measurement, tags), fields, ts_ns)


def encode_series(measurement: str, tags: Mapping[str, str | None]) -> str:
    """The start of a line: the measurement and the tags (sorted by key, those without a value left out)."""
    if not measurement or measurement[0] == "#" or _UNWRITABLE_NAME.search(measurement):
        raise Unstorable(f"measurement {measurement[:100]!r} cannot be written in line protocol")
    parts = [measurement.translate(_ESCAPE_MEASUREMENT)]
    for key, value in sorted(tags.items()):
        if key and value:
            parts.append(f",{_name(key, 'tag key')}={_name(value, 'tag value')}")
    return "".join(parts)


def encode_fields(series: str, fields: Mapping[str, Value], ts_ns: int) -> str | None:
    """`series` (see `encode_series`) with the fields (sorted by key, NaN and infinities left out) and the time;
    None when no field is left."""
    parts = []
    for key, name in _field_plan(fields):
        field = fields[key]
        if field is True:
            parts.append(f"{name}=true")
        elif field is False:
            parts.append(f"{name}=false")
        elif isinstance(field, float):
            if not math.isfinite(field):
                continue
            text = repr(field)
            parts.append(f"{name}={text[:-2] if text.endswith('.0') else text}")
        elif isinstance(field, int):
            parts.append(f"{name}={field}i")
        else:
            parts.append(f'{name}="{field.translate(_ESCAPE_STRING)}"')
    if not parts:
        return None
    return f"{series} {','.join(parts)} {ts_ns}"


def _field_plan(fields: Mapping[str, Value]) -> list[tuple[str, str]]:
    """The field keys of `fields` sorted, each with its escaped name; worked out once per set of keys in an order
    (a driver's readings bring the same keys poll after poll). Raises `Unstorable` for a key line protocol cannot
    carry."""
    keys = tuple(fields)
    plan = _FIELD_PLANS.get(keys)
    if plan is None:
        plan = []
        for key in sorted(keys):
            if not key:
                raise Unstorable("a field with an empty name cannot be written in line protocol")
            plan.append((key, _name(key, "field key")))
        if len(_FIELD_PLANS) >= _FIELD_PLANS_MAX:
            _FIELD_PLANS.clear()
        _FIELD_PLANS[keys] = plan
    return plan


def _name(text: str, what: str) -> str:
    # The search only for names that may need it: most hold none of these.
    if ("\\" in text or "\n" in text or "\r" in text or text[:1] == "\t") and _UNWRITABLE_NAME.search(text):
        raise Unstorable(f"{what} {text[:100]!r} cannot be written in line protocol")
    return text.translate(_ESCAPE_NAME)


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
        if ref.building == known.building and ref.kind.value == known.kind and ref.model == known.model:
            return None  # the usual case, without building the tuples below
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
        if allowed.issuperset(reading.values):
            return []
        return sorted(name for name in reading.values if name not in allowed)

    def whole(self, message: Reading | Event) -> bool:
        """Whether all of `message` may be stored (the usual case, told without building a `Screened`): its device
        is one of the site files', named as they name it, and a reading holds only declared fields."""
        ref = message.ref
        known = self.devices.get((ref.site, ref.device))
        if known is None or ref.building != known.building or ref.model != known.model or ref.kind != known.kind:
            return False  # a StrEnum equals its value: no `.value` needed
        if not isinstance(message, Reading):
            return True
        return (known.fields if message.point is None else known.point_fields).issuperset(message.values)

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
