"""Golden cases of every registered Modbus driver: register frames in, readings and events out.

Each driver folder may hold `testcases/<case>/input.yaml` and `expected.yaml` (format: tests/collectors/README.md).
Every frame is served by a real pymodbus server and read by the real poller, whose clock (a FakeClock) is moved to
the frame's time first, so debounces and thresholds in the driver file are exercised as they are in the field. A new
regression test is a new folder, not new code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from collectors.modbus.registers import Table
from collectors.registry import MODBUS_DRIVERS, modbus_driver
from facmon.kernel.model import EventType, Value
from tests.collectors.support import polled_frames


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Frame(_Strict):
    # Seconds since the case began; registers not given keep their word from the frame before (0 at first).
    at_s: float = Field(ge=0)
    holding: dict[int, int] = Field(default_factory=dict)
    input: dict[int, int] = Field(default_factory=dict)


class CaseInput(_Strict):
    frames: list[Frame] = Field(min_length=1)


class ExpectedEvent(_Strict):
    type: EventType
    code: str | None = None
    # Checked when given: the start of the message.
    message: str | None = None


class ExpectedFrame(_Strict):
    # These points have these values (floats to 1e-9); points not named are not checked.
    values: dict[str, Value] = Field(default_factory=dict)
    # Exactly these points are refused: left out of the reading (and counted).
    rejected: list[str] = Field(default_factory=list)
    # Exactly these points are dead-lettered by this poll: a refusal that starts or changes its reason (a value
    # that stays bad is parked once).
    dead_letters: list[str] = Field(default_factory=list)
    # Exactly these events, in this order.
    events: list[ExpectedEvent] = Field(default_factory=list)


class CaseExpected(_Strict):
    frames: list[ExpectedFrame] = Field(min_length=1)


def _cases() -> list[Any]:
    cases = []
    for model, path in sorted(MODBUS_DRIVERS.items()):
        folder = path.parent / "testcases"
        for case in sorted(folder.iterdir()) if folder.is_dir() else []:
            if case.is_dir():
                cases.append(pytest.param(model, case, id=f"{model}/{case.name}"))
    return cases


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize(("model", "case"), _cases())
async def test_golden_case(model: str, case: Path) -> None:
    driver = modbus_driver(model)
    frames = CaseInput.model_validate(_load(case / "input.yaml")).frames
    expected = CaseExpected.model_validate(_load(case / "expected.yaml")).frames
    assert len(expected) == len(frames), f"{case.name}: expected.yaml must have one entry per frame"
    async with polled_frames(driver) as polled:
        elapsed = 0.0
        for index, (frame, want) in enumerate(zip(frames, expected, strict=True)):
            where = f"{case.name} frame {index} (at {frame.at_s} s)"
            assert frame.at_s >= elapsed, f"{where}: frames go forward in time"
            polled.clock.advance(frame.at_s - elapsed)
            elapsed = frame.at_s
            tables: dict[Table, dict[int, int]] = {"holding": frame.holding, "input": frame.input}
            for table, words in tables.items():
                polled.source.set(table, words)
            readings, events, letters = len(polled.readings), len(polled.events), len(polled.letters)
            counted_before = polled.metrics.get("modbus_rejected_values")
            await polled.poll()
            assert len(polled.readings) == readings + 1, f"{where}: no reading"
            values = polled.readings[-1].values
            for name, value in want.values.items():
                assert name in values, f"{where}: {name} missing (refused?)"
                got = values[name]
                assert type(got) is type(value), f"{where}: {name} = {got!r}, expected {value!r}"
                assert got == (pytest.approx(value, abs=1e-9) if isinstance(value, float) else value), where
            refused = sorted(set(driver.by_name) - set(values))
            assert refused == sorted(want.rejected), f"{where}: refused {refused}"
            new_letters = polled.letters[letters:]
            lettered = sorted(letter.reason.split(" ")[0] for letter in new_letters)
            assert lettered == sorted(want.dead_letters), f"{where}: dead letters for {lettered}"
            counted = polled.metrics.get("modbus_rejected_values") - counted_before
            assert counted == len(want.rejected), f"{where}: {counted} refusals counted"
            got_events = polled.events[events:]
            assert [(e.type, e.code) for e in got_events] == [(e.type, e.code) for e in want.events], where
            for got_event, want_event in zip(got_events, want.events, strict=True):
                if want_event.message is not None:
                    assert got_event.message.startswith(want_event.message), f"{where}: {got_event.message!r}"


def test_every_elevator_driver_has_golden_cases() -> None:
    for model, path in MODBUS_DRIVERS.items():
        if modbus_driver(model).kind == "elevator":
            folder = path.parent / "testcases"
            cases = [c for c in folder.iterdir() if c.is_dir()] if folder.is_dir() else []
            assert len(cases) >= 3, f"{model}: golden cases for a normal ride, a fault and an event, at least"
