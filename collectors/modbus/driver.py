"""A Modbus device model as data: the register map file shared by the collector and the simulator.

The file says where each value lives (table, address, or bits of a shared status word), how it is encoded (type,
word order, scale), which values are legal (range, code table) and which registers carry faults (a code register,
vendor codes mapped to GB codes, fault bit words, flags). What values mean over time (status events, entrapment
thresholds) is in sections of the same file, see `event_specs`. The collector decodes with it; the simulator
encodes with it; so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from collectors.modbus.event_specs import EntrapmentSpec, FaultBits, StatusEvents, check_event_specs
from facmon.kernel.datafile import load_model
from facmon.kernel.model import DeviceKind, Value

Table = Literal["holding", "input"]


class RegType(StrEnum):
    UINT16 = "uint16"
    INT16 = "int16"
    UINT32 = "uint32"
    INT32 = "int32"
    BOOL = "bool"  # one register, 0 or 1


_WIDTH = {RegType.UINT32: 2, RegType.INT32: 2}
_LIMITS = {
    RegType.UINT16: (0, 0xFFFF),
    RegType.INT16: (-0x8000, 0x7FFF),
    RegType.UINT32: (0, 0xFFFFFFFF),
    RegType.INT32: (-0x80000000, 0x7FFFFFFF),
    RegType.BOOL: (0, 1),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Point(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    table: Table = "holding"
    address: int = Field(ge=0, le=0xFFFF)
    type: RegType
    scale: float = 1.0
    unit: str = ""
    # Name of a code table in the driver's `enums`: the value is reported as its label.
    enum: str | None = None
    # Legal raw range (before scaling); a value outside it is rejected, not passed on.
    min: int | None = None
    max: int | None = None
    # A bit field: `bits` bits from bit `bit` (0 = least significant) of the register, so several points can share
    # one status word. A bool is one bit wide; a uint16 field is a small number or an enum code.
    bit: int | None = Field(default=None, ge=0, le=15)
    bits: int = Field(default=1, ge=1, le=16)
    description: str = ""

    @model_validator(mode="after")
    def _field_fits(self) -> Point:
        if self.bit is None:
            if self.bits != 1:
                raise ValueError(f"point {self.name}: `bits` needs `bit`")
        elif self.type not in (RegType.BOOL, RegType.UINT16):
            raise ValueError(f"point {self.name}: a bit field is bool or uint16, not {self.type.value}")
        elif self.type is RegType.BOOL and self.bits != 1:
            raise ValueError(f"point {self.name}: a bool bit field is one bit wide")
        elif self.bit + self.bits > 16:
            raise ValueError(f"point {self.name}: bits {self.bit}..{self.bit + self.bits - 1} do not fit a register")
        return self

    @property
    def width(self) -> int:
        return _WIDTH.get(self.type, 1)

    @property
    def mask(self) -> int:
        """The bits of its register(s) the point occupies: all of them unless it is a bit field."""
        return 0xFFFF if self.bit is None else ((1 << self.bits) - 1) << self.bit

    @property
    def limits(self) -> tuple[int, int]:
        """The raw values its type allows (before min/max); a bool allows 0 and 1."""
        return _LIMITS[self.type] if self.bit is None else (0, (1 << self.bits) - 1)

    @property
    def span(self) -> tuple[int, int]:
        """The raw values its registers (or bits) can hold at all, legal or not."""
        if self.bit is not None or self.type in (RegType.INT16, RegType.INT32):
            return self.limits
        return 0, (1 << (16 * self.width)) - 1


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


class ModbusDriver(_Strict):
    model: str
    kind: DeviceKind
    description: str = ""
    # Order of the two 16-bit words of a 32-bit value: "big" = high word at the lower address.
    word_order: Literal["big", "little"] = "big"
    # Largest block read in one request, and the widest gap of unused registers worth reading through to save
    # a request.
    max_block: int = Field(default=100, ge=1, le=125)
    max_gap: int = Field(default=10, ge=0, le=100)
    enums: dict[str, dict[int, str]] = Field(default_factory=dict)
    points: list[Point]
    faults: FaultSpec | None = None
    # Status events (GB/T 24476 codes 40-47) on changes of a service mode or power source point.
    status_events: StatusEvents | None = None
    # Entrapment derived from the car's state (passenger, door, door zone, moving), with its thresholds.
    entrapment: EntrapmentSpec | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModbusDriver:
        names = [p.name for p in self.points]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"point names used twice: {sorted(dupes)}")
        # Bits of each register already taken, and by whom: bit fields of one status word may share it.
        used: dict[tuple[str, int], list[tuple[int, str]]] = {}
        for p in self.points:
            if p.enum is not None and p.enum not in self.enums:
                raise ValueError(f"point {p.name}: unknown enum {p.enum!r}")
            for reg in range(p.address, p.address + p.width):
                taken = used.setdefault((p.table, reg), [])
                for mask, other in taken:
                    if mask & p.mask:
                        raise ValueError(f"point {p.name} overlaps {other} at {p.table} {reg}")
                taken.append((p.mask, p.name))
        check_event_specs(self)
        return self

    @cached_property
    def by_name(self) -> dict[str, Point]:
        return {p.name: p for p in self.points}

    @cached_property
    def blocks(self) -> list[Block]:
        return coalesce(self.points, self.max_block, self.max_gap)

    # -- decoding (collector side) --------------------------------------------------------------------------

    def decode_block(self, block: Block, registers: list[int]) -> tuple[dict[str, Value], list[str]]:
        """Values of every point in the block, and a problem line for each value that is not legal."""
        if len(registers) != block.count:
            return {}, [f"block {block.table} {block.start}+{block.count}: got {len(registers)} registers"]
        values: dict[str, Value] = {}
        problems: list[str] = []
        for p in block.points:
            offset = p.address - block.start
            raw = self._raw(p, registers[offset : offset + p.width])
            try:
                values[p.name] = self.from_raw(p, raw)
            except ValueError as exc:
                problems.append(f"{p.name} ({p.table} {p.address}): {exc}")
        return values, problems

    def _raw(self, p: Point, words: list[int]) -> int:
        if p.bit is not None:
            return (words[0] & p.mask) >> p.bit
        if p.width == 1:
            raw = words[0]
        else:
            hi, lo = (words[0], words[1]) if self.word_order == "big" else (words[1], words[0])
            raw = (hi << 16) | lo
        bits = 16 * p.width
        if p.type in (RegType.INT16, RegType.INT32) and raw >= 1 << (bits - 1):
            raw -= 1 << bits
        return raw

    def from_raw(self, p: Point, raw: int) -> Value:
        lo = p.min if p.min is not None else p.limits[0]
        hi = p.max if p.max is not None else p.limits[1]
        if not lo <= raw <= hi:
            raise ValueError(f"raw value {raw} outside {lo}..{hi}")
        if p.type is RegType.BOOL:
            return bool(raw)
        if p.enum is not None:
            table = self.enums[p.enum]
            if raw not in table:
                raise ValueError(f"raw value {raw} is not a code of {p.enum}")
            return table[raw]
        return raw * p.scale if p.scale != 1.0 else raw

    # -- encoding (simulator side) --------------------------------------------------------------------------

    def to_registers(self, name: str, value: Value) -> list[int]:
        """The register words for a point's value (a label for enum points, engineering units otherwise).

        For a bit field, the word with only its own bits set: use `write` to keep the rest of a shared word."""
        p = self.by_name[name]
        raw = self.raw_value(p, value)
        return [raw << p.bit] if p.bit is not None else self._words(p, raw)

    def raw_value(self, p: Point, value: Value) -> int:
        """The raw number for a value; ValueError if its registers cannot hold it (legal or not is not checked,
        so a simulator can serve the illegal values a faulty device sends)."""
        if p.enum is not None and isinstance(value, str):
            codes = {label: code for code, label in self.enums[p.enum].items()}
            if value not in codes:
                raise ValueError(f"{p.name}: {value!r} is not one of {sorted(codes)}")
            raw = codes[value]
        elif isinstance(value, bool) or p.scale == 1.0:
            raw = int(value)
        else:
            raw = round(float(value) / p.scale)
        lo, hi = p.limits
        if not lo <= raw <= hi:
            held = p.type.value if p.bit is None else f"{p.bits} bit(s) from bit {p.bit}"
            raise ValueError(f"{p.name}: {value!r} does not fit {held}")
        return raw

    def write(self, image: dict[int, int], name: str, value: Value) -> None:
        """Encode a point's value into a register image ({address: word} of its table)."""
        p = self.by_name[name]
        self.write_raw(image, p, self.raw_value(p, value))

    def write_raw(self, image: dict[int, int], p: Point, raw: int) -> None:
        """Put a raw number where the point lives, unchecked; a bit field keeps the other bits of its word."""
        if p.bit is not None:
            image[p.address] = (image.get(p.address, 0) & ~p.mask & 0xFFFF) | ((raw << p.bit) & p.mask)
            return
        for offset, word in enumerate(self._words(p, raw)):
            image[p.address + offset] = word

    def _words(self, p: Point, raw: int) -> list[int]:
        raw &= (1 << (16 * p.width)) - 1
        if p.width == 1:
            return [raw]
        hi_word, lo_word = raw >> 16, raw & 0xFFFF
        return [hi_word, lo_word] if self.word_order == "big" else [lo_word, hi_word]

    def impossible_raw(self, name: str) -> int | None:
        """A raw number the point's registers can hold but the collector refuses (a faulty device's garbage), or
        None when every number they can hold is legal."""
        p = self.by_name[name]
        lo, hi = p.span
        table = self.enums[p.enum] if p.enum is not None else None
        tries = [
            *([p.max + 1] if p.max is not None else []),
            *([p.min - 1] if p.min is not None else []),
            p.limits[1] + 1,
            p.limits[0] - 1,
            *(range(lo, min(hi, lo + 64) + 1) if table is not None else []),
        ]
        for raw in tries:
            if lo <= raw <= hi:
                try:
                    self.from_raw(p, raw)
                except ValueError:
                    return raw
        return None

    def fault_code(self, raw: int) -> tuple[str, str]:
        """The event code and message for a non-zero value of the fault code register."""
        faults = self.faults
        if faults is None or faults.code_map is None:
            return str(raw), self.fault_text(raw)
        vendor = f"{faults.code_prefix}{raw}"
        gb = faults.code_map.get(raw)
        if gb is None:
            return vendor, f"unknown fault code {vendor}"
        return str(gb), f"{self.fault_text(gb)} ({vendor})"

    def fault_text(self, code: int) -> str:
        if self.faults is None:
            return f"fault {code}"
        return self.faults.codes.get(code, f"unknown fault code {code}")


@dataclass(frozen=True)
class Block:
    """One read request: `count` registers of `table` from `start`, covering `points`."""

    table: Table
    start: int
    count: int
    points: tuple[Point, ...]


def coalesce(points: list[Point], max_block: int, max_gap: int) -> list[Block]:
    """Group points into as few reads as the limits allow: neighbours closer than max_gap share a request."""
    blocks: list[Block] = []
    for table in ("holding", "input"):
        run: list[Point] = []
        for p in sorted((p for p in points if p.table == table), key=lambda p: p.address):
            if run:
                start = run[0].address
                end = max(q.address + q.width for q in run)
                if p.address - end <= max_gap and p.address + p.width - start <= max_block:
                    run.append(p)
                    continue
                blocks.append(_block(table, run))
            run = [p]
        if run:
            blocks.append(_block(table, run))
    return blocks


def _block(table: Table, run: list[Point]) -> Block:
    start = run[0].address
    end = max(p.address + p.width for p in run)
    return Block(table=table, start=start, count=end - start, points=tuple(run))


class DriverError(ValueError):
    pass


def load_driver(path: Path) -> ModbusDriver:
    return load_model(path, ModbusDriver, DriverError)
