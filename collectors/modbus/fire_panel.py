"""A fire alarm panel model as data: panel registers, and a point table of one status word and one type code for
every loop address.

The panel registers use the ordinary `Point` format. The point table is declared by its shape (loops, addresses per
loop, where the status and type tables start) and by what the words mean: which bit is which flag, which status
means "no device here", which type codes exist and which flags each type can report. The collector decodes with it,
the simulator encodes with it; the reads are coalesced into the same `Block`s as any Modbus driver's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from collectors.modbus.driver import DriverError, ModbusDriver
from collectors.modbus.registers import Block, Point, RegType, Table, coalesce
from facmon.kernel.datafile import load_model
from facmon.kernel.model import DeviceKind, Value


class Flag(StrEnum):
    FIRE = "fire"
    FAULT = "fault"
    DISABLED = "disabled"
    SUPERVISORY = "supervisory"
    ACTIVE = "active"  # an output module started (启动)
    FEEDBACK = "feedback"  # the started equipment answers back (反馈)
    DELAY = "delay"  # counting down before a linkage start (延时)


# What a point is in, as faults to raise and clear; and flags that are status changes only.
CONDITIONS = ("fire", "supervisory", "fault", "disabled")
STATUS_FLAGS = (Flag.ACTIVE, Flag.FEEDBACK)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PointType(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    # "supervisory": the fire bit of this type (water flow, valve, pressure) is a supervisory signal.
    fire_is: Literal["fire", "supervisory"] = "fire"
    flags: frozenset[Flag]


class PointTable(_Strict):
    table: Table = "holding"
    loops: int = Field(ge=1, le=16)
    addresses: int = Field(ge=1, le=255)
    status_base: int = Field(ge=0, le=0xFFFF)
    type_base: int = Field(ge=0, le=0xFFFF)
    loop_stride: int = Field(ge=1, le=0xFFFF)
    not_present: int = Field(default=0xFFFF, ge=0, le=0xFFFF)
    bits: dict[Flag, int]
    exclusive: list[tuple[Flag, Flag]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> PointTable:
        if self.loop_stride < self.addresses:
            raise ValueError(f"loop_stride {self.loop_stride} is shorter than a loop of {self.addresses} addresses")
        span = (self.loops - 1) * self.loop_stride + self.addresses
        starts = sorted((self.status_base, self.type_base))
        if starts[0] + span > starts[1] or starts[1] + span > 0x10000:
            raise ValueError("the status and type tables overlap or run past register 65535")
        positions = list(self.bits.values())
        if any(not 0 <= b <= 15 for b in positions) or len(set(positions)) != len(positions):
            raise ValueError(f"status bits must be distinct positions 0..15, got {dict(self.bits)}")
        if self.not_present & ~self.defined_mask == 0:
            # Otherwise "no device" would also be a legal combination of flags.
            raise ValueError(f"not_present 0x{self.not_present:04X} must set a bit no flag uses")
        for pair in self.exclusive:
            missing = [f.value for f in pair if f not in self.bits]
            if missing:
                raise ValueError(f"exclusive names flags without a bit: {missing}")
        return self

    @property
    def defined_mask(self) -> int:
        return sum(1 << b for b in self.bits.values())

    def ids(self) -> Iterator[str]:
        for loop in range(1, self.loops + 1):
            for address in range(1, self.addresses + 1):
                yield point_id(loop, address)

    def offset(self, point: str) -> int:
        loop, address = parse_point(point)
        if not (1 <= loop <= self.loops and 1 <= address <= self.addresses):
            raise KeyError(f"no point {point!r}: loops 1..{self.loops}, addresses 1..{self.addresses}")
        return (loop - 1) * self.loop_stride + address - 1

    def status_address(self, point: str) -> int:
        return self.status_base + self.offset(point)

    def type_address(self, point: str) -> int:
        return self.type_base + self.offset(point)


def point_id(loop: int, address: int) -> str:
    return f"{loop}-{address:03d}"


def parse_point(point: str) -> tuple[int, int]:
    loop, sep, address = point.partition("-")
    if not (sep and loop.isdigit() and address.isdigit() and len(address) == 3):
        raise KeyError(f"{point!r} is not a point name such as '1-023' (loop-address)")
    return int(loop), int(address)


class PointError(ValueError):
    """A point's registers that make no sense; the message names the point."""


