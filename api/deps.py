"""Dependencies as Annotated aliases: a route says `session: SessionDep` and gets a session that is closed after it.

The engine and the sites are built by the caller of create_app (from settings, in main or a lifespan) and kept on
app.state; nothing here reads settings or opens connections at import.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from facmon.estate.site import Site
from facmon.kernel.clock import Clock, SystemClock

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
