"""HTTP servers inside our own event loop: the API, and the health and metrics page of each service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside our loop: signals are ours, so it must not install its own handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def serve_until_cancelled(self) -> None:
        """Cancelling serve() would skip uvicorn's shutdown and leak its listening socket; ask it to exit instead."""
        task = asyncio.ensure_future(self.serve())
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


def embedded(app: object, host: str, port: int) -> EmbeddedServer:
    return EmbeddedServer(
        uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on", access_log=False, log_config=None)  # type: ignore[arg-type]
    )