@dataclass(frozen=True)
class PointStatus:
    """One present point as the panel reports it, with the fire bit classified by the point's type."""

    point: str
    type: PointType
    flags: frozenset[Flag]

    @property
    def fire(self) -> bool:
        return Flag.FIRE in self.flags and self.type.fire_is == "fire"

    @property
    def supervisory(self) -> bool:
        return Flag.SUPERVISORY in self.flags or (Flag.FIRE in self.flags and self.type.fire_is == "supervisory")

    def has(self, flag: Flag) -> bool:
        return flag in self.flags

    def conditions(self) -> dict[str, bool]:
        return {
            "fire": self.fire,
            "supervisory": self.supervisory,
            "fault": self.has(Flag.FAULT),
            "disabled": self.has(Flag.DISABLED),
        }

    @property
    def intact(self) -> bool:
        """Counts towards the intact rate: present, and neither in fault nor disabled."""
        return not (self.has(Flag.FAULT) or self.has(Flag.DISABLED))

    @property
    def state(self) -> str:
        """The one word a dashboard shows: the most urgent of what the point is in."""
        for condition, on in self.conditions().items():
            if on:
                return condition
        if self.flags & {Flag.ACTIVE, Flag.FEEDBACK, Flag.DELAY}:
            return "active"
        return "normal"

    def values(self) -> dict[str, Value]:
        return {
            "state": self.state,
            "type": self.type.name,
            **self.conditions(),
            **{f.value: self.has(f) for f in (Flag.ACTIVE, Flag.FEEDBACK, Flag.DELAY)},
        }


@dataclass(frozen=True)
class Rejected:
    """A value that is not passed on: which point or panel value, why, and the registers it came from (JSON)."""

    where: str
    reason: str
    payload: str
    # A point of the point table ("1-023"), not a panel value.
    point: bool


@dataclass(frozen=True)
class PanelFrame:
    """One read of the whole panel. `points` holds every address whose registers made sense: its status, or None
    when no device is there; the addresses in `rejected` are missing from it."""

    panel: dict[str, Value]
    points: dict[str, PointStatus | None]
    rejected: list[Rejected]


