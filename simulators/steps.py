"""What can happen to a simulated device: the actions of scenario files and of runtime commands, as data.

Every simulator takes the actions that make sense for it (`SimulatedDevice.problem` says why not otherwise). A step
with a `duration_s` undoes itself that long after it happened (see `Timed.undo`); without one it lasts until its
opposite step.

- any device: `set` (a point's raw value), `link_drop` / `link_restore`, `response_delay` (slow answers),
  `garbage` / `garbage_stop` (impossible register values, malformed payloads);
- elevator: `fault` / `clear`, `entrapment` / `release`, `power_loss` / `power_restore`, `mode` (e.g. inspection);
- fire panel: `point` (a point's state: fire, fault, disabled, ...), `panel` (main power, battery, bus fault);
- gate barrier: `card_read`, `barrier_stuck`, `heartbeat_stop` / `heartbeat_start`;
- camera / NVR: `camera` (video loss, tamper, ... on / off), `heartbeat_stop` / `heartbeat_start`.
"""

from __future__ import annotations

from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at_s: float | None = Field(default=None, ge=0)
    after_s: float | None = Field(default=None, ge=0)
    device: str | None = None

    @model_validator(mode="after")
    def _one_time(self) -> _Step:
        if self.at_s is not None and self.after_s is not None:
            raise ValueError("give at_s or after_s, not both")
        return self


class _Timed(_Step):
    # None: lasts until the opposite step.
    duration_s: float | None = Field(default=None, gt=0)


# -- any device -------------------------------------------------------------------------------------------------


class SetStep(_Step):
    action: Literal["set"]
    point: str
    value: bool | int | float | str


class LinkDropStep(_Timed):
    action: Literal["link_drop"]

    def undo(self) -> Step:
        return LinkRestoreStep(action="link_restore")


class LinkRestoreStep(_Step):
    action: Literal["link_restore"]


class ResponseDelayStep(_Step):
    """Slow answers (Modbus): every response waits this long; 0 ends it."""

    action: Literal["response_delay"]
    delay_s: float = Field(ge=0, le=60)


class GarbageStep(_Timed):
    """Bad input from the device: Modbus registers with impossible values, or `count` malformed MQTT payloads."""

    action: Literal["garbage"]
    count: int = Field(default=10, ge=1, le=100_000)

    def undo(self) -> Step:
        return GarbageStopStep(action="garbage_stop")


class GarbageStopStep(_Step):
    action: Literal["garbage_stop"]


class HeartbeatStopStep(_Timed):
    """An MQTT device goes quiet (its heartbeat and everything else stop) while its link stays up."""

    action: Literal["heartbeat_stop"]

    def undo(self) -> Step:
        return HeartbeatStartStep(action="heartbeat_start")


class HeartbeatStartStep(_Step):
    action: Literal["heartbeat_start"]


# -- elevators --------------------------------------------------------------------------------------------------


class FaultStep(_Step):
    action: Literal["fault"]
    code: int = Field(ge=1, le=0xFFFF)


class ClearStep(_Step):
    action: Literal["clear"]


class EntrapmentStep(_Step):
    """The car stops with a passenger inside and the door closed. `flag`: the controller also raises its own
    entrapment flag (where its model has one); without it only the car's state shows it."""

    action: Literal["entrapment"]
    flag: bool = True


class ReleaseStep(_Step):
    action: Literal["release"]


class PowerLossStep(_Timed):
    """Main power lost: the controller runs on its backup supply."""

    action: Literal["power_loss"]

    def undo(self) -> Step:
        return PowerRestoreStep(action="power_restore")


class PowerRestoreStep(_Step):
    action: Literal["power_restore"]


class ModeStep(_Step):
    """Service mode by its label in the driver's code table: normal, inspection, fire_return, out_of_service, ..."""

    action: Literal["mode"]
    mode: str


# -- fire panels ------------------------------------------------------------------------------------------------

PointState = Literal["normal", "fire", "fault", "disabled", "supervisory", "active", "absent"]


class PointStep(_Step):
    """One point of a fire panel (`point: "1-023"`, loop-address) goes into a state; `normal` ends any other."""

    action: Literal["point"]
    point: str
    state: PointState


class PanelStep(_Step):
    action: Literal["panel"]
    condition: Literal["main_power_fault", "battery_fault", "bus_fault"]
    on: bool = True


# -- gate barriers ----------------------------------------------------------------------------------------------


class CardReadStep(_Step):
    """A card presented at a barrier; a granted card raises the barrier, a vehicle passes, it lowers again."""

    action: Literal["card_read"]
    card: str = Field(pattern=r"^[0-9A-Fa-f]{4,20}$")
    granted: bool = True
    direction: Literal["in", "out"] = "in"


class BarrierStuckStep(_Step):
    """The arm stops midway and does not reach its limit (on), or works again (off)."""

    action: Literal["barrier_stuck"]
    on: bool = True


# -- cameras / NVRs ---------------------------------------------------------------------------------------------

CameraCondition = Literal["video_loss", "tamper", "scene_change", "storage_full", "storage_failed", "recording_stopped"]


class CameraStep(_Step):
    action: Literal["camera"]
    condition: CameraCondition
    on: bool = True


Step = Annotated[
    SetStep
    | LinkDropStep
    | LinkRestoreStep
    | ResponseDelayStep
    | GarbageStep
    | GarbageStopStep
    | HeartbeatStopStep
    | HeartbeatStartStep
    | FaultStep
    | ClearStep
    | EntrapmentStep
    | ReleaseStep
    | PowerLossStep
    | PowerRestoreStep
    | ModeStep
    | PointStep
    | PanelStep
    | CardReadStep
    | BarrierStuckStep
    | CameraStep,
    Field(discriminator="action"),
]
STEP: TypeAdapter[Step] = TypeAdapter(Step)
TIMED = (LinkDropStep, GarbageStep, HeartbeatStopStep, PowerLossStep)


class SimulatedDevice(Protocol):
    """What a scenario or a runtime command needs of a simulator, whatever its protocol."""

    @property
    def device_id(self) -> str: ...

    def problem(self, step: Step) -> str | None:
        """Why this device cannot take `step` (an action it does not know, a point it does not have); None if it can."""
        ...

    async def perform(self, step: Step) -> None:
        """Do `step` now. Timing fields are the scenario's business; a timed step's undo comes as its own step."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
