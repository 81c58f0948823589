"""The messages the collectors of one gateway emit in one turn of the event loop, put into the outbox together.

Hundreds of pollers each emitting a reading every second would cost an outbox transaction (a commit) per reading;
a commit costs several times the insert. `PutBatch.emit` is an `Emit` that keeps the outbox's promise, the message
is on disk when it returns, while every message emitted in the same loop turn shares one transaction: the first
schedules the write for the end of the turn, and all of them wait for it. Under load, when the loop handles many
answers per turn, batches grow by themselves; a lone message is written as soon as before (no timer, no delay).

Order holds: a collector awaits each emit before the next, and messages of one batch keep their emit order. If
the write fails, every emitter of the batch gets the exception, as each would have from its own put. The outbox
is reached through one callable, `put_many`, so its internals may change behind it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from facmon.kernel.model import Event, Reading

PutMany = Callable[[Sequence[Reading | Event]], object]


class PutBatch:
    def __init__(self, put_many: PutMany) -> None:
        self._put_many = put_many
        self._pending: list[Reading | Event] = []
        self._written: asyncio.Future[None] | None = None

    async def emit(self, message: Reading | Event) -> None:
        """An `Emit`: returns once `message` is in the outbox, written with every other message of this loop turn."""
        written = self._written
        if written is None:
            loop = asyncio.get_running_loop()
            written = self._written = loop.create_future()
            loop.call_soon(self._write)
        self._pending.append(message)
        # Shielded: one emitter being cancelled must not cancel the write the others wait for (its message is
        # written all the same, which is at worst a duplicate downstream, as after any retry).
        await asyncio.shield(written)

    def _write(self) -> None:
        batch, self._pending = self._pending, []
        written, self._written = self._written, None
        if written is None:
            return
        try:
            self._put_many(batch)
        except Exception as exc:
            written.set_exception(exc)
            # Retrieved here so a batch whose emitters were all cancelled does not log "never retrieved".
            written.exception()
            return
        written.set_result(None)
