"""Vendor JSON payloads in and out, checked against the driver file.

`parse` turns a payload into field values or raises `PayloadError` with a problem category (for metrics) and a
detail naming the message and field (for the dead letter). `interpret` says what the values mean (reading values,
an event, a condition raised or cleared). `encode` is the simulator's side: it refuses to build a payload the
collector would reject, so a simulator sends garbage only when asked to.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import cast

from collectors.mqtt.driver import CodeSpec, FieldSpec, JsonType, MessageSpec, MqttDriver
from facmon.kernel.model import EventType, Value
from facmon.kernel.untrusted import JsonRejected, parse_json


class Problem(StrEnum):
    """Why input was rejected; the label of the collector's `mqtt_rejected` counter."""

    NOT_UTF8 = "not_utf8"
    BAD_JSON = "bad_json"
    NOT_OBJECT = "not_object"
    UNKNOWN_MESSAGE = "unknown_message"
    UNKNOWN_FIELD = "unknown_field"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"
    NOT_IN_ENUM = "not_in_enum"
    BAD_FORMAT = "bad_format"
    UNKNOWN_DEVICE = "unknown_device"
    TOO_LARGE = "too_large"


# Vendor messages are a few hundred bytes; anything near this is a flood, not a reading.
MAX_PAYLOAD_BYTES = 64 * 1024


class PayloadError(ValueError):
    def __init__(self, problem: Problem, detail: str) -> None:
        self.problem = problem
        self.detail = detail
        super().__init__(detail)


@dataclass(frozen=True)
class ConditionChange:
    """A condition the message raises (active) or clears."""

    code: str
    active: bool
    meaning: CodeSpec


@dataclass(frozen=True)
class Meaning:
    """What one decoded message says: values for a Reading, an event, a condition change."""

    values: dict[str, Value] = field(default_factory=dict)
    event: tuple[EventType, str | None, str, dict[str, Value]] | None = None  # type, code, message, data
    condition: ConditionChange | None = None


def _show(raw: object) -> str:
    text = json.dumps(raw, ensure_ascii=False) if not isinstance(raw, float) or math.isfinite(raw) else str(raw)
    return text if len(text) <= 40 else text[:37] + "..."


_INT64 = (-(2**63), 2**63 - 1)
_JSON_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}


def _listing(values: list[str] | list[int]) -> str:
    return ", ".join(map(str, values))


def check_value(where: str, spec: FieldSpec, raw: object) -> Value:
    """The value of one field, or PayloadError naming `where` (message.field) and what is wrong."""

    def wrong() -> PayloadError:
        # Built only when raised: text for every valid value would cost more than checking it.
        got = "null" if raw is None else f"{_JSON_NAMES.get(type(raw), type(raw).__name__)} {_show(raw)}"
        return PayloadError(Problem.WRONG_TYPE, f"{where}: expected {spec.type.value}, got {got}")

    if spec.type is JsonType.BOOLEAN:
        if not isinstance(raw, bool):
            raise wrong()
        return raw
    if spec.type is JsonType.STRING:
        if not isinstance(raw, str):
            raise wrong()
        if len(raw) > spec.max_length:
            raise PayloadError(Problem.BAD_FORMAT, f"{where}: longer than {spec.max_length} characters")
        if spec.pattern is not None and not re.fullmatch(spec.pattern, raw):
            raise PayloadError(Problem.BAD_FORMAT, f"{where}: {_show(raw)} does not match {spec.pattern}")
        if spec.enum is not None and raw not in spec.enum:
            raise PayloadError(Problem.NOT_IN_ENUM, f"{where}: {_show(raw)} is not one of {_listing(spec.enum)}")
        return raw
    # JSON has one number type; "integer" means no fraction, and true/false are never numbers.
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise wrong()
    value: int | float
    if spec.type is JsonType.INTEGER:
        if not isinstance(raw, int):
            raise wrong()
        if not _INT64[0] <= raw <= _INT64[1]:
            # InfluxDB integers are 64-bit; a bigger one would be refused at the historian, far from its cause.
            raise PayloadError(Problem.OUT_OF_RANGE, f"{where}: {_show(raw)} does not fit a 64-bit integer")
        value = raw
    else:
        try:
            value = float(raw)
        except OverflowError:
            value = math.inf
        if not math.isfinite(value):
            raise PayloadError(Problem.OUT_OF_RANGE, f"{where}: {_show(raw)} is not a finite number")
    if spec.enum is not None and value not in spec.enum:
        raise PayloadError(Problem.NOT_IN_ENUM, f"{where}: {_show(raw)} is not one of {_listing(spec.enum)}")
    unit = f" {spec.unit}" if spec.unit else ""
    if spec.min is not None and value < spec.min:
        raise PayloadError(Problem.OUT_OF_RANGE, f"{where}: {_show(raw)} is below the minimum {spec.min:g}{unit}")
    if spec.max is not None and value > spec.max:
        raise PayloadError(Problem.OUT_OF_RANGE, f"{where}: {_show(raw)} is above the maximum {spec.max:g}{unit}")
    return value


