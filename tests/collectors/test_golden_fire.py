"""Golden cases of every registered fire panel driver: register frames in, readings, events and dead letters out.

Each `testcases/<case>/` folder beside a driver file holds `input.yaml` (the frames a panel serves, one per poll) and
`expected.yaml` (what the collector must emit for each). The frames are served by a real pymodbus server and read
by the real `ModbusPoller` with the `FirePanelInterpreter`, one poll per frame, its clock (a FakeClock) moved to the
frame's time first. The input has the shape of the Modbus driver cases (tests/collectors/README.md). A new
regression test is a new folder.

input.yaml:
    snapshot_interval_s: 60        # optional (default 60)
    frames:
      - at_s: 0                    # seconds since the case began; never goes back
        holding:                   # words written over the frame before (the first: a panel with no point present)
          0: [1, 0, 0]             # a word, or a list of words from this address on

expected.yaml, per frame:
      - panel: {...}               # the values of the panel reading, exactly
        points: {"1-023": {...}}   # the point readings of this poll (none: {}), exactly
        events:                    # exactly these, in order; point and data may be left out when empty
          - {type: fault_raised, code: fire, point: 1-023, message: "...", data: {point_type: smoke_detector}}
        dead_letters: ["point 1-024: ..."]   # the reasons of the dead letters this poll sent, in order
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from collectors.modbus.fire_interpreter import FirePanelInterpreter
from collectors.modbus.fire_panel import FirePanelDriver
from collectors.modbus.link import ModbusLinks
from collectors.modbus.poller import ModbusPoller, PollTiming
from collectors.modbus.registers import Table
from collectors.registry import FIRE_PANEL_DRIVERS, fire_panel_driver
from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import free_port
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeadLetter, DeviceKind, DeviceRef, Event, EventType, ModbusAddress, Reading, Value
from simulators.endpoint import ModbusEndpoint
from tests.simulators.support import assert_no_leaked_tasks


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Words = dict[int, int | list[int]]


class Frame(_Strict):
    at_s: float = Field(ge=0)
    holding: Words = Field(default_factory=dict)
    input: Words = Field(default_factory=dict)


class CaseInput(_Strict):
    snapshot_interval_s: float = Field(default=60.0, gt=0)
    frames: list[Frame] = Field(min_length=1)


class ExpectedEvent(_Strict):
    type: EventType
    code: str | None = None
    point: str | None = None
    message: str
    data: dict[str, Value] = Field(default_factory=dict)


class Expected(_Strict):
    panel: dict[str, Value]
    points: dict[str, dict[str, Value]]
    events: list[ExpectedEvent] = Field(default_factory=list)
    dead_letters: list[str] = Field(default_factory=list)


class CaseExpected(_Strict):
    frames: list[Expected]


CASES = [
    (model, case)
    for model, path in sorted(FIRE_PANEL_DRIVERS.items())
    for case in sorted((path.parent / "testcases").iterdir())
    if case.is_dir()
]


@pytest.fixture(autouse=True)
async def _no_leaks() -> AsyncIterator[None]:
    yield
    await assert_no_leaked_tasks()


class FrameSource:
    """A unit that serves whatever frame it is given: the golden case's registers, on the driver's blocks."""

    unit = 1

    def __init__(self, driver: FirePanelDriver) -> None:
        self.driver = driver
        self._served = driver.empty_image()
        self._words: dict[Table, dict[int, int]] = {"holding": {}, "input": {}}
        for (table, address), word in self._served.items():
            self._words[table][address] = word

    def write(self, frame: Frame) -> None:
        for table, words in (("holding", frame.holding), ("input", frame.input)):
            for start, value in words.items():
                for offset, word in enumerate(value if isinstance(value, list) else [value]):
                    assert (table, start + offset) in self._served, f"{table} {start + offset} is not read"
                    self._words[table][start + offset] = word

    def registers(self, table: Table) -> dict[int, int]:
        return self._words[table]

    def response_delay_s(self) -> float:
        return 0.0

    def attach(self, endpoint: ModbusEndpoint) -> None:
        pass


def _emitted(messages: list[Reading | Event], letters: list[DeadLetter]) -> Expected:
    """One poll's output in the shape of expected.yaml."""
    readings = [m for m in messages if isinstance(m, Reading)]
    (panel,) = [r.values for r in readings if r.point is None]
    return Expected(
        panel=panel,
        points={r.point: r.values for r in readings if r.point is not None},
        events=[
            ExpectedEvent(type=e.type, code=e.code, point=e.point, message=e.message, data=e.data)
            for e in messages
            if isinstance(e, Event)
        ],
        dead_letters=[letter.reason for letter in letters],
    )


def _types(expected: Expected) -> list[dict[str, str]]:
    values = [expected.panel, *expected.points.values()]
    return [{name: type(value).__name__ for name, value in v.items()} for v in values]


def test_every_fire_panel_driver_has_golden_cases() -> None:
    for model, path in FIRE_PANEL_DRIVERS.items():
        cases = [c for c in (path.parent / "testcases").iterdir() if c.is_dir()]
        assert len(cases) >= 3, f"{model}: golden cases {sorted(c.name for c in cases)}"
        for case in cases:
            assert {f.name for f in case.iterdir()} >= {"input.yaml", "expected.yaml"}, f"{model}: {case.name}"


@pytest.mark.parametrize(("model", "case"), CASES, ids=[f"{m}/{c.name}" for m, c in CASES])
async def test_golden_case(model: str, case: Path) -> None:
    driver = fire_panel_driver(model)
    given = CaseInput.model_validate(yaml.safe_load((case / "input.yaml").read_text(encoding="utf-8")))
    wanted = CaseExpected.model_validate(yaml.safe_load((case / "expected.yaml").read_text(encoding="utf-8")))
    assert len(given.frames) == len(wanted.frames), "input and expected disagree on the number of frames"
    times = [frame.at_s for frame in given.frames]
    assert times == sorted(times), "time never goes back"
    messages: list[Reading | Event] = []
    letters: list[DeadLetter] = []

    async def emit(message: Reading | Event) -> None:
        messages.append(message)

    async def reject(letter: DeadLetter) -> None:
        letters.append(letter)

    clock = FakeClock()
    source = FrameSource(driver)
    port = free_port()
    endpoint = ModbusEndpoint("127.0.0.1", port, [source])
    links = ModbusLinks()
    ref = DeviceRef(site="s", building="b", device="f1", kind=DeviceKind.FIRE_PANEL, model=model)
    poller = ModbusPoller(
        ref,
        FirePanelInterpreter(driver, snapshot_interval_s=given.snapshot_interval_s),
        ModbusAddress(host="127.0.0.1", port=port),
        PollTiming(1.0, 10.0),
        emit=emit,
        reject=reject,
        clock=clock,
        metrics=Counters(),
        links=links,
    )
    await endpoint.start()
    link = links.acquire("127.0.0.1", port)
    try:
        for index, (frame, want) in enumerate(zip(given.frames, wanted.frames, strict=True)):
            source.write(frame)
            clock.advance(frame.at_s - clock.monotonic())
            messages.clear()
            letters.clear()
            await poller.poll(link)
            assert all(m.ts == poller.stamp() for m in messages)
            assert all(letter.ref == ref and letter.source == "modbus" and letter.payload for letter in letters)
            got = _emitted(messages, letters)
            where = f"{case.name}: frame {index} (at {frame.at_s} s)"
            assert got == want, where
            # 1 == True and 1 == 1.0 in Python, but not in InfluxDB: a field keeps the type it was first written as.
            assert _types(got) == _types(want), where
    finally:
        links.release(link)
        await endpoint.stop()
