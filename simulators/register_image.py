"""A simulated device's point values and the register words that encode them, laid out by its driver file.

The simulator sets values by point name; the image keeps the words a collector will read in step, including the
shared status words of bit-field points (each write changes only its own bits). While a device sends garbage,
chosen points carry a value no legal reading can have, laid over the words at the moment they are served, so the
device's own model keeps running underneath and the garbage ends cleanly.
"""

from __future__ import annotations

from collectors.modbus.driver import ModbusDriver
from collectors.modbus.registers import Table
from facmon.kernel.model import Value


class RegisterImage:
    def __init__(self, driver: ModbusDriver) -> None:
        self.driver = driver
        self._values: dict[str, Value] = {}
        self._words: dict[Table, dict[int, int]] = {"holding": {}, "input": {}}
        # Point -> the impossible raw value it serves while garbage is on.
        self._garbage: dict[str, int] = {}

    def publish(self, name: str, value: Value) -> None:
        """Set a point's value and its registers (raises ValueError for a value its registers cannot hold)."""
        point = self.driver.by_name[name]
        self.driver.write(self._words[point.table], name, value)
        if point.enum is not None and isinstance(value, int) and not isinstance(value, bool):
            value = self.driver.enums[point.enum].get(value, value)
        elif point.scale != 1.0 and not isinstance(value, (bool, str)):
            # Hold what a reader decodes from the registers, not a finer value it can never see.
            value = round(value / point.scale) * point.scale
        self._values[name] = value

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def value(self, name: str) -> Value:
        if name not in self._values:
            raise KeyError(f"{self.driver.model} has no point {name!r}; points: {sorted(self._values)}")
        return self._values[name]

    def get(self, name: str) -> Value | None:
        return self._values.get(name)

    def snapshot(self) -> dict[str, Value]:
        """The values as the device means them (garbage is on the wire only)."""
        return dict(self._values)

    def registers(self, table: Table) -> dict[int, int]:
        """The words of one table as served now."""
        words = self._words[table]
        garbage = {name: raw for name, raw in self._garbage.items() if self.driver.by_name[name].table == table}
        if not garbage:
            return words
        served = dict(words)
        for name, raw in garbage.items():
            self.driver.write_raw(served, self.driver.by_name[name], raw)
        return served

    def garbage_points(self) -> list[str]:
        """Points that can carry an impossible value, in file order."""
        return [p.name for p in self.driver.points if self.driver.impossible_raw(p.name) is not None]

    def garble(self, names: list[str]) -> None:
        for name in names:
            raw = self.driver.impossible_raw(name)
            if raw is None:
                raise ValueError(f"{self.driver.model}: every value {name} can hold is legal")
            self._garbage[name] = raw

    def ungarble(self) -> None:
        self._garbage.clear()

    @property
    def garbled(self) -> list[str]:
        return list(self._garbage)
