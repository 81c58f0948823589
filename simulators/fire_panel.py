"""A simulated fire alarm panel: a Modbus TCP unit whose panel registers and point table follow the driver file.

The panel carries a seeded, realistic population: every loop mostly photoelectric smoke detectors, with heat
detectors, manual call points, hydrant buttons, input modules (water-flow indicators, signal valves, alarm valves,
pressure switches) and output modules (pumps, fans, shutters, sounders), at consecutive addresses with a few gaps.
A seed always gives the same panel. Points change only when told to (scenario steps or runtime commands), as a
panel does: nothing in it moves on its own.
"""

from __future__ import annotations

import random
from types import TracebackType

import structlog

from collectors.modbus.fire_panel import FirePanelDriver, Flag, PointType, point_id
from collectors.modbus.registers import RegType, Table
from facmon.kernel.model import Value
from simulators.endpoint import ModbusEndpoint
from simulators.steps import (
    GarbageStep,
    GarbageStopStep,
    LinkDropStep,
    LinkRestoreStep,
    PanelStep,
    PointState,
    PointStep,
    ResponseDelayStep,
    SetStep,
    Step,
)

log = structlog.get_logger(__name__)

# What one loop of a residential tower carries besides smoke detectors, which take the remaining addresses.
LOOP_MIX = {
    "heat_detector": 8,
    "manual_call_point": 8,
    "hydrant_button": 6,
    "water_flow_indicator": 2,
    "signal_valve": 2,
    "alarm_valve": 1,
    "pressure_switch": 1,
    "fire_pump": 1,
    "sprinkler_pump": 1,
    "smoke_fan": 2,
    "pressurisation_fan": 1,
    "shutter_controller": 2,
    "sounder_strobe": 4,
}
FILLER = "smoke_detector"
_STATE_FLAG = {
    "fire": Flag.FIRE,
    "fault": Flag.FAULT,
    "disabled": Flag.DISABLED,
    "supervisory": Flag.SUPERVISORY,
    "active": Flag.ACTIVE,
}
_ACTIONS = (
    PointStep,
    PanelStep,
    SetStep,
    LinkDropStep,
    LinkRestoreStep,
    ResponseDelayStep,
    GarbageStep,
    GarbageStopStep,
)


