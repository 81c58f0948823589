"""The words of a Modbus register map, shared by every driver file format: which table a value is in, how it is
encoded (`Point`), and the reads that cover a set of points (`Block`, `coalesce`).

Both the elevator controller drivers (`collectors.modbus.driver`) and the fire panel drivers
(`collectors.modbus.fire_panel`) describe their registers with these, as do the sections of a driver file that say
what the values mean (`collectors.modbus.event_specs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
