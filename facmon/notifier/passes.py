"""One guarded pass of a notifier loop: the dispatcher's and the sender's loops run on while the database is away."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy.exc import OperationalError

from facmon.kernel.metrics import Counters

log = structlog.get_logger(__name__)


async def guarded_pass(tick: Callable[[], Awaitable[object]], metrics: Counters, part: str) -> str | None:
    """Run one `tick` of `part` ("dispatcher", "sender"): None when it ran, else why the database refused it, counted
    (notifier_<part>_db_errors) and logged; the caller keeps it as its health."""
    try:
        await tick()
    except OperationalError as exc:
        metrics.inc(f"notifier_{part}_db_errors")
        log.warning(f"{part}: database unavailable", error=str(exc.orig))
        return f"database unavailable: {exc.orig}"[:300]
    return None
