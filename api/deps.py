"""Dependencies as Annotated aliases: a route says `session: SessionDep` and gets a session that is closed after it.

The engine and the sites are built by the caller of create_app (from settings, in main or a lifespan) and kept on
app.state; nothing here reads settings or opens connections at import.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from facmon.estate.site import Site
from facmon.kernel.clock import Clock, SystemClock

T = TypeVar("T")

# The dependencies below do no I/O, so they are async: FastAPI runs a sync dependency in the thread pool, a hop that
# cost more than what they do, on every request.


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_sites(request: Request) -> tuple[Site, ...]:
    sites: tuple[Site, ...] = request.app.state.sites
    return sites


async def get_clock() -> Clock:
    """The time of transitions, SLA figures and token expiry; tests override it with a fake clock."""
    return SystemClock()


EngineDep = Annotated[Engine, Depends(get_engine)]


class DatabaseWork:
    """Runs a route's reading of the database (queries and the answer built from them, one function) in the thread
    pool, at most `limit` at once in this process; the requests beyond wait their turn in the event loop, in order.

    Why: the threads of one process share one interpreter lock. With 20 requests each in a thread of its own, they
    took it from each other so often that a work-order page cost 13.7 ms of CPU instead of 5.0, and p99 was 508 ms
    on one worker (benchmarks/bench_api.py, SQLite); with one at a time, 5.3 ms and 225 ms. A function run here
    opens and closes its own session, so it never waits for a connection that a waiting request holds."""

    def __init__(self, limit: int) -> None:
        self._gate = asyncio.Semaphore(limit)

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        async with self._gate:
            return await run_in_threadpool(work, *args)


async def get_database_work(request: Request) -> DatabaseWork:
    work: DatabaseWork = request.app.state.database_work
    return work


DatabaseWorkDep = Annotated[DatabaseWork, Depends(get_database_work)]
ClockDep = Annotated[Clock, Depends(get_clock)]
SitesDep = Annotated[tuple[Site, ...], Depends(get_sites)]


async def get_session(engine: EngineDep) -> AsyncIterator[Session]:
    """A session for the route, closed after it. Making one does no I/O, so it is made here in the event loop;
    closing it hands its connection back to the pool (a rollback), so that runs in the thread pool: one hop per
    request instead of the two of a sync generator dependency."""
    session = Session(engine)
    try:
        yield session
    finally:
        await run_in_threadpool(session.close)


SessionDep = Annotated[Session, Depends(get_session)]
