"""One Modbus TCP client connection, framed here: a read request out, its answer (or what was wrong) back.

Why not pymodbus's client: a gateway polls every device every second, a request or two a poll, and pymodbus spends
about 110 µs of CPU on each (a transaction manager, a future and a `wait_for` per request, a PDU decoder, the trace
callbacks `frames.diagnose` needed), against about 55 µs for the same read framed here, most of which is the socket
write itself; at 1,000 devices that is a tenth of a core. A read of registers is three
fixed-size fields out and a byte count and words back, so the framing is a few lines; the rest of this module is
saying what went wrong. The simulators and tests still use pymodbus's server, which checks this client against an
implementation it did not write.

`ModbusConnection` keeps the bytes of the last request and everything that came back for it, and whether the device
closed the connection: a wrong answer fails the request at once with what was wrong (`frames.diagnose`), a half
answer or silence when the timeout ends. It is used by `ModbusLink`, which keeps one request in flight per
connection and reconnects with backoff: a late answer to a failed request can never be taken for the next one,
because the link drops the connection after any failure.
"""

from __future__ import annotations

import asyncio
import struct

from pymodbus.constants import ExcCodes

from collectors.modbus.frames import MAX_ADU, LinkError, diagnose

_REQUEST = struct.Struct(">HHHBBHH")
_HEADER = struct.Struct(">HHHB")


class ModbusConnection(asyncio.Protocol):
    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._tid = 0
        self._unit = 0
        self._sent = b""
        self._received = bytearray()
        self._closed = False
        self._answer: asyncio.Future[bytes] | None = None
        self._what = ""  # the request in flight, in words, for its LinkError

    @classmethod
    async def open(cls, host: str, port: int) -> ModbusConnection:
        """Connect (OSError when refused; the caller bounds the wait)."""
        connection = cls()
        await asyncio.get_running_loop().create_connection(lambda: connection, host, port)
        return connection

    @property
    def connected(self) -> bool:
        return self._transport is not None and not self._closed

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def read(self, function: int, start: int, count: int, *, unit: int, timeout_s: float, what: str) -> list[int]:
        """`count` registers from `start` with read function 3 or 4, or LinkError naming `what` was asked."""
        if self._transport is None or self._closed:
            raise LinkError(f"{what}: not connected")
        self._tid = (self._tid + 1) & 0xFFFF
        self._unit = unit
        self._sent = _REQUEST.pack(self._tid, 0, 6, unit, function, start, count)
        self._received.clear()
        self._what = what
        loop = asyncio.get_running_loop()
        answer = self._answer = loop.create_future()
        self._transport.write(self._sent)
        # A timer that fails the answer, not `asyncio.timeout`: one handle instead of a context manager, a timer and
        # the task's cancel and uncancel, for every request of every poll. A cancel of the task still cancels the
        # wait (it is a plain future), and nothing can take it back.
        timer = loop.call_at(loop.time() + timeout_s, _time_out, answer)
        try:
            frame = await answer
        except _NoAnswer:
            found = diagnose(self._sent, bytes(self._received), closed=self._closed)
            detail = f"no answer within {timeout_s:g} s" if found.kind == "no_answer" else found.detail
            raise LinkError(f"{what}: {detail}", kind=found.kind, frame=bytes(self._received)) from None
        finally:
            timer.cancel()
            self._answer = None
        return _registers(frame, function, count, what)

    # -- asyncio.Protocol ---------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if len(self._received) < 2 * MAX_ADU:
            self._received += data[: 2 * MAX_ADU - len(self._received)]
        answer = self._answer
        if answer is None or answer.done() or len(self._received) < _HEADER.size:
            return
        tid, protocol, length, unit = _HEADER.unpack_from(self._received)
        body = len(self._received) - 6
        ours = protocol == 0 and tid == self._tid and unit == self._unit
        if ours and 2 <= length <= MAX_ADU - 6 and body < length:
            return  # the rest of a plausible answer is on its way
        if ours and body == length:
            function = self._sent[7]
            if self._received[7] in (function, function | 0x80):
                answer.set_result(bytes(self._received))
                return
        self._fail(answer, closed=False)

    def eof_received(self) -> bool:
        return False  # close: a Modbus device that stops sending is gone

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        answer = self._answer
        if answer is not None and not answer.done():
            self._fail(answer, closed=True)

    def _fail(self, answer: asyncio.Future[bytes], *, closed: bool) -> None:
        """What came back is no answer (or the device closed the connection): fail the request, saying why."""
        received = bytes(self._received)
        found = diagnose(self._sent, received, closed=closed)
        answer.set_exception(LinkError(f"{self._what}: {found.detail}", kind=found.kind, frame=received))


class _NoAnswer(Exception):
    """The request's time ran out (what came by then, if anything, is diagnosed by `read`)."""


def _time_out(answer: asyncio.Future[bytes]) -> None:
    if not answer.done():
        answer.set_exception(_NoAnswer())


def _registers(frame: bytes, function: int, count: int, what: str) -> list[int]:
    """The registers of an answer frame whose header matched the request, or LinkError."""
    if frame[7] == function | 0x80:
        code = frame[8] if len(frame) > 8 else -1
        raise LinkError(f"{what}: exception code {code} ({exception_name(code)})", kind="exception_code", frame=frame)
    size = frame[8] if len(frame) > 8 else 0
    if size % 2:
        raise LinkError(f"{what}: byte count {size} is odd", kind="short_answer", frame=frame)
    got = min(size, len(frame) - 9) // 2
    if got < count:
        raise LinkError(f"{what}: got {got} registers", kind="short_answer", frame=frame)
    return list(struct.unpack_from(f">{count}H", frame, 9))


def exception_name(code: int) -> str:
    try:
        return ExcCodes(code).name.lower().replace("_", " ")
    except ValueError:
        return "not a standard exception code"
