"""The gateway's durable outbox: every reading and event waits here, on disk, until the broker has acknowledged it.

One SQLite file in WAL mode, owned by one process (the gateway of one site). A message is removed only by `ack`,
after the broker's PUBACK, so a broker outage or a restart of the gateway loses nothing.

Bound and drop policy. The outbox holds at most `max_size` messages. When a `put` takes it past that, the *oldest
readings* are deleted until it fits again, and every deleted reading is counted (`outbox_dropped{kind="reading"}`).
Events (faults raised and cleared, comm lost and restored) are never dropped: they open and close work orders, and a
missing "cleared" would keep a work order open forever, while an old reading is superseded by the next poll. So the
bound is hard for readings and soft for events: an outbox holding only events may grow past `max_size`. A dropped
reading may still reach the broker if it was already in flight; dropping only means it will not be retried.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeadLetter, Event, EventType, Reading
from facmon.kernel.topics import topic_for

log = structlog.get_logger(__name__)

# QoS 1 for readings too: the historian listens with a persistent session, and Mosquitto queues only QoS 1/2
# messages for a subscriber that is away (QoS 0 would be lost exactly when the historian restarts).
READING_QOS = 1
EVENT_QOS = 1
# A device's comm events are also retained by the broker, per device: a consumer that subscribes for the first time
# (a rules worker started after the gateway, a new historian) learns at once whether each device answers, instead of
# showing it unknown until its comm next changes. Consumers know events by id, so receiving one twice changes nothing.
RETAINED_EVENTS = frozenset({EventType.COMM_LOST, EventType.COMM_RESTORED})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    -- AUTOINCREMENT: ids are never reused, so a late ack for messages that were dropped meanwhile cannot
    -- delete a newer message that happened to get the same id.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    is_event INTEGER NOT NULL,
    retain INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_by_kind ON outbox (is_event, id);
"""


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool = False


class Outbox:
    def __init__(
        self,
        path: Path,
        *,
        max_size: int = 1_000_000,
        metrics: Counters | None = None,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    ) -> None:
        """Open (or create) the outbox at `path`.

        `synchronous="NORMAL"` survives a crash of the process; a power cut may lose the last few puts. "FULL"
        also survives power cuts at the price of an fsync per put.
        """
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.path = path
        self.max_size = max_size
        self._metrics = metrics if metrics is not None else Counters()
        self._listeners: list[Callable[[], None]] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we open transactions ourselves, so a put and its drops commit together.
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
        if "retain" not in columns:  # an outbox written by an earlier version keeps its messages
            self._db.execute("ALTER TABLE outbox ADD COLUMN retain INTEGER NOT NULL DEFAULT 0")
        # COUNT(*) scans the table; the outbox is ours alone, so one count at open is kept up to date in memory.
        self._size: int = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def on_put(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every put (from the event loop's thread): the publisher wakes up on it."""
        self._listeners.append(listener)

    def put(self, message: Reading | Event | DeadLetter) -> int:
        return self.put_many([message])[-1]

    def put_many(self, messages: Sequence[Reading | Event | DeadLetter]) -> list[int]:
        """Store messages in order, in one transaction; returns their ids."""
        ids: list[int] = []
        dropped = 0
        with _transaction(self._db):
            for message in messages:
                is_event = isinstance(message, Event)
                retain = isinstance(message, Event) and message.type in RETAINED_EVENTS
                cursor = self._db.execute(
                    "INSERT INTO outbox (topic, payload, qos, is_event, retain) VALUES (?, ?, ?, ?, ?)",
                    (
                        topic_for(message),
                        message.model_dump_json().encode(),
                        EVENT_QOS if is_event else READING_QOS,
                        int(is_event),
                        int(retain),
                    ),
                )
                assert cursor.lastrowid is not None
                ids.append(cursor.lastrowid)
            excess = self._size + len(ids) - self.max_size
            if excess > 0:
                dropped = self._db.execute(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE is_event = 0 ORDER BY id LIMIT ?)",
                    (excess,),
                ).rowcount
        self._size += len(ids) - dropped
        for message in messages:
            self._metrics.inc("outbox_put", kind=_kind(message))
        if dropped:
            self._metrics.inc("outbox_dropped", dropped, kind="reading")
            log.warning("outbox full: dropped oldest readings", dropped=dropped, size=self._size, max=self.max_size)
        for listener in self._listeners:
            listener()
        return ids

    def peek(self, n: int, *, after: int = 0) -> list[OutboxMessage]:
        """The `n` oldest messages with an id above `after`, oldest first; they stay in the outbox until acked."""
        rows = self._db.execute(
            "SELECT id, topic, payload, qos, retain FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (after, n)
        ).fetchall()
        return [OutboxMessage(row[0], row[1], bytes(row[2]), row[3], bool(row[4])) for row in rows]

    def ack(self, ids: Iterable[int]) -> None:
        """Remove delivered messages. Unknown ids (already dropped or acked) are ignored."""
        with _transaction(self._db):
            removed = self._db.executemany("DELETE FROM outbox WHERE id = ?", ((i,) for i in ids)).rowcount
        self._size -= removed

    def size(self) -> int:
        return self._size

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _kind(message: Reading | Event | DeadLetter) -> str:
    # Dead letters are evidence, not state: under pressure they go with the oldest readings, never before events.
    return "event" if isinstance(message, Event) else "dead_letter" if isinstance(message, DeadLetter) else "reading"


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK when the block raises: a put and the drops it causes commit together."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
