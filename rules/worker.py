"""The rules worker: events from the MQTT backbone in, work orders out.

Delivery is at-least-once end to end. The worker holds a persistent session (clean_session=False, QoS 1), so the
broker queues events while it is away, and it acknowledges a message only after the event's transaction has
committed (paho's manual acks), so a crash between receiving and committing gets the message redelivered. A
redelivered event is then recognised by its id in `processed_events` and changes nothing.

One event is handled at a time, in arrival order; the database work runs in a thread so the event loop keeps
serving the MQTT connection (keepalives, acks) while SQLite or PostgreSQL is busy.

Failures: a payload that cannot be used is logged with its topic and reason, counted, acknowledged and skipped (it
would fail the same way on redelivery). An unreachable database is retried in place with backoff, the event held
unacknowledged. Anything else is a bug and ends `run()`; the event is redelivered to the next run.

Beside the consumer, `run()` keeps more tasks in its TaskGroup: the SLA monitor (facmon.workorders.breaches), which
looks
for breached deadlines every `tick_interval_s` by the injected clock and hands each new breach to `on_breach`; when
a `lifecycle_sink` is given, the exporter of lifecycle points (facmon.workorders.lifecycle) to InfluxDB; and the
timers of the
fire checks (rules.fire_checks), the elevator maintenance visits (rules.maintenance_visits) and the state rules.
Breaches are not published on MQTT: a subscriber (the notifier) takes `on_breach`, or reads the durable timeline.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import datetime, timedelta

import aiomqtt
import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from facmon.estate.entries import Technician
from facmon.estate.site import Site
from facmon.kernel.clock import Clock
from facmon.kernel.health import Check, Health
from facmon.kernel.metrics import Counters
from facmon.kernel.model import Event, EventType, decode_message
from facmon.kernel.topics import EVENT, event_topic, subscription
from facmon.workorders.breaches import BreachHandler, SlaMonitor
from facmon.workorders.lifecycle import LifecycleExporter, LifecycleSink
from rules.arrival import apply_with_site_evidence
from rules.engine import FAULT_KEY_MAX, FireAlarmSignal, Rule, evaluate, fault_key, load_rules
from rules.fire import record_fire_signals
from rules.fire_checks import DEFAULT_PERIOD as DEFAULT_CHECK_PERIOD
from rules.fire_checks import FireCheckMonitor, register_panel
from rules.fire_intact import FireIntactWriter
from rules.maintenance_visits import DEFAULT_CYCLE as DEFAULT_MAINTENANCE_CYCLE
from rules.maintenance_visits import DEFAULT_MIN_INSPECTION, MaintenanceMonitor
from rules.state_rules import StateRules, load_state_rules
from rules.state_store import StateTicker, apply_state_event
from rules.store import ApplyResult

log = structlog.get_logger(__name__)

EVENT_TOPICS = subscription(leaf=EVENT)  # facmon/v1/+/+/+/event
# Column widths of the tables; longer values are refused here rather than failing in the database forever.
_MAX_ID_LEN = 64


class RejectedMessage(ValueError):
    """A message the worker cannot use; `kind` is a short label for the metrics, the text says why."""

    def __init__(self, kind: str, reason: str) -> None:
        self.kind = kind
        super().__init__(reason)


def parse_event(topic: str, payload: object) -> Event:
    """The event in a message on `topic`; raises RejectedMessage saying what is wrong with it."""
    if not isinstance(payload, bytes | str):
        raise RejectedMessage("decode", f"payload of type {type(payload).__name__}")
    try:
        message = decode_message(payload)
    except ValueError as exc:
        raise RejectedMessage("decode", str(exc)) from exc
    if not isinstance(message, Event):
        raise RejectedMessage("not_event", "a reading on an event topic")
    expected = event_topic(message.ref)
    if topic != expected:
        # A publisher that files events under the wrong device would open work orders for the wrong elevator.
        raise RejectedMessage("topic_mismatch", f"payload belongs on {expected}")
    if message.type in (EventType.FAULT_RAISED, EventType.FAULT_CLEARED) and not message.code:
        raise RejectedMessage("invalid", f"{message.type.value} without a code")
    ref = message.ref
    for name, value in (("site", ref.site), ("building", ref.building), ("device", ref.device), ("code", message.code)):
        if value is not None and len(value) > _MAX_ID_LEN:
            raise RejectedMessage("invalid", f"{name} longer than {_MAX_ID_LEN} characters")
    if message.code is not None and len(fault_key(message.code, message.point)) > FAULT_KEY_MAX:
        raise RejectedMessage("invalid", f"point and code together longer than {FAULT_KEY_MAX - 1} characters")
    return message


class RulesWorker:
    name = "rules"

    def __init__(
        self,
        *,
        mqtt_host: str,
        mqtt_port: int,
        client_id: str,
        engine: Engine,
        clock: Clock,
        metrics: Counters,
        rules: Sequence[Rule] | None = None,
        mqtt_username: str | None = None,
        mqtt_password: str | None = None,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        on_breach: BreachHandler | None = None,
        lifecycle_sink: LifecycleSink | None = None,
        tick_interval_s: float = 1.0,
        sites: Sequence[Site] | None = None,
        fire_check_period: timedelta = DEFAULT_CHECK_PERIOD,
        fire_check_interval_s: float = 60.0,
        state_rules: StateRules | None = None,
        maintenance_cycle: timedelta = DEFAULT_MAINTENANCE_CYCLE,
        maintenance_min_inspection: timedelta = DEFAULT_MIN_INSPECTION,
        maintenance_interval_s: float = 60.0,
    ) -> None:
        if not client_id:
            # The broker keeps the persistent session under this id; a random one would lose it on restart.
            raise ValueError("client_id must be set and stable across restarts")
        self.mqtt_host = mqtt_host
        self.mqtt_port = mqtt_port
        self.mqtt_username = mqtt_username
        self._mqtt_password = mqtt_password
        self.client_id = client_id
        self.engine = engine
        self.clock = clock
        self.metrics = metrics
        self.rules: tuple[Rule, ...] = load_rules() if rules is None else tuple(rules)
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        # Set while connected and subscribed; tests and health checks wait on it.
        self.subscribed = asyncio.Event()
        self._random = random.Random()
        self.tick_interval_s = tick_interval_s
        self.monitor = SlaMonitor(engine, clock, on_breach=on_breach, metrics=metrics)
        self.exporter = (
            None if lifecycle_sink is None else LifecycleExporter(engine, lifecycle_sink, clock, metrics=metrics)
        )
        # Monthly single-item checks (rules.fire_checks) and the sites' fire intact rate (rules.fire_intact).
        self.fire_checks = FireCheckMonitor(engine, clock, period=fire_check_period, metrics=metrics)
        self.fire_check_interval_s = fire_check_interval_s
        self.fire_intact = (
            None
            if lifecycle_sink is None
            else FireIntactWriter(lifecycle_sink, on_new_panel=self._register_panel, metrics=metrics)
        )
        # Card reads prove arrival with the sites' technicians (rules.arrival); inspection mode needs no site file.
        self.technicians: dict[str, tuple[Technician, ...]] = {s.id: tuple(s.technicians) for s in sites or ()}
        if sites is None:
            log.warning("no site file given: card reads will not move work orders to on_site")
        # State rules (rules.state_rules): device state, holds, peak windows in each site's time zone, roles.
        self.sites: dict[str, Site] = {s.id: s for s in sites or ()}
        # The events of its sites only, when it has site files; the broker keeps each device's last comm event
        # (retained), and a worker learns those of its own sites when it subscribes.
        self.topics = [subscription(site, leaf=EVENT) for site in self.sites] or [EVENT_TOPICS]
        self.state_rules = load_state_rules() if state_rules is None else state_rules
        self.state_ticker = StateTicker(engine, self.state_rules, self.sites, clock, metrics=metrics)
        # Elevator maintenance visits (rules.maintenance_visits): an inspection of at least this long is one, and an
        # elevator without one for the cycle gets a work order.
        if maintenance_min_inspection < timedelta(0):
            raise ValueError("the minimum inspection time cannot be negative")
        self.maintenance_min_inspection = maintenance_min_inspection
        self.maintenance = MaintenanceMonitor(
            engine, clock, sites=tuple(self.sites.values()), cycle=maintenance_cycle, metrics=metrics
        )
        self.maintenance_interval_s = maintenance_interval_s
        # Why the last event could not be applied to the database; None once one was (the worker's health).
        self._db_error: str | None = None

    def _backoff(self, attempt: int) -> float:
        # Capped exponential with jitter, so a fleet of workers does not reconnect in lockstep after a broker restart.
        ceiling = min(self.reconnect_max_s, self.reconnect_min_s * 2.0 ** min(attempt, 30))
        return ceiling * self._random.uniform(0.5, 1.0)

    def health(self) -> Health:
        subscribed = self.subscribed.is_set()
        database = self._db_error is None
        return Health(
            self.name,
            (
                Check("broker", subscribed, "" if subscribed else "not subscribed"),
                Check("database", database, self._db_error or ""),
            ),
        )

    async def run(self) -> None:
        """Consume events, watch SLA clocks and export lifecycle points until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._consume(), name="rules-consumer")
            tg.create_task(self.monitor.run(self.tick_interval_s), name="rules-sla-monitor")
            if self.exporter is not None:
                tg.create_task(self.exporter.run(self.tick_interval_s), name="rules-lifecycle-export")
            tg.create_task(self.fire_checks.run(self.fire_check_interval_s), name="rules-fire-checks")
            tg.create_task(self.maintenance.run(self.maintenance_interval_s), name="rules-maintenance")
            if self.fire_intact is not None:
                tg.create_task(self.fire_intact.consume(self._panel_client), name="rules-fire-intact")
                tg.create_task(self.fire_intact.run_flusher(self.tick_interval_s), name="rules-fire-intact-write")
            tg.create_task(self.state_ticker.run(self.tick_interval_s), name="rules-state-ticks")

    def _panel_client(self) -> aiomqtt.Client:
        # A clean session of its own at QoS 0: readings supersede each other, unlike events (see rules.fire_intact).
        return aiomqtt.Client(
            self.mqtt_host,
            self.mqtt_port,
            identifier=f"{self.client_id}-fire-intact",
            username=self.mqtt_username,
            password=self._mqtt_password,
            clean_session=True,
            protocol=aiomqtt.ProtocolVersion.V311,
        )

    async def _register_panel(self, site: str, building: str, device: str, seen_at: datetime) -> None:
        await asyncio.to_thread(register_panel, self.engine, site, building, device, seen_at)

    async def _consume(self) -> None:
        """Consume events until cancelled, reconnecting whenever the broker goes away."""
        attempt = 0
        while True:
            client = aiomqtt.Client(
                self.mqtt_host,
                self.mqtt_port,
                identifier=self.client_id,
                username=self.mqtt_username,
                password=self._mqtt_password,
                clean_session=False,
                protocol=aiomqtt.ProtocolVersion.V311,
            )
            # aiomqtt 2.x has no manual-ack option of its own, so this reaches into its paho client (`_client`);
            # fine while aiomqtt is pinned <3, to be revisited on upgrade. Paho then PUBACKs only when told to.
            client._client.manual_ack_set(True)
            try:
                async with client:
                    await client.subscribe([(topic, 1) for topic in self.topics])
                    attempt = 0
                    self.subscribed.set()
                    log.info("rules worker subscribed", topics=self.topics, client_id=self.client_id)
                    async for message in client.messages:
                        await self._handle(message)
                        client._client.ack(message.mid, message.qos)
            except aiomqtt.MqttError as exc:
                self.metrics.inc("rules_mqtt_disconnects")
                log.warning("mqtt connection lost", error=str(exc), host=self.mqtt_host, port=self.mqtt_port)
            finally:
                self.subscribed.clear()
            await asyncio.sleep(self._backoff(attempt))
            attempt += 1

    async def _handle(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        self.metrics.inc("rules_events_received")
        try:
            event = parse_event(topic, message.payload)
        except RejectedMessage as exc:
            # Acked and skipped: a payload that does not decode now will not decode on redelivery either.
            self.metrics.inc("rules_events_rejected", reason=exc.kind)
            log.warning("event rejected", topic=topic, reason=str(exc))
            return
        result = await self._apply(event)
        if result.duplicate:
            self.metrics.inc("rules_events_duplicate")
            return
        self.metrics.inc("rules_events_applied")
        if result.opened:
            self.metrics.inc("rules_work_orders_opened", len(result.opened))
            log.info("work order opened", ids=result.opened, site=event.ref.site, device=event.ref.device)
        if result.recurred:
            self.metrics.inc("rules_work_orders_recurred", len(result.recurred))

    async def _fire_alarms(self, event: Event, signals: list[FireAlarmSignal], now: datetime) -> None:
        raised = await asyncio.to_thread(record_fire_signals, self.engine, signals, now)
        if raised:
            self.metrics.inc("rules_fire_alarms", len(raised))
            log.error("FIRE ALARM", ids=raised, site=event.ref.site, device=event.ref.device, point=event.point)

    async def _apply_state(self, event: Event, now: datetime) -> None:
        state = await asyncio.to_thread(apply_state_event, self.engine, event, self.state_rules, self.sites, now)
        if state.opened:
            self.metrics.inc("rules_work_orders_opened", len(state.opened))
            log.info("work order opened by a state rule", ids=state.opened, device=event.ref.device)
        if state.holds_started:
            self.metrics.inc("rules_holds_started", state.holds_started)
        if state.holds_cancelled:
            self.metrics.inc("rules_holds_cancelled", state.holds_cancelled)

    async def _apply(self, event: Event) -> ApplyResult:
        """Evaluate and apply; while the database is unreachable, keep retrying this event (it stays unacked)."""
        attempt = 0
        while True:
            now = self.clock.now()
            actions = evaluate(self.rules, event, now)
            fire = [a for a in actions if isinstance(a, FireAlarmSignal)]
            try:
                if fire:
                    # Before apply_event, which claims the event id: recording is idempotent by event id itself, so
                    # a crash in between records nothing twice and loses nothing on redelivery.
                    await self._fire_alarms(event, fire, now)
                result = await asyncio.to_thread(
                    apply_with_site_evidence,
                    self.engine,
                    event,
                    actions,
                    now,
                    technicians=self.technicians.get(event.ref.site, ()),
                    metrics=self.metrics,
                    min_inspection=self.maintenance_min_inspection,
                )
                # After the event rules' commit, under a claim of its own: a crash in between is mended by the
                # redelivery (the event rules find their claim taken, the state rules do not).
                await self._apply_state(event, now)
                self._db_error = None
                return result
            except OperationalError as exc:
                self.metrics.inc("rules_db_retries")
                self._db_error = f"database unavailable: {exc.orig}"[:300]
                delay = self._backoff(attempt)
                attempt += 1
                log.warning("database unavailable", error=str(exc.orig), event_id=event.id, retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)
