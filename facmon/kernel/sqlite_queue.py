"""A durable FIFO queue in one SQLite table: items wait on disk until their consumer acknowledges them.

Written once for the gateway's outbox (MQTT messages until the broker's PUBACK) and the historian's buffer
(line-protocol lines until InfluxDB accepts them); each is a thin user that says what an item's columns are.

- Order: every item gets an `AUTOINCREMENT` id, so ids are never reused (a late ack for items dropped meanwhile
  cannot delete a newer item that got the same id) and `peek` hands out the oldest first, across restarts too.
- Delivery: `peek` leaves items where they are; only `ack` deletes them. A consumer that dies between the two sees
  the same items again: at least once, never lost.
- Crash safety: WAL journal, one `BEGIN IMMEDIATE` transaction per `put_many` and per `ack`. `synchronous="NORMAL"`
  survives a crash of the process (a SIGKILL loses nothing that was committed); "FULL" also survives a power cut at
  the price of an fsync per commit.
- Capacity: none by default. With `Capacity(max_items)`, a put that takes the queue past `max_items` deletes the
  oldest items until it fits, in the same transaction, and reports how many went. With `Capacity(max_items, keep=c)`
  items whose column `c` is non-zero are never deleted, so the bound is hard for the others and soft for them (the
  outbox keeps its events that way).
- Full disk: a put the disk has no room for ("database or disk is full") raises `QueueFull`, unless the queue has
  a `memory_max_items`: then the items wait in memory, in order (at most that many, the oldest dropped and
  counted), every later put joins them behind, and they are written to the file, in order, as soon as it takes
  them again: at the next put or ack after a second since the last failed try, or at once after an ack freed
  room. `memory_size()` and `full` tell how it stands. Items in memory are lost if the process dies.
- Schema: a declared column missing from an existing file is added (with its DEFAULT), so a queue written by an
  earlier version keeps its items.
- Ownership: one process owns the file, and the size is kept in memory after one count at open. One queue object may
  be shared by threads (a lock serialises its calls). Another connection holding the file's write lock past
  `busy_timeout_s` raises `QueueLocked`.
- Damage: at open, a file that is not a SQLite database, or fails SQLite's `quick_check` (garbage pages, truncated
  in the middle), is moved aside to `<name>.damaged-<UTC timestamp>` (with its `-wal` and `-shm` files), logged
  with one line naming both paths, and a fresh queue is started in its place: a service that restarts after a
  damaged disk runs on instead of exiting on every start, and the damaged file stays for whoever wants to salvage
  it. Damage found later, while running, raises `QueueCorrupt`.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import structlog

from facmon.kernel.clock import SystemClock

T = TypeVar("T")

log = structlog.get_logger(__name__)

# While the disk is full, a put tries the file again at most this often (an ack that freed room tries at once).
_FULL_RETRY_S = 1.0

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class QueueError(Exception):
    """The queue's file cannot be used: see `QueueLocked` and `QueueCorrupt`."""


class QueueLocked(QueueError):
    """Another connection held the file's write lock for longer than the busy timeout."""


class QueueCorrupt(QueueError):
    """The file is not a SQLite database, or is damaged."""


class QueueFull(QueueError):
    """The file's disk has no room for the put (SQLITE_FULL: the disk, a quota, or `max_page_count`)."""


@dataclass(frozen=True, slots=True)
class Column:
    """One column of an item: its name and its SQL declaration ("TEXT NOT NULL", "INTEGER NOT NULL DEFAULT 0")."""

    name: str
    decl: str


@dataclass(frozen=True, slots=True)
class Capacity:
    """At most `max_items`, the oldest deleted first; items whose column `keep` is non-zero are never deleted."""

    max_items: int
    keep: str | None = None

    def __post_init__(self) -> None:
        if self.max_items < 1:
            raise ValueError("max_items must be at least 1")


@dataclass(frozen=True, slots=True)
class Put:
    """What a `put_many` did: the ids of the items it wrote to the file, in order, how many old items the capacity
    deleted, how many items wait in memory for room on the disk, and how many of those the memory bound dropped."""

    ids: list[int]
    dropped: int
    in_memory: int = 0
    memory_dropped: int = 0


