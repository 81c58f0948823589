"""The parts of a driver file that say what values *mean* over time, beyond the register map itself.

Faults (a code register, fault bit words with one bit per fault, flags), status events (GB/T 24476 codes 40-47 when
a service mode or the power source changes) and the thresholds of the entrapment detector. They live in the driver
file because they differ by controller model; the code that acts on them (`collectors.modbus.conditions`) is the
same for every model. `ModbusDriver` has `check_event_specs` make sure the points they name exist and have the
right type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from collectors.modbus.registers import Point, RegType
from facmon.kernel.model import Value

# Keys of a status code table: enum labels, or plain values of a bool/number point.
StatusKey = bool | int | str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FaultBits(_Strict):
    """One register whose bits are faults: `codes` maps a bit (0 = least significant) to the GB fault code."""

    point: str
    codes: dict[int, int] = Field(min_length=1)

    @model_validator(mode="after")
    def _bits_of_a_word(self) -> FaultBits:
        bad = sorted(bit for bit in self.codes if not 0 <= bit <= 15)
        if bad:
            raise ValueError(f"fault bits of {self.point}: bits {bad} are not 0..15")
        return self


class FaultSpec(_Strict):
    # Register holding the controller's current fault code; 0 means no fault.
    code_point: str | None = None
    # Controllers that number faults their own way (E-codes): vendor code -> GB code. Without it the register holds
    # GB codes. `code_prefix` is how the vendor writes its codes ("E" for E31), used in messages.
    code_map: dict[int, int] | None = None
    code_prefix: str = ""
    # Words for the GB codes, used as event messages.
    codes: dict[int, str]
    # Registers whose bits are faults, each bit a GB code; a fault may be both here and in the code register.
    bits: list[FaultBits] = Field(default_factory=list)
    # Boolean points that are faults in themselves (e.g. the controller's entrapment flag).
    flags: dict[str, str] = Field(default_factory=dict)

    def points(self) -> list[str]:
        code = [self.code_point] if self.code_point is not None else []
        return [*code, *(b.point for b in self.bits), *self.flags]


class StatusPoint(_Strict):
    # Event code for each value of the point (its label for enum points). A value without a code is not reported.
    codes: dict[StatusKey, int] = Field(min_length=1)
    # The value at rest: when it is the first value read it is not reported, because a gateway that restarts is not
    # news; any other first value is (a gateway started while the car runs on backup power must say so).
    rest: StatusKey | None = None


class StatusEvents(_Strict):
    # Words for the event codes, e.g. 41: main power lost.
    texts: dict[int, str] = Field(min_length=1)
    points: dict[str, StatusPoint] = Field(min_length=1)

    @model_validator(mode="after")
    def _texts_for_every_code(self) -> StatusEvents:
        for name, spec in self.points.items():
            missing = sorted({code for code in spec.codes.values() if code not in self.texts})
            if missing:
                raise ValueError(f"status_events.points.{name}: codes {missing} have no text in status_events.texts")
            if spec.rest is not None and spec.rest not in spec.codes:
                raise ValueError(f"status_events.points.{name}: rest value {spec.rest!r} has no code")
        return self

    def code(self, point: str, value: Value) -> int | None:
        codes = self.points[point].codes
        # bool and int keys hash alike (True == 1); the driver check allows only one of them per point.
        return codes.get(value) if isinstance(value, (bool, int, str)) else None


class EntrapmentSpec(_Strict):
    """Entrapment as seen from the car's state, for controllers without a flag of their own (and as a second
    opinion for those with one).

    Trapped: a passenger present continuously for `passenger_s`, the door closed and the car not moving, for
    `outside_zone_s` outside the door zone or `in_zone_s` level at a landing. It ends when the car is level with its
    door open. Points used: passenger, door, door_zone, moving, and service_mode if the model has it.
    """

    # The fault code it is reported as: the name the controller flag uses, so flag and detector are one condition.
    code: str = Field(default="entrapment", min_length=1)
    message: str = "passenger trapped in the car"
    passenger_s: float = Field(default=10.0, ge=0)
    outside_zone_s: float = Field(default=45.0, gt=0)
    in_zone_s: float = Field(default=90.0, gt=0)
    # Service modes in which a stopped car with someone in it is expected: inspection means a technician is at work.
    quiet_modes: frozenset[str] = frozenset({"inspection"})
    # Labels of the door point's code table.
    door_closed: str = "closed"
    door_open: str = "open"

    POINTS: ClassVar[tuple[str, ...]] = ("passenger", "door", "door_zone", "moving")


def check_event_specs(
    declared: Sequence[Point],
    enums: Mapping[str, Mapping[int, str]],
    *,
    faults: FaultSpec | None,
    status_events: StatusEvents | None,
    entrapment: EntrapmentSpec | None,
) -> None:
    """Refuse a driver whose fault, status or entrapment sections name points it lacks or values they cannot take."""
    points = {p.name: p for p in declared}

    def point(name: str, section: str) -> Point:
        if name not in points:
            raise ValueError(f"{section} refers to unknown point {name!r}")
        return points[name]

    def labels(p: Point) -> set[str]:
        return set(enums[p.enum].values()) if p.enum is not None else set()

    if faults is not None:
        if faults.code_point is not None:
            p = point(faults.code_point, "faults.code_point")
            if p.type not in (RegType.UINT16, RegType.INT16, RegType.UINT32) or p.enum is not None:
                raise ValueError(f"faults.code_point {p.name}: a fault code register is a plain number")
        for word in faults.bits:
            p = point(word.point, "faults.bits")
            if p.type is not RegType.UINT16 or p.bit is not None or p.enum is not None or p.scale != 1.0:
                raise ValueError(f"faults.bits {p.name}: a fault bit word is a whole uint16 register")
        for name in faults.flags:
            if point(name, "faults.flags").type is not RegType.BOOL:
                raise ValueError(f"faults.flags {name}: a fault flag is a bool point")
        mapped = [*(faults.code_map or {}).values(), *(c for word in faults.bits for c in word.codes.values())]
        unnamed = sorted({code for code in mapped if code not in faults.codes})
        if unnamed:
            raise ValueError(f"faults: GB codes {unnamed} are mapped but have no text in faults.codes")
    if status_events is not None:
        for name, status in status_events.points.items():
            p = point(name, "status_events.points")
            # The keys must be what the point decodes to: its labels, or bools, or numbers. Mixing bool and int keys
            # would collide (True == 1), so a point takes one kind only.
            for key in status.codes:
                if p.enum is not None:
                    ok = isinstance(key, str) and key in labels(p)
                elif p.type is RegType.BOOL:
                    ok = isinstance(key, bool)
                else:
                    ok = isinstance(key, int) and not isinstance(key, bool)
                if not ok:
                    raise ValueError(f"status_events.points.{name}: {key!r} is not a value the point can have")
    if entrapment is not None:
        spec = entrapment
        for name in spec.POINTS:
            point(name, "entrapment")
        door = labels(points["door"])
        if not {spec.door_closed, spec.door_open} <= door:
            raise ValueError(f"entrapment: the door point has no labels {spec.door_closed!r} and {spec.door_open!r}")
        modes = labels(points["service_mode"]) if "service_mode" in points else set()
        if not spec.quiet_modes <= modes and "service_mode" in points:
            raise ValueError(f"entrapment.quiet_modes: {sorted(spec.quiet_modes - modes)} are not service modes")
