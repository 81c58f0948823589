"""The durable queue and its two users behind one face, so one suite tests the contract they share.

Each subject stores item number `n` the way its user does (a bare row, a gateway reading whose `seq` is `n`, a
historian line whose field is `n`) and reads `n` back from what `peek` returns.

Also a program: `python -m tests.kernel.queue_subjects <subject> <file>` puts batches of ten numbered items forever,
printing how many are committed after each batch, for the test that kills it mid-write.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from facmon.historian.buffer import LineBuffer
from facmon.kernel.metrics import Counters
from facmon.kernel.model import Reading, decode_message
from facmon.kernel.sqlite_queue import Capacity, Column, SqliteQueue
from gateway.outbox import Outbox
from tests.gateway.conftest import reading

T0 = datetime(2026, 3, 1, tzinfo=UTC)


class Subject(Protocol):
    def put(self, ns: Sequence[int]) -> None: ...

    def peek(self, k: int) -> list[tuple[int, int]]:
        """(id, n) of the `k` oldest items."""
        ...

    def ack(self, ids: Iterable[int]) -> None: ...

    def size(self) -> int: ...

    def memory_size(self) -> int:
        """Items waiting in memory for room on the disk."""
        ...

    def limit_size(self, max_bytes: int) -> None: ...

    def close(self) -> None: ...


# Opens a subject on a file, with a capacity (None: the user's default) and a busy timeout.
Opener = Callable[[Path, int | None, float], Subject]


class QueueSubject:
    def __init__(self, path: Path, capacity: int | None, busy_timeout_s: float) -> None:
        self.queue = SqliteQueue(
            path,
            table="items",
            columns=(Column("n", "INTEGER NOT NULL"),),
            item=_pair,
            capacity=Capacity(capacity) if capacity is not None else None,
            busy_timeout_s=busy_timeout_s,
            memory_max_items=100_000,
        )

    def put(self, ns: Sequence[int]) -> None:
        self.queue.put_many([(n,) for n in ns])

    def peek(self, k: int) -> list[tuple[int, int]]:
        return self.queue.peek(k)

    def ack(self, ids: Iterable[int]) -> None:
        self.queue.ack(ids)

    def size(self) -> int:
        return self.queue.size()

    def memory_size(self) -> int:
        return self.queue.memory_size()

    def limit_size(self, max_bytes: int) -> None:
        self.queue.limit_size(max_bytes)

    def close(self) -> None:
        self.queue.close()


def _pair(id_: int, row: tuple[Any, ...]) -> tuple[int, int]:
    return (id_, int(row[0]))


class OutboxSubject:
    def __init__(self, path: Path, capacity: int | None, busy_timeout_s: float) -> None:
        self.metrics = Counters()
        size = {"max_size": capacity} if capacity is not None else {}
        self.outbox = Outbox(path, metrics=self.metrics, busy_timeout_s=busy_timeout_s, **size)

    def put(self, ns: Sequence[int]) -> None:
        self.outbox.put_many([reading("s1", ts=T0 + timedelta(seconds=n), seq=n) for n in ns])

    def peek(self, k: int) -> list[tuple[int, int]]:
        return [(m.id, _seq(decode_message(m.payload))) for m in self.outbox.peek(k)]

    def ack(self, ids: Iterable[int]) -> None:
        self.outbox.ack(ids)

    def size(self) -> int:
        return self.outbox.size()

    def memory_size(self) -> int:
        return self.outbox.memory_size()

    def limit_size(self, max_bytes: int) -> None:
        self.outbox.limit_size(max_bytes)

    def close(self) -> None:
        self.outbox.close()


def _seq(message: object) -> int:
    assert isinstance(message, Reading)
    seq = message.values["seq"]
    assert isinstance(seq, int)
    return seq


class BufferSubject:
    def __init__(self, path: Path, capacity: int | None, busy_timeout_s: float) -> None:
        self.buffer = LineBuffer(path, max_lines=capacity, busy_timeout_s=busy_timeout_s)

    def put(self, ns: Sequence[int]) -> None:
        self.buffer.append([f"m,site=s1 n={n}i {n}" for n in ns])

    def peek(self, k: int) -> list[tuple[int, int]]:
        return [(b.id, int(b.line.split("n=")[1].split("i")[0])) for b in self.buffer.take(k)]

    def ack(self, ids: Iterable[int]) -> None:
        self.buffer.ack(ids)

    def size(self) -> int:
        return self.buffer.pending()

    def memory_size(self) -> int:
        return self.buffer.memory_size()

    def limit_size(self, max_bytes: int) -> None:
        self.buffer.limit_size(max_bytes)

    def close(self) -> None:
        self.buffer.close()


SUBJECTS: dict[str, Opener] = {"queue": QueueSubject, "outbox": OutboxSubject, "line_buffer": BufferSubject}


def _write_forever(name: str, path: Path) -> None:
    subject = SUBJECTS[name](path, None, 5.0)
    n = 0
    while True:
        subject.put(range(n, n + 10))
        n += 10
        print(n, flush=True)


if __name__ == "__main__":
    _write_forever(sys.argv[1], Path(sys.argv[2]))
