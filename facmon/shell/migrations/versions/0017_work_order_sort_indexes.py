"""Listing work orders a page at a time from indexes (facmon.workorders.queries): each work order's `next_due_at`
(the earliest deadline of its running clocks, facmon.workorders.next_due), filled in here from the clocks, with an
index for the urgency sort's first part; the work orders by detection time (the newest-first sorts and the urgency
sort's second part); and the clocks still running, by work order and deadline.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from facmon.shell.migrations.column_types import Utc

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | None = None
depends_on: str | None = None

RUNNING = "met_at IS NULL AND cancelled_at IS NULL"
NEXT_DUE = "next_due_at IS NOT NULL"


def upgrade() -> None:
    op.add_column("work_orders", sa.Column("next_due_at", Utc, nullable=True))
    op.execute(
        "UPDATE work_orders SET next_due_at = (SELECT min(c.due_at) FROM work_order_clocks c"
        " WHERE c.work_order_id = work_orders.id AND c.met_at IS NULL AND c.cancelled_at IS NULL)"
    )
    op.create_index(
        "ix_work_orders_next_due",
        "work_orders",
        ["next_due_at", "detected_at", "id"],
        sqlite_where=sa.text(NEXT_DUE),
        postgresql_where=sa.text(NEXT_DUE),
    )
    op.create_index(
        "ix_work_order_clocks_running",
        "work_order_clocks",
        ["work_order_id", "due_at"],
        sqlite_where=sa.text(RUNNING),
        postgresql_where=sa.text(RUNNING),
    )
    op.create_index("ix_work_orders_detected_at_id", "work_orders", ["detected_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_work_orders_next_due", table_name="work_orders")
    with op.batch_alter_table("work_orders") as batch:
        batch.drop_column("next_due_at")
    op.drop_index("ix_work_orders_detected_at_id", table_name="work_orders")
    op.drop_index("ix_work_order_clocks_running", table_name="work_order_clocks")
