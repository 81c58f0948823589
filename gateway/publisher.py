"""Drains the outbox to the MQTT broker; a message leaves the outbox only after the broker's PUBACK.

Readings go in batches (`gateway.batching`): one publish, and one PUBACK, for many readings of a site and kind; the
PUBACK of a batch acknowledges every reading in it, in one outbox transaction with the others of its loop turn.

Gathering (`gather_s`, the gateway's 100 ms): woken from idle by a put of readings only, the publisher waits up to
`gather_s` more before reading the outbox, so the readings put meanwhile leave in one batch. Pollers put a few
readings at a time (`gateway.put_batch`); without it each of those went out as a batch of its own, and the broker,
the historian (a loop turn, a PUBACK and a buffer commit per message) and the publisher paid per handful of readings
instead of per fifty or a hundred. A put holding an event or a dead letter ends the wait at once, so a fault is
never held back; a reading waits at most `gather_s` longer, against poll intervals of a second and more. A backlog
(after a reconnect, under load) is sent without waiting: only a wake from idle gathers.

Delivery is at least once: a message whose PUBACK was lost with the connection is sent again after reconnecting.
Downstream this is harmless: the historian writes the same point (same series, same timestamp) twice, which
InfluxDB stores once, and events carry an id.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Sequence
from dataclasses import replace
from typing import NoReturn

import aiomqtt
import structlog

from facmon.kernel.backoff import backoff_delays
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeadLetter, Event, Reading
from facmon.kernel.mqtt import MqttSettings, mqtt_client
from gateway.batching import Outgoing, outgoing
from gateway.outbox import Outbox

log = structlog.get_logger(__name__)

# Replayed messages read from the outbox at a time.
_REPLAY_PAGE = 1000
# Outbox rows read at a time to be packed into publishes: several full batches.
_PAGE = 5000


class Publisher:
    def __init__(
        self,
        outbox: Outbox,
        *,
        mqtt: MqttSettings,
        client_id: str,
        metrics: Counters,
        backoff_max_s: float = 30.0,
        max_inflight: int = 100,
        idle_wait_s: float = 1.0,
        gather_s: float = 0.0,
    ) -> None:
        if max_inflight < 1:
            raise ValueError("max_inflight must be at least 1")
        if backoff_max_s <= 0 or idle_wait_s <= 0:
            raise ValueError("backoff_max_s and idle_wait_s must be positive")
        if not 0 <= gather_s <= 1:
            raise ValueError("gather_s must be between 0 and 1 s")
        self.outbox = outbox
        self.mqtt = mqtt  # the broker, its login and TLS; the client id and window are the publisher's own
        self.client_id = client_id
        self.backoff_max_s = backoff_max_s
        self.max_inflight = max_inflight
        self.idle_wait_s = idle_wait_s
        self.gather_s = gather_s
        self._metrics = metrics
        self._wakeup = asyncio.Event()
        # Set by a put holding an event or a dead letter since the last read of the outbox: no gathering then.
        self._urgent = asyncio.Event()
        self._acks: list[int] = []  # delivered outbox ids, deleted from the outbox soon after
        self._rng = random.Random()
        self.connected = asyncio.Event()
        # Set while connected with every message of the outbox sent (PUBACKs may be on their way), waiting for a
        # put; clear while there is something to send or no connection.
        self.idle = asyncio.Event()
        outbox.on_put(self._wakeup.set)
        outbox.on_urgent_put(self._urgent.set)

    async def emit(self, message: Reading | Event) -> None:
        """An `Emit` for collectors: the message is on disk when this returns, and the publisher is woken."""
        self.outbox.put(message)

    async def reject(self, letter: DeadLetter) -> None:
        """A `Reject` for collectors: the unusable input is counted, logged and parked on the dead-letter topic."""
        self._count_rejected(letter)
        self.outbox.put(letter)

    async def store(self, messages: Sequence[Reading | Event | DeadLetter]) -> None:
        """A `Store` for collectors: what a burst of input became, readings, events and dead letters (counted and
        logged as `reject` does), on disk in one transaction when this returns, and the publisher woken."""
        for message in messages:
            if isinstance(message, DeadLetter):
                self._count_rejected(message)
        self.outbox.put_many(messages)

    def _count_rejected(self, letter: DeadLetter) -> None:
        device = letter.ref.device if letter.ref else "_unknown"
        self._metrics.inc("gateway_rejected", device=device, source=letter.source)
        log.warning("input rejected", device=device, source=letter.source, topic=letter.topic, reason=letter.reason)

    async def run(self) -> NoReturn:
        delays = backoff_delays(min(0.1, self.backoff_max_s), self.backoff_max_s, self._rng)
        while True:
            # A fresh client per connection: the one before may hold in-flight messages that the outbox will send
            # again anyway, and resending them from two places would only add duplicates.
            client = mqtt_client(
                replace(
                    self.mqtt,
                    client_id=self.client_id,
                    max_inflight=self.max_inflight,
                    # Small packets must not wait for Nagle's algorithm: a PUBLISH held back until the broker's
                    # delayed ACK costs tens of milliseconds and caps the throughput of a window of QoS 1 messages.
                    tcp_nodelay=True,
                )
            )
            try:
                async with client:
                    self.connected.set()
                    self._metrics.inc("gateway_connects")
                    log.info(
                        "connected to broker", host=self.mqtt.host, port=self.mqtt.port, backlog=self.outbox.size()
                    )
                    delays = backoff_delays(min(0.1, self.backoff_max_s), self.backoff_max_s, self._rng)
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(_until_disconnected(client))
                        tg.create_task(self._drain(client))
            except* aiomqtt.MqttError as group:
                self._metrics.inc("gateway_disconnects")
                delay = next(delays)
                log.warning(
                    "broker unreachable, retrying",
                    error=str(group.exceptions[0]),
                    backlog=self.outbox.size(),
                    retry_in_s=round(delay, 2),
                )
                self.connected.clear()
                await asyncio.sleep(delay)
            finally:
                self.connected.clear()

    async def _drain(self, client: aiomqtt.Client) -> NoReturn:
        """Keep up to `max_inflight` publishes in flight, oldest first, topping the window up as PUBACKs arrive.

        A sliding window rather than batch after batch: the link never idles waiting for the slowest message of a
        batch, and a steady stream of PUBLISH packets carries the TCP ACKs a broker's Nagle algorithm waits for.
        """
        window = asyncio.Semaphore(self.max_inflight)
        sent_up_to = 0  # the outbox id of the last message handed to the client on this connection
        try:
            await self._replay(client)
            async with asyncio.TaskGroup() as tg:
                while True:
                    self._urgent.clear()  # no await before the peek: an urgent put after it is seen next time
                    page = self.outbox.peek(_PAGE, after=sent_up_to)
                    if not page:
                        # No await between the empty peek and clear(), so a put cannot slip in unnoticed. The
                        # timeout is only a safety net; puts wake us up at once.
                        self._wakeup.clear()
                        self.idle.set()
                        try:
                            with contextlib.suppress(TimeoutError):
                                async with asyncio.timeout(self.idle_wait_s):  # not wait_for: it can swallow a cancel
                                    await self._wakeup.wait()
                        finally:
                            self.idle.clear()
                        if self._wakeup.is_set():
                            await self._gather()
                        continue
                    for publish in outgoing(page):
                        await window.acquire()
                        # Tasks start in creation order, so paho queues the PUBLISH packets in outbox order.
                        tg.create_task(self._publish(client, publish, window))
                    sent_up_to = page[-1].id
        finally:
            # What the broker acknowledged must not be sent again, even when the connection broke half way.
            self._flush_acks()

    async def _gather(self) -> None:
        """Let readings gather for up to `gather_s` after a wake from idle; an urgent put ends the wait (see the
        module)."""
        if self.gather_s <= 0 or self._urgent.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.gather_s):
                await self._urgent.wait()

    async def _replay(self, client: aiomqtt.Client) -> None:
        """Send again what the broker acknowledged within the outbox's replay window, oldest first, before anything
        newer: a broker that crashed may have lost it before delivering or saving it (see gateway.outbox)."""
        window = asyncio.Semaphore(self.max_inflight)
        replayed, after = 0, 0

        async def send(publish: Outgoing) -> None:
            try:
                await client.publish(publish.topic, publish.payload, qos=publish.qos, retain=publish.retain)
            finally:
                window.release()

        async with asyncio.TaskGroup() as tg:
            # Page by page: an hour's window at a high rate is more than memory should hold at once.
            while page := self.outbox.recently_published(_REPLAY_PAGE, after=after):
                for publish in outgoing(page):
                    await window.acquire()
                    tg.create_task(send(publish))  # created in order, so paho queues them in order
                replayed += len(page)
                after = page[-1].id
        if replayed:
            self._metrics.inc("gateway_replayed", replayed)
            log.info("replayed recently published messages", count=replayed, window_s=self.outbox.replay_window_s)

    async def _publish(self, client: aiomqtt.Client, publish: Outgoing, window: asyncio.Semaphore) -> None:
        try:
            await client.publish(publish.topic, publish.payload, qos=publish.qos, retain=publish.retain)
        finally:
            window.release()
        if not self._acks:
            # Every PUBACK that arrives in this turn of the event loop is deleted in one transaction.
            asyncio.get_running_loop().call_soon(self._flush_acks)
        self._acks.extend(publish.ids)

    def _flush_acks(self) -> None:
        acks, self._acks = self._acks, []
        if acks:
            self.outbox.ack(acks)
            self._metrics.inc("gateway_published", len(acks))


async def _until_disconnected(client: aiomqtt.Client) -> None:
    """Raise MqttError as soon as the connection drops.

    A publish waiting for its PUBACK is not told when the connection goes; it would wait for its timeout. The message
    iterator is told, so we iterate (the publisher subscribes to nothing, nothing ever arrives) to notice at once.
    """
    async for _ in client.messages:
        pass
