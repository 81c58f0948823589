"""One Modbus TCP connection per host:port, shared by the pollers of every unit id behind it.

Many controllers sit behind one Modbus TCP gateway, and most gateways serve one request at a time: the link keeps
exactly one request in flight, reconnects with capped exponential backoff and jitter, and turns every way a request
can fail into a `LinkError`, so the pollers above it never see a socket exception. The connection and its framing
are `collectors.modbus.tcp`.
"""

from __future__ import annotations

import asyncio
import weakref

from collectors.modbus.frames import LinkError
from collectors.modbus.registers import Table
from collectors.modbus.tcp import ModbusConnection
from facmon.kernel.backoff import Backoff

BACKOFF_BASE_S = 0.5
_FUNCTION: dict[Table, int] = {"holding": 3, "input": 4}


def stop_if_cancelled() -> None:
    """Raise CancelledError when this task has been asked to stop.

    A wait built on `asyncio.wait_for` (pymodbus's, once) returns the result and drops a cancel that arrives in the
    same loop turn on Python 3.11 (fixed in 3.12): a poller told to stop would poll on forever, and a gateway would
    never finish stopping. The connection here awaits a plain future with a timer beside it, which cannot drop a
    cancel, so an answered request needs no check; a failed one, whose wait may have ended in a cancel turned into
    an error, is checked.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


# Wrong answers that are whole answers to the request (a Modbus exception, too few registers, another function):
# the device is talking to us in step, so the connection is kept.
_ANSWERED = frozenset({"exception_code", "short_answer", "wrong_function"})

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
        self._connection: ModbusConnection | None = None
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
        # acquire/release, not `async with`: one coroutine less per request.
        await self._lock.acquire()
        try:
            connection = self._connection
            if connection is None or not connection.connected:
                connection = await self._connected(timeout_s)
            loop = asyncio.get_running_loop()
            sent_at = loop.time()
            what = f"{table} {start}+{count} unit {unit}"
            try:
                registers = await connection.read(
                    _FUNCTION[table], start, count, unit=unit, timeout_s=timeout_s, what=what
                )
            except LinkError as exc:
                if exc.kind in _ANSWERED:
                    # The device answered this request, wrongly: the connection itself is fine.
                    self.last_response_s = loop.time() - sent_at
                    self._failures = 0
                    raise
                # A late answer to this request could still arrive; on a fresh connection it cannot be taken for
                # the answer to the next one.
                self._drop()
                self._failed()
                stop_if_cancelled()
                raise
            except asyncio.CancelledError:
                # Same reason: the request is still out there, and the next poller must not get its answer.
                self._drop()
                raise
            # The device's own time to answer: not the wait for the lock or for a connection.
            self.last_response_s = loop.time() - sent_at
            self._failures = 0
            return registers
        finally:
            self._lock.release()

    def close(self) -> None:
        self._drop()

    async def _connected(self, timeout_s: float) -> ModbusConnection:
        if self._connection is not None and self._connection.connected:
            return self._connection
        self._drop()
        wait = self._retry_at - asyncio.get_running_loop().time()
        if wait > 0:
            raise LinkError(f"{self.host}:{self.port}: next connection attempt in {wait:.1f} s")
        try:
            async with asyncio.timeout(timeout_s):
                connection = await ModbusConnection.open(self.host, self.port)
        except (OSError, TimeoutError) as exc:
            self._failed()
            raise LinkError(f"{self.host}:{self.port}: cannot connect") from exc
        self._connection = connection
        return connection

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _failed(self) -> None:
        self._failures += 1
        self._retry_at = asyncio.get_running_loop().time() + self._backoff.delay(self._failures)


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
