"""One Modbus TCP connection per host:port, shared by the pollers of every unit id behind it.

Many controllers sit behind one Modbus TCP gateway, and most gateways serve one request at a time: the link keeps
exactly one request in flight, reconnects with capped exponential backoff and jitter, and turns every way a request
can fail into a `LinkError`, so the pollers above it never see a pymodbus or socket exception.
"""

from __future__ import annotations

import asyncio
import weakref

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ModbusException

from collectors.modbus.frames import MAX_ADU, diagnose
from collectors.modbus.registers import Table
from facmon.kernel.backoff import Backoff
from facmon.kernel.untrusted import printable

BACKOFF_BASE_S = 0.5
_FUNCTION: dict[Table, int] = {"holding": 3, "input": 4}


def stop_if_cancelled() -> None:
    """Raise CancelledError when this task has been asked to stop.

    pymodbus waits for connections and answers with `asyncio.wait_for`, which on Python 3.11 returns the result and
    drops a cancel that arrives in the same loop turn (fixed in 3.12): a poller told to stop would poll on forever,
    and a gateway would never finish stopping. Called after every wait on pymodbus, it makes the cancel stick.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class LinkError(Exception):
    """A request that got no usable answer: not connected, timed out, or answered with a Modbus exception.

    `kind` labels what went wrong (`collectors.modbus.frames`: "no_answer", "wrong_transaction", "exception_code",
    ...; "no_connection" when no request went out); `frame` holds the bytes the device sent that were no answer
    (empty when none came)."""

    def __init__(self, message: str, *, kind: str = "no_connection", frame: bytes = b"") -> None:
        super().__init__(message)
        self.kind = kind
        self.frame = frame


# What a device answered with, when it answered wrongly (not only stayed silent): a dead letter's worth.
BAD_ANSWERS = frozenset(
    {
        "closed",
        "incomplete",
        "bad_frame",
        "bad_length",
        "wrong_transaction",
        "wrong_unit",
        "wrong_function",
        "exception_code",
        "short_answer",
    }
)


class ModbusLink:
    def __init__(self, host: str, port: int, *, backoff_max_s: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.backoff_max_s = backoff_max_s
        self.users = 0
        # Seconds the last request that got an answer took, from sending it to the answer.
        self.last_response_s = 0.0
        self._client: AsyncModbusTcpClient | None = None
        # The last request sent, what came back for it (as pymodbus's trace saw it), and whether the device closed
        # the connection since: what `frames.diagnose` reads when no answer was made of it.
        self._sent = b""
        self._received = b""
        self._closed = False
        self._lock = asyncio.Lock()
        self._failures = 0
        # Loop time before which no new connection is tried; until then requests fail at once.
        self._retry_at = 0.0
        # Jitter, so the gateways of a whole estate that lost power do not all reconnect in the same instant.
        self._backoff = Backoff(min(BACKOFF_BASE_S, backoff_max_s), backoff_max_s)

    def cap_backoff(self, backoff_max_s: float) -> None:
        """Wait no longer than `backoff_max_s` between connection attempts (a link keeps the lowest cap it is given:
        the unit polled most often behind it decides how soon a controller back on the line is read again)."""
        if backoff_max_s < self.backoff_max_s:
            self.backoff_max_s = backoff_max_s
            self._backoff = Backoff(min(BACKOFF_BASE_S, backoff_max_s), backoff_max_s)
            self._retry_at = min(self._retry_at, asyncio.get_running_loop().time() + backoff_max_s)

    def __repr__(self) -> str:
        return f"ModbusLink({self.host}:{self.port})"

    async def read(self, table: Table, start: int, count: int, *, unit: int, timeout_s: float) -> list[int]:
        """`count` registers from `start` of one unit, or LinkError."""
        async with self._lock:
            client = await self._connected(timeout_s)
            loop = asyncio.get_running_loop()
            sent_at = loop.time()
            try:
                async with asyncio.timeout(timeout_s):
                    if table == "holding":
                        response = await client.read_holding_registers(start, count=count, device_id=unit)
                    else:
                        response = await client.read_input_registers(start, count=count, device_id=unit)
            except (ModbusException, OSError, TimeoutError) as exc:
                # A late answer to this request could still arrive; on a fresh connection it cannot be taken for
                # the answer to the next one.
                self._drop()
                self._failed()
                stop_if_cancelled()
                raise self._no_answer(f"{table} {start}+{count} unit {unit}", exc, timeout_s) from exc
            except asyncio.CancelledError:
                # Same reason: the request is still out there, and the next poller must not get its answer.
                self._drop()
                raise
            stop_if_cancelled()
            # The device's own time to answer: not the wait for the lock or for a connection.
            self.last_response_s = loop.time() - sent_at
            self._failures = 0
            if response.isError():
                # The gateway or device answered, with a Modbus exception (e.g. 0x0B: the unit behind the gateway
                # is silent). The connection itself is fine.
                code = response.exception_code
                raise LinkError(
                    f"{table} {start}+{count} unit {unit}: exception code {code} ({_exception_name(code)})",
                    kind="exception_code",
                    frame=self._received,
                )
            if response.function_code != _FUNCTION[table]:
                # pymodbus decodes any known function's answer, whichever the request was.
                raise self._no_answer(f"{table} {start}+{count} unit {unit}", LinkError(""), timeout_s)
            registers: list[int] = list(response.registers)
            if len(registers) < count:
                raise LinkError(
                    f"{table} {start}+{count} unit {unit}: got {len(registers)} registers",
                    kind="short_answer",
                    frame=self._received,
                )
            return registers[:count]

    def _no_answer(self, request: str, exc: Exception, timeout_s: float) -> LinkError:
        """The LinkError of a request that got no answer pymodbus could match to it, saying why."""
        found = diagnose(self._sent, self._received, closed=self._closed)
        detail = f"no answer within {timeout_s:g} s" if found.kind == "no_answer" else found.detail
        said = str(exc)
        if said and not isinstance(exc, TimeoutError):
            detail = f"{detail}: {printable(said, 200)}"
        return LinkError(f"{request}: {detail}", kind=found.kind, frame=self._received)

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        # pymodbus hands every packet sent and every read of its receive buffer here (its unread bytes, so a frame
        # still arriving grows from one call to the next; a frame it dropped is gone from the next call).
        if sending:
            self._sent, self._received, self._closed = data, b"", False
        elif data.startswith(self._received):
            self._received = data[: 2 * MAX_ADU]
        else:
            self._received = (self._received + data)[: 2 * MAX_ADU]
        return data

    def _trace_connect(self, connected: bool) -> None:
        if not connected:
            self._closed = True

    def close(self) -> None:
        self._drop()

    async def _connected(self, timeout_s: float) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected:
            return self._client
        self._drop()
        wait = self._retry_at - asyncio.get_running_loop().time()
        if wait > 0:
            raise LinkError(f"{self.host}:{self.port}: next connection attempt in {wait:.1f} s")
        # reconnect_delay=0: pymodbus must not reconnect on its own; the backoff here decides when to try again.
        client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            timeout=timeout_s,
            retries=0,
            reconnect_delay=0,
            trace_packet=self._trace_packet,
            trace_connect=self._trace_connect,
        )
        try:
            async with asyncio.timeout(timeout_s):
                connected = await client.connect()
        except TimeoutError:
            connected = False
        if not connected:
            stop_if_cancelled()
            client.close()
            self._failed()
            raise LinkError(f"{self.host}:{self.port}: cannot connect")
        self._client = client
        stop_if_cancelled()
        return client

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _failed(self) -> None:
        self._failures += 1
        self._retry_at = asyncio.get_running_loop().time() + self._backoff.delay(self._failures)


def _exception_name(code: int) -> str:
    try:
        return ExcCodes(code).name.lower().replace("_", " ")
    except ValueError:
        return "not a standard exception code"


class ModbusLinks:
    """The open links of one event loop by host:port; a link closes when its last poller lets go of it."""

    def __init__(self) -> None:
        self._links: dict[tuple[str, int], ModbusLink] = {}

    def acquire(self, host: str, port: int, *, backoff_max_s: float = 30.0) -> ModbusLink:
        link = self._links.get((host, port))
        if link is None:
            link = self._links[(host, port)] = ModbusLink(host, port, backoff_max_s=backoff_max_s)
        link.cap_backoff(backoff_max_s)
        link.users += 1
        return link

    def release(self, link: ModbusLink) -> None:
        link.users -= 1
        if link.users <= 0 and self._links.get((link.host, link.port)) is link:
            del self._links[(link.host, link.port)]
            link.close()

    def __len__(self) -> int:
        return len(self._links)


# Connections and their locks belong to one event loop, so the shared pool is per loop.
_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ModbusLinks] = weakref.WeakKeyDictionary()


def shared_links() -> ModbusLinks:
    """The pool the pollers of the running event loop share unless they are given one."""
    loop = asyncio.get_running_loop()
    pool = _POOLS.get(loop)
    if pool is None:
        pool = _POOLS[loop] = ModbusLinks()
    return pool
