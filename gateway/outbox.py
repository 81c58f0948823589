"""The gateway's durable outbox: every reading and event waits here, on disk, until the broker has acknowledged it.

One SQLite file, owned by one process (the gateway of one site), kept by `facmon.kernel.sqlite_queue` (order, ids
never reused, WAL, crash safety). A message is removed only by `ack`, after the broker's PUBACK, so a broker outage
or a restart of the gateway loses nothing.

Bound and drop policy. The outbox holds at most `max_size` messages. When a `put` takes it past that, the *oldest
readings* are deleted until it fits again, and every deleted reading is counted (`outbox_dropped{kind="reading"}`).
Events (faults raised and cleared, comm lost and restored) are never dropped: they open and close work orders, and a
missing "cleared" would keep a work order open forever, while an old reading is superseded by the next poll. So the
bound is hard for readings and soft for events: an outbox holding only events may grow past `max_size`. A dropped
reading may still reach the broker if it was already in flight; dropping only means it will not be retried.

Full disk. When the disk (or a quota, `limit_size`) has no room, the gateway keeps running and polling: messages
wait in memory, in order, at most `memory_max` (then the oldest go, counted as `outbox_memory_dropped`), and are
written to the file as soon as it has room again (after the publisher's acks free pages, or a second after the last
try). `memory_size()` is the `outbox_memory` gauge and `full` says why the disk refused (the gateway's health).
Messages held in memory are lost if the process dies before the disk has room.

Replay window. A broker saves its messages to disk only now and then (Mosquitto's `autosave_interval`), so a broker
that crashes forgets messages it had acknowledged but not yet delivered or saved. The outbox therefore keeps what the
broker acknowledged for `replay_window_s` more (60 s by default, at most an hour; 0 turns it off), in its
`published` table, and the publisher sends those again, oldest first, each time it (re)connects, before what is
still pending. Duplicates are harmless downstream: a point is the same series and timestamp in InfluxDB, an event
carries its id. The window should cover the broker's autosave interval for subscribers that may be away; under a
full disk the copies are the first thing given up.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import structlog

from facmon.kernel.clock import Clock, SystemClock
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeadLetter, Event, EventType, Reading
from facmon.kernel.sqlite_queue import Capacity, Column, QueueFull, SqliteQueue
from facmon.kernel.topics import topic_for
from facmon.kernel.wal_checkpoint import CHECKPOINT_INTERVAL_S, WalCheckpointer

log = structlog.get_logger(__name__)

# QoS 1 for readings too: the historian listens with a persistent session, and Mosquitto queues only QoS 1/2
# messages for a subscriber that is away (QoS 0 would be lost exactly when the historian restarts).
READING_QOS = 1
EVENT_QOS = 1
# A device's comm events are also retained by the broker, per device: a consumer that subscribes for the first time
# (a rules worker started after the gateway, a new historian) learns at once whether each device answers, instead of
# showing it unknown until its comm next changes. Consumers know events by id, so receiving one twice changes nothing.
RETAINED_EVENTS = frozenset({EventType.COMM_LOST, EventType.COMM_RESTORED})

# The outbox's table, as earlier versions wrote it; `retain` came later and is added to an older file on open.
# At most an hour of acknowledged messages kept for replay: at 500 messages a second, 1.8 million rows.
MAX_REPLAY_WINDOW_S = 3600.0

_PUBLISHED = """
CREATE TABLE IF NOT EXISTS published (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    published_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS published_by_time ON published (published_at);
"""

_COLUMNS = (
    Column("topic", "TEXT NOT NULL"),
    Column("payload", "BLOB NOT NULL"),
    Column("qos", "INTEGER NOT NULL"),
    Column("is_event", "INTEGER NOT NULL"),
    Column("retain", "INTEGER NOT NULL DEFAULT 0"),
)


@dataclass(slots=True)
class OutboxMessage:
    """One row as `peek` hands it out (not frozen: a frozen dataclass is built field by field through
    `object.__setattr__`, and the publisher builds one per reading it sends)."""

    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool = False


class Outbox:
    """Owned by one process; a thin user of `SqliteQueue`, which keeps order, ids and crash safety."""

    def __init__(
        self,
        path: Path,
        *,
        max_size: int = 1_000_000,
        metrics: Counters | None = None,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        busy_timeout_s: float = 5.0,
        memory_max: int = 100_000,
        replay_window_s: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        """Open (or create) the outbox at `path`; `clock` dates what the broker acknowledged, for the replay window.

        `synchronous="NORMAL"` survives a crash of the process; a power cut may lose the last few puts. "FULL"
        also survives power cuts at the price of an fsync per put.
        """
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        if not 0 <= replay_window_s <= MAX_REPLAY_WINDOW_S:
            raise ValueError(f"replay_window_s must be between 0 and {MAX_REPLAY_WINDOW_S}")
        self.path = path
        self.replay_window_s = replay_window_s
        self._clock = clock or SystemClock()
        self.max_size = max_size
        self._metrics = metrics if metrics is not None else Counters()
        self._listeners: list[Callable[[], None]] = []
        self._urgent_listeners: list[Callable[[], None]] = []
        self._queue = SqliteQueue(
            path,
            table="outbox",
            columns=_COLUMNS,
            item=_message,
            capacity=Capacity(max_size, keep="is_event"),  # events are never dropped
            synchronous=synchronous,
            busy_timeout_s=busy_timeout_s,
            memory_max_items=memory_max,
            schema=_PUBLISHED,
        )
        self._checkpointer: WalCheckpointer | None = None

    def on_put(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every put (from the event loop's thread): the publisher wakes up on it."""
        self._listeners.append(listener)

    def on_urgent_put(self, listener: Callable[[], None]) -> None:
        """Call `listener` after a put that holds an event or a dead letter (before the `on_put` listeners): the
        publisher, which lets readings gather for a moment, sends these at once."""
        self._urgent_listeners.append(listener)

    def put(self, message: Reading | Event | DeadLetter) -> int | None:
        """Store one message; its id, or None while it waits in memory for room on the disk."""
        ids = self.put_many([message])
        return ids[-1] if ids else None

    def put_many(self, messages: Sequence[Reading | Event | DeadLetter]) -> list[int]:
        """Store messages in order, in one transaction; returns the ids of those written to the file."""
        put = self._queue.put_many([_row(message) for message in messages])
        kinds = Counter(_kind(message) for message in messages)
        for kind, n in kinds.items():
            self._metrics.inc("outbox_put", n, kind=kind)
        if put.memory_dropped:
            self._metrics.inc("outbox_memory_dropped", put.memory_dropped)
        if put.dropped:
            self._metrics.inc("outbox_dropped", put.dropped, kind="reading")
            log.warning(
                "outbox full: dropped oldest readings", dropped=put.dropped, size=self.size(), max=self.max_size
            )
        if any(kind != "reading" for kind in kinds):
            for listener in self._urgent_listeners:
                listener()
        for listener in self._listeners:
            listener()
        return put.ids

    def _keep_for_replay(self, db: sqlite3.Connection, ids: list[int], now: float) -> None:
        # One statement per run of consecutive ids (a batch's PUBACK acknowledges a run): copying id by id cost
        # two thirds of an ack.
        db.executemany(
            "INSERT INTO published (topic, payload, qos, retain, published_at)"
            " SELECT topic, payload, qos, retain, ? FROM outbox WHERE id BETWEEN ? AND ? ORDER BY id",
            ((now, first, last) for first, last in _runs(ids)),
        )
        db.execute("DELETE FROM published WHERE published_at < ?", (now - self.replay_window_s,))

    def recently_published(self, n: int = 1_000_000, *, after: int = 0) -> list[OutboxMessage]:
        """What the broker acknowledged within the replay window, oldest first, to send again after a reconnect:
        the `n` oldest with an id (of the replay table, not the outbox) above `after`."""
        if not self.replay_window_s:
            return []
        since = self._clock.now().timestamp() - self.replay_window_s
        rows = self._queue.query(
            "SELECT id, topic, payload, qos, retain FROM published WHERE published_at >= ? AND id > ?"
            " ORDER BY id LIMIT ?",
            (since, after, n),
        )
        return [OutboxMessage(row[0], row[1], bytes(row[2]), row[3], bool(row[4])) for row in rows]

    @property
    def full(self) -> str | None:
        """Why the disk refused the last write, while messages wait in memory; None when the file takes them."""
        return self._queue.full

    def memory_size(self) -> int:
        return self._queue.memory_size()

    def limit_size(self, max_bytes: int) -> None:
        """Cap the file at about `max_bytes`, a quota past which puts act as on a full disk."""
        self._queue.limit_size(max_bytes)

    def peek(self, n: int, *, after: int = 0) -> list[OutboxMessage]:
        """The `n` oldest messages with an id above `after`, oldest first; they stay in the outbox until acked."""
        return self._queue.peek(n, after=after)

    def ack(self, ids: Iterable[int]) -> None:
        """Remove delivered messages. Unknown ids (already dropped or acked) are ignored."""
        ids = list(ids)
        held = self._queue.memory_size()
        if not self.replay_window_s:
            self._queue.ack(ids)
        else:
            now = self._clock.now().timestamp()
            try:
                self._queue.ack(ids, also=lambda db: self._keep_for_replay(db, ids, now))
            except QueueFull:
                # The copies are the first thing a full disk costs: the broker has the messages.
                self._queue.ack(ids, also=lambda db: db.execute("DELETE FROM published"))
        if self._queue.memory_size() < held:
            # Room freed on the disk took messages held in memory: they are in the file now, to be published.
            for listener in self._listeners:
                listener()

    def size(self) -> int:
        return self._queue.size()

    def start_checkpoints(self, interval_s: float = CHECKPOINT_INTERVAL_S) -> None:
        """From now on the write-ahead log is copied into the file by a thread of its own every `interval_s`, not in
        the put or ack that fills it (`facmon.kernel.wal_checkpoint`): such a checkpoint syncs the file to disk, and
        in a put or ack it held up the event loop of the pollers for tens to hundreds of milliseconds."""
        if self._checkpointer is None:
            self._checkpointer = WalCheckpointer(self.path, turn_off_auto=self._queue.query, interval_s=interval_s)
            self._checkpointer.start()

    def stop_checkpoints(self) -> None:
        """Back to SQLite's own checkpoints, in the commits (the thread stopped)."""
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.stop()
            self._queue.query("PRAGMA wal_autocheckpoint=1000")

    def close(self) -> None:
        self.stop_checkpoints()
        self._queue.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _runs(ids: list[int]) -> list[tuple[int, int]]:
    """`ids` (in the order given) as runs of consecutive ids, (first, last) each, in that order."""
    runs: list[tuple[int, int]] = []
    for id_ in ids:
        if runs and id_ == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], id_)
        else:
            runs.append((id_, id_))
    return runs


def _row(message: Reading | Event | DeadLetter) -> tuple[str, bytes, int, int, int]:
    is_event = isinstance(message, Event)
    retain = isinstance(message, Event) and message.type in RETAINED_EVENTS
    qos = EVENT_QOS if is_event else READING_QOS
    return (topic_for(message), message.model_dump_json().encode(), qos, int(is_event), int(retain))


def _message(id_: int, row: tuple[Any, ...]) -> OutboxMessage:
    topic, payload, qos, _is_event, retain = row
    return OutboxMessage(id_, topic, bytes(payload), qos, bool(retain))


def _kind(message: Reading | Event | DeadLetter) -> str:
    # Dead letters are evidence, not state: under pressure they go with the oldest readings, never before events.
    return "event" if isinstance(message, Event) else "dead_letter" if isinstance(message, DeadLetter) else "reading"
