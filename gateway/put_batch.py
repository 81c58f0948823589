"""The messages the collectors of one gateway emit in one turn of the event loop, put into the outbox together.

Hundreds of pollers each emitting a reading every second would cost an outbox transaction (a commit) per reading;
a commit costs several times the insert. `PutBatch.emit` is an `Emit` that keeps the outbox's promise, the message
is on disk when it returns, while every message emitted within `linger_s` of the first of a batch shares one
transaction: the first schedules the write, and all of them wait for it (0: the end of the loop turn, so only what
the loop handles in one turn shares it; under load batches grow by themselves). The gateway lingers 50 ms: polls of
1,000 devices a second then share transactions fifty at a time (a reading's put costs about 12 us so, against 17 at
ten a transaction and 53 alone), and the publisher wakes once per batch, for 50 ms more between a poll and the
broker, against a poll interval of a second. An event (a fault, comm lost) does not linger: a batch that holds one
is written at the end of the loop turn, so it reaches the broker as soon as it would without lingering. A batch is
written once it holds `max_batch` messages (those of one `emit_many` are never split). Lingering suits many tasks
that each emit now and then (the pollers, each emitting what one poll found at once); a collector that awaits each
emit before handling its next message would be held to one message per linger, so it is given the outbox's put
directly.

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
    def __init__(self, put_many: PutMany, *, linger_s: float = 0.0, max_batch: int = 1000) -> None:
        if linger_s < 0 or max_batch < 1:
            raise ValueError("linger_s must be at least 0 and max_batch at least 1")
        self._put_many = put_many
        self.linger_s = linger_s
        self.max_batch = max_batch
        self._pending: list[Reading | Event] = []
        self._written: asyncio.Future[None] | None = None
        self._timer: asyncio.Handle | None = None

    async def emit(self, message: Reading | Event) -> None:
        """An `Emit`: returns once `message` is in the outbox, written in one transaction with the rest of its batch."""
        await self.emit_many((message,))

    async def emit_many(self, messages: Sequence[Reading | Event]) -> None:
        """An `EmitMany`: `messages` (what one poll found) join one batch and wait for one write, not one linger
        each: a fire panel's poll that reports a few hundred points takes one linger, not a few seconds."""
        if not messages:
            return
        written = self._written
        if written is None:
            loop = asyncio.get_running_loop()
            written = self._written = _Written(loop=loop)
            self._timer = (
                loop.call_later(self.linger_s, self._write) if self.linger_s > 0 else loop.call_soon(self._write)
            )
        self._pending.extend(messages)
        if len(self._pending) >= self.max_batch:
            self._write()
        elif self.linger_s > 0 and self._timer is not None and any(isinstance(m, Event) for m in messages):
            # An event does not wait for the linger: the batch goes at the end of this loop turn.
            self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_soon(self._write)
        # One emitter being cancelled must not cancel the write the others wait for (its message is written all the
        # same, which is at worst a duplicate downstream, as after any retry): the future refuses to be cancelled.
        await written

    def _write(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
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


class _Written(asyncio.Future[None]):
    """The write of one batch, awaited by all its emitters, which no emitter's cancel can cancel.

    A task cancelled while it awaits a future that refuses the cancel is cancelled at its next step, once the write
    is done: a cancelled emitter gets its CancelledError at most a linger later. What `asyncio.shield` would give
    at once, at the price of a second future and a callback per emitter, on every poll.
    """

    def cancel(self, msg: object | None = None) -> bool:
        return False
