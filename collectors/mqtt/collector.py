"""Listen to one site's MQTT devices on their vendor broker and turn their payloads into Readings and Events.

One subscription per distinct topic pattern of the site's drivers; the topic's `{vendor_id}` level says which device
spoke, its `{message}` level which message. What decodes goes to the `Emit`; what does not (bad JSON, unknown
fields, wrong types, values out of range, unknown message types, a device the site does not have) goes to the
`Reject` as a dead letter with a reason naming the device and field, and is counted per device and reason. Nothing
a device sends can stop the collector.

The vendor session is the site's, not the gateway's: one persistent session (client id `facmon-vendor-<site>`, QoS 1,
MQTT 5) that whichever gateway of the site is connected holds, so a message is heard by one gateway and stored once
even when two gateways run for the site. The broker gives the session to the gateway that connected last and
closes the other's connection. A gateway that loses its connection TAKEOVER_DROPS times within TAKEOVER_WINDOW_S,
each time just after connecting (two gateways evicting each other), or that the broker tells so (MQTT 5 reason
"session taken over", which Mosquitto 2.0.11 does not send), stands by for `standby_s` with its heartbeat watchdog
quiet (it hears nothing) and then takes the session back. So two gateways take turns, a gateway that dies is stood
in for within `standby_s`, and nothing sent meanwhile is lost (the broker queues it in the session).

Conditions (faults) are reported on their edges: a camera that repeats an active alarm every heartbeat raises it
once. A clear for a condition we have not seen raised (after a restart) is passed on, so its work order can close.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

import aiomqtt
import structlog

from collectors.mqtt.codec import Meaning, PayloadError, Problem, interpret, parse
from collectors.mqtt.driver import MqttDriver
from collectors.mqtt.watchdog import HeartbeatWatchdog
from facmon.kernel.backoff import backoff_delays
from facmon.kernel.clock import Clock, utc
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeadLetter, DeviceRef, Emit, Event, EventType, Reading, Reject, Store
from facmon.kernel.mqtt import MqttClient, MqttSettings, MqttTls, mqtt_client

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class MqttDevice:
    ref: DeviceRef
    driver: MqttDriver
    vendor_id: str
    grace_s: float


@dataclass(frozen=True)
class BrokerSettings:
    """The broker the devices publish to, how to log in to it (credentials, TLS), the prefix of their topics, and
    the longest wait before reconnecting to it."""

    host: str
    port: int
    topic_prefix: str = ""
    username: str | None = None
    password: str | None = None
    backoff_max_s: float = 30.0
    tls: MqttTls | None = None
    # How long a gateway whose session another gateway of the site took waits before taking it back.
    standby_s: float = 60.0

    def __post_init__(self) -> None:
        if self.backoff_max_s <= 0 or self.standby_s <= 0:
            raise ValueError("backoff_max_s and standby_s must be positive")


@dataclass
class _Device:
    spec: MqttDevice
    # Last known state of each condition; absent = unknown (never seen since start).
    conditions: dict[str, bool] = field(default_factory=dict)
    # Its `mqtt_messages` counter by message type, looked up once.
    counted: dict[str, Callable[[], None]] = field(default_factory=dict)


class MqttCollector:
    def __init__(
        self,
        site: str,
        devices: Sequence[MqttDevice],
        broker: BrokerSettings,
        *,
        emit: Emit,
        reject: Reject,
        clock: Clock,
        metrics: Counters,
        rng: random.Random | None = None,
        client_id: str | None = None,
        store: Store | None = None,
    ) -> None:
        """`client_id` names the site's persistent session at the vendor broker (default `facmon-vendor-<site>`):
        stable across restarts, and the same for every gateway of the site (one of them holds it at a time).
        `store`: where what a burst of messages became goes at once, in one transaction (default: to `emit` and
        `reject` one by one)."""
        self.site = site
        self.client_id = client_id or f"facmon-vendor-{site}"
        self.broker = broker
        self._emit = emit
        self._reject = reject
        self._store = store
        # While a burst is handled: what its messages became, stored together before they are acknowledged.
        self._staged: list[Reading | Event | DeadLetter] | None = None
        self._clock = clock
        self._metrics = metrics
        self._rng = rng or random.Random()
        # Devices by (topic pattern, vendor id): two vendors may both number their devices from 1.
        self._routes: dict[tuple[str, str], _Device] = {}
        # (device, message) by topic, for the topics of the site's devices and their drivers' messages: found once.
        self._topics: dict[str, tuple[_Device, str]] = {}
        self._patterns: dict[str, MqttDriver] = {}
        for device in devices:
            key = (device.driver.topic, device.vendor_id)
            if key in self._routes:
                raise ValueError(f"{device.ref.device}: vendor id {device.vendor_id!r} is already another device's")
            self._routes[key] = _Device(device)
            self._patterns.setdefault(device.driver.topic, device.driver)
        self.watchdog = HeartbeatWatchdog([(d.ref, d.grace_s) for d in devices], emit=emit, clock=clock)
        # Set while subscribed (tests wait for it before publishing).
        self.connected = asyncio.Event()

    @property
    def name(self) -> str:
        return "mqtt-collector"

    @property
    def subscriptions(self) -> list[str]:
        return [driver.subscription(self.broker.topic_prefix) for driver in self._patterns.values()]

    async def run(self) -> NoReturn:
        """Collect until cancelled; broker and device problems are logged, counted and retried, never raised."""
        self.watchdog.restart()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.watchdog.run(), name=f"mqtt-watchdog-{self.site}")
            await self._listen()

    async def _listen(self) -> NoReturn:
        """A persistent session under a stable client id, QoS 1, and manual acknowledgement: while the gateway is
        away the vendor broker keeps what the devices send, and a message is acknowledged only once what it became
        (readings, events or its dead letter) is in the outbox, so a crash or restart loses no vendor message.
        Messages that arrived together (up to _BURST) are handled together: one outbox transaction, then their
        acknowledgements."""
        delays = backoff_delays(min(0.1, self.broker.backoff_max_s), self.broker.backoff_max_s, self._rng)
        drops: deque[float] = deque()  # when recent connections ended, each after it had been made (loop time)
        while True:
            held = False
            client = self._client()
            try:
                async with client:
                    for topic in self.subscriptions:
                        await client.subscribe(topic, qos=1)
                    if self.watchdog.standing_by:
                        self.watchdog.resume()
                    held = True
                    self.connected.set()
                    self._metrics.inc("mqtt_connects", site=self.site)
                    log.info(
                        "listening to devices",
                        host=self.broker.host,
                        port=self.broker.port,
                        topics=self.subscriptions,
                        client_id=self.client_id,
                    )
                    delays = backoff_delays(min(0.1, self.broker.backoff_max_s), self.broker.backoff_max_s, self._rng)
                    while True:
                        await self._burst(client, await client.burst(_BURST))
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                if held and _taken_over(exc, drops, asyncio.get_running_loop().time()):
                    drops.clear()
                    await self._stand_by()
                    continue
                self._metrics.inc("mqtt_disconnects", site=self.site)
                delay = next(delays)
                log.warning("vendor broker unreachable, retrying", error=str(exc), retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)
            finally:
                self.connected.clear()

    async def _burst(self, client: MqttClient, messages: list[aiomqtt.Message]) -> None:
        """Handle messages that arrived together, store all they became in one transaction, then acknowledge them."""
        staged: list[Reading | Event | DeadLetter] = []
        self._staged = staged
        try:
            for message in messages:
                payload = message.payload
                data = payload if isinstance(payload, bytes) else str(payload).encode()
                await self.handle(message.topic.value, data, retained=message.retain)
        finally:
            self._staged = None
        if self._store is not None:
            await self._store(staged)
        else:
            for out in staged:
                await (self._reject(out) if isinstance(out, DeadLetter) else self._emit(out))
        client.ack_many(messages)

    async def _out(self, message: Reading | Event | DeadLetter) -> None:
        """Emit (or reject) `message`, or stage it while a burst is handled."""
        if self._staged is not None:
            self._staged.append(message)
        elif isinstance(message, DeadLetter):
            await self._reject(message)
        else:
            await self._emit(message)

    def _client(self) -> MqttClient:
        return mqtt_client(
            MqttSettings(
                self.broker.host,
                self.broker.port,
                username=self.broker.username,
                password=self.broker.password,
                client_id=self.client_id,
                clean=False,
                # MQTT 5: a broker that says so tells when another gateway of the site took the session.
                protocol=aiomqtt.ProtocolVersion.V5,
                tcp_nodelay=True,  # our PUBACKs hold the broker's window of messages in flight to us
            ).with_tls(self.broker.tls),
            manual_ack=True,
        )

    async def _stand_by(self) -> None:
        """Another gateway of the site holds the vendor session: leave it to it for `standby_s`, judging no silence."""
        self._metrics.inc("mqtt_session_taken_over", site=self.site)
        log.info(
            "another gateway of the site took the vendor session; standing by",
            client_id=self.client_id,
            retry_in_s=self.broker.standby_s,
        )
        self.watchdog.stand_by()
        await asyncio.sleep(self.broker.standby_s)

    async def handle(self, topic: str, payload: bytes, *, retained: bool = False) -> None:
        """One vendor message: emitted as readings and events, or rejected with the reason."""
        known = self._topics.get(topic)
        if known is None:
            vendor_id, message, device = self._route(topic)
            if device is None:
                detail = f"no device of site {self.site} has vendor id {vendor_id!r} (topic {topic!r})"
                await self._rejected(None, Problem.UNKNOWN_DEVICE, detail, topic, payload)
                return
            if message in device.spec.driver.messages:
                # Bounded: the site's devices times their drivers' message types.
                self._topics[topic] = (device, message)
        else:
            device, message = known
        spec = device.spec
        # A retained message is the broker's memory, not the device speaking now: it is no sign of life.
        if not retained and not self.watchdog.heard_again(spec.ref.device):
            await self.watchdog.heard(spec.ref.device)
        try:
            values = parse(spec.driver, message, payload)
        except PayloadError as exc:
            await self._rejected(spec.ref, exc.problem, f"{spec.ref.device}: {exc.detail}", topic, payload)
            return
        counted = device.counted.get(message)
        if counted is None:
            counted = device.counted[message] = self._metrics.counting(
                "mqtt_messages", device=spec.ref.device, message=message
            )
        counted()
        await self._act(device, interpret(spec.driver, message, values))

    def _route(self, topic: str) -> tuple[str | None, str, _Device | None]:
        """(vendor id, message, device) of a topic; the device is None when the site has none by that id."""
        for pattern, driver in self._patterns.items():
            found = driver.match(topic, self.broker.topic_prefix)
            if found is not None:
                vendor_id, message = found
                return vendor_id, message, self._routes.get((pattern, vendor_id))
        return None, "", None

    async def _act(self, device: _Device, meaning: Meaning) -> None:
        ref, ts = device.spec.ref, self._clock.now()
        if meaning.values:
            # Built without validation: `parse` checked every value against the driver (a bool, an int, a finite
            # float or a str each), `ref` is a checked DeviceRef, and `utc` is what validation does to the time.
            await self._out(Reading.model_construct(ref=ref, ts=utc(ts), values=meaning.values))
        if meaning.event is not None:
            type_, code, text, data = meaning.event
            await self._out(Event(ref=ref, ts=ts, type=type_, code=code, message=text, data=data))
        change = meaning.condition
        if change is None:
            return
        if device.conditions.get(change.code) == change.active:
            # Vendors repeat active alarms; the edge was reported already.
            self._metrics.inc("mqtt_repeats", device=ref.device, code=change.code)
            return
        device.conditions[change.code] = change.active
        if change.meaning.event == "status":
            event = Event(
                ref=ref,
                ts=ts,
                type=EventType.STATUS,
                code=change.code,
                message=change.meaning.message,
                data={"active": change.active},
            )
        else:
            type_ = EventType.FAULT_RAISED if change.active else EventType.FAULT_CLEARED
            event = Event(ref=ref, ts=ts, type=type_, code=change.code, message=change.meaning.message)
        log.info("device condition", device=ref.device, type=event.type.value, code=change.code)
        await self._out(event)

    async def _rejected(self, ref: DeviceRef | None, problem: Problem, reason: str, topic: str, payload: bytes) -> None:
        self._metrics.inc("mqtt_rejected", device=ref.device if ref else "_unknown", reason=problem.value)
        # DeadLetter.of keeps whatever the device sent storable: base64 for what is not text UTF-8 can carry, the
        # reason bounded and free of lone surrogates (it may quote the payload).
        letter = DeadLetter.of(
            site=self.site, ref=ref, ts=self._clock.now(), source="mqtt", reason=reason, payload=payload, topic=topic
        )
        await self._out(letter)


# Vendor messages handled, stored and acknowledged together at most.
_BURST = 1000
# MQTT 5's reason code for a session another connection with the same client id took over.
_SESSION_TAKEN_OVER = 142
# A held connection ended this many times within this window: another gateway of the site is taking the session.
TAKEOVER_DROPS = 3
TAKEOVER_WINDOW_S = 10.0


def _taken_over(exc: BaseException, drops: deque[float], now: float) -> bool:
    """Whether another gateway of the site took the session: the broker says so, or the connection ended
    TAKEOVER_DROPS times within TAKEOVER_WINDOW_S (`drops`, updated here) each time after it had been made."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, aiomqtt.MqttCodeError) and cause.rc == _SESSION_TAKEN_OVER:
            return True
        cause = cause.__cause__
    drops.append(now)
    while drops and drops[0] < now - TAKEOVER_WINDOW_S:
        drops.popleft()
    return len(drops) >= TAKEOVER_DROPS
