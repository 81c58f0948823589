"""What collectors emit and what travels on the MQTT backbone: typed readings and events.

A `Reading` is one poll (or one pushed state message) of one device: all its current values. An `Event` is a
change worth acting on: a fault raised or cleared, a device lost, found again or heard for the first time.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from facmon.kernel.clock import utc
from facmon.kernel.untrusted import JsonRejected, finite_value, parse_json, printable, utf8_safe

UtcDatetime = Annotated[datetime, AfterValidator(utc)]
Value = bool | int | float | str
# The id of a site, building, device or technician as a site file gives it.
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]


class DeviceKind(StrEnum):
    ELEVATOR = "elevator"
    FIRE_PANEL = "fire_panel"
    GATE = "gate"
    CAMERA = "camera"


class Discipline(StrEnum):
    """What a technician is qualified to work on."""

    ELEVATOR = "elevator"
    FIRE = "fire"
    SECURITY = "security"


class DeviceRef(BaseModel):
    """Who a reading or event is about; these become InfluxDB tags."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    site: str
    building: str
    device: str
    kind: DeviceKind
    model: str
    role: str | None = None


class EventType(StrEnum):
    FAULT_RAISED = "fault_raised"
    FAULT_CLEARED = "fault_cleared"
    COMM_LOST = "comm_lost"
    # The device answers: after a comm_lost, or for the first time since its collector started (then `data` holds
    # FIRST_CONTACT: True), so a device heard from is known to be there even if it was never lost.
    COMM_RESTORED = "comm_restored"
    # Something the site did that is not a fault: a controller's status event (GB/T 24476 codes 40-47: main power
    # lost, inspection, fire return, ...), a fire point or camera condition that is informative only.
    STATUS = "status"
    # A card presented at a gate barrier or door: `data` holds card, granted and direction.
    CARD_READ = "card_read"


# In a comm_restored event's `data`: the first answer or message from the device since its collector started.
FIRST_CONTACT = "first_contact"


class Reading(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    ref: DeviceRef
    ts: UtcDatetime
    values: dict[str, Value]
    # A reading of one point of a device that has many (a fire panel's detector "1-023"); None for the device itself.
    point: str | None = None


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    ref: DeviceRef
    ts: UtcDatetime
    type: EventType
    # The fault this event is about: the controller's code as text ("2"), or a named condition
    # ("entrapment"). None for comm events.
    code: str | None = None
    message: str = ""
    # The point of a many-point device the event is about (a fire panel's "1-023"); None for the device itself.
    point: str | None = None
    # Details that are not a fault code: a card read's card number, whether it was granted, the direction.
    data: dict[str, Value] = Field(default_factory=dict)
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)


