"""The loop every periodic database monitor runs (SLA breaches, rule holds, checks due): tick, and outlive a database
outage."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NoReturn

import structlog
from sqlalchemy.exc import OperationalError

from facmon.kernel.clock import Clock
from facmon.kernel.metrics import Counters

log = structlog.get_logger(__name__)


async def tick_forever(
    tick: Callable[[], Awaitable[object]], interval_s: float, *, clock: Clock, metrics: Counters, name: str
) -> NoReturn:
    """Call `tick` every `interval_s` of `clock` until cancelled. A database that is unavailable is counted as
    `rules_<name>_db_errors` and logged, and the next tick tries again.

    Ticks start `interval_s` apart (a tick that takes longer is followed by the next at once), so a fake clock
    advanced while a tick runs gets a tick at its new time."""
    while True:
        next_at = clock.monotonic() + interval_s
        try:
            await tick()
        except OperationalError as exc:
            metrics.inc(f"rules_{name}_db_errors")
            log.warning("database unavailable", monitor=name, error=str(exc.orig))
        await clock.sleep_until(next_at)
