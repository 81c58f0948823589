"""The historian's durable buffer: line-protocol lines wait here, on disk, until InfluxDB has accepted them.

Transactional like Telegraf's output buffer: `take` hands out the oldest lines without removing them, `ack` removes
the ones InfluxDB accepted, and `reject` moves a line InfluxDB refused (a field type conflict, a line it cannot
parse) to the `rejected` table with the reason, where an operator can look at it. Nothing leaves without one of the
two, so a crash between a write and its ack only means the same points are written again, which InfluxDB stores once.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lines (
    -- AUTOINCREMENT: ids are never reused, so taking "the oldest" stays in arrival order across restarts.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    line TEXT NOT NULL
);
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

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        # COUNT(*) scans the table; the buffer is ours alone, so one count at open is kept up to date in memory.
        self._pending: int = self._db.execute("SELECT COUNT(*) FROM lines").fetchone()[0]

    def append(self, lines: Sequence[str]) -> None:
        """Store lines in one transaction (one commit per call, so callers batch what arrives together)."""
        if not lines:
            return
        with _transaction(self._db):
            self._db.executemany("INSERT INTO lines (line) VALUES (?)", ((line,) for line in lines))
        self._pending += len(lines)

    def take(self, n: int) -> list[BufferedLine]:
        """The `n` oldest lines, oldest first; they stay until acked or rejected."""
        rows = self._db.execute("SELECT id, line FROM lines ORDER BY id LIMIT ?", (n,)).fetchall()
        return [BufferedLine(id=row[0], line=row[1]) for row in rows]

    def ack(self, ids: Iterable[int]) -> None:
        """Remove lines InfluxDB accepted; ids already gone (rejected meanwhile) are ignored."""
        with _transaction(self._db):
            removed = self._db.executemany("DELETE FROM lines WHERE id = ?", ((i,) for i in ids)).rowcount
        self._pending -= removed

    def reject(self, line: BufferedLine, reason: str, at: datetime) -> None:
        """Park a line InfluxDB refused, with its reason, so it no longer holds up the lines behind it."""
        with _transaction(self._db):
            removed = self._db.execute("DELETE FROM lines WHERE id = ?", (line.id,)).rowcount
            self._db.execute(
                "INSERT INTO rejected (line, reason, rejected_at) VALUES (?, ?, ?)",
                (line.line, reason, at.isoformat()),
            )
        self._pending -= removed

    def pending(self) -> int:
        return self._pending

    def rejected(self, limit: int = 1000) -> list[RejectedLine]:
        """The most recently parked lines, newest first."""
        rows = self._db.execute(
            "SELECT line, reason, rejected_at FROM rejected ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [RejectedLine(line=r[0], reason=r[1], rejected_at=datetime.fromisoformat(r[2])) for r in rows]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> LineBuffer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK when the block raises."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
