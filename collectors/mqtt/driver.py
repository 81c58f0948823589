"""An MQTT device model as data: the payload map file shared by the collector and the simulator.

The file says where a device publishes (a topic pattern with `{vendor_id}` and `{message}`), which messages it
sends, each message's JSON fields (type, required, legal values, unit), and what the collector makes of them: which
fields are Reading values, which messages are events (card reads, status) and which carry a condition that is raised
and cleared (faults). The collector decodes with it (collectors.mqtt.codec) and the simulator encodes with it.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from facmon.kernel.datafile import load_model
from facmon.kernel.model import DeviceKind, EventType, Value

Name = str  # a message or field name as it appears on the wire
_NAME = r"^[a-z][a-z0-9_]{0,63}$"
_VENDOR_ID = "{vendor_id}"
_MESSAGE = "{message}"


class JsonType(StrEnum):
    STRING = "string"
    INTEGER = "integer"  # a JSON number without a fraction or exponent; never true/false
    NUMBER = "number"  # any JSON number; decoded as a float so its InfluxDB field type never changes
    BOOLEAN = "boolean"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldSpec(_Strict):
    type: JsonType
    required: bool = True
    # Legal values of a string or integer field; anything else is rejected.
    enum: list[str] | list[int] | None = None
    # Legal range of a numeric field, inclusive.
    min: float | None = None
    max: float | None = None
    # A regular expression a string field must match in full.
    pattern: str | None = None
    max_length: int = Field(default=256, ge=1)
    unit: str = ""
    description: str = ""

    @model_validator(mode="after")
    def _fits_type(self) -> FieldSpec:
        numeric = self.type in (JsonType.INTEGER, JsonType.NUMBER)
        if (self.min is not None or self.max is not None) and not numeric:
            raise ValueError(f"min/max apply to numeric fields, not to a {self.type.value}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        if self.pattern is not None:
            if self.type is not JsonType.STRING:
                raise ValueError("pattern applies to string fields")
            re.compile(self.pattern)
        if self.enum is not None:
            wanted = str if self.type is JsonType.STRING else int if self.type is JsonType.INTEGER else None
            if wanted is None or not all(type(v) is wanted for v in self.enum):
                raise ValueError(f"enum values of a {self.type.value} field must all be {self.type.value}s")
        return self


class CodeSpec(_Strict):
    """What one vendor condition code means to us."""

    # The event's code; default: the vendor's code itself.
    code: str | None = None
    message: str
    # `fault`: fault_raised / fault_cleared. `status`: informative only, a status event with data {active}.
    event: Literal["fault", "status"] = "fault"


class ConditionRule(_Strict):
    """A message that raises or clears a named condition: one field names it, another says whether it is active."""

    code: Name
    active: Name
    # The value of the `active` field that means raised; any other legal value means cleared.
    active_value: bool | str = True
    # Keyed by the vendor's code; must cover exactly the code field's enum.
    codes: dict[str, CodeSpec]


class EventRule(_Strict):
    """A message that is an event in itself (a card read, a status report)."""

    type: Literal[EventType.CARD_READ, EventType.STATUS]
    # Fields copied into the event's `data`, under their own names.
    data: list[Name] = Field(default_factory=list)
    # The field whose value becomes the event's code (status events).
    code: Name | None = None
    message: str = ""


class MessageSpec(_Strict):
    description: str = ""
    fields: dict[Name, FieldSpec]
    # Fields that become values of a Reading (those present in the payload).
    reading: list[Name] = Field(default_factory=list)
    event: EventRule | None = None
    condition: ConditionRule | None = None

    def check(self, name: str) -> None:
        """Raise ValueError naming the first reference to a field the message does not have."""
        fields = self.fields
        bad = [f for f in self.reading if f not in fields]
        if self.event is not None:
            bad += [f for f in [*self.event.data, self.event.code] if f is not None and f not in fields]
        if self.condition is not None:
            bad += [f for f in (self.condition.code, self.condition.active) if f not in fields]
        if bad:
            raise ValueError(f"message {name}: refers to unknown field {bad[0]!r}")
        for field in fields:
            if not re.match(_NAME, field):
                raise ValueError(f"message {name}: field name {field!r} must match {_NAME}")
        if self.event is not None and self.event.type is EventType.CARD_READ:
            _check_card_read(name, self)
        if self.condition is not None:
            _check_condition(name, self, self.condition)


def _check_card_read(name: str, spec: MessageSpec) -> None:
    # A card read means the same to the rules whatever the vendor: data {card, granted, direction in/out}.
    assert spec.event is not None
    if sorted(spec.event.data) != ["card", "direction", "granted"]:
        raise ValueError(f"message {name}: a card_read event carries data [card, granted, direction]")
    fields = spec.fields
    if fields["card"].type is not JsonType.STRING or fields["granted"].type is not JsonType.BOOLEAN:
        raise ValueError(f"message {name}: card is a string and granted a boolean")
    if fields["direction"].enum is None or not set(fields["direction"].enum) <= {"in", "out"}:
        raise ValueError(f"message {name}: direction is an enum of 'in' and 'out'")


def _check_condition(name: str, spec: MessageSpec, rule: ConditionRule) -> None:
    code = spec.fields[rule.code]
    if code.type is not JsonType.STRING or code.enum is None or not code.required:
        raise ValueError(f"message {name}: condition code field {rule.code!r} is a required string enum")
    if set(rule.codes) != set(map(str, code.enum)):
        raise ValueError(f"message {name}: condition codes must be exactly the enum of {rule.code!r}")
    active = spec.fields[rule.active]
    if not active.required:
        raise ValueError(f"message {name}: condition field {rule.active!r} must be required")
    if active.type is JsonType.BOOLEAN:
        if not isinstance(rule.active_value, bool):
            raise ValueError(f"message {name}: active_value of a boolean field is true or false")
    elif active.type is not JsonType.STRING or active.enum is None or rule.active_value not in active.enum:
        raise ValueError(f"message {name}: active_value must be one of the enum of {rule.active!r}")


class Heartbeat(_Strict):
    message: Name
    # How often the device sends it. A device silent for its comm_grace_s (default: three intervals) is lost.
    interval_s: float = Field(gt=0, le=3600)


class MqttDriver(_Strict):
    model: str
    kind: DeviceKind
    description: str = ""
    # Where the device publishes, e.g. "vendor/barrier/{vendor_id}/{message}": each placeholder a whole level.
    topic: str
    heartbeat: Heartbeat
    messages: dict[Name, MessageSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> MqttDriver:
        levels = self.topic.split("/")
        if levels.count(_VENDOR_ID) != 1 or levels.count(_MESSAGE) != 1:
            raise ValueError(f"topic {self.topic!r} needs {_VENDOR_ID} and {_MESSAGE}, each once as a whole level")
        for level in levels:
            if level not in (_VENDOR_ID, _MESSAGE) and (not level or any(c in level for c in "+#{}")):
                raise ValueError(f"topic {self.topic!r}: level {level!r} must be plain text")
        for name, spec in self.messages.items():
            if not re.match(_NAME, name):
                raise ValueError(f"message name {name!r} must match {_NAME}")
            spec.check(name)
        if self.heartbeat.message not in self.messages:
            raise ValueError(f"heartbeat message {self.heartbeat.message!r} is not among the messages")
        return self

    @cached_property
    def _levels(self) -> list[str]:
        return self.topic.split("/")

    def subscription(self, prefix: str = "") -> str:
        """The wildcard topic that covers every device and message of this model."""
        pattern = "/".join("+" if level in (_VENDOR_ID, _MESSAGE) else level for level in self._levels)
        return f"{prefix}/{pattern}" if prefix else pattern

    def topic_for(self, vendor_id: str, message: str, prefix: str = "") -> str:
        topic = self.topic.replace(_VENDOR_ID, vendor_id).replace(_MESSAGE, message)
        return f"{prefix}/{topic}" if prefix else topic

    def match(self, topic: str, prefix: str = "") -> tuple[str, str] | None:
        """(vendor_id, message) when `topic` fits this model's pattern, else None."""
        if prefix:
            if not topic.startswith(prefix + "/"):
                return None
            topic = topic[len(prefix) + 1 :]
        levels = topic.split("/")
        if len(levels) != len(self._levels):
            return None
        found: dict[str, str] = {}
        for level, want in zip(levels, self._levels, strict=True):
            if want in (_VENDOR_ID, _MESSAGE):
                found[want] = level
            elif level != want:
                return None
        return found[_VENDOR_ID], found[_MESSAGE]

    def condition_payload(self, code: str, active: bool) -> tuple[str, dict[str, Value]]:
        """(message, fields) that raise or clear the condition we call `code`: the simulator's side."""
        for name, spec in self.messages.items():
            rule = spec.condition
            if rule is None:
                continue
            for vendor_code, meaning in rule.codes.items():
                if (meaning.code or vendor_code) != code:
                    continue
                if active:
                    state: Value = rule.active_value
                elif isinstance(rule.active_value, bool):
                    state = not rule.active_value
                else:
                    enum = spec.fields[rule.active].enum or []
                    state = next(str(v) for v in enum if v != rule.active_value)
                return name, {rule.code: vendor_code, rule.active: state}
        raise KeyError(f"{self.model} has no condition {code!r}")

    def conditions(self) -> list[str]:
        """Our codes of every condition the device can raise."""
        return [
            meaning.code or vendor_code
            for spec in self.messages.values()
            if spec.condition is not None
            for vendor_code, meaning in spec.condition.codes.items()
        ]

    def fields_of(self, message: str) -> dict[Name, FieldSpec]:
        try:
            return self.messages[message].fields
        except KeyError:
            raise KeyError(f"{self.model} has no message {message!r}; messages: {sorted(self.messages)}") from None


class DriverError(ValueError):
    pass


def load_driver(path: Path) -> MqttDriver:
    return load_model(path, MqttDriver, DriverError)