class DeadLetter(BaseModel):
    """Input from a device that could not be used: parked on the dead-letter topic with the reason, never lost.

    Whatever it is built from, it can be serialised and stored: the reason and topic are cut to a bound and their lone
    surrogates escaped; the input is kept as text only when it is text that UTF-8 can carry (else as base64, the
    bytes as they came, or a str's code units with its surrogates), at most `MAX_PAYLOAD_BYTES` of it, with its
    whole size. `DeadLetter.of` takes the input as bytes or text.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    site: str
    # None when the input could not even be tied to a device (a vendor topic naming no device of the site).
    ref: DeviceRef | None
    ts: UtcDatetime
    # Where it came from: "modbus" (a register block) or "mqtt" (a vendor payload), and the vendor topic if any.
    source: str
    reason: str
    # The input as text when it is text, else base64 (`payload_base64`).
    payload: str | None = None
    payload_base64: str | None = None
    topic: str | None = None
    # The input's size in bytes when it was cut to MAX_PAYLOAD_BYTES; None when it is all there.
    payload_size: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name, limit in (("reason", MAX_REASON_CHARS), ("topic", MAX_TOPIC_CHARS), ("source", 40)):
            if isinstance(data.get(name), str):
                data[name] = printable(data[name], limit)
        payload = data.get("payload")
        if isinstance(payload, str | bytes):
            data.update(_stored_payload(payload))
        return data

    @classmethod
    def of(
        cls,
        *,
        site: str,
        ref: DeviceRef | None,
        ts: datetime,
        source: str,
        reason: str,
        payload: bytes | str | None = None,
        topic: str | None = None,
    ) -> DeadLetter:
        """A dead letter of `payload` as it came (bytes or text)."""
        return cls.model_validate(
            {"site": site, "ref": ref, "ts": ts, "source": source, "reason": reason, "payload": payload, "topic": topic}
        )


MAX_REASON_CHARS = 500
MAX_TOPIC_CHARS = 300
# A dead letter is evidence, not a copy: the first 64 KiB show what was sent, and a 5 MB flood does not fill the
# gateway's outbox.
MAX_PAYLOAD_BYTES = 64 * 1024


def _utf8(raw: bytes, *, cut: bool) -> str | None:
    """`raw` as text, or None when it is not UTF-8; a `cut` may have split its last character, which then goes."""
    for end in range(len(raw), max(len(raw) - 4, -1) if cut else len(raw) - 1, -1):
        try:
            return raw[:end].decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < end - 3:
                return None
    return None


def _stored_payload(payload: bytes | str) -> dict[str, str | int | None]:
    """The `payload`, `payload_base64` and `payload_size` fields of a dead letter of `payload`."""
    raw = payload if isinstance(payload, bytes) else payload.encode("utf-8", "surrogatepass")
    size = len(raw) if len(raw) > MAX_PAYLOAD_BYTES else None
    raw = raw[:MAX_PAYLOAD_BYTES]
    text = _utf8(raw, cut=size is not None)
    if text is not None and utf8_safe(text):
        return {"payload": text, "payload_base64": None, "payload_size": size}
    return {"payload": None, "payload_base64": base64.b64encode(raw).decode("ascii"), "payload_size": size}


# Collectors hand what they produce to an `Emit`; they never touch storage or the network beyond the device.
Emit = Callable[[Reading | Event], Awaitable[None]]
# ... or, for what one look at a device found (a fire panel poll: its panel and every changed point), all at once.
EmitMany = Callable[[Sequence[Reading | Event]], Awaitable[None]]
# ... and what they could not use to a `Reject`.
Reject = Callable[[DeadLetter], Awaitable[None]]
# ... or all a burst of input became, at once, to a `Store` (one transaction; durable when it returns).
Store = Callable[[Sequence[Reading | Event | DeadLetter]], Awaitable[None]]


# The largest backbone message a consumer parses: a fire panel's reading of all its points is a few kB.
MAX_MESSAGE_BYTES = 256 * 1024


def decode_message(payload: bytes | str) -> Reading | Event:
    """Parse a backbone payload; raises ValueError naming what is wrong, whatever the payload is (see
    `facmon.kernel.untrusted.parse_json` for the limits)."""
    try:
        data = parse_json(payload, max_bytes=MAX_MESSAGE_BYTES)
    except JsonRejected as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    return validate_message(data)


def validate_message(data: object, *, where: str = "") -> Reading | Event:
    """A parsed JSON value as a reading or an event; raises ValueError naming what is wrong (`where` is put before
    the field's path, e.g. "readings.3.")."""
    if not isinstance(data, dict):
        raise ValueError(f"{where.rstrip('.') or 'payload'} is not a JSON object")
    cls: type[Reading] | type[Event] = Event if "type" in data else Reading
    try:
        message = cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        at = printable(where + (".".join(map(str, first["loc"])) or "(payload)"), 100)
        raise ValueError(f"invalid {cls.__name__.lower()}: {at}: {printable(first['msg'], 200)}") from exc
    # 1e400 parses as infinity and 10**30 as itself; neither can be stored (InfluxDB: finite floats, 64-bit ints).
    values = message.values if isinstance(message, Reading) else message.data
    for name, value in values.items():
        if not finite_value(value):
            field = "values" if isinstance(message, Reading) else "data"
            shown = printable(str(value), 40)
            at = printable(f"{where}{field}.{name}", 100)
            raise ValueError(f"invalid {cls.__name__.lower()}: {at}: {shown} is out of range")
    return message


# Devices read over Modbus TCP (need an address) and devices that push over MQTT (need none).
MODBUS_KINDS = frozenset({DeviceKind.ELEVATOR, DeviceKind.FIRE_PANEL})
MQTT_KINDS = frozenset({DeviceKind.GATE, DeviceKind.CAMERA})


class ModbusAddress(BaseModel):
    """Where a Modbus TCP device answers: host, port and unit id (the slave behind a gateway)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str
    port: int = Field(default=502, ge=1, le=65535)
    unit: int = Field(default=1, ge=0, le=247)
