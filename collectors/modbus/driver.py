"""A Modbus device model as data: the register map file shared by the collector and the simulator.

The file says where each value lives (table, address, or bits of a shared status word), how it is encoded (type,
word order, scale), which values are legal (range, code table) and which registers carry faults (a code register,
vendor codes mapped to GB codes, fault bit words, flags). What values mean over time (status events, entrapment
thresholds) is in sections of the same file, see `event_specs`. The collector decodes with it; the simulator
encodes with it; so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from collectors.modbus.event_specs import EntrapmentSpec, FaultSpec, StatusEvents, check_event_specs
from collectors.modbus.registers import Block, Point, RegType, coalesce
from facmon.kernel.datafile import load_model
from facmon.kernel.model import DeviceKind, Value

# Blocks remembered by identity per driver: its own, and a few a caller made (a bound, should one make them anew).
_PLANS_BY_ID = 64


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
        check_event_specs(
            self.points, self.enums, faults=self.faults, status_events=self.status_events, entrapment=self.entrapment
        )
        return self

    @cached_property
    def by_name(self) -> dict[str, Point]:
        return {p.name: p for p in self.points}

    @cached_property
    def blocks(self) -> list[Block]:
        return coalesce(self.points, self.max_block, self.max_gap)

    # -- decoding (collector side) --------------------------------------------------------------------------

    def decode_block(self, block: Block, registers: list[int]) -> tuple[dict[str, Value], list[str]]:
        """Values of every point in the block, and a problem line for each value that is not legal.

        Every poll decodes every point, so each point's decoding is worked out once (`_Decoding`) and then only
        applied; a value out of range goes the long way (`_raw`, `from_raw`), which says what is wrong with it."""
        if len(registers) != block.count:
            return {}, [f"block {block.table} {block.start}+{block.count}: got {len(registers)} registers"]
        values: dict[str, Value] = {}
        problems: list[str] = []
        for d in self._decodings(block):
            word = registers[d.offset]
            if d.bit is not None:
                raw = (word & d.mask) >> d.bit
            elif d.width == 1:
                raw = word - 0x10000 if d.signed and word >= 0x8000 else word
            else:
                raw = self._raw(d.point, registers[d.offset : d.offset + 2])
            if not d.lo <= raw <= d.hi or (d.labels is not None and raw not in d.labels):
                try:
                    values[d.name] = self.from_raw(d.point, raw)
                except ValueError as exc:
                    problems.append(f"{d.name} ({d.point.table} {d.point.address}): {exc}")
                continue
            if d.labels is not None:
                values[d.name] = d.labels[raw]
            elif d.boolean:
                values[d.name] = bool(raw)
            else:
                values[d.name] = raw * d.scale if d.scale != 1.0 else raw
        return values, problems

    def _decodings(self, block: Block) -> list[_Decoding]:
        # By the block's identity first (a poller reads the driver's own blocks, poll after poll): hashing a block
        # hashes each of its points, pydantic models, which cost more than the decoding of a few of them.
        by_id = self._plans_by_id.get(id(block))
        if by_id is not None and by_id[0] is block:
            return by_id[1]
        key = (block.table, block.start, block.count, block.points)
        found = self._plans.get(key)
        if found is None:
            found = self._plans[key] = [self._decoding(p, p.address - block.start) for p in block.points]
        if len(self._plans_by_id) < _PLANS_BY_ID:
            self._plans_by_id[id(block)] = (block, found)  # the block held, so its id is not another's meanwhile
        return found

    @cached_property
    def _plans(self) -> dict[tuple[object, ...], list[_Decoding]]:
        return {}

    @cached_property
    def _plans_by_id(self) -> dict[int, tuple[Block, list[_Decoding]]]:
        return {}

    def _decoding(self, p: Point, offset: int) -> _Decoding:
        return _Decoding(
            point=p,
            name=p.name,
            offset=offset,
            width=p.width,
            bit=p.bit,
            mask=p.mask,
            signed=p.type in (RegType.INT16, RegType.INT32),
            lo=p.min if p.min is not None else p.limits[0],
            hi=p.max if p.max is not None else p.limits[1],
            boolean=p.type is RegType.BOOL,
            labels=self.enums[p.enum] if p.enum is not None and p.type is not RegType.BOOL else None,
            scale=p.scale,
        )

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


@dataclass(frozen=True, slots=True)
class _Decoding:
    """How one point of a block is decoded, worked out once from its `Point` (see `ModbusDriver.from_raw`)."""

    point: Point
    name: str
    offset: int  # of its first register in the block
    width: int
    bit: int | None
    mask: int
    signed: bool
    lo: int  # legal raw range
    hi: int
    boolean: bool
    labels: dict[int, str] | None  # its enum's code table
    scale: float


class DriverError(ValueError):
    pass


def load_driver(path: Path) -> ModbusDriver:
    return load_model(path, ModbusDriver, DriverError)