def parse(driver: MqttDriver, message: str, payload: bytes) -> dict[str, Value]:
    """The fields of one message, each checked against the driver; PayloadError for the first problem found."""
    spec = driver.messages.get(message)
    if spec is None:
        known = ", ".join(sorted(driver.messages))
        raise PayloadError(Problem.UNKNOWN_MESSAGE, f"unknown message type {message!r} (known: {known})")
    try:
        # Numbers are checked per field below (1e400 parses as infinity and is refused naming its field).
        obj = parse_json(payload, max_bytes=MAX_PAYLOAD_BYTES)
    except JsonRejected as exc:
        if exc.problem == "not_utf8":
            raise PayloadError(Problem.NOT_UTF8, f"{message}: {exc}") from exc
        if exc.problem == "too_large":
            raise PayloadError(Problem.TOO_LARGE, f"{message}: {exc}") from exc
        raise PayloadError(Problem.BAD_JSON, f"{message}: not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise PayloadError(Problem.NOT_OBJECT, f"{message}: payload is a JSON {_JSON_NAMES.get(type(obj), 'null')}")
    plan = _plan(message, spec)
    if not plan.names.issuperset(obj):
        raise PayloadError(Problem.UNKNOWN_FIELD, f"{message}: unknown field {sorted(set(obj) - plan.names)[0]!r}")
    values: dict[str, Value] = {}
    for name, where, field_spec, accepts in plan.fields:
        raw = obj.get(name)
        if raw is None and not (name in obj and field_spec.required):
            # Absent, or null for an optional field (vendors send both for "not applicable").
            if field_spec.required:
                raise PayloadError(Problem.MISSING_FIELD, f"{message}: missing required field {name!r}")
            continue
        values[name] = cast(Value, raw) if accepts(raw) else check_value(where, field_spec, raw)
    return values


@dataclass(frozen=True)
class _Plan:
    """How to check one message type's fields fast: its field names, and per field (name, "message.field", spec,
    a test that accepts the common valid values exactly as `check_value` would return them)."""

    names: frozenset[str]
    fields: tuple[tuple[str, str, FieldSpec, Callable[[object], bool]], ...]


# Plans by message spec (which they keep alive, so an id is never reused while cached); drivers are few.
_PLANS: dict[int, tuple[MessageSpec, _Plan]] = {}


def _plan(message: str, spec: MessageSpec) -> _Plan:
    known = _PLANS.get(id(spec))
    if known is None:
        fields = tuple((name, f"{message}.{name}", f, _accepts(f)) for name, f in spec.fields.items())
        known = _PLANS[id(spec)] = (spec, _Plan(frozenset(spec.fields), fields))
    return known[1]


def _accepts(spec: FieldSpec) -> Callable[[object], bool]:
    """A test for the valid values of `spec` that `check_value` returns as they are (a bool for a boolean, a str
    for a string, an int for an integer, a finite float for a number), within its limits. It is narrower than
    `check_value` (an int for a number field is left to it, to become a float) and never wider: what it refuses
    goes through `check_value`, which says why or converts. Written per field, once, because the general checks
    of every value were most of a vendor message's cost."""
    enum = frozenset(spec.enum) if spec.enum is not None else None
    if spec.type is JsonType.BOOLEAN:
        return lambda raw: type(raw) is bool
    if spec.type is JsonType.STRING:
        pattern = re.compile(spec.pattern) if spec.pattern is not None else None
        longest = spec.max_length

        def string(raw: object) -> bool:
            return (
                type(raw) is str
                and len(raw) <= longest
                and (pattern is None or pattern.fullmatch(raw) is not None)
                and (enum is None or raw in enum)
            )

        return string
    integer = spec.type is JsonType.INTEGER
    wanted = int if integer else float
    bounds: tuple[float, float] = _INT64 if integer else (-math.inf, math.inf)
    low = bounds[0] if spec.min is None else max(spec.min, bounds[0])
    high = bounds[1] if spec.max is None else min(spec.max, bounds[1])

    def number(raw: object) -> bool:
        if type(raw) is not wanted:
            return False
        value = cast(float, raw)
        # Strictly between the infinities as well: a number field's value must be finite.
        return low <= value <= high and -math.inf < value < math.inf and (enum is None or value in enum)

    return number


def interpret(driver: MqttDriver, message: str, values: Mapping[str, Value]) -> Meaning:
    spec = driver.messages[message]
    reading = {name: values[name] for name in spec.reading if name in values}
    event = None
    if spec.event is not None:
        rule = spec.event
        code = str(values[rule.code]) if rule.code is not None and rule.code in values else None
        event = (EventType(rule.type), code, rule.message, {k: values[k] for k in rule.data if k in values})
    condition = None
    if spec.condition is not None:
        cond = spec.condition
        vendor_code = str(values[cond.code])
        meaning = cond.codes[vendor_code]
        active = values[cond.active] == cond.active_value
        condition = ConditionChange(meaning.code or vendor_code, active, meaning)
    return Meaning(reading, event, condition)


def encode(driver: MqttDriver, message: str, values: Mapping[str, Value]) -> bytes:
    """A payload the collector accepts; ValueError naming the field for anything it would reject."""
    fields = driver.fields_of(message)
    for name, value in values.items():
        if name not in fields:
            raise ValueError(f"{driver.model} {message}: no field {name!r}; fields: {sorted(fields)}")
        check_value(f"{message}.{name}", fields[name], value)
    missing = [name for name, spec in fields.items() if spec.required and name not in values]
    if missing:
        raise ValueError(f"{driver.model} {message}: missing required fields {missing}")
    return json.dumps(dict(values), separators=(",", ":"), ensure_ascii=False).encode()