class SqliteQueue(Generic[T]):
    """Items are rows of `columns` (values in that order); `item(id, values)` makes what `peek` returns."""

    def __init__(
        self,
        path: Path,
        *,
        table: str,
        columns: Sequence[Column],
        item: Callable[[int, tuple[Any, ...]], T],
        capacity: Capacity | None = None,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        schema: str = "",
        busy_timeout_s: float = 5.0,
        damaged_at: Callable[[], datetime] | None = None,
        memory_max_items: int = 0,
    ) -> None:
        """Open (or create) the queue in `table` of the file at `path`; `schema` is extra DDL of its user.

        `damaged_at` gives the time a damaged file is moved aside with (default: the system clock's).
        """
        names = [table, *(c.name for c in columns), *([capacity.keep] if capacity and capacity.keep else [])]
        if bad := [n for n in names if not _IDENTIFIER.fullmatch(n)]:
            raise ValueError(f"not SQL identifiers: {bad}")
        if capacity and capacity.keep and capacity.keep not in {c.name for c in columns}:
            raise ValueError(f"keep column {capacity.keep!r} is not one of the columns")
        self.path = path
        self.table = table
        self.capacity = capacity
        self._columns = tuple(columns)
        self._item = item
        self._lock = threading.Lock()
        self.memory_max_items = memory_max_items
        # Items waiting for room on the disk, in order, and why the disk refused them (None: it takes items).
        self._memory: deque[tuple[object, ...]] = deque()
        self.full: str | None = None
        self._full_since = 0.0
        self._insert = (
            f"INSERT INTO {table} ({', '.join(c.name for c in columns)}) VALUES ({', '.join('?' for _ in columns)})"
        )
        self._select = f"SELECT id, {', '.join(c.name for c in columns)} FROM {table} WHERE id > ? ORDER BY id LIMIT ?"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._connect(busy_timeout_s)
        try:
            with self._errors():
                self._size = self._open(synchronous, schema)
        except QueueCorrupt as exc:
            self._db.close()
            aside = _set_aside(path, (damaged_at or SystemClock().now)())
            log.error(f"damaged queue file {path} moved aside to {aside}; starting a fresh one", error=str(exc))
            self._db = self._connect(busy_timeout_s)
            try:
                with self._errors():
                    self._size = self._open(synchronous, schema)
            except BaseException:
                self._db.close()
                raise
        except BaseException:
            self._db.close()
            raise

    def _connect(self, busy_timeout_s: float) -> sqlite3.Connection:
        # isolation_level=None: we open transactions ourselves, so a put and its drops commit together.
        # check_same_thread=False: the lock, not the thread, keeps calls apart.
        return sqlite3.connect(self.path, isolation_level=None, timeout=busy_timeout_s, check_same_thread=False)

    def _open(self, synchronous: str, schema: str) -> int:
        db, table = self._db, self.table
        db.execute("PRAGMA journal_mode=WAL")
        # Reads every page once (a second per ~GB); damage found now is set aside instead of failing a later put.
        problems = [row[0] for row in db.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError(f"malformed: {'; '.join(problems)}")
        db.execute(f"PRAGMA synchronous={synchronous}")
        declared = ",\n".join(f"    {c.name} {c.decl}" for c in self._columns)
        db.executescript(
            f"CREATE TABLE IF NOT EXISTS {table} (\n    id INTEGER PRIMARY KEY AUTOINCREMENT,\n{declared}\n);\n{schema}"
        )
        if self.capacity and self.capacity.keep:
            db.execute(f"CREATE INDEX IF NOT EXISTS {table}_by_kind ON {table} ({self.capacity.keep}, id)")
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for column in self._columns:
            if column.name not in present:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column.name} {column.decl}")
        # COUNT(*) scans the table; the queue is its owner's alone, so one count at open is kept up to date.
        count: int = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        return count

    def put_many(self, rows: Sequence[Sequence[object]]) -> Put:
        """Store items in order, in one transaction, and apply the capacity (see the module's full disk)."""
        if not rows:
            return Put([], 0, len(self._memory))
        with self._lock:
            if not self._memory:
                try:
                    ids, dropped = self._insert_rows([tuple(row) for row in rows])
                except QueueFull as exc:
                    if not self.memory_max_items:
                        raise
                    self._now_full(exc)
                    memory_dropped = self._hold([tuple(row) for row in rows])
                    return Put([], 0, len(self._memory), memory_dropped)
                return Put(ids, dropped)
            # Nothing overtakes what waits in memory: the new items join it, and all go to the file together.
            memory_dropped = self._hold([tuple(row) for row in rows])
            ids, dropped = self._write_memory(force=False)
            return Put(ids, dropped, len(self._memory), memory_dropped)

    def _insert_rows(self, rows: Sequence[tuple[object, ...]]) -> tuple[list[int], int]:
        dropped = 0
        with self._errors():
            with self._transaction():
                # One statement for all the rows (1.2 us a row of the historian's lines, 1.8 with an execute
                # per row). Their ids are consecutive: one process owns the file and the write lock is ours, so
                # each AUTOINCREMENT id is the one before plus one; the last is the connection's last_insert_rowid.
                self._db.executemany(self._insert, rows)
                last = self._db.execute("SELECT last_insert_rowid()").fetchone()[0]
                ids = list(range(last - len(rows) + 1, last + 1))
                excess = self._size + len(ids) - self.capacity.max_items if self.capacity else 0
                if excess > 0:
                    dropped = self._drop_oldest(excess)
            self._size += len(ids) - dropped
        return ids, dropped

    def _hold(self, rows: Sequence[tuple[object, ...]]) -> int:
        self._memory.extend(rows)
        over = max(0, len(self._memory) - self.memory_max_items)
        for _ in range(over):
            self._memory.popleft()
        return over

    def _now_full(self, exc: QueueFull) -> None:
        if self.full is None:
            log.error("disk full: keeping items in memory until it has room", path=str(self.path), error=str(exc))
        self.full = str(exc)
        self._full_since = time.monotonic()

    def _write_memory(self, *, force: bool) -> tuple[list[int], int]:
        """Write what waits in memory to the file, oldest first, as much as fits (in ever smaller transactions when
        all of it does not); tried at most once a second unless `force` (an ack freed room)."""
        if not self._memory or (not force and time.monotonic() - self._full_since < _FULL_RETRY_S):
            return [], 0
        ids: list[int] = []
        dropped = 0
        chunk = len(self._memory)
        while self._memory:
            rows = list(itertools.islice(self._memory, chunk))
            try:
                written, gone = self._insert_rows(rows)
            except QueueFull as exc:
                if chunk == 1:
                    self._now_full(exc)
                    break
                chunk //= 2
                continue
            for _ in rows:
                self._memory.popleft()
            ids += written
            dropped += gone
        if not self._memory:
            log.info("disk has room again: items held in memory written", path=str(self.path))
            self.full = None
        return ids, dropped

    def retry_memory(self) -> None:
        """Try to write what waits in memory to the file (at most once a second): for a user that has no puts or
        acks coming to do it, such as a consumer that holds back until its items are on disk."""
        with self._lock:
            self._write_memory(force=False)

    def limit_size(self, max_bytes: int) -> None:
        """Cap the file at about `max_bytes` (SQLite's `max_page_count`; never below what it holds now): a quota,
        past which puts act as on a full disk."""
        with self._lock, self._errors():
            page_size: int = self._db.execute("PRAGMA page_size").fetchone()[0]
            self._db.execute(f"PRAGMA max_page_count = {max(1, max_bytes // page_size)}")

    def memory_size(self) -> int:
        """Items waiting in memory for room on the disk."""
        return len(self._memory)

    def _drop_oldest(self, n: int) -> int:
        assert self.capacity is not None
        only = f"WHERE {self.capacity.keep} = 0 " if self.capacity.keep else ""
        sql = f"DELETE FROM {self.table} WHERE id IN (SELECT id FROM {self.table} {only}ORDER BY id LIMIT ?)"
        return self._db.execute(sql, (n,)).rowcount

    def peek(self, n: int, *, after: int = 0) -> list[T]:
        """The `n` oldest items with an id above `after`, oldest first; they stay in the queue until acked."""
        with self._lock, self._errors():
            rows = self._db.execute(self._select, (after, n)).fetchall()
        return [self._item(row[0], tuple(row[1:])) for row in rows]

    def ack(self, ids: Iterable[int], *, also: Callable[[sqlite3.Connection], object] | None = None) -> int:
        """Delete delivered items (unknown ids are ignored) and return how many went.

        `also` runs in the same transaction, on the queue's connection, before the items are deleted: its user's own
        bookkeeping (the historian parks a refused line in its `rejected` table as it leaves the queue, the outbox
        copies what the broker took to its replay table).
        """
        with self._lock, self._errors():
            with self._transaction():
                if also is not None:
                    also(self._db)  # before the delete: it may read the items that leave
                removed = self._db.executemany(f"DELETE FROM {self.table} WHERE id = ?", ((i,) for i in ids)).rowcount
            self._size -= removed
            if removed:
                self._write_memory(force=True)  # the deleted rows' pages are free for what waits in memory
        return removed

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Read the user's own tables (those of `schema`) through the queue's connection."""
        with self._lock, self._errors():
            return [tuple(row) for row in self._db.execute(sql, tuple(params)).fetchall()]

    def size(self) -> int:
        return self._size

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SqliteQueue[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK when the block raises."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            # A COMMIT that failed (a full disk) may leave the transaction open; end it so the next one can begin.
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite's "database is locked" and "file is not a database" as errors that name the file."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise QueueLocked(f"{self.path}: locked by another connection ({exc})") from exc
            if "full" in str(exc):
                raise QueueFull(f"{self.path}: {exc}") from exc
            raise
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc) or "malformed" in str(exc):
                raise QueueCorrupt(f"{self.path}: not a usable SQLite queue ({exc})") from exc
            raise


def _set_aside(path: Path, at: datetime) -> Path:
    """Rename a damaged file (and its WAL and shared-memory files) to `<name>.damaged-<UTC timestamp>`."""
    suffix = f".damaged-{at.astimezone(UTC):%Y%m%dT%H%M%S%fZ}"
    aside = path.with_name(path.name + suffix)
    for part in ("", "-wal", "-shm"):
        source = path.with_name(path.name + part)
        if source.exists():
            source.rename(path.with_name(path.name + part + suffix))
    return aside
