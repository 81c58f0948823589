"""The loop every periodic monitor of the rules worker runs: tick, and outlive a database outage."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import NoReturn

import structlog
from sqlalchemy.exc import OperationalError

from facmon.kernel.metrics import Counters

log = structlog.get_logger(__name__)


async def tick_forever(
    tick: Callable[[], Awaitable[object]], interval_s: float, *, metrics: Counters, name: str
) -> NoReturn:
    """Call `tick` every `interval_s` until cancelled. A database that is unavailable is counted as
    `rules_<name>_db_errors` and logged, and the next tick tries again."""
    while True:
        try:
            await tick()
        except OperationalError as exc:
            metrics.inc(f"rules_{name}_db_errors")
            log.warning("database unavailable", monitor=name, error=str(exc.orig))
        await asyncio.sleep(interval_s)
