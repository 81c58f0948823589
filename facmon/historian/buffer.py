"""The historian's durable buffer: line-protocol lines wait here, on disk, until InfluxDB has accepted them.

Transactional like Telegraf's output buffer: `take` hands out the oldest lines without removing them, `ack` removes
the ones InfluxDB accepted, and `reject` moves a line InfluxDB refused (a field type conflict, a line it cannot
parse) to the `rejected` table with the reason, where an operator can look at it. Nothing leaves without one of the
two, so a crash between a write and its ack only means the same points are written again, which InfluxDB stores once.

The lines are kept by `facmon.kernel.sqlite_queue` (order, ids never reused, WAL, crash safety); the `rejected`
table is the buffer's own. Unbounded by default: an InfluxDB outage only makes the file grow. With `max_lines`, a
full buffer drops its oldest lines (logged), as a gateway outbox drops its oldest readings.

Full disk: lines the disk has no room for wait in memory, in order (at most `memory_max`, the oldest dropped and
counted), and go to the file as soon as it has room again (the writer's acks free pages); `full` says why meanwhile
(the historian's health). The historian acknowledges the messages of such lines to the broker only once they are in
the file (`retry_memory` tries again), so a crash while the disk is full loses nothing either.

The historian's dead letters (messages it refused, on their way to the dead-letter topic) wait in the same file, in
their own queue (`dead_letters`, at most `DEAD_LETTER_BACKLOG`, the oldest dropped first), until the broker has
acknowledged their publish: a refused message is acknowledged to the broker only once its dead letter is here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from facmon.kernel.sqlite_queue import Capacity, Column, SqliteQueue

log = structlog.get_logger(__name__)

# Dead letters waiting for the broker; beyond that the oldest go, counted.
DEAD_LETTER_BACKLOG = 10_000

_REJECTED = """
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    line TEXT NOT NULL,
    reason TEXT NOT NULL,
    rejected_at TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class BufferedLine:
    id: int
    line: str


@dataclass(frozen=True, slots=True)
class RejectedLine:
    line: str
    reason: str
    rejected_at: datetime


class LineBuffer:
    """Owned by one process; `synchronous=NORMAL` in WAL mode survives a crash of the process, not a power cut."""

    def __init__(
        self, path: Path, *, max_lines: int | None = None, busy_timeout_s: float = 5.0, memory_max: int = 100_000
    ) -> None:
        self.path = path
        self._queue = SqliteQueue(
            path,
            table="lines",
            columns=(Column("line", "TEXT NOT NULL"),),
            item=_buffered,
            capacity=Capacity(max_lines) if max_lines is not None else None,
            schema=_REJECTED,
            busy_timeout_s=busy_timeout_s,
            memory_max_items=memory_max,
        )
        self._dead_letters = SqliteQueue(
            path,
            table="dead_letters",
            columns=(Column("record", "BLOB NOT NULL"),),
            item=_dead_letter,
            capacity=Capacity(DEAD_LETTER_BACKLOG),
            busy_timeout_s=busy_timeout_s,
            memory_max_items=DEAD_LETTER_BACKLOG,
        )

    def append(self, lines: Sequence[str]) -> int:
        """Store lines in one transaction (one commit per call, so callers batch what arrives together); returns
        how many lines held in memory (the disk being full) the memory bound dropped."""
        put = self._queue.put_many([(line,) for line in lines])
        if put.dropped:
            log.warning("buffer full: dropped oldest lines", dropped=put.dropped, pending=self.pending())
        return put.memory_dropped

    @property
    def full(self) -> str | None:
        """Why the disk refused the last write, while lines wait in memory; None when the file takes them."""
        return self._queue.full or self._dead_letters.full

    def memory_size(self) -> int:
        """Lines and dead letters held in memory for room on the disk."""
        return self._queue.memory_size() + self._dead_letters.memory_size()

    def retry_memory(self) -> None:
        """Try to write the lines and dead letters held in memory to the file (at most once a second)."""
        self._queue.retry_memory()
        self._dead_letters.retry_memory()

    def limit_size(self, max_bytes: int) -> None:
        """Cap the file at about `max_bytes`, a quota past which appends act as on a full disk."""
        self._queue.limit_size(max_bytes)

    def take(self, n: int) -> list[BufferedLine]:
        """The `n` oldest lines, oldest first; they stay until acked or rejected."""
        return self._queue.peek(n)

    def ack(self, ids: Iterable[int]) -> None:
        """Remove lines InfluxDB accepted; ids already gone (rejected meanwhile) are ignored."""
        self._queue.ack(ids)

    def reject(self, line: BufferedLine, reason: str, at: datetime) -> None:
        """Park a line InfluxDB refused, with its reason, so it no longer holds up the lines behind it."""

        def park(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO rejected (line, reason, rejected_at) VALUES (?, ?, ?)",
                (line.line, reason, at.isoformat()),
            )

        self._queue.ack([line.id], also=park)

    def keep_dead_letters(self, records: Sequence[bytes]) -> int:
        """Store dead letters until they are published; returns how many old ones the bound dropped."""
        return self._dead_letters.put_many([(record,) for record in records]).dropped

    def dead_letters(self, n: int) -> list[tuple[int, bytes]]:
        """The `n` oldest dead letters waiting to be published, as (id, record)."""
        return self._dead_letters.peek(n)

    def dead_letters_sent(self, ids: Iterable[int]) -> None:
        self._dead_letters.ack(ids)

    def dead_letters_waiting(self) -> int:
        return self._dead_letters.size()

    def pending(self) -> int:
        return self._queue.size()

    def rejected(self, limit: int = 1000) -> list[RejectedLine]:
        """The most recently parked lines, newest first."""
        rows = self._queue.query("SELECT line, reason, rejected_at FROM rejected ORDER BY id DESC LIMIT ?", (limit,))
        return [RejectedLine(line=r[0], reason=r[1], rejected_at=datetime.fromisoformat(r[2])) for r in rows]

    def close(self) -> None:
        self._queue.close()
        self._dead_letters.close()

    def __enter__(self) -> LineBuffer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _buffered(id_: int, row: tuple[Any, ...]) -> BufferedLine:
    return BufferedLine(id=id_, line=row[0])


def _dead_letter(id_: int, row: tuple[Any, ...]) -> tuple[int, bytes]:
    return (id_, bytes(row[0]))
