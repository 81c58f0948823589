"""A work order's `next_due_at`: the earliest deadline of its SLA clocks still running (neither met nor cancelled),
NULL when none runs. It is the urgency sort's key (facmon.workorders.queries), stored so that a page of the most
urgent work orders is read from an index instead of grouping every clock for each page.

Only two places change which clocks run, and both call `refresh_next_due` in the same transaction: opening a work
order with its clocks (rules.store.open_or_recur) and a status change meeting or cancelling clocks
(facmon.workorders.workflow). Moving a met clock's time (facmon.workorders.late_arrival) and recording or
withdrawing a breach leave the running clocks as they are. Both writers change the work order's row first in their
transaction (the insert or upsert, the compare-and-set of the status), so on PostgreSQL the row lock orders two
writers of one work order and the second computes the minimum from what the first committed.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from facmon.workorders.tables import WorkOrder, WorkOrderClock


def refresh_next_due(session: Session, work_order_id: int) -> None:
    """Set the work order's next_due_at from its clocks as they stand in this transaction."""
    c = WorkOrderClock
    earliest = (
        select(func.min(c.due_at))
        .where(c.work_order_id == work_order_id, c.met_at.is_(None), c.cancelled_at.is_(None))
        .scalar_subquery()
    )
    session.execute(
        update(WorkOrder)
        .where(WorkOrder.id == work_order_id)
        .values(next_due_at=earliest)
        .execution_options(synchronize_session=False)
    )
