"""Indexes for listing work orders a page at a time (facmon.workorders.queries): the clocks still running, by work
order and deadline (the urgency sort's first segment), and the work orders by detection time (the newest-first
sorts and the urgency sort's second segment), so a page is read from an index instead of sorting every work order.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | None = None
depends_on: str | None = None

RUNNING = "met_at IS NULL AND cancelled_at IS NULL"


def upgrade() -> None:
    op.create_index(
        "ix_work_order_clocks_running",
        "work_order_clocks",
        ["work_order_id", "due_at"],
        sqlite_where=sa.text(RUNNING),
        postgresql_where=sa.text(RUNNING),
    )
    op.create_index("ix_work_orders_detected_at_id", "work_orders", ["detected_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_work_orders_detected_at_id", table_name="work_orders")
    op.drop_index("ix_work_order_clocks_running", table_name="work_order_clocks")
