"""Every device of a site file as a live simulator, played by a scenario or driven over MQTT.

Each device kind has a builder (`simulators.builders.BUILDERS`) that makes its simulator from the site file's entry:
Modbus devices are real pymodbus servers at their address, MQTT devices publish vendor payloads to the broker.
Devices that share a host:port (controllers behind one Modbus TCP gateway) share one listener and answer by unit
id. At run time a command on `facmon-sim/v1/<site>/<device>/command` with a JSON action, the same actions as
scenario steps (`{"action": "fault", "code": 2}`), acts on that device at once; timing fields are ignored there.
Every device and the scenario share one simulated clock: `speed` times the wall clock unless one is given.
`mqtt` is the broker with the devices' login and TLS (`facmon broker-config` gives the devices of an estate their
own); the commands are taken there too.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace

import aiomqtt
import structlog
from pydantic import ValidationError

from facmon.estate.site import Site
from facmon.kernel.backoff import backoff_delays
from facmon.kernel.clock import Clock
from facmon.kernel.mqtt import MqttSettings, mqtt_client
from simulators.builders import BUILDERS, BuildContext
from simulators.clock import simulated_clock
from simulators.endpoint import ModbusEndpoint, RegisterSource
from simulators.scenario import Scenario, perform, play
from simulators.steps import STEP, SimulatedDevice, Step

log = structlog.get_logger(__name__)

COMMAND_ROOT = "facmon-sim/v1"


def command_topic(site: str, device: str) -> str:
    return f"{COMMAND_ROOT}/{site}/{device}/command"


class SiteSimulator:
    def __init__(
        self,
        site: Site,
        *,
        scenario: Scenario | None = None,
        speed: float = 1.0,
        seed: int = 0,
        mqtt: MqttSettings | None = None,
        backoff_max_s: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.site = site
        self.scenario = scenario
        self.speed = speed
        self.clock = clock or simulated_clock(speed)
        self.mqtt = mqtt
        self.backoff_max_s = backoff_max_s
        self.sims: dict[str, SimulatedDevice] = {}
        groups: dict[tuple[str, int], list[RegisterSource]] = {}
        for building, device in site.devices():
            builder = BUILDERS.get(device.kind)
            if builder is None:
                log.warning("no simulator for this kind of device", device=device.id, kind=device.kind.value)
                continue
            ctx = BuildContext(site, building, seed, speed, mqtt, self.clock)
            sim = builder(device, ctx)
            self.sims[device.id] = sim
            if isinstance(sim, RegisterSource) and device.address is not None:
                groups.setdefault((device.address.host, device.address.port), []).append(sim)
        # Modbus devices answer through listeners, one per host:port, shared by the units behind it.
        self.endpoints: list[ModbusEndpoint] = []
        for (host, port), sources in groups.items():
            endpoint = ModbusEndpoint(host, port, list(sources))
            self.endpoints.append(endpoint)
            for source in sources:
                source.attach(endpoint)
        if scenario is not None:
            # A scenario naming a device this site does not have fails now, not minutes into a demo.
            scenario.check(self.sims)
        # Set while the MQTT control subscription is in place (tests wait for it before publishing).
        self.control_ready = asyncio.Event()
        # Set once every Modbus endpoint listens (facmon up starts the collectors after it).
        self.serving = asyncio.Event()

    async def run(self) -> None:
        """Serve every device until cancelled."""
        try:
            for endpoint in self.endpoints:
                await endpoint.start()
            for sim in self.sims.values():
                await sim.start()
            self.serving.set()
            log.info("simulators up", site=self.site.id, devices=len(self.sims), listeners=len(self.endpoints))
            async with asyncio.TaskGroup() as tg:
                if self.scenario is not None:
                    tg.create_task(play(self.scenario, self.sims, sleep=self.clock.sleep), name="scenario")
                if self.mqtt is not None:
                    tg.create_task(self._control(tg, self.mqtt), name="simulator-control")
                await asyncio.Event().wait()
        finally:
            self.serving.clear()
            for sim in self.sims.values():
                await sim.stop()
            for endpoint in self.endpoints:
                await endpoint.stop()

    async def _control(self, tg: asyncio.TaskGroup, broker: MqttSettings) -> None:
        """Take commands from MQTT for as long as we run, reconnecting with capped, jittered backoff."""
        delays = backoff_delays(min(0.5, self.backoff_max_s), self.backoff_max_s)
        topic = command_topic(self.site.id, "+")
        identifier = f"facmon-sim-{self.site.id}-{uuid.uuid4().hex[:8]}"
        while True:
            try:
                async with mqtt_client(replace(broker, client_id=identifier)) as client:
                    await client.subscribe(topic, qos=1)
                    delays = backoff_delays(min(0.5, self.backoff_max_s), self.backoff_max_s)
                    self.control_ready.set()
                    log.info("simulator control subscribed", topic=topic)
                    async for message in client.messages:
                        self._command(tg, str(message.topic), message.payload)
            except aiomqtt.MqttError as exc:
                log.warning("simulator control link lost", error=str(exc))
            self.control_ready.clear()
            await asyncio.sleep(next(delays))

    def _command(self, tg: asyncio.TaskGroup, topic: str, payload: object) -> None:
        """Start one command; a command that is not understood is logged and dropped, never fatal."""
        device = topic.split("/")[3] if topic.count("/") == 4 else "?"
        try:
            if not isinstance(payload, (bytes, bytearray, str)):
                raise ValueError("payload is not JSON text")
            action = STEP.validate_python(json.loads(payload))
            sim = self.sims.get(device)
            if sim is None:
                raise ValueError(f"unknown device {device!r}; known: {sorted(self.sims)}")
            problem = sim.problem(action)
            if problem is not None:
                raise ValueError(problem)
        except (ValueError, KeyError) as exc:  # json and pydantic errors are ValueErrors too
            reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            log.warning("simulator command ignored", topic=topic, reason=reason)
            return
        log.info("simulator command", device=device, action=action.action)
        tg.create_task(self._perform(device, action, sim), name=f"command-{device}-{action.action}")

    async def _perform(self, device: str, action: Step, sim: SimulatedDevice) -> None:
        try:
            await perform(action, sim, sleep=self.clock.sleep)
        except (ValueError, KeyError, RuntimeError) as exc:
            log.warning("simulator command failed", device=device, action=action.action, reason=str(exc))
