"""Finding SLA breaches on time, recording each once, and handing it to whoever listens.

Every tick (the rules worker runs one a second) asks the database for clocks whose deadline has passed, that were
not met in time, and whose breach is not recorded yet, and records them, all in one UPDATE ... RETURNING:

- `breached_at IS NULL` in that UPDATE is what makes a breach happen once. A monitor thrown away and started again,
  or two monitors over the same database, find the clock already marked; nothing in memory is trusted with it. The
  clocks are read locked (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so of two monitors ticking at once each records
  the breaches the other has not locked, and neither waits for the other.
- The deadlines are stored with the work orders, so a restart loses no clock and a breach that fell due while no
  monitor ran is recorded by the first tick after (its `breached_at` says when it was noticed, `due_at` when due).
- A clock met late while no monitor ran is still recorded as breached; one whose work order was cancelled before
  its deadline is not.

Each recorded breach also goes into the work order's timeline (`sla_breached`) in the same transaction, and from
there to InfluxDB with the other lifecycle points (facmon.workorders.lifecycle). Then, after the commit, each breach
is handed
to the `on_breach` callback: the notifier and escalation subscribe there. The callback hears of a breach at most
once (a crash between the commit and the call loses the call, never the record); a subscriber that must not miss
one reads the durable `sla_breached` timeline entries, as the lifecycle exporter does.

A breach is not always the last word: arrival evidence processed after it but stamped before the deadline (a
gateway's outbox replayed after an outage) withdraws it (facmon.workorders.late_arrival), and a clock met in time is
never recorded again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

import structlog
from sqlalchemy import Engine, Select, or_, select, tuple_, update
from sqlalchemy.orm import Session

from facmon.kernel.clock import Clock
from facmon.kernel.metrics import Counters
from facmon.kernel.ticking import tick_forever
from facmon.workorders.tables import RULES_SOURCE, Milestone, TimelineType, WorkOrder, WorkOrderClock, WorkOrderEvent

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SlaBreach:
    work_order_id: int
    site: str
    building: str
    device: str
    kind: str
    fault: str
    priority: str
    title: str
    clock: str
    milestone: Milestone
    due_at: datetime
    # When the breach was recorded (the tick that noticed it).
    breached_at: datetime
    # When the milestone was reached after all (met late); None while it is still not met.
    met_at: datetime | None


BreachHandler = Callable[[SlaBreach], Awaitable[None]]


def _breached(now: datetime) -> Select[int, str]:
    """The clocks breached by `now` and not recorded yet, locked as read, skipping those another monitor has locked:
    it records them, and two monitors never wait on each other's rows (nor deadlock on them taken in another order).
    """
    clock = WorkOrderClock
    return (
        select(clock.work_order_id, clock.name)
        .where(
            clock.breached_at.is_(None),
            # The deadline itself still counts as in time ("on site within 20 min").
            clock.due_at < now,
            or_(clock.met_at.is_(None), clock.met_at > clock.due_at),
            or_(clock.cancelled_at.is_(None), clock.cancelled_at > clock.due_at),
        )
        .with_for_update(skip_locked=True)
    )


def record_breaches(engine: Engine, now: datetime) -> list[SlaBreach]:
    """Record every clock breached by `now` and not recorded before; the breaches recorded by this call."""
    clock = WorkOrderClock
    with Session(engine) as session, session.begin():
        rows = session.execute(
            update(clock)
            .where(tuple_(clock.work_order_id, clock.name).in_(_breached(now)), clock.breached_at.is_(None))
            .values(breached_at=now)
            .returning(clock.work_order_id, clock.name, clock.milestone, clock.due_at, clock.met_at)
            .execution_options(synchronize_session=False)
        ).all()
        if not rows:
            return []
        ids = {row.work_order_id for row in rows}
        orders = {wo.id: wo for wo in session.execute(select(WorkOrder).where(WorkOrder.id.in_(ids))).scalars()}
        breaches: list[SlaBreach] = []
        for row in sorted(rows, key=lambda r: (r.due_at, r.work_order_id, r.name)):
            wo = orders[row.work_order_id]
            breach = SlaBreach(
                work_order_id=wo.id,
                site=wo.site,
                building=wo.building,
                device=wo.device,
                kind=wo.kind,
                fault=wo.fault,
                priority=wo.priority,
                title=wo.title,
                clock=row.name,
                milestone=Milestone(row.milestone),
                due_at=row.due_at,
                breached_at=now,
                met_at=row.met_at,
            )
            breaches.append(breach)
            session.add(
                WorkOrderEvent(
                    work_order_id=wo.id,
                    at=now,
                    type=TimelineType.SLA_BREACHED,
                    status=wo.status,
                    source=RULES_SOURCE,
                    detail={
                        "clock": row.name,
                        "milestone": row.milestone,
                        "due_at": row.due_at.isoformat(),
                        "met_at": None if row.met_at is None else row.met_at.isoformat(),
                    },
                )
            )
    return breaches


class SlaMonitor:
    """Runs `record_breaches` on the injected clock's time and hands each new breach to `on_breach`."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        on_breach: BreachHandler | None = None,
        metrics: Counters | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.on_breach = on_breach
        self.metrics = metrics or Counters()
        # Ticks completed; tests and health checks wait on it.
        self.ticks = 0

    async def tick(self) -> list[SlaBreach]:
        """One look at the clocks, at `clock.now()`; the breaches recorded (and handed on) by it."""
        breaches = await asyncio.to_thread(record_breaches, self.engine, self.clock.now())
        for breach in breaches:
            self.metrics.inc("rules_sla_breaches", clock=breach.clock, kind=breach.kind)
            log.warning(
                "SLA breached",
                work_order=breach.work_order_id,
                site=breach.site,
                device=breach.device,
                clock=breach.clock,
                due_at=breach.due_at.isoformat(),
            )
            await self._hand_on(breach)
        self.ticks += 1
        return breaches

    async def _hand_on(self, breach: SlaBreach) -> None:
        if self.on_breach is None:
            return
        try:
            await self.on_breach(breach)
        except Exception:
            # A subscriber's failure is its own: the breach is recorded, and the next breaches still get handed on.
            self.metrics.inc("rules_sla_breach_handler_errors")
            log.exception("breach handler failed", work_order=breach.work_order_id, clock=breach.clock)

    async def run(self, interval_s: float = 1.0) -> NoReturn:
        await tick_forever(self.tick, interval_s, clock=self.clock, metrics=self.metrics, name="sla_monitor")
