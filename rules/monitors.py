"""The rules engine's monitors: what runs beside the event consumer (rules.worker), each a service of its own that
the composition root starts next to the worker.

- the SLA monitor (facmon.workorders.breaches): breached deadlines every `tick_interval_s` by the injected clock,
  each new breach handed to `on_breach` (breaches are not published on MQTT: a subscriber, the notifier, takes
  `on_breach` or reads the durable timeline);
- with a lifecycle sink: the exporter of lifecycle points (facmon.workorders.lifecycle) to InfluxDB, and the fire
  intact rate of the sites' panels over their commissioned points (rules.fire_intact_writer), which keeps the point
  table and puts every panel it hears of on the check schedule (of several workers, the holder of a lease in the
  database does: rules.leases);
- the timers of the fire checks (rules.fire_checks), the elevator maintenance visits (rules.maintenance_visits) and
  the state rules (rules.state_store).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiomqtt
from sqlalchemy import Engine

from facmon.estate.site import Site
from facmon.kernel.clock import Clock
from facmon.kernel.health import Health
from facmon.kernel.metrics import Counters
from facmon.kernel.mqtt import mqtt_client
from facmon.workorders.breaches import BreachHandler, SlaMonitor
from facmon.workorders.lifecycle import LifecycleExporter, LifecycleSink
from rules.fire_checks import DEFAULT_PERIOD as DEFAULT_CHECK_PERIOD
from rules.fire_checks import FireCheckMonitor, register_panel
from rules.fire_intact_writer import FireIntactWriter, IntactTiming
from rules.leases import Lease
from rules.maintenance_visits import DEFAULT_CYCLE as DEFAULT_MAINTENANCE_CYCLE
from rules.maintenance_visits import MaintenanceMonitor
from rules.state_rules import StateRules
from rules.state_store import StateTicker
from rules.worker import Broker


@dataclass(frozen=True)
class Timing:
    """How often the monitors look, and the periods of the obligations they watch."""

    tick_interval_s: float = 1.0
    fire_check_period: timedelta = DEFAULT_CHECK_PERIOD
    fire_check_interval_s: float = 60.0
    maintenance_cycle: timedelta = DEFAULT_MAINTENANCE_CYCLE
    maintenance_interval_s: float = 60.0


FIRE_INTACT_LEASE = "fire_intact"


class Monitor:
    """One monitor as a service: runs `loop` until cancelled. Its health has no checks of its own: a monitor outlives
    a database outage (counting it) and is healthy while it runs."""

    def __init__(self, name: str, loop: Callable[[], Awaitable[object]]) -> None:
        self.name = name
        self._loop = loop

    async def run(self) -> None:
        await self._loop()

    def health(self) -> Health:
        return Health(self.name, ())


class RulesMonitors:
    """The monitors of one rules worker's sites, built from the same settings; `services()` to start them."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        metrics: Counters,
        *,
        broker: Broker,
        sites: Sequence[Site],
        state_rules: StateRules,
        timing: Timing = Timing(),
        on_breach: BreachHandler | None = None,
        lifecycle_sink: LifecycleSink | None = None,
    ) -> None:
        self.engine = engine
        self.broker = broker
        self.timing = timing
        self.sla = SlaMonitor(engine, clock, on_breach=on_breach, metrics=metrics)
        self.fire_checks = FireCheckMonitor(engine, clock, period=timing.fire_check_period, metrics=metrics)
        self.maintenance = MaintenanceMonitor(
            engine, clock, sites=sites, cycle=timing.maintenance_cycle, metrics=metrics
        )
        self.state_ticker = StateTicker(engine, state_rules, {s.id: s for s in sites}, clock, metrics=metrics)
        self.exporter: LifecycleExporter | None = None
        self.fire_intact: FireIntactWriter | None = None
        if lifecycle_sink is not None:
            self.exporter = LifecycleExporter(engine, lifecycle_sink, clock, metrics=metrics)
            self.fire_intact = FireIntactWriter(
                lifecycle_sink,
                engine,
                sites=sites,
                on_new_panel=self._register_panel,
                metrics=metrics,
                clock=clock,
                timing=IntactTiming(tick_s=timing.tick_interval_s),
                # One writer of the figures however many workers run; the worker's client id names the holder.
                lease=Lease(engine, FIRE_INTACT_LEASE, broker.client_id),
            )

    def services(self) -> list[Monitor]:
        t = self.timing
        monitors = [
            Monitor("rules_sla_monitor", lambda: self.sla.run(t.tick_interval_s)),
            Monitor("rules_fire_checks", lambda: self.fire_checks.run(t.fire_check_interval_s)),
            Monitor("rules_maintenance", lambda: self.maintenance.run(t.maintenance_interval_s)),
            Monitor("rules_state_ticks", lambda: self.state_ticker.run(t.tick_interval_s)),
        ]
        if self.exporter is not None:
            exporter = self.exporter
            monitors.append(Monitor("rules_lifecycle_export", lambda: exporter.run(t.tick_interval_s)))
        if self.fire_intact is not None:
            monitors.append(Monitor("rules_fire_intact", self._fire_intact))
        return monitors

    async def _fire_intact(self) -> None:
        assert self.fire_intact is not None
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.fire_intact.consume(self._panel_client), name="rules-fire-intact")
            tg.create_task(self.fire_intact.run_ticks(), name="rules-fire-intact-write")

    def _panel_client(self) -> aiomqtt.Client:
        # A clean session of its own at QoS 0: readings supersede each other, unlike events (see rules.fire_intact).
        return mqtt_client(self.broker.mqtt(suffix="-fire-intact"))

    async def _register_panel(self, site: str, building: str, device: str, seen_at: datetime) -> None:
        await asyncio.to_thread(register_panel, self.engine, site, building, device, seen_at)
