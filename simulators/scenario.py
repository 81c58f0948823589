"""Scenario files: a timeline of what happens to simulated devices, as data.

```yaml
device: b1-e1                  # optional: the device of steps that name none
steps:
  - {at_s: 20, device: b1-e1, action: fault, code: 2}
  - {after_s: 60, action: clear}                # 60 s after the step before, same device
  - {at_s: 30, device: b1-e2, action: entrapment}
  - {at_s: 90, action: release}                 # device of the step before: b1-e2
  - {at_s: 120, action: link_drop, duration_s: 10}
  - {at_s: 130, action: set, point: power_source, value: backup}
```

A step happens `at_s` seconds after the start, or `after_s` seconds after the step before it in the file (neither:
together with the step before). A step without `device` acts on the device of the step before, or on the top-level
`device`. The same actions arrive as runtime commands over MQTT (see simulators.site).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from facmon.kernel.datafile import DataFileError, read_document
from simulators.steps import TIMED, SimulatedDevice, Step

log = structlog.get_logger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class ScenarioError(ValueError):
    pass


@dataclass(frozen=True)
class Cue:
    """One action due at one moment of the scenario; `index` is its step's position in the file."""

    at_s: float
    index: int
    device: str
    action: Step


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    device: str | None = None
    steps: list[Step] = Field(min_length=1)
    _source: str = PrivateAttr(default="scenario")

    @model_validator(mode="after")
    def _resolvable(self) -> Scenario:
        self.cues()
        return self

    @property
    def source(self) -> str:
        return self._source

    def cues(self) -> list[Cue]:
        """Every action with its time and device, in the order they happen (file order breaks ties)."""
        cues: list[Cue] = []
        at, device = 0.0, self.device
        for index, step in enumerate(self.steps):
            at = step.at_s if step.at_s is not None else at + (step.after_s or 0.0)
            device = step.device or device
            if device is None:
                raise ValueError(f"steps[{index}] ({step.action}): no device; give `device:` on the step or the file")
            if isinstance(step, TIMED) and step.duration_s is not None:
                # A timed step is two moments: it happens, and is undone duration_s later.
                cues.append(Cue(at, index, device, step.model_copy(update={"duration_s": None})))
                cues.append(Cue(at + step.duration_s, index, device, step.undo()))
            else:
                cues.append(Cue(at, index, device, step))
        return sorted(cues, key=lambda c: (c.at_s, c.index))

    def check(self, sims: Mapping[str, SimulatedDevice]) -> None:
        """Refuse a scenario that names a device, action or point the simulators do not have, before anything runs."""
        problems = []
        for cue in self.cues():
            where = f"{self.source}: steps[{cue.index}] ({cue.action.action})"
            sim = sims.get(cue.device)
            if sim is None:
                problems.append(f"{where}: unknown device {cue.device!r}; known: {sorted(sims)}")
            elif (problem := sim.problem(cue.action)) is not None:
                problems.append(f"{where}: {cue.device}: {problem}")
        if problems:
            raise ScenarioError("\n".join(problems))


def _where(raw: Any, loc: tuple[int | str, ...]) -> str:
    """'steps[3] (fault): code' from a pydantic location, naming the step by its action as the file does."""
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        steps = raw.get("steps") if isinstance(raw, dict) else None
        step = steps[loc[1]] if isinstance(steps, list) and loc[1] < len(steps) else None
        action = step.get("action") if isinstance(step, dict) else None
        head = f"steps[{loc[1]}]" + (f" ({action})" if action else "")
        # Drop the union's tag from the location: it repeats the action.
        rest = [str(p) for p in loc[2:] if p != action]
        return ": ".join([head, ".".join(rest)]) if rest else head
    return ".".join(map(str, loc)) or "(top level)"


def parse_scenario(raw: Any, source: str = "scenario") -> Scenario:
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            # A value error from a validator reads better without pydantic's "Value error, " prefix.
            msg = str(err["ctx"]["error"]) if err["type"] == "value_error" else err["msg"]
            lines.append(f"{source}: {_where(raw, err['loc'])}: {msg}" if err["loc"] else f"{source}: {msg}")
        raise ScenarioError("\n".join(lines)) from exc
    scenario._source = source
    return scenario


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        document = read_document(path)
    except DataFileError as exc:
        raise ScenarioError("\n".join(exc.problems)) from exc
    return parse_scenario(document.data, str(path))


async def perform(action: Step, sim: SimulatedDevice, *, speed: float = 1.0, sleep: Sleep = asyncio.sleep) -> None:
    """Do one action, including the undo of a timed one (so this may take duration_s / speed)."""
    if isinstance(action, TIMED) and action.duration_s is not None:
        await sim.perform(action.model_copy(update={"duration_s": None}))
        await sleep(action.duration_s / speed)
        await sim.perform(action.undo())
    else:
        await sim.perform(action)


async def play(
    scenario: Scenario,
    sims: Mapping[str, SimulatedDevice],
    *,
    speed: float = 1.0,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Apply the steps in time order; time runs `speed` times faster than written."""
    if speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    scenario.check(sims)
    now = 0.0
    for cue in scenario.cues():
        if cue.at_s > now:
            await sleep((cue.at_s - now) / speed)
            now = cue.at_s
        log.info("scenario step", step=cue.index, at_s=cue.at_s, device=cue.device, action=cue.action.action)
        await sims[cue.device].perform(cue.action)
