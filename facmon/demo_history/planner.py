"""The whole history plan of a site: elevators, fire systems, cameras and barriers, from one seed."""

from __future__ import annotations

import asyncio

from facmon.demo_history.elevators import elevator_history
from facmon.demo_history.fire import fire_history
from facmon.demo_history.model import HistoryPlan
from facmon.demo_history.profile import HistoryProfile, Period
from facmon.demo_history.security import security_history
from facmon.demo_history.staff import Planning
from facmon.estate.site import Site


def plan_history(site: Site, period: Period, seed: int, profile: HistoryProfile) -> HistoryPlan:
    """Decide everything that happens in `period`; pure apart from the in-process simulators it polls."""
    ctx = Planning(site, period, seed, profile)

    async def plan() -> HistoryPlan:
        whole = HistoryPlan()
        # One after the other, not gathered: the planned events' ids come from one stream, in a fixed order.
        whole.extend(await elevator_history(ctx))
        whole.extend(await fire_history(ctx))
        whole.extend(await security_history(ctx))
        return whole

    whole = asyncio.run(plan())
    # In time order; events of one moment keep the order their collector made them in.
    whole.events.sort(key=lambda timed: timed.event.ts)
    whole.window_checks.sort()
    return whole
