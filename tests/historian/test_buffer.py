"""What only the historian's buffer does: park the lines InfluxDB refuses. Order, batches, acks, capacity and crash
safety are the durable queue's contract, tested on the buffer too in tests/kernel/test_sqlite_queue.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from facmon.historian.buffer import LineBuffer, RejectedLine

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_a_refused_line_is_parked_with_its_reason_and_no_longer_holds_up_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "buffer.sqlite"
    with LineBuffer(path) as buffer:
        buffer.append(["m v=1i 1", "m v=oops 2", "m v=3i 3", 'm v="x" 4'])
        first, bad, third, worse = buffer.take(10)
        buffer.reject(bad, "400: unable to parse", T0)
        buffer.reject(worse, "400: field type conflict", T0 + timedelta(seconds=1))
        assert buffer.pending() == 2
        assert buffer.take(10) == [first, third]
        buffer.reject(bad, "400: unable to parse", T0)  # again (say after a restart): parked again, pending still right
        assert buffer.pending() == 2
    with LineBuffer(path) as buffer:
        assert buffer.rejected(limit=2) == [
            RejectedLine("m v=oops 2", "400: unable to parse", T0),
            RejectedLine('m v="x" 4', "400: field type conflict", T0 + timedelta(seconds=1)),
        ]
        assert [r.line for r in buffer.rejected()] == ["m v=oops 2", 'm v="x" 4', "m v=oops 2"]
