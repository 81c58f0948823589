"""What the publisher sends for a page of the outbox: readings packed into batches, everything else as it is.

Readings of one site and device kind go together in a batch (`facmon.kernel.batches`: its topic, its payload) of at
most MAX_BATCH_READINGS readings and MAX_BATCH_BYTES, so the broker, the historian and the network handle one
message, and the publisher waits for one PUBACK, per batch instead of per reading. The outbox still holds one row per
reading (its bound and drop policy count readings), and a batch's PUBACK acknowledges all its rows. Events and dead
letters are sent alone, on their own topics, with their own retain flag, and close the batches open before them, so
the order of the outbox is kept between readings and events (a device's readings and its fault stay in order). Among
readings, a batch goes out where its first reading was: the readings of one device keep their order, and every
reading keeps its own timestamp.

Packing costs no JSON work: the outbox keeps each reading as the JSON of its own message, and a batch joins them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

from facmon.kernel.batches import MAX_BATCH_BYTES, MAX_BATCH_READINGS, batch_size, batch_topic, encode_batch
from facmon.kernel.topics import ROOT, STATE
from gateway.outbox import READING_QOS, OutboxMessage


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One MQTT publish and the outbox ids its PUBACK acknowledges."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    ids: tuple[int, ...]


@dataclass
class _Open:
    topic: str
    payloads: list[bytes] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    size: int = 0

    def fits(self, payload: bytes) -> bool:
        within = batch_size(len(self.payloads) + 1, self.size + len(payload)) <= MAX_BATCH_BYTES
        return not self.payloads or (len(self.payloads) < MAX_BATCH_READINGS and within)

    def add(self, message: OutboxMessage) -> None:
        self.payloads.append(message.payload)
        self.ids.append(message.id)
        self.size += len(message.payload)


def outgoing(messages: Sequence[OutboxMessage]) -> list[Outgoing]:
    """The publishes for `messages` (oldest first): readings batched by site and kind, the rest one by one."""
    slots: list[Outgoing | _Open] = []
    open_batches: dict[str, _Open] = {}
    for message in messages:
        topic = _batch_topic_of(message.topic)
        if topic is None:
            slots.append(Outgoing(message.topic, message.payload, message.qos, message.retain, (message.id,)))
            open_batches.clear()  # what comes after it goes after it
            continue
        batch = open_batches.get(topic)
        if batch is None or not batch.fits(message.payload):
            batch = open_batches[topic] = _Open(topic)
            slots.append(batch)
        batch.add(message)
    return [slot if isinstance(slot, Outgoing) else _closed(slot) for slot in slots]


def _closed(batch: _Open) -> Outgoing:
    return Outgoing(batch.topic, encode_batch(batch.payloads), READING_QOS, False, tuple(batch.ids))


# A gateway sends the topics of its devices (thousands) over and over: each is worked out once.
@functools.lru_cache(maxsize=16384)
def _batch_topic_of(topic: str) -> str | None:
    """The batch topic a reading's state topic belongs in; None for any other topic (events, dead letters)."""
    parts = topic.split("/")
    if len(parts) != 6 or parts[5] != STATE or f"{parts[0]}/{parts[1]}" != ROOT:
        return None
    return batch_topic(parts[2], parts[3])
