"""Hostile Modbus servers next to a healthy one: the healthy device keeps its readings, and each hostile one is
parked as a dead letter with the bytes it sent and what was wrong with them, and lost with a reason.

The hostile servers are plain asyncio TCP servers written here, answering every request wrongly in one way:
garbage, another transaction id, another unit, a length field that lies either way, another function code, a
Modbus exception, too few registers, a half-close, a slowloris that sends its answer a byte at a time, and one that
sends nothing at all (silence is lost with a reason, but it is not a wrong answer, so no dead letter).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator

import pytest

from collectors.modbus.frames import diagnose
from collectors.modbus.link import ModbusLinks
from collectors.modbus.poller import PollTiming
from facmon.kernel.daemons import free_port
from facmon.kernel.model import EventType
from simulators.endpoint import ModbusEndpoint
from tests.collectors.support import FrameSource
from tests.collectors.test_modbus_resilience import DRIVER, Watched, watching
from tests.simulators.support import wait_until

TIMING = PollTiming(interval_s=0.1, comm_grace_s=0.0, timeout_s=0.4)
MBAP = struct.Struct(">HHHB")


def _adu(tid: int, unit: int, pdu: bytes, length: int | None = None) -> bytes:
    return MBAP.pack(tid, 0, len(pdu) + 1 if length is None else length, unit) + pdu


def _answer(mode: str, request: bytes) -> bytes:
    """The wrong answer of `mode` to a read request (function 3 or 4)."""
    tid, _, _, unit = MBAP.unpack_from(request)
    function, count = request[7], struct.unpack_from(">H", request, 10)[0]
    good = bytes([function, 2 * count]) + b"\x00\x01" * count
    return {
        "garbage": b"\xde\xad\xbe\xef" * 6,
        "transaction": _adu(tid ^ 0x5A5A, unit, good),
        "unit": _adu(tid, unit + 1, good),
        "length_long": _adu(tid, unit, good, length=len(good) + 21),  # 20 bytes more than it sends
        "length_short": _adu(tid, unit, good, length=3) + good[2:],
        "function": _adu(tid, unit, bytes([7, 1, 0])),
        "exception": _adu(tid, unit, bytes([function | 0x80, 2])),
        "short": _adu(tid, unit, bytes([function, 2, 0, 1])),
        "slowloris": _adu(tid, unit, good),
    }[mode]


# mode: the kind of wrong answer the link must name (LinkError.kind, from collectors.modbus.frames).
HOSTILE = {
    "garbage": "bad_frame",
    "transaction": "wrong_transaction",
    "unit": "wrong_unit",
    "length_long": "incomplete",
    "length_short": "bad_length",
    "function": "wrong_function",
    "exception": "exception_code",
    "short": "short_answer",
    "half_close": "closed",
    "slowloris": "incomplete",
}


@contextlib.asynccontextmanager
async def hostile(mode: str) -> AsyncIterator[int]:
    """A server answering every request the `mode` way, on a free port, for the block."""
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            while True:
                request = await reader.readexactly(12)
                if mode == "half_close":
                    writer.write_eof()
                    await reader.read()  # until the client gives up and closes
                    return
                if mode == "silent":
                    continue
                answer = _answer(mode, request)
                if mode == "slowloris":
                    for byte in answer:
                        writer.write(bytes([byte]))
                        await writer.drain()
                        await asyncio.sleep(0.1)
                else:
                    writer.write(answer)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            handlers.discard(task)

    server = await asyncio.start_server(handle, "127.0.0.1", free_port())
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


@pytest.mark.parametrize("mode", [*HOSTILE, "silent"])
async def test_a_hostile_server_is_parked_with_its_reason_and_the_healthy_one_keeps_reading(mode: str) -> None:
    port = free_port()
    source = FrameSource(DRIVER)
    source.set("holding", {101: 18})  # floors served: every word of the healthy device legal
    healthy = ModbusEndpoint("127.0.0.1", port, [source])
    await healthy.start()
    links = ModbusLinks()
    try:
        async with (
            hostile(mode) as bad_port,
            watching("good", port, TIMING, links) as good,
            watching("bad", bad_port, TIMING, links) as bad,
        ):
            await wait_until(lambda: bool(bad.of(EventType.COMM_LOST)), what="the hostile device lost", timeout_s=10)
            kind = HOSTILE.get(mode)
            # Some polls of a busy machine fail before the wrong answer arrives (a refused reconnect): wait for
            # four wrong answers of the kind, not four failed polls.
            await wait_until(
                lambda: (
                    bad.metrics.get("modbus_poll_failures") >= 4
                    and (kind is None or bad.metrics.get("modbus_bad_answers", device="bad", reason=kind) >= 4)
                ),
                what="more polls",
                timeout_s=20,
            )
            count = len(good.readings)
            await wait_until(lambda: len(good.readings) >= count + 3, what="the healthy device read", timeout_s=10)
            _check(mode, good, bad)
    finally:
        await healthy.stop()
    assert len(links) == 0, "every link closes with its last poller"


def _check(mode: str, good: Watched, bad: Watched) -> None:
    assert not good.letters, "the healthy device is untouched"
    assert not good.of(EventType.COMM_LOST)
    [lost] = bad.of(EventType.COMM_LOST)
    kind = HOSTILE.get(mode, "no_answer")
    assert lost.data == {"reason": kind}, lost.message
    assert "unit 1: " in lost.message, lost.message
    assert not lost.message.endswith(": "), lost.message
    assert not bad.readings
    if mode == "silent":
        assert not bad.letters
        assert "no answer within 0.4 s" in lost.message
        return
    # Once per kind while it lasts, however many polls it answers wrongly; every one counted.
    assert len(bad.letters) == 1, [(m.reason, m.payload) for m in bad.letters]
    letter = bad.letters[0]
    assert (letter.source, letter.ref) == ("modbus", lost.ref)
    assert letter.reason in lost.message
    assert bad.metrics.get("modbus_bad_answers", device="bad", reason=kind) >= 4
    if mode == "half_close":
        assert letter.payload is None
    else:
        assert letter.payload is not None
        # The bytes it sent, as a Modbus tool shows them (at most an ADU of them, then " ...").
        shown = letter.payload.removesuffix(" ...")
        assert all(len(byte) == 2 for byte in shown.split(" ")), letter.payload


def test_diagnose_names_what_is_wrong_with_a_frame() -> None:
    request = _adu(9, 1, bytes([3, 0, 0, 0, 4]))
    assert diagnose(request, b"", closed=False).kind == "no_answer"
    assert diagnose(request, b"", closed=True).kind == "closed"
    assert diagnose(request, b"\x00\x09\x00", closed=False).kind == "incomplete"
    for mode, kind in HOSTILE.items():
        if mode not in ("half_close", "exception", "short", "slowloris"):
            assert diagnose(request, _answer(mode, request), closed=False).kind == kind, mode
    assert diagnose(request, _answer("transaction", request), closed=False).detail == (
        f"transaction id {9 ^ 0x5A5A}, the request's is 9"
    )
