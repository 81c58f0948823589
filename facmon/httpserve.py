"""HTTP servers inside our own event loop: the API in `facmon up`, the metrics page of a standalone gateway."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from facmon.metrics import Counters


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


def metrics_app(metrics: Counters) -> Starlette:
    """GET /metrics: the process's counters as Prometheus text."""

    async def page(_request: Request) -> PlainTextResponse:
        return PlainTextResponse(metrics.prometheus(), media_type="text/plain; version=0.0.4")

    return Starlette(routes=[Route("/metrics", page)])


def embedded(app: object, host: str, port: int) -> EmbeddedServer:
    return EmbeddedServer(
        uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on", access_log=False)  # type: ignore[arg-type]
    )
