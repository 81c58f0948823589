"""The historian: everything on the MQTT backbone, into InfluxDB, through outages of either.

MQTT side: a persistent session (fixed client id, clean_session=False, QoS 1), so while the historian is away the
broker queues what it misses. A fresh client per connection: messages one connection delivered but we had not
stored were never acknowledged, so the broker delivers them again.

Several historians side by side (`share_group`, FACMON_HISTORIAN_SHARE_GROUP): each subscribes over MQTT 5 on a
shared subscription, `$share/<group>/facmon/v1/...`, still with its own persistent session (its own client id) and
manual acks, and the broker gives each message to one member of the group. Mosquitto 2.0.11 keeps queueing a
member's share while it is away with its persistent session (that session stays a member), and a message the member
received but did not acknowledge is delivered again to that session when it comes back, not to another member:
a historian that dies must be started again under the same instance, or its share waits at the broker.

In between: each payload is decoded; what does not decode (or is about another topic than the one it came on) is
logged, counted as `historian_rejected{reason}` and republished to the dead-letter topic with the reason. The rest
becomes line protocol in the durable buffer.

InfluxDB side: the writer (see writer.py) drains the buffer in batches, on its own task, so an InfluxDB outage only
makes the buffer grow.

Acknowledgement: manual. A message is acknowledged to the broker only once its line, or its dead letter, is
committed to the buffer's file; what was received but not yet stored when the process dies is delivered again by
the broker. While the disk is full (lines held in memory, see buffer.py) acknowledgements wait too, so the broker
keeps the messages and slows to its in-flight window. Dead letters wait in the buffer's file too (at most 10,000,
the oldest dropped and counted) until the broker acknowledges their publish. A crash, a broker outage, an InfluxDB
outage or a full disk loses nothing.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

import aiomqtt
import structlog

from facmon.historian.buffer import LineBuffer
from facmon.historian.dead_letters import REASON_MAX_CHARS, dead_letter_record, safe_text
from facmon.historian.lines import DeclaredFields, Unstorable, to_line
from facmon.historian.writer import InfluxWriter
from facmon.kernel.backoff import backoff_delays
from facmon.kernel.batches import batch_of, decode_batch
from facmon.kernel.clock import Clock, SystemClock
from facmon.kernel.health import Check, Health
from facmon.kernel.influx import InfluxSettings
from facmon.kernel.metrics import Counters
from facmon.kernel.model import Event, Reading, decode_message
from facmon.kernel.mqtt import MqttClient, MqttSettings, mqtt_client
from facmon.kernel.topics import DEAD_LETTER, EVENT, STATE, subscription, topic_for

log = structlog.get_logger(__name__)

# Messages, and lines, handed to the buffer in one transaction at most (a commit per message would cap the
# throughput; a bigger burst would hold up the event loop).
_APPEND_BATCH = 5000
LEAVES = (STATE, EVENT)


class Historian:
    """Runs once: `run()` closes the buffer when it ends."""

    name = "historian"

    def __init__(
        self,
        *,
        mqtt: MqttSettings,
        influx: InfluxSettings,
        state_dir: Path,
        metrics: Counters,
        site: str = "+",
        share_group: str | None = None,
        flush_interval_s: float = 1.0,
        backoff_max_s: float = 30.0,
        clock: Clock | None = None,
        declared: DeclaredFields | None = None,
    ) -> None:
        """`mqtt` needs a fixed client id: the broker keeps the historian's persistent session under it. `declared`:
        the site files' devices and their drivers' fields, the only ones stored (None: everything, for tests).
        `share_group`: the MQTT 5 shared subscription group of the historians side by side (None: a plain
        subscription, MQTT as `mqtt` says)."""
        if mqtt.client_id is None:
            raise ValueError("the historian needs a fixed MQTT client id (its persistent session)")
        # A persistent session; and our PUBACKs must not wait for Nagle's algorithm: the broker keeps only a small
        # window of QoS 1 messages in flight to us, and every delayed PUBACK stalls it.
        self.mqtt = replace(mqtt, clean=False, tcp_nodelay=True)
        if share_group:
            # Shared subscriptions are MQTT 5's.
            self.mqtt = replace(self.mqtt, protocol=aiomqtt.ProtocolVersion.V5)
        self.share_group = share_group or None
        self.client_id = mqtt.client_id
        self.site = site
        self.declared = declared
        self.backoff_max_s = backoff_max_s
        self._metrics = metrics
        self._clock = clock or SystemClock()
        self._rng = random.Random()
        self.buffer = LineBuffer(state_dir / "buffer.sqlite")
        self.writer = InfluxWriter(
            influx,
            buffer=self.buffer,
            metrics=metrics,
            flush_interval_s=flush_interval_s,
            backoff_max_s=backoff_max_s,
            clock=self._clock,
        )
        metrics.gauge("historian_buffer_pending", self.buffer.pending, "points in the buffer not yet in InfluxDB")
        metrics.gauge(
            "historian_buffer_memory", self.buffer.memory_size, "points held in memory while the disk is full"
        )
        # Messages received whose lines wait in memory for room on the disk: acknowledged once they are on it.
        self._held: list[tuple[MqttClient, aiomqtt.Message]] = []
        # Set while subscribed: from then on the broker keeps what we miss, even across our own restarts.
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        log.info("historian starting", influx=self.writer.url, db=self.writer.db, backlog=self.buffer.pending())
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.writer.run(), name="historian-writer")
                tg.create_task(self._consume(), name="historian-mqtt")
                tg.create_task(self._release_when_stored(), name="historian-release")
        finally:
            self.buffer.close()

    def health(self) -> Health:
        subscribed = self.subscribed.is_set()
        error = self.writer.last_error
        return Health(
            self.name,
            (
                Check("broker", subscribed, "" if subscribed else "not subscribed"),
                Check("influxdb", error is None, error or ""),
                _buffer_check(self.buffer),
            ),
        )

    async def _consume(self) -> NoReturn:
        delays = backoff_delays(min(0.1, self.backoff_max_s), self.backoff_max_s, self._rng)
        while True:
            # A fresh client per connection: a message is acknowledged on the connection it came on, and what an
            # earlier connection delivered but we had not stored is delivered again by the broker.
            client = mqtt_client(self.mqtt, manual_ack=True)
            try:
                async with client:
                    await client.subscribe([(self._shared(subscription(self.site, leaf=leaf)), 1) for leaf in LEAVES])
                    self.subscribed.set()
                    delays = backoff_delays(min(0.1, self.backoff_max_s), self.backoff_max_s, self._rng)
                    log.info(
                        "subscribed",
                        host=self.mqtt.host,
                        port=self.mqtt.port,
                        client_id=self.client_id,
                        share_group=self.share_group,
                    )
                    await self._publish_dead_letters(client)
                    await self._ingest(client)
            except aiomqtt.MqttError as exc:
                self.subscribed.clear()
                self._metrics.inc("historian_mqtt_disconnects")
                delay = next(delays)
                log.warning("broker unreachable, retrying", error=str(exc), retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)

    def _shared(self, topic: str) -> str:
        """`topic` as the historian subscribes to it: `$share/<group>/<topic>` in a share group, else itself."""
        return f"$share/{self.share_group}/{topic}" if self.share_group else topic

    async def _ingest(self, client: MqttClient) -> None:
        """Store what arrives, then acknowledge it: a message is acked only once its lines (or its dead letters) are
        committed to the buffer's file, so a crash at any point loses nothing the broker let go of. What was
        received but not stored when the connection or the process ends is not acked, and comes again. Messages
        that arrived together (a burst, up to _APPEND_BATCH) share one transaction, and their acks go together."""
        async for first in client.messages:
            received = [first]
            lines: list[str] = []
            letters: list[bytes] = []
            while True:
                lines += self._accept(received[-1].topic.value, received[-1].payload, letters)
                # Up to a burst's worth of points: the loop's other tasks (the writer) get their turn between two.
                more = client.ready(1) if len(lines) < _APPEND_BATCH and len(received) < _APPEND_BATCH else []
                if not more:
                    break
                received += more
            self._store(lines, letters)
            self._held.extend((client, done) for done in received)
            if not self.buffer.memory_size():
                self._release()
            # Else the disk is full and lines wait in memory: their messages stay unacknowledged (the broker
            # stops at its window of messages in flight to us) until `_release_when_stored` sees them on disk.
            if self.buffer.dead_letters_waiting():
                await self._publish_dead_letters(client)

    def _release(self) -> None:
        """Acknowledge the held messages, now that what they became is in the buffer's file."""
        held, self._held = self._held, []
        by_client: dict[MqttClient, list[aiomqtt.Message]] = {}
        for client, message in held:
            by_client.setdefault(client, []).append(message)
        for client, messages in by_client.items():
            # On the connection they came on, in one write; a connection gone meanwhile redelivers them.
            client.ack_many(messages)

    async def _release_when_stored(self) -> NoReturn:
        """While messages are held for a full disk, try the disk again every second and release them once it took
        their lines (the writer's acks free room too)."""
        while True:
            await self._clock.sleep(1.0)
            if self._held:
                self.buffer.retry_memory()
                if not self.buffer.memory_size():
                    self._release()

    def _store(self, lines: list[str], letters: list[bytes]) -> None:
        if lines:
            if dropped := self.buffer.append(lines):
                self._metrics.inc("historian_buffer_memory_dropped", dropped)
            self.writer.notify()
        if letters and (dropped := self.buffer.keep_dead_letters(letters)):
            self._metrics.inc("historian_dead_letters_dropped", dropped)

    def _accept(self, topic: str, payload: object, letters: list[bytes]) -> list[str]:
        """The lines to store for a message (none when it was rejected), its dead letters added to `letters`."""
        self._metrics.inc("historian_received")
        data = payload if isinstance(payload, bytes) else str(payload).encode("utf-8", "surrogatepass")
        where = batch_of(topic)
        if where is not None:
            return self._accept_batch(topic, data, where, letters)
        try:
            message = decode_message(data)
        except ValueError as exc:
            letters.append(self._reject(topic, data, _reason_label(str(exc)), str(exc)))
            return []
        expected = topic_for(message)
        if expected != topic:
            letters.append(self._reject(topic, data, "topic_mismatch", f"payload belongs on {expected}"))
            return []
        self._metrics.inc(
            "historian_readings_received" if isinstance(message, Reading) else "historian_events_received"
        )
        line = self._line(topic, message, data, letters)
        return [] if line is None else [line]

    def _accept_batch(self, topic: str, data: bytes, where: tuple[str, str], letters: list[bytes]) -> list[str]:
        """The lines of a batch's readings; the batch, or each reading of it that cannot be used, dead-lettered."""
        try:
            decoded = decode_batch(data, *where)
        except ValueError as exc:
            letters.append(self._reject(topic, data, _reason_label(str(exc)), str(exc)))
            return []
        for item, reason in decoded.refused:
            letters.append(self._reject(topic, json.dumps(item).encode(), _reason_label(reason), reason))
        self._metrics.inc("historian_readings_received", len(decoded.readings))
        lines = []
        for reading in decoded.readings:
            line = self._line(topic, reading, None, letters)
            if line is not None:
                lines.append(line)
        return lines

    def _line(self, topic: str, message: Reading | Event, data: bytes | None, letters: list[bytes]) -> str | None:
        """The line of a decoded message (`data`: its payload, None for a reading of a batch), or None."""

        def raw() -> bytes:
            return data if data is not None else message.model_dump_json().encode()

        if self.declared is not None and not self.declared.whole(message):
            screened = self.declared.screen(message)
            if screened.label:
                # What is declared is stored; the rest is counted (fields, and the message by reason) and parked.
                self._metrics.inc("historian_fields_refused", screened.refused)
                letters.append(self._reject(topic, raw(), screened.label, screened.reason))
            if screened.message is None:
                return None
            message = screened.message
        try:
            line = to_line(message)
        except Unstorable as exc:
            letters.append(self._reject(topic, raw(), "unstorable", str(exc)))
            return None
        if line is None:
            letters.append(self._reject(topic, raw(), "no_fields", "reading has no value InfluxDB can store"))
        return line

    def _reject(self, topic: str, payload: bytes, label: str, reason: str) -> bytes:
        """Count and log a refused message; its dead letter, ready to publish."""
        self._metrics.inc("historian_rejected", reason=label)
        reason = safe_text(reason, REASON_MAX_CHARS)
        log.warning("rejected payload", topic=topic, reason=reason)
        return dead_letter_record(topic, payload, label, reason, self._clock.now())

    async def _publish_dead_letters(self, client: aiomqtt.Client) -> None:
        """Publish the kept dead letters, oldest first; each leaves the file only after the broker's PUBACK."""
        while batch := self.buffer.dead_letters(100):
            for id_, record in batch:
                await client.publish(DEAD_LETTER, record, qos=1)
                self.buffer.dead_letters_sent([id_])
                self._metrics.inc("historian_dead_lettered")


def _buffer_check(buffer: LineBuffer) -> Check:
    full = buffer.full
    if full is None:
        return Check("buffer", True, f"{buffer.pending()} point(s) waiting")
    return Check("buffer", False, f"disk full ({full}); {buffer.memory_size()} point(s) held in memory")


def _reason_label(reason: str) -> str:
    """A short, bounded label for a decode error (the full text goes to the log and the dead letter)."""
    if reason.startswith("not JSON"):
        return "not_json"
    if reason.startswith("payload is not a JSON object"):
        return "not_object"
    if reason.startswith("invalid event"):
        return "invalid_event"
    if reason.startswith("invalid batch"):
        return "invalid_batch"
    if reason.startswith("topic_mismatch"):
        return "topic_mismatch"
    return "invalid_reading"
