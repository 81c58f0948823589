"""A Modbus device model as data: the register map file shared by the collector and the simulator.

The file says where each value lives (table, address), how it is encoded (type, word order, scale), which values
are legal (range, code table) and which registers carry faults. The collector decodes with it; the simulator
encodes with it; so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from facmon.model import DeviceKind, Value

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
    description: str = ""

    @property
    def width(self) -> int:
        return _WIDTH.get(self.type, 1)


class FaultSpec(_Strict):
    # Register holding the controller's current fault code; 0 means no fault.
    code_point: str
    codes: dict[int, str]
    # Boolean points that are faults in themselves (e.g. the controller's entrapment flag).
    flags: dict[str, str] = Field(default_factory=dict)


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

    @model_validator(mode="after")
    def _consistent(self) -> ModbusDriver:
        names = [p.name for p in self.points]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"point names used twice: {sorted(dupes)}")
        used: dict[tuple[str, int], str] = {}
        for p in self.points:
            if p.enum is not None and p.enum not in self.enums:
                raise ValueError(f"point {p.name}: unknown enum {p.enum!r}")
            for reg in range(p.address, p.address + p.width):
                if (p.table, reg) in used:
                    raise ValueError(f"point {p.name} overlaps {used[(p.table, reg)]} at {p.table} {reg}")
                used[(p.table, reg)] = p.name
        if self.faults:
            for name in [self.faults.code_point, *self.faults.flags]:
                if name not in names:
                    raise ValueError(f"faults refer to unknown point {name!r}")
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
        lo = p.min if p.min is not None else _LIMITS[p.type][0]
        hi = p.max if p.max is not None else _LIMITS[p.type][1]
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
        """The register words for a point's value (a label for enum points, engineering units otherwise)."""
        p = self.by_name[name]
        if p.enum is not None and isinstance(value, str):
            codes = {label: code for code, label in self.enums[p.enum].items()}
            if value not in codes:
                raise ValueError(f"{name}: {value!r} is not one of {sorted(codes)}")
            raw = codes[value]
        elif isinstance(value, bool) or p.scale == 1.0:
            raw = int(value)
        else:
            raw = round(float(value) / p.scale)
        lo, hi = _LIMITS[p.type]
        if not lo <= raw <= hi:
            raise ValueError(f"{name}: {value!r} does not fit {p.type.value}")
        raw &= (1 << (16 * p.width)) - 1
        if p.width == 1:
            return [raw]
        hi_word, lo_word = raw >> 16, raw & 0xFFFF
        return [hi_word, lo_word] if self.word_order == "big" else [lo_word, hi_word]

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
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return ModbusDriver.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise DriverError(f"{path}: {exc}") from exc
    except ValidationError as exc:
        lines = [f"{path}: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise DriverError("\n".join(lines)) from exc
