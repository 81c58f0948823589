"""What the collectors emit in one loop turn goes into the real outbox in one transaction, each emit returning once
its message is on disk; a failed write reaches every emitter of its batch, and a cancelled emitter costs the others
nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from facmon.kernel.model import Event, EventType, Reading
from gateway.outbox import Outbox
from gateway.put_batch import PutBatch
from tests.gateway.conftest import reading


async def test_one_loop_turns_emits_share_one_transaction_and_return_once_on_disk(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite") as outbox:
        writes: list[int] = []

        def put_many(messages: Sequence[Reading | Event]) -> None:
            writes.append(len(messages))
            outbox.put_many(messages)

        batch = PutBatch(put_many)
        on_disk: list[int] = []

        async def emitter(seq: int) -> None:
            await batch.emit(reading("s", seq=seq))
            # Returned: the message is in the outbox file already.
            on_disk.append(outbox.size())

        await asyncio.gather(*(emitter(n) for n in range(50)))
        assert writes == [50]
        assert on_disk == [50] * 50
        # In emit order.
        assert [m.payload for m in outbox.peek(50)] == [
            reading("s", seq=n).model_dump_json().encode() for n in range(50)
        ]

        # Emits of later loop turns are later transactions.
        await batch.emit(reading("s", seq=50))
        await batch.emit(reading("s", seq=51))
        assert writes == [50, 1, 1]
        assert outbox.size() == 52


async def test_a_failed_write_reaches_every_emitter_of_its_batch(tmp_path: Path) -> None:
    def put_many(messages: Sequence[Reading | Event]) -> None:
        raise OSError("disk on fire")

    batch = PutBatch(put_many)
    results = await asyncio.gather(*(batch.emit(reading("s", seq=n)) for n in range(3)), return_exceptions=True)
    assert [type(r) for r in results] == [OSError] * 3


async def test_a_cancelled_emitter_does_not_cancel_the_write_of_the_others(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite") as outbox:
        batch = PutBatch(outbox.put_many)
        cancelled = asyncio.create_task(batch.emit(reading("s", seq=0)))
        kept = asyncio.create_task(batch.emit(reading("s", seq=1)))
        await asyncio.sleep(0)  # both have joined the batch
        cancelled.cancel()
        await kept
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert outbox.size() == 2


async def test_emits_within_the_linger_share_a_transaction_up_to_the_batch_size(tmp_path: Path) -> None:
    writes: list[int] = []
    batch = PutBatch(lambda messages: writes.append(len(messages)), linger_s=0.05, max_batch=3)

    async def later(seq: int) -> None:
        await asyncio.sleep(0.01 * seq)
        await batch.emit(reading("s", seq=seq))

    # Four emits in four loop turns within 50 ms: three fill a batch, written at once; the fourth waits its linger.
    await asyncio.gather(*(later(n) for n in range(4)))
    assert writes == [3, 1]


async def test_the_messages_of_one_emit_many_are_one_write_never_split(tmp_path: Path) -> None:
    writes: list[int] = []
    batch = PutBatch(lambda messages: writes.append(len(messages)), linger_s=0.01, max_batch=10)
    await batch.emit_many([])
    assert writes == [], "nothing to write is no write"
    # Two emitters in one linger: one write; a call that fills the batch writes it at once, all of its messages.
    await asyncio.gather(batch.emit(reading("s", seq=0)), batch.emit_many([reading("s", seq=n) for n in range(1, 4)]))
    await batch.emit_many([reading("s", seq=n) for n in range(25)])
    assert writes == [4, 25]


async def test_an_event_does_not_wait_for_the_linger(tmp_path: Path) -> None:
    writes: list[list[str]] = []
    batch = PutBatch(lambda messages: writes.append([type(m).__name__ for m in messages]), linger_s=30.0)
    ref = reading("s").ref
    lingering = asyncio.create_task(batch.emit(reading("s", seq=0)))
    await asyncio.sleep(0)  # the reading waits for its linger
    assert writes == []
    fault = Event(ref=ref, ts=reading("s").ts, type=EventType.FAULT_RAISED, code="2")
    # The event's batch, the reading with it, is written at the end of the loop turn, not 30 s later.
    await asyncio.wait_for(batch.emit(fault), 5)
    await asyncio.wait_for(lingering, 5)
    assert writes == [["Reading", "Event"]]
