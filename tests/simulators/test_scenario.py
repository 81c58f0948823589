"""Scenario files: validated with errors naming file and step, played in time order on a fake sleep."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from collectors.registry import modbus_driver
from facmon.kernel.daemons import free_port
from facmon.kernel.model import Value
from simulators.elevator import ElevatorSimulator
from simulators.scenario import ScenarioError, load_scenario, parse_scenario, play
from tests.simulators.support import assert_no_leaked_tasks

DEMO = """
steps:
  - {at_s: 20, device: b1-e1, action: fault, code: 2}
  - {at_s: 80, device: b1-e1, action: clear}
  - {at_s: 30, device: b1-e2, action: entrapment}
  - {after_s: 40, action: release}
  - {at_s: 50, device: b1-e1, action: link_drop, duration_s: 10}
  - {at_s: 50, device: b1-e2, action: set, point: power_source, value: backup}
  - {at_s: 90, device: b1-e2, action: response_delay, delay_s: 0.25}
"""


@pytest.fixture(autouse=True)
async def _no_leaks() -> AsyncIterator[None]:
    yield
    await assert_no_leaked_tasks()


@pytest.fixture
async def sims() -> AsyncIterator[dict[str, ElevatorSimulator]]:
    # speed=0: the cars hold still, so every change seen comes from the scenario.
    driver = modbus_driver("elev-gb-a")
    sims = {name: ElevatorSimulator(driver, port=free_port(), speed=0) for name in ("b1-e1", "b1-e2")}
    for sim in sims.values():
        await sim.start()
    yield sims
    for sim in sims.values():
        await sim.stop()


class FakeSleep:
    """Records each wait and what the simulators looked like while it lasted, instead of waiting."""

    def __init__(self, sims: dict[str, ElevatorSimulator]) -> None:
        self.sims = sims
        self.now = 0.0
        self.waits: list[float] = []
        self.seen: dict[float, dict[str, object]] = {}

    async def __call__(self, seconds: float) -> None:
        self.seen[self.now] = self.state()
        self.waits.append(seconds)
        self.now += seconds

    def state(self) -> dict[str, object]:
        e1, e2 = self.sims["b1-e1"], self.sims["b1-e2"]
        return {
            "e1_fault": e1.value("fault_code"),
            "e1_up": e1.answering,
            "e2_trapped": e2.value("entrapment"),
            "e2_power": e2.value("power_source"),
        }


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    return path


async def test_steps_run_in_time_order(tmp_path: Path, sims: dict[str, ElevatorSimulator]) -> None:
    scenario = load_scenario(_write(tmp_path, DEMO))
    sleep = FakeSleep(sims)
    await play(scenario, sims, sleep=sleep)
    # Moments: 20 fault, 30 entrapment, 50 drop + set, 60 link back, 70 release, 80 clear, 90 delay.
    assert sleep.waits == [20, 10, 20, 10, 10, 10, 10]
    state = sleep.state()
    seen = {**sleep.seen, 90.0: state}
    on: dict[str, Value] = {"e1_fault": 2, "e2_trapped": True}
    assert seen[0.0] == {"e1_fault": 0, "e1_up": True, "e2_trapped": False, "e2_power": "main"}
    assert seen[20.0] == {"e1_fault": 2, "e1_up": True, "e2_trapped": False, "e2_power": "main"}
    assert seen[30.0] == {**seen[20.0], **on}
    assert seen[50.0] == {**seen[30.0], "e1_up": False, "e2_power": "backup"}
    assert seen[60.0] == {**seen[50.0], "e1_up": True}
    assert seen[70.0] == {**seen[60.0], "e2_trapped": False}
    assert seen[80.0] == {**seen[70.0], "e1_fault": 0}
    assert sims["b1-e2"].response_delay_s() == 0.25


async def test_speed_divides_every_wait(sims: dict[str, ElevatorSimulator]) -> None:
    scenario = parse_scenario({"steps": [{"at_s": 20, "device": "b1-e1", "action": "fault", "code": 3}]})
    sleep = FakeSleep(sims)
    await play(scenario, sims, speed=10, sleep=sleep)
    assert sleep.waits == [2.0]
    assert sims["b1-e1"].value("fault_code") == 3


async def test_unknown_device_fails_before_anything_happens(sims: dict[str, ElevatorSimulator]) -> None:
    scenario = parse_scenario(
        {
            "steps": [
                {"at_s": 0, "device": "b1-e1", "action": "fault", "code": 2},
                {"at_s": 5, "device": "b9-e9", "action": "entrapment"},
            ]
        },
        "demo.yaml",
    )
    with pytest.raises(ScenarioError, match=r"demo.yaml: steps\[1\] \(entrapment\): unknown device 'b9-e9'"):
        await play(scenario, sims, sleep=FakeSleep(sims))
    assert sims["b1-e1"].value("fault_code") == 0


async def test_unknown_point_or_unencodable_value_fails_the_check(sims: dict[str, ElevatorSimulator]) -> None:
    scenario = parse_scenario(
        {
            "device": "b1-e2",
            "steps": [
                {"at_s": 0, "action": "set", "point": "colour", "value": 1},
                {"at_s": 0, "action": "set", "point": "door", "value": "ajar"},
            ],
        }
    )
    with pytest.raises(ScenarioError) as caught:
        scenario.check(sims)
    assert str(caught.value).splitlines() == [
        "scenario: steps[0] (set): b1-e2: elev-gb-a has no point 'colour'",
        "scenario: steps[1] (set): b1-e2: door: 'ajar' is not one of ['closed', 'closing', 'open', 'opening']",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps:\n  - {at_s: 5, device: e1, action: fault}\n", r"steps\[0\] \(fault\): code: Field required"),
        ("steps:\n  - {at_s: 5, device: e1, action: explode}\n", r"steps\[0\] \(explode\): Input tag 'explode'"),
        ("steps:\n  - {at_s: -1, device: e1, action: clear}\n", r"steps\[0\] \(clear\): at_s: .*greater than"),
        ("steps:\n  - {at_s: 1, after_s: 2, device: e1, action: clear}\n", r"steps\[0\] \(clear\): .*not both"),
        ("steps:\n  - {at_s: 1, action: release}\n", r"steps\[0\] \(release\): no device"),
        ("steps:\n  - {at_s: 1, device: e1, action: clear, colour: red}\n", r"steps\[0\] \(clear\): colour: Extra"),
        ("steps: []\n", r"steps: List should have at least 1 item"),
        ("steps: [\n", r"not valid YAML"),
    ],
)
def test_file_errors_name_file_and_step(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ScenarioError, match=message) as caught:
        load_scenario(path)
    assert str(caught.value).startswith(str(path))


def test_missing_file() -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario("/nonexistent/scenario.yaml")


def test_steps_inherit_device_and_time() -> None:
    scenario = parse_scenario(
        {
            "device": "a",
            "steps": [
                {"at_s": 10, "action": "entrapment"},
                {"after_s": 5, "device": "b", "action": "fault", "code": 4},
                {"action": "clear"},
                {"at_s": 1, "action": "link_drop", "duration_s": 30},
            ],
        }
    )
    assert [(c.at_s, c.device, c.action.action) for c in scenario.cues()] == [
        (1, "b", "link_drop"),
        (10, "a", "entrapment"),
        (15, "b", "fault"),
        (15, "b", "clear"),
        (31, "b", "link_restore"),
    ]


def test_demo_scenario_of_the_repository_loads() -> None:
    path = Path(__file__).parents[2] / "examples" / "demo-scenario.yaml"
    assert len(load_scenario(path).steps) >= 1
