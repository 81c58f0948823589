"""The rules worker: events from the MQTT backbone in, work orders out.

Delivery is at-least-once end to end. The worker holds a persistent session (clean_session=False, QoS 1), so the
broker queues events while it is away, and it acknowledges a message only after the event's transaction has
committed (paho's manual acks), so a crash between receiving and committing gets the message redelivered. A
redelivered event is then recognised by its id in `processed_events` and changes nothing.

One event is handled at a time, in arrival order; the database work runs in a thread so the event loop keeps
serving the MQTT connection (keepalives, acks) while SQLite or PostgreSQL is busy.

Failures: a payload that cannot be used (whatever it holds: see `decode_message`) is logged with its topic and a
bounded reason, counted, acknowledged and skipped (it would fail the same way on redelivery). An unreachable database
is retried in place with backoff, the event held unacknowledged. An event that breaks a handler with what it holds
(data the database refuses, a time past year 9999) is logged without its payload, counted and acknowledged too:
redelivered, it would stop the worker on every restart and hold up every event behind it. Anything else ends `run()`;
the event is redelivered to the next run.

Time: an event stamped more than a few minutes ahead of the worker's clock (a gateway whose clock ran ahead) is taken
as happening now, so it cannot outrank the events its device sends once its clock is right again.

Several workers side by side (`Broker.share_group`, FACMON_RULES_SHARE_GROUP): the worker subscribes on an MQTT 5
shared subscription, `$share/<group>/facmon/v1/...`, still with its persistent session and manual acks, and the
broker gives each event to one worker of the group. Everything an event needs is in the database: its claim, its
device's lock and the events' own times decide what it changes (rules.pipeline), so any worker can take any event,
in any order. Mosquitto 2 goes on queueing a share of the events to a member's persistent session while it is away
and delivers them (and those it had not acknowledged) when it returns, so a worker that dies is started again under
its own client id. A shared subscription gets no retained messages.

Each event is evaluated by the event rules (rules.engine) and applied by the handlers of rules.pipeline in one
transaction: its fire alarms, its work orders, the site's evidence (rules.arrival) and the state rules. The periodic
parts (SLA breaches, lifecycle export, fire checks, maintenance visits, the state rules' timer) are monitors of their
own (rules.monitors), started by the composition root next to the worker.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import aiomqtt
import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, StatementError

from facmon.estate.entries import Technician
from facmon.estate.site import Site
from facmon.kernel.backoff import Backoff
from facmon.kernel.clock import Clock, not_ahead
from facmon.kernel.health import Check, Health
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeadLetter, Event, EventType, decode_message
from facmon.kernel.mqtt import MqttSettings, MqttTls, mqtt_client
from facmon.kernel.topics import EVENT, dead_letter_topic, event_topic, subscription
from facmon.kernel.untrusted import printable
from rules.arrival import site_evidence
from rules.engine import FAULT_KEY_MAX, Rule, evaluate, fault_key, load_rules
from rules.evidence import DEFAULT_WINDOW
from rules.fire import FireAlarms
from rules.maintenance_visits import DEFAULT_MIN_INSPECTION
from rules.pipeline import Handler, Outcome, refusal, report, run_handlers
from rules.state_rules import StateRules, load_state_rules
from rules.state_store import ApplyStateRules

log = structlog.get_logger(__name__)

EVENT_TOPICS = subscription(leaf=EVENT)  # facmon/v1/+/+/+/event
# Column widths of the tables; longer values are refused here rather than failing in the database forever.
_MAX_ID_LEN = 64
# Characters of a topic, reason or error in a log line: enough to tell what happened, never a payload dump.
_MAX_LOGGED = 300
# What applying one event can raise because of what the event holds rather than because the database is away: data
# the database refuses, date arithmetic past year 9999, a value a handler cannot take.
_EVENT_FAILURES = (DataError, IntegrityError, StatementError, OverflowError, ValueError, TypeError, KeyError)


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


@dataclass(frozen=True)
class Broker:
    """The backbone broker as the worker meets it: where, under which stable client id, and how it reconnects."""

    host: str
    port: int
    client_id: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    tls: MqttTls | None = None
    # Several workers side by side: the MQTT 5 shared subscription group they take the events in (each event to one
    # of them); None: one worker, a plain subscription.
    share_group: str | None = None

    def mqtt(self, *, suffix: str = "", clean: bool = True) -> MqttSettings:
        """The client settings of one of the worker's connections (`suffix` tells its client id apart); MQTT 5 when
        the worker is one of a share group."""
        identity = self.client_id + suffix
        protocol = aiomqtt.ProtocolVersion.V5 if self.share_group else aiomqtt.ProtocolVersion.V311
        return MqttSettings(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            client_id=identity,
            clean=clean,
            protocol=protocol,
        ).with_tls(self.tls)

    def shared(self, topic: str) -> str:
        """`topic` as the worker subscribes to it: `$share/<group>/<topic>` in a share group, else itself."""
        return f"$share/{self.share_group}/{topic}" if self.share_group else topic


class RulesWorker:
    name = "rules"

    def __init__(
        self,
        broker: Broker,
        *,
        engine: Engine,
        clock: Clock,
        metrics: Counters,
        rules: Sequence[Rule] | None = None,
        sites: Sequence[Site] | None = None,
        state_rules: StateRules | None = None,
        min_inspection: timedelta = DEFAULT_MIN_INSPECTION,
        evidence_window: timedelta = DEFAULT_WINDOW,
    ) -> None:
        if not broker.client_id:
            # The broker keeps the persistent session under this id; a random one would lose it on restart.
            raise ValueError("client_id must be set and stable across restarts")
        if min_inspection < timedelta(0):
            raise ValueError("the minimum inspection time cannot be negative")
        self.broker = broker
        self.engine = engine
        self.clock = clock
        self.metrics = metrics
        self.rules: tuple[Rule, ...] = load_rules() if rules is None else tuple(rules)
        # Set while connected and subscribed; tests and health checks wait on it.
        self.subscribed = asyncio.Event()
        self._reconnect = Backoff(broker.reconnect_min_s, broker.reconnect_max_s, random.Random())
        if sites is None:
            log.warning("no site file given: card reads will not move work orders to on_site")
        self.sites: dict[str, Site] = {s.id: s for s in sites or ()}
        # The events of its sites only, when it has site files; the broker keeps each device's last comm event
        # (retained), and a worker learns those of its own sites when it subscribes.
        topics = [subscription(site, leaf=EVENT) for site in self.sites] or [EVENT_TOPICS]
        self.topics = [broker.shared(topic) for topic in topics]
        self.state_rules = load_state_rules() if state_rules is None else state_rules
        self.handlers = self._handlers(min_inspection, evidence_window)
        # Why the last event could not be applied to the database; None once one was (the worker's health).
        self._db_error: str | None = None

    def _handlers(self, min_inspection: timedelta, evidence_window: timedelta) -> list[Handler]:
        """What an event goes through, in order: fire alarms first, then its work orders with the site's evidence
        (card reads prove arrival with the sites' technicians), then the state rules."""
        technicians: dict[str, Sequence[Technician]] = {s.id: tuple(s.technicians) for s in self.sites.values()}
        return [
            FireAlarms(),
            *site_evidence(technicians, min_inspection, evidence_window),
            ApplyStateRules(self.state_rules, self.sites),
        ]

    def _backoff(self, attempt: int) -> float:
        # With jitter, so a fleet of workers does not reconnect in lockstep after a broker restart (attempts from 0).
        return self._reconnect.delay(attempt + 1)

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
        """Consume events until cancelled."""
        await self._consume()

    async def _consume(self) -> None:
        """Consume events until cancelled, reconnecting whenever the broker goes away."""
        attempt = 0
        while True:
            # A persistent session, and a message is acknowledged to the broker only once it is applied.
            client = mqtt_client(
                self.broker.mqtt(clean=False),
                manual_ack=True,
            )
            try:
                async with client:
                    await client.subscribe([(topic, 1) for topic in self.topics])
                    attempt = 0
                    self.subscribed.set()
                    log.info("rules worker subscribed", topics=self.topics, client_id=self.broker.client_id)
                    async for message in client.messages:
                        await self._handle(message, client)
                        client.ack(message)
            except aiomqtt.MqttError as exc:
                self.metrics.inc("rules_mqtt_disconnects")
                log.warning("mqtt connection lost", error=str(exc), host=self.broker.host, port=self.broker.port)
            finally:
                self.subscribed.clear()
            await asyncio.sleep(self._backoff(attempt))
            attempt += 1

    async def _handle(self, message: aiomqtt.Message, client: aiomqtt.Client) -> None:
        topic = printable(message.topic.value, _MAX_LOGGED)
        self.metrics.inc("rules_events_received")
        try:
            event = parse_event(topic, message.payload)
        except RejectedMessage as exc:
            # Acked and skipped: a payload that does not decode now will not decode on redelivery either. The
            # historian parks the same message on the dead-letter topic; here it is counted and logged, bounded.
            self.metrics.inc("rules_events_rejected", reason=exc.kind)
            log.warning("event rejected", topic=topic, reason=printable(str(exc), _MAX_LOGGED))
            return
        refused = refusal(self.sites, event) if self.sites else None
        if refused is not None:
            # Acked and parked: a device the site files do not have opens nothing, and it will not on redelivery.
            code, reason = refused
            self.metrics.inc("rules_events_refused", reason=code)
            log.warning("event refused", topic=topic, reason=reason)
            payload = event.model_dump_json()
            letter = DeadLetter(
                site=event.ref.site,
                ref=event.ref,
                ts=self.clock.now(),
                source="rules",
                reason=reason,
                topic=topic,
                payload=payload,
            )
            await client.publish(dead_letter_topic(event.ref.site, event.ref.device), letter.model_dump_json(), qos=1)
            return
        # The sender's clock is not ours: an event stamped in the future (a gateway whose clock ran ahead) is taken
        # as happening now, or it would outrank every later event of its device until that future came.
        now = self.clock.now()
        if not_ahead(event.ts, now) != event.ts:
            self.metrics.inc("rules_events_from_future")
            log.warning("event from the future taken as now", event_id=event.id, ts=event.ts.isoformat())
            event = event.model_copy(update={"ts": now})
        try:
            await self._apply(event)
        except _EVENT_FAILURES as exc:
            # This event breaks a handler. Redelivered, it would break it again on every restart and hold up every
            # later event behind it; so it is counted, logged without its payload, and acked.
            self.metrics.inc("rules_events_failed", error=type(exc).__name__)
            log.error(
                "event failed and was skipped",
                topic=topic,
                event_id=event.id,
                error=type(exc).__name__,
                detail=printable(str(exc), _MAX_LOGGED),
            )

    async def _apply(self, event: Event) -> Outcome:
        """Evaluate and apply, then count; while the database is unreachable, keep retrying this event (it stays
        unacked)."""
        attempt = 0
        while True:
            now = self.clock.now()
            actions = evaluate(self.rules, event, now)
            try:
                outcome = await asyncio.to_thread(run_handlers, self.engine, event, actions, now, self.handlers)
            except OperationalError as exc:
                self.metrics.inc("rules_db_retries")
                self._db_error = f"database unavailable: {exc.orig}"[:300]
                delay = self._backoff(attempt)
                attempt += 1
                log.warning("database unavailable", error=str(exc.orig), event_id=event.id, retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)
                continue
            self._db_error = None
            report(outcome, event, self.metrics)
            return outcome
