"""What an elevator controller's registers mean: one Reading per poll, and faults, status events and derived
entrapment on their edges.

The controller's driver file (`collectors.modbus.driver`) decodes each block of the poll; a value it refuses is left
out of the Reading and handed back as a refusal with the block's words. The values decoded go to
`DeviceConditions`, whose changes become Events. Polled by `collectors.modbus.poller`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from collectors.modbus.conditions import DeviceConditions
from collectors.modbus.driver import ModbusDriver
from collectors.modbus.interpreter import Frame, Interpretation, Refusal
from collectors.modbus.registers import Block
from facmon.kernel.clock import utc
from facmon.kernel.model import DeviceRef, Event, Reading, Value


class ElevatorInterpreter:
    def __init__(self, driver: ModbusDriver) -> None:
        self.driver = driver
        self._conditions = DeviceConditions(driver)

    @property
    def blocks(self) -> Sequence[Block]:
        return self.driver.blocks

    def interpret(self, ref: DeviceRef, frame: Frame, ts: datetime, now_s: float) -> Interpretation:
        meaning = Interpretation()
        values: dict[str, Value] = {}
        for block, registers in frame:
            values.update(self._decode(block, registers, meaning.refused))
        # Built without validation: the driver decoded every value to a bool, int, float or str, `ref` is a checked
        # DeviceRef, and `utc` is what validation would do to the time (about half the cost of a Reading).
        meaning.messages.append(Reading.model_construct(ref=ref, ts=utc(ts), values=values))
        for change in self._conditions.update(values, now_s):
            event = Event(ref=ref, ts=ts, type=change.type, code=change.code, message=change.message, data=change.data)
            meaning.messages.append(event)
        return meaning

    def _decode(self, block: Block, registers: list[int], refused: list[Refusal]) -> dict[str, Value]:
        values, problems = self.driver.decode_block(block, registers)
        if len(values) == len(block.points):
            return values
        words = " ".join(map(str, registers))
        for point in block.points:
            if point.name not in values:
                reason = next((p for p in problems if p.startswith(f"{point.name} (")), f"{point.name}: not decodable")
                refused.append(Refusal(point.name, reason, f"{block.table} {block.start}+{block.count}: {words}"))
        return values
