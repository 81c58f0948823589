"""Helpers shared by the end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

T = TypeVar("T")


def children_of(pid: int) -> dict[int, str]:
    """The live children (zombies excluded) of process `pid`, pid -> command line, from /proc."""
    parent = str(pid)
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            # pid (comm) state ppid ...: the command name may hold spaces and parentheses, so split after the last ")".
            fields = Path("/proc", entry, "stat").read_text().rpartition(")")[2].split()
            if len(fields) < 2 or fields[1] != parent or fields[0] in ("Z", "X"):
                continue
            found[int(entry)] = Path("/proc", entry, "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:  # it went between the listing and the read
            continue
    return found


async def wait_for(check: Callable[[], Awaitable[T]], timeout_s: float, what: str, *, every_s: float = 0.1) -> T:
    """The first truthy result of `check`, polled every `every_s`; AssertionError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


async def eventually(condition: Callable[[], object], timeout_s: float = 10.0, what: str = "") -> None:
    """Return as soon as `condition()` is truthy, checked at every turn of the loop and then every few ms;
    AssertionError after `timeout_s`. For waiting on work in other tasks, threads or processes instead of sleeping
    a fixed time and hoping it was enough."""
    deadline = time.monotonic() + timeout_s
    turns = 0
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or condition}")
        turns += 1
        await asyncio.sleep(0 if turns < 10 else 0.005)


def tool(name: str, package: str) -> str:
    """The path of a command-line tool the tests use; `make test` installs its Debian package, so missing is a
    failure, not a skip."""
    path = shutil.which(name)
    assert path is not None, f"{name} is not installed (Debian package {package}; `make test` installs it)"
    return path


async def mbpoll(port: int, *args: str) -> dict[int, int]:
    """Run Debian's mbpoll once against 127.0.0.1:port; {reference: value} from its output, decimal or hex."""
    # Run it without blocking the loop: the simulator answering it lives on this loop.
    proc = await asyncio.create_subprocess_exec(
        tool("mbpoll", "mbpoll"), "-m", "tcp", "-a", "1", "-1", "-o", "2", "-p", str(port), *args, "127.0.0.1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, f"mbpoll failed: {err.decode()} {out.decode()}"
    # Lines such as "[21]: \t4660", "[4]: \t65533 (-3)" or "[123]: \t0x0001".
    found = re.findall(r"^\[(\d+)\]:\s+(0x[0-9A-Fa-f]+|-?\d+)", out.decode(), re.MULTILINE)
    return {int(ref): int(value, 0) for ref, value in found}


@contextmanager
def serving_in_thread(app: Any, name: str = "test-server") -> Iterator[str]:
    """An ASGI app in uvicorn on a free port of 127.0.0.1, in a thread with its own event loop (for callers that
    block, such as a browser driver or a synchronous CLI); yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not server.started:
            raise RuntimeError("uvicorn did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def one_elevator_site(site_id: str, port: int, **sections: Any) -> dict[str, Any]:
    """A site file's content with one main elevator, `e1` of model elev-gb-a in building `b1`, at 127.0.0.1:`port`;
    `sections` adds or replaces top-level sections (technicians, on_call, ...)."""
    device = {"id": "e1", "kind": "elevator", "model": "elev-gb-a", "role": "main"}
    device["address"] = {"host": "127.0.0.1", "port": port, "unit": 1}
    return {"site": {"id": site_id}, "buildings": [{"id": "b1", "devices": [device]}], **sections}


def unbatched(topic: str, payload: bytes | bytearray | str | Any) -> list[tuple[str, bytes]]:
    """A backbone message as the messages it carries: a batch of readings (facmon.kernel.batches) as each reading on
    its device's state topic, anything else as it came; for tests that look at messages one by one."""
    from facmon.kernel.batches import batch_of, decode_batch
    from facmon.kernel.topics import state_topic

    data = payload if isinstance(payload, bytes) else str(payload).encode() if isinstance(payload, str) else payload
    where = batch_of(topic)
    if where is None:
        return [(topic, bytes(data))]
    decoded = decode_batch(bytes(data), *where)
    assert not decoded.refused, decoded.refused
    return [(state_topic(r.ref), r.model_dump_json().encode()) for r in decoded.readings]
