"""A simulated IP camera / NVR channel: heartbeats with its recording state, and alarms raised and cleared.

The `camera` step raises or clears a condition (video_loss, tamper, scene_change, storage_full, storage_failed,
recording_stopped); the camera sends the alarm in its vendor's words (the driver's condition table, read backwards)
and, like the real ones, repeats every active alarm with each heartbeat until it clears. Conditions show in the
heartbeat too: full storage reads 100 %, failed storage or stopped recording reads `recording: false`.
"""

from __future__ import annotations

import random
from typing import ClassVar, Unpack

from collectors.mqtt.driver import MqttDriver
from facmon.kernel.model import Value
from simulators.mqtt_device import MqttDeviceSimulator, SimOptions
from simulators.steps import CameraCondition, CameraStep, Step

# Conditions that stop the camera recording.
_NOT_RECORDING = frozenset({"storage_failed", "recording_stopped"})


class CameraSimulator(MqttDeviceSimulator):
    STATE_MESSAGES: ClassVar[tuple[str, ...]] = ("heartbeat",)

    def __init__(self, driver: MqttDriver, **options: Unpack[SimOptions]) -> None:
        super().__init__(driver, **options)
        heartbeat = driver.fields_of("heartbeat")
        for name in ("recording", "storage_used_pct"):
            if name not in heartbeat:
                raise ValueError(f"driver {driver.model} cannot drive a camera simulator: heartbeat has no {name!r}")
        self.supported = frozenset(driver.conditions())
        sensors = random.Random(f"{self.seed}/sensors")
        # Loop recording keeps a camera's storage fairly full.
        self._used_pct = round(sensors.uniform(40.0, 95.0), 1)
        self._values.update(recording=True, storage_used_pct=self._used_pct)
        self.active: dict[str, bool] = {}

    def _own_problem(self, step: Step) -> str | None:
        if isinstance(step, CameraStep):
            if step.condition not in self.supported:
                return f"{self.driver.model} does not report {step.condition}; it reports {sorted(self.supported)}"
            return None
        return super()._own_problem(step)

    async def _own_perform(self, step: Step) -> None:
        if isinstance(step, CameraStep):
            await self.condition(step.condition, step.on)
        else:
            await super()._own_perform(step)

    async def condition(self, name: CameraCondition | str, on: bool) -> None:
        """Raise (on) or clear a condition: the alarm goes out now, and the heartbeat shows its effect."""
        if name not in self.supported:
            raise ValueError(f"{self.driver.model} does not report {name}")
        self.active[name] = on
        if name == "storage_full":
            self._values["storage_used_pct"] = 100.0 if on else self._used_pct
        self._values["recording"] = not any(self.active.get(c, False) for c in _NOT_RECORDING)
        await self.send(*self.driver.condition_payload(name, on))

    async def send_heartbeat(self) -> bool:
        sent = await super().send_heartbeat()
        for name, on in sorted(self.active.items()):
            if on:  # repeated until cleared: a collector that missed the first one still learns of it
                await self.send(*self.driver.condition_payload(name, True))
        return sent

    def value(self, name: str) -> Value:
        return self._values[name]