class FirePanelDriver(_Strict):
    model: str
    kind: Literal[DeviceKind.FIRE_PANEL] = DeviceKind.FIRE_PANEL
    description: str = ""
    max_block: int = Field(default=125, ge=1, le=125)
    max_gap: int = Field(default=10, ge=0, le=125)
    enums: dict[str, dict[int, str]] = Field(default_factory=dict)
    panel: list[Point]
    # Bool panel points that are faults in themselves, with their words.
    panel_faults: dict[str, str] = Field(default_factory=dict)
    point_table: PointTable
    point_types: dict[int, PointType] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> FirePanelDriver:
        panel = self.panel_driver  # checks the panel points among themselves
        for name in self.panel_faults:
            if name not in panel.by_name or panel.by_name[name].type is not RegType.BOOL:
                raise ValueError(f"panel_faults: {name!r} is not a bool panel point")
        table = self.point_table
        for p in self.panel:
            if p.table == table.table:
                for base in (table.status_base, table.type_base):
                    span = (table.loops - 1) * table.loop_stride + table.addresses
                    if base <= p.address + p.width - 1 and p.address < base + span:
                        raise ValueError(f"panel point {p.name} overlaps the point table at {p.table} {p.address}")
        names = [t.name for t in self.point_types.values()]
        if len(set(names)) != len(names):
            raise ValueError(f"point type names used twice: {sorted(names)}")
        for code, kind in self.point_types.items():
            if not 0 <= code <= 0xFFFF:
                raise ValueError(f"point type code {code} is not a register value")
            unmapped = sorted(f.value for f in kind.flags - set(table.bits))
            if unmapped:
                raise ValueError(f"point type {kind.name}: flags without a status bit: {unmapped}")
        return self

    @cached_property
    def panel_driver(self) -> ModbusDriver:
        """The panel registers as an ordinary Modbus driver (decoding, ranges, code tables)."""
        return ModbusDriver(model=self.model, kind=self.kind, enums=self.enums, points=self.panel)

    @cached_property
    def by_type_name(self) -> dict[str, tuple[int, PointType]]:
        return {t.name: (code, t) for code, t in self.point_types.items()}

    @cached_property
    def blocks(self) -> list[Block]:
        """The reads of one poll: panel and point table, coalesced (at most `max_block` registers each)."""
        table = self.point_table
        cells = [
            Point(name=f"{what}_{p.replace('-', '_')}", table=table.table, address=address(p), type=RegType.UINT16)
            for what, address in (("status", table.status_address), ("type", table.type_address))
            for p in table.ids()
        ]
        return coalesce([*self.panel, *cells], self.max_block, self.max_gap)

    # -- decoding (collector side) --------------------------------------------------------------------------

    def decode(self, image: Mapping[tuple[Table, int], int]) -> PanelFrame:
        """Everything one poll read, `image` holding the words of every block by (table, address)."""
        panel: dict[str, Value] = {}
        rejected: list[Rejected] = []
        for p in self.panel:
            words = [image[(p.table, p.address + i)] for i in range(p.width)]
            values, problems = self.panel_driver.decode_block(Block(p.table, p.address, p.width, (p,)), words)
            panel.update(values)
            for problem in problems:
                registers = {str(p.address + i): w for i, w in enumerate(words)}
                rejected.append(Rejected(p.name, f"panel {problem}", _payload(p.name, p.table, registers), False))
        points: dict[str, PointStatus | None] = {}
        table = self.point_table
        for point in table.ids():
            status = image[(table.table, table.status_address(point))]
            code = image[(table.table, table.type_address(point))]
            try:
                points[point] = self.decode_point(point, status, code)
            except PointError as exc:
                registers = {str(table.status_address(point)): status, str(table.type_address(point)): code}
                rejected.append(Rejected(point, str(exc), _payload(point, table.table, registers), True))
        return PanelFrame(panel, points, rejected)

    def decode_point(self, point: str, status: int, type_code: int) -> PointStatus | None:
        """The point's status, None when no device is there; PointError naming the point when the words are bad."""
        table = self.point_table
        if status == table.not_present:
            return None
        undefined = status & ~table.defined_mask
        if undefined:
            raise PointError(f"point {point}: undefined status bits 0x{undefined:04X} set (status 0x{status:04X})")
        kind = self.point_types.get(type_code)
        if kind is None:
            raise PointError(f"point {point}: unknown point type code {type_code}")
        flags = frozenset(flag for flag, bit in table.bits.items() if status >> bit & 1)
        foreign = sorted(f.value for f in flags - kind.flags)
        if foreign:
            raise PointError(
                f"point {point}: a {kind.label} cannot report {', '.join(foreign)} (status 0x{status:04X})"
            )
        for a, b in table.exclusive:
            if {a, b} <= flags:
                raise PointError(f"point {point}: {a.value} and {b.value} together (status 0x{status:04X})")
        return PointStatus(point, kind, flags)

    # -- encoding (simulator side) --------------------------------------------------------------------------

    def status_word(self, flags: Iterable[Flag]) -> int:
        return sum(1 << self.point_table.bits[f] for f in set(flags))

    def type_code(self, name: str) -> int:
        if name not in self.by_type_name:
            raise KeyError(f"{self.model} has no point type {name!r}; types: {sorted(self.by_type_name)}")
        return self.by_type_name[name][0]

    def empty_image(self) -> dict[tuple[Table, int], int]:
        """Every register a poll reads, as a panel with no device on any loop answers: zeros, statuses not present."""
        image = {(b.table, b.start + i): 0 for b in self.blocks for i in range(b.count)}
        table = self.point_table
        for point in table.ids():
            image[(table.table, table.status_address(point))] = table.not_present
        return image


def _payload(where: str, table: Table, registers: dict[str, int]) -> str:
    return json.dumps({"point": where, "table": table, "registers": registers})


def load_fire_panel_driver(path: Path) -> FirePanelDriver:
    return load_model(path, FirePanelDriver, DriverError)
