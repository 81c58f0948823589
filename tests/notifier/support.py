"""A notification to send in the tests, and a real HTTP receiver on a free port that records what reaches it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from facmon.notifier.base import Notification, Recipient

NOW = datetime(2026, 3, 2, 8, 15, tzinfo=UTC)
LI = Recipient(id="li-ming", name="Li Ming", phone="+8613800001111", email="li.ming@example.com")


def notification(**changes: Any) -> Notification:
    base = Notification(
        key="wo7/s0/r0/li-ming/webhook",
        work_order_id=7,
        site="sunrise-garden",
        building="b1",
        device="b1-e1",
        kind="elevator",
        fault="entrapment",
        priority="emergency",
        title="Passenger trapped",
        sla_clock="on_site",
        sla_left_s=12 * 60 + 5,
        ack_url="https://facmon.example/api/v1/ack/abc.def",
        reason="opened",
        created_at=NOW,
    )
    return replace(base, **changes)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """Answers every request with `status` (after `delay_s`, cut short when the receiver closes) and records it."""

    port: int = 0
    status: int = 200
    delay_s: float = 0.0
    requests: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    handlers: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if (task := asyncio.current_task()) is not None:
            self.handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ln)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Received(method, path, headers, body, asyncio.get_running_loop().time()))
            self.arrived.set()
            if self.delay_s:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.delay_s):
                        await self.closing.wait()
            writer.write(f"HTTP/1.1 {self.status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode())
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def http_receiver(status: int = 200) -> AsyncIterator[Receiver]:
    receiver = Receiver(status=status)
    server = await asyncio.start_server(receiver._handle, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.close()
        # Python 3.11's wait_closed does not wait for the connections: end the ones still held, and wait for them.
        receiver.closing.set()
        await asyncio.gather(*receiver.handlers, return_exceptions=True)
        await server.wait_closed()


class Inbox:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.refuse: str | None = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        if self.refuse is not None:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"
