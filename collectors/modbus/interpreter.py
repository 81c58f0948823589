"""What a family of Modbus devices gives the poller: which registers to read, and what they mean.

The poller (`collectors.modbus.poller`) is the same for every family: the link, the schedule, comm status, metrics
and refused values are its own. A family's `Interpreter` (one per device, it may remember what it saw) says which
blocks one poll reads and turns the words read into the Readings and Events they imply, and the values it refuses.
Families: elevator controllers (`collectors.modbus.elevator_interpreter`) and fire alarm panels
(`collectors.modbus.fire_interpreter`); `gateway.families` says which device kind is which.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from collectors.modbus.registers import Block
from facmon.kernel.model import DeviceRef, Event, Reading

# One poll's words: every block the interpreter asked for, with the registers read for it, in its order.
Frame = Sequence[tuple[Block, list[int]]]


@dataclass(frozen=True)
class Refusal:
    """A value that makes no sense: left out, counted every poll, dead-lettered when it starts or its reason changes."""

    where: str  # the point (or point table cell) it belongs to
    reason: str
    payload: str  # the words it came in, for the dead letter


@dataclass
class Interpretation:
    """What one poll means: the Readings and Events to emit, in order, and the values refused."""

    messages: list[Reading | Event] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


class Interpreter(Protocol):
    @property
    def blocks(self) -> Sequence[Block]:
        """The reads of one poll, in order."""
        ...

    def interpret(self, ref: DeviceRef, frame: Frame, ts: datetime, now_s: float) -> Interpretation:
        """One poll's words, read at `ts` (wall clock) and `now_s` (monotonic seconds), as messages and refusals."""
        ...
