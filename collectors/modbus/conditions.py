"""What a device's values mean over time: faults raised and cleared, status events, derived entrapment.

Pure and clock-driven like the rules: fed each poll's decoded values and the monotonic time, it answers with the
changes to report. The elevator interpreter (`collectors.modbus.elevator_interpreter`) turns them into Events; the
golden driver tests run the same code.

A fault may be reported by several sources at once: the fault code register, a bit of a fault word, a flag, the
entrapment detector. Each source's last known set of faults is kept (a value refused in one poll leaves its
source as it was), and what is reported is their union, on its edges: a code that one source raises while another
already has it is one condition, one fault_raised and, when every source has let go of it, one fault_cleared. So
the controller's entrapment flag and the detector's verdict open one work order, not two.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from collectors.modbus.driver import ModbusDriver
from collectors.modbus.entrapment import EntrapmentDetector
from facmon.kernel.model import EventType, Value

DERIVED = "derived"


@dataclass(frozen=True)
class Change:
    """One thing to report: an Event without its device and timestamp."""

    type: EventType
    code: str
    message: str
    data: dict[str, Value] = field(default_factory=dict)


class DeviceConditions:
    def __init__(self, driver: ModbusDriver) -> None:
        self.driver = driver
        # Faults each source reports now, code -> message.
        self._sources: dict[str, dict[str, str]] = {}
        # The union last reported, in the order the faults were raised.
        self._active: dict[str, str] = {}
        self._status: dict[str, Value] = {}
        spec = driver.entrapment
        self.detector = EntrapmentDetector(spec) if spec is not None else None

    @property
    def active(self) -> dict[str, str]:
        """The faults reported raised and not yet cleared, code -> message."""
        return dict(self._active)

    def update(self, values: Mapping[str, Value], now_s: float) -> list[Change]:
        """The changes one poll's values imply: cleared faults first, then raised ones, then status events."""
        self._read_sources(values, now_s)
        union: dict[str, str] = {}
        for found in self._sources.values():
            for code, message in found.items():
                union.setdefault(code, message)
        changes = [
            Change(EventType.FAULT_CLEARED, code, msg) for code, msg in self._active.items() if code not in union
        ]
        raised = [Change(EventType.FAULT_RAISED, code, msg) for code, msg in union.items() if code not in self._active]
        self._active = {code: msg for code, msg in self._active.items() if code in union}
        self._active.update((c.code, c.message) for c in raised)
        return [*changes, *raised, *self._status_changes(values)]

    def _read_sources(self, values: Mapping[str, Value], now_s: float) -> None:
        faults = self.driver.faults
        if faults is not None:
            if faults.code_point is not None:
                code = values.get(faults.code_point)
                # A code refused by its range check is absent: the last legal one stands.
                if isinstance(code, int) and not isinstance(code, bool):
                    self._sources[faults.code_point] = dict([self.driver.fault_code(code)]) if code else {}
            for word in faults.bits:
                bits = values.get(word.point)
                if isinstance(bits, int) and not isinstance(bits, bool):
                    self._sources[word.point] = dict(self._bit_faults(word.point, word.codes, bits))
            for point, message in faults.flags.items():
                flag = values.get(point)
                if isinstance(flag, bool):
                    self._sources[point] = {point: message} if flag else {}
        if self.detector is not None:
            trapped = self.detector.update(values, now_s)
            self._sources[DERIVED] = {self.detector.spec.code: self.detector.reason} if trapped else {}

    def _bit_faults(self, point: str, codes: dict[int, int], word: int) -> list[tuple[str, str]]:
        found = []
        for bit in range(16):
            if not word >> bit & 1:
                continue
            gb = codes.get(bit)
            if gb is None:
                # A bit the driver file does not name: still a fault the controller reports, so it is not dropped.
                found.append((f"{point}.{bit}", f"unknown fault bit {bit} of {point}"))
            else:
                found.append((str(gb), self.driver.fault_text(gb)))
        return found

    def _status_changes(self, values: Mapping[str, Value]) -> list[Change]:
        spec = self.driver.status_events
        if spec is None:
            return []
        changes = []
        for point, status in spec.points.items():
            if point not in values:
                continue
            value, first = values[point], point not in self._status
            if not first and self._status[point] == value:
                continue
            self._status[point] = value
            code = spec.code(point, value)
            if code is None or (first and value == status.rest):
                continue
            # As text, and under names of their own: event details become InfluxDB fields, where `point` is a tag
            # and one field name must keep one type across every kind of device.
            details: dict[str, Value] = {"status_point": point, "status_value": str(value)}
            changes.append(Change(EventType.STATUS, str(code), spec.texts[code], details))
        return changes
