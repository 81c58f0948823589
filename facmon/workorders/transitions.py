"""The work-order lifecycle as a table, and the pure function that plans a transition.

    open ──▶ acknowledged ──▶ on_site ──▶ resolved ──▶ closed
      │            │              │
      └────────────┴──────────────┴──▶ cancelled (a false alarm, a duplicate report)

Skipping ahead is allowed where the skipped step is implied: a technician proved on site (card read, inspection
mode, or the technician's own word) before anyone acknowledged has evidently taken the job, so open -> on_site
records the acknowledgement too, at the same time, marked implied. Nothing else skips: resolving needs someone on
site first (the arrival clock would otherwise be met by nobody), and closing needs a resolution.

Cancelling is for work orders still open for work (open, acknowledged, on_site). A resolved work order was repaired:
it only closes, so a repair never disappears from the repair-timeliness figures.

`plan` reads no clock and no database; the store (`facmon.workorders.workflow`) carries a plan out, and a refused plan
is an
`IllegalTransition` saying why, with the current status and what is allowed from it.
"""

from __future__ import annotations

from collections.abc import Mapping

from facmon.workorders.tables import Milestone, WorkOrderStatus

S = WorkOrderStatus

# Where each status may go next, as asked for (a step it implies is added by `plan`).
NEXT: Mapping[WorkOrderStatus, tuple[WorkOrderStatus, ...]] = {
    S.OPEN: (S.ACKNOWLEDGED, S.ON_SITE, S.CANCELLED),
    S.ACKNOWLEDGED: (S.ON_SITE, S.CANCELLED),
    S.ON_SITE: (S.RESOLVED, S.CANCELLED),
    S.RESOLVED: (S.CLOSED,),
    S.CLOSED: (),
    S.CANCELLED: (),
}

# Steps a transition implies on its way: (from, to) -> the statuses recorded before `to`.
IMPLIED: Mapping[tuple[WorkOrderStatus, WorkOrderStatus], tuple[WorkOrderStatus, ...]] = {
    (S.OPEN, S.ON_SITE): (S.ACKNOWLEDGED,),
}

FINAL = frozenset(status for status, targets in NEXT.items() if not targets)

# The SLA milestone a status reaches; the clocks waiting for it are met when a work order gets there.
MILESTONE_OF: Mapping[WorkOrderStatus, Milestone] = {
    S.ACKNOWLEDGED: Milestone.ACKNOWLEDGED,
    S.ON_SITE: Milestone.ON_SITE,
    S.RESOLVED: Milestone.RESOLVED,
}

# Why a move that is not in NEXT is refused, where a general sentence would not help the person on the phone.
_WHY: Mapping[tuple[WorkOrderStatus, WorkOrderStatus], str] = {
    (S.OPEN, S.RESOLVED): "resolving needs a technician on site first (on_site)",
    (S.ACKNOWLEDGED, S.RESOLVED): "resolving needs a technician on site first (on_site)",
    (S.OPEN, S.CLOSED): "only a resolved work order can be closed",
    (S.ACKNOWLEDGED, S.CLOSED): "only a resolved work order can be closed",
    (S.ON_SITE, S.CLOSED): "only a resolved work order can be closed; resolve it first",
    (S.RESOLVED, S.CANCELLED): "a resolved work order was repaired; it can only be closed",
}


class IllegalTransition(ValueError):
    """A transition the lifecycle does not allow from the work order's current status."""

    def __init__(self, current: WorkOrderStatus, to: WorkOrderStatus, reason: str) -> None:
        self.current = current
        self.to = to
        self.allowed = NEXT[current]
        self.reason = reason
        super().__init__(reason)


def _reason(current: WorkOrderStatus, to: WorkOrderStatus) -> str:
    if current == to:
        return f"the work order is already {current.value}"
    if current in FINAL:
        return f"the work order is {current.value}, which is final"
    if (current, to) in _WHY:
        return _WHY[current, to]
    return f"a work order that is {current.value} cannot go back to {to.value}"


def plan(current: WorkOrderStatus, to: WorkOrderStatus) -> tuple[WorkOrderStatus, ...]:
    """The statuses to record, in order, to take a work order from `current` to `to` (the last one is `to`).

    Raises IllegalTransition when the lifecycle does not allow it.
    """
    if to not in NEXT[current]:
        raise IllegalTransition(current, to, _reason(current, to))
    return (*IMPLIED.get((current, to), ()), to)


def milestones_reached(steps: tuple[WorkOrderStatus, ...]) -> tuple[Milestone, ...]:
    return tuple(MILESTONE_OF[step] for step in steps if step in MILESTONE_OF)
