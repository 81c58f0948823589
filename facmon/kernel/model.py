"""What collectors emit and what travels on the MQTT backbone: typed readings and events.

A `Reading` is one poll (or one pushed state message) of one device: all its current values. An `Event` is a
change worth acting on: a fault raised or cleared, a device lost, found again or heard for the first time.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from facmon.kernel.clock import utc

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
    """Input from a device that could not be used: parked on the dead-letter topic with the reason, never lost."""

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


# Collectors hand what they produce to an `Emit`; they never touch storage or the network beyond the device.
Emit = Callable[[Reading | Event], Awaitable[None]]
# ... and what they could not use to a `Reject`.
Reject = Callable[[DeadLetter], Awaitable[None]]


def decode_message(payload: bytes | str) -> Reading | Event:
    """Parse a backbone payload; raises ValueError naming what is wrong."""
    import json

    from pydantic import ValidationError

    try:
        data = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError("payload is not a JSON object")
    cls: type[Reading] | type[Event] = Event if "type" in data else Reading
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "(payload)"
        raise ValueError(f"invalid {cls.__name__.lower()}: {where}: {first['msg']}") from exc


# Devices read over Modbus TCP (need an address) and devices that push over MQTT (need none).
MODBUS_KINDS = frozenset({DeviceKind.ELEVATOR, DeviceKind.FIRE_PANEL})
MQTT_KINDS = frozenset({DeviceKind.GATE, DeviceKind.CAMERA})


class ModbusAddress(BaseModel):
    """Where a Modbus TCP device answers: host, port and unit id (the slave behind a gateway)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str
    port: int = Field(default=502, ge=1, le=65535)
    unit: int = Field(default=1, ge=0, le=247)
