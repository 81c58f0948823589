"""HTTP servers inside our own event loop: the API, and the health and metrics page of each service.

A server binds its own host and port, or serves a socket it is given: the API's workers (facmon.shell.api_workers)
share one listening socket, bound by the process that supervises them, which each worker inherits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator

import structlog
import uvicorn

log = structlog.get_logger(__name__)


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside our loop: signals are ours, so it must not install its own handlers."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket | None = None) -> None:
        super().__init__(config)
        self.sock = sock

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.sock is not None and self.started:
            # A worker of several on one socket: the line its supervisor's log shows when it takes connections.
            log.info("API worker serving", pid=os.getpid())

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def serve_until_cancelled(self) -> None:
        """Cancelling serve() would skip uvicorn's shutdown and leak its listening socket; ask it to exit instead."""
        task = asyncio.ensure_future(self.serve(None if self.sock is None else [self.sock]))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            self.should_exit = True
            await task
            raise
        if not self.started:
            # uvicorn returns (after logging why) when it cannot bind; a service must not carry on without it.
            raise OSError(f"could not serve HTTP on {self.config.host}:{self.config.port}")

    async def wait_started(self, task: asyncio.Task[None]) -> None:
        """Return once listening; raise what stopped `task` (this server's) if it ended first."""
        while not self.started:
            if task.done():
                task.result()
                raise OSError(f"could not serve HTTP on {self.config.host}:{self.config.port}")
            await asyncio.sleep(0.02)


def embedded(app: object, host: str, port: int, sock: socket.socket | None = None) -> EmbeddedServer:
    """`sock`: a listening socket to serve instead of binding `host` and `port` (which then only name it)."""
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        access_log=False,
        log_config=None,
    )
    return EmbeddedServer(config, sock)