class FirePanelSimulator:
    def __init__(
        self,
        driver: FirePanelDriver,
        *,
        host: str = "127.0.0.1",
        port: int,
        unit: int = 1,
        seed: int = 0,
        device_id: str = "",
    ) -> None:
        self.driver = driver
        self.device_id = device_id or f"{host}:{port}/{unit}"
        self.host = host
        self.port = port
        self.unit = unit
        self._rng = random.Random(seed)
        table = driver.point_table
        self._table: Table = table.table
        # The configured population: point -> type code. Points leave it only for a while ("absent").
        self._types: dict[str, int] = self._populate()
        self._flags: dict[str, set[Flag]] = {p: set() for p in self._types}
        self._absent: set[str] = set()
        self._garbage: list[tuple[str, bool]] = []  # (point, True: undefined bit / False: unknown type code)
        self._words: dict[Table, dict[int, int]] = {"holding": {}, "input": {}}
        for (t, address), word in driver.empty_image().items():
            self._words[t][address] = word
        self._delay_s = 0.0
        self._endpoint: ModbusEndpoint | None = None
        self._owns_endpoint = False
        self._started = False
        for p in driver.panel:
            self._write_panel(p.name, False if p.type is RegType.BOOL else 0)
        if "firmware" in driver.panel_driver.by_name:
            self._write_panel("firmware", 120)
        for point in self._types:
            self._write_point(point)
        self._count()

    def _populate(self) -> dict[str, int]:
        rng, table, driver = self._rng, self.driver.point_table, self.driver
        filler = FILLER if FILLER in driver.by_type_name else next(iter(driver.by_type_name))
        population: dict[str, int] = {}
        for loop in range(1, table.loops + 1):
            hi = max(1, table.addresses - 4)
            count = rng.randint(min(hi, 110), hi)
            gaps = rng.randint(0, min(3, table.addresses - count))
            addresses = sorted(rng.sample(range(1, count + gaps + 1), count))
            # The larger groups vary a little from loop to loop; every loop keeps at least one of each.
            mix = {
                name: rng.randint(n - n // 4, n + n // 4) for name, n in LOOP_MIX.items() if name in driver.by_type_name
            }
            kinds = [name for name, n in mix.items() for _ in range(n)][:count]
            kinds += [filler] * (count - len(kinds))
            rng.shuffle(kinds)
            for address, kind in zip(addresses, kinds, strict=True):
                population[point_id(loop, address)] = driver.type_code(kind)
        return population

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def attach(self, endpoint: ModbusEndpoint) -> None:
        """Answer through a listener shared with other units (a gateway with several devices behind it)."""
        if self._started:
            raise RuntimeError("attach before start")
        self._endpoint, self._owns_endpoint = endpoint, False

    async def start(self) -> None:
        if self._started:
            return
        if self._endpoint is None:
            self._endpoint, self._owns_endpoint = ModbusEndpoint(self.host, self.port, [self]), True
        await self._endpoint.start()
        self._started = True

    async def stop(self) -> None:
        self._started = False
        if self._owns_endpoint and self._endpoint is not None:
            await self._endpoint.stop()

    async def __aenter__(self) -> FirePanelSimulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def answering(self) -> bool:
        return self._endpoint is not None and self._endpoint.answering(self.unit)

    # -- scenario steps and runtime commands --------------------------------------------------------------------

    def problem(self, step: Step) -> str | None:
        if not isinstance(step, _ACTIONS):
            return f"a fire panel simulator cannot {step.action}"
        if isinstance(step, PointStep):
            if step.point not in self._types:
                return f"{self.driver.model} has no device at point {step.point!r}"
            flag = _STATE_FLAG.get(step.state)
            kind = self._kind(step.point)
            if flag is not None and flag not in kind.flags:
                return f"a {kind.label} ({step.point}) cannot be {step.state}"
        elif isinstance(step, PanelStep):
            point = self.driver.panel_driver.by_name.get(step.condition)
            if point is None or point.type is not RegType.BOOL:
                return f"{self.driver.model} has no panel condition {step.condition!r}"
        elif isinstance(step, SetStep):
            return self._set_problem(step.point, step.value)
        return None

    def _set_problem(self, name: str, value: Value) -> str | None:
        if name in self.driver.panel_driver.by_name:
            try:
                self.driver.panel_driver.to_registers(name, value)
            except ValueError as exc:
                return str(exc)
            return None
        try:
            self.driver.point_table.offset(name)
        except KeyError as exc:
            return f"{self.driver.model}: not a panel value, and {exc.args[0]}"
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
            return f"point {name}: a raw status word is an integer 0..65535, got {value!r}"
        return None

    async def perform(self, step: Step) -> None:
        problem = self.problem(step)
        if problem is not None:
            raise ValueError(problem)
        match step:
            case PointStep():
                self.set_point(step.point, step.state)
            case PanelStep():
                self.set_panel(step.condition, step.on)
            case SetStep():
                self.set_value(step.point, step.value)
            case LinkDropStep():
                await self._require_endpoint().set_answering(self.unit, False)
            case LinkRestoreStep():
                await self._require_endpoint().set_answering(self.unit, True)
            case ResponseDelayStep():
                self._delay_s = step.delay_s
            case GarbageStep():
                self.start_garbage(step.count)
            case GarbageStopStep():
                self._garbage = []

    # -- controls -----------------------------------------------------------------------------------------------

    def set_point(self, point: str, state: PointState) -> None:
        """Put a point into a state; states add up (a point can be in fault and disabled), `normal` ends them all."""
        kind = self._kind(point)
        flags = self._flags[point]
        if state == "absent":
            self._absent.add(point)
            flags.clear()
        elif state == "normal":
            self._absent.discard(point)
            flags.clear()
        else:
            self._absent.discard(point)
            flag = _STATE_FLAG[state]
            if flag not in kind.flags:
                raise ValueError(f"a {kind.label} ({point}) cannot be {state}")
            # Flags the panel never shows together with this one: disabling masks them, and while they are on
            # (the point is disabled) this one is masked.
            others = {a if b == flag else b for a, b in self.driver.point_table.exclusive if flag in (a, b)}
            if flag is not Flag.DISABLED and flags & others:
                log.info("fire panel point masked", device=self.device_id, point=point, state=state)
            else:
                flags -= others
                flags.add(flag)
                if flag is Flag.ACTIVE and Flag.FEEDBACK in kind.flags:
                    flags.add(Flag.FEEDBACK)  # the started equipment answers back
        self._write_point(point)
        self._count()

    def set_panel(self, condition: str, on: bool) -> None:
        self._write_panel(condition, on)

    def set_value(self, name: str, value: Value) -> None:
        """A panel value by name, or a raw status word for a point ("1-023": 0x0101)."""
        problem = self._set_problem(name, value)
        if problem is not None:
            raise ValueError(problem)
        if name in self.driver.panel_driver.by_name:
            self._write_panel(name, value)
            return
        assert isinstance(value, int)
        self._words[self._table][self.driver.point_table.status_address(name)] = value

    def start_garbage(self, count: int) -> None:
        """Until stopped: `count` present points serve undefined status bits or an unknown type code, alternately."""
        present = [p for p in self._types if p not in self._absent]
        chosen = self._rng.sample(present, min(count, len(present)))
        self._garbage = [(p, i % 2 == 0) for i, p in enumerate(sorted(chosen))]

    def garbage_points(self) -> list[str]:
        """The points serving garbage now."""
        return [point for point, _ in self._garbage]

    def set_response_delay(self, seconds: float) -> None:
        self._delay_s = seconds

    # -- what it holds --------------------------------------------------------------------------------------------

    def points(self, type_name: str | None = None) -> list[str]:
        """Present points, of one type if given, in loop-address order."""
        return [
            p
            for p, code in self._types.items()
            if p not in self._absent and (type_name is None or self.driver.point_types[code].name == type_name)
        ]

    def point_type(self, point: str) -> str:
        return self._kind(point).name

    def flags(self, point: str) -> frozenset[Flag]:
        self._kind(point)
        return frozenset(self._flags[point])

    def _kind(self, point: str) -> PointType:
        if point not in self._types:
            raise KeyError(f"{self.driver.model} has no device at point {point!r}")
        return self.driver.point_types[self._types[point]]

    # -- what the endpoint asks ---------------------------------------------------------------------------------

    def registers(self, table: Table) -> dict[int, int]:
        words = self._words[table]
        if not self._garbage or table != self._table:
            return words
        served = dict(words)
        point_table = self.driver.point_table
        undefined_bit = max(b for b in range(16) if not point_table.defined_mask >> b & 1)
        unknown_code = next(c for c in range(99, 0x10000) if c not in self.driver.point_types)
        for point, bits in self._garbage:
            if bits:
                served[point_table.status_address(point)] |= 1 << undefined_bit
            else:
                served[point_table.type_address(point)] = unknown_code
        return served

    def response_delay_s(self) -> float:
        return self._delay_s

    # -- internals ----------------------------------------------------------------------------------------------

    def _require_endpoint(self) -> ModbusEndpoint:
        if self._endpoint is None:
            raise RuntimeError("the simulator is not started")
        return self._endpoint

    def _write_panel(self, name: str, value: Value) -> None:
        point = self.driver.panel_driver.by_name[name]
        words = self.driver.panel_driver.to_registers(name, value)
        for offset, word in enumerate(words):
            self._words[point.table][point.address + offset] = word

    def _write_point(self, point: str) -> None:
        table = self.driver.point_table
        words = self._words[self._table]
        present = point not in self._absent
        status = self.driver.status_word(self._flags[point]) if present else table.not_present
        words[table.status_address(point)] = status
        words[table.type_address(point)] = self._types[point]

    def _count(self) -> None:
        """Keep the panel's own counters in step with its points, as the panel does."""
        present = [
            (self.driver.point_types[self._types[p]], f) for p, f in self._flags.items() if p not in self._absent
        ]
        counts = {
            "fire_count": sum(Flag.FIRE in f and k.fire_is == "fire" for k, f in present),
            "fault_count": sum(Flag.FAULT in f for _, f in present),
            "disabled_count": sum(Flag.DISABLED in f for _, f in present),
        }
        for name, count in counts.items():
            point = self.driver.panel_driver.by_name.get(name)
            if point is not None:
                self._write_panel(name, min(count, point.max if point.max is not None else 0xFFFF))
